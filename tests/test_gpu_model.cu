// tests/test_gpu_model.cu: the GPU training path as a whole against the CPU reference: the gradient norm, the
// fused AdamW launch, one full training step (loss, every gradient, the parameters after AdamW), one at bf16
// precision, the first 20 steps of training, bit-for-bit repeatability of the GPU step, and the model trained
// through the teaching GEMM. Built by nvcc; each test skips, visibly, without a GPU.
// These tests go through optim.h's optimizer_step, which dispatches to grad_norm_cuda and
// adamw_update_slices_cuda when the model lives on the GPU.
#include "gpu_testutil.h"
#include "../optim.h"
#include "../step_graph.h"

// A small model with awkward sizes: 2 layers, 3 heads of 16 (C = 48), a 97-token vocabulary padded to 128,
// batches of 3 x 13 positions.
static GPT2Config small_config() { return gpt2_config_make(16, 97, 128, 2, 3, 48); }
static const int SMALL_B = 3, SMALL_T = 13;

static void random_tokens(std::vector<int>* ids, int n, int vocab, uint64_t seed) {
    Rng rng = rng_make(seed);
    ids->resize(n);
    for (int i = 0; i < n; i++) (*ids)[i] = (int)(rng_u32(&rng) % vocab);
}

static std::vector<float> model_params(const GPT2* m) {
    std::vector<float> h(m->num_parameters);
    copy_to_host(m->device, h.data(), m->params[0].data, h.size() * sizeof(float));
    return h;
}

static std::vector<float> model_grads(const GPT2* m) {
    std::vector<float> h(m->num_parameters);
    copy_to_host(m->device, h.data(), m->params[0].grad, h.size() * sizeof(float));
    return h;
}

// forward + backward on one batch; returns the loss
static float train_forward_backward(GPT2* m, const std::vector<int>& ids, const std::vector<int>& targets) {
    gpt2_zero_grad(m);
    float loss = gpt2_forward(m, ids.data(), targets.data(), SMALL_B, SMALL_T);
    gpt2_backward(m, SMALL_B, SMALL_T, 1.0f / (SMALL_B * SMALL_T));
    return loss;
}

TEST_CASE("gpu: grad_norm_cuda matches grad_norm_cpu and repeats bit for bit") {
    if (!gpu_available()) { MESSAGE("SKIPPED: no CUDA GPU found"); return; }
    for (size_t n : {(size_t)1, (size_t)1000, (size_t)1000003}) {
        CAPTURE(n);
        std::vector<float> g = random_vector(n, 80, 1e-3f);
        float* d = to_device(g);
        double cpu = grad_norm_cpu(g.data(), n), gpu = grad_norm_cuda(d, n), again = grad_norm_cuda(d, n);
        // both sum the same float squares in double, in different orders: rounding ~n·1.1e-16 relative at worst
        CHECK(fabs(gpu - cpu) <= 1e-10 * cpu);
        CHECK(memcmp(&gpu, &again, sizeof(double)) == 0);
        cudaCheck(cudaFree(d));
    }
}

// Several norms with one wait (grad_norms_cuda, what the logged matrix RMS uses): each the same bits as its norm
// alone, an empty buffer's 0.
TEST_CASE("gpu: grad_norms_cuda gives each buffer's grad_norm_cuda, bit for bit, in one copy back") {
    if (!gpu_available()) { MESSAGE("SKIPPED: no CUDA GPU found"); return; }
    std::vector<float> g = random_vector(300000, 81, 1e-2f);
    float* d = to_device(g);
    const float* xs[4] = {d, d + 1000, d + 7, d + 5};
    size_t ns[4] = {300000, 99001, 0, 1};
    double together[4];
    grad_norms_cuda(xs, ns, 4, together);
    for (int k = 0; k < 4; k++) {
        CAPTURE(k);
        double alone = grad_norm_cuda(xs[k], ns[k]);
        CHECK(memcmp(&together[k], &alone, sizeof(double)) == 0);
    }
    CHECK(together[2] == 0.0);
    CHECK(together[3] == doctest::Approx(fabs(g[5])));
    cudaCheck(cudaFree(d));
}

