// dev/experiments_linear.h: the building blocks of the papers' controlled linear experiments (fp64, CPU),
// shared by dev/experiments.cpp (which runs them over many seeds and writes tables and plots) and
// tests/test_experiments.cpp (which checks them on cases with known answers).
// Flow: outside the training flow. It asks what the optimizer step (muon.h: ns_quintic, spectral_power) does
// to a layer's *representation*, on problems small enough to solve exactly.
//
// The staged protocol ("Muon as a Residual Connection", arXiv 2607.01124; its code: huanghao-sss/
// muon_interpretation). A target A = randn(D, D)/√D is factored through its SVD A = U Σ Vᵀ into per-layer
// targets (W1* = Σ^½ Vᵀ, W2* = U Σ^½ for two layers; cube roots for three), so that the product is A.
//   Phase 1: train W1 alone toward W1*, loss ‖W1 - W1*‖²/‖A‖², with the update rule under study; every rule
//            takes a step of the gradient's Frobenius norm, so only the step's *direction* differs.
//   Phase 2: freeze W1, start the later layers from a fresh random draw, train them with plain SGD on
//            ‖W_L ··· W2 W1 - A‖²/‖A‖² and count the steps until ‖W_L ··· W1 - A‖/‖A‖ <= threshold
//            (three layers: in W1's singular basis, the same SGD at 3 matrix products a step instead of 5).
// The paper's claim: Muon ends phase 1 farther from W1*, yet its W1 is flatter (better conditioned), so phase 2
// is faster. Why conditioning sets the phase-2 speed, for two layers (E = W2 W1 - A, normalised loss):
//   ∇_{W2} = 2 E W1ᵀ/‖A‖²,  W2' = W2 - η∇  =>  E' = W2' W1 - A = E (I - η' W1ᵀW1),  η' = 2η/‖A‖².
// With W1 = P S Qᵀ, W1ᵀW1 = Q S² Qᵀ: E_t q_i = (1 - η' s_i²)^t E_0 q_i. Each right singular direction of W1
// contracts at its own rate, the slowest at the smallest s_i (phase2_predict_steps computes the exact count
// from this). Spectral rules: U Σ^p Vᵀ of the gradient ("Delving into Muon and Beyond", arXiv 2602.04669),
// p = 1 plain gradient, p = 0 Muon.
//
// Matrices are row-major double (rows, cols); here always square (D, D).
#pragma once
#include "../common.h"
#include "../muon.h"

// ----------------------------------------------------------------------------------------------------
// configuration and update rules

struct LinConfig {
    int D;               // width of every layer: all matrices are (D, D); 64 in the paper
    int phase1_steps;    // 600: steps of phase 1 (W1 toward W1*)
    double phase1_lr;    // 0.2, the same for every rule (each step has the gradient's Frobenius norm)
    int ns_steps;        // 3: Newton–Schulz steps of the Muon rule, as the paper's code (not 5 as in training)
    double phase2_lr;    // 0.02: plain SGD on the later layers
    double threshold;    // 0.05: phase 2 ends at ‖W_L···W1 - A‖/‖A‖ <= threshold
    int phase2_max2;     // 20000: phase-2 step cap, two-layer net (the paper's)
    int phase2_max3;     // 40000: the same for three layers, which take 16-27k steps at lr 0.02 (20 seeds): a
                         // cap of 20000 would censor a few seeds of every rule (the tables count both)
    int curve2_steps;    // 20000: phase-2 curves (plots) run this long, two layers; <= phase2_max2
    int curve3_steps;    // the same for three layers; <= phase2_max3
};

static LinConfig lin_config_default() {
    LinConfig c;
    c.D = 64;
    c.phase1_steps = 600;
    c.phase1_lr = 0.2;
    c.ns_steps = 3;
    c.phase2_lr = 0.02;
    c.threshold = 0.05;
    c.phase2_max2 = 20000;
    c.phase2_max3 = 40000;
    c.curve2_steps = 20000;
    c.curve3_steps = 20000;
    return c;
}

