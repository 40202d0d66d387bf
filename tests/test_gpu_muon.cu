// tests/test_gpu_muon.cu: the GPU Muon family (fp32, batched over same-shaped matrices) against its fp64 CPU
// reference: Newton–Schulz and Polar Express (plain, in bf16, on the Gram matrix), the spectral powers, the whole
// muon_update for each variant, the health metrics, and bit-for-bit repeatability. Built by nvcc; each test
// skips, visibly, without a GPU.
//
// Tolerances, as ‖gpu − cpu‖_F / ‖cpu‖_F per matrix (rel_error). The GPU runs the same iterations in fp32:
// each product rounds at ~6e-8·sqrt(K) relative, and a Newton–Schulz step multiplies a perturbation by at most
// |φ'(σ)| <= a = 3.4445 (Polar Express's first step: 8.2), so after 5 steps the error is bounded by roughly
// 485·1e-6 ≈ 5e-4 for K ~ 100 (much less in practice: most σ sit where |φ'| < 1). 2e-3 passes that bound with
// a margin and fails any indexing or transposition error (which is O(1)). The spectral powers go through ~24
// Newton steps per square root on a Gram matrix (condition squared) and a 1e-6 regularizer instead of the
// CPU's 1e-12: for the well-conditioned random matrices here that costs ~1e-4; bound 5e-3.
#include "gpu_testutil.h"
#include <algorithm>
#include "../muon.h"

static std::vector<double> to_double(const float* x, size_t n) { return std::vector<double>(x, x + n); }

static double rel_error_double(const float* got, const double* ref, size_t n) {
    double num = 0.0, den = 0.0;
    for (size_t i = 0; i < n; i++) {
        num += (got[i] - ref[i]) * (got[i] - ref[i]);
        den += ref[i] * ref[i];
    }
    return sqrt(num / (den > 0 ? den : 1e-300));
}

static const int MUON_SHAPES[][2] = {{37, 70}, {70, 37}, {64, 64}, {5, 130}};  // wide, tall, square, very wide

enum Orthogonalizer { ORTH_NS, ORTH_POLAR, ORTH_SPECTRAL, ORTH_NS_BF16, ORTH_POLAR_BF16, ORTH_NS_GRAM, ORTH_POLAR_GRAM };

// `count` packed random matrices through the GPU function and, one by one, through the CPU's; returns the
// largest relative error
static double check_orthogonalizer(Orthogonalizer which, double p, double tol) {
    const int count = 3;
    double worst = 0.0;
    for (auto& shape : MUON_SHAPES) {
        int rows = shape[0], cols = shape[1], s = rows < cols ? rows : cols;
        size_t n = (size_t)rows * cols;
        CAPTURE(rows); CAPTURE(cols); CAPTURE(p);
        std::vector<float> X = random_vector(count * n, 200 + rows);
        for (size_t i = 0; i < n; i++) X[i] *= 1e-3f;  // matrix 0 tiny: the normalisations must not care
        float* d_X = to_device(X);
        float* d_work = to_device(std::vector<float>(muon_work_floats_cuda(rows, cols, count), 0.0f));
        bool bf16 = which == ORTH_NS_BF16 || which == ORTH_POLAR_BF16;
        bool polar = which == ORTH_POLAR || which == ORTH_POLAR_BF16 || which == ORTH_POLAR_GRAM;
        bool gram = which == ORTH_NS_GRAM || which == ORTH_POLAR_GRAM;
        const double* abc = polar ? &POLAR_EXPRESS_ABC[0][0] : NS_ABC;
        if (which == ORTH_SPECTRAL) spectral_power_cuda(d_X, rows, cols, count, p, d_work);
        else if (gram) newton_schulz_gram_batch(d_X, rows, cols, count, abc, polar ? 3 : 0, 5, polar ? 1.01 : 1.0, d_work);
        else newton_schulz_batch(d_X, rows, cols, count, abc, polar ? 3 : 0, 5, polar ? 1.01 : 1.0, d_work, bf16);
        std::vector<float> got = to_host(d_X, count * n);
        if (bf16) CHECK(not_bf16(got.data(), got.size()) == 0);  // a bf16 iteration leaves bf16 values
        std::vector<double> work(muon_work_doubles(rows, cols) + 5 * (size_t)s * s);
        for (int m = 0; m < count; m++) {
            std::vector<double> ref = to_double(X.data() + m * n, n);
            if (which == ORTH_SPECTRAL) spectral_power(ref.data(), rows, cols, p, work.data());
            else if (gram) newton_schulz_gram_batch(ref.data(), rows, cols, 1, abc, polar ? 3 : 0, 5, polar ? 1.01 : 1.0, work.data());
            else newton_schulz_batch(ref.data(), rows, cols, 1, abc, polar ? 3 : 0, 5, polar ? 1.01 : 1.0, work.data(), bf16);
            double err = rel_error_double(got.data() + m * n, ref.data(), n);
            CHECK_MESSAGE(err <= tol, "matrix " << m << ": relative error " << err << " (tolerance " << tol << ")");
            worst = std::max(worst, err);
        }
        cudaCheck(cudaFree(d_X));
        cudaCheck(cudaFree(d_work));
    }
    return worst;
}

