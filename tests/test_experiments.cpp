// tests/test_experiments.cpp: the building blocks of dev/experiments.cpp (dev/experiments_linear.h) on cases
// with known answers: the per-layer targets multiply back to A, the flatness of orthogonal and rank-one
// matrices (and one that tells σ² shares from σ shares), the phase-2 error recurrence E' = E (I - η' W1ᵀW1)
// on a diagonal W1, the step-count prediction built on it, the phase-1 rules, and the three-layer phase 2 in
// W1's singular basis against its direct form. Small sizes: the whole file runs in about a second.
#include <doctest/doctest.h>
#include <algorithm>
#include <vector>
#include "dev/experiments_linear.h"

static std::vector<double> randn_vec(size_t n, uint64_t seed, double scale) {
    Rng rng = rng_make(seed);
    std::vector<double> v(n);
    for (size_t i = 0; i < n; i++) v[i] = scale * rng_normal(&rng);
    return v;
}

static double max_abs_diff(const double* a, const double* b, size_t n) {
    double m = 0.0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs(a[i] - b[i]));
    return m;
}

TEST_CASE("per-layer targets multiply back to A") {
    const int D = 64;
    size_t dd = (size_t)D * D;
    std::vector<double> A = randn_vec(dd, 11, 1.0 / sqrt((double)D));
    std::vector<double> W1s(dd), W2s(dd), W3s(dd), P(dd), Q(dd);
    // 1e-10 absolute on entries of size ~0.1: svd_jacobi's factors are accurate to ~1e-14 relative, and each
    // entry of the product sums 64 (or 64² for three factors) terms; this leaves a margin of ~1000.
    target_two_layer(A.data(), D, W1s.data(), W2s.data());
    mat_mul(P.data(), W2s.data(), W1s.data(), D, D, D);
    CHECK(max_abs_diff(P.data(), A.data(), dd) < 1e-10);
    target_three_layer(A.data(), D, W1s.data(), W2s.data(), W3s.data());
    mat_mul(P.data(), W2s.data(), W1s.data(), D, D, D);
    mat_mul(Q.data(), W3s.data(), P.data(), D, D, D);
    CHECK(max_abs_diff(Q.data(), A.data(), dd) < 1e-10);
    // balanced: W1*'s singular values are σ(A)^(1/2) (two layers), σ(A)^(1/3) (three)
    std::vector<double> sa(D), s1(D);
    spectrum_stats(A.data(), D, sa.data());
    spectrum_stats(W1s.data(), D, s1.data());
    for (int i = 0; i < D; i++) CHECK(s1[i] == doctest::Approx(cbrt(sa[i])).epsilon(1e-10));
}

TEST_CASE("flatness is 1 for an orthogonal matrix and 1/D for a rank-one matrix") {
    const int D = 64;
    size_t dd = (size_t)D * D;
    // Householder reflection I - 2vvᵀ/vᵀv: orthogonal by construction
    std::vector<double> v = randn_vec(D, 3, 1.0), Qm(dd), R(dd);
    double vv = 0.0;
    for (double x : v) vv += x * x;
    for (int i = 0; i < D; i++)
        for (int j = 0; j < D; j++) Qm[(size_t)i * D + j] = (i == j) - 2.0 * v[i] * v[j] / vv;
    SpectrumStats so = spectrum_stats(Qm.data(), D, NULL);
    // every σ is 1 up to rounding (~1e-15); flatness depends on them to first order: 1e-12 is generous
    CHECK(so.flatness == doctest::Approx(1.0).epsilon(1e-12));
    CHECK(so.kappa == doctest::Approx(1.0).epsilon(1e-12));

    std::vector<double> u = randn_vec(D, 4, 1.0), w = randn_vec(D, 5, 1.0);
    for (int i = 0; i < D; i++)
        for (int j = 0; j < D; j++) R[(size_t)i * D + j] = u[i] * w[j];
    SpectrumStats s1 = spectrum_stats(R.data(), D, NULL);
    // the other 63 singular values sit at rounding level (~1e-16 σ_0): their share σ²/Σσ² ~ 1e-32 moves the
    // entropy by ~1e-30
    CHECK(s1.flatness == doctest::Approx(1.0 / D).epsilon(1e-12));
    CHECK(s1.sigma_min < 1e-12 * s1.sigma_max);

    // σ = (2, 1, 0, ...): the shares of σ² are (0.8, 0.2), so flatness = exp(-0.8 ln 0.8 - 0.2 ln 0.2)/D
    // = 1.6494/D; shares of σ itself (2/3, 1/3) would give 1.8899/D: this case tells the two apart
    std::fill(R.begin(), R.end(), 0.0);
    R[0] = 2.0;
    R[(size_t)D + 1] = 1.0;
    SpectrumStats s2 = spectrum_stats(R.data(), D, NULL);
    CHECK(s2.flatness == doctest::Approx(exp(-0.8 * log(0.8) - 0.2 * log(0.2)) / D).epsilon(1e-12));
    CHECK(s2.sigma_max == doctest::Approx(2.0).epsilon(1e-14));
}