enum Phase1Kind {
    RULE_SGD = 0,        // the raw gradient (p = 1)
    RULE_MUON_NS = 1,    // Keller's quintic Newton–Schulz, ns_steps steps (approximate polar factor, p ≈ 0)
    RULE_SPECTRAL = 2,   // U Σ^p Vᵀ by spectral_power (coupled Newton iteration)
    RULE_POLAR_SVD = 3,  // U Vᵀ from svd_jacobi: the exact polar factor (p = 0), a reference for Muon's NS;
                         // the same as spectral_power(p = 0) (tested), cheaper on the nearly singular
                         // gradients this rule produces, where the Newton runs need ~45 iterations
};

struct Phase1Rule {
    const char* name;  // short label for tables and legends
    int kind;          // Phase1Kind
    double p;          // exponent, RULE_SPECTRAL only
};

// ----------------------------------------------------------------------------------------------------
// small matrix helpers (products come from muon.h: mat_mul, mat_mul_atb)

static void randn_matrix(double* W, int rows, int cols, double scale, Rng* rng) {
    for (size_t i = 0; i < (size_t)rows * cols; i++) W[i] = scale * rng_normal(rng);
}

static void transpose_square(double* T, const double* X, int D) {
    for (int i = 0; i < D; i++)
        for (int j = 0; j < D; j++) T[(size_t)j * D + i] = X[(size_t)i * D + j];
}

// ‖X - Y‖_F
static double frobenius_diff(const double* X, const double* Y, size_t n) {
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += (X[i] - Y[i]) * (X[i] - Y[i]);
    return sqrt(s);
}

// ----------------------------------------------------------------------------------------------------
// per-layer targets from the SVD A = U Σ Vᵀ (svd_jacobi: U (D, D), S (D), V (D, D), columns = vectors)

// The balanced factorisation of A into `layers` (2 or 3) factors, every one with singular values σ_i^(1/layers):
//   two layers:   W1* = Σ^½ Vᵀ, W2* = U Σ^½, so W2* W1* = U Σ Vᵀ = A
//   three layers: W1* = Σ^⅓ Vᵀ, W2* = Σ^⅓ (diagonal), W3* = U Σ^⅓, so W3* W2* W1* = A
// (W3s is not touched for two layers.)
static void balanced_targets(const double* A, int D, int layers, double* W1s, double* W2s, double* W3s) {
    size_t dd = (size_t)D * D;
    double* U = (double*)xmalloc(dd * sizeof(double));
    double* V = (double*)xmalloc(dd * sizeof(double));
    double* S = (double*)xmalloc(D * sizeof(double));
    double* work = (double*)xmalloc(muon_work_doubles(D, D) * sizeof(double));
    svd_jacobi(A, D, D, U, S, V, work);
    for (int i = 0; i < D; i++) S[i] = layers == 2 ? sqrt(S[i]) : cbrt(S[i]);  // each factor's σ_i
    double* last = layers == 2 ? W2s : W3s;
    for (int i = 0; i < D; i++)
        for (int j = 0; j < D; j++) {
            W1s[(size_t)i * D + j] = S[i] * V[(size_t)j * D + i];   // row i: σ_i^(1/L) v_iᵀ
            last[(size_t)i * D + j] = U[(size_t)i * D + j] * S[j];  // column j: σ_j^(1/L) u_j
            if (layers == 3) W2s[(size_t)i * D + j] = i == j ? S[i] : 0.0;
        }
    free(U);
    free(V);
    free(S);
    free(work);
}

static void target_two_layer(const double* A, int D, double* W1s, double* W2s) {
    balanced_targets(A, D, 2, W1s, W2s, NULL);
}

static void target_three_layer(const double* A, int D, double* W1s, double* W2s, double* W3s) {
    balanced_targets(A, D, 3, W1s, W2s, W3s);
}

// ----------------------------------------------------------------------------------------------------
// spectrum of a layer

struct SpectrumStats {
    double flatness;  // exp(H(σ²/Σσ²))/D (muon.h sv_flatness): 1 for an orthogonal matrix, 1/D for rank one
    double kappa;     // σ_max/σ_min (inf for a singular matrix)
    double sigma_min, sigma_max;
};

