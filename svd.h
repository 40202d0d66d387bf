// svd.h: the one-sided Jacobi SVD (Hestenes) in fp64 on the CPU: singular values (and vectors) for the health
// metrics (health.h), the tests and the papers' experiments; not on the training hot path.
// Flow: over linalg.h's fp64 products; under health.h.
#pragma once
#include "linalg.h"

#define JACOBI_MAX_SWEEPS 60

// (x, y) <- (c·x - s·y, s·x + c·y), entry by entry
static void rotate_pair(double* x, double* y, int len, double c, double s) {
    for (int p = 0; p < len; p++) {
        double a = x[p], b = y[p];
        x[p] = c * a - s * b;
        y[p] = s * a + c * b;
    }
}

static void swap_rows(double* M, int a, int b, int len) {
    for (int p = 0; p < len; p++) {
        double t = M[(size_t)a * len + p];
        M[(size_t)a * len + p] = M[(size_t)b * len + p];
        M[(size_t)b * len + p] = t;
    }
}

// A (rows, cols) = U diag(S) Vᵀ, k = s: U (rows, k), S (k) descending, V (cols, k), U and V orthonormal columns.
// The k vectors of length l (columns of A if tall, rows if wide) are rotated in pairs until every pair is
// orthogonal to |w_i·w_j| <= l·2.2e-16·‖w_i‖‖w_j‖; then S = their norms, and the rotations make up the other
// factor. Pairs are visited in round-robin order, k/2 disjoint pairs at a time, so a round runs on all threads
// and gives the same result on any number of them. Cost: about 6-10 sweeps of 3k²l flops. Columns of the long
// factor for singular values at rounding level (S_j <= l·2.2e-16·S_0) are completed to an orthonormal set by
// Gram–Schmidt. U and V may both be NULL: singular values only (faster).
// work: n + s² doubles.
static void svd_jacobi(const double* A, int rows, int cols, double* U, double* S, double* V, double* work) {
    int k = rows < cols ? rows : cols, l = rows < cols ? cols : rows;
    int want_vectors = U != NULL && V != NULL;
    double* W = work;                 // (k, l) the vectors being orthogonalized, one per row
    double* R = W + (size_t)k * l;    // (k, k) accumulated rotations, one vector per row
    for (int j = 0; j < k; j++)
        for (int i = 0; i < l; i++)
            W[(size_t)j * l + i] = rows >= cols ? A[(size_t)i * cols + j] : A[(size_t)j * cols + i];
    if (want_vectors) set_identity(R, k);
    double tol = l * 2.220446049250313e-16;
    int K = k + (k & 1);  // round robin over an even count; index k (if k is odd) is a bye
    for (int sweep = 0; sweep < JACOBI_MAX_SWEEPS; sweep++) {
        int rotations = 0;
        for (int round = 0; round < K - 1; round++) {
#pragma omp parallel for schedule(static) reduction(+ : rotations) if (3.0 * k * l >= MAT_MUL_PARALLEL_MIN)
            for (int a = 0; a < K / 2; a++) {
                int i = a == 0 ? K - 1 : (round + a) % (K - 1);
                int j = a == 0 ? round : (round - a + K - 1) % (K - 1);
                if (i > j) { int t = i; i = j; j = t; }
                if (j >= k) continue;
                double* wi = W + (size_t)i * l;
                double* wj = W + (size_t)j * l;
                double alpha = 0.0, beta = 0.0, gamma = 0.0;
                for (int p = 0; p < l; p++) {
                    alpha += wi[p] * wi[p];
                    beta += wj[p] * wj[p];
                    gamma += wi[p] * wj[p];
                }
                if (!(fabs(gamma) > tol * sqrt(alpha * beta))) continue;
                // the rotation that zeroes the off-diagonal of [[alpha, gamma], [gamma, beta]]
                double zeta = (beta - alpha) / (2.0 * gamma);
                double t = (zeta >= 0 ? 1.0 : -1.0) / (fabs(zeta) + sqrt(1.0 + zeta * zeta));
                double c = 1.0 / sqrt(1.0 + t * t), sn = c * t;
                rotate_pair(wi, wj, l, c, sn);
                if (want_vectors) rotate_pair(R + (size_t)i * k, R + (size_t)j * k, k, c, sn);
                rotations++;
            }
        }
        if (rotations == 0) break;
    }
    for (int j = 0; j < k; j++) S[j] = frobenius_norm(W + (size_t)j * l, l);
    for (int j = 0; j < k; j++) {  // selection sort, descending, moving the vectors along
        int best = j;
        for (int q = j + 1; q < k; q++) if (S[q] > S[best]) best = q;
        if (best == j) continue;
        double t = S[j];
        S[j] = S[best];
        S[best] = t;
        swap_rows(W, j, best, l);
        if (want_vectors) swap_rows(R, j, best, k);
    }
    if (!want_vectors) return;
    double tiny = tol * S[0];
    for (int j = 0; j < k; j++) {
        double* wj = W + (size_t)j * l;
        if (S[j] > tiny) {
            for (int p = 0; p < l; p++) wj[p] /= S[j];
            continue;
        }
        // rounding-level singular value: a unit vector orthogonal to the ones before (Gram–Schmidt, twice)
        for (int e = 0; e < l; e++) {
            for (int p = 0; p < l; p++) wj[p] = p == e;
            for (int pass = 0; pass < 2; pass++)
                for (int q = 0; q < j; q++) {
                    const double* wq = W + (size_t)q * l;
                    double d = 0.0;
                    for (int p = 0; p < l; p++) d += wq[p] * wj[p];
                    for (int p = 0; p < l; p++) wj[p] -= d * wq[p];
                }
            double norm = frobenius_norm(wj, l);
            if (norm > 0.5) { for (int p = 0; p < l; p++) wj[p] /= norm; break; }
        }
    }
    double* long_side = rows >= cols ? U : V;   // (l, k): the normalized vectors
    double* short_side = rows >= cols ? V : U;  // (k, k): the rotations
    for (int i = 0; i < l; i++)
        for (int j = 0; j < k; j++) long_side[(size_t)i * k + j] = W[(size_t)j * l + i];
    for (int i = 0; i < k; i++)
        for (int j = 0; j < k; j++) short_side[(size_t)i * k + j] = R[(size_t)j * k + i];
}
