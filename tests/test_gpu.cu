// tests/test_gpu.cu: every op's CUDA forward and backward against its CPU reference (ops/*.h), on random
// inputs of awkward shapes (not multiples of 32, T = 1, rows of 1000+ channels, GPT-2's 50257/50304
// vocabulary); every op run twice on the GPU must give the same bits (determinism); the GPU GEMMs (cuBLAS
// and the teaching kernel) against gemm_cpu. Built by nvcc; each test skips, visibly, without a GPU.
// Gradient buffers start from random values, not zero, so the tests also check that backwards add (+=).
//
// Tolerances. Both sides compute in float32; they differ only in the order of additions (and where nvcc fuses
// a multiply-add). A sum of K terms of size ~1 carries a rounding error of about 6e-8·sqrt(K) of its typical
// size in any order, so an entry is compared as |gpu − cpu| <= tol·(|cpu| + rms(cpu)) (check_close) with
// tol = sum_tol(K) = 1e-6 + 2.4e-7·sqrt(K), four times that estimate, K the longest sum behind the entry.
// Ops that add in the same order on both sides (embedding, residual) must match bit for bit.
#include "gpu_testutil.h"
#include "../ops/attention.h"
#include "../ops/crossentropy.h"
#include "../ops/embedding.h"
#include "../ops/gelu.h"
#include "../ops/layernorm.h"
#include "../ops/matmul.h"
#include "../ops/residual.h"

static double sum_tol(double K) { return 1e-6 + 2.4e-7 * sqrt(K); }

#define SKIP_WITHOUT_GPU_MESSAGE "SKIPPED: no CUDA GPU found"

// The grouping of positions by token that the GPU's dwte backward reads (embedding_token_groups): every
// position once, token by token, increasing within a token, the largest group first.
TEST_CASE("embedding: positions grouped by token, largest group first, positions in order") {
    const int ids[] = {7, 3, 7, 0, 3, 7, 9, 3, 7};
    int N = 9, Vp = 16, counts[16], groups[27];
    int G = embedding_token_groups(ids, N, Vp, counts, groups);
    REQUIRE(G == 4);
    const int order[] = {3, 1, 4, 7, 0, 2, 5, 8, 6};  // token 0: {3}; 3: {1, 4, 7}; 7: {0, 2, 5, 8}; 9: {6}
    for (int k = 0; k < N; k++) CHECK(groups[k] == order[k]);
    const int spans[] = {4, 8, 1, 4, 0, 1, 8, 9};  // tokens 7, 3, then the singletons 0 and 9 in token order
    for (int k = 0; k < 2 * G; k++) CHECK(groups[N + k] == spans[k]);
}

