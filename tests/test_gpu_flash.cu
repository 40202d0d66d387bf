// tests/test_gpu_flash.cu: the fused flash-attention kernels (ops/attention_flash.h) against the CPU reference
// (ops/attention.h) and against the simple GPU path (cuBLAS + softmax kernels), on awkward shapes: T = 1,
// T not a multiple of the tile (37, 67, 130, 1000), T a multiple of it (128), head sizes 16, 32, 64 and 128,
// several (batch, head) pairs; the saved logsumexp L against a float64 computation; the same bits twice
// (determinism); the whole model through the tape, built for flash attention. Built by nvcc; each GPU
// test skips, visibly, without a GPU. Gradient buffers start from random values, so the tests also check that
// the backward adds (+=), as attention_backward_cpu does.
//
// Tolerances (check_close: |gpu − ref| <= tol·(|ref| + rms(ref))). The fused kernels compute the same sums as
// the CPU in another order: scores over HS, softmax sums and outputs over up to T keys, so the simple path's
// bound applies, tol = sum_tol(HS) + 2·sum_tol(T) with sum_tol(K) = 1e-6 + 2.4e-7·sqrt(K) (tests/opcases.h
// says why), and twice that for dqkv, whose sums chain two more. What the fused path adds stays below that
// budget: one rounding per key tile for the rescaling by exp(m − m') (at most 16 tiles here), the GPU's expf
// (within 2 ulp), and in the backward P = exp(s − L) recomputed from L, which is rounded to half an ulp of
// |L| (|L| <= max s + log T, about 10 at most here: ~6e-7 absolute in the exponent, so ~6e-7 relative in each
// P, under the smallest budget, sum_tol(1) = 1.24e-6). A CPU emulation of these kernels (every block's threads
// as host threads) stayed ~10x under these bounds. Against the simple GPU path both sides carry their own
// error, so the bounds add: 2·tol, and 4·tol for dqkv.
#include "gpu_testutil.h"
#include "opcases.h"
#include "../optim.h"

#define SKIP_WITHOUT_GPU_MESSAGE "SKIPPED: no CUDA GPU found"

// (B, T, C, NH): head sizes 16, 16, 32, 64, 64 (GPT-2's 12 heads), 128, 128, 128, 64, 64
static const int FLASH_SHAPES[][4] = {{2, 1, 48, 3},    {3, 37, 48, 3},   {2, 67, 128, 4},  {1, 130, 256, 4},
                                      {2, 67, 768, 12}, {2, 130, 256, 2}, {1, 1, 128, 1},   {1, 37, 384, 3},
                                      {1, 128, 256, 4}, {1, 1000, 128, 2}};

static double flash_tol(int HS, int T) { return sum_tol(HS) + 2 * sum_tol(T); }

// L[b, h, t] = log Σ_{t2 <= t} exp(q_t · k_t2 / sqrt(HS)), in float64: what the forward should save
static std::vector<float> logsumexp_reference(const std::vector<float>& qkv, int B, int T, int C, int NH) {
    int HS = C / NH;
    std::vector<float> L((size_t)B * NH * T);
    std::vector<double> s(T);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++)
            for (int t = 0; t < T; t++) {
                const float* q = qkv.data() + ((size_t)b * T + t) * 3 * C + h * HS;
                double maxv = -INFINITY, sum = 0.0;
                for (int t2 = 0; t2 <= t; t2++) {
                    const float* k = qkv.data() + ((size_t)b * T + t2) * 3 * C + C + h * HS;
                    double dot = 0.0;
                    for (int i = 0; i < HS; i++) dot += (double)q[i] * k[i];
                    s[t2] = dot / sqrt((double)HS);
                    maxv = fmax(maxv, s[t2]);
                }
                for (int t2 = 0; t2 <= t; t2++) sum += exp(s[t2] - maxv);
                L[((size_t)b * NH + h) * T + t] = (float)(maxv + log(sum));
            }
    return L;
}

