// tests/test_ops.cpp: every op's CPU backward against finite differences, and the blocked matmul against
// the naive definition.
// Each gradient check uses the scalar L = Σ out ⊙ r with a fixed random r, so dL/dout = r, and compares
// the analytic dL/dinput with central differences (L(x + h) − L(x − h)) / 2h at entries spread over the input.
// Tolerances: the forward runs in float32 and L is summed in double. With h = 1e-2 the truncation error of
// central differences is O(h²·f''') ≈ 1e-4 relative for these smooth ops, and float32 rounding of the n
// outputs adds noise of about 6e-8·sqrt(n)·|r||out| / h ≈ 1e-4 for our sizes; so |numeric − analytic| <=
// 2e-3 + 1e-2·|analytic| leaves a margin of 10x while a wrong formula (an error of order the gradient
// itself, ~0.1 to 10 here) fails by orders of magnitude.
#include "testutil.h"
#include "../ops/attention.h"
#include "../ops/crossentropy.h"
#include "../ops/embedding.h"
#include "../ops/gelu.h"
#include "../ops/layernorm.h"
#include "../ops/matmul.h"
#include "../ops/residual.h"

static const float FD_H = 1e-2f;
static const double FD_ATOL = 2e-3, FD_RTOL = 1e-2;

static double dot_double(const float* a, const float* b, size_t n) {
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}

TEST_CASE("matmul: blocked gemm equals the naive definition, every transpose, awkward shapes") {
    // shapes not multiples of the 6 x 16 micro-tile, a K longer than one 256 block, and 1-wide edges
    const int shapes[][3] = {{1, 1, 1}, {7, 13, 5}, {37, 70, 300}, {96, 16, 256}, {130, 33, 517}, {5, 1000, 3}};
    for (auto& s : shapes) {
        int M = s[0], N = s[1], K = s[2];
        std::vector<float> A = random_vector((size_t)M * K, 1), B = random_vector((size_t)K * N, 2);
        std::vector<float> C0 = random_vector((size_t)M * N, 3);
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++)
                for (int acc = 0; acc < 2; acc++) {
                    std::vector<float> ref(C0), got(C0);
                    for (int i = 0; i < M; i++)
                        for (int j = 0; j < N; j++) {
                            double sum = 0.0;
                            for (int k = 0; k < K; k++) {
                                float a = ta ? A[(size_t)k * M + i] : A[(size_t)i * K + k];
                                float b = tb ? B[(size_t)j * K + k] : B[(size_t)k * N + j];
                                sum += (double)a * b;
                            }
                            ref[(size_t)i * N + j] = (float)(acc ? ref[(size_t)i * N + j] + sum : sum);
                        }
                    gemm_cpu(got.data(), A.data(), B.data(), M, N, K, ta, tb, acc);
                    // float32 sums of K products of N(0,1) numbers: error ~ 6e-8·sqrt(K)·sqrt(K) ≤ 3e-5 for K=517
                    CHECK_MESSAGE(max_abs_diff(got.data(), ref.data(), ref.size()) < 1e-3 * sqrt((double)K),
                                  "M=" << M << " N=" << N << " K=" << K << " ta=" << ta << " tb=" << tb);
                }
    }
}

TEST_CASE("matmul: fast forward and backward equal the naive reference") {
    int N = 45, C = 70, OC = 33;
    std::vector<float> inp = random_vector((size_t)N * C, 4), w = random_vector((size_t)OC * C, 5),
                       b = random_vector(OC, 6), dout = random_vector((size_t)N * OC, 7);
    std::vector<float> out1((size_t)N * OC), out2((size_t)N * OC);
    matmul_forward_cpu_naive(out1.data(), inp.data(), w.data(), b.data(), N, C, OC);
    matmul_forward_cpu(out2.data(), inp.data(), w.data(), b.data(), N, C, OC);
    CHECK(max_abs_diff(out1.data(), out2.data(), out1.size()) < 1e-4);
    std::vector<float> di1((size_t)N * C), dw1((size_t)OC * C), db1(OC), di2(di1), dw2(dw1), db2(db1);
    matmul_backward_cpu_naive(di1.data(), dw1.data(), db1.data(), dout.data(), inp.data(), w.data(), N, C, OC);
    matmul_backward_cpu(di2.data(), dw2.data(), db2.data(), dout.data(), inp.data(), w.data(), N, C, OC);
    CHECK(max_abs_diff(di1.data(), di2.data(), di1.size()) < 1e-4);
    CHECK(max_abs_diff(dw1.data(), dw2.data(), dw1.size()) < 1e-4);
    CHECK(max_abs_diff(db1.data(), db2.data(), db1.size()) < 1e-4);
}