TEST_CASE("gpu: adamw_update_slices_cuda matches the CPU over three steps (gaps, empty and odd-sized slices)") {
    if (!gpu_available()) { MESSAGE("SKIPPED: no CUDA GPU found"); return; }
    // slices with gaps between them (left untouched), an empty one, sizes around the 4096-per-block chunk, one
    // whose moments lie elsewhere than its parameters (a rank's packed state: partition.h); the kernel's float4
    // path takes those starting at a multiple of 4 in both (the first, the fifth with a tail of 1), the scalar
    // one the others (the sixth: its parameters aligned, its moments not)
    const AdamWSlice slices[] = {{0, 10000, 0, 1e-2f, 0.1f},         {10005, 1, 10002, 3e-3f, 0.0f},
                                 {10006, 4096, 10006, 1e-3f, 0.5f},  {14102, 0, 14102, 1e-2f, 0.1f},
                                 {14200, 70001, 14200, 6e-4f, 0.1f}, {84204, 5, 84201, 2e-3f, 0.1f}};
    int num = 6;
    size_t n = 14200 + 70001 + 9;
    std::vector<float> p = random_vector(n, 81), m(n, 0.0f), v(n, 0.0f), p0 = p;
    float *d_p = to_device(p), *d_m = to_device(m), *d_v = to_device(v);
    for (int t = 1; t <= 3; t++) {
        std::vector<float> g = random_vector(n, 82 + t, 1e-2f);
        if (t == 2)
            for (size_t i = 0; i < n; i += 7) g[i] = 0.0f;  // zero gradients: the update is decay plus momentum
        float* d_g = to_device(g);
        adamw_update_slices_cpu(p.data(), g.data(), m.data(), v.data(), slices, num, 0.9f, 0.95f, 1e-8f, 0.7f, t);
        adamw_update_slices_cuda(d_p, d_g, d_m, d_v, slices, num, 0.9f, 0.95f, 1e-8f, 0.7f, t);
        cudaCheck(cudaFree(d_g));
    }
    // Elementwise formulas on both sides; they differ only where nvcc fuses a multiply-add (one rounding
    // instead of two), a few ulp of m, v and p: 1e-6 of |p| + rms(p) is ~20 ulp.
    std::vector<float> gp = to_host(d_p, n), gm = to_host(d_m, n), gv = to_host(d_v, n);
    check_close("adamw params", gp, p, 1e-6);
    check_close("adamw m", gm, m, 1e-5);
    check_close("adamw v", gv, v, 1e-5);
    size_t gaps_changed = 0;
    for (size_t i : {(size_t)10000, (size_t)10004, (size_t)14102, (size_t)14199, (size_t)84201, n - 1})
        gaps_changed += gp[i] != p0[i];
    CHECK(gaps_changed == 0);
    for (float* q : {d_p, d_m, d_v}) cudaCheck(cudaFree(q));
}

// One training step on both devices from the same initial weights and batch.
// Tolerances: the loss passes through ~25 ops, each adding float32 rounding of ~1e-6 relative in a different
// order on each side: 1e-5. Gradients are compared tensor by tensor as ‖gpu − cpu‖/‖cpu‖ (rel_error): the
// backward chains ~50 ops whose rounding differences are amplified by layernorm's rstd and the softmax
// Jacobians, so 1e-4. After AdamW the parameter changes Δp are compared the same way: at t = 1 AdamW's step is
// lr·g/(|g| + eps), which rounds gradient differences away wherever |g| >> eps = 1e-8 and passes them on
// (relative) only for the few entries with |g| ~ eps; 1e-4 again.
TEST_CASE("gpu: one training step (loss, every gradient, AdamW) matches the CPU") {
    if (!gpu_available()) { MESSAGE("SKIPPED: no CUDA GPU found"); return; }
    GPT2Config cfg = small_config();
    GPT2 cpu, gpu;
    gpt2_build(&cpu, &cfg, SMALL_B, SMALL_T, DEV_CPU, 21);
    gpt2_build(&gpu, &cfg, SMALL_B, SMALL_T, DEV_CUDA, 21);
    std::vector<int> ids, targets;
    random_tokens(&ids, SMALL_B * SMALL_T, cfg.vocab_size, 22);
    random_tokens(&targets, SMALL_B * SMALL_T, cfg.vocab_size, 23);
    float loss_cpu = train_forward_backward(&cpu, ids, targets);
    float loss_gpu = train_forward_backward(&gpu, ids, targets);
    CHECK(fabs(loss_gpu - loss_cpu) <= 1e-5 * fabs(loss_cpu));
    std::vector<float> g_cpu = model_grads(&cpu), g_gpu = model_grads(&gpu);
    for (int i = 0; i < NUM_PARAM_TENSORS; i++) {
        size_t off = cpu.params[i].data - cpu.params[0].data, n = cpu.params[i].size;
        double err = rel_error(g_gpu.data() + off, g_cpu.data() + off, n);
        CHECK_MESSAGE(err <= 1e-4, std::string(param_tensor_names[i]) << ": gradient relative error " << err);
    }
    size_t pad_start = (size_t)cfg.vocab_size * cfg.channels, pad_nonzero = 0;
    for (size_t j = pad_start; j < cpu.params[P_WTE].size; j++) pad_nonzero += g_gpu[j] != 0.0f;
    CHECK(pad_nonzero == 0);  // the padded vocabulary rows get no gradient on the GPU either

    std::vector<float> p0 = model_params(&cpu);
    OptimizerConfig oc = optimizer_config_adamw();
    Optimizer opt_cpu, opt_gpu;
    char err[ERR_LEN];
    REQUIRE(optimizer_init(&opt_cpu, &cpu, &oc, err) == 0);
    REQUIRE(optimizer_init(&opt_gpu, &gpu, &oc, err) == 0);
    double norm_cpu = optimizer_step(&opt_cpu, &cpu, 1.0f, false);
    double norm_gpu = optimizer_step(&opt_gpu, &gpu, 1.0f, false);
    CHECK(fabs(norm_gpu - norm_cpu) <= 1e-4 * norm_cpu);  // the norm of gradients that agree to 1e-4
    std::vector<float> p_cpu = model_params(&cpu), p_gpu = model_params(&gpu), d_cpu(p0.size()), d_gpu(p0.size());
    for (size_t j = 0; j < p0.size(); j++) {
        d_cpu[j] = p_cpu[j] - p0[j];
        d_gpu[j] = p_gpu[j] - p0[j];
    }
    double step_err = rel_error(d_gpu.data(), d_cpu.data(), d_cpu.size());
    CHECK_MESSAGE(step_err <= 1e-4, "AdamW parameter change: relative error " << step_err);
    optimizer_free(&opt_cpu);
    optimizer_free(&opt_gpu);
    gpt2_free(&cpu);
    gpt2_free(&gpu);
}

