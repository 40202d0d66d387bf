// linalg.h: the linear algebra the Muon family is built from, on either device.
//  - CPU, fp64: matrix products (each output row computed by one OpenMP thread in a fixed order, so results do
//    not depend on the thread count; the Jacobi SVD of the health metrics is svd.h). Row-major double matrices
//    (rows, cols); nothing allocates. Also used by the tests and by the papers' experiments (dev/experiments.cpp).
//  - GPU, fp32, batched: `count` same-shaped matrices at once (the layers of one stacked tensor, or the Q, K, V
//    blocks of qkvw): Gram matrices and small-side products as cuBLAS strided-batched GEMMs (gemm.h), Frobenius
//    norms summed in double over a fixed grid and reduced in a fixed order on the device (no host round trip, no
//    atomics: the same bits every run), elementwise steps one launch each.
// Used by orthogonalize.h, spectral.h, muon.h and health.h, which hold each algorithm's CPU and GPU forms.
#pragma once
#include "gemm.h"

#define NS_EPS 1e-7  // Newton–Schulz's normalisation X / (‖X‖_F + eps): a zero matrix stays zero

// ----------------------------------------------------------------------------------------------------
// fp64 matrix products, the only ones of the Muon family

#define MAT_MUL_PARALLEL_MIN 65536.0  // m·k·n below this runs on one thread (thread start-up would dominate)

// eight doubles, one AVX-512 register (two AVX2 ones): GCC's vector extension, so the compiler keeps a tile of
// C in registers
typedef double f64x8 __attribute__((vector_size(64)));

// C (m, n) = A (m, k) · B (k, n), where A's entry (i, p) sits at A[i·a_row + p·a_col]: (k, 1) is A itself,
// (1, m) reads a (k, m) array as its transpose.
// Four rows of C at a time, 16 columns at a time held in registers (8 accumulators) while p runs over k: each
// row of B is loaded once per four rows, each entry of C stored once. Every entry is summed over p in order from
// zero, as in the plain loop that handles the edges, so the tiles and the edges give the same bits as one row at
// a time (3x the plain loop's speed at 128 x 128 x 128 on a 2-core AVX-512 Xeon).
static void mat_mul_strided(double* C, const double* A, size_t a_row, size_t a_col, const double* B, int m, int k,
                            int n) {
    int n16 = n / 16 * 16;
#pragma omp parallel for schedule(static) if ((double)m * k * n >= MAT_MUL_PARALLEL_MIN)
    for (int i0 = 0; i0 < m; i0 += 4) {
        int rows = m - i0 < 4 ? m - i0 : 4;
        int j_edge = rows == 4 ? n16 : 0;  // where the plain loop takes over
        for (int j = 0; j < j_edge; j += 16) {
            f64x8 c[4][2] = {};
            for (int p = 0; p < k; p++) {
                f64x8 b0, b1;
                memcpy(&b0, B + (size_t)p * n + j, sizeof(b0));
                memcpy(&b1, B + (size_t)p * n + j + 8, sizeof(b1));
                for (int r = 0; r < 4; r++) {
                    double a = A[(size_t)(i0 + r) * a_row + p * a_col];
                    c[r][0] += a * b0;
                    c[r][1] += a * b1;
                }
            }
            for (int r = 0; r < 4; r++) {
                memcpy(C + (size_t)(i0 + r) * n + j, &c[r][0], sizeof(c[r][0]));
                memcpy(C + (size_t)(i0 + r) * n + j + 8, &c[r][1], sizeof(c[r][1]));
            }
        }
        for (int r = 0; r < rows; r++) {
            double* c = C + (size_t)(i0 + r) * n;
            for (int j = j_edge; j < n; j++) c[j] = 0.0;
            for (int p = 0; p < k; p++) {
                double a = A[(size_t)(i0 + r) * a_row + p * a_col];
                const double* b = B + (size_t)p * n;
                for (int j = j_edge; j < n; j++) c[j] += a * b[j];
            }
        }
    }
}

// C (m, n) = A (m, k) · B (k, n)
static void mat_mul(double* C, const double* A, const double* B, int m, int k, int n) {
    mat_mul_strided(C, A, k, 1, B, m, k, n);
}

