// muon.h: Muon, the optimizer of the 2-D hidden weight matrices, its variants, and the health metrics we log
// for it. This is the CPU half: fp64 reference math as pure functions (the matrix products and the SVD are
// in linalg.h); the CUDA half is muon_cuda.h. Flow: data -> model -> loss -> backward -> optimizer: optim.h hands every
// Muon-managed matrix to muon_update(); AdamW (adamw.h) keeps embeddings, head, gains and biases.
//
// What Muon does (KellerJordan/Muon; torch.optim.Muon since PyTorch 2.9), per weight W (rows, cols):
//   1. momentum       B <- B + (1-β)(G - B)   (β = 0.95: an exponential average of the gradient G)
//                     U = G + β(B - G) with Nesterov, else U = B
//   2. orthogonalize  O ≈ polar(U): for U = P Σ Qᵀ (SVD), O = P Qᵀ. Every singular direction of the step gets
//                     the same size, so the few dominant directions of a gradient no longer drown the rare
//                     ones; O is the steepest-descent step under the spectral norm.
//   3. scaled step    W <- W (1 - lr·wd) - lr·scale·O, scale = √max(1, rows/cols) ("original", Keller) or
//                     0.2·√max(rows, cols) ("match_rms_adamw", Moonlight arXiv 2502.16982: the update RMS
//                     then matches AdamW's, so AdamW's lr and wd carry over).
//
// Why the Newton–Schulz (NS) coefficients are what they are. One step X <- aX + b(XXᵀ)X + c(XXᵀ)²X maps
// X = P Σ Qᵀ to P φ(Σ) Qᵀ with φ(σ) = aσ + bσ³ + cσ⁵: it moves the singular values only, with nothing but
// matrix products (fast on a GPU; no SVD). Dividing X by ‖X‖_F first puts every σ in [0, 1]. The classic cubic
// (1.5, -0.5) converges to 1 but lifts a small σ by only 1.5x per step. Keller's quintic (3.4445, -4.7750,
// 2.0315) maximises the slope at zero, φ'(0) = a, so a σ of 1e-3 reaches order one within 5 steps
// (3.4445^5 ≈ 485); the price is that it never settles at 1 but oscillates in a band: 5 steps send σ/‖X‖_F in
// [0.01, 1] to [0.68, 1.13], and [1e-3, 1] to [0.47, 1.20] (tests/test_muon.cpp measures it on matrices).
// Training does not mind; what matters is that no direction is left behind.
//   Polar Express (Amsel et al., arXiv 2505.16932) uses a different (a, b, c) at each of its 5 steps, each the
// minimax-best quintic for the interval the singular values occupy after the step before: same cost, band
// [0.86, 1.14] for σ/‖X‖_F >= 1e-3 (the 1.01 in its normalisation is a safety margin).
//
// Variants (pure functions below; optim.h picks them per run through MuonHyper):
//   NorMuon (arXiv 2510.05491): per-row (per-neuron) Adam-like step sizes after orthogonalizing, since an
//     orthogonal update can still have very uneven row norms.
//   Spectral powers ("Delving into Muon and Beyond", arXiv 2602.04669): U Σ^p Vᵀ, from Muon (p = 0) to the raw
//     direction (p = 1), on a momentum or an Adam m̂/(√v̂ + ε) base.
//   Weight decay ∝ lr² (Chou, arXiv 2512.08217; AdamC, Defazio, arXiv 2506.02285): keeps weight norms steady
//     as the lr decays.
//   Health metrics ("Muon as a Residual Connection", arXiv 2607.01124): stable and effective rank and
//     orthogonality error of the update, its cosine with the gradient, its RMS, the weight's spectral norm.
//
// Conventions: matrices are row-major double (rows, cols); rows = fan-out (PyTorch's shape[0]); s = min(rows,
// cols), l = max(rows, cols), n = rows·cols. No function allocates: callers pass `work`; each function states
// how many doubles it needs, and muon_work_doubles(rows, cols) is enough for all of them. Matrix products run
// on OpenMP threads, each output row computed by one thread in a fixed order: results do not depend on the
// number of threads.
#pragma once
#include "device.h"  // HOST_DEVICE
#include "linalg.h"