// S (D): the singular values, descending (may be NULL)
static SpectrumStats spectrum_stats(const double* W, int D, double* S) {
    double* work = (double*)xmalloc((muon_work_doubles(D, D) + D) * sizeof(double));
    double* s = work + muon_work_doubles(D, D);
    svd_jacobi(W, D, D, NULL, s, NULL, work);
    SpectrumStats st;
    st.flatness = sv_flatness(s, D);
    st.sigma_max = s[0];
    st.sigma_min = s[D - 1];
    st.kappa = s[D - 1] > 0.0 ? s[0] / s[D - 1] : INFINITY;
    if (S) memcpy(S, s, D * sizeof(double));
    free(work);
    return st;
}

// ----------------------------------------------------------------------------------------------------
// phase 1: W1 toward W1*, loss ‖W1 - W1*‖²/‖A‖², gradient G = 2(W1 - W1*)/‖A‖²

// Scratch for one phase-1 step: G, O, U, V (D, D) each, S (D), then muon_work_doubles(D, D).
static size_t phase1_scratch_doubles(int D) { return 4 * (size_t)D * D + D + muon_work_doubles(D, D); }

// One step: O = rule(G), rescaled to ‖G‖_F (the paper's code: the direction changes, the step size does
// not), then W1 <- W1 - lr·O. Returns ‖W1 - W1*‖/‖A‖ before the step.
static double phase1_step(double* W1, const double* W1s, double normA, const Phase1Rule* rule, double lr,
                          int ns_steps, int D, double* scratch) {
    size_t dd = (size_t)D * D;
    double* G = scratch;       // (D, D)
    double* O = G + dd;        // (D, D)
    double* U = O + dd;        // (D, D) RULE_POLAR_SVD only
    double* V = U + dd;        // (D, D)
    double* S = V + dd;        // (D)
    double* work = S + D;      // muon_work_doubles(D, D)
    double c = 2.0 / (normA * normA), dist = 0.0;
    for (size_t i = 0; i < dd; i++) {
        double d = W1[i] - W1s[i];
        dist += d * d;
        G[i] = c * d;
        O[i] = G[i];
    }
    if (rule->kind == RULE_MUON_NS) ns_quintic(O, D, D, ns_steps, work);
    else if (rule->kind == RULE_SPECTRAL) spectral_power(O, D, D, rule->p, work);
    else if (rule->kind == RULE_POLAR_SVD) {
        svd_jacobi(G, D, D, U, S, V, work);
        mat_mul_abt(O, U, V, D, D, D);  // U Vᵀ
    }
    double gn = frobenius_norm(G, dd), on = frobenius_norm(O, dd);
    double scale = on > 0.0 ? lr * gn / on : 0.0;
    for (size_t i = 0; i < dd; i++) W1[i] -= scale * O[i];
    return sqrt(dist) / normA;
}

// The whole phase; curve (steps + 1) may be NULL: the relative error at every step and at the end.
// Returns ‖W1 - W1*‖/‖A‖ at the end.
static double phase1_run(double* W1, const double* W1s, double normA, const Phase1Rule* rule, const LinConfig* cfg,
                         double* curve) {
    int D = cfg->D;
    double* scratch = (double*)xmalloc(phase1_scratch_doubles(D) * sizeof(double));
    for (int t = 0; t < cfg->phase1_steps; t++) {
        double e = phase1_step(W1, W1s, normA, rule, cfg->phase1_lr, cfg->ns_steps, D, scratch);
        if (curve) curve[t] = e;
    }
    free(scratch);
    double e = frobenius_diff(W1, W1s, (size_t)D * D) / normA;
    if (curve) curve[cfg->phase1_steps] = e;
    return e;
}

// ----------------------------------------------------------------------------------------------------
// phase 2, two layers: W1 frozen, SGD on W2, loss ‖W2 W1 - A‖²/‖A‖²