// C (m, n) = Aᵀ B with A (k, m), B (k, n); mat_mul_atb(G, X, X, cols, rows, cols) is the Gram matrix XᵀX
static void mat_mul_atb(double* C, const double* A, const double* B, int m, int k, int n) {
    mat_mul_strided(C, A, 1, m, B, m, k, n);
}

// C (m, n) = A Bᵀ with A (m, k), B (n, k); mat_mul_abt(G, X, X, rows, cols, rows) is the Gram matrix XXᵀ
static void mat_mul_abt(double* C, const double* A, const double* B, int m, int k, int n) {
#pragma omp parallel for schedule(static) if ((double)m * k * n >= MAT_MUL_PARALLEL_MIN)
    for (int i = 0; i < m; i++) {
        const double* a = A + (size_t)i * k;
        for (int j = 0; j < n; j++) {
            const double* b = B + (size_t)j * k;
            double sum = 0.0;
#pragma omp simd reduction(+ : sum)  // in vector lanes, then combined: a fixed order for a given build
            for (int p = 0; p < k; p++) sum += a[p] * b[p];
            C[(size_t)i * n + j] = sum;
        }
    }
}

// the Gram matrix on the small side: G (s, s) = XXᵀ when rows <= cols, else XᵀX
static void gram_small_side(double* G, const double* X, int rows, int cols) {
    if (rows <= cols) mat_mul_abt(G, X, X, rows, cols, rows);
    else mat_mul_atb(G, X, X, cols, rows, cols);
}

// out (rows, cols) = P X when rows <= cols (P (rows, rows)), else X P (P (cols, cols)): applies a function of
// the small-side Gram matrix to X
static void apply_small_side(double* out, const double* P, const double* X, int rows, int cols) {
    if (rows <= cols) mat_mul(out, P, X, rows, rows, cols);
    else mat_mul(out, X, P, rows, cols, cols);
}

static double frobenius_norm(const double* X, size_t n) {
    double sum = 0.0;
    for (size_t i = 0; i < n; i++) sum += X[i] * X[i];
    return sqrt(sum);
}

static void set_identity(double* I, int s) {
    for (size_t i = 0; i < (size_t)s * s; i++) I[i] = 0.0;
    for (int i = 0; i < s; i++) I[(size_t)i * s + i] = 1.0;
}

// ----------------------------------------------------------------------------------------------------
// The primitives the Muon family's iterations are written over (orthogonalize.h, spectral.h, muon.h), one name
// for both devices: `count` same-shaped matrices packed n apart (s x s ones s² apart). The scalar type says
// which device: double is the CPU's (the fp64 reference, one matrix after another, with the functions above),
// float the GPU's (batched, below). A "norms" handle comes from mx_norms and goes to the scaling primitives of
// the same device (on the CPU a host array of the count norms; on the GPU the device's partial sums). The
// products take the GPU's GemmLevel: MUON_GEMM (cuBLAS in FP32, whatever the model's level: the tolerances of
// tests/test_gpu_muon.cu assume FP32), or GEMM_CUBLAS_BF16 for a bf16 iteration (its inputs already bf16 values,
// the tensor cores give the same sums); the CPU's products are fp64 at any level.
#define MUON_GEMM GEMM_CUBLAS