TEST_CASE("one phase-2 SGD step maps E to E (I - eta' W1^T W1), eta' = 2 lr/||A||^2") {
    const int D = 16;
    size_t dd = (size_t)D * D;
    std::vector<double> A = randn_vec(dd, 21, 0.25), W2 = randn_vec(dd, 22, 0.25), W1(dd, 0.0), W1T(dd);
    for (int i = 0; i < D; i++) W1[(size_t)i * D + i] = 0.3 + 0.1 * i;  // diagonal, σ from 0.3 to 1.8
    transpose_square(W1T.data(), W1.data(), D);
    double normA = frobenius_norm(A.data(), dd), lr = 0.5;
    double eta = 2.0 * lr / (normA * normA);

    std::vector<double> E0(dd), E1(dd), E(dd), G(dd), expect(dd);
    mat_mul(E0.data(), W2.data(), W1.data(), D, D, D);
    for (size_t i = 0; i < dd; i++) E0[i] -= A[i];
    double en = phase2_two_layer_step(W2.data(), W1.data(), W1T.data(), A.data(), normA, lr, D, E.data(), G.data());
    CHECK(en == doctest::Approx(frobenius_norm(E0.data(), dd)).epsilon(1e-14));
    mat_mul(E1.data(), W2.data(), W1.data(), D, D, D);
    for (size_t i = 0; i < dd; i++) E1[i] -= A[i];
    // W1ᵀW1 = diag(d_j²): column j of E is scaled by (1 - η' d_j²)
    for (int i = 0; i < D; i++)
        for (int j = 0; j < D; j++) {
            double d = W1[(size_t)j * D + j];
            expect[(size_t)i * D + j] = E0[(size_t)i * D + j] * (1.0 - eta * d * d);
        }
    // entries are O(0.5); a few products of 16 terms each: rounding ~1e-16 per term, 1e-14 leaves a margin
    CHECK(max_abs_diff(E1.data(), expect.data(), dd) < 1e-14);
    CHECK(max_abs_diff(E0.data(), expect.data(), dd) > 1e-3);  // the step did move E: the check has teeth
}