TEST_CASE("gpu muon: Newton-Schulz quintic (fp32, batched) matches muon.h's fp64") {
    if (!gpu_available()) { MESSAGE("SKIPPED: no CUDA GPU found"); return; }
    check_orthogonalizer(ORTH_NS, 0.0, 2e-3);
}

TEST_CASE("gpu muon: Polar Express (fp32, batched) matches muon.h's fp64") {
    if (!gpu_available()) { MESSAGE("SKIPPED: no CUDA GPU found"); return; }
    check_orthogonalizer(ORTH_POLAR, 0.0, 2e-3);
}

// bf16 (--ns-dtype bf16, on the tensor cores) against the CPU's bf16 iteration: both round each matrix to bf16
// where it is made, but the GPU sums in fp32 and the CPU in fp64, so now and then one rounding differs and the
// difference carries on: on the emulation half the matrices came out the same bits, the others up to 8.2e-3
// apart; tolerance 2e-2, far under an indexing error's O(1). That the GPU rounds at all is the bf16-values check.
TEST_CASE("gpu muon: Newton-Schulz and Polar Express in bf16 (tensor cores) match muon.h's bf16 iteration") {
    if (!gpu_available()) { MESSAGE("SKIPPED: no CUDA GPU found"); return; }
    check_orthogonalizer(ORTH_NS_BF16, 0.0, 2e-2);
    check_orthogonalizer(ORTH_POLAR_BF16, 0.0, 2e-2);
}

// The Gram form (--ns-gram) in fp32 against its fp64 form (which test_muon.cpp checks against the plain
// iteration to 1e-10): the tolerance of the plain form's tests above. Its roundings are the plain form's, but in
// s x s products only, then carried by Q_K, whose eigenvalues reach the product of the a's (485, Polar Express
// ~990) on small σ: the same factor the bound at the top already allows for.
TEST_CASE("gpu muon: Newton-Schulz and Polar Express on the Gram matrix (fp32, batched) match muon.h's fp64") {
    if (!gpu_available()) { MESSAGE("SKIPPED: no CUDA GPU found"); return; }
    double ns = check_orthogonalizer(ORTH_NS_GRAM, 0.0, 2e-3), polar = check_orthogonalizer(ORTH_POLAR_GRAM, 0.0, 2e-3);
    double ns_plain = check_orthogonalizer(ORTH_NS, 0.0, 2e-3), polar_plain = check_orthogonalizer(ORTH_POLAR, 0.0, 2e-3);
    MESSAGE("fp32 against fp64, worst relative error: Gram form " << ns << " (quintic), " << polar << " (Polar Express); "
            "plain form " << ns_plain << ", " << polar_plain);
}

