// orthogonalize.h: Newton–Schulz orthogonalization, Keller Jordan's quintic and Polar Express, written once: fp64
// on the CPU (the reference), batched fp32 on the GPU (tests/test_gpu_muon.cu compares them); and the same map
// iterated on the small Gram matrix, for strongly rectangular matrices (--ns-gram). muon.h says why the
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

// Newton–Schulz on the Gram matrix (Gram Newton–Schulz, Dao-AILab 2026): the map of newton_schulz_batch, for
// the same arguments, iterated on s x s matrices only; it pays for strongly rectangular X (long side L, short s).
// For a tall X, with X_0 the normalised X, R = X_0ᵀX_0 (the small-side Gram matrix, once) and X_k = X_0 Q_k:
//   A_k = X_kᵀX_k = Q_kᵀ R Q_k,   P_k = aI + bA_k + cA_k²,   Q_{k+1} = Q_k P_k,   and at the end X = X_0 Q_K.
// Every Q_k is a polynomial in R, so symmetric and commuting with R in exact arithmetic: A_k is taken as
// (Q_k R) Q_k. A wide X is the transpose of a tall one, and the transpose of a product of symmetric matrices is
// the product in reverse order: R = X_0X_0ᵀ, A_k = Q_k (R Q_k), Q_{k+1} = P_k Q_k, X = Q_K X_0 (gram_mul). Kept
// in that order, the roundings stay small (fp64, σ spread over 1e-6: measured ≤ 6e-12 from the SVD's answer,
// the plain form's ≤ 6e-14); the wide order on a tall X, or symmetrizing Q, gave up to 2e-8.
// Work in multiply-adds, K steps: R and the final product s²L each, 4s³ per step (Q R, ·Q, A², Q P) but s³ for
// the first (Q_0 = I: A_0 = R, Q_1 = P_0): 2s²L + (4K − 3)s³ against the plain form's K(2s²L + s³), fewer when
// L/s > 1.5 whatever K; at K = 5, L = 4s (GPT-2's MLP matrices) 25s³ against 45s³. Full precision only: Q_K's
// eigenvalues are φ(σ)/σ, up to the product of the a's (485 for the quintic, ~990 for Polar Express) on small σ,
// so a rounding of R or of a Q_k comes out that much larger; bf16's would make the Gram form drift (Dao-AILab
// restart the iteration for it), and muon_check refuses the Gram form with ns_bf16. work: count·(n + 4s²).

// C = Y Z for a tall X, Z Y for a wide one (s x s each, batched): the Gram form's products in its order above
template <typename Real>
static void gram_mul(Real* C, const Real* Y, const Real* Z, int s, int count, bool tall) {
    if (tall) mx_mul(C, Y, Z, s, count);
    else mx_mul(C, Z, Y, s, count);
}

template <typename Real>
static void newton_schulz_gram_batch(Real* X, int rows, int cols, int count, const double* abc, int abc_stride,
                                     int steps, double norm_mult, Real* work) {
    int s = rows < cols ? rows : cols;
    bool tall = rows > cols;
    size_t n = (size_t)rows * cols, ss = (size_t)s * s;
    Real* R = work;             // (count, s, s) R, the small-side Gram matrix of X_0
    Real* Q = R + count * ss;   // (count, s, s) Q_k
    Real* A = Q + count * ss;   // (count, s, s) A_k, then Q_{k+1}
    Real* P = A + count * ss;   // (count, s, s) Q_k R (wide: R Q_k), then P_k
    Real* QX = P + count * ss;  // (count, rows, cols) X_0 Q_K (tall) or Q_K X_0 (wide)
    if (norm_mult > 0.0) mx_scale_ns(X, n, count, mx_norms(X, n, count, 0), norm_mult);
    if (steps <= 0) return;
    mx_gram(R, X, rows, cols, count);
    for (int t = 0; t < steps; t++) {
        const double* k = abc + (size_t)t * abc_stride;
        const Real* Ak = R;  // A_0 = R
        if (t > 0) {
            gram_mul(P, Q, R, s, count, tall);
            gram_mul(A, P, Q, s, count, tall);  // A_k = (Q_k R) Q_k, or Q_k (R Q_k)
            Ak = A;
        }
        mx_mul(P, Ak, Ak, s, count);
        mx_axpby(P, k[2], Ak, k[1], count * ss);  // bA + cA²
        mx_add_identity(P, s, count, k[0]);       // P_k = aI + bA + cA²
        if (t == 0) {
            Real* q = Q;  // Q_1 = P_0: the buffers trade names
            Q = P;
            P = q;
        } else {
            gram_mul(A, Q, P, s, count, tall);  // Q_{k+1} = Q_k P_k, or P_k Q_k
            Real* q = Q;
            Q = A;
            A = q;
        }
    }
    mx_apply_small_side(QX, Q, X, rows, cols, count);
    mx_copy(X, QX, count * n);
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