TEST_CASE("the closed-form phase-2 step count equals the simulated SGD count") {
    LinConfig cfg = lin_config_default();
    cfg.D = 16;
    cfg.phase2_lr = 0.5;  // η' ≈ 2·0.5/16: a few hundred steps at D = 16
    cfg.threshold = 0.05;
    size_t dd = (size_t)cfg.D * cfg.D;
    double scale = 1.0 / sqrt((double)cfg.D);
    for (uint64_t seed = 1; seed <= 3; seed++) {
        // W1 = I + noise of spectral norm ~0.4: σ(W1) in about [0.6, 1.4], a few hundred steps to the threshold
        std::vector<double> A = randn_vec(dd, 100 + seed, scale), W1 = randn_vec(dd, 200 + seed, 0.05);
        std::vector<double> W2 = randn_vec(dd, 300 + seed, scale);
        for (int i = 0; i < cfg.D; i++) W1[(size_t)i * cfg.D + i] += 1.0;
        double normA = frobenius_norm(A.data(), dd), err = 0.0;
        int predicted = phase2_predict_steps(W1.data(), W2.data(), A.data(), normA, &cfg, 20000);
        int simulated = phase2_two_layer_run(W2.data(), W1.data(), A.data(), normA, &cfg, 20000, 0, NULL, &err);
        REQUIRE(simulated > 10);
        // identical in exact arithmetic; 1 step of slack for an error within rounding of the threshold
        CHECK(abs(predicted - simulated) <= 1);
        CHECK(err <= cfg.threshold);
    }
}

TEST_CASE("phase-1 rules: SGD is exact gradient descent, the others change direction but not step size") {
    const int D = 16;
    size_t dd = (size_t)D * D;
    std::vector<double> W1s = randn_vec(dd, 31, 0.25), W0 = randn_vec(dd, 32, 0.25), W(dd), G(dd);
    std::vector<double> scratch(phase1_scratch_doubles(D));
    double normA = 4.0, lr = 0.2;
    for (size_t i = 0; i < dd; i++) G[i] = 2.0 * (W0[i] - W1s[i]) / (normA * normA);
    double gnorm = frobenius_norm(G.data(), dd);
    Phase1Rule rules[4] = {{"sgd", RULE_SGD, 1.0}, {"muon", RULE_MUON_NS, 0.0}, {"polar", RULE_SPECTRAL, 0.0},
                           {"polar svd", RULE_POLAR_SVD, 0.0}};
    std::vector<double> polar_step(dd);
    for (int r = 0; r < 4; r++) {
        W = W0;
        double e = phase1_step(W.data(), W1s.data(), normA, &rules[r], lr, 3, D, scratch.data());
        CHECK(e == doctest::Approx(frobenius_diff(W0.data(), W1s.data(), dd) / normA).epsilon(1e-14));
        std::vector<double> step(dd);
        for (size_t i = 0; i < dd; i++) step[i] = (W0[i] - W[i]) / lr;
        CHECK(frobenius_norm(step.data(), dd) == doctest::Approx(gnorm).epsilon(1e-12));
        double cosine = matrix_cosine(step.data(), G.data(), dd);
        if (r == 0) CHECK(max_abs_diff(step.data(), G.data(), dd) < 1e-15);
        else CHECK(cosine < 0.99);  // a random 16x16 gradient is far from orthogonal
        // the exact polar factor has a flat spectrum (spectral_power's regularisation error is ~1e-13 here)
        if (r >= 2) CHECK(spectrum_stats(step.data(), D, NULL).flatness == doctest::Approx(1.0).epsilon(1e-9));
        if (r == 2) polar_step = step;
        // the two routes to the polar factor agree (measured: ~6e-16 on entries of ~0.03; Newton stops once
        // ‖ZY − I‖ < 1e-8 but the last step squares that error, so 1e-12 is a safe bound)
        if (r == 3) CHECK(max_abs_diff(step.data(), polar_step.data(), dd) < 1e-12);
    }
}