// A gradient's momentum is far from a random matrix: a few large directions over a floor of small ones. There
// the Gram form's fp32 roundings of R and the Q_k, carried by Q_K's eigenvalues (up to hundreds) and the steep
// part of φ(σ)/σ near small σ, cost more than the plain form's (a CPU fp32 experiment, σ spread over 1e-2 to 1e-6:
// 1e-4 to 1.5e-3 against the plain form's 1e-6 to 1e-5; still well under bf16's ~1e-2). Rank 4 plus a 1e-3 floor
// here: on the emulation 2.4e-4 to 1.5e-3, the plain form 1.4e-5 to 3.1e-5. Tolerance 1e-2, bf16's own distance:
// room for a GPU's other summation order (not yet run on one), and still far under a wrong product's O(1).
TEST_CASE("gpu muon: the Gram form on ill-conditioned matrices (rank 4 plus a small floor), fp32 against fp64") {
    if (!gpu_available()) { MESSAGE("SKIPPED: no CUDA GPU found"); return; }
    const int shapes[][2] = {{24, 96}, {96, 24}};
    const int count = 2;
    double worst = 0.0, worst_plain = 0.0;
    for (auto& shape : shapes)
        for (int polar = 0; polar < 2; polar++) {
            int rows = shape[0], cols = shape[1], s = rows < cols ? rows : cols;
            size_t n = (size_t)rows * cols;
            CAPTURE(rows); CAPTURE(polar);
            std::vector<float> L = random_vector(count * rows * 4, 240), Rt = random_vector(count * 4 * cols, 241);
            std::vector<float> X = random_vector(count * n, 242, 1e-3f);
            for (int m = 0; m < count; m++)
                for (int i = 0; i < rows; i++)
                    for (int j = 0; j < cols; j++)
                        for (int q = 0; q < 4; q++)
                            X[m * n + (size_t)i * cols + j] += L[(m * rows + i) * 4 + q] * Rt[(m * 4 + q) * cols + j];
            const double* abc = polar ? &POLAR_EXPRESS_ABC[0][0] : NS_ABC;
            double mult = polar ? 1.01 : 1.0;
            std::vector<float> gram(count * n), plain(count * n);
            for (int form = 0; form < 2; form++) {
                float* d_X = to_device(X);
                float* d_work = to_device(std::vector<float>(muon_work_floats_cuda(rows, cols, count), 0.0f));
                if (form == 0) newton_schulz_gram_batch(d_X, rows, cols, count, abc, polar ? 3 : 0, 5, mult, d_work);
                else newton_schulz_batch(d_X, rows, cols, count, abc, polar ? 3 : 0, 5, mult, d_work);
                (form == 0 ? gram : plain) = to_host(d_X, count * n);
                cudaCheck(cudaFree(d_X));
                cudaCheck(cudaFree(d_work));
            }
            std::vector<double> work(muon_work_doubles(rows, cols) + 5 * (size_t)s * s);
            for (int m = 0; m < count; m++) {
                std::vector<double> ref = to_double(X.data() + m * n, n);
                newton_schulz_gram_batch(ref.data(), rows, cols, 1, abc, polar ? 3 : 0, 5, mult, work.data());
                double err = rel_error_double(gram.data() + m * n, ref.data(), n);
                CHECK_MESSAGE(err <= 1e-2, "matrix " << m << ": relative error " << err);
                worst = std::max(worst, err);
                worst_plain = std::max(worst_plain, rel_error_double(plain.data() + m * n, ref.data(), n));
            }
        }
    MESSAGE("ill-conditioned, fp32 against fp64, worst relative error: Gram form " << worst << ", plain form " << worst_plain);
}

TEST_CASE("gpu muon: spectral powers U S^p V^T (p = 0, 1/4, 1/2, 1) match muon.h's fp64") {
    if (!gpu_available()) { MESSAGE("SKIPPED: no CUDA GPU found"); return; }
    for (double p : {0.0, 0.25, 0.5, 1.0}) check_orthogonalizer(ORTH_SPECTRAL, p, 5e-3);
}

// A variant of the update by name, for the messages
struct MuonVariant {
    const char* name;
    int method, base, normuon, adjust, lr2_decay, nesterov;
    double p;
    float ns_gram;
};