TEST_CASE("matmul: gradient check") {
    int N = 6, C = 11, OC = 7;
    std::vector<float> inp = random_vector((size_t)N * C, 8), w = random_vector((size_t)OC * C, 9),
                       b = random_vector(OC, 10), r = random_vector((size_t)N * OC, 11);
    std::vector<float> out((size_t)N * OC), dinp((size_t)N * C), dw((size_t)OC * C), db(OC);
    matmul_backward_cpu(dinp.data(), dw.data(), db.data(), r.data(), inp.data(), w.data(), N, C, OC);
    auto loss = [&]() {
        matmul_forward_cpu(out.data(), inp.data(), w.data(), b.data(), N, C, OC);
        return dot_double(out.data(), r.data(), out.size());
    };
    check_gradient("dinp", inp.data(), dinp.data(), inp.size(), 40, FD_H, FD_ATOL, FD_RTOL, loss);
    check_gradient("dweight", w.data(), dw.data(), w.size(), 40, FD_H, FD_ATOL, FD_RTOL, loss);
    check_gradient("dbias", b.data(), db.data(), b.size(), 7, FD_H, FD_ATOL, FD_RTOL, loss);
}

TEST_CASE("layernorm: gradient check, and the output is normalized") {
    int N = 5, C = 19;
    std::vector<float> inp = random_vector((size_t)N * C, 12, 2.0f), w = random_vector(C, 13),
                       b = random_vector(C, 14), r = random_vector((size_t)N * C, 15);
    std::vector<float> out((size_t)N * C), mean(N), rstd(N), dinp((size_t)N * C), dw(C), db(C);
    std::vector<float> ones(C, 1.0f), zeros(C, 0.0f);
    layernorm_forward_cpu(out.data(), mean.data(), rstd.data(), inp.data(), ones.data(), zeros.data(), N, C);
    for (int n = 0; n < N; n++) {  // with gain 1 and bias 0 each row has mean 0 and variance ~1
        double m = 0, v = 0;
        for (int c = 0; c < C; c++) m += out[(size_t)n * C + c];
        for (int c = 0; c < C; c++) v += out[(size_t)n * C + c] * out[(size_t)n * C + c];
        CHECK(fabs(m / C) < 1e-5);
        CHECK(fabs(v / C - 1.0) < 1e-3);  // eps = 1e-5 against a variance of ~4
    }
    layernorm_forward_cpu(out.data(), mean.data(), rstd.data(), inp.data(), w.data(), b.data(), N, C);
    layernorm_backward_cpu(dinp.data(), dw.data(), db.data(), r.data(), inp.data(), w.data(), mean.data(),
                           rstd.data(), N, C);
    auto loss = [&]() {
        layernorm_forward_cpu(out.data(), mean.data(), rstd.data(), inp.data(), w.data(), b.data(), N, C);
        return dot_double(out.data(), r.data(), out.size());
    };
    check_gradient("dinp", inp.data(), dinp.data(), inp.size(), 40, FD_H, FD_ATOL, FD_RTOL, loss);
    check_gradient("dweight", w.data(), dw.data(), w.size(), 19, FD_H, FD_ATOL, FD_RTOL, loss);
    check_gradient("dbias", b.data(), db.data(), b.size(), 19, FD_H, FD_ATOL, FD_RTOL, loss);
}

TEST_CASE("gelu: gradient check, and known values") {
    float x[3] = {0.0f, 1.0f, -2.0f}, y[3];
    gelu_forward_cpu(y, x, 3);
    CHECK(y[0] == 0.0f);
    CHECK(fabs(y[1] - 0.8411920f) < 1e-6);   // torch.nn.functional.gelu(1.0, approximate="tanh")
    CHECK(fabs(y[2] + 0.0454023f) < 1e-6);   // same at -2.0
    size_t n = 50;
    std::vector<float> inp = random_vector(n, 16, 2.0f), r = random_vector(n, 17), out(n), dinp(n);
    gelu_backward_cpu(dinp.data(), inp.data(), r.data(), n);
    auto loss = [&]() {
        gelu_forward_cpu(out.data(), inp.data(), n);
        return dot_double(out.data(), r.data(), n);
    };
    check_gradient("dinp", inp.data(), dinp.data(), n, 50, FD_H, FD_ATOL, FD_RTOL, loss);
}

TEST_CASE("residual: gradient check") {
    size_t n = 30;
    std::vector<float> a = random_vector(n, 18), b = random_vector(n, 19), r = random_vector(n, 20), out(n),
                       da(n), db(n);
    residual_backward_cpu(da.data(), db.data(), r.data(), n);
    auto loss = [&]() {
        residual_forward_cpu(out.data(), a.data(), b.data(), n);
        return dot_double(out.data(), r.data(), n);
    };
    check_gradient("da", a.data(), da.data(), n, 30, FD_H, FD_ATOL, FD_RTOL, loss);
    check_gradient("db", b.data(), db.data(), n, 30, FD_H, FD_ATOL, FD_RTOL, loss);
}

