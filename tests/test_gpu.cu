// tests/test_gpu.cu: every op's CUDA forward and backward against its CPU reference (ops/*.h), through the
// op-case table (tests/opcases.h: awkward shapes, not multiples of 32, T = 1, rows of 1000+ channels, GPT-2's
// 50257/50304 vocabulary); every op run twice on the GPU must give the same bits (determinism); the GPU GEMMs
// (cuBLAS and the teaching kernel) against gemm_cpu. Built by nvcc; each test skips, visibly, without a GPU.
// Gradient buffers start from random values, not zero, so the tests also check that backwards add (+=).
//
// Tolerances. Both sides compute in float32; they differ only in the order of additions (and where nvcc fuses
// a multiply-add). An entry is compared as |gpu − cpu| <= tol·(|cpu| + rms(cpu)) (check_close) with tol from
// sum_tol(K) (tests/opcases.h), K the longest sum behind the entry, set per buffer in each case. Ops that add in
// the same order on both sides (embedding, residual) must match bit for bit.
#include "gpu_testutil.h"
#include "opcases.h"

#define SKIP_WITHOUT_GPU_MESSAGE "SKIPPED: no CUDA GPU found"

// The grouping of positions by token that the GPU's dwte backward reads (embedding_token_groups): every
// position once, token by token, increasing within a token, the largest group first, then the count.
TEST_CASE("embedding: positions grouped by token, largest group first, positions in order") {
    const int ids[] = {7, 3, 7, 0, 3, 7, 9, 3, 7};
    int N = 9, Vp = 16, counts[16], groups[28];
    int G = embedding_token_groups(ids, N, Vp, counts, groups);
    REQUIRE(G == 4);
    CHECK(groups[3 * N] == G);  // the count, for the kernel
    const int order[] = {3, 1, 4, 7, 0, 2, 5, 8, 6};  // token 0: {3}; 3: {1, 4, 7}; 7: {0, 2, 5, 8}; 9: {6}
    for (int k = 0; k < N; k++) CHECK(groups[k] == order[k]);
    const int spans[] = {4, 8, 1, 4, 0, 1, 8, 9};  // tokens 7, 3, then the singletons 0 and 9 in token order
    for (int k = 0; k < 2 * G; k++) CHECK(groups[N + k] == spans[k]);
}

// The CPU-vs-CUDA driver of the op-case table (tests/opcases.h): each case run once on the CPU and twice on the
// GPU from the same host buffers; every output, saved value and gradient within its tolerance of the CPU's (or
// the same bits, where both add in the same order), and the second GPU run the same bits as the first.
TEST_CASE("gpu: every op's forward and backward match the CPU, and the same bits on a second run (op-case table)") {
    if (!gpu_available()) { MESSAGE(SKIP_WITHOUT_GPU_MESSAGE); return; }
    Kernels k = {GEMM_CUBLAS, ATTENTION_SIMPLE};
    for (const OpCase& c : op_cases_gpu()) {
        CAPTURE(c.name);
        std::vector<std::vector<float>> h = op_case_inputs(c, 7, false);
        std::vector<std::vector<float>> cpu = op_case_run(c, DEV_CPU, k, h), gpu = op_case_run(c, DEV_CUDA, k, h),
                                        again = op_case_run(c, DEV_CUDA, k, h);
        for (size_t i = 0; i < c.bufs.size(); i++) {
            const OpBuf& b = c.bufs[i];
            if ((b.role != OP_OUTPUT && b.role != OP_SAVED && b.role != OP_GRAD) || b.gpu_tol < 0) continue;
            std::string what = c.name + " " + b.name;
            if (b.gpu_tol == 0) check_bitwise(what.c_str(), gpu[i], cpu[i]);
            else check_close(what.c_str(), gpu[i], cpu[i], b.gpu_tol);
            check_bitwise((what + ", second run").c_str(), again[i], gpu[i]);
        }
    }
}

// At bf16 precision the GPU's ops store bf16 values within one bf16 step of the CPU's: the two devices' fp32
// results differ in the order of their sums, so a value near a rounding boundary may round to its neighbour, one
// step (at most 2^-7 of its size) away. Attention runs both GPU paths (flash where the head size allows it). The
// loss reads its logits as bf16 values on both devices: its results within fp32's tolerances of the CPU's.
TEST_CASE("gpu: at bf16 precision every op's outputs are bf16 values within one bf16 step of the CPU's (op-case table)") {
    if (!gpu_available()) { MESSAGE(SKIP_WITHOUT_GPU_MESSAGE); return; }
    int checked = 0;
    for (AttentionPath path : {ATTENTION_SIMPLE, ATTENTION_FLASH}) {
        Kernels k = {GEMM_CUBLAS, path, PRECISION_BF16};
        for (const OpCase& c : op_cases_gpu()) {
            if (!(c.rounds || c.reads_bf16) || (path == ATTENTION_FLASH && !attention_flash_head_size_ok(c.head_size)))
                continue;  // flash: attention alone (head_size 0 for the other ops), at head sizes it has kernels for
            CAPTURE(c.name);
            CAPTURE(path);
            if (c.reads_bf16) {  // the loss: both devices read the same bf16 values, so fp32's tolerances hold
                std::vector<std::vector<float>> h = op_case_inputs(c, 17, false);
                std::vector<std::vector<float>> cpu = op_case_run(c, DEV_CPU, k, h), gpu = op_case_run(c, DEV_CUDA, k, h),
                                                fp32 = op_case_run(c, DEV_CUDA, Kernels{}, h);
                for (size_t i = 1; i < c.bufs.size(); i++) {
                    const OpBuf& b = c.bufs[i];
                    if ((b.role != OP_OUTPUT && b.role != OP_SAVED && b.role != OP_GRAD) || b.gpu_tol < 0) continue;
                    std::string what = c.name + " " + b.name + " at bf16";
                    check_close(what.c_str(), gpu[i], cpu[i], b.gpu_tol);
                    CHECK(gpu[i] != fp32[i]);  // the GPU read them rounded
                    checked++;
                }
                continue;
            }
            std::vector<std::vector<float>> h = op_case_inputs(c, 17, false);
            std::vector<std::vector<float>> cpu = op_case_run(c, DEV_CPU, k, h, false), gpu = op_case_run(c, DEV_CUDA, k, h, false);
            for (size_t i = 0; i < c.bufs.size(); i++) {
                if (c.bufs[i].role != OP_OUTPUT) continue;
                CAPTURE(c.bufs[i].name);
                double floor = 1e-6 * rms(cpu[i].data(), cpu[i].size());
                size_t apart = 0, differ = 0;
                for (size_t j = 0; j < cpu[i].size(); j++) {
                    float g = gpu[i][j], x = cpu[i][j];
                    apart += fabs(g - x) > fmax(fabs(g), fabs(x)) / 128 + floor;
                    differ += g != x;
                }
                CHECK(not_bf16(gpu[i].data(), gpu[i].size()) == 0);
                CHECK(apart == 0);
                CHECK(differ <= cpu[i].size() / 100 + 1);
                checked++;
            }
        }
    }
    CHECK(checked > 25);
}

