// tests/test_ops.cpp: every op's CPU backward against finite differences (the cases of tests/opcases.h), the
// properties each op must have besides (causality, normalisation, padded logits left out, known values), and the
// blocked matmul against the naive definition.
// Each gradient check uses the scalar L = Σ out ⊙ r with a fixed random r, so dL/dout = r, and compares
// the analytic dL/dinput with central differences (L(x + h) − L(x − h)) / 2h at entries spread over the input.
// Tolerances: the forward runs in float32 and L is summed in double. With h = 1e-2 the truncation error of
// central differences is O(h²·f''') ≈ 1e-4 relative for these smooth ops, and float32 rounding of the n
// outputs adds noise of about 6e-8·sqrt(n)·|r||out| / h ≈ 1e-4 for our sizes; so |numeric − analytic| <=
// 2e-3 + 1e-2·|analytic| leaves a margin of 10x while a wrong formula (an error of order the gradient
// itself, ~0.1 to 10 here) fails by orders of magnitude.
#include "testutil.h"
#include "opcases.h"

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

TEST_CASE("gemm_cpu at the tf32 and bf16 levels: the fp32 product of the inputs rounded as the tensor cores round them") {
    int M = 37, N = 70, K = 300;  // K > GEMM_KC for AVX-512 builds: more than one k block
    std::vector<float> A = random_vector((size_t)M * K, 61), B = random_vector((size_t)K * N, 62);
    for (GemmLevel level : {GEMM_CUBLAS_TF32, GEMM_CUBLAS_BF16}) {
        std::vector<float> Ar(A), Br(B), got((size_t)M * N), want((size_t)M * N), plain((size_t)M * N);
        for (float& x : Ar) x = level == GEMM_CUBLAS_BF16 ? bf16_round(x) : tf32_round(x);
        for (float& x : Br) x = level == GEMM_CUBLAS_BF16 ? bf16_round(x) : tf32_round(x);
        gemm_cpu(got.data(), A.data(), B.data(), M, N, K, false, false, false, level);
        gemm_cpu(want.data(), Ar.data(), Br.data(), M, N, K, false, false, false);
        gemm_cpu(plain.data(), A.data(), B.data(), M, N, K, false, false, false);
        CAPTURE(level);
        CHECK(got == want);  // the same sums, in the same order, of the rounded inputs
        // and the rounding is there: a bf16 input is 2^-9 relative from its fp32 value, a tf32 one 2^-11
        double diff = max_abs_diff(got.data(), plain.data(), got.size());
        CHECK(diff > (level == GEMM_CUBLAS_BF16 ? 1e-3 : 1e-4));
        CHECK(diff < (level == GEMM_CUBLAS_BF16 ? 0.5 : 0.1));
    }
    CHECK(bf16_round(1.0f + 1.0f / 256) == 1.0f);            // a tie: to even (the last kept bit is 0)
    CHECK(bf16_round(1.0f + 3.0f / 256) == 1.0f + 4.0f / 256);  // a tie: to even (up)
    CHECK(tf32_round(1.0f + 1.0f / 2048) == 1.0f + 1.0f / 1024);  // a tie: away from zero
    CHECK(std::isnan(bf16_round(NAN)));
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
    // at bf16 (tensor.h's kernels_bf16) the bias gradient sums dout's bf16 values, as the bf16 products read them:
    // the naive sums of dout rounded beforehand, in the same order (from zero), bit for bit; not fp32's
    std::vector<float> rounded(dout), db3(OC, 0.0f), db4(OC, 0.0f), dw3(dw1), dw4(dw1);
    for (float& x : rounded) x = bf16_round(x);
    matmul_backward_cpu_naive(NULL, dw3.data(), db3.data(), rounded.data(), inp.data(), w.data(), N, C, OC);
    matmul_backward_cpu(NULL, dw4.data(), db4.data(), dout.data(), inp.data(), w.data(), N, C, OC, GEMM_CUBLAS_BF16, true);
    CHECK(db4 == db3);
    CHECK(max_abs_diff(db4.data(), db2.data(), OC) > 1e-6);
}