// --precision bf16 on the GPU against the CPU's bf16 model (the same rounding points, model.h): the copy of the
// weights the layers read is the master weights rounded, bit for bit; the activations are bf16 values; the loss
// and the gradients agree within bf16's tolerance (the devices' fp32 sums differ in order, so a value near a
// rounding boundary may round the other way: one bf16 step, 2^-8 relative). Both GPU attention paths: with the
// simple one, qkv, atty and attproj stay in fp32 storage between 16-bit neighbours.
TEST_CASE("gpu: a bf16-precision training step matches the CPU's bf16 step (flash and simple attention)") {
    if (!gpu_available()) { MESSAGE("SKIPPED: no CUDA GPU found"); return; }
    GPT2Config cfg = small_config();
    for (AttentionPath path : {ATTENTION_FLASH, ATTENTION_SIMPLE}) {
        bool flash = path == ATTENTION_FLASH;
        CAPTURE(flash);
        GPT2 cpu, gpu;
        gpt2_build(&cpu, &cfg, SMALL_B, SMALL_T, DEV_CPU, 24, Kernels{GEMM_CUBLAS_BF16, ATTENTION_SIMPLE, PRECISION_BF16});
        gpt2_build(&gpu, &cfg, SMALL_B, SMALL_T, DEV_CUDA, 24, Kernels{GEMM_CUBLAS_BF16, path, PRECISION_BF16});
        std::vector<int> ids, targets;
        random_tokens(&ids, SMALL_B * SMALL_T, cfg.vocab_size, 25);
        random_tokens(&targets, SMALL_B * SMALL_T, cfg.vocab_size, 26);
        CHECK((gpu.logits.data == NULL && gpu.logits.data16 != NULL));  // the GPU's logits in 16-bit storage (model.h)
        CHECK((cpu.logits.data != NULL && cpu.logits.data16 == NULL));  // the CPU's in fp32 storage
        float loss_cpu = train_forward_backward(&cpu, ids, targets);
        float loss_gpu = train_forward_backward(&gpu, ids, targets);
        CAPTURE(loss_cpu);
        CAPTURE(loss_gpu);
        CHECK(fabs(loss_gpu - loss_cpu) <= 1e-3 * fabs(loss_cpu));
        // the weights' copies: fp32 ones of what is read in fp32, the others' values only in their 16-bit copies
        std::vector<float> p_gpu = model_params(&gpu);
        size_t off = 0, fp32_copies = 0;
        for (int i = 0; i < NUM_PARAM_TENSORS; i++) {
            const Tensor* w = &gpu.weights[i];
            size_t at = gpu.params[i].data - gpu.params[0].data;
            std::vector<float> v = w->data ? to_host(w->data, w->size) : bf16_to_host(w->data16, w->size);
            for (size_t j = 0; j < v.size(); j++) off += v[j] != bf16_round(p_gpu[at + j]);
            fp32_copies += w->data != NULL;
        }
        CHECK(off == 0);
        CHECK(fp32_copies == (flash ? 7u : 10u));  // wpe, the layernorms'; simple: qkvb, attprojw, attprojb
        CHECK((gpu.weights[P_FCW].data == NULL && gpu.weights[P_WTE].data == NULL));
        BlockActs* a = &gpu.acts[1];  // 16-bit storage (model.h's gpt2_storage16), the residual stream's included
        for (const Tensor* t : {&gpu.encoded, &a->ln1, &a->qkv, &a->atty, &a->attproj, &a->res2, &a->ln2, &a->fch,
                                &a->fch_gelu, &a->fcproj, &a->res3, &gpu.lnf}) {
            bool fp32_storage = !flash && (t == &a->qkv || t == &a->atty || t == &a->attproj);
            CAPTURE(t->name);
            CHECK((t->data == NULL) != fp32_storage);
            CHECK((t->data16 != NULL) != fp32_storage);
        }
        CHECK((a->fch.grad == NULL && a->fch.grad16 != NULL && a->fch_gelu.grad == NULL));  // GELU in the epilogues
        std::vector<float> g_cpu = model_grads(&cpu), g_gpu = model_grads(&gpu);
        double worst = 0.0;
        for (int i = 0; i < NUM_PARAM_TENSORS; i++) {
            size_t at = cpu.params[i].data - cpu.params[0].data, n = cpu.params[i].size;
            double err = rel_error(g_gpu.data() + at, g_cpu.data() + at, n);
            CAPTURE(std::string(param_tensor_names[i]));
            CAPTURE(err);
            CHECK(err <= 1e-2);
            worst = err > worst ? err : worst;
        }
        MESSAGE("the GPU's bf16 step (" << std::string(flash ? "flash" : "simple") << " attention) against the CPU's: "
                "worst gradient relative error " << worst << " (bound 1e-2)");
        gpt2_free(&cpu);
        gpt2_free(&gpu);
    }
}