static void mx_gram(double* G, const double* X, int rows, int cols, int count, GemmLevel = MUON_GEMM) {
    int s = rows < cols ? rows : cols;
    for (int m = 0; m < count; m++) gram_small_side(G + (size_t)m * s * s, X + (size_t)m * rows * cols, rows, cols);
}
static void mx_apply_small_side(double* out, const double* P, const double* X, int rows, int cols, int count,
                                GemmLevel = MUON_GEMM) {
    int s = rows < cols ? rows : cols;
    size_t n = (size_t)rows * cols, ss = (size_t)s * s;
    for (int m = 0; m < count; m++) apply_small_side(out + m * n, P + m * ss, X + m * n, rows, cols);
}
// C_m = A_m B_m, s x s each
static void mx_mul(double* C, const double* A, const double* B, int s, int count, GemmLevel = MUON_GEMM) {
    size_t ss = (size_t)s * s;
    for (int m = 0; m < count; m++) mat_mul(C + m * ss, A + m * ss, B + m * ss, s, s, s);
}
// y = b·x + a·y over `total` entries
static void mx_axpby(double* y, double a, const double* x, double b, size_t total) {
    for (size_t i = 0; i < total; i++) y[i] = b * x[i] + a * y[i];
}
// x = x rounded to bf16, as a bf16 tensor would store it (through fp32: the sum an fp32 accumulator would hold)
static void mx_round_bf16(double* x, size_t total) {
    for (size_t i = 0; i < total; i++) x[i] = bf16_round((float)x[i]);
}
// y = a·y + x over `total` entries
static void mx_scale_add(double* y, double a, const double* x, size_t total) {
    for (size_t i = 0; i < total; i++) y[i] = a * y[i] + x[i];
}
static void mx_copy(double* dst, const double* src, size_t total) { memcpy(dst, src, total * sizeof(double)); }
static void mx_set_identity(double* Z, int s, int count) {
    for (int m = 0; m < count; m++) set_identity(Z + (size_t)m * s * s, s);
}
// Y_m += d·I
static void mx_add_identity(double* Y, int s, int count, double d) {
    for (int m = 0; m < count; m++)
        for (int i = 0; i < s; i++) Y[(size_t)m * s * s + (size_t)i * s + i] += d;
}
// Y, Z <- (Y + Yᵀ)/2, (Z + Zᵀ)/2 (symmetric in exact arithmetic: kept so)
static void mx_symmetrize(double* Y, double* Z, int s, int count) {
    for (int m = 0; m < count; m++) {
        double *y = Y + (size_t)m * s * s, *z = Z + (size_t)m * s * s;
        for (int i = 0; i < s; i++)
            for (int j = i + 1; j < s; j++) {
                double a = 0.5 * (y[(size_t)i * s + j] + y[(size_t)j * s + i]);
                double b = 0.5 * (z[(size_t)i * s + j] + z[(size_t)j * s + i]);
                y[(size_t)i * s + j] = y[(size_t)j * s + i] = a;
                z[(size_t)i * s + j] = z[(size_t)j * s + i] = b;
            }
    }
}
// ‖X_m‖_F for each matrix, in a buffer of its own per `slot` (0 to 2: up to three norms are alive at once)
static const double* mx_norms(const double* X, size_t n, int count, int slot) {
    static double* buf[3] = {NULL, NULL, NULL};
    static int capacity[3] = {0, 0, 0};
    if (count > capacity[slot]) {
        free(buf[slot]);
        buf[slot] = (double*)xmalloc(sizeof(double) * count);
        capacity[slot] = count;
    }
    for (int m = 0; m < count; m++) buf[slot][m] = frobenius_norm(X + m * n, n);
    return buf[slot];
}
// X_m <- X_m / (mult·‖X_m‖_F + NS_EPS)
static void mx_scale_ns(double* X, size_t n, int count, const double* norms, double mult) {
    for (int m = 0; m < count; m++) {
        double denom = mult * norms[m] + NS_EPS;
        for (size_t i = 0; i < n; i++) X[m * n + i] /= denom;
    }
}
// X_m <- X_m / ‖·‖ (a zero or non-finite norm leaves X_m as it is)
static void mx_divide_by_norm(double* X, size_t n, int count, const double* norms) {
    for (int m = 0; m < count; m++)
        if (norms[m] > 0.0 && isfinite(norms[m]))
            for (size_t i = 0; i < n; i++) X[m * n + i] /= norms[m];
}
// X_m <- X_m · ‖·‖^power (likewise)
static void mx_scale_by_norm_power(double* X, size_t n, int count, const double* norms, double power) {
    for (int m = 0; m < count; m++)
        if (norms[m] > 0.0 && isfinite(norms[m])) {
            double f = pow(norms[m], power);
            for (size_t i = 0; i < n; i++) X[m * n + i] *= f;
        }
}
// X_m <- X_m · ‖num_m‖/‖den_m‖ (0 where ‖den_m‖ = 0)
static void mx_scale_by_norm_ratio(double* X, size_t n, int count, const double* num, const double* den) {
    for (int m = 0; m < count; m++) {
        double f = den[m] > 0.0 ? num[m] / den[m] : 0.0;
        for (size_t i = 0; i < n; i++) X[m * n + i] *= f;
    }
}

#ifdef __CUDACC__
// ----------------------------------------------------------------------------------------------------
// the GPU's batched fp32 primitives: X holds `count` matrices packed n floats apart; grid (blocks over the n
// entries of a matrix, count), blockIdx.y is the matrix

#define MUON_NORM_BLOCKS 64            // partial sums per matrix for a Frobenius norm (fixed: deterministic)