TEST_CASE("gpu: embedding forward and backward equal the CPU bit for bit (repeated tokens, Vp = 50304)") {
    if (!gpu_available()) { MESSAGE(SKIP_WITHOUT_GPU_MESSAGE); return; }
    // (B, T, C, Vp): GPT-2's padded vocabulary with short rows; long rows with a small vocabulary; a batch in
    // which one token fills half the positions (1024 times, as the newline does in a batch of real text)
    const int shapes[][4] = {{3, 37, 67, 50304}, {2, 1, 1001, 97}, {4, 33, 768, 60}, {16, 128, 768, 50304}};
    for (auto& s : shapes) {
        int B = s[0], T = s[1], C = s[2], Vp = s[3], N = B * T;
        CAPTURE(B); CAPTURE(T); CAPTURE(C); CAPTURE(Vp);
        std::vector<int> ids(N);
        Rng rng = rng_make(100 + C);
        for (int i = 0; i < N; i++)  // half the positions from 5 tokens (or from one): many repeats, in any order
            ids[i] = N > 1000 && i % 2 ? 198 : (int)(rng_u32(&rng) % (i % 2 ? 5u : (unsigned)Vp));
        std::vector<int> counts(Vp), groups(3 * N);
        int G = embedding_token_groups(ids.data(), N, Vp, counts.data(), groups.data());
        std::vector<float> wte = random_vector((size_t)Vp * C, 1), wpe = random_vector((size_t)T * C, 2),
                           dout = random_vector((size_t)N * C, 3), dwte0 = random_vector((size_t)Vp * C, 4),
                           dwpe0 = random_vector((size_t)T * C, 5);
        std::vector<float> out((size_t)N * C), dwte(dwte0), dwpe(dwpe0);
        embedding_forward_cpu(out.data(), ids.data(), wte.data(), wpe.data(), B, T, C);
        embedding_backward_cpu(dwte.data(), dwpe.data(), dout.data(), ids.data(), B, T, C);
        std::vector<float> g_out[2], g_dwte[2], g_dwpe[2];
        for (int run = 0; run < 2; run++) {
            int *d_ids = to_device_int(ids), *d_groups = to_device_int(groups);
            float *d_wte = to_device(wte), *d_wpe = to_device(wpe), *d_dout = to_device(dout),
                  *d_dwte = to_device(dwte0), *d_dwpe = to_device(dwpe0), *d_out = to_device(out);
            embedding_forward_cuda(d_out, d_ids, d_wte, d_wpe, B, T, C);
            embedding_backward_cuda(d_dwte, d_dwpe, d_dout, d_ids, d_groups, G, B, T, C);
            g_out[run] = to_host(d_out, out.size());
            g_dwte[run] = to_host(d_dwte, dwte.size());
            g_dwpe[run] = to_host(d_dwpe, dwpe.size());
            for (void* p : {(void*)d_ids, (void*)d_groups, (void*)d_wte, (void*)d_wpe, (void*)d_dout, (void*)d_dwte, (void*)d_dwpe,
                            (void*)d_out})
                cudaCheck(cudaFree(p));
        }
        // the same additions in the same order as the CPU (see embedding_backward_wte_kernel): the same bits
        check_bitwise("embedding out", g_out[0], out);
        check_bitwise("embedding dwte", g_dwte[0], dwte);
        check_bitwise("embedding dwpe", g_dwpe[0], dwpe);
        check_bitwise("embedding dwte, second run", g_dwte[1], g_dwte[0]);
    }
}

TEST_CASE("gpu: layernorm forward and backward match the CPU (C = 7, 768, 1001; N = 1, 74, 130)") {
    if (!gpu_available()) { MESSAGE(SKIP_WITHOUT_GPU_MESSAGE); return; }
    const int shapes[][2] = {{1, 7}, {74, 1001}, {130, 768}, {37, 33}};
    for (auto& s : shapes) {
        int N = s[0], C = s[1];
        CAPTURE(N); CAPTURE(C);
        std::vector<float> inp = random_vector((size_t)N * C, 10, 2.0f), w = random_vector(C, 11),
                           b = random_vector(C, 12), dout = random_vector((size_t)N * C, 13),
                           dinp0 = random_vector((size_t)N * C, 14), dw0 = random_vector(C, 15),
                           db0 = random_vector(C, 16);
        for (size_t i = 0; i < inp.size(); i++) inp[i] += 3.0f;  // a mean far from zero, as in a residual stream
        std::vector<float> out((size_t)N * C), mean(N), rstd(N), dinp(dinp0), dw(dw0), db(db0);
        layernorm_forward_cpu(out.data(), mean.data(), rstd.data(), inp.data(), w.data(), b.data(), N, C);
        layernorm_backward_cpu(dinp.data(), dw.data(), db.data(), dout.data(), inp.data(), w.data(), mean.data(),
                               rstd.data(), N, C);
        std::vector<float> g[2][6];
        for (int run = 0; run < 2; run++) {
            float *d_inp = to_device(inp), *d_w = to_device(w), *d_b = to_device(b), *d_dout = to_device(dout),
                  *d_out = to_device(out), *d_mean = to_device(mean), *d_rstd = to_device(rstd),
                  *d_dinp = to_device(dinp0), *d_dw = to_device(dw0), *d_db = to_device(db0);
            layernorm_forward_cuda(d_out, d_mean, d_rstd, d_inp, d_w, d_b, N, C);
            layernorm_backward_cuda(d_dinp, d_dw, d_db, d_dout, d_inp, d_w, d_mean, d_rstd, N, C);
            g[run][0] = to_host(d_out, out.size());
            g[run][1] = to_host(d_mean, N);
            g[run][2] = to_host(d_rstd, N);
            g[run][3] = to_host(d_dinp, dinp.size());
            g[run][4] = to_host(d_dw, C);
            g[run][5] = to_host(d_db, C);
            for (float* p : {d_inp, d_w, d_b, d_dout, d_out, d_mean, d_rstd, d_dinp, d_dw, d_db}) cudaCheck(cudaFree(p));
        }
        // x̂ passes through two sums over C (mean, variance), dx through two more; dw and db sum over N rows
        double tol_row = 2 * sum_tol(C), tol_col = 2 * sum_tol(N);
        check_close("layernorm out", g[0][0], out, tol_row);
        check_close("layernorm mean", g[0][1], mean, tol_row);
        check_close("layernorm rstd", g[0][2], rstd, tol_row);
        check_close("layernorm dinp", g[0][3], dinp, 2 * tol_row);
        check_close("layernorm dweight", g[0][4], dw, tol_col + tol_row);
        check_close("layernorm dbias", g[0][5], db, tol_col);
        for (int k = 0; k < 6; k++) check_bitwise("layernorm, second run", g[1][k], g[0][k]);
    }
}