// ----------------------------------------------------------------------------------------------------
// Newton–Schulz orthogonalization: Keller's quintic and Polar Express

static const double NS_ABC[3] = {3.4445, -4.7750, 2.0315};  // Keller's quintic
#define NS_EPS 1e-7  // X / (‖X‖_F + eps): a zero matrix stays zero

// Polar Express (arXiv 2505.16932), one (a, b, c) per step, as modded-nanogpt uses them
static const double POLAR_EXPRESS_ABC[5][3] = {
    {8.156554524902461, -22.48329292557795, 15.878769915207462},
    {4.042929935166739, -2.808917465908714, 0.5000178451051316},
    {3.8916678022926607, -2.772484153217685, 0.5060648178503393},
    {3.285753657755655, -2.3681294933425376, 0.46449024233003106},
    {2.3465413258596377, -1.7097828382687081, 0.42323551169305323},
};

// X <- X / (norm_mult·‖X‖_F + NS_EPS) (skipped when norm_mult = 0), then per step t, with (a, b, c) at
// abc + t·abc_stride (stride 0 repeats one triple): A = XXᵀ, B = bA + cA², X = aX + BX. A tall X uses A = XᵀX
// and X = aX + XB instead: the same map of the singular values (torch's "work on Xᵀ"), with the Gram matrix
// on the small side. work: n + 2s² doubles.
static void newton_schulz(double* X, int rows, int cols, const double* abc, int abc_stride, int steps,
                          double norm_mult, double* work) {
    int s = rows < cols ? rows : cols;
    size_t n = (size_t)rows * cols, ss = (size_t)s * s;
    double* A = work;       // (s, s) Gram matrix
    double* B = A + ss;     // (s, s) bA + cA²
    double* BX = B + ss;    // (rows, cols)
    if (norm_mult > 0.0) {
        double denom = norm_mult * frobenius_norm(X, n) + NS_EPS;
        for (size_t i = 0; i < n; i++) X[i] /= denom;
    }
    for (int t = 0; t < steps; t++) {
        const double* k = abc + (size_t)t * abc_stride;
        gram_small_side(A, X, rows, cols);
        mat_mul(B, A, A, s, s, s);
        for (size_t i = 0; i < ss; i++) B[i] = k[1] * A[i] + k[2] * B[i];
        apply_small_side(BX, B, X, rows, cols);
        for (size_t i = 0; i < n; i++) X[i] = k[0] * X[i] + BX[i];
    }
}

// Keller's quintic, `steps` times (5 in Muon). work: n + 2s² doubles.
static void ns_quintic(double* X, int rows, int cols, int steps, double* work) {
    newton_schulz(X, rows, cols, NS_ABC, 0, steps, 1.0, work);
}

// Polar Express: 5 steps, X / (1.01‖X‖_F + 1e-7) first. work: n + 2s² doubles.
static void polar_express(double* X, int rows, int cols, double* work) {
    newton_schulz(X, rows, cols, &POLAR_EXPRESS_ABC[0][0], 3, 5, 1.01, work);
}

// ----------------------------------------------------------------------------------------------------
// spectral powers U Σ^p Vᵀ (arXiv 2602.04669) without an SVD

#define SPECTRAL_BITS 6        // p is rounded to a multiple of 1/32 (exact for 0, 1/4, 1/2, 3/4, 1)
#define SPECTRAL_EPS 1e-12     // regularizer: M/‖M‖_F + eps·I (see spectral_power)
#define SQRT_NEWTON_TOL 1e-8   // stop once ‖ZY - I‖_F < tol: the step just taken squares the error (~1e-16)
#define SQRT_NEWTON_MAX 100    // never reached for eigenvalues >= SPECTRAL_EPS (about 40 iterations)
#define SQRT_NEWTON_FLOOR 1e-4 // below this residual a step must at least halve it, else rounding has won

