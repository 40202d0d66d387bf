// muon_cuda.h: the CUDA half of muon.h: Muon and its variants for matrices that live on the GPU, in fp32, and
// the health metrics of GPU updates. The math and its reasons are in muon.h, whose functions are the reference
// (fp64, CPU) that tests/test_gpu_muon.cu compares these with. Flow: backward -> optimizer_step (optim.h) ->
// muon_update_cuda for the hidden matrices when the model is on the GPU.
// Every function takes `count` same-shaped matrices lying `stride` floats apart (the layers of one stacked
// tensor, e.g. all qkvw, or the 3L blocks of qkvw when Q, K, V are orthogonalized apart) and handles them in
// one go: the products are cuBLAS strided-batched GEMMs (gemm.h), the elementwise steps one launch each.
// count = 1 is one matrix, exactly muon.h's function. The Frobenius norms are summed in double over a fixed
// grid and reduced in a fixed order on the device (no host round trip, no atomics: the same bits every run).
#pragma once
#include "muon.h"
#include "gemm.h"

#ifdef __CUDACC__
#include <cusolverDn.h>

#define MUON_GEMM GEMM_CUBLAS            // Muon's products: cuBLAS in FP32, whatever the model's level (the
                                       // tolerances of tests/test_gpu_muon.cu assume FP32)
#define MUON_NORM_BLOCKS 64            // partial sums per matrix for a Frobenius norm (fixed: deterministic)
#define MUON_SPECTRAL_EPS_F32 1e-6     // spectral_power's regularizer in fp32 (muon.h uses 1e-12 in fp64): an
                                       // eigenvalue of M/‖M‖_F below ~1e-6 is at fp32 rounding level anyway
#define MUON_SQRT_NEWTON_STEPS 24      // fixed (no host sync for a residual): an eigenvalue of 1e-6 grows
                                       // ×9/4 per step to ~0.3 in 16 steps, then converges in ~4 more

static void cusolver_check(cusolverStatus_t s, const char* file, int line) {
    if (s != CUSOLVER_STATUS_SUCCESS) die("cuSOLVER error %d at %s:%d", (int)s, file, line);
}
#define cusolverCheck(call) cusolver_check((call), __FILE__, __LINE__)

// ----------------------------------------------------------------------------------------------------
// CUDA kernels: grid (blocks over the n entries of a matrix, count); blockIdx.y is the matrix

// Step 1 of muon_update (formulas there), in double as the CPU, for entry i of matrix m: updates the momentum
// (and Adam's v for the RMS base) in place where they lie (stride), writes the direction u packed (m·n + i).
static __global__ void muon_base_kernel(float* u, const float* grad, float* momentum, float* v, size_t n,
                                        size_t stride, double beta, double beta2, double bc1, double bc2, float eps,
                                        int nesterov, int rms) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    size_t at = blockIdx.y * stride + i;
    u[blockIdx.y * n + i] =
        (float)muon_base_element(&momentum[at], rms ? &v[at] : NULL, grad[at], beta, beta2, bc1, bc2, eps, nesterov, rms);
}

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

// y = a·y + b·x over `total` packed entries, one thread each (NS's B = bA + cA² and X = aX + BX)
static __global__ void muon_axpby_kernel(float* y, float a, const float* x, float b, size_t total) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < total) y[i] = a * y[i] + b * x[i];
}

// Newton step matrix T = ½(3I − T) in place, and Y += d·I (d = 0: none), for s x s matrix blockIdx.y; one
// thread per entry
static __global__ void muon_identity_kernel(float* T, int s, float keep, float diag) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (size_t)s * s) return;
    float* t = T + blockIdx.y * (size_t)s * s;
    t[i] = keep * t[i] + (i / s == i % s ? diag : 0.0f);
}

// Y, Z <- (Y + Yᵀ)/2, (Z + Zᵀ)/2 (sqrt_newton keeps them symmetric): one thread per pair i < j
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