TEST_CASE("gpu: matmul at --matmul tf32 and bf16 (tensor cores) matches the CPU's product of the same rounded inputs") {
    if (!gpu_available()) { MESSAGE(SKIP_WITHOUT_GPU_MESSAGE); return; }
    for (GemmLevel level : {GEMM_CUBLAS_TF32, GEMM_CUBLAS_BF16}) {
        Kernels k = {level, ATTENTION_SIMPLE};
        for (const OpCase& c : op_cases_gpu()) {
            if (c.name.rfind("matmul", 0) != 0) continue;
            CAPTURE(c.name);
            CAPTURE(level);
            std::vector<std::vector<float>> h = op_case_inputs(c, 7, false);
            // both round every input as the tensor cores do; their products are exact in fp32, so only the order
            // of the fp32 sums differs, as at the fp32 level: the case's own tolerances
            std::vector<std::vector<float>> cpu = op_case_run(c, DEV_CPU, k, h), gpu = op_case_run(c, DEV_CUDA, k, h);
            for (size_t i = 0; i < c.bufs.size(); i++) {
                const OpBuf& b = c.bufs[i];
                if ((b.role == OP_OUTPUT || b.role == OP_GRAD) && b.gpu_tol > 0)
                    check_close((c.name + " " + b.name).c_str(), gpu[i], cpu[i], b.gpu_tol);
            }
        }
    }
}

TEST_CASE("gpu: residual's backward skips a NULL gradient, as on the CPU") {
    if (!gpu_available()) { MESSAGE(SKIP_WITHOUT_GPU_MESSAGE); return; }
    size_t n = 3 * 37 * 1001;
    std::vector<float> dout = random_vector(n, 52), db0 = random_vector(n, 54), db(db0);
    float *d_dout = to_device(dout), *d_db = to_device(db0);
    residual_backward_cuda(NULL, d_db, d_dout, n);
    residual_backward_cpu(NULL, db.data(), dout.data(), n);
    check_bitwise("residual db, da NULL", to_host(d_db, n), db);
    for (float* p : {d_dout, d_db}) cudaCheck(cudaFree(p));
}

TEST_CASE("gpu: crossentropy gives the padded logits zero gradient, and its backward may write over the logits") {
    if (!gpu_available()) { MESSAGE(SKIP_WITHOUT_GPU_MESSAGE); return; }
    OpCase c = crossentropy_case(5, 50257, 50304, 1e4f);
    std::vector<std::vector<float>> h = op_case_inputs(c, 7, false);  // the gradient starts random: it is set
    std::vector<std::vector<float>> gpu = op_case_run(c, DEV_CUDA, {GEMM_CUBLAS, ATTENTION_SIMPLE}, h);
    size_t padding_nonzero = 0;
    for (int n = 0; n < 5; n++)
        for (int v = 50257; v < 50304; v++) padding_nonzero += gpu[4][(size_t)n * 50304 + v] != 0.0f;
    CHECK(padding_nonzero == 0);
    // in place, as the model runs it: dlogits written over the logits, the same bits as into a buffer of its own
    size_t N = 5, Vp = 50304;
    float *d_logits = to_device(h[0]), *d_dlosses = to_device(h[3]), *d_lse = to_device(gpu[2]);
    int* d_targets = to_device_int(c.ints[0]);
    crossentropy_backward_cuda(d_logits, d_dlosses, d_logits, d_lse, d_targets, (int)N, 50257, (int)Vp);
    check_bitwise("dlogits in place", to_host(d_logits, N * Vp), gpu[4]);
    for (float* p : {d_logits, d_dlosses, d_lse}) cudaCheck(cudaFree(p));
    cudaCheck(cudaFree(d_targets));
}

// ----------------------------------------------------------------------------------------------------
// the GPU matrix products

static const int GEMM_SHAPES[][3] = {{1, 1, 1}, {7, 13, 5}, {37, 70, 300}, {130, 33, 517}, {5, 1000, 3},
                                     {65, 64, 1025}};  // (M, N, K)