// Coupled Newton–Schulz iteration for the square root (Higham, Functions of Matrices, §6.7): for a symmetric
// Y with eigenvalues in (0, 1], Z = I, repeat T = (3I - ZY)/2, Y <- YT, Z <- TZ: Y -> Y^(1/2), Z -> Y^(-1/2).
// Per eigenvalue λ, x = zy follows x <- x(3 - x)²/4: it grows ×9/4 per step while small, then converges
// quadratically, so λ = 1e-12 needs about 34 + 5 steps. Y, Z, T, tmp: (s, s) each.
static void sqrt_newton(double* Y, double* Z, double* T, double* tmp, int s) {
    size_t ss = (size_t)s * s;
    set_identity(Z, s);
    double previous = INFINITY;
    for (int it = 0; it < SQRT_NEWTON_MAX; it++) {
        mat_mul(T, Z, Y, s, s, s);
        double resid = 0.0;
        for (int i = 0; i < s; i++)
            for (int j = 0; j < s; j++) {
                double e = T[(size_t)i * s + j] - (i == j);
                resid += e * e;
                T[(size_t)i * s + j] = 0.5 * ((i == j ? 3.0 : 0.0) - T[(size_t)i * s + j]);
            }
        mat_mul(tmp, Y, T, s, s, s);
        memcpy(Y, tmp, ss * sizeof(double));
        mat_mul(tmp, T, Z, s, s, s);
        memcpy(Z, tmp, ss * sizeof(double));
        for (int i = 0; i < s; i++)  // Y and Z are symmetric in exact arithmetic: keep them so
            for (int j = i + 1; j < s; j++) {
                double y = 0.5 * (Y[(size_t)i * s + j] + Y[(size_t)j * s + i]);
                double z = 0.5 * (Z[(size_t)i * s + j] + Z[(size_t)j * s + i]);
                Y[(size_t)i * s + j] = Y[(size_t)j * s + i] = y;
                Z[(size_t)i * s + j] = Z[(size_t)j * s + i] = z;
            }
        // Converged; or, for an ill-conditioned Y (κ ~ 1e5 and more), stalled at the rounding floor of ~κ·1e-16
        // above the tolerance, where quadratic convergence has stopped and further steps only cost time
        double r = sqrt(resid);
        if (r < SQRT_NEWTON_TOL || (r < SQRT_NEWTON_FLOOR && r > 0.5 * previous)) break;
        previous = r;
    }
}