// One SGD step. W1T = W1ᵀ (precomputed: the product then runs down contiguous rows); E, G: (D, D) scratch.
// Leaves E = W2 W1 - A from *before* the step and returns ‖E‖_F.
//   ∇_{W2} = 2 E W1ᵀ/‖A‖²;  W2 <- W2 - lr·∇   (so E <- E (I - η' W1ᵀW1), η' = 2 lr/‖A‖²)
// Phase-2 bookkeeping after step t with relative error e: the curve (if kept), the error until the threshold
// is first met, the step it was met at (*hit, -1 before). True when the run can stop: the threshold met and
// the curve, if any, complete.
static bool phase2_track(double e, int t, double threshold, double* curve, int curve_steps, int* hit, double* err) {
    if (curve && t <= curve_steps) curve[t] = e;
    if (*hit < 0) *err = e;
    if (*hit < 0 && e <= threshold) *hit = t;
    return *hit >= 0 && (!curve || t >= curve_steps);
}

static double phase2_two_layer_step(double* W2, const double* W1, const double* W1T, const double* A, double normA,
                                    double lr, int D, double* E, double* G) {
    size_t dd = (size_t)D * D;
    mat_mul(E, W2, W1, D, D, D);
    for (size_t i = 0; i < dd; i++) E[i] -= A[i];
    double en = frobenius_norm(E, dd);
    mat_mul(G, E, W1T, D, D, D);
    double c = lr * 2.0 / (normA * normA);
    for (size_t i = 0; i < dd; i++) W2[i] -= c * G[i];
    return en;
}

// Runs phase 2 from W2 (updated in place). Returns the number of SGD steps taken before the relative error
// first fell to the threshold, or -1 if it did not within max_steps. curve (curve_steps + 1, curve_steps <=
// max_steps) may be NULL; when given, the run goes on to at least curve_steps steps, so that the curves of
// different runs line up for averaging. *final_err: the relative error at the crossing (or at max_steps).
static int phase2_two_layer_run(double* W2, const double* W1, const double* A, double normA, const LinConfig* cfg,
                                int max_steps, int curve_steps, double* curve, double* final_err) {
    int D = cfg->D;
    size_t dd = (size_t)D * D;
    double* W1T = (double*)xmalloc(3 * dd * sizeof(double));
    double* E = W1T + dd;
    double* G = E + dd;
    transpose_square(W1T, W1, D);
    int hit = -1;
    double err = 0.0;
    for (int t = 0; t <= max_steps; t++) {
        double e;
        if (t < max_steps) e = phase2_two_layer_step(W2, W1, W1T, A, normA, cfg->phase2_lr, D, E, G) / normA;
        else {  // the error after the last step, without stepping again
            mat_mul(E, W2, W1, D, D, D);
            for (size_t i = 0; i < dd; i++) E[i] -= A[i];
            e = frobenius_norm(E, dd) / normA;
        }
        if (phase2_track(e, t, cfg->threshold, curve, curve_steps, &hit, &err)) break;
    }
    free(W1T);
    if (final_err) *final_err = err;
    return hit;
}

// The phase-2 step count predicted from W1's spectrum alone: with W1 = P S Qᵀ and E_0 = W2_0 W1 - A,
//   ‖E_t‖² = Σ_i ‖E_0 q_i‖² (1 - η' s_i²)^(2t),  η' = 2 lr/‖A‖²
// (the recurrence above, mode by mode). Returns the first t with ‖E_t‖/‖A‖ <= threshold, or -1 within max_steps.
static int phase2_predict_steps(const double* W1, const double* W2_0, const double* A, double normA,
                                const LinConfig* cfg, int max_steps) {
    int D = cfg->D;
    size_t dd = (size_t)D * D;
    double* buf = (double*)xmalloc((4 * dd + 3 * (size_t)D + muon_work_doubles(D, D)) * sizeof(double));
    double* P = buf;          // (D, D)
    double* Q = P + dd;       // (D, D) right singular vectors as columns
    double* E0 = Q + dd;      // (D, D)
    double* EQ = E0 + dd;     // (D, D) E_0 Q: column i is E_0 q_i
    double* s = EQ + dd;      // (D)
    double* mass = s + D;     // (D) ‖E_0 q_i‖²
    double* rate = mass + D;  // (D) (1 - η' s_i²)²
    double* work = rate + D;
    svd_jacobi(W1, D, D, P, s, Q, work);
    mat_mul(E0, W2_0, W1, D, D, D);
    for (size_t i = 0; i < dd; i++) E0[i] -= A[i];
    mat_mul(EQ, E0, Q, D, D, D);
    double eta = 2.0 * cfg->phase2_lr / (normA * normA), thr2 = cfg->threshold * cfg->threshold * normA * normA;
    for (int i = 0; i < D; i++) {
        mass[i] = 0.0;
        for (int r = 0; r < D; r++) mass[i] += EQ[(size_t)r * D + i] * EQ[(size_t)r * D + i];
        double f = 1.0 - eta * s[i] * s[i];
        rate[i] = f * f;
    }
    int hit = -1;
    for (int t = 0; t <= max_steps; t++) {
        double total = 0.0;
        for (int i = 0; i < D; i++) total += mass[i];
        if (total <= thr2) {
            hit = t;
            break;
        }
        for (int i = 0; i < D; i++) mass[i] *= rate[i];
    }
    free(buf);
    return hit;
}