TEST_CASE("gpu: gemm_cuda (cuBLAS, FP32) equals gemm_cpu for every transpose, with and without accumulate") {
    if (!gpu_available()) { MESSAGE(SKIP_WITHOUT_GPU_MESSAGE); return; }
    for (auto& s : GEMM_SHAPES) {
        int M = s[0], N = s[1], K = s[2];
        std::vector<float> A = random_vector((size_t)M * K, 70), B = random_vector((size_t)K * N, 71),
                           C0 = random_vector((size_t)M * N, 72);
        float *d_A = to_device(A), *d_B = to_device(B);
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++)
                for (int acc = 0; acc < 2; acc++) {
                    CAPTURE(M); CAPTURE(N); CAPTURE(K); CAPTURE(ta); CAPTURE(tb); CAPTURE(acc);
                    std::vector<float> ref(C0);
                    gemm_cpu(ref.data(), A.data(), B.data(), M, N, K, ta, tb, acc);
                    float* d_C = to_device(C0);
                    gemm_cuda(GEMM_CUBLAS, d_C, d_A, d_B, M, N, K, ta, tb, acc);
                    check_close("gemm_cuda", to_host(d_C, ref.size()), ref, sum_tol(K));
                    cudaCheck(cudaFree(d_C));
                }
        cudaCheck(cudaFree(d_A));
        cudaCheck(cudaFree(d_B));
    }
}

// The teaching kernel against cuBLAS through the same call: every transpose, alpha and beta, a batch of 3
// sub-matrices (leading dimensions wider than the rows, gaps between the batch entries), and beta = 0 over
// an output full of NaN (BLAS never reads C then).
TEST_CASE("gpu: the teaching tiled GEMM equals cuBLAS (transposes, leading dimensions, batches, alpha, beta)") {
    if (!gpu_available()) { MESSAGE(SKIP_WITHOUT_GPU_MESSAGE); return; }
    for (auto& s : GEMM_SHAPES) {
        int M = s[0], N = s[1], K = s[2], batch = 3, pad = 3;
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++)
                for (int beta_zero = 0; beta_zero < 2; beta_zero++) {
                    CAPTURE(M); CAPTURE(N); CAPTURE(K); CAPTURE(ta); CAPTURE(tb); CAPTURE(beta_zero);
                    int lda = (ta ? M : K) + pad, ldb = (tb ? K : N) + pad, ldc = N + pad;
                    long long sa = (long long)(ta ? K : M) * lda + 5, sb = (long long)(tb ? N : K) * ldb + 7,
                              sc = (long long)M * ldc + 11;
                    std::vector<float> A = random_vector(sa * batch, 73), B = random_vector(sb * batch, 74),
                                       C0 = random_vector(sc * batch, 75);
                    if (beta_zero)
                        for (float& x : C0) x = NAN;
                    float alpha = 0.75f, beta = beta_zero ? 0.0f : -1.5f;
                    float *d_A = to_device(A), *d_B = to_device(B), *d_ref = to_device(C0), *d_got = to_device(C0);
                    gemm_batched_cuda(GEMM_CUBLAS, d_ref, d_A, d_B, M, N, K, ta, tb, alpha, beta, lda, ldb, ldc, sa,
                                      sb, sc, batch);
                    gemm_batched_cuda(GEMM_TILED, d_got, d_A, d_B, M, N, K, ta, tb, alpha, beta, lda, ldb, ldc, sa, sb,
                                      sc, batch);
                    std::vector<float> ref = to_host(d_ref, C0.size()), got = to_host(d_got, C0.size());
                    // only the products' entries: the padding and gaps must be left alone by both (NaN stays NaN)
                    std::vector<float> ref_in, got_in;
                    size_t touched_outside = 0;
                    for (size_t i = 0; i < ref.size(); i++) {
                        size_t in_batch = i % sc, row = in_batch / ldc, col = in_batch % ldc;
                        bool inside = (long long)i < sc * batch && row < (size_t)M && col < (size_t)N;
                        if (inside) {
                            ref_in.push_back(ref[i]);
                            got_in.push_back(got[i]);
                        } else {
                            touched_outside += memcmp(&got[i], &C0[i], sizeof(float)) != 0;
                        }
                    }
                    check_close("gemm_tiled vs cuBLAS", got_in, ref_in, 2 * sum_tol(K));
                    CHECK(touched_outside == 0);
                    for (float* p : {d_A, d_B, d_ref, d_got}) cudaCheck(cudaFree(p));
                }
    }
}

// ----------------------------------------------------------------------------------------------------
// 16-bit storage (model.h's gpt2_storage16: the GPU at bf16 precision with bf16 products)