// X = U Σ Vᵀ -> U Σ^p Vᵀ, p in [0, 1] (clamped; rounded to a multiple of 1/32): X M^(-q) with M = XᵀX (tall or
// square; M^(-q) X with M = XXᵀ when wide) and q = (1-p)/2 in [0, 1/2]. With q = Σ_j b_j 2^-j (binary digits),
// M^(-q) = Π_{b_j = 1} (M^(1/2^j))^(-1): repeated square roots of M, each one run of sqrt_newton, which also
// returns the inverse root. p = 0 (q = 1/2): one run, then two cubic NS steps polish the result to the exact
// polar factor (not NS's banded one); p = 1/2 (q = 1/4): two runs; p = 1/4 (q = 3/8): three; p = 1: untouched.
// Regularization: the iteration runs on N = M/‖M‖_F + SPECTRAL_EPS·I, so σ comes out as σ^p times
// (1 + eps·‖M‖_F/σ²)^(-q): σ with σ² << eps·‖M‖_F (rank deficiency, rounding noise) are damped towards zero
// instead of blown up, and a zero matrix stays zero (for p = 0 too). The price, and fp64 rounding amplified
// by ‖N^(-1/2)‖ <= eps^(-1/2) = 1e6, measured against U Σ^p Vᵀ from svd_jacobi (relative Frobenius error):
// condition number 1e2: 1e-9 (p = 0: 1e-14); 1e4: 2e-6 (p = 0: 1e-10); rank deficient: 1e-7 (p = 0: 4e-6,
// the right singular space tilts slightly into the null space). Ample for an optimizer step.
// work: n + 5s² doubles.
static void spectral_power(double* X, int rows, int cols, double p, double* work) {
    if (p > 1.0) p = 1.0;
    if (!(p > 0.0)) p = 0.0;  // also catches NaN
    int q_bits = (int)lround((1.0 - p) * 0.5 * (1 << SPECTRAL_BITS));  // q·2^SPECTRAL_BITS
    if (q_bits == 0) return;
    int s = rows < cols ? rows : cols;
    size_t n = (size_t)rows * cols, ss = (size_t)s * s;
    double* Y = work;        // (s, s) N, then its successive square roots N^(1/2^j)
    double* Z = Y + ss;      // (s, s) the inverse of the latest root
    double* T = Z + ss;      // (s, s) Newton scratch
    double* tmp = T + ss;    // (s, s) product scratch
    double* P = tmp + ss;    // (s, s) accumulates N^(-q)
    double* out = P + ss;    // (rows, cols)
    gram_small_side(Y, X, rows, cols);
    double mnorm = frobenius_norm(Y, ss);
    if (!(mnorm > 0.0) || !isfinite(mnorm)) return;  // zero matrix: nothing to scale (NaN/inf: left visible)
    for (size_t i = 0; i < ss; i++) Y[i] /= mnorm;
    for (int i = 0; i < s; i++) Y[(size_t)i * s + i] += SPECTRAL_EPS;
    set_identity(P, s);
    int bits = q_bits;
    for (int level = 1; level <= SPECTRAL_BITS && bits != 0; level++) {
        sqrt_newton(Y, Z, T, tmp, s);  // Y = N^(1/2^level), Z = its inverse
        int bit = 1 << (SPECTRAL_BITS - level);
        if (bits & bit) {
            mat_mul(tmp, P, Z, s, s, s);
            memcpy(P, tmp, ss * sizeof(double));
            bits &= ~bit;
        }
    }
    apply_small_side(out, P, X, rows, cols);
    double scale = pow(mnorm, -(double)q_bits / (1 << SPECTRAL_BITS));  // M^(-q) = ‖M‖_F^(-q)·N^(-q)
    for (size_t i = 0; i < n; i++) X[i] = out[i] * scale;
    if (q_bits == 1 << (SPECTRAL_BITS - 1)) {  // p = 0: polish; a cubic NS step takes σ = 1 + e to 1 - 1.5e²
        static const double cubic[3] = {1.5, -0.5, 0.0};
        newton_schulz(X, rows, cols, cubic, 0, 2, 0.0, work);
    }
}

// ----------------------------------------------------------------------------------------------------
// the update for one Muon-managed matrix

enum MuonMethod { MUON_NS = 0, MUON_POLAR = 1, MUON_SPECTRAL = 2 };
enum MuonBase { BASE_MOMENTUM = 0, BASE_ADAM_RMS = 1 };
enum MuonAdjust { ADJUST_ORIGINAL = 0, ADJUST_MATCH_RMS_ADAMW = 1, ADJUST_NONE = 2 };

#define NORMUON_EPS 1e-10  // O_ij / (√v_i + eps), as the NorMuon code

struct MuonHyper {
    float lr;            // this step's learning rate (after warmup/decay)
    float lr_max;        // the schedule's peak lr (lr² weight decay only)
    float momentum;      // β (β1 of the Adam base), 0.95
    float weight_decay;  // decoupled: W <- W (1 - lr·wd), or (1 - wd·lr²/lr_max) with lr2_decay
    int nesterov;        // 1: orthogonalize G + β(B - G) instead of B (momentum base only)
    int method;          // MUON_NS (Keller's quintic), MUON_POLAR (Polar Express), MUON_SPECTRAL (U Σ^p Vᵀ)
    double p;            // MUON_SPECTRAL: the power, in [0, 1]
    int base;            // BASE_MOMENTUM (Muon) or BASE_ADAM_RMS (Adam's m̂/(√v̂ + ε), arXiv 2602.04669)
    int normuon;         // 1: NorMuon's per-row normalization after orthogonalizing (arXiv 2510.05491)
    int adjust;          // lr scale: ADJUST_ORIGINAL, ADJUST_MATCH_RMS_ADAMW, ADJUST_NONE (muon_lr_scale)
    int lr2_decay;       // 1: weight decay ∝ lr² (arXiv 2512.08217)
    int ns_steps;        // MUON_NS: Newton–Schulz steps, 5
    float beta2;         // second-moment decay: Adam base and NorMuon, 0.95
    float eps;           // Adam base: m̂/(√v̂ + eps)
    int step;            // 1-based step count, for Adam's bias correction
};