// The fused path's forward and backward on the GPU: out (B, T, C), L (B, NH, T), dqkv (dqkv0 + gradient).
// L and the scratch for D get exactly B·NH·T floats, so a write past them shows under compute-sanitizer.
static void run_flash(const std::vector<float>& qkv, const std::vector<float>& dout, const std::vector<float>& dqkv0,
                      int B, int T, int C, int NH, std::vector<float>* out, std::vector<float>* L,
                      std::vector<float>* dqkv, bool stored16 = false, bool out_bf16 = false) {
    size_t n_out = (size_t)B * T * C, n_L = (size_t)B * NH * T;
    float *d_qkv = to_device(qkv), *d_dout = to_device(dout), *d_dqkv = to_device(dqkv0),
          *d_out = to_device(std::vector<float>(n_out)), *d_L = to_device(std::vector<float>(n_L)),
          *d_D = to_device(std::vector<float>(n_L));
    // stored16: qkv and out in 16-bit storage (qkv's values must be bf16's), read and written there; out_bf16: out
    // rounded as stored in fp32 storage (what 16-bit storage holds)
    bfloat16 *d_qkv16 = NULL, *d_out16 = NULL;
    if (stored16) {
        std::vector<bfloat16> h16(qkv.size());
        for (size_t i = 0; i < qkv.size(); i++) h16[i] = bf16_from_float(qkv[i]);
        cudaCheck(cudaMalloc(&d_qkv16, sizeof(bfloat16) * h16.size()));
        cudaCheck(cudaMemcpy(d_qkv16, h16.data(), sizeof(bfloat16) * h16.size(), cudaMemcpyHostToDevice));
        cudaCheck(cudaMalloc(&d_out16, sizeof(bfloat16) * n_out));
    }
    const float* src = stored16 ? NULL : d_qkv;
    float* dst = stored16 ? NULL : d_out;
    attention_flash_forward_cuda(dst, d_L, src, B, T, C, NH, out_bf16, d_qkv16, d_out16);
    attention_flash_backward_cuda(d_dqkv, d_D, d_dout, src, dst, d_L, B, T, C, NH, d_qkv16, d_out16);
    *out = to_host(d_out, n_out);
    if (stored16) {
        std::vector<bfloat16> h16(n_out);
        cudaCheck(cudaMemcpy(h16.data(), d_out16, sizeof(bfloat16) * n_out, cudaMemcpyDeviceToHost));
        for (size_t i = 0; i < n_out; i++) (*out)[i] = bf16_to_float(h16[i]);
    }
    *L = to_host(d_L, n_L);
    *dqkv = to_host(d_dqkv, qkv.size());
    for (float* p : {d_qkv, d_dout, d_dqkv, d_out, d_L, d_D}) cudaCheck(cudaFree(p));
    for (bfloat16* p : {d_qkv16, d_out16})
        if (p) cudaCheck(cudaFree(p));
}

TEST_CASE("gpu: flash attention forward and backward match the CPU (T = 1, 37, 67, 130, 1000; head sizes 16-128)") {
    if (!gpu_available()) { MESSAGE(SKIP_WITHOUT_GPU_MESSAGE); return; }
    for (auto& s : FLASH_SHAPES) {
        int B = s[0], T = s[1], C = s[2], NH = s[3], HS = C / NH;
        CAPTURE(B); CAPTURE(T); CAPTURE(C); CAPTURE(NH);
        size_t n_qkv = (size_t)B * T * 3 * C, n_out = (size_t)B * T * C;
        std::vector<float> qkv = random_vector(n_qkv, 130 + T), dout = random_vector(n_out, 131 + T),
                           dqkv0 = random_vector(n_qkv, 132 + T);
        std::vector<float> out(n_out), att((size_t)B * NH * T * T), dqkv(dqkv0), scratch((size_t)B * NH * T);
        attention_forward_cpu(out.data(), att.data(), qkv.data(), B, T, C, NH);
        attention_backward_cpu(dqkv.data(), scratch.data(), dout.data(), qkv.data(), att.data(), B, T, C, NH);
        std::vector<float> L = logsumexp_reference(qkv, B, T, C, NH);
        std::vector<float> g_out, g_L, g_dqkv;
        run_flash(qkv, dout, dqkv0, B, T, C, NH, &g_out, &g_L, &g_dqkv);
        double tol = flash_tol(HS, T);
        check_close("flash attention out", g_out, out, tol);
        check_close("flash attention L", g_L, L, tol);
        check_close("flash attention dqkv", g_dqkv, dqkv, 2 * tol);
    }
}