// The LM head writes bf16 logits, the fused loss reads them and writes its gradient over them in bf16, and the head's
// backward reads that: against the same three steps in fp32 storage of bf16 values (the product's output rounded, the
// loss's gradient fp32, rounded by the bf16 products as they read it). The same numbers up to the order of each
// product's fp32 sums (cuBLAS may take other kernels for bf16 inputs than for fp32 ones); the CPU emulation runs both
// in one order, so there they are the same bits.
TEST_CASE("gpu: the LM head and the loss in 16-bit storage give what fp32 storage of bf16 values gives") {
    if (!gpu_available()) { MESSAGE(SKIP_WITHOUT_GPU_MESSAGE); return; }
    const int N = 37, C = 96, V = 1000, Vp = 1024;
    const float dloss = 1.0f / N;
    std::vector<float> inp = random_vector((size_t)N * C, 81, 2.0f), w = random_vector((size_t)Vp * C, 82, 0.5f);
    for (float& x : inp) x = bf16_round(x);  // the layers' inputs and weights are bf16 values at bf16 precision
    for (float& x : w) x = bf16_round(x);
    std::vector<int> targets(N);
    for (int n = 0; n < N; n++) targets[n] = (n * 131) % V;
    std::vector<float> dinp0 = random_vector((size_t)N * C, 83), dw0 = random_vector((size_t)Vp * C, 84);
    int* d_targets = to_device_int(targets);

    // fp32 storage: matmul()'s and crossentropy()'s kernels, as the model runs them at --matmul fp32 storage
    float *d_inp = to_device(inp), *d_w = to_device(w), *d_logits = to_device(std::vector<float>((size_t)N * Vp));
    float *d_losses = to_device(std::vector<float>(N)), *d_lse = to_device(std::vector<float>(N));
    float *d_dinp = to_device(dinp0), *d_dw = to_device(dw0);
    matmul_forward_cuda(GEMM_CUBLAS_BF16, d_logits, d_inp, d_w, NULL, N, C, Vp, true);
    std::vector<float> logits_ref = to_host(d_logits, (size_t)N * Vp);
    crossentropy_forward_cuda(d_losses, d_lse, d_logits, d_targets, N, V, Vp, d_logits, dloss, true);
    std::vector<float> dlogits_ref = to_host(d_logits, (size_t)N * Vp);
    matmul_backward_cuda(GEMM_CUBLAS_BF16, d_dinp, d_dw, NULL, d_logits, d_inp, d_w, N, C, Vp);

    // 16-bit storage: the ops as the model calls them, on tensors whose logits are bf16 storage alone
    Tensor logits, x, weight, losses, lse;
    for (Tensor* t : {&logits, &x, &weight, &losses, &lse}) {
        memset(t, 0, sizeof(*t));
        t->device = DEV_CUDA;
    }
    logits.data16 = device_bf16((size_t)N * Vp);
    x.data16 = device_bf16((size_t)N * C);  // the input in 16-bit storage (its values are bf16's)
    device_to_bf16(DEV_CUDA, x.data16, d_inp, (size_t)N * C);
    x.grad = to_device(dinp0);
    weight.data16 = device_bf16((size_t)Vp * C);
    weight.grad = to_device(dw0);
    device_to_bf16(DEV_CUDA, weight.data16, d_w, (size_t)Vp * C);
    losses.data = to_device(std::vector<float>(N));
    lse.data = to_device(std::vector<float>(N));
    Tape tape;
    tape_init(&tape, 4);
    const Kernels k = Kernels{GEMM_CUBLAS_BF16, ATTENTION_FLASH, PRECISION_BF16};
    matmul(&tape, k, &logits, &x, &weight, NULL, N, C, Vp);  // x in 16 bits: matmul_bf16
    CHECK(logits.data == NULL);
    std::vector<float> logits16 = bf16_to_host(logits.data16, (size_t)N * Vp);
    crossentropy(&tape, &losses, &lse, &logits, d_targets, N, V, Vp, dloss, true);  // fused: records nothing
    REQUIRE(tape.count == 1);
    std::vector<float> dlogits16 = bf16_to_host(logits.data16, (size_t)N * Vp);
    tape_backward(&tape);

    std::vector<float> dlogits_rounded(dlogits_ref);
    for (float& g : dlogits_rounded) g = bf16_round(g);
    // a bf16 step is 2^-8 relative: entries rounded the other way after a differently ordered sum differ by one
    check_close("logits", logits16, logits_ref, 1e-2);
    check_close("losses", to_host(losses.data, N), to_host(d_losses, N), 1e-3);
    check_close("lse", to_host(lse.data, N), to_host(d_lse, N), 1e-3);
    check_close("dlogits (bf16)", dlogits16, dlogits_rounded, 1e-2);
    check_close("dinp", to_host(x.grad, (size_t)N * C), to_host(d_dinp, (size_t)N * C), 1e-2);
    check_close("dweight", to_host(weight.grad, (size_t)Vp * C), to_host(d_dw, (size_t)Vp * C), 1e-2);
    size_t same = 0;  // the emulation's single order: every bit equal (reported; hardware may differ by a rounding)
    std::vector<float> g16 = to_host(weight.grad, (size_t)Vp * C), g32 = to_host(d_dw, (size_t)Vp * C);
    for (size_t i = 0; i < g16.size(); i++) same += g16[i] == g32[i];
    MESSAGE("16-bit storage: " << same << " of " << g16.size() << " dweight entries the same bits as fp32 storage's");
    CHECK(not_bf16(logits16.data(), logits16.size()) == 0);
    tape_free(&tape);
    for (bfloat16* p : {logits.data16, x.data16, weight.data16}) cudaCheck(cudaFree(p));
    for (float* p : {d_inp, d_w, d_logits, d_losses, d_lse, d_dinp, d_dw, x.grad, weight.grad, losses.data, lse.data})
        cudaCheck(cudaFree(p));
    cudaCheck(cudaFree(d_targets));
}

