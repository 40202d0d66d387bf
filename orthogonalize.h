// orthogonalize.h: Newton–Schulz orthogonalization, Keller Jordan's quintic and Polar Express: the fp64 CPU
// reference, then its batched fp32 GPU twin (tests/test_gpu_muon.cu compares them). muon.h says why the
// coefficients are what they are. Flow: muon_update (muon.h) -> here; spectral.h polishes its p = 0 with it.
#pragma once
#include "linalg.h"

static const double NS_ABC[3] = {3.4445, -4.7750, 2.0315};  // Keller's quintic

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

#ifdef __CUDACC__
// ----------------------------------------------------------------------------------------------------
// GPU: the same for `count` packed matrices in fp32

// muon.h's newton_schulz for `count` packed matrices X (rows, cols) in fp32. work: count·(n + 2s²) floats.
static void newton_schulz_cuda(float* X, int rows, int cols, int count, const double* abc, int abc_stride, int steps,
                               double norm_mult, float* work) {
    int s = rows < cols ? rows : cols;
    size_t n = (size_t)rows * cols, ss = (size_t)s * s;
    float* A = work;                     // (count, s, s) Gram matrices
    float* B = A + count * ss;           // (count, s, s) bA + cA²
    float* BX = B + count * ss;          // (count, rows, cols)
    if (norm_mult > 0.0) muon_scale(X, n, count, NULL, muon_norms(X, n, count, 0), SCALE_NS_NORMALIZE, norm_mult, 0.0);
    for (int t = 0; t < steps; t++) {
        const double* k = abc + (size_t)t * abc_stride;
        muon_gram(A, X, rows, cols, count);
        gemm_batched_cuda(MUON_GEMM, B, A, A, s, s, s, false, false, (float)k[2], 0.0f, s, s, s, ss, ss, ss, count);  // cA²
        muon_axpby(B, 1.0f, A, (float)k[1], count * ss);                                                 // + bA
        muon_apply_small_side(BX, B, X, rows, cols, count);
        muon_axpby(X, (float)k[0], BX, 1.0f, count * n);  // X = aX + BX
    }
}

static void ns_quintic_cuda(float* X, int rows, int cols, int count, int steps, float* work) {
    newton_schulz_cuda(X, rows, cols, count, NS_ABC, 0, steps, 1.0, work);
}

static void polar_express_cuda(float* X, int rows, int cols, int count, float* work) {
    newton_schulz_cuda(X, rows, cols, count, &POLAR_EXPRESS_ABC[0][0], 3, 5, 1.01, work);
}
#endif