// The finite-difference driver of the op-case table: for each case, the analytic gradients from one backward
// (from zero: backwards add), then each input's sampled entries perturbed, L recomputed by the forward alone.
TEST_CASE("ops: every op's backward against finite differences (the op-case table, tests/opcases.h)") {
    Kernels k = {GEMM_CUBLAS, ATTENTION_SIMPLE};
    for (const OpCase& c : op_cases_fd()) {
        CAPTURE(c.name);
        std::vector<std::vector<float>> h = op_case_inputs(c, 11, true);
        std::vector<float*> b;
        for (std::vector<float>& v : h) b.push_back(v.data());
        std::vector<std::vector<int>> ints = c.ints;
        std::vector<int*> in;
        for (std::vector<int>& v : ints) in.push_back(v.data());
        c.forward(DEV_CPU, k, b.data(), in.data());
        c.backward(DEV_CPU, k, b.data(), in.data());
        std::vector<int> outs, rs;  // the k-th output's upstream gradient is the k-th OP_DOUT: L = Σ_k out_k ⊙ r_k
        for (size_t i = 0; i < c.bufs.size(); i++) {
            if (c.bufs[i].role == OP_OUTPUT) outs.push_back((int)i);
            if (c.bufs[i].role == OP_DOUT) rs.push_back((int)i);
        }
        REQUIRE(!outs.empty());
        REQUIRE(outs.size() == rs.size());
        auto loss = [&]() {
            c.forward(DEV_CPU, k, b.data(), in.data());
            double L = 0.0;
            for (size_t j = 0; j < outs.size(); j++)
                L += dot_double(h[outs[j]].data(), h[rs[j]].data(), h[outs[j]].size());
            return L;
        };
        for (size_t g = 0; g < c.bufs.size(); g++) {
            if (c.bufs[g].role != OP_GRAD) continue;
            const OpBuf& x = c.bufs[c.bufs[g].of];
            REQUIRE(x.role == OP_INPUT);
            std::string what = c.name + " d" + x.name;
            check_gradient(what.c_str(), h[c.bufs[g].of].data(), h[g].data(), x.n, x.fd_count, FD_H, FD_ATOL, FD_RTOL,
                           loss);
        }
    }
}

// --precision bf16 (tensor.h's Precision): an op whose outputs are bf16 tensors computes in fp32 and rounds each value
// as it stores it, so its outputs are its fp32 outputs rounded (bf16_round), and what it saves for the backward is
// unchanged; the fused pair normalises the stored, rounded sum (as its backward reads it), so its layernorm output
// and statistics are compared within bf16's tolerance instead. The reference add, which stores no bf16 tensor, gives
// its fp32 bits.
TEST_CASE("ops: at bf16 precision each op stores its fp32 result rounded to bf16 (the op-case table)") {
    Kernels fp32 = {GEMM_CUBLAS, ATTENTION_SIMPLE, PRECISION_FP32}, bf16 = {GEMM_CUBLAS, ATTENTION_SIMPLE, PRECISION_BF16};
    int rounding = 0;
    for (const OpCase& c : op_cases_fd()) {
        if (c.reads_bf16) continue;  // the loss: the next test
        CAPTURE(c.name);
        std::vector<std::vector<float>> h = op_case_inputs(c, 13, false);
        std::vector<std::vector<float>> a = op_case_run(c, DEV_CPU, fp32, h, false), b = op_case_run(c, DEV_CPU, bf16, h, false);
        bool fused = c.name.rfind("residual_layernorm", 0) == 0;
        rounding += c.rounds;
        for (size_t i = 0; i < c.bufs.size(); i++) {
            const OpBuf& buf = c.bufs[i];
            if (buf.role != OP_OUTPUT && buf.role != OP_SAVED) continue;
            CAPTURE(buf.name);
            bool from_rounded_sum = fused && strcmp(buf.name, "sum") != 0;
            if (!c.rounds || (buf.role == OP_SAVED && !fused)) {
                CHECK(b[i] == a[i]);
            } else if (from_rounded_sum) {
                CHECK(rel_error(b[i].data(), a[i].data(), buf.n) <= 1e-2);
                if (buf.role == OP_OUTPUT)
                    for (float x : b[i]) REQUIRE(bf16_round(x) == x);
            } else {
                for (size_t j = 0; j < buf.n; j++) REQUIRE(b[i][j] == bf16_round(a[i][j]));
                CHECK(b[i] != a[i]);  // random inputs: most fp32 results are not bf16 values
            }
        }
    }
    CHECK(rounding == 6);  // matmul, layernorm, the fused pair, attention, GELU, embedding
}