// The MLP in 16-bit storage: fc writes its hidden layer in bf16 (the sums starting from the bias), GELU reads and
// writes bf16, fcproj reads it and writes fp32 storage of bf16 values; the backward rounds each product's fp32 output
// gradient into a bf16 scratch. Against matmul()'s and gelu()'s kernels at bf16 products on fp32 storage of bf16
// values: the same numbers up to the order of the fp32 sums (the emulation: the same bits; the bias gradients sum
// dout's bf16 values either way, in the weight gradient's epilogue or the column-sum kernel). Gradient buffers start
// random: the backwards add.
TEST_CASE("gpu: the MLP in 16-bit storage (fc, GELU, fcproj) gives what fp32 storage of bf16 values gives") {
    if (!gpu_available()) { MESSAGE(SKIP_WITHOUT_GPU_MESSAGE); return; }
    const int N = 37, C = 64, H = 4 * C;
    auto bf16_values = [](size_t n, uint64_t seed, float scale) {
        std::vector<float> v = random_vector(n, seed, scale);
        for (float& x : v) x = bf16_round(x);
        return v;
    };
    std::vector<float> ln2 = bf16_values((size_t)N * C, 91, 1.0f), fcw = bf16_values((size_t)H * C, 92, 0.2f),
                       fcb = bf16_values(H, 93, 0.1f), fcprojw = bf16_values((size_t)C * H, 94, 0.1f),
                       fcprojb = bf16_values(C, 95, 0.1f), dout = random_vector((size_t)N * C, 96);
    std::vector<float> dln2_0 = random_vector((size_t)N * C, 97), dfcw_0 = random_vector((size_t)H * C, 98),
                       dfcb_0 = random_vector(H, 99), dfcprojw_0 = random_vector((size_t)C * H, 100),
                       dfcprojb_0 = random_vector(C, 101), dfch_0 = random_vector((size_t)N * H, 102),
                       dg_0 = random_vector((size_t)N * H, 103), zeros_h((size_t)N * H, 0.0f), zeros_c((size_t)N * C, 0.0f);

    // 16-bit storage, through the ops as the model calls them: GELU in the epilogues of fc's product (forward) and
    // fcproj's (backward: fch's gradient in bf16), cuBLASLt's; or the products (the bias in fc's epilogue) and the GELU
    // op between them
    for (bool gelu_in_product : {true, false}) {
        CAPTURE(gelu_in_product);
        // fp32 storage of bf16 values
        float *d_ln2 = to_device(ln2), *d_fcw = to_device(fcw), *d_fcb = to_device(fcb), *d_fcprojw = to_device(fcprojw),
              *d_fcprojb = to_device(fcprojb), *d_dout = to_device(dout);
        float *d_fch = to_device(zeros_h), *d_g = to_device(zeros_h), *d_out = to_device(zeros_c);
        // (GELU in the epilogues writes fch's gradient whole, in bf16, and fch_gelu's is never stored: from zero here)
        float *d_dg = to_device(gelu_in_product ? zeros_h : dg_0), *d_dfch = to_device(gelu_in_product ? zeros_h : dfch_0),
              *d_dln2 = to_device(dln2_0),
              *d_dfcw = to_device(dfcw_0), *d_dfcb = to_device(dfcb_0), *d_dfcprojw = to_device(dfcprojw_0),
              *d_dfcprojb = to_device(dfcprojb_0);
        // GELU in the product's epilogue reads the fp32 sum, not fch's bf16 value: the same here
        matmul_forward_cuda(GEMM_CUBLAS_BF16, d_fch, d_ln2, d_fcw, d_fcb, N, C, H, !gelu_in_product);
        gelu_forward_cuda(d_g, d_fch, (size_t)N * H, true);
        if (gelu_in_product) device_round_bf16(DEV_CUDA, d_fch, d_fch, (size_t)N * H);
        matmul_forward_cuda(GEMM_CUBLAS_BF16, d_out, d_g, d_fcprojw, d_fcprojb, N, H, C, true);
        matmul_backward_cuda(GEMM_CUBLAS_BF16, d_dg, d_dfcprojw, d_dfcprojb, d_dout, d_g, d_fcprojw, N, H, C, true);
        gelu_backward_cuda(d_dfch, d_fch, d_dg, (size_t)N * H);
        matmul_backward_cuda(GEMM_CUBLAS_BF16, d_dln2, d_dfcw, d_dfcb, d_dfch, d_ln2, d_fcw, N, C, H, true);

        Tensor x = bf16_tensor(NULL, device_bf16((size_t)N * C), to_device(dln2_0));  // ln2 in 16-bit storage
        Tensor w1 = bf16_tensor(NULL, device_bf16((size_t)H * C), to_device(dfcw_0));
        Tensor b1 = bf16_tensor(d_fcb, device_bf16(H), to_device(dfcb_0));
        Tensor w2 = bf16_tensor(NULL, device_bf16((size_t)C * H), to_device(dfcprojw_0));
        Tensor b2 = bf16_tensor(d_fcprojb, NULL, to_device(dfcprojb_0));
        Tensor h = bf16_tensor(NULL, device_bf16((size_t)N * H), gelu_in_product ? NULL : to_device(dfch_0));
        Tensor g = bf16_tensor(NULL, device_bf16((size_t)N * H), gelu_in_product ? NULL : to_device(dg_0));
        if (gelu_in_product) h.grad16 = device_bf16((size_t)N * H);  // GELU's input's gradient, as the model has it
        Tensor out = bf16_tensor(to_device(zeros_c), NULL, to_device(dout));
        Tensor scratch = bf16_tensor(NULL, device_bf16((size_t)N * H), NULL);
        device_to_bf16(DEV_CUDA, x.data16, d_ln2, (size_t)N * C);
        device_to_bf16(DEV_CUDA, w1.data16, d_fcw, (size_t)H * C);
        device_to_bf16(DEV_CUDA, b1.data16, d_fcb, H);
        device_to_bf16(DEV_CUDA, w2.data16, d_fcprojw, (size_t)C * H);
        Tape tape;
        tape_init(&tape, 4);
        const Kernels k = Kernels{GEMM_CUBLAS_BF16, ATTENTION_FLASH, PRECISION_BF16};
        matmul(&tape, k, &h, &x, &w1, &b1, N, C, H, &scratch, gelu_in_product ? &g : NULL);  // x in 16 bits: matmul_bf16
        if (!gelu_in_product) gelu(&tape, &g, &h, N, H);
        matmul(&tape, k, &out, &g, &w2, &b2, N, H, C, &scratch, NULL, gelu_in_product ? &h : NULL);
        std::vector<float> h16 = bf16_to_host(h.data16, (size_t)N * H), g16 = bf16_to_host(g.data16, (size_t)N * H);
        tape_backward(&tape);

        // a bf16 step is 2^-8 relative (4e-3 of |ref| + rms): stored values rounded the other way after a differently
        // ordered sum (or GELU computed otherwise: cuBLASLt's own) differ by one; the fp32 gradients carry such a
        // difference through the products
        check_close("fch (bf16)", h16, to_host(d_fch, (size_t)N * H), 4e-3);
        check_close("fch_gelu (bf16)", g16, to_host(d_g, (size_t)N * H), 4e-3);
        std::vector<float> out16 = to_host(out.data, (size_t)N * C);
        check_close("fcproj", out16, to_host(d_out, (size_t)N * C), 4e-3);
        CHECK(not_bf16(out16.data(), out16.size()) == 0);
        size_t same = 0, total = 0;
        const char* names[] = {"dln2", "dfcw", "dfcb", "dfcprojw", "dfcprojb", "dfch", "dfch_gelu"};
        float* ours[] = {x.grad, w1.grad, b1.grad, w2.grad, b2.grad, h.grad, g.grad};
        float* refs[] = {d_dln2, d_dfcw, d_dfcb, d_dfcprojw, d_dfcprojb, d_dfch, d_dg};
        size_t sizes[] = {(size_t)N * C, (size_t)H * C, (size_t)H, (size_t)C * H, (size_t)C, (size_t)N * H, (size_t)N * H};
        if (gelu_in_product) {  // fch's gradient in bf16, rounded once as it is stored: within one bf16 step
            std::vector<float> dh16 = bf16_to_host(h.grad16, (size_t)N * H), ref = to_host(d_dfch, (size_t)N * H);
            check_close("dfch (bf16)", dh16, ref, 4e-3);
            for (size_t j = 0; j < ref.size(); j++) same += dh16[j] == bf16_round(ref[j]);
            total += ref.size();
        }
        for (int i = 0; i < (gelu_in_product ? 5 : 7); i++) {
            std::vector<float> a = to_host(ours[i], sizes[i]), r = to_host(refs[i], sizes[i]);
            check_close(names[i], a, r, 1e-2);
            for (size_t j = 0; j < a.size(); j++) same += a[j] == r[j];
            total += a.size();
        }
        size_t same_h = 0, same_g = 0;
        std::vector<float> ref_h = to_host(d_fch, (size_t)N * H), ref_g = to_host(d_g, (size_t)N * H);
        for (size_t j = 0; j < h16.size(); j++) same_h += h16[j] == ref_h[j], same_g += g16[j] == ref_g[j];
        MESSAGE("the MLP in 16-bit storage, GELU " << std::string(gelu_in_product ? "in the products' epilogues" : "by its kernel")
                << ": fch " << same_h << " and fch_gelu " << same_g << " of " << h16.size() << " values, " << same
                << " of " << total << " gradient entries the same bits as fp32 storage's");
        tape_free(&tape);
        for (float* p : {x.grad, w1.grad, b1.grad, w2.grad, b2.grad, h.grad, g.grad, out.data, out.grad})
            if (p) cudaCheck(cudaFree(p));
        for (bfloat16* p : {x.data16, w1.data16, b1.data16, w2.data16, h.data16, g.data16, scratch.data16, h.grad16})
            if (p) cudaCheck(cudaFree(p));
        for (float* p : {d_ln2, d_fcw, d_fcb, d_fcprojw, d_fcprojb, d_dout, d_fch, d_g, d_out, d_dg, d_dfch, d_dln2,
                         d_dfcw, d_dfcb, d_dfcprojw, d_dfcprojb})
            cudaCheck(cudaFree(p));
    }
}