TEST_CASE("gpu: matmul forward and backward match the CPU (with and without bias, OC = 50304)") {
    if (!gpu_available()) { MESSAGE(SKIP_WITHOUT_GPU_MESSAGE); return; }
    // (N, C, OC, bias?): awkward sizes, a 1 x 1 x 1 product, the tied LM head's shape (no bias)
    const int shapes[][4] = {{111, 1001, 67, 1}, {13, 48, 50304, 0}, {1, 1, 1, 1}, {65, 33, 129, 1}};
    for (auto& s : shapes) {
        int N = s[0], C = s[1], OC = s[2];
        bool has_bias = s[3];
        CAPTURE(N); CAPTURE(C); CAPTURE(OC);
        std::vector<float> inp = random_vector((size_t)N * C, 20), w = random_vector((size_t)OC * C, 21),
                           b = random_vector(OC, 22), dout = random_vector((size_t)N * OC, 23),
                           dinp0 = random_vector((size_t)N * C, 24), dw0 = random_vector((size_t)OC * C, 25),
                           db0 = random_vector(OC, 26);
        std::vector<float> out((size_t)N * OC), dinp(dinp0), dw(dw0), db(db0);
        matmul_forward_cpu(out.data(), inp.data(), w.data(), has_bias ? b.data() : NULL, N, C, OC);
        matmul_backward_cpu(dinp.data(), dw.data(), has_bias ? db.data() : NULL, dout.data(), inp.data(), w.data(), N,
                            C, OC);
        std::vector<float> g[2][4];
        for (int run = 0; run < 2; run++) {
            float *d_inp = to_device(inp), *d_w = to_device(w), *d_b = to_device(b), *d_dout = to_device(dout),
                  *d_out = to_device(out), *d_dinp = to_device(dinp0), *d_dw = to_device(dw0), *d_db = to_device(db0);
            matmul_forward_cuda(GEMM_CUBLAS, d_out, d_inp, d_w, has_bias ? d_b : NULL, N, C, OC);
            matmul_backward_cuda(GEMM_CUBLAS, d_dinp, d_dw, has_bias ? d_db : NULL, d_dout, d_inp, d_w, N, C, OC);
            g[run][0] = to_host(d_out, out.size());
            g[run][1] = to_host(d_dinp, dinp.size());
            g[run][2] = to_host(d_dw, dw.size());
            g[run][3] = to_host(d_db, OC);
            for (float* p : {d_inp, d_w, d_b, d_dout, d_out, d_dinp, d_dw, d_db}) cudaCheck(cudaFree(p));
        }
        check_close("matmul out", g[0][0], out, sum_tol(C));
        check_close("matmul dinp", g[0][1], dinp, sum_tol(OC));
        check_close("matmul dweight", g[0][2], dw, sum_tol(N));
        check_close("matmul dbias", g[0][3], db, sum_tol(N));  // without bias: both leave it as it was
        for (int k = 0; k < 4; k++) check_bitwise("matmul, second run", g[1][k], g[0][k]);
    }
}