// Runs `steps` AdamW steps of the small model on one device (a fixed sequence of random batches), with the kernel
// choices `k` (by default fp32 cuBLAS, simple attention, fp32 precision); returns the losses, and the final
// parameters in *params.
// micro: -1, gpt2_forward and gpt2_backward; 0, step_graph.h's step_micro, eager; 1, step_micro with
// --cuda-graph 1 (on the GPU the first step eager, the second captured and launched, the others replayed).
static std::vector<float> train_steps(Device dev, int steps, std::vector<float>* params, Kernels k = Kernels{},
                                      int micro = -1) {
    StepGraph graph;
    step_graph_init(&graph, micro == 1);
    GPT2Config cfg = small_config();
    GPT2 model;
    gpt2_build(&model, &cfg, SMALL_B, SMALL_T, dev, 31, k);
    OptimizerConfig oc = optimizer_config_adamw();
    oc.lr = 3e-3f;  // large enough that 20 steps move the loss well below its start
    Optimizer opt;
    char err[ERR_LEN];
    if (optimizer_init(&opt, &model, &oc, err)) die("%s", err);
    std::vector<float> losses;
    std::vector<int> ids, targets;
    for (int s = 0; s < steps; s++) {
        random_tokens(&ids, SMALL_B * SMALL_T, cfg.vocab_size, 1000 + s % 4);  // 4 batches, seen in turn
        random_tokens(&targets, SMALL_B * SMALL_T, cfg.vocab_size, 2000 + s % 4);
        if (micro < 0) {
            losses.push_back(train_forward_backward(&model, ids, targets));
        } else {
            gpt2_zero_grad(&model);
            losses.push_back(step_micro(&graph, &model, ids.data(), targets.data(), SMALL_B, SMALL_T,
                                        1.0f / (SMALL_B * SMALL_T)));
        }
        optimizer_step(&opt, &model, 1.0f, false);
    }
    if (params) *params = model_params(&model);
#ifdef __CUDACC__
    if (micro == 1 && dev == DEV_CUDA) CHECK(graph.exec != NULL);  // the steps after the second were replays
#endif
    step_graph_free(&graph);
    optimizer_free(&opt);
    gpt2_free(&model);
    return losses;
}