TEST_CASE("embedding: gradient check with repeated tokens") {
    int B = 2, T = 5, C = 6, V = 7;
    int ids[10] = {3, 1, 3, 0, 6, 3, 3, 2, 1, 5};  // token 3 four times: its gradient rows must add up
    std::vector<float> wte = random_vector((size_t)V * C, 21), wpe = random_vector((size_t)T * C, 22),
                       r = random_vector((size_t)B * T * C, 23), out((size_t)B * T * C), dwte(wte.size()),
                       dwpe(wpe.size());
    embedding_backward_cpu(dwte.data(), dwpe.data(), r.data(), ids, B, T, C);
    auto loss = [&]() {
        embedding_forward_cpu(out.data(), ids, wte.data(), wpe.data(), B, T, C);
        return dot_double(out.data(), r.data(), out.size());
    };
    check_gradient("dwte", wte.data(), dwte.data(), wte.size(), 42, FD_H, FD_ATOL, FD_RTOL, loss);
    check_gradient("dwpe", wpe.data(), dwpe.data(), wpe.size(), 30, FD_H, FD_ATOL, FD_RTOL, loss);
    for (int c = 0; c < C; c++) CHECK(dwte[4 * C + c] == 0.0f);  // token 4 never appears
}

TEST_CASE("attention: gradient check, causality, rows of att sum to 1") {
    int B = 2, T = 7, C = 12, NH = 3;
    std::vector<float> qkv = random_vector((size_t)B * T * 3 * C, 24), r = random_vector((size_t)B * T * C, 25);
    std::vector<float> out((size_t)B * T * C), att((size_t)B * NH * T * T), dqkv(qkv.size()),
        scratch((size_t)B * NH * T);
    attention_forward_cpu(out.data(), att.data(), qkv.data(), B, T, C, NH);
    for (int row = 0; row < B * NH * T; row++) {
        int t = row % T;
        double sum = 0;
        for (int t2 = 0; t2 < T; t2++) sum += att[(size_t)row * T + t2];
        CHECK(fabs(sum - 1.0) < 1e-5);
        for (int t2 = t + 1; t2 < T; t2++) CHECK(att[(size_t)row * T + t2] == 0.0f);
    }
    // changing a later position must not change an earlier output (causality)
    std::vector<float> out2(out.size()), qkv2(qkv);
    for (int c = 0; c < 3 * C; c++) qkv2[(size_t)(T - 1) * 3 * C + c] += 1.0f;  // batch 0, last position
    attention_forward_cpu(out2.data(), att.data(), qkv2.data(), B, T, C, NH);
    CHECK(max_abs_diff(out.data(), out2.data(), (size_t)(T - 1) * C) == 0.0);
    attention_forward_cpu(out.data(), att.data(), qkv.data(), B, T, C, NH);
    attention_backward_cpu(dqkv.data(), scratch.data(), r.data(), qkv.data(), att.data(), B, T, C, NH);
    auto loss = [&]() {
        attention_forward_cpu(out.data(), att.data(), qkv.data(), B, T, C, NH);
        return dot_double(out.data(), r.data(), out.size());
    };
    check_gradient("dqkv", qkv.data(), dqkv.data(), qkv.size(), 120, FD_H, FD_ATOL, FD_RTOL, loss);
}

TEST_CASE("crossentropy: gradient check, padded logits ignored, loss of uniform logits is log V") {
    int N = 4, V = 10, Vp = 16;
    std::vector<float> logits = random_vector((size_t)N * Vp, 26, 2.0f), losses(N), lse(N), dlogits(logits.size());
    int targets[4] = {0, 9, 3, 3};
    for (int n = 0; n < N; n++)
        for (int v = V; v < Vp; v++) logits[(size_t)n * Vp + v] = 100.0f;  // huge padded logits must not win
    std::vector<float> r = random_vector(N, 27);
    crossentropy_forward_cpu(losses.data(), lse.data(), logits.data(), targets, N, V, Vp);
    for (int n = 0; n < N; n++) CHECK(losses[n] < 20.0f);  // with the padding in the softmax they would be ~100
    crossentropy_backward_cpu(dlogits.data(), r.data(), logits.data(), lse.data(), targets, N, V, Vp);
    for (int n = 0; n < N; n++)
        for (int v = V; v < Vp; v++) CHECK(dlogits[(size_t)n * Vp + v] == 0.0f);
    auto loss = [&]() {
        crossentropy_forward_cpu(losses.data(), lse.data(), logits.data(), targets, N, V, Vp);
        return dot_double(losses.data(), r.data(), N);
    };
    check_gradient("dlogits", logits.data(), dlogits.data(), logits.size(), 64, FD_H, FD_ATOL, FD_RTOL, loss);
    std::vector<float> flat((size_t)N * Vp, 0.5f);
    crossentropy_forward_cpu(losses.data(), lse.data(), flat.data(), targets, N, V, Vp);
    for (int n = 0; n < N; n++) CHECK(fabs(losses[n] - logf((float)V)) < 1e-5);
}