TEST_CASE("gpu: attention forward and backward match the CPU (T = 1, 37, 67; head sizes 16 and 64)") {
    if (!gpu_available()) { MESSAGE(SKIP_WITHOUT_GPU_MESSAGE); return; }
    const int shapes[][4] = {{2, 1, 48, 3}, {2, 37, 48, 3}, {1, 67, 768, 12}, {3, 5, 12, 4}};  // (B, T, C, NH)
    for (auto& s : shapes) {
        int B = s[0], T = s[1], C = s[2], NH = s[3];
        CAPTURE(B); CAPTURE(T); CAPTURE(C); CAPTURE(NH);
        size_t n_qkv = (size_t)B * T * 3 * C, n_out = (size_t)B * T * C, n_att = (size_t)B * NH * T * T;
        std::vector<float> qkv = random_vector(n_qkv, 30), dout = random_vector(n_out, 31),
                           dqkv0 = random_vector(n_qkv, 32);
        std::vector<float> out(n_out), att(n_att), dqkv(dqkv0), scratch((size_t)B * NH * T);
        attention_forward_cpu(out.data(), att.data(), qkv.data(), B, T, C, NH);
        attention_backward_cpu(dqkv.data(), scratch.data(), dout.data(), qkv.data(), att.data(), B, T, C, NH);
        std::vector<float> g[2][3];
        for (int run = 0; run < 2; run++) {
            float *d_qkv = to_device(qkv), *d_dout = to_device(dout), *d_dqkv = to_device(dqkv0),
                  *d_out = to_device(out), *d_att = to_device(att), *d_scratch = to_device(att);  // (B, NH, T, T)
            attention_forward_cuda(GEMM_CUBLAS, d_out, d_att, d_qkv, B, T, C, NH);
            attention_backward_cuda(GEMM_CUBLAS, d_dqkv, d_scratch, d_dout, d_qkv, d_att, B, T, C, NH);
            g[run][0] = to_host(d_out, n_out);
            g[run][1] = to_host(d_att, n_att);
            g[run][2] = to_host(d_dqkv, n_qkv);
            for (float* p : {d_qkv, d_dout, d_dqkv, d_out, d_att, d_scratch}) cudaCheck(cudaFree(p));
        }
        // scores sum over HS, the softmax over T, the outputs over T again; the backward chains two more sums
        int HS = C / NH;
        double tol = sum_tol(HS) + 2 * sum_tol(T);
        check_close("attention out", g[0][0], out, tol);
        check_close("attention att", g[0][1], att, tol);
        check_close("attention dqkv", g[0][2], dqkv, 2 * tol);
        for (int k = 0; k < 3; k++) check_bitwise("attention, second run", g[1][k], g[0][k]);
    }
}

TEST_CASE("gpu: gelu forward and backward match the CPU") {
    if (!gpu_available()) { MESSAGE(SKIP_WITHOUT_GPU_MESSAGE); return; }
    size_t n = 37 * 1001;
    std::vector<float> inp = random_vector(n, 40, 3.0f), dout = random_vector(n, 41), dinp0 = random_vector(n, 42);
    std::vector<float> out(n), dinp(dinp0);
    gelu_forward_cpu(out.data(), inp.data(), n);
    gelu_backward_cpu(dinp.data(), inp.data(), dout.data(), n);
    std::vector<float> g[2][2];
    for (int run = 0; run < 2; run++) {
        float *d_inp = to_device(inp), *d_dout = to_device(dout), *d_out = to_device(out), *d_dinp = to_device(dinp0);
        gelu_forward_cuda(d_out, d_inp, n);
        gelu_backward_cuda(d_dinp, d_inp, d_dout, n);
        g[run][0] = to_host(d_out, n);
        g[run][1] = to_host(d_dinp, n);
        for (float* p : {d_inp, d_dout, d_out, d_dinp}) cudaCheck(cudaFree(p));
    }
    // no sums: CUDA's tanhf is within 2 ulp of the correctly rounded value (CUDA math documentation), glibc's
    // within 1-2, and a fused multiply-add rounds once instead of twice; 1 - tanh² near |tanh| = 1 cancels, but
    // that term is then multiplied by ~x³·e^(-2u), so the error stays ~1e-6 of dy/dx. 1e-5 leaves 10x.
    check_close("gelu out", g[0][0], out, 1e-5);
    check_close("gelu dinp", g[0][1], dinp, 1e-5);
    check_bitwise("gelu out, second run", g[1][0], g[0][0]);
    check_bitwise("gelu dinp, second run", g[1][1], g[0][1]);
}