// The differences of one step compound over 20, through AdamW's normalisation; the losses (means over 39
// positions of ~4.5) still agree to ~1e-5 relative. 1e-4 is the bound the project states for fp32 training.
TEST_CASE("gpu: the first 20 training steps follow the CPU's losses within 1e-4 relative") {
    if (!gpu_available()) { MESSAGE("SKIPPED: no CUDA GPU found"); return; }
    std::vector<float> cpu = train_steps(DEV_CPU, 20, NULL), gpu = train_steps(DEV_CUDA, 20, NULL);
    for (int s = 0; s < 20; s++) {
        CAPTURE(s);
        CHECK(fabs(gpu[s] - cpu[s]) <= 1e-4 * fabs(cpu[s]));
    }
    CHECK(cpu[19] < cpu[0] - 0.5f);  // the run learned something, so the comparison means something
}

TEST_CASE("gpu: training steps are deterministic (the same bits twice: no atomics anywhere)") {
    if (!gpu_available()) { MESSAGE("SKIPPED: no CUDA GPU found"); return; }
    std::vector<float> p1, p2;
    std::vector<float> l1 = train_steps(DEV_CUDA, 3, &p1), l2 = train_steps(DEV_CUDA, 3, &p2);
    check_bitwise("losses", l2, l1);
    check_bitwise("parameters after 3 steps", p2, p1);
}

// step_graph.h's micro-step captured as a CUDA graph and replayed: the same kernels with the same arguments in the
// same order, so the same bits as the eager micro-step and as gpt2_forward + gpt2_backward, at fp32 and at the
// GPU's bf16 defaults (16-bit storage, cuBLASLt's epilogues, flash attention). The emulation refuses in a capture
// whatever CUDA's global capture mode refuses (a host copy, a synchronisation, an allocation, cuBLAS on the legacy
// stream), so this also shows the micro-step makes no host round trip. 5 steps: eager, captured, 3 replays.
TEST_CASE("gpu: the micro-step replayed as a CUDA graph gives the same bits as the eager one (fp32 and bf16)") {
    if (!gpu_available()) { MESSAGE("SKIPPED: no CUDA GPU found"); return; }
    for (Kernels k : {Kernels{}, Kernels{GEMM_CUBLAS_BF16, ATTENTION_FLASH, PRECISION_BF16}}) {
        CAPTURE(k.precision);
        std::vector<float> p_plain, p_eager, p_graph;
        std::vector<float> plain = train_steps(DEV_CUDA, 5, &p_plain, k, -1), eager = train_steps(DEV_CUDA, 5, &p_eager, k, 0),
                           graph = train_steps(DEV_CUDA, 5, &p_graph, k, 1);
        check_bitwise("losses, eager micro-steps", eager, plain);
        check_bitwise("losses, the graph", graph, eager);
        check_bitwise("parameters after 5 steps, eager micro-steps", p_eager, p_plain);
        check_bitwise("parameters after 5 steps, the graph", p_graph, p_eager);
        CHECK(graph[4] < graph[0]);  // the steps trained: the parameters the graph read changed under it
    }
}

// The handwritten kernel instead of cuBLAS for every product of the step (matmuls and attention): the same
// gradients up to the summation order (tolerance as in the training-step test).
TEST_CASE("gpu: the model's gradients through the teaching tiled GEMM match cuBLAS's") {
    if (!gpu_available()) { MESSAGE("SKIPPED: no CUDA GPU found"); return; }
    GPT2Config cfg = small_config();
    GPT2 gpu;
    gpt2_build(&gpu, &cfg, SMALL_B, SMALL_T, DEV_CUDA, 41);
    std::vector<int> ids, targets;
    random_tokens(&ids, SMALL_B * SMALL_T, cfg.vocab_size, 42);
    random_tokens(&targets, SMALL_B * SMALL_T, cfg.vocab_size, 43);
    float loss_cublas = train_forward_backward(&gpu, ids, targets);
    std::vector<float> g_cublas = model_grads(&gpu);
    gpu.kernels.gemm = GEMM_TILED;
    float loss_tiled = train_forward_backward(&gpu, ids, targets);
    gpu.kernels.gemm = GEMM_CUBLAS;
    std::vector<float> g_tiled = model_grads(&gpu);
    CHECK(fabs(loss_tiled - loss_cublas) <= 1e-5 * fabs(loss_cublas));
    CHECK(rel_error(g_tiled.data(), g_cublas.data(), g_cublas.size()) <= 1e-4);
    gpt2_free(&gpu);
}