// NorMuon's per-row step (normuon_normalize): one warp per row r of matrix blockIdx.y (packed O), v_row at
// v_rows + m·stride (float state where the CPU keeps it)
static __global__ void muon_normuon_rows_kernel(float* O, float* v_rows, int rows, int cols, size_t stride,
                                                double beta2, double eps) {
    int r = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (r >= rows) return;
    float* o = O + (blockIdx.y * (size_t)rows + r) * cols;
    double sq = 0.0;
    for (int j = lane; j < cols; j += 32) sq += (double)o[j] * o[j];
    sq = warp_reduce_sum_double(sq);
    float* v = v_rows + blockIdx.y * stride + r;
    float vr = (float)(beta2 * *v + (1.0 - beta2) * (sq / cols));
    __syncwarp();  // every lane has read *v before lane 0 overwrites it
    if (lane == 0) *v = vr;
    double d = sqrt((double)vr) + eps;
    for (int j = lane; j < cols; j += 32) o[j] = (float)(o[j] / d);
}

// Step 4: W <- W·decay − step·u for entry i of matrix m (W where it lies; u packed); update_out packed
static __global__ void muon_apply_kernel(float* param, const float* u, float* update_out, size_t n, size_t stride,
                                         double decay, double step) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    double d = muon_apply_element(&param[blockIdx.y * stride + i], u[blockIdx.y * n + i], decay, step);
    if (update_out) update_out[blockIdx.y * n + i] = (float)d;
}

// ----------------------------------------------------------------------------------------------------
// launchers

static dim3 muon_grid(size_t n, int count) { return dim3(cuda_blocks(n, 256), count); }

// the partial sums of ‖X_m‖_F² for `count` packed matrices of n floats; a device buffer that only grows
static double* muon_norms(const float* X, size_t n, int count, int slot) {
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

static void muon_axpby(float* y, float a, const float* x, float b, size_t total) {
    muon_axpby_kernel<<<cuda_blocks(total, 256), 256>>>(y, a, x, b, total);
    cudaCheckLaunch();
}

// G_m (s, s) = X_m X_mᵀ (wide or square) or X_mᵀ X_m (tall), for packed X (n apart) and G (s² apart)
static void muon_gram(float* G, const float* X, int rows, int cols, int count) {
    int s = rows < cols ? rows : cols;
    long long n = (long long)rows * cols, ss = (long long)s * s;
    if (rows <= cols) gemm_batched_cuda(MUON_GEMM, G, X, X, s, s, cols, false, true, 1.0f, 0.0f, cols, cols, s, n, n, ss, count);
    else gemm_batched_cuda(MUON_GEMM, G, X, X, s, s, rows, true, false, 1.0f, 0.0f, cols, cols, s, n, n, ss, count);
}

// out_m = P_m X_m (wide or square) or X_m P_m (tall): muon.h's apply_small_side, batched
static void muon_apply_small_side(float* out, const float* P, const float* X, int rows, int cols, int count) {
    int s = rows < cols ? rows : cols;
    long long n = (long long)rows * cols, ss = (long long)s * s;
    if (rows <= cols) gemm_batched_cuda(MUON_GEMM, out, P, X, rows, cols, rows, false, false, 1.0f, 0.0f, s, cols, cols, ss, n, n, count);
    else gemm_batched_cuda(MUON_GEMM, out, X, P, rows, cols, cols, false, false, 1.0f, 0.0f, cols, s, cols, n, ss, n, count);
}

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

// floats of `work` that muon_update_cuda needs for `count` matrices (rows, cols)
static size_t muon_work_floats_cuda(int rows, int cols, int count) {
    size_t s = rows < cols ? rows : cols;
    return (size_t)count * (2 * (size_t)rows * cols + 5 * s * s);
}

// muon.h's muon_update on the GPU for `count` matrices (rows, cols) lying `stride` floats apart in param, grad,
// momentum and second (the optimizer state has the parameters' layout), with the same hyperparameters: one
// step each, in place. The orthogonalization runs in fp32 (cuBLAS in FP32: MUON_GEMM): its result
// agrees with the CPU's fp64 to ~1e-5 of ‖O‖ (NS, Polar Express) (tests/test_gpu_muon.cu). update_out, if not
// NULL, receives the applied steps packed (count, rows, cols). work: muon_work_floats_cuda floats (device).
static void muon_update_cuda(float* param, const float* grad, float* momentum, float* second, int rows, int cols,
                             int count, size_t stride, const MuonHyper* h, float* work, float* update_out) {
    size_t n = (size_t)rows * cols;
    if (n == 0 || count <= 0) return;
    float* u = work;                 // (count, rows, cols) the direction, then the orthogonalized update
    float* scratch = work + count * n;
    double beta = h->momentum, beta2 = h->beta2;
    int t = h->step > 0 ? h->step : 1;
    bool rms = h->base == BASE_ADAM_RMS;
    muon_base_kernel<<<muon_grid(n, count), 256>>>(u, grad, momentum, second, n, stride, beta, beta2,
                                                   1.0 - pow(beta, t), 1.0 - pow(beta2, t), h->eps, h->nesterov, rms);
    cudaCheckLaunch();
    if (h->method == MUON_POLAR) polar_express_cuda(u, rows, cols, count, scratch);
    else if (h->method == MUON_SPECTRAL) spectral_power_cuda(u, rows, cols, count, h->p, scratch);
    else ns_quintic_cuda(u, rows, cols, count, h->ns_steps, scratch);
    if (h->normuon) {
        double* before = muon_norms(u, n, count, 1);
        muon_normuon_rows_kernel<<<dim3(cuda_blocks(rows, 8), count), 256>>>(u, second + (rms ? n : 0), rows, cols,
                                                                             stride, beta2, NORMUON_EPS);
        cudaCheckLaunch();
        muon_scale(u, n, count, before, muon_norms(u, n, count, 2), SCALE_RATIO, 0.0, 0.0);
    }
    double decay = decay_factor(h->lr, h->lr_max, h->weight_decay, h->lr2_decay);
    double step = (double)h->lr * muon_lr_scale(rows, cols, h->adjust);
    muon_apply_kernel<<<muon_grid(n, count), 256>>>(param, u, update_out, n, stride, decay, step);
    cudaCheckLaunch();
}

// ----------------------------------------------------------------------------------------------------
// health metrics of a GPU update (muon.h's update_health, same definitions, fp64): singular values from the
// eigenvalues of the Gram matrix on the small side, formed in double by cuBLAS and diagonalized by cuSOLVER
// (σ_i = √λ_i; fine for these metrics: λ carries an error of ~1e-16·σ_max², so σ down to ~1e-7·σ_max is exact
// to a few digits). The other sums are double reductions with fixed partials.

static __global__ void muon_to_double_kernel(double* y, const float* x, size_t n) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i] = x[i];
}