TEST_CASE("gpu: flash attention matches the simple GPU path (forward and backward)") {
    if (!gpu_available()) { MESSAGE(SKIP_WITHOUT_GPU_MESSAGE); return; }
    for (auto& s : FLASH_SHAPES) {
        int B = s[0], T = s[1], C = s[2], NH = s[3], HS = C / NH;
        CAPTURE(B); CAPTURE(T); CAPTURE(C); CAPTURE(NH);
        size_t n_qkv = (size_t)B * T * 3 * C, n_out = (size_t)B * T * C, n_att = (size_t)B * NH * T * T;
        std::vector<float> qkv = random_vector(n_qkv, 140 + T), dout = random_vector(n_out, 141 + T),
                           dqkv0 = random_vector(n_qkv, 142 + T);
        float *d_qkv = to_device(qkv), *d_dout = to_device(dout), *d_dqkv = to_device(dqkv0),
              *d_out = to_device(std::vector<float>(n_out)), *d_att = to_device(std::vector<float>(n_att)),
              *d_scratch = to_device(std::vector<float>(n_att));
        attention_forward_cuda(GEMM_CUBLAS, d_out, d_att, d_qkv, B, T, C, NH);
        attention_backward_cuda(GEMM_CUBLAS, d_dqkv, d_scratch, d_dout, d_qkv, d_att, B, T, C, NH);
        std::vector<float> out = to_host(d_out, n_out), dqkv = to_host(d_dqkv, n_qkv);
        for (float* p : {d_qkv, d_dout, d_dqkv, d_out, d_att, d_scratch}) cudaCheck(cudaFree(p));
        std::vector<float> g_out, g_L, g_dqkv;
        run_flash(qkv, dout, dqkv0, B, T, C, NH, &g_out, &g_L, &g_dqkv);
        double tol = flash_tol(HS, T);
        check_close("flash vs simple out", g_out, out, 2 * tol);
        check_close("flash vs simple dqkv", g_dqkv, dqkv, 4 * tol);
    }
}

// qkv in 16-bit storage (model.h's gpt2_storage16): the kernels widen each value as they load it into shared memory,
// exactly, so the same bf16 values in fp32 storage give the same bits.
TEST_CASE("gpu: flash attention reads qkv from and writes its output to 16-bit storage: fp32 storage's bits") {
    if (!gpu_available()) { MESSAGE(SKIP_WITHOUT_GPU_MESSAGE); return; }
    for (auto& s : FLASH_SHAPES) {
        int B = s[0], T = s[1], C = s[2], NH = s[3];
        CAPTURE(B); CAPTURE(T); CAPTURE(C); CAPTURE(NH);
        size_t n_qkv = (size_t)B * T * 3 * C, n_out = (size_t)B * T * C;
        std::vector<float> qkv = random_vector(n_qkv, 150 + T), dout = random_vector(n_out, 151 + T),
                           dqkv0 = random_vector(n_qkv, 152 + T);
        for (float& x : qkv) x = bf16_round(x);
        std::vector<float> out, L, dqkv, out16, L16, dqkv16;
        run_flash(qkv, dout, dqkv0, B, T, C, NH, &out, &L, &dqkv, false, true);
        run_flash(qkv, dout, dqkv0, B, T, C, NH, &out16, &L16, &dqkv16, true);
        CHECK(not_bf16(out.data(), out.size()) == 0);
        check_bitwise("out", out16, out);
        check_bitwise("L", L16, L);
        check_bitwise("dqkv", dqkv16, dqkv);
    }
}