// ----------------------------------------------------------------------------------------------------
// phase 2, three layers: W1 frozen, SGD on W2 and W3 together, loss ‖W3 W2 W1 - A‖²/‖A‖²

// Scratch: 5 (D, D) matrices.
// With H = W2 W1 and E = W3 H - A:  ∇_{W3} = 2 E Hᵀ/‖A‖²,  ∇_{W2} = 2 W3ᵀ E W1ᵀ/‖A‖²; both from the same
// point, then both layers step. Returns ‖E‖_F before the step. W1 enters the error's evolution on the right,
// through HᵀH = W1ᵀ(W2ᵀW2)W1 and W1ᵀW1: as for two layers, directions where W1 is weak are learned slowly.
static double phase2_three_layer_step(double* W3, double* W2, const double* W1, const double* W1T, const double* A,
                                      double normA, double lr, int D, double* scratch) {
    size_t dd = (size_t)D * D;
    double* H = scratch;     // (D, D) W2 W1
    double* HT = H + dd;     // (D, D) Hᵀ
    double* E = HT + dd;     // (D, D) W3 H - A
    double* G3 = E + dd;     // (D, D) E Hᵀ
    double* T = G3 + dd;     // (D, D) W3ᵀ E, then reused for W3ᵀ E W1ᵀ
    mat_mul(H, W2, W1, D, D, D);
    mat_mul(E, W3, H, D, D, D);
    for (size_t i = 0; i < dd; i++) E[i] -= A[i];
    double en = frobenius_norm(E, dd);
    transpose_square(HT, H, D);
    mat_mul(G3, E, HT, D, D, D);
    mat_mul_atb(H, W3, E, D, D, D);  // H is free now: W3ᵀ E
    mat_mul(T, H, W1T, D, D, D);
    double c = lr * 2.0 / (normA * normA);
    for (size_t i = 0; i < dd; i++) {
        W3[i] -= c * G3[i];
        W2[i] -= c * T[i];
    }
    return en;
}