// The layernorms write their output in 16-bit storage (the products its only readers): the same values as fp32
// storage of bf16 values, bit for bit (the same kernel; only the store differs), alone and fused with the residual add.
TEST_CASE("gpu: layernorm's output (and the fused add's addend) in 16-bit storage: fp32 storage's bits") {
    if (!gpu_available()) { MESSAGE(SKIP_WITHOUT_GPU_MESSAGE); return; }
    const int N = 37, C = 200;
    std::vector<float> a = random_vector((size_t)N * C, 111, 2.0f), b = random_vector((size_t)N * C, 112),
                       w = random_vector(C, 113), bias = random_vector(C, 114), zeros((size_t)N * C, 0.0f);
    float *d_a = to_device(a), *d_b = to_device(b), *d_w = to_device(w), *d_bias = to_device(bias);
    float *d_out = to_device(zeros), *d_sum = to_device(zeros), *d_mean = to_device(zeros), *d_rstd = to_device(zeros);
    bfloat16* d_out16 = device_bf16((size_t)N * C);
    for (bool fused : {false, true}) {
        CAPTURE(fused);
        if (fused) residual_layernorm_forward(DEV_CUDA, d_sum, d_out, d_mean, d_rstd, d_a, d_b, d_w, d_bias, N, C, true);
        else layernorm_forward(DEV_CUDA, d_out, d_mean, d_rstd, d_a, d_w, d_bias, N, C, true);
        std::vector<float> ref = to_host(d_out, (size_t)N * C), mean = to_host(d_mean, N);
        if (fused)
            residual_layernorm_forward(DEV_CUDA, d_sum, NULL, d_mean, d_rstd, d_a, d_b, d_w, d_bias, N, C, true, d_out16);
        else
            layernorm_forward(DEV_CUDA, NULL, d_mean, d_rstd, d_a, d_w, d_bias, N, C, true, d_out16);
        check_bitwise("layernorm output", bf16_to_host(d_out16, (size_t)N * C), ref);
        check_bitwise("mean", to_host(d_mean, N), mean);
    }
    // the addend in 16-bit storage (fcproj's output): the same bits as the same bf16 values in fp32 storage
    std::vector<float> b_rounded(b);
    for (float& x : b_rounded) x = bf16_round(x);
    float* d_b_rounded = to_device(b_rounded);
    bfloat16* d_b16 = bf16_to_device(b);
    residual_layernorm_forward(DEV_CUDA, d_sum, d_out, d_mean, d_rstd, d_a, d_b_rounded, d_w, d_bias, N, C, true);
    std::vector<float> ref_out = to_host(d_out, (size_t)N * C), ref_sum = to_host(d_sum, (size_t)N * C);
    residual_layernorm_forward(DEV_CUDA, d_sum, NULL, d_mean, d_rstd, d_a, NULL, d_w, d_bias, N, C, true, d_out16, d_b16);
    check_bitwise("layernorm output, the addend in 16 bits", bf16_to_host(d_out16, (size_t)N * C), ref_out);
    check_bitwise("the sum, the addend in 16 bits", to_host(d_sum, (size_t)N * C), ref_sum);
    for (float* p : {d_a, d_b, d_w, d_bias, d_out, d_sum, d_mean, d_rstd, d_b_rounded}) cudaCheck(cudaFree(p));
    for (bfloat16* p : {d_out16, d_b16}) cudaCheck(cudaFree(p));
}