TEST_CASE("gpu: residual forward and backward equal the CPU bit for bit") {
    if (!gpu_available()) { MESSAGE(SKIP_WITHOUT_GPU_MESSAGE); return; }
    size_t n = 3 * 37 * 1001;
    std::vector<float> a = random_vector(n, 50), b = random_vector(n, 51), dout = random_vector(n, 52),
                       da0 = random_vector(n, 53), db0 = random_vector(n, 54);
    std::vector<float> out(n), da(da0), db(db0);
    residual_forward_cpu(out.data(), a.data(), b.data(), n);
    residual_backward_cpu(da.data(), db.data(), dout.data(), n);
    float *d_a = to_device(a), *d_b = to_device(b), *d_dout = to_device(dout), *d_out = to_device(out),
          *d_da = to_device(da0), *d_db = to_device(db0);
    residual_forward_cuda(d_out, d_a, d_b, n);
    residual_backward_cuda(d_da, d_db, d_dout, n);
    check_bitwise("residual out", to_host(d_out, n), out);  // one addition each: nothing to reorder
    check_bitwise("residual da", to_host(d_da, n), da);
    check_bitwise("residual db", to_host(d_db, n), db);
    residual_backward_cuda(NULL, d_db, d_dout, n);  // a NULL gradient is skipped, as on the CPU
    residual_backward_cpu(NULL, db.data(), dout.data(), n);
    check_bitwise("residual db, da NULL", to_host(d_db, n), db);
    for (float* p : {d_a, d_b, d_dout, d_out, d_da, d_db}) cudaCheck(cudaFree(p));
}

TEST_CASE("gpu: crossentropy forward and backward match the CPU (V = 50257, Vp = 50304; padding untouched)") {
    if (!gpu_available()) { MESSAGE(SKIP_WITHOUT_GPU_MESSAGE); return; }
    const int shapes[][3] = {{5, 50257, 50304}, {37, 60, 64}, {1, 2, 2}};  // (N, V, Vp)
    for (auto& s : shapes) {
        int N = s[0], V = s[1], Vp = s[2];
        CAPTURE(N); CAPTURE(V);
        std::vector<float> logits = random_vector((size_t)N * Vp, 60, 2.0f), dlosses = random_vector(N, 61),
                           dlogits0 = random_vector((size_t)N * Vp, 62);
        for (int n = 0; n < N; n++)  // padded logits larger than any real one: they must still take no part
            for (int v = V; v < Vp; v++) logits[(size_t)n * Vp + v] = 1e4f;
        std::vector<int> targets(N);
        Rng rng = rng_make(63);
        for (int n = 0; n < N; n++) targets[n] = (int)(rng_u32(&rng) % V);
        std::vector<float> losses(N), lse(N), dlogits(dlogits0);
        crossentropy_forward_cpu(losses.data(), lse.data(), logits.data(), targets.data(), N, V, Vp);
        crossentropy_backward_cpu(dlogits.data(), dlosses.data(), logits.data(), lse.data(), targets.data(), N, V, Vp);
        std::vector<float> g[2][3];
        for (int run = 0; run < 2; run++) {
            int* d_targets = to_device_int(targets);
            float *d_logits = to_device(logits), *d_dlosses = to_device(dlosses), *d_dlogits = to_device(dlogits0),
                  *d_losses = to_device(losses), *d_lse = to_device(lse);
            crossentropy_forward_cuda(d_losses, d_lse, d_logits, d_targets, N, V, Vp);
            crossentropy_backward_cuda(d_dlogits, d_dlosses, d_logits, d_lse, d_targets, N, V, Vp);
            g[run][0] = to_host(d_losses, N);
            g[run][1] = to_host(d_lse, N);
            g[run][2] = to_host(d_dlogits, dlogits.size());
            cudaCheck(cudaFree(d_targets));
            for (float* p : {d_logits, d_dlosses, d_dlogits, d_losses, d_lse}) cudaCheck(cudaFree(p));
        }
        // lse: the GPU sums exp in float over V terms (the CPU in double); dlogits: exp differs by an ulp or two
        check_close("crossentropy losses", g[0][0], losses, sum_tol(V));
        check_close("crossentropy lse", g[0][1], lse, sum_tol(V));
        check_close("crossentropy dlogits", g[0][2], dlogits, sum_tol(V));
        size_t padding_changed = 0;
        for (int n = 0; n < N; n++)
            for (int v = V; v < Vp; v++) padding_changed += g[0][2][(size_t)n * Vp + v] != dlogits0[(size_t)n * Vp + v];
        CHECK(padding_changed == 0);
        for (int k = 0; k < 3; k++) check_bitwise("crossentropy, second run", g[1][k], g[0][k]);
    }
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