// partial[m·MUON_NORM_BLOCKS + b] = Σ x² over entries b·blockDim + tid, stepping by the grid, of matrix m
// (matrices packed n apart), in double; then the block's fixed tree
static __global__ void muon_norm_partial_kernel(double* partial, const float* X, size_t n) {
    const float* x = X + blockIdx.y * n;
    double s = 0.0;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        s += (double)x[i] * x[i];
    s = block_reduce_sum_double(s);
    if (threadIdx.x == 0) partial[blockIdx.y * MUON_NORM_BLOCKS + blockIdx.x] = s;
}

enum MuonScale { SCALE_NS_NORMALIZE, SCALE_POWER, SCALE_RATIO };

// Matrix m times a factor made from Frobenius norms (each the root of its MUON_NORM_BLOCKS partials, summed in
// order by thread 0): SCALE_NS_NORMALIZE 1/(mult·‖den‖ + NS_EPS); SCALE_POWER ‖den‖^power (1 for a zero
// matrix); SCALE_RATIO ‖num‖/‖den‖ (0 when ‖den‖ = 0, as normuon_normalize).
static __global__ void muon_scale_kernel(float* X, size_t n, const double* num, const double* den, int mode,
                                         double mult, double power) {
    __shared__ double factor;
    if (threadIdx.x == 0) {
        double sd = 0.0, sn = 0.0;
        for (int b = 0; b < MUON_NORM_BLOCKS; b++) sd += den[blockIdx.y * MUON_NORM_BLOCKS + b];
        if (num)
            for (int b = 0; b < MUON_NORM_BLOCKS; b++) sn += num[blockIdx.y * MUON_NORM_BLOCKS + b];
        double nd = sqrt(sd);
        if (mode == SCALE_NS_NORMALIZE) factor = 1.0 / (mult * nd + NS_EPS);
        else if (mode == SCALE_POWER) factor = nd > 0.0 ? pow(nd, power) : 1.0;
        else factor = nd > 0.0 ? sqrt(sn) / nd : 0.0;
    }
    __syncthreads();
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) X[blockIdx.y * n + i] = (float)(X[blockIdx.y * n + i] * factor);
}

// T <- keep·T + diag·I for s x s matrix blockIdx.y (keep 0: T = diag·I); one thread per entry
static __global__ void muon_identity_kernel(float* T, int s, float keep, float diag) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (size_t)s * s) return;
    float* t = T + blockIdx.y * (size_t)s * s;
    float off = keep == 0.0f ? 0.0f : keep * t[i];  // keep 0 overwrites (new memory may hold NaN)
    t[i] = off + (i / s == i % s ? diag : 0.0f);
}

// Y, Z <- (Y + Yᵀ)/2, (Z + Zᵀ)/2 (sqrt_newton_batch keeps them symmetric): one thread per pair i < j
static __global__ void muon_symmetrize_kernel(float* Y, float* Z, int s) {
    size_t k = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (k >= (size_t)s * s) return;
    int i = (int)(k / s), j = (int)(k % s);
    if (j <= i) return;
    size_t off = blockIdx.y * (size_t)s * s, a = off + (size_t)i * s + j, b = off + (size_t)j * s + i;
    float y = 0.5f * (Y[a] + Y[b]), z = 0.5f * (Z[a] + Z[b]);
    Y[a] = Y[b] = y;
    Z[a] = Z[b] = z;
}

static dim3 muon_grid(size_t n, int count) { return dim3(cuda_blocks(n, 256), count); }

// the partial sums of ‖X_m‖_F² for `count` packed matrices of n floats; a device buffer that only grows
static const double* mx_norms(const float* X, size_t n, int count, int slot) {
    static void* buf[3] = {NULL, NULL, NULL};
    static size_t capacity[3] = {0, 0, 0};
    double* partial =
        (double*)device_scratch_grow(&buf[slot], &capacity[slot], sizeof(double) * MUON_NORM_BLOCKS * count);
    muon_norm_partial_kernel<<<dim3(MUON_NORM_BLOCKS, count), 256>>>(partial, X, n);
    cudaCheckLaunch();
    return partial;
}

static void muon_scale(float* X, size_t n, int count, const double* num, const double* den, int mode, double mult,
                       double power) {
    muon_scale_kernel<<<muon_grid(n, count), 256>>>(X, n, num, den, mode, mult, power);
    cudaCheckLaunch();
}