// The residual stream in 16-bit storage (model.h's gpt2_storage16): the embedding writes it (reading wte's 16-bit
// copy, or its fp32 one), layernorm reads it, the
// fused add + layernorm reads one stream and writes the next, and their backwards read it for x̂. Against the same
// bf16 values in fp32 storage: the same kernels, only the loads and stores differ, so every output and gradient is
// the same bits (C 200: the embedding's float4 kernel; C 67: its scalar one).
TEST_CASE("gpu: the residual stream in 16-bit storage (embedding, layernorm alone and fused, both ways): fp32 storage's bits") {
    if (!gpu_available()) { MESSAGE(SKIP_WITHOUT_GPU_MESSAGE); return; }
    for (int C : {200, 67}) {
        CAPTURE(C);
        const int B = 3, T = 13, N = B * T, Vp = 64;
        std::vector<int> ids(N);
        for (int n = 0; n < N; n++) ids[n] = (n * 37 + 5) % Vp;
        std::vector<float> wte = random_vector((size_t)Vp * C, 121), wpe = random_vector((size_t)T * C, 122);
        std::vector<float> a = random_vector((size_t)N * C, 123, 2.0f), b = random_vector((size_t)N * C, 124);
        std::vector<float> w = random_vector(C, 125), bias = random_vector(C, 126), dout = random_vector((size_t)N * C, 127);
        std::vector<float> dsum = random_vector((size_t)N * C, 128), zeros((size_t)N * C, 0.0f), small(C, 0.0f);
        for (std::vector<float>* v : {&a, &b, &wte})
            for (float& x : *v) x = bf16_round(x);  // the stream, the block's output and the table hold bf16 values
        int* d_ids = to_device_int(ids);
        float *d_wte = to_device(wte), *d_wpe = to_device(wpe), *d_a = to_device(a), *d_b = to_device(b);
        float *d_w = to_device(w), *d_bias = to_device(bias), *d_dout = to_device(dout), *d_dsum = to_device(dsum);
        float *d_enc = to_device(zeros), *d_out = to_device(zeros), *d_sum = to_device(zeros);
        float *d_mean = to_device(zeros), *d_rstd = to_device(zeros);
        bfloat16 *d_enc16 = device_bf16((size_t)N * C), *d_a16 = bf16_to_device(a), *d_b16 = bf16_to_device(b);
        bfloat16 *d_sum16 = device_bf16((size_t)N * C), *d_out16 = device_bf16((size_t)N * C);

        embedding_forward(DEV_CUDA, d_enc, d_ids, d_wte, d_wpe, B, T, C, true);
        embedding_forward(DEV_CUDA, NULL, d_ids, d_wte, d_wpe, B, T, C, true, d_enc16);
        check_bitwise("the embedding's output", bf16_to_host(d_enc16, (size_t)N * C), to_host(d_enc, (size_t)N * C));
        bfloat16 *d_wte16 = bf16_to_device(wte), *d_enc16_b = device_bf16((size_t)N * C);  // the table in 16 bits
        embedding_forward(DEV_CUDA, NULL, d_ids, NULL, d_wpe, B, T, C, true, d_enc16_b, d_wte16);
        check_bitwise("the embedding's output from wte in 16-bit storage", bf16_to_host(d_enc16_b, (size_t)N * C),
                      to_host(d_enc, (size_t)N * C));
        cudaCheck(cudaFree(d_wte16));
        cudaCheck(cudaFree(d_enc16_b));

        // each side's forward then backward: out, mean, rstd, and every gradient, as host vectors
        auto run = [&](bool stored16, bool fused) {
            std::vector<std::vector<float>> got;
            float *d_da = to_device(zeros), *d_db = to_device(zeros), *d_dw = to_device(small), *d_dbias = to_device(small);
            if (fused) {
                residual_layernorm_forward(DEV_CUDA, stored16 ? NULL : d_sum, NULL, d_mean, d_rstd, stored16 ? NULL : d_a,
                                           NULL, d_w, d_bias, N, C, true, d_out16, d_b16, stored16 ? d_a16 : NULL,
                                           stored16 ? d_sum16 : NULL);
                got.push_back(stored16 ? bf16_to_host(d_sum16, (size_t)N * C) : to_host(d_sum, (size_t)N * C));
                residual_layernorm_backward(DEV_CUDA, d_da, d_db, d_dw, d_dbias, d_dsum, d_dout, stored16 ? NULL : d_sum,
                                            d_w, d_mean, d_rstd, N, C, stored16 ? d_sum16 : NULL);
            } else {
                layernorm_forward(DEV_CUDA, NULL, d_mean, d_rstd, stored16 ? NULL : d_a, d_w, d_bias, N, C, true, d_out16,
                                  stored16 ? d_a16 : NULL);
                layernorm_backward(DEV_CUDA, d_da, d_dw, d_dbias, d_dout, stored16 ? NULL : d_a, d_w, d_mean, d_rstd, N, C,
                                   stored16 ? d_a16 : NULL);
            }
            got.push_back(bf16_to_host(d_out16, (size_t)N * C));
            for (float* p : {d_mean, d_rstd}) got.push_back(to_host(p, N));
            for (float* p : {d_da, d_db}) got.push_back(to_host(p, (size_t)N * C));
            for (float* p : {d_dw, d_dbias}) got.push_back(to_host(p, C));
            for (float* p : {d_da, d_db, d_dw, d_dbias}) cudaCheck(cudaFree(p));
            return got;
        };
        for (bool fused : {false, true}) {
            CAPTURE(fused);
            std::vector<std::vector<float>> ref = run(false, fused), got = run(true, fused);
            REQUIRE(got.size() == ref.size());
            for (size_t i = 0; i < ref.size(); i++) {
                CAPTURE(i);
                check_bitwise("layernorm on the stream in 16 bits", got[i], ref[i]);
            }
            CHECK(not_bf16(got[0].data(), got[0].size()) == 0);
        }
        cudaCheck(cudaFree(d_ids));
        for (float* p : {d_wte, d_wpe, d_a, d_b, d_w, d_bias, d_dout, d_dsum, d_enc, d_out, d_sum, d_mean, d_rstd})
            cudaCheck(cudaFree(p));
        for (bfloat16* p : {d_enc16, d_a16, d_b16, d_sum16, d_out16}) cudaCheck(cudaFree(p));
    }
}

