// health.h: the optimizer-health metrics of an update ("Muon as a Residual Connection", arXiv 2607.01124):
// stable and effective rank, orthogonality error, cosine with the gradient, size, and the weight's spectral norm,
// from singular values: the fp64 CPU reference (Jacobi SVD, svd.h), then the GPU twin (Gram eigenvalues by
// cuSOLVER, in fp64). Flow: optim.h's health pass -> update_health / update_health_cuda every N steps.
#pragma once
#include "svd.h"
#ifdef __CUDACC__
#include <cusolverDn.h>
#endif

// optimizer health. From singular values S (k, descending):
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

// the three metrics of an update read from its singular values S (k, descending): both devices fill them so
static void health_from_singular_values(UpdateHealth* hl, const double* S, int k) {
    hl->stable_rank = sv_stable_rank(S, k);
    hl->effective_rank = sv_effective_rank(S, k);
    hl->ortho_error = sv_ortho_error(S, k);
}

// update: muon_update's update_out; grad and weight: float (rows, cols). work: n + s² + rows + cols doubles.
static UpdateHealth update_health(const double* update, const float* grad, const float* weight, int rows, int cols,
                                  double* work) {
    UpdateHealth hl;
    size_t n = (size_t)rows * cols;
    int k = rows < cols ? rows : cols;
    health_from_singular_values(&hl, singular_values(update, rows, cols, work), k);
    for (size_t i = 0; i < n; i++) work[i] = grad[i];
    hl.grad_cosine = matrix_cosine(work, update, n);
    hl.update_rms = matrix_rms(update, n);
    for (size_t i = 0; i < n; i++) work[i] = weight[i];
    hl.weight_spectral_norm = matrix_spectral_norm(work, rows, cols, work + n);
    return hl;
}

#ifdef __CUDACC__
// ----------------------------------------------------------------------------------------------------
static void cusolver_check(cusolverStatus_t s, const char* file, int line) {
    if (s != CUSOLVER_STATUS_SUCCESS) die("cuSOLVER error %d at %s:%d", (int)s, file, line);
}

#define cusolverCheck(call) cusolver_check((call), __FILE__, __LINE__)

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
    health_from_singular_values(&hl, S_host, k);
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