// lr multiplier for a (rows, cols) matrix, rows = fan-out, as torch.optim.Muon's _adjust_lr: original
// √max(1, rows/cols), match_rms_adamw 0.2·√max(rows, cols); ADJUST_NONE 1 (the spectral family's own choice)
static double muon_lr_scale(int rows, int cols, int adjust) {
    if (adjust == ADJUST_ORIGINAL) return sqrt(fmax(1.0, (double)rows / cols));
    if (adjust == ADJUST_MATCH_RMS_ADAMW) return 0.2 * sqrt((double)(rows > cols ? rows : cols));
    return 1.0;
}

// per-step weight factor. Decoupled decay: 1 - lr_t·wd. With lr2_mode (arXiv 2512.08217; AdamC):
// 1 - wd·lr_t²/lr_max, equal to the former at the peak lr and shrinking with lr², which keeps weight norms steady.
static double decay_factor(double lr_t, double lr_max, double wd, int lr2_mode) {
    if (lr2_mode && lr_max > 0.0) return 1.0 - wd * lr_t * lr_t / lr_max;
    return 1.0 - lr_t * wd;
}

// NorMuon (arXiv 2510.05491), on an orthogonalized O (rows, cols), in the order of the authors' normuon.py:
//   v_i <- β2·v_i + (1-β2)·mean_j O_ij²   (v_row (rows), float state, starts at 0)
//   O_ij <- O_ij / (√v_i + eps)          (eps outside the root, as in the paper and the code)
//   O <- O·‖O_before‖_F / ‖O‖_F          (the update keeps Muon's size; the lr scaling comes after)
static void normuon_normalize(double* O, int rows, int cols, float* v_row, double beta2, double eps) {
    size_t n = (size_t)rows * cols;
    double norm_before = frobenius_norm(O, n);
    for (int i = 0; i < rows; i++) {
        double* o = O + (size_t)i * cols;
        double mean_sq = frobenius_norm(o, cols);
        mean_sq = mean_sq * mean_sq / cols;
        v_row[i] = (float)(beta2 * v_row[i] + (1.0 - beta2) * mean_sq);
        double d = sqrt((double)v_row[i]) + eps;
        for (int j = 0; j < cols; j++) o[j] /= d;
    }
    double norm_after = frobenius_norm(O, n);
    double scale = norm_after > 0.0 ? norm_before / norm_after : 0.0;
    for (size_t i = 0; i < n; i++) O[i] *= scale;
}

// floats of optimizer state `second` that muon_update needs besides the momentum (rows·cols): Adam's v
// (rows·cols) for the RMS base, then NorMuon's v (rows) when on. 0: pass NULL.
static size_t muon_second_floats(int rows, int cols, const MuonHyper* h) {
    return (h->base == BASE_ADAM_RMS ? (size_t)rows * cols : 0) + (h->normuon ? (size_t)rows : 0);
}