// A layer's bias gradient from its weight gradient's product (gemm.h's gemm_lt_row_sums_cuda, cuBLASLt's BGRADB):
// Cm += op(A)·op(B) as gemm_bf16_cuda computes it (the emulation: the same bits), and the row sums of op(A) written
// over `sums`, against sums in double of the same bf16 values. Both of A's layouts: dW = doutᵀ · inp reads dout
// transposed. Where a GPU's cuBLASLt offers no such algorithm, the call computes nothing and says so (the layer
// then runs the product and its column-sum kernel: matmul_bf16's backward).
TEST_CASE("gpu: the bias gradient in the weight gradient's epilogue: the product, and op(A)'s row sums") {
    if (!gpu_available()) { MESSAGE(SKIP_WITHOUT_GPU_MESSAGE); return; }
    const int M = 24, N = 40, K = 37;
    for (bool trans_a : {true, false}) {
        CAPTURE(trans_a);
        std::vector<float> a = random_vector((size_t)M * K, 131), b = random_vector((size_t)K * N, 132);
        std::vector<float> c0 = random_vector((size_t)M * N, 133), sums0 = random_vector(M, 134);
        for (std::vector<float>* v : {&a, &b})
            for (float& x : *v) x = bf16_round(x);
        bfloat16 *d_a = bf16_to_device(a), *d_b = bf16_to_device(b);
        float *d_c = to_device(c0), *d_ref = to_device(c0), *d_sums = to_device(sums0);
        bool offered = gemm_lt_row_sums_cuda(d_c, d_sums, d_a, d_b, M, N, K, trans_a, false);
        gemm_bf16_cuda(d_ref, d_a, d_b, M, N, K, trans_a, false, true);
        std::vector<float> got = to_host(d_c, (size_t)M * N), sums = to_host(d_sums, M);
        if (!offered) {
            MESSAGE("cuBLASLt offers no BGRADB algorithm here: the layers use the column-sum kernel");
            check_bitwise("nothing computed", got, c0);
        } else {
            check_close("Cm += op(A)·op(B)", got, to_host(d_ref, (size_t)M * N), 1e-5);
            std::vector<float> ref(M);
            for (int i = 0; i < M; i++) {
                double s = 0.0;
                for (int k = 0; k < K; k++) s += a[trans_a ? (size_t)k * M + i : (size_t)i * K + k];
                ref[i] = (float)s;
            }
            check_close("row sums of op(A)", sums, ref, 1e-5);
        }
        for (bfloat16* p : {d_a, d_b}) cudaCheck(cudaFree(p));
        for (float* p : {d_c, d_ref, d_sums}) cudaCheck(cudaFree(p));
    }
}
