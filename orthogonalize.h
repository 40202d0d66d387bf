// orthogonalize.h: Newton–Schulz orthogonalization, Keller Jordan's quintic and Polar Express, written once: fp64
// on the CPU (the reference), batched fp32 on the GPU (tests/test_gpu_muon.cu compares them). muon.h says why the
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
// on the small side. Written once over linalg.h's mx_ primitives, for `count` packed matrices: in double on
// the CPU, in float on the GPU. work: count·(n + 2s²) of the same type.
// bf16: as torch.optim.Muon runs it (its bf16 tensors, with addmm's one rounding per B and per X): X, the
// normalised X, and each A, B and new X rounded to bf16 where they are made; the products accumulate in fp32 on
// the GPU's tensor cores (GEMM_CUBLAS_BF16), in fp64 on the CPU, both from the same bf16 values.
template <typename Real>
static void newton_schulz_batch(Real* X, int rows, int cols, int count, const double* abc, int abc_stride,
                                int steps, double norm_mult, Real* work, bool bf16 = false) {
    int s = rows < cols ? rows : cols;
    size_t n = (size_t)rows * cols, ss = (size_t)s * s;
    Real* A = work;              // (count, s, s) Gram matrices
    Real* B = A + count * ss;    // (count, s, s) bA + cA²
    Real* BX = B + count * ss;   // (count, rows, cols)
    GemmLevel level = bf16 ? GEMM_CUBLAS_BF16 : MUON_GEMM;
    if (bf16) mx_round_bf16(X, count * n);
    if (norm_mult > 0.0) mx_scale_ns(X, n, count, mx_norms(X, n, count, 0), norm_mult);
    if (bf16) mx_round_bf16(X, count * n);
    for (int t = 0; t < steps; t++) {
        const double* k = abc + (size_t)t * abc_stride;
        mx_gram(A, X, rows, cols, count, level);
        if (bf16) mx_round_bf16(A, count * ss);
        mx_mul(B, A, A, s, count, level);
        mx_axpby(B, k[2], A, k[1], count * ss);  // B = bA + cA²
        if (bf16) mx_round_bf16(B, count * ss);
        mx_apply_small_side(BX, B, X, rows, cols, count, level);
        mx_scale_add(X, k[0], BX, count * n);    // X = aX + BX
        if (bf16) mx_round_bf16(X, count * n);
    }
}

// one matrix on the CPU (the fp64 reference). work: n + 2s² doubles.
static void newton_schulz(double* X, int rows, int cols, const double* abc, int abc_stride, int steps,
                          double norm_mult, double* work) {
    newton_schulz_batch(X, rows, cols, 1, abc, abc_stride, steps, norm_mult, work);
}

// Keller's quintic, `steps` times (5 in Muon). work: n + 2s² doubles.
static void ns_quintic(double* X, int rows, int cols, int steps, double* work) {
    newton_schulz(X, rows, cols, NS_ABC, 0, steps, 1.0, work);
}

// Polar Express: 5 steps, X / (1.01‖X‖_F + 1e-7) first. work: n + 2s² doubles.
static void polar_express(double* X, int rows, int cols, double* work) {
    newton_schulz(X, rows, cols, &POLAR_EXPRESS_ABC[0][0], 3, 5, 1.01, work);
}