// G_m (s, s) = X_m X_mᵀ (wide or square) or X_mᵀ X_m (tall), for packed X (n apart) and G (s² apart)
static void mx_gram(float* G, const float* X, int rows, int cols, int count, GemmLevel level = MUON_GEMM) {
    int s = rows < cols ? rows : cols;
    long long n = (long long)rows * cols, ss = (long long)s * s;
    if (rows <= cols) gemm_batched_cuda(level, G, X, X, s, s, cols, false, true, 1.0f, 0.0f, cols, cols, s, n, n, ss, count);
    else gemm_batched_cuda(level, G, X, X, s, s, rows, true, false, 1.0f, 0.0f, cols, cols, s, n, n, ss, count);
}

// out_m = P_m X_m (wide or square) or X_m P_m (tall): apply_small_side, batched
static void mx_apply_small_side(float* out, const float* P, const float* X, int rows, int cols, int count,
                                GemmLevel level = MUON_GEMM) {
    int s = rows < cols ? rows : cols;
    long long n = (long long)rows * cols, ss = (long long)s * s;
    if (rows <= cols) gemm_batched_cuda(level, out, P, X, rows, cols, rows, false, false, 1.0f, 0.0f, s, cols, cols, ss, n, n, count);
    else gemm_batched_cuda(level, out, X, P, rows, cols, cols, false, false, 1.0f, 0.0f, cols, s, cols, n, ss, n, count);
}
// the rest of the mx_ primitives on the GPU, with the contracts of the CPU's above

// y = b·x + a·y, one thread per entry
static __global__ void mx_axpby_kernel(float* y, float a, const float* x, float b, size_t total) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < total) y[i] = b * x[i] + a * y[i];
}

static void mx_mul(float* C, const float* A, const float* B, int s, int count, GemmLevel level = MUON_GEMM) {
    long long ss = (long long)s * s;
    gemm_batched_cuda(level, C, A, B, s, s, s, false, false, 1.0f, 0.0f, s, s, s, ss, ss, ss, count);
}
static void mx_axpby(float* y, double a, const float* x, double b, size_t total) {
    mx_axpby_kernel<<<cuda_blocks(total, 256), 256>>>(y, (float)a, x, (float)b, total);
    cudaCheckLaunch();
}
static void mx_round_bf16(float* x, size_t total) { device_round_bf16(DEV_CUDA, x, x, total); }
static void mx_scale_add(float* y, double a, const float* x, size_t total) {
    mx_axpby_kernel<<<cuda_blocks(total, 256), 256>>>(y, (float)a, x, 1.0f, total);
    cudaCheckLaunch();
}
static void mx_copy(float* dst, const float* src, size_t total) {
    cudaCheck(cudaMemcpyAsync(dst, src, total * sizeof(float), cudaMemcpyDeviceToDevice));
}
static void mx_set_identity(float* Z, int s, int count) {
    muon_identity_kernel<<<muon_grid((size_t)s * s, count), 256>>>(Z, s, 0.0f, 1.0f);
    cudaCheckLaunch();
}
static void mx_add_identity(float* Y, int s, int count, double d) {
    muon_identity_kernel<<<muon_grid((size_t)s * s, count), 256>>>(Y, s, 1.0f, (float)d);
    cudaCheckLaunch();
}
static void mx_symmetrize(float* Y, float* Z, int s, int count) {
    muon_symmetrize_kernel<<<muon_grid((size_t)s * s, count), 256>>>(Y, Z, s);
    cudaCheckLaunch();
}
static void mx_scale_ns(float* X, size_t n, int count, const double* norms, double mult) {
    muon_scale(X, n, count, NULL, norms, SCALE_NS_NORMALIZE, mult, 0.0);
}
static void mx_divide_by_norm(float* X, size_t n, int count, const double* norms) {
    muon_scale(X, n, count, NULL, norms, SCALE_POWER, 0.0, -1.0);
}
static void mx_scale_by_norm_power(float* X, size_t n, int count, const double* norms, double power) {
    muon_scale(X, n, count, NULL, norms, SCALE_POWER, 0.0, power);
}
static void mx_scale_by_norm_ratio(float* X, size_t n, int count, const double* num, const double* den) {
    muon_scale(X, n, count, num, den, SCALE_RATIO, 0.0, 0.0);
}
#endif