// partial[3·b + (0, 1, 2)] = Σ a·b, Σ a², Σ b² over this block's entries (a grid of MUON_NORM_BLOCKS)
static __global__ void muon_dot3_kernel(double* partial, const float* a, const float* b, size_t n) {
    double ab = 0.0, aa = 0.0, bb = 0.0;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        ab += (double)a[i] * b[i];
        aa += (double)a[i] * a[i];
        bb += (double)b[i] * b[i];
    }
    ab = block_reduce_sum_double(ab);
    aa = block_reduce_sum_double(aa);
    bb = block_reduce_sum_double(bb);
    if (threadIdx.x == 0) {
        partial[3 * blockIdx.x] = ab;
        partial[3 * blockIdx.x + 1] = aa;
        partial[3 * blockIdx.x + 2] = bb;
    }
}

static cusolverDnHandle_t cusolver_handle() {
    static cusolverDnHandle_t handle = NULL;
    if (!handle) cusolverCheck(cusolverDnCreate(&handle));
    return handle;
}

// S (s, host, descending) = singular values of X (rows, cols, device float)
static void singular_values_cuda(const float* X, int rows, int cols, double* S) {
    static void *xd = NULL, *g = NULL, *w = NULL, *lwork_buf = NULL, *info = NULL;
    static size_t xd_cap = 0, g_cap = 0, w_cap = 0, lwork_cap = 0, info_cap = 0;
    int s = rows < cols ? rows : cols;
    size_t n = (size_t)rows * cols;
    double* Xd = (double*)device_scratch_grow(&xd, &xd_cap, sizeof(double) * n);
    double* G = (double*)device_scratch_grow(&g, &g_cap, sizeof(double) * s * s);
    double* W = (double*)device_scratch_grow(&w, &w_cap, sizeof(double) * s);
    int* dev_info = (int*)device_scratch_grow(&info, &info_cap, sizeof(int));
    muon_to_double_kernel<<<cuda_blocks(n, 256), 256>>>(Xd, X, n);
    cudaCheckLaunch();
    // row-major X (rows, cols) is column-major Xc (cols, rows): X Xᵀ = Xcᵀ Xc, XᵀX = Xc Xcᵀ (symmetric: no
    // row/column-major question for G)
    double one = 1.0, zero = 0.0;
    if (rows <= cols)
        cublasCheck(cublasDgemm(cublas_handle(), CUBLAS_OP_T, CUBLAS_OP_N, s, s, cols, &one, Xd, cols, Xd, cols, &zero,
                                G, s));
    else
        cublasCheck(cublasDgemm(cublas_handle(), CUBLAS_OP_N, CUBLAS_OP_T, s, s, rows, &one, Xd, cols, Xd, cols, &zero,
                                G, s));
    int lwork = 0;
    cusolverCheck(cusolverDnDsyevd_bufferSize(cusolver_handle(), CUSOLVER_EIG_MODE_NOVECTOR, CUBLAS_FILL_MODE_LOWER, s,
                                              G, s, W, &lwork));
    double* work = (double*)device_scratch_grow(&lwork_buf, &lwork_cap, sizeof(double) * (lwork > 0 ? lwork : 1));
    cusolverCheck(cusolverDnDsyevd(cusolver_handle(), CUSOLVER_EIG_MODE_NOVECTOR, CUBLAS_FILL_MODE_LOWER, s, G, s, W,
                                   work, lwork, dev_info));
    int host_info = 0;
    cudaCheck(cudaMemcpy(&host_info, dev_info, sizeof(int), cudaMemcpyDeviceToHost));
    if (host_info != 0) die("cuSOLVER syevd: eigenvalues did not converge (info %d) for a %d x %d matrix", host_info,
                            rows, cols);
    cudaCheck(cudaMemcpy(S, W, sizeof(double) * s, cudaMemcpyDeviceToHost));  // ascending eigenvalues
    for (int i = 0; i < s / 2; i++) {
        double tmp = S[i];
        S[i] = S[s - 1 - i];
        S[s - 1 - i] = tmp;
    }
    for (int i = 0; i < s; i++) S[i] = S[i] > 0.0 ? sqrt(S[i]) : 0.0;
}