// The same step in W1's singular basis. With W1 = P S Qᵀ (fixed), substitute V2 = W2 P and Ã = A Q: then
// (W3 W2 W1 - A) Q = W3 V2 S - Ã =: Ẽ, with ‖Ẽ‖ = ‖E‖. The loss is the same function of (W3, V2) as of
// (W3, W2), and P is orthogonal, so the gradients transform alike (∇_{V2} = ∇_{W2} P) and SGD on (W3, V2) is
// SGD on (W3, W2) step for step (exactly in exact arithmetic; a test compares the two within rounding). W1
// acts as the diagonal S, which makes its role plain, and a step costs 3 products instead of 5:
//   H̃ = V2 S (columns scaled),  Ẽ = W3 H̃ - Ã,  ∇_{W3} = 2 Ẽ H̃ᵀ/‖A‖²,  ∇_{V2} = 2 (W3ᵀ Ẽ) S/‖A‖².
// Column i of V2 learns at a rate ∝ s_i²: directions where W1 is weak are learned slowly, as with two layers.
// Scratch: 4 (D, D) matrices. Returns ‖Ẽ‖_F before the step.
static double phase2_three_layer_step_svd(double* W3, double* V2, const double* s, const double* At, double normA,
                                          double lr, int D, double* scratch) {
    size_t dd = (size_t)D * D;
    double* H = scratch;     // (D, D) V2 S
    double* HT = H + dd;     // (D, D) H̃ᵀ
    double* E = HT + dd;     // (D, D) W3 H̃ - Ã
    double* G = E + dd;      // (D, D) Ẽ H̃ᵀ, then W3ᵀ Ẽ
    for (int r = 0; r < D; r++)
        for (int i = 0; i < D; i++) H[(size_t)r * D + i] = V2[(size_t)r * D + i] * s[i];
    mat_mul(E, W3, H, D, D, D);
    for (size_t i = 0; i < dd; i++) E[i] -= At[i];
    double en = frobenius_norm(E, dd);
    double c = lr * 2.0 / (normA * normA);
    transpose_square(HT, H, D);
    mat_mul(H, E, HT, D, D, D);      // H is free now: ∇_{W3}·‖A‖²/2 = Ẽ H̃ᵀ
    mat_mul_atb(G, W3, E, D, D, D);  // W3ᵀ Ẽ (from W3 before its step)
    for (size_t i = 0; i < dd; i++) W3[i] -= c * H[i];
    for (int r = 0; r < D; r++)
        for (int i = 0; i < D; i++) V2[(size_t)r * D + i] -= c * G[(size_t)r * D + i] * s[i];
    return en;
}

// As phase2_two_layer_run, for W2 and W3 (updated in place). svd_basis = 1 steps in W1's singular basis
// (phase2_three_layer_step_svd; what the experiments run), 0 steps as written (phase2_three_layer_step; the
// reference the tests compare it with).
static int phase2_three_layer_run(double* W3, double* W2, const double* W1, const double* A, double normA,
                                  const LinConfig* cfg, int max_steps, int curve_steps, double* curve,
                                  double* final_err, int svd_basis) {
    int D = cfg->D;
    size_t dd = (size_t)D * D;
    double* buf = (double*)xmalloc((10 * dd + D + muon_work_doubles(D, D)) * sizeof(double));
    double* W1T = buf;           // (D, D) W1ᵀ (direct)
    double* P = W1T + dd;        // (D, D) W1's left singular vectors (svd basis)
    double* Q = P + dd;          // (D, D) its right singular vectors
    double* At = Q + dd;         // (D, D) Ã = A Q
    double* V2 = At + dd;        // (D, D) W2 P
    double* scratch = V2 + dd;   // 5 (D, D): the direct step's; the svd-basis step uses 4
    double* s = scratch + 5 * dd;  // (D) W1's singular values
    double* work = s + D;          // muon_work_doubles(D, D)
    if (svd_basis) {
        svd_jacobi(W1, D, D, P, s, Q, work);
        mat_mul(At, A, Q, D, D, D);
        mat_mul(V2, W2, P, D, D, D);
    } else transpose_square(W1T, W1, D);
    int hit = -1;
    double err = 0.0;
    for (int t = 0; t <= max_steps; t++) {
        double e;
        if (t < max_steps)
            e = (svd_basis ? phase2_three_layer_step_svd(W3, V2, s, At, normA, cfg->phase2_lr, D, scratch)
                           : phase2_three_layer_step(W3, W2, W1, W1T, A, normA, cfg->phase2_lr, D, scratch)) /
                normA;
        else {  // the error after the last step, without stepping again
            double* H = scratch;
            double* E = scratch + dd;
            if (svd_basis) {
                for (int r = 0; r < D; r++)
                    for (int i = 0; i < D; i++) H[(size_t)r * D + i] = V2[(size_t)r * D + i] * s[i];
                mat_mul(E, W3, H, D, D, D);
                for (size_t i = 0; i < dd; i++) E[i] -= At[i];
            } else {
                mat_mul(H, W2, W1, D, D, D);
                mat_mul(E, W3, H, D, D, D);
                for (size_t i = 0; i < dd; i++) E[i] -= A[i];
            }
            e = frobenius_norm(E, dd) / normA;
        }
        if (phase2_track(e, t, cfg->threshold, curve, curve_steps, &hit, &err)) break;
    }
    if (svd_basis) mat_mul_abt(W2, V2, P, D, D, D);  // back to W2 = V2 Pᵀ
    free(buf);
    if (final_err) *final_err = err;
    return hit;
}