// checks a configuration once, at setup: 0, or -1 with one line in err
static int muon_check(const MuonHyper* h, char* err) {
    if (h->method < MUON_NS || h->method > MUON_SPECTRAL || h->base < BASE_MOMENTUM || h->base > BASE_ADAM_RMS ||
        h->adjust < ADJUST_ORIGINAL || h->adjust > ADJUST_NONE)
        return fail(err, "muon: unknown method %d, base %d or lr adjustment %d", h->method, h->base, h->adjust);
    if (h->method == MUON_SPECTRAL && !(h->p >= 0.0 && h->p <= 1.0))
        return fail(err, "muon: power p = %g (expected 0 <= p <= 1)", h->p);
    if (h->method == MUON_NS && (h->ns_steps < 1 || h->ns_steps > 99))
        return fail(err, "muon: ns_steps = %d (expected 1..99)", h->ns_steps);
    if (!(h->momentum >= 0.0f && h->momentum < 1.0f))
        return fail(err, "muon: momentum = %g (expected 0 <= β < 1)", h->momentum);
    if ((h->normuon || h->base == BASE_ADAM_RMS) && !(h->beta2 >= 0.0f && h->beta2 < 1.0f))
        return fail(err, "muon: beta2 = %g (expected 0 <= β2 < 1)", h->beta2);
    if (!(h->lr >= 0.0f) || !(h->weight_decay >= 0.0f))
        return fail(err, "muon: lr %g, weight decay %g (expected >= 0)", h->lr, h->weight_decay);
    if (h->lr2_decay && !(h->lr_max > 0.0f))
        return fail(err, "muon: lr² weight decay needs lr_max > 0 (got %g)", h->lr_max);
    return 0;
}

// The elementwise parts of a step, in double (muon_update below and muon_cuda.h's kernels both call them).
// Step 1 for one entry: the momentum B <- lerp(B, G, 1-β) (and for the RMS base Adam's v) updated in place as
// float state; returns the base direction: nesterov ? lerp(G, B, β) : B, or for the RMS base B̂/(√v̂ + ε) with
// bias corrections bc1 = 1 − βᵗ, bc2 = 1 − β2ᵗ.
static HOST_DEVICE inline double muon_base_element(float* momentum, float* v, double g, double beta, double beta2,
                                                   double bc1, double bc2, double eps, int nesterov, int rms) {
    *momentum = (float)(*momentum + (1.0 - beta) * (g - *momentum));
    if (rms) {
        *v = (float)(beta2 * *v + (1.0 - beta2) * g * g);
        return (*momentum / bc1) / (sqrt(*v / bc2) + eps);
    }
    return nesterov ? g + beta * (*momentum - g) : *momentum;
}

// Step 4 for one entry: W <- W·decay − step·u; returns the applied step step·u
static HOST_DEVICE inline double muon_apply_element(float* param, double u, double decay, double step) {
    double d = step * u;
    *param = (float)(*param * decay - d);
    return d;
}

// One step for one matrix W = param (rows, cols), in place. For the defaults (MUON_NS, BASE_MOMENTUM, no NorMuon)
// this is torch.optim.Muon's step, with the orthogonalization in fp64 instead of bf16:
//   B <- lerp(B, G, 1-β);  U = nesterov ? lerp(G, B, β) : B;  O = NS(U);  W <- W·decay - lr·scale·O
// momentum (rows, cols) and second (muon_second_floats) are float state, zero at the start. update_out (rows,
// cols), if not NULL, receives the applied step lr·scale·O (so W_new = W·decay - update_out), for health metrics.
// work: 2n + 5s² doubles (muon_work_doubles).
static void muon_update(float* param, const float* grad, float* momentum, float* second, int rows, int cols,
                        const MuonHyper* h, double* work, double* update_out) {
    size_t n = (size_t)rows * cols;
    double* u = work;             // (rows, cols) the direction, then the orthogonalized update
    double* scratch = work + n;   // for the orthogonalizer
    double beta = h->momentum, beta2 = h->beta2;
    // 1. the base direction (Adam's RMS base: β1 = momentum, v in `second`, the spectral family's)
    int rms = h->base == BASE_ADAM_RMS, t = h->step > 0 ? h->step : 1;
    double bc1 = 1.0 - pow(beta, t), bc2 = 1.0 - pow(beta2, t);
#pragma omp parallel for schedule(static) if (n >= 65536)
    for (size_t i = 0; i < n; i++)
        u[i] = muon_base_element(&momentum[i], rms ? &second[i] : NULL, grad[i], beta, beta2, bc1, bc2, h->eps,
                                 h->nesterov, rms);
    // 2. orthogonalize, or take the spectral power
    if (h->method == MUON_POLAR) polar_express(u, rows, cols, scratch);
    else if (h->method == MUON_SPECTRAL) spectral_power(u, rows, cols, h->p, scratch);
    else ns_quintic(u, rows, cols, h->ns_steps, scratch);
    // 3. NorMuon: per-neuron step sizes
    if (h->normuon) {
        float* v_row = second + (h->base == BASE_ADAM_RMS ? n : 0);  // (rows)
        normuon_normalize(u, rows, cols, v_row, h->beta2, NORMUON_EPS);
    }
    // 4. decay, then the scaled step
    double decay = decay_factor(h->lr, h->lr_max, h->weight_decay, h->lr2_decay);
    double step = (double)h->lr * muon_lr_scale(rows, cols, h->adjust);
#pragma omp parallel for schedule(static) if (n >= 65536)
    for (size_t i = 0; i < n; i++) {
        double d = muon_apply_element(&param[i], u[i], decay, step);
        if (update_out) update_out[i] = d;
    }
}