// At bf16 precision the loss reads the logits as bf16 values (ops/crossentropy.h): its forward and backward on raw
// logits give, bit for bit, what the fp32 loss gives on the logits rounded beforehand; and differ from fp32's.
TEST_CASE("ops: at bf16 precision the loss reads its logits as bf16 values, forward and backward (op-case table)") {
    Kernels fp32 = {GEMM_CUBLAS, ATTENTION_SIMPLE, PRECISION_FP32}, bf16 = {GEMM_CUBLAS, ATTENTION_SIMPLE, PRECISION_BF16};
    int reading = 0;
    for (const OpCase& c : {op_cases_fd().back(), crossentropy_fused_case(4, 10, 16, 100.0f)}) {
        CAPTURE(c.name);
        REQUIRE(c.reads_bf16);
        reading++;
        std::vector<std::vector<float>> h = op_case_inputs(c, 19, false), rounded = h;
        for (float& x : rounded[0]) x = bf16_round(x);  // the logits, as bf16 would store them
        std::vector<std::vector<float>> a = op_case_run(c, DEV_CPU, fp32, rounded), b = op_case_run(c, DEV_CPU, bf16, h),
                                        plain = op_case_run(c, DEV_CPU, fp32, h);
        for (size_t i = 1; i < c.bufs.size(); i++) {
            if (c.bufs[i].role == OP_DOUT || c.bufs[i].role == OP_SCRATCH) continue;
            CAPTURE(c.bufs[i].name);
            CHECK(b[i] == a[i]);
            CHECK(b[i] != plain[i]);
        }
    }
    CHECK(reading == 2);
}

TEST_CASE("layernorm: the output is normalized") {
    int N = 5, C = 19;
    std::vector<float> inp = random_vector((size_t)N * C, 12, 2.0f);
    std::vector<float> out((size_t)N * C), mean(N), rstd(N), ones(C, 1.0f), zeros(C, 0.0f);
    layernorm_forward_cpu(out.data(), mean.data(), rstd.data(), inp.data(), ones.data(), zeros.data(), N, C);
    for (int n = 0; n < N; n++) {  // with gain 1 and bias 0 each row has mean 0 and variance ~1
        double m = 0, v = 0;
        for (int c = 0; c < C; c++) m += out[(size_t)n * C + c];
        for (int c = 0; c < C; c++) v += out[(size_t)n * C + c] * out[(size_t)n * C + c];
        CHECK(fabs(m / C) < 1e-5);
        CHECK(fabs(v / C - 1.0) < 1e-3);  // eps = 1e-5 against a variance of ~4
    }
}