// update_health for device buffers: update (the applied step, as muon_update_cuda's update_out), grad and
// weight, all float (rows, cols). S_host: s doubles of host memory.
static UpdateHealth update_health_cuda(const float* update, const float* grad, const float* weight, int rows,
                                       int cols, double* S_host) {
    static void* partial_buf = NULL;
    static size_t partial_cap = 0;
    UpdateHealth hl;
    size_t n = (size_t)rows * cols;
    int k = rows < cols ? rows : cols;
    singular_values_cuda(update, rows, cols, S_host);
    hl.stable_rank = sv_stable_rank(S_host, k);
    hl.effective_rank = sv_effective_rank(S_host, k);
    hl.ortho_error = sv_ortho_error(S_host, k);
    double* partial = (double*)device_scratch_grow(&partial_buf, &partial_cap, sizeof(double) * 3 * MUON_NORM_BLOCKS);
    muon_dot3_kernel<<<MUON_NORM_BLOCKS, 256>>>(partial, grad, update, n);
    cudaCheckLaunch();
    double host[3 * MUON_NORM_BLOCKS], ab = 0.0, gg = 0.0, uu = 0.0;
    cudaCheck(cudaMemcpy(host, partial, sizeof(host), cudaMemcpyDeviceToHost));
    for (int b = 0; b < MUON_NORM_BLOCKS; b++) {
        ab += host[3 * b];
        gg += host[3 * b + 1];
        uu += host[3 * b + 2];
    }
    hl.grad_cosine = gg > 0.0 && uu > 0.0 ? ab / sqrt(gg * uu) : 0.0;
    hl.update_rms = n ? sqrt(uu / n) : 0.0;
    singular_values_cuda(weight, rows, cols, S_host);
    hl.weight_spectral_norm = S_host[0];
    return hl;
}
#endif