// ----------------------------------------------------------------------------------------------------
// optimizer health ("Muon as a Residual Connection", arXiv 2607.01124). From singular values S (k, descending):

// stable rank ‖X‖_F²/‖X‖_2² = Σσ²/σ_max²: how many directions carry the energy (n for an orthogonal n×n)
static double sv_stable_rank(const double* S, int k) {
    if (!(S[0] > 0.0)) return 0.0;
    double sum = 0.0;
    for (int i = 0; i < k; i++) sum += S[i] * S[i];
    return sum / (S[0] * S[0]);
}

// exp of the entropy of a distribution proportional to w_i (0 for all-zero weights)
static double entropy_exp(const double* S, int k, int squared) {
    double total = 0.0, h = 0.0;
    for (int i = 0; i < k; i++) total += squared ? S[i] * S[i] : S[i];
    if (!(total > 0.0)) return 0.0;
    for (int i = 0; i < k; i++) {
        double pi = (squared ? S[i] * S[i] : S[i]) / total;
        if (pi > 0.0) h -= pi * log(pi);
    }
    return exp(h);
}

// effective rank (Roy & Vetterli 2007): exp(H(p)), p_i = σ_i/Σσ (not σ²): 1 for rank one, k for equal σ
static double sv_effective_rank(const double* S, int k) { return entropy_exp(S, k, 0); }

// the residual paper's flatness: exp(H(σ²/Σσ²))/k, in (0, 1]; 1 for a perfectly flat spectrum
static double sv_flatness(const double* S, int k) { return entropy_exp(S, k, 1) / k; }

// orthogonality error ‖QᵀQ - I‖_F on the small side, Q = X/σ_max: sqrt(Σ(σ_i²/σ_max² - 1)²). 0 for an
// orthogonal matrix; √k for a zero one.
static double sv_ortho_error(const double* S, int k) {
    double sum = 0.0;
    for (int i = 0; i < k; i++) {
        double e = S[0] > 0.0 ? S[i] * S[i] / (S[0] * S[0]) - 1.0 : -1.0;
        sum += e * e;
    }
    return sqrt(sum);
}

// The same on a matrix X (rows, cols): singular values from svd_jacobi. work: n + s² + s doubles.
static const double* singular_values(const double* X, int rows, int cols, double* work) {
    svd_jacobi(X, rows, cols, NULL, work, NULL, work + (rows < cols ? rows : cols));
    return work;  // (s)
}
static double matrix_stable_rank(const double* X, int rows, int cols, double* work) {
    return sv_stable_rank(singular_values(X, rows, cols, work), rows < cols ? rows : cols);
}
static double matrix_effective_rank(const double* X, int rows, int cols, double* work) {
    return sv_effective_rank(singular_values(X, rows, cols, work), rows < cols ? rows : cols);
}
static double matrix_flatness(const double* X, int rows, int cols, double* work) {
    return sv_flatness(singular_values(X, rows, cols, work), rows < cols ? rows : cols);
}
static double matrix_ortho_error(const double* X, int rows, int cols, double* work) {
    return sv_ortho_error(singular_values(X, rows, cols, work), rows < cols ? rows : cols);
}

