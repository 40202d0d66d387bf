// spectral.h: the spectral family U Σ^p Vᵀ of a matrix (arXiv 2602.04669) without an SVD, by coupled Newton
// square roots: the fp64 CPU reference, then its batched fp32 GPU twin. Flow: muon_update (muon.h) -> here for
// MUON_SPECTRAL.
#pragma once
#include "orthogonalize.h"

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

#ifdef __CUDACC__
// ----------------------------------------------------------------------------------------------------
// GPU: the same for `count` packed matrices in fp32, a fixed number of Newton steps (no host sync for a residual)

#define MUON_SPECTRAL_EPS_F32 1e-6     // spectral_power's regularizer in fp32 (muon.h uses 1e-12 in fp64): an
                                       // eigenvalue of M/‖M‖_F below ~1e-6 is at fp32 rounding level anyway

#define MUON_SQRT_NEWTON_STEPS 24      // fixed (no host sync for a residual): an eigenvalue of 1e-6 grows
                                       // ×9/4 per step to ~0.3 in 16 steps, then converges in ~4 more

// muon.h's sqrt_newton, batched, a fixed MUON_SQRT_NEWTON_STEPS steps. Y, Z, T, tmp: (count, s, s).
static void sqrt_newton_cuda(float* Y, float* Z, float* T, float* tmp, int s, int count) {
    size_t ss = (size_t)s * s;
    long long st = (long long)ss;
    cudaCheck(cudaMemset(Z, 0, sizeof(float) * count * ss));
    muon_identity_kernel<<<muon_grid(ss, count), 256>>>(Z, s, 1.0f, 1.0f);  // Z = I
    cudaCheckLaunch();
    for (int it = 0; it < MUON_SQRT_NEWTON_STEPS; it++) {
        gemm_batched_cuda(MUON_GEMM, T, Z, Y, s, s, s, false, false, 1.0f, 0.0f, s, s, s, st, st, st, count);    // T = ZY
        muon_identity_kernel<<<muon_grid(ss, count), 256>>>(T, s, -0.5f, 1.5f);                       // ½(3I − T)
        cudaCheckLaunch();
        gemm_batched_cuda(MUON_GEMM, tmp, Y, T, s, s, s, false, false, 1.0f, 0.0f, s, s, s, st, st, st, count);  // Y <- YT
        cudaCheck(cudaMemcpyAsync(Y, tmp, sizeof(float) * count * ss, cudaMemcpyDeviceToDevice));
        gemm_batched_cuda(MUON_GEMM, tmp, T, Z, s, s, s, false, false, 1.0f, 0.0f, s, s, s, st, st, st, count);  // Z <- TZ
        cudaCheck(cudaMemcpyAsync(Z, tmp, sizeof(float) * count * ss, cudaMemcpyDeviceToDevice));
        muon_symmetrize_kernel<<<muon_grid(ss, count), 256>>>(Y, Z, s);
        cudaCheckLaunch();
    }
}

// muon.h's spectral_power (U Σ^p Vᵀ) for `count` packed matrices, fp32, regularized by MUON_SPECTRAL_EPS_F32.
// work: count·(n + 5s²) floats.
static void spectral_power_cuda(float* X, int rows, int cols, int count, double p, float* work) {
    if (p > 1.0) p = 1.0;
    if (!(p > 0.0)) p = 0.0;
    int q_bits = (int)lround((1.0 - p) * 0.5 * (1 << SPECTRAL_BITS));
    if (q_bits == 0) return;
    int s = rows < cols ? rows : cols;
    size_t n = (size_t)rows * cols, ss = (size_t)s * s;
    long long st = (long long)ss;
    float* Y = work;               // (count, s, s) N, then its successive square roots
    float* Z = Y + count * ss;     // inverse of the latest root
    float* T = Z + count * ss;     // Newton scratch
    float* tmp = T + count * ss;   // product scratch
    float* P = tmp + count * ss;   // accumulates N^(-q)
    float* out = P + count * ss;   // (count, rows, cols)
    muon_gram(Y, X, rows, cols, count);
    double* mnorm = muon_norms(Y, ss, count, 1);  // ‖M‖_F of each Gram matrix, kept for the final scale
    muon_scale(Y, ss, count, NULL, mnorm, SCALE_POWER, 0.0, -1.0);
    muon_identity_kernel<<<muon_grid(ss, count), 256>>>(Y, s, 1.0f, (float)MUON_SPECTRAL_EPS_F32);
    cudaCheckLaunch();
    cudaCheck(cudaMemset(P, 0, sizeof(float) * count * ss));
    muon_identity_kernel<<<muon_grid(ss, count), 256>>>(P, s, 1.0f, 1.0f);
    cudaCheckLaunch();
    int bits = q_bits;
    for (int level = 1; level <= SPECTRAL_BITS && bits != 0; level++) {
        sqrt_newton_cuda(Y, Z, T, tmp, s, count);
        int bit = 1 << (SPECTRAL_BITS - level);
        if (bits & bit) {
            gemm_batched_cuda(MUON_GEMM, tmp, P, Z, s, s, s, false, false, 1.0f, 0.0f, s, s, s, st, st, st, count);
            cudaCheck(cudaMemcpyAsync(P, tmp, sizeof(float) * count * ss, cudaMemcpyDeviceToDevice));
            bits &= ~bit;
        }
    }
    muon_apply_small_side(out, P, X, rows, cols, count);
    cudaCheck(cudaMemcpyAsync(X, out, sizeof(float) * count * n, cudaMemcpyDeviceToDevice));
    muon_scale(X, n, count, NULL, mnorm, SCALE_POWER, 0.0, -(double)q_bits / (1 << SPECTRAL_BITS));
    if (q_bits == 1 << (SPECTRAL_BITS - 1)) {  // p = 0: two cubic NS steps polish to the polar factor
        static const double cubic[3] = {1.5, -0.5, 0.0};
        newton_schulz_cuda(X, rows, cols, count, cubic, 0, 2, 0.0, work);
    }
}
#endif