TEST_CASE("gpu muon: muon_update_cuda matches muon_update for every variant, two steps, two matrices apart") {
    if (!gpu_available()) { MESSAGE("SKIPPED: no CUDA GPU found"); return; }
    const MuonVariant variants[] = {
        {"muon (NS, Nesterov)", MUON_NS, BASE_MOMENTUM, 0, ADJUST_ORIGINAL, 0, 1, 0.0},
        {"polar, no Nesterov", MUON_POLAR, BASE_MOMENTUM, 0, ADJUST_ORIGINAL, 0, 0, 0.0},
        {"normuon, match_rms_adamw", MUON_NS, BASE_MOMENTUM, 1, ADJUST_MATCH_RMS_ADAMW, 0, 1, 0.0},
        {"rms base, p = 0.5, normuon", MUON_SPECTRAL, BASE_ADAM_RMS, 1, ADJUST_NONE, 0, 0, 0.5},
        {"p = 0, lr² decay", MUON_SPECTRAL, BASE_MOMENTUM, 0, ADJUST_ORIGINAL, 1, 1, 0.0},
        {"muon on the Gram matrix (ratio >= 1.5)", MUON_NS, BASE_MOMENTUM, 0, ADJUST_ORIGINAL, 0, 1, 0.0, 1.5f},
        {"polar on the Gram matrix, normuon", MUON_POLAR, BASE_MOMENTUM, 1, ADJUST_ORIGINAL, 0, 1, 0.0, 1.5f},
    };
    const int count = 2;
    for (const MuonVariant& var : variants)
        for (auto& shape : MUON_SHAPES) {
            int rows = shape[0], cols = shape[1];
            size_t n = (size_t)rows * cols;
            std::string variant = var.name;
            CAPTURE(variant); CAPTURE(rows); CAPTURE(cols);
            MuonHyper h;
            memset(&h, 0, sizeof(h));
            h.lr = 0.02f;
            h.lr_max = 0.04f;
            h.momentum = 0.95f;
            h.weight_decay = 0.1f;
            h.nesterov = var.nesterov;
            h.method = var.method;
            h.p = var.p;
            h.base = var.base;
            h.normuon = var.normuon;
            h.adjust = var.adjust;
            h.lr2_decay = var.lr2_decay;
            h.ns_steps = 5;
            h.ns_gram = var.ns_gram;
            h.beta2 = 0.95f;
            h.eps = 1e-8f;
            // Each matrix's state spaced as the variant needs it (the RMS base with NorMuon keeps n values of v
            // and then one per row), plus a gap after each matrix that must stay untouched.
            size_t stride = std::max(n, muon_second_floats(rows, cols, &h)) + 5;
            size_t total = count * stride;
            std::vector<float> param = random_vector(total, 210), mom(total, 0.0f), second(total, 0.0f);
            std::vector<float> param0 = param;
            float *d_param = to_device(param), *d_mom = to_device(mom), *d_second = to_device(second);
            float* d_work = to_device(std::vector<float>(muon_work_floats_cuda(rows, cols, count), 0.0f));
            float* d_update = to_device(std::vector<float>(count * n, 0.0f));
            std::vector<double> work(muon_work_doubles(rows, cols)), update_cpu(count * n);
            for (int step = 1; step <= 2; step++) {
                h.step = step;
                std::vector<float> grad = random_vector(total, 220 + step, 0.1f);
                float* d_grad = to_device(grad);
                muon_update_cuda(d_param, d_grad, d_mom, d_second, rows, cols, count, stride, &h, d_work, d_update);
                for (int m = 0; m < count; m++)
                    muon_update(param.data() + m * stride, grad.data() + m * stride, mom.data() + m * stride,
                                second.data() + m * stride, rows, cols, &h, work.data(), update_cpu.data() + m * n);
                cudaCheck(cudaFree(d_grad));
            }
            std::vector<float> g_param = to_host(d_param, total), g_mom = to_host(d_mom, total),
                               g_second = to_host(d_second, total), g_update = to_host(d_update, count * n);
            // momentum and Adam's v: the same double arithmetic rounded to float on both sides (up to fused
            // multiply-adds): 1e-6 and 1e-5. NorMuon's per-row second moments are means of the orthogonalized
            // update's squares, and the applied updates come from it: the orthogonalizer's tolerance (see the top).
            check_close("momentum", g_mom, mom, 1e-6);
            size_t v_floats = var.base == BASE_ADAM_RMS ? n : 0, row_floats = var.normuon ? (size_t)rows : 0;
            for (int m = 0; m < count; m++) {
                auto part = [&](const std::vector<float>& x, size_t from, size_t len) {
                    return std::vector<float>(x.begin() + m * stride + from, x.begin() + m * stride + from + len);
                };
                if (v_floats) check_close("Adam's v", part(g_second, 0, v_floats), part(second, 0, v_floats), 1e-5);
                if (row_floats)
                    check_close("NorMuon's row moments", part(g_second, v_floats, row_floats),
                                part(second, v_floats, row_floats), 5e-3);
                size_t used = v_floats + row_floats;  // and nothing after the state
                CHECK(part(g_second, used, stride - used) == std::vector<float>(stride - used, 0.0f));
            }
            for (int m = 0; m < count; m++) {
                double err = rel_error_double(g_update.data() + m * n, update_cpu.data() + m * n, n);
                CHECK_MESSAGE(err <= 5e-3, "matrix " << m << " update: relative error " << err);
                std::vector<float> dg(n), dc(n);
                for (size_t i = 0; i < n; i++) {
                    dg[i] = g_param[m * stride + i] - param0[m * stride + i];
                    dc[i] = param[m * stride + i] - param0[m * stride + i];
                }
                double perr = rel_error(dg.data(), dc.data(), n);
                CHECK_MESSAGE(perr <= 5e-3, "matrix " << m << " parameter change: relative error " << perr);
                for (size_t i = n; i < stride; i++) CHECK(g_param[m * stride + i] == param0[m * stride + i]);
            }
            for (float* q : {d_param, d_mom, d_second, d_work, d_update}) cudaCheck(cudaFree(q));
        }
}