// The model runs every residual add fused with the layernorm after it; the fused op must be the same arithmetic as
// the plain pair it replaced, so that fusing changed no run's numbers (./train's losses, to the last digit).
TEST_CASE("residual_layernorm: the same bits as the residual add followed by the layernorm, forward and backward") {
    int N = 9, C = 67;
    size_t n = (size_t)N * C;
    std::vector<float> a = random_vector(n, 71, 2.0f), b = random_vector(n, 72), w = random_vector(C, 73),
                       bias = random_vector(C, 74), dsum = random_vector(n, 75), dout = random_vector(n, 76);
    std::vector<float> da0 = random_vector(n, 77), db0 = random_vector(n, 78), dw0 = random_vector(C, 79),
                       dbias0 = random_vector(C, 80);
    // unfused: sum = a + b, out = layernorm(sum); backward: dsum += layernorm's dx, then da, db += dsum
    std::vector<float> sum1(n), out1(n), mean1(N), rstd1(N), dsum1(dsum), da1(da0), db1(db0), dw1(dw0), dbias1(dbias0);
    residual_forward_cpu(sum1.data(), a.data(), b.data(), n);
    layernorm_forward_cpu(out1.data(), mean1.data(), rstd1.data(), sum1.data(), w.data(), bias.data(), N, C);
    layernorm_backward_cpu(dsum1.data(), dw1.data(), dbias1.data(), dout.data(), sum1.data(), w.data(), mean1.data(),
                           rstd1.data(), N, C);
    residual_backward_cpu(da1.data(), db1.data(), dsum1.data(), n);
    // fused
    std::vector<float> sum2(n), out2(n), mean2(N), rstd2(N), da2(da0), db2(db0), dw2(dw0), dbias2(dbias0);
    residual_layernorm_forward(DEV_CPU, sum2.data(), out2.data(), mean2.data(), rstd2.data(), a.data(), b.data(),
                               w.data(), bias.data(), N, C);
    residual_layernorm_backward(DEV_CPU, da2.data(), db2.data(), dw2.data(), dbias2.data(), dsum.data(), dout.data(),
                                sum2.data(), w.data(), mean2.data(), rstd2.data(), N, C);
    CHECK(sum2 == sum1);
    CHECK(out2 == out1);
    CHECK(mean2 == mean1);
    CHECK(rstd2 == rstd1);
    CHECK(da2 == da1);
    CHECK(db2 == db1);
    CHECK(dw2 == dw1);
    CHECK(dbias2 == dbias1);
    CHECK(da2 != da0);  // the gradients did arrive
}

// A training step runs the loss's backward inside its forward (dL/dloss known in advance): the same arithmetic as
// the forward then the backward, written over the logits as the model does, so fusing changed no run's numbers.
TEST_CASE("crossentropy fused: the same bits as the forward then the backward, in place over the logits") {
    int N = 7, V = 300, Vp = 320;
    std::vector<float> logits = random_vector((size_t)N * Vp, 91, 3.0f);
    std::vector<int> targets(N);
    for (int n = 0; n < N; n++) targets[n] = (n * 37) % V;
    float dloss = 1.0f / N;
    std::vector<float> z1(logits), losses1(N), lse1(N), dlosses(N, dloss);
    crossentropy_forward_cpu(losses1.data(), lse1.data(), z1.data(), targets.data(), N, V, Vp);
    crossentropy_backward_cpu(z1.data(), dlosses.data(), z1.data(), lse1.data(), targets.data(), N, V, Vp);
    std::vector<float> z2(logits), losses2(N), lse2(N);
    crossentropy_forward_cpu(losses2.data(), lse2.data(), z2.data(), targets.data(), N, V, Vp, z2.data(), dloss);
    CHECK(losses2 == losses1);
    CHECK(lse2 == lse1);
    CHECK(z2 == z1);       // dlogits, over the logits
    CHECK(z2 != logits);   // which it did replace
}

TEST_CASE("gelu: known values") {
    float x[3] = {0.0f, 1.0f, -2.0f}, y[3];
    gelu_forward_cpu(y, x, 3);
    CHECK(y[0] == 0.0f);
    CHECK(fabs(y[1] - 0.8411920f) < 1e-6);   // torch.nn.functional.gelu(1.0, approximate="tanh")
    CHECK(fabs(y[2] + 0.0454023f) < 1e-6);   // same at -2.0
}