// Every output element is summed by one thread in a fixed order (dK/dV per key tile, dQ per query tile, no
// atomics), so two runs give the same bits. Shapes with many tiles and (batch, head) pairs.
TEST_CASE("gpu: flash attention is deterministic (the same bits twice)") {
    if (!gpu_available()) { MESSAGE(SKIP_WITHOUT_GPU_MESSAGE); return; }
    const int shapes[][4] = {{4, 130, 256, 4}, {2, 200, 256, 2}, {3, 77, 48, 3}, {2, 150, 128, 4}};  // HS 64, 128, 16, 32
    for (auto& s : shapes) {
        int B = s[0], T = s[1], C = s[2], NH = s[3];
        CAPTURE(B); CAPTURE(T); CAPTURE(C); CAPTURE(NH);
        size_t n_qkv = (size_t)B * T * 3 * C, n_out = (size_t)B * T * C;
        std::vector<float> qkv = random_vector(n_qkv, 150), dout = random_vector(n_out, 151),
                           dqkv0 = random_vector(n_qkv, 152);
        std::vector<float> g[2][3];
        for (int run = 0; run < 2; run++) run_flash(qkv, dout, dqkv0, B, T, C, NH, &g[run][0], &g[run][1], &g[run][2]);
        check_bitwise("flash attention out, second run", g[1][0], g[0][0]);
        check_bitwise("flash attention L, second run", g[1][1], g[0][1]);
        check_bitwise("flash attention dqkv, second run", g[1][2], g[0][2]);
    }
}

// host code only: runs with or without a GPU
TEST_CASE("gpu: flash attention is built for head sizes 16, 32, 64 and 128 and refuses others") {
    for (int HS : {16, 32, 64, 128}) CHECK(attention_flash_head_size_ok(HS));
    for (int HS : {1, 8, 24, 48, 96, 100, 256}) CHECK_FALSE(attention_flash_head_size_ok(HS));
}

// The whole model through the tape: 2 layers, 2 heads of 32 (C = 64), T = 70 (two query tiles, the second
// partial), one model built for each path (the flash model's buffers hold L, not att: a simple-path backward on
// them would write past them). The attention forward picks its backward on the tape, so changing the model's
// path between the forward and the backward must not change anything.
TEST_CASE("gpu: the model's loss and gradients with flash attention match the simple GPU path's") {
    if (!gpu_available()) { MESSAGE(SKIP_WITHOUT_GPU_MESSAGE); return; }
    const int B = 2, T = 70;
    GPT2Config cfg = gpt2_config_make(80, 97, 128, 2, 2, 64);
    GPT2 simple, flash;
    gpt2_build(&simple, &cfg, B, T, DEV_CUDA, 51, Kernels{GEMM_CUBLAS, ATTENTION_SIMPLE});
    gpt2_build(&flash, &cfg, B, T, DEV_CUDA, 51, Kernels{GEMM_CUBLAS, ATTENTION_FLASH});
    std::vector<int> ids(B * T), targets(B * T);
    Rng rng = rng_make(52);
    for (int i = 0; i < B * T; i++) {
        ids[i] = (int)(rng_u32(&rng) % cfg.vocab_size);
        targets[i] = (int)(rng_u32(&rng) % cfg.vocab_size);
    }
    std::vector<float> grads[3];
    float loss[3];
    for (int run = 0; run < 3; run++) {  // simple; flash; flash with the path changed before the backward
        GPT2* m = run == 0 ? &simple : &flash;
        gpt2_zero_grad(m);
        loss[run] = gpt2_forward(m, ids.data(), targets.data(), B, T);
        if (run == 2) m->kernels.attention = ATTENTION_SIMPLE;
        gpt2_backward(m, B, T, 1.0f / (B * T));
        m->kernels.attention = run == 0 ? ATTENTION_SIMPLE : ATTENTION_FLASH;
        grads[run].resize(m->num_parameters);
        copy_to_host(DEV_CUDA, grads[run].data(), m->params[0].grad, grads[run].size() * sizeof(float));
    }
    // as for the teaching GEMM in tests/test_gpu_model.cu: the same model up to summation order
    CHECK(fabs(loss[1] - loss[0]) <= 1e-5 * fabs(loss[0]));
    CHECK(rel_error(grads[1].data(), grads[0].data(), grads[0].size()) <= 1e-4);
    CHECK(loss[2] == loss[1]);
    check_bitwise("gradients, path changed before the backward", grads[2], grads[1]);
    gpt2_free(&simple);
    gpt2_free(&flash);
}