// cos(A, B) = <A, B>/(‖A‖‖B‖) over all entries (0 if either is zero)
static double matrix_cosine(const double* A, const double* B, size_t n) {
    double ab = 0.0, aa = 0.0, bb = 0.0;
    for (size_t i = 0; i < n; i++) { ab += A[i] * B[i]; aa += A[i] * A[i]; bb += B[i] * B[i]; }
    return aa > 0.0 && bb > 0.0 ? ab / sqrt(aa * bb) : 0.0;
}

static double matrix_rms(const double* A, size_t n) { return n ? frobenius_norm(A, n) / sqrt((double)n) : 0.0; }

// largest singular value by power iteration on WᵀW from a fixed start: ‖Wv‖ for unit v rises to σ_max; stops
// when it changes by < 1e-12 relative, or after 300 iterations (then a lower bound, close unless the top two
// singular values nearly tie). work: rows + cols doubles.
static double matrix_spectral_norm(const double* W, int rows, int cols, double* work) {
    double* v = work;         // (cols)
    double* y = work + cols;  // (rows)
    for (int j = 0; j < cols; j++) v[j] = 1.0 + 0.5 * sin(1.0 + 2.399963 * j);  // generic, deterministic
    double sigma = 0.0;
    for (int it = 0; it < 300; it++) {
        double vn = frobenius_norm(v, cols);
        if (!(vn > 0.0)) return 0.0;
        for (int j = 0; j < cols; j++) v[j] /= vn;
        mat_mul(y, W, v, rows, cols, 1);
        double next = frobenius_norm(y, rows);
        mat_mul_atb(v, W, y, cols, rows, 1);
        int done = fabs(next - sigma) <= 1e-12 * next;
        sigma = next;
        if (done) break;
    }
    return sigma;
}

// what we log every N steps for one matrix
struct UpdateHealth {
    double stable_rank;           // of the applied update
    double effective_rank;        // of the applied update, exp(H(σ/Σσ))
    double ortho_error;           // of the applied update, ‖QᵀQ - I‖_F with Q = update/σ_max
    double grad_cosine;           // cos(raw gradient, applied update): how far the optimizer turned the step
    double update_rms;            // RMS of the applied update (lr included)
    double weight_spectral_norm;  // σ_max of the weight
};

// update: muon_update's update_out; grad and weight: float (rows, cols). work: n + s² + rows + cols doubles.
static UpdateHealth update_health(const double* update, const float* grad, const float* weight, int rows, int cols,
                                  double* work) {
    UpdateHealth hl;
    size_t n = (size_t)rows * cols;
    int k = rows < cols ? rows : cols;
    singular_values(update, rows, cols, work);
    hl.stable_rank = sv_stable_rank(work, k);
    hl.effective_rank = sv_effective_rank(work, k);
    hl.ortho_error = sv_ortho_error(work, k);
    for (size_t i = 0; i < n; i++) work[i] = grad[i];
    hl.grad_cosine = matrix_cosine(work, update, n);
    hl.update_rms = matrix_rms(update, n);
    for (size_t i = 0; i < n; i++) work[i] = weight[i];
    hl.weight_spectral_norm = matrix_spectral_norm(work, rows, cols, work + n);
    return hl;
}

// work doubles enough for every function in this file on a (rows, cols) matrix: 2n + 5s² + rows + cols
static size_t muon_work_doubles(int rows, int cols) {
    size_t s = rows < cols ? rows : cols;
    return 2 * (size_t)rows * cols + 5 * s * s + rows + cols;
}