TEST_CASE("fast math: exp_nonpositive and tanh_by_exp against libm, over their whole range") {
    double worst_exp = 0.0, worst_tanh = 0.0, worst_gelu = 0.0;
    for (int i = 0; i <= 200000; i++) {
        float x = -87.0f * i / 200000;  // exp: [-87, 0]
        double rel = fabs(exp_nonpositive(x) - exp((double)x)) / exp((double)x);
        worst_exp = rel > worst_exp ? rel : worst_exp;
        float u = -12.0f + 24.0f * i / 200000;  // tanh and GELU: [-12, 12], through 0
        double abs_err = fabs(tanh_by_exp(u) - tanh((double)u));
        worst_tanh = abs_err > worst_tanh ? abs_err : worst_tanh;
        double g = 0.5 * u * (1.0 + tanh(0.7978845608028654 * (u + 0.044715 * (double)u * u * u)));
        double gelu_err = fabs(gelu_value(u) - g) / (fabs(u) + 1.0);
        worst_gelu = gelu_err > worst_gelu ? gelu_err : worst_gelu;
    }
    CHECK(worst_exp < 2.5e-7);   // 2 ulp of a float
    CHECK(worst_tanh < 2e-7);
    CHECK(worst_gelu < 3e-7);
    CHECK(tanh_by_exp(0.0f) == 0.0f);
    CHECK(tanh_by_exp(50.0f) == 1.0f);
    CHECK(tanh_by_exp(-50.0f) == -1.0f);
    CHECK(isnan(tanh_by_exp(NAN)));
}

TEST_CASE("embedding: a token that does not appear gets no gradient") {
    int B = 2, T = 5, C = 6, V = 7;
    int ids[10] = {3, 1, 3, 0, 6, 3, 3, 2, 1, 5};  // token 4 never appears
    std::vector<float> r = random_vector((size_t)B * T * C, 23), dwte((size_t)V * C), dwpe((size_t)T * C);
    embedding_backward_cpu(dwte.data(), dwpe.data(), r.data(), ids, B, T, C);
    for (int c = 0; c < C; c++) CHECK(dwte[4 * C + c] == 0.0f);
}

TEST_CASE("attention: causality, rows of att sum to 1") {
    int B = 2, T = 7, C = 12, NH = 3;
    std::vector<float> qkv = random_vector((size_t)B * T * 3 * C, 24);
    std::vector<float> out((size_t)B * T * C), att((size_t)B * NH * T * T);
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
}

TEST_CASE("crossentropy: padded logits ignored, loss of uniform logits is log V, the gradient set in place") {
    int N = 4, V = 10, Vp = 16;
    std::vector<float> logits = random_vector((size_t)N * Vp, 26, 2.0f), losses(N), lse(N), dlogits(logits.size());
    int targets[4] = {0, 9, 3, 3};
    for (int n = 0; n < N; n++)
        for (int v = V; v < Vp; v++) logits[(size_t)n * Vp + v] = 100.0f;  // huge padded logits must not win
    std::vector<float> r = random_vector(N, 27);
    crossentropy_forward_cpu(losses.data(), lse.data(), logits.data(), targets, N, V, Vp);
    for (int n = 0; n < N; n++) CHECK(losses[n] < 20.0f);  // with the padding in the softmax they would be ~100
    for (float& x : dlogits) x = 7.0f;  // the backward sets the gradient, whatever it held
    crossentropy_backward_cpu(dlogits.data(), r.data(), logits.data(), lse.data(), targets, N, V, Vp);
    for (int n = 0; n < N; n++)
        for (int v = V; v < Vp; v++) CHECK(dlogits[(size_t)n * Vp + v] == 0.0f);
    std::vector<float> in_place = logits;  // as the model runs it: dlogits written over the logits, the same bits
    crossentropy_backward_cpu(in_place.data(), r.data(), in_place.data(), lse.data(), targets, N, V, Vp);
    CHECK(in_place == dlogits);
    std::vector<float> flat((size_t)N * Vp, 0.5f);
    crossentropy_forward_cpu(losses.data(), lse.data(), flat.data(), targets, N, V, Vp);
    for (int n = 0; n < N; n++) CHECK(fabs(losses[n] - logf((float)V)) < 1e-5);
}