TEST_CASE("staged runs reproduce exactly, SGD's phase 1 has its closed form, predictions match") {
    LinConfig cfg = lin_config_default();
    cfg.D = 8;
    cfg.phase1_steps = 50;
    cfg.phase2_lr = 0.2;
    cfg.threshold = 0.1;
    cfg.phase2_max2 = cfg.phase2_max3 = 5000;
    Phase1Rule rules[2] = {{"sgd", RULE_SGD, 1.0}, {"muon", RULE_MUON_NS, 0.0}};
    StagedResult a[2], b[2];
    std::vector<double> curves1(2 * (cfg.phase1_steps + 1));
    staged_run(2, &cfg, 7, rules, 2, a, curves1.data(), NULL, NULL, NULL);
    staged_run(2, &cfg, 7, rules, 2, b, NULL, NULL, NULL, NULL);
    for (int r = 0; r < 2; r++) {
        CHECK(a[r].phase1_err == b[r].phase1_err);  // bitwise: same seed, same arithmetic
        CHECK(a[r].phase2_steps == b[r].phase2_steps);
        REQUIRE(a[r].phase2_steps > 0);
        CHECK(abs(a[r].predicted - a[r].phase2_steps) <= 1);
    }
    // SGD on ‖W1 - W1*‖²/‖A‖² contracts the error by (1 - 2 lr/‖A‖²) per step; ‖A‖ is recovered from the
    // first curve point and the draws, so check the ratio curve[T]/curve[0] against the contraction instead
    Rng rng = rng_make(2 * 7);
    std::vector<double> A(64);
    randn_matrix(A.data(), 8, 8, 1.0 / sqrt(8.0), &rng);
    double normA = frobenius_norm(A.data(), 64);
    double expect = pow(1.0 - 2.0 * cfg.phase1_lr / (normA * normA), cfg.phase1_steps);
    CHECK(curves1[cfg.phase1_steps] / curves1[0] == doctest::Approx(expect).epsilon(1e-12));
    CHECK(a[0].phase1_err == curves1[cfg.phase1_steps]);
    StagedResult c[2];
    staged_run(3, &cfg, 7, rules, 2, c, NULL, NULL, NULL, NULL);
    for (int r = 0; r < 2; r++) CHECK(c[r].phase2_steps > 0);
}

TEST_CASE("three-layer phase 2 in W1's singular basis is the same SGD as the direct form") {
    LinConfig cfg = lin_config_default();
    cfg.D = 12;
    cfg.phase2_lr = 0.3;
    cfg.threshold = 0.05;
    size_t dd = (size_t)cfg.D * cfg.D;
    double scale = 1.0 / sqrt((double)cfg.D);
    std::vector<double> A = randn_vec(dd, 41, scale), W1 = randn_vec(dd, 42, 0.1);
    for (int i = 0; i < cfg.D; i++) W1[(size_t)i * cfg.D + i] += 1.0;  // σ(W1) in about [0.6, 1.4]
    std::vector<double> W2a = randn_vec(dd, 43, scale), W3a = randn_vec(dd, 44, scale), W2b = W2a, W3b = W3a;
    double normA = frobenius_norm(A.data(), dd), ea = 0.0, eb = 0.0;
    const int steps = 3000;
    std::vector<double> ca(steps + 1), cb(steps + 1);
    int ha = phase2_three_layer_run(W3a.data(), W2a.data(), W1.data(), A.data(), normA, &cfg, steps, steps, ca.data(), &ea, 0);
    int hb = phase2_three_layer_run(W3b.data(), W2b.data(), W1.data(), A.data(), normA, &cfg, steps, steps, cb.data(), &eb, 1);
    REQUIRE(ha > 50);  // the run crossed the threshold, after a real number of steps
    CHECK(abs(ha - hb) <= 1);
    // the same trajectory: every step's error and the final layers (W2 rotated back). The rotation only
    // reorders the rounding (~1e-16 a step); 3000 contracting steps keep it far below 1e-9.
    CHECK(max_abs_diff(ca.data(), cb.data(), steps + 1) < 1e-9);
    CHECK(max_abs_diff(W3a.data(), W3b.data(), dd) < 1e-9);
    CHECK(max_abs_diff(W2a.data(), W2b.data(), dd) < 1e-9);
    CHECK(ca[steps] < 0.5 * ca[0]);  // the layers did move: the comparison has teeth
}
