// spectral.h: the spectral family U Σ^p Vᵀ of a matrix (arXiv 2602.04669) without an SVD, by coupled Newton
// square roots, written once: fp64 on the CPU (the reference), batched fp32 on the GPU. Flow: muon_update
// (muon.h) -> here for MUON_SPECTRAL.
#pragma once
#include "orthogonalize.h"

#define SPECTRAL_BITS 6              // p is rounded to a multiple of 1/32 (exact for 0, 1/4, 1/2, 3/4, 1)
#define SPECTRAL_EPS 1e-12           // the regularizer in fp64: M/‖M‖_F + eps·I (see spectral_power)
#define SPECTRAL_EPS_F32 1e-6        // in fp32: an eigenvalue of M/‖M‖_F below ~1e-6 is rounding noise there

// the regularizer of a precision (the array's type: double on the CPU, float on the GPU)
static double spectral_eps(const double*) { return SPECTRAL_EPS; }
static double spectral_eps(const float*) { return SPECTRAL_EPS_F32; }

// When the coupled Newton iteration below stops, by precision (the array's type): once ‖ZY − I‖_F < tol (the
// step just taken squared the error); or, for an ill-conditioned Y, at the rounding floor (~κ·u above the
// tolerance) once a step below `floor` no longer halves the residual: quadratic convergence has stopped, and more
// steps only cost time, or, far past convergence, diverge; and after `max` steps at most. fp64: tol 1e-8, floor
// 1e-4, max 100 (eigenvalues down to 1e-12 need about 40 steps: each grows ×9/4 per step until it is O(1), then
// converges quadratically); fp32: tol 1e-5, floor 1e-2 (its rounding is 1e9 times coarser), max 24 (enough for
// eigenvalues down to its 1e-6).
struct SqrtNewtonRule {
    double tol, floor;
    int max_steps;
};
static SqrtNewtonRule sqrt_newton_rule(const double*) { return SqrtNewtonRule{1e-8, 1e-4, 100}; }
static SqrtNewtonRule sqrt_newton_rule(const float*) { return SqrtNewtonRule{1e-5, 1e-2, 24}; }

// ‖T_m − I‖_F (the largest over the batch; NaN if any is), then T_m <- ½(3I − T_m): the iteration's step matrix
static double mx_newton_step(double* T, int s, int count) {
    double worst = 0.0;
    for (int m = 0; m < count; m++) {
        double* t = T + (size_t)m * s * s;
        double resid = 0.0;
        for (int i = 0; i < s; i++)
            for (int j = 0; j < s; j++) {
                double e = t[(size_t)i * s + j] - (i == j);
                resid += e * e;
                t[(size_t)i * s + j] = 0.5 * ((i == j ? 3.0 : 0.0) - t[(size_t)i * s + j]);
            }
        double r = sqrt(resid);
        if (!(r <= worst)) worst = r;
    }
    return worst;
}
#ifdef __CUDACC__
// partial[m·MUON_NORM_BLOCKS + b]: this block's Σ (T − I)² over matrix m's entries (a grid of MUON_NORM_BLOCKS x
// count, stepping by the grid), in double; each entry then becomes ½(3δ − t)
static __global__ void mx_newton_step_kernel(double* partial, float* T, int s) {
    float* t = T + blockIdx.y * (size_t)s * s;
    double r = 0.0;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < (size_t)s * s; i += (size_t)gridDim.x * blockDim.x) {
        bool diag = i / s == i % s;
        double e = (double)t[i] - (diag ? 1.0 : 0.0);
        r += e * e;
        t[i] = 0.5f * ((diag ? 3.0f : 0.0f) - t[i]);
    }
    r = block_reduce_sum_double(r);
    if (threadIdx.x == 0) partial[blockIdx.y * MUON_NORM_BLOCKS + blockIdx.x] = r;
}
// the residual comes back to the host (a wait for the GPU), summed in a fixed order
static double mx_newton_step(float* T, int s, int count) {
    static void* buf = NULL;
    static size_t capacity = 0;
    static double* host = NULL;
    static int host_count = 0;
    double* partial = (double*)device_scratch_grow(&buf, &capacity, sizeof(double) * MUON_NORM_BLOCKS * count);
    if (count > host_count) {
        free(host);
        host = (double*)xmalloc(sizeof(double) * MUON_NORM_BLOCKS * count);
        host_count = count;
    }
    mx_newton_step_kernel<<<dim3(MUON_NORM_BLOCKS, count), 256>>>(partial, T, s);
    cudaCheckLaunch();
    cudaCheck(cudaMemcpy(host, partial, sizeof(double) * MUON_NORM_BLOCKS * count, cudaMemcpyDeviceToHost));
    double worst = 0.0;
    for (int m = 0; m < count; m++) {
        double sum = 0.0;
        for (int b = 0; b < MUON_NORM_BLOCKS; b++) sum += host[m * MUON_NORM_BLOCKS + b];
        double r = sqrt(sum);
        if (!(r <= worst)) worst = r;
    }
    return worst;
}
#endif