TEST_CASE("gpu muon: muon_update_cuda gives the same bits twice") {
    if (!gpu_available()) { MESSAGE("SKIPPED: no CUDA GPU found"); return; }
    int rows = 70, cols = 37, count = 3;
    size_t n = (size_t)rows * cols;
    MuonHyper h;
    memset(&h, 0, sizeof(h));
    h.lr = 0.02f;
    h.momentum = 0.95f;
    h.nesterov = 1;
    h.normuon = 1;
    h.ns_steps = 5;
    h.beta2 = 0.95f;
    h.step = 1;
    std::vector<float> grad = random_vector(count * n, 230), param = random_vector(count * n, 231);
    std::vector<float> results[2];
    for (int run = 0; run < 2; run++) {
        float *d_param = to_device(param), *d_grad = to_device(grad);
        float *d_mom = to_device(std::vector<float>(count * n, 0.0f)), *d_second = to_device(std::vector<float>(count * n, 0.0f));
        float* d_work = to_device(std::vector<float>(muon_work_floats_cuda(rows, cols, count), 0.0f));
        muon_update_cuda(d_param, d_grad, d_mom, d_second, rows, cols, count, n, &h, d_work, NULL);
        results[run] = to_host(d_param, count * n);
        for (float* q : {d_param, d_grad, d_mom, d_second, d_work}) cudaCheck(cudaFree(q));
    }
    check_bitwise("parameters after muon_update_cuda", results[1], results[0]);
}

TEST_CASE("gpu muon: update_health_cuda matches update_health (ranks, orthogonality, cosine, RMS, spectral norm)") {
    if (!gpu_available()) { MESSAGE("SKIPPED: no CUDA GPU found"); return; }
    for (auto& shape : MUON_SHAPES) {
        int rows = shape[0], cols = shape[1], s = rows < cols ? rows : cols;
        size_t n = (size_t)rows * cols;
        CAPTURE(rows); CAPTURE(cols);
        std::vector<float> update = random_vector(n, 240), grad = random_vector(n, 241), weight = random_vector(n, 242);
        for (int i = 0; i < rows; i++)  // uneven rows: a spectrum far from flat, so the ranks mean something
            for (int j = 0; j < cols; j++) update[(size_t)i * cols + j] *= 1.0f + 3.0f * (i % 4);
        std::vector<double> update_d = to_double(update.data(), n), work(n + (size_t)s * s + rows + cols + s);
        UpdateHealth cpu = update_health(update_d.data(), grad.data(), weight.data(), rows, cols, work.data());
        float *d_update = to_device(update), *d_grad = to_device(grad), *d_weight = to_device(weight);
        std::vector<double> S(s);
        UpdateHealth gpu = update_health_cuda(d_update, d_grad, d_weight, rows, cols, S.data());
        // all in double on both sides; singular values from Jacobi (CPU) vs Gram eigenvalues (GPU) agree to
        // ~1e-12 relative for these well-conditioned matrices; 1e-8 leaves a wide margin
        CHECK(gpu.stable_rank == doctest::Approx(cpu.stable_rank).epsilon(1e-8));
        CHECK(gpu.effective_rank == doctest::Approx(cpu.effective_rank).epsilon(1e-8));
        CHECK(gpu.ortho_error == doctest::Approx(cpu.ortho_error).epsilon(1e-8));
        CHECK(gpu.grad_cosine == doctest::Approx(cpu.grad_cosine).epsilon(1e-8));
        CHECK(gpu.update_rms == doctest::Approx(cpu.update_rms).epsilon(1e-8));
        CHECK(gpu.weight_spectral_norm == doctest::Approx(cpu.weight_spectral_norm).epsilon(1e-8));
        for (float* q : {d_update, d_grad, d_weight}) cudaCheck(cudaFree(q));
    }
}