// ----------------------------------------------------------------------------------------------------
// one seed of a staged experiment, every rule from the same draws (a paired comparison)

struct StagedResult {
    double phase1_err;   // ‖W1 - W1*‖/‖A‖ after phase 1
    int phase2_steps;    // SGD steps to the threshold, -1 if not reached within the cap
    double phase2_err;   // relative error at the crossing (or at the cap)
    int predicted;       // two layers: phase2_predict_steps (-1: beyond the cap); three layers: -1
    SpectrumStats w1;    // W1 after phase 1
};

// Random draws, in this order from rng_make(2·seed) (two layers) or rng_make(2·seed + 1) (three layers), all
// scaled by 1/√D: A, W1_0, then the phase-2 starts (W2_0; W2_0 and W3_0). Every rule starts from the same
// W1_0 and the same phase-2 start. Per rule r: out[r]; curves1 + r·(phase1_steps + 1); curves2 + r·(len + 1),
// len = curve2_steps or curve3_steps; spectra + r·D (the three may be NULL); star_spectrum (D, may be NULL)
// gets W1*'s singular values.
static void staged_run(int layers, const LinConfig* cfg, uint64_t seed, const Phase1Rule* rules, int nrules,
                       StagedResult* out, double* curves1, double* curves2, double* spectra, double* star_spectrum) {
    int D = cfg->D, cap = layers == 2 ? cfg->phase2_max2 : cfg->phase2_max3;
    int len = layers == 2 ? cfg->curve2_steps : cfg->curve3_steps;
    size_t dd = (size_t)D * D;
    double* buf = (double*)xmalloc(10 * dd * sizeof(double));
    double *A = buf, *W1s = A + dd, *W2s = W1s + dd, *W3s = W2s + dd, *W1_0 = W3s + dd;
    double *W2_0 = W1_0 + dd, *W3_0 = W2_0 + dd, *W1 = W3_0 + dd, *W2 = W1 + dd, *W3 = W2 + dd;
    Rng rng = rng_make(2 * seed + (layers == 3));
    double scale = 1.0 / sqrt((double)D);
    randn_matrix(A, D, D, scale, &rng);
    randn_matrix(W1_0, D, D, scale, &rng);
    randn_matrix(W2_0, D, D, scale, &rng);
    if (layers == 3) randn_matrix(W3_0, D, D, scale, &rng);
    if (layers == 2) target_two_layer(A, D, W1s, W2s);
    else target_three_layer(A, D, W1s, W2s, W3s);
    double normA = frobenius_norm(A, dd);
    if (star_spectrum) spectrum_stats(W1s, D, star_spectrum);
    for (int r = 0; r < nrules; r++) {
        StagedResult* res = &out[r];
        memcpy(W1, W1_0, dd * sizeof(double));
        res->phase1_err = phase1_run(W1, W1s, normA, &rules[r], cfg, curves1 ? curves1 + (size_t)r * (cfg->phase1_steps + 1) : NULL);
        res->w1 = spectrum_stats(W1, D, spectra ? spectra + (size_t)r * D : NULL);
        double* c2 = curves2 ? curves2 + (size_t)r * (len + 1) : NULL;
        memcpy(W2, W2_0, dd * sizeof(double));
        if (layers == 2) {
            res->predicted = phase2_predict_steps(W1, W2_0, A, normA, cfg, cap);
            res->phase2_steps = phase2_two_layer_run(W2, W1, A, normA, cfg, cap, len, c2, &res->phase2_err);
        } else {
            memcpy(W3, W3_0, dd * sizeof(double));
            res->predicted = -1;
            res->phase2_steps = phase2_three_layer_run(W3, W2, W1, A, normA, cfg, cap, len, c2, &res->phase2_err, 1);
        }
    }
    free(buf);
}