// Coupled Newton–Schulz iteration for the square root (Higham, Functions of Matrices, §6.7): for a symmetric
// Y with eigenvalues in (0, 1], Z = I, repeat T = (3I - ZY)/2, Y <- YT, Z <- TZ: Y -> Y^(1/2), Z -> Y^(-1/2).
// Per eigenvalue λ, x = zy follows x <- x(3 - x)²/4: it grows ×9/4 per step while small, then converges
// quadratically, so λ = 1e-12 needs about 34 + 5 steps. It stops as sqrt_newton_rule says (for a batch, by the
// largest residual). Y, Z, T, tmp: (count, s, s) each.
template <typename Real>
static void sqrt_newton_batch(Real* Y, Real* Z, Real* T, Real* tmp, int s, int count) {
    size_t total = (size_t)count * s * s;
    SqrtNewtonRule rule = sqrt_newton_rule(Y);
    mx_set_identity(Z, s, count);
    double previous = INFINITY;
    for (int it = 0; it < rule.max_steps; it++) {
        mx_mul(T, Z, Y, s, count);
        double r = mx_newton_step(T, s, count);  // ‖ZY − I‖_F, then T = ½(3I − ZY)
        mx_mul(tmp, Y, T, s, count);
        mx_copy(Y, tmp, total);
        mx_mul(tmp, T, Z, s, count);
        mx_copy(Z, tmp, total);
        mx_symmetrize(Y, Z, s, count);  // Y and Z are symmetric in exact arithmetic: keep them so
        if (r < rule.tol || (r < rule.floor && r > 0.5 * previous)) break;
        previous = r;
    }
}

// X = U Σ Vᵀ -> U Σ^p Vᵀ, p in [0, 1] (clamped; rounded to a multiple of 1/32): X M^(-q) with M = XᵀX (tall or
// square; M^(-q) X with M = XXᵀ when wide) and q = (1-p)/2 in [0, 1/2]. With q = Σ_j b_j 2^-j (binary digits),
// M^(-q) = Π_{b_j = 1} (M^(1/2^j))^(-1): repeated square roots of M, each one run of sqrt_newton_batch, which also
// returns the inverse root. p = 0 (q = 1/2): one run, then two cubic NS steps polish the result to the exact
// polar factor (not NS's banded one); p = 1/2 (q = 1/4): two runs; p = 1/4 (q = 3/8): three; p = 1: untouched.
// Regularization: the iteration runs on N = M/‖M‖_F + SPECTRAL_EPS·I, so σ comes out as σ^p times
// (1 + eps·‖M‖_F/σ²)^(-q): σ with σ² << eps·‖M‖_F (rank deficiency, rounding noise) are damped towards zero
// instead of blown up, and a zero matrix stays zero (for p = 0 too). The price, and fp64 rounding amplified
// by ‖N^(-1/2)‖ <= eps^(-1/2) = 1e6, measured against U Σ^p Vᵀ from svd_jacobi (relative Frobenius error):
// condition number 1e2: 1e-9 (p = 0: 1e-14); 1e4: 2e-6 (p = 0: 1e-10); rank deficient: 1e-7 (p = 0: 4e-6,
// the right singular space tilts slightly into the null space). Ample for an optimizer step.
// Written once over linalg.h's mx_ primitives, for `count` packed matrices: double on the CPU (eps 1e-12, the
// numbers above), float on the GPU (eps 1e-6). work: count·(n + 5s²) of the same type.
template <typename Real>
static void spectral_power_batch(Real* X, int rows, int cols, int count, double p, Real* work) {
    if (p > 1.0) p = 1.0;
    if (!(p > 0.0)) p = 0.0;  // also catches NaN
    int q_bits = (int)lround((1.0 - p) * 0.5 * (1 << SPECTRAL_BITS));  // q·2^SPECTRAL_BITS
    if (q_bits == 0) return;
    int s = rows < cols ? rows : cols;
    size_t n = (size_t)rows * cols, ss = (size_t)s * s;
    Real* Y = work;              // (count, s, s) N, then its successive square roots N^(1/2^j)
    Real* Z = Y + count * ss;    // the inverse of the latest root
    Real* T = Z + count * ss;    // Newton scratch
    Real* tmp = T + count * ss;  // product scratch
    Real* P = tmp + count * ss;  // accumulates N^(-q)
    Real* out = P + count * ss;  // (count, rows, cols)
    mx_gram(Y, X, rows, cols, count);
    const double* mnorm = mx_norms(Y, ss, count, 1);  // ‖M‖_F, kept for the final scale (a zero M: X stays 0)
    mx_divide_by_norm(Y, ss, count, mnorm);
    mx_add_identity(Y, s, count, spectral_eps(Y));
    mx_set_identity(P, s, count);
    int bits = q_bits;
    for (int level = 1; level <= SPECTRAL_BITS && bits != 0; level++) {
        sqrt_newton_batch(Y, Z, T, tmp, s, count);  // Y = N^(1/2^level), Z = its inverse
        int bit = 1 << (SPECTRAL_BITS - level);
        if (bits & bit) {
            mx_mul(tmp, P, Z, s, count);
            mx_copy(P, tmp, count * ss);
            bits &= ~bit;
        }
    }
    mx_apply_small_side(out, P, X, rows, cols, count);
    mx_copy(X, out, count * n);
    mx_scale_by_norm_power(X, n, count, mnorm, -(double)q_bits / (1 << SPECTRAL_BITS));  // M^(-q) = ‖M‖^(-q)·N^(-q)
    if (q_bits == 1 << (SPECTRAL_BITS - 1)) {  // p = 0: polish; a cubic NS step takes σ = 1 + e to 1 - 1.5e²
        static const double cubic[3] = {1.5, -0.5, 0.0};
        newton_schulz_batch(X, rows, cols, count, cubic, 0, 2, 0.0, work);
    }
}

// one matrix on the CPU (the fp64 reference). work: n + 5s² doubles.
static void spectral_power(double* X, int rows, int cols, double p, double* work) {
    spectral_power_batch(X, rows, cols, 1, p, work);
}

#ifdef __CUDACC__
// `count` packed matrices on the GPU, in fp32. work: count·(n + 5s²) floats.
static void spectral_power_cuda(float* X, int rows, int cols, int count, double p, float* work) {
    spectral_power_batch(X, rows, cols, count, p, work);
}
#endif
