// gemm.h: every matrix product the project computes, in one place, on either device.
//  - CPU: gemm_cpu, Cm (M, N) = [Cm +] op(A)·op(B), row-major: the GotoBLAS loop order, packed and blocked for
//    the caches and vectorized (the naive triple loop in ops/matmul.h is its reference); at the TF32 and bf16
//    levels its inputs are rounded as the tensor cores round them, while they are packed (fp32 sums as before).
//  - GPU: gemm_batched_cuda, Cm = alpha·op(A)·op(B) + beta·Cm with leading dimensions and a batch at fixed
//    strides, at the GemmLevel the caller passes down (tensor.h): cuBLAS FP32 (the default), cuBLAS allowed
//    TF32 tensor cores, or the teaching kernel of gemm_tiled.h; gemm_bf16_cuda, the same from operands in 16-bit
//    storage (bf16 inputs, fp32 sums, an fp32 result); gemm_lt_bf16_cuda, that product to a bf16 result
//    through cuBLASLt, with the bias, or the bias and GELU, applied in the product's epilogue (no pass of their own);
//    gemm_lt_row_sums_cuda, the accumulating fp32 product with the row sums of op(A) in its epilogue (a bias gradient).
// Flow: the matmul layer (ops/matmul.h), attention's simple GPU path (ops/attention.h) and Muon on the GPU
// (linalg.h) call these; no op includes another op for a product.
#pragma once
#include "tensor.h"
#include "gemm_tiled.h"
#ifdef __CUDACC__
#include <cublasLt.h>
#endif

// ----------------------------------------------------------------------------------------------------
// CPU blocked GEMM:  Cm (M, N) = [Cm +] op(A) (M, K) · op(B) (K, N), all row-major.
// op(A)[i, k] = trans_a ? A[k*M + i] : A[i*K + k];  op(B)[k, j] = trans_b ? B[j*K + k] : B[k*N + j].
// Blocking: a KC x NC slab of op(B) is packed once into NR-wide panels and the KC columns of op(A) into MR-tall
// panels (both shared by the threads); each task runs the MR x NR micro-kernel over an MC x JC block of Cm.
// The micro-kernel keeps an MR x NR tile of sums in registers: 6 rows of two vectors, 12 registers, of 8 floats
// (AVX2: NR = 16) or, where the build targets AVX-512 (-march=native on such a CPU), of 16 floats (NR = 32).
// KC keeps one NR-wide panel of op(B) (KC x NR floats, 16 KiB) in a 32 KiB L1 cache while the panels of op(A)
// stream past it. Every element of Cm is one thread's: the sums run in the same order whatever the thread count.

#ifdef __AVX512F__
#define GEMM_LANES 16
#else
#define GEMM_LANES 8
#endif
#define GEMM_MR 6
#define GEMM_NR (2 * GEMM_LANES)
#define GEMM_MC 96
#define GEMM_KC (4096 / GEMM_NR)
#define GEMM_NC 4096
#define GEMM_JC 256  // columns per task inside an NC slab: enough tasks for the threads even when M is small

// a packed panel's inputs at `level`, as the GPU's tensor cores take them (--matmul: TF32 or bf16), rounded in a
// pass of their own after packing, so the fp32 packing loops stay as they are
static void gemm_round_inputs(float* panel, size_t n, GemmLevel level) {
    if (level == GEMM_CUBLAS_BF16)
        bf16_round_row(panel, n);
    else if (level == GEMM_CUBLAS_TF32)
        for (size_t i = 0; i < n; i++) panel[i] = tf32_round(panel[i]);
}

// (both packing loops share their panels among the threads of gemm_cpu's parallel region)
// packs op(A)[0 : M, k0 : k0+kc] as ceil(M/MR) panels, each kc columns of MR values (zero padded)
static void gemm_pack_a(float* Ap, const float* A, int M, int K, bool trans_a, int k0, int kc, GemmLevel level) {
    int panels = (M + GEMM_MR - 1) / GEMM_MR;
#pragma omp for schedule(static)
    for (int p = 0; p < panels; p++) {
        float* dst = Ap + (size_t)p * kc * GEMM_MR;
        for (int k = 0; k < kc; k++)
            for (int r = 0; r < GEMM_MR; r++) {
                int i = p * GEMM_MR + r;
                float v = 0.0f;
                if (i < M) v = trans_a ? A[(size_t)(k0 + k) * M + i] : A[(size_t)i * K + k0 + k];
                *dst++ = v;
            }
        gemm_round_inputs(Ap + (size_t)p * kc * GEMM_MR, (size_t)kc * GEMM_MR, level);
    }
}

// packs op(B)[k0 : k0+kc, j0 : j0+nc] as nc/NR panels, each kc rows of NR values (zero padded)
static void gemm_pack_b(float* Bp, const float* B, int N, int K, bool trans_b, int k0, int j0, int kc, int nc,
                        GemmLevel level) {
    int panels = (nc + GEMM_NR - 1) / GEMM_NR;
#pragma omp for schedule(static)
    for (int p = 0; p < panels; p++) {
        float* dst = Bp + (size_t)p * kc * GEMM_NR;
        for (int k = 0; k < kc; k++)
            for (int c = 0; c < GEMM_NR; c++) {
                int jj = p * GEMM_NR + c;
                float v = 0.0f;
                if (jj < nc) v = trans_b ? B[(size_t)(j0 + jj) * K + k0 + k] : B[(size_t)(k0 + k) * N + j0 + jj];
                *dst++ = v;
            }
        gemm_round_inputs(Bp + (size_t)p * kc * GEMM_NR, (size_t)kc * GEMM_NR, level);
    }
}

// acc (MR x NR) = Σ_k Ap[k, :]ᵀ Bp[k, :]; then Cm[0:mr, 0:nr] (+)= acc.
// A row of NR sums is two vectors of GEMM_LANES floats (GCC's vector extension: plain `+` and `*` on vectors),
// so the compiler keeps all MR x NR sums in registers and issues one fused multiply-add per vector of products.
typedef float floatv __attribute__((vector_size(4 * GEMM_LANES)));

static void gemm_micro_kernel(int kc, const float* Ap, const float* Bp, float* Cm, int ldc, int mr, int nr,
                              bool overwrite) {
    const floatv zero = {0};
    floatv acc[GEMM_MR][2];
    for (int r = 0; r < GEMM_MR; r++) acc[r][0] = acc[r][1] = zero;
    for (int k = 0; k < kc; k++) {
        floatv b0, b1;
        memcpy(&b0, Bp + k * GEMM_NR, sizeof(b0));
        memcpy(&b1, Bp + k * GEMM_NR + GEMM_LANES, sizeof(b1));
        for (int r = 0; r < GEMM_MR; r++) {
            float a = Ap[k * GEMM_MR + r];  // broadcast to every lane by the vector-scalar product
            acc[r][0] += a * b0;
            acc[r][1] += a * b1;
        }
    }
    if (mr == GEMM_MR && nr == GEMM_NR) {  // a whole tile: vector loads and stores
        for (int r = 0; r < GEMM_MR; r++)
            for (int h = 0; h < 2; h++) {
                float* dst = Cm + (size_t)r * ldc + GEMM_LANES * h;
                floatv c = acc[r][h];
                if (!overwrite) {
                    floatv old;
                    memcpy(&old, dst, sizeof(old));
                    c += old;
                }
                memcpy(dst, &c, sizeof(c));
            }
        return;
    }
    for (int r = 0; r < mr; r++) {
        float row[GEMM_NR];
        memcpy(row, &acc[r][0], sizeof(acc[r][0]));
        memcpy(row + GEMM_LANES, &acc[r][1], sizeof(acc[r][1]));
        float* dst = Cm + (size_t)r * ldc;
        for (int c = 0; c < nr; c++) dst[c] = overwrite ? row[c] : dst[c] + row[c];
    }
}

// the packed operands' buffers, kept between calls and only grown (no allocation per call)
static float* gemm_pack_buffer(float** buf, size_t* capacity, size_t floats) {
    if (floats > *capacity) {
        free(*buf);
        *buf = (float*)xmalloc(sizeof(float) * floats);
        *capacity = floats;
    }
    return *buf;
}

static void gemm_cpu(float* Cm, const float* A, const float* B, int M, int N, int K, bool trans_a, bool trans_b,
                     bool accumulate, GemmLevel level = GEMM_CUBLAS) {
    if (M <= 0 || N <= 0) return;
    if (K <= 0) {
        if (!accumulate)
            for (size_t i = 0; i < (size_t)M * N; i++) Cm[i] = 0.0f;
        return;
    }
    static float *Ap = NULL, *Bp = NULL;
    static size_t ap_capacity = 0, bp_capacity = 0;
    int a_panels = (M + GEMM_MR - 1) / GEMM_MR;
    gemm_pack_buffer(&Ap, &ap_capacity, (size_t)a_panels * GEMM_MR * GEMM_KC);
    gemm_pack_buffer(&Bp, &bp_capacity, (size_t)GEMM_KC * GEMM_NC);
    // one parallel region: every thread walks the same slabs and blocks, and shares the work of each loop
    // inside (an `omp for` ends when all threads are done, so no buffer is repacked while it is read)
#pragma omp parallel
    for (int j0 = 0; j0 < N; j0 += GEMM_NC) {
        int nc = N - j0 < GEMM_NC ? N - j0 : GEMM_NC;
        for (int k0 = 0; k0 < K; k0 += GEMM_KC) {
            int kc = K - k0 < GEMM_KC ? K - k0 : GEMM_KC;
            bool overwrite = (k0 == 0) && !accumulate;
            gemm_pack_b(Bp, B, N, K, trans_b, k0, j0, kc, nc, level);
            if (j0 == 0 || K > GEMM_KC) gemm_pack_a(Ap, A, M, K, trans_a, k0, kc, level);  // one k block: kept for every slab
            int row_blocks = (M + GEMM_MC - 1) / GEMM_MC;
            int col_blocks = (nc + GEMM_JC - 1) / GEMM_JC;
#pragma omp for collapse(2) schedule(static)
            for (int ib = 0; ib < row_blocks; ib++)
                for (int jb = 0; jb < col_blocks; jb++) {
                    int i0 = ib * GEMM_MC;
                    int mc = M - i0 < GEMM_MC ? M - i0 : GEMM_MC;
                    int jend = (jb + 1) * GEMM_JC < nc ? (jb + 1) * GEMM_JC : nc;
                    for (int jr = jb * GEMM_JC; jr < jend; jr += GEMM_NR) {
                        int nr = jend - jr < GEMM_NR ? jend - jr : GEMM_NR;
                        for (int ir = 0; ir < mc; ir += GEMM_MR) {
                            int mr = mc - ir < GEMM_MR ? mc - ir : GEMM_MR;
                            gemm_micro_kernel(kc, Ap + (size_t)(i0 + ir) * kc, Bp + (size_t)jr * kc,
                                              Cm + (size_t)(i0 + ir) * N + j0 + jr, N, mr, nr, overwrite);
                        }
                    }
                }
        }
    }
}

// cuBLASLt's workspace (below), which a run at 16-bit storage also holds (run.h's memory check counts it)
#define CUBLASLT_WORKSPACE_BYTES ((size_t)32 << 20)

#ifdef __CUDACC__
// ----------------------------------------------------------------------------------------------------
// GPU GEMM


// Cm (M, N) = alpha · op(A) (M, K) · op(B) (K, N) + beta · Cm, `batch` times at the given strides, all
// row-major with leading dimensions (op as in gemm_tiled_kernel; the same convention as gemm_cpu).
// cuBLAS is column-major. A row-major (R, S) matrix with leading dimension ld is, read column-major, its
// transpose (S, R) with the same ld. So the row-major product Cm = op(A)·op(B) is the column-major product
// Cmᵀ = op(B)ᵀ·op(A)ᵀ: cuBLAS gets B first, A second, m = N, n = M, and each operand keeps its own flag
// (B stored row-major (K, N) is op(B)ᵀ = (N, K) column-major as it is: OP_N; stored (N, K): OP_T).
// Example, the layer out (N,OC) = inp (N,C)·W(OC,C)ᵀ: cublasGemmEx(OP_T, OP_N, m=OC, n=N, k=C, W, ld C,
// inp, ld C, out, ld OC): column-major outᵀ (OC, N) = W (OC, C, the transpose of its column-major (C, OC))
// times inpᵀ (C, N).
// cuBLAS gives the same bits on every run (same GPU, same library) unless told to use atomics (we don't).
static void gemm_batched_cuda(GemmLevel level, float* Cm, const float* A, const float* B, int M, int N, int K,
                              bool trans_a, bool trans_b, float alpha, float beta, int lda, int ldb, int ldc,
                              long long stride_a, long long stride_b, long long stride_c, int batch) {
    if (M <= 0 || N <= 0 || batch <= 0) return;
    if (level == GEMM_TILED) {
        gemm_tiled_cuda(Cm, A, B, M, N, K, trans_a, trans_b, alpha, beta, lda, ldb, ldc, stride_a, stride_b, stride_c,
                        batch);
        return;
    }
    cublasComputeType_t compute = level == GEMM_CUBLAS_TF32   ? CUBLAS_COMPUTE_32F_FAST_TF32
                                  : level == GEMM_CUBLAS_BF16 ? CUBLAS_COMPUTE_32F_FAST_16BF
                                                              : CUBLAS_COMPUTE_32F;
    // cuBLAS wants every leading dimension >= 1 even where K = 0 leaves it unused
    lda = lda > 1 ? lda : 1;
    ldb = ldb > 1 ? ldb : 1;
    cublasCheck(cublasGemmStridedBatchedEx(cublas_handle(), trans_b ? CUBLAS_OP_T : CUBLAS_OP_N,
                                           trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, N, M, K, &alpha, B, CUDA_R_32F, ldb,
                                           stride_b, A, CUDA_R_32F, lda, stride_a, &beta, Cm, CUDA_R_32F, ldc, stride_c,
                                           batch, compute, CUBLAS_GEMM_DEFAULT));
}

// The twin of gemm_cpu: Cm (M, N) = [Cm +] op(A) (M, K) · op(B) (K, N), packed row-major.
static void gemm_cuda(GemmLevel level, float* Cm, const float* A, const float* B, int M, int N, int K, bool trans_a,
                      bool trans_b, bool accumulate) {
    gemm_batched_cuda(level, Cm, A, B, M, N, K, trans_a, trans_b, 1.0f, accumulate ? 1.0f : 0.0f, trans_a ? M : K,
                      trans_b ? K : N, N, 0, 0, 0, 1);
}

// The same product from operands in 16-bit storage (bfloat16, numerics.h), on the bf16 tensor cores with fp32 sums
// (cuBLAS's CUBLAS_COMPUTE_32F with CUDA_R_16BF inputs): Cm (fp32) [+]= op(A)·op(B). What the layers run at 16-bit
// storage (ops/matmul.h's matmul_bf16) for an fp32 result; a bf16 result goes through cuBLASLt, below.
static void gemm_bf16_cuda(float* Cm, const bfloat16* A, const bfloat16* B, int M, int N, int K, bool trans_a,
                           bool trans_b, bool accumulate) {
    if (M <= 0 || N <= 0) return;
    float alpha = 1.0f, beta = accumulate ? 1.0f : 0.0f;
    int lda = trans_a ? M : K, ldb = trans_b ? K : N;  // packed row-major, as gemm_cuda (the operands swapped there)
    cublasCheck(cublasGemmEx(cublas_handle(), trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, trans_a ? CUBLAS_OP_T : CUBLAS_OP_N,
                             N, M, K, &alpha, B, CUDA_R_16BF, ldb > 1 ? ldb : 1, A, CUDA_R_16BF, lda > 1 ? lda : 1,
                             &beta, Cm, CUDA_R_32F, N, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

// cuBLASLt: one handle, and its workspace (32 MiB, as llm.c gives it on Hopper), both made on first use
static cublasLtHandle_t cublaslt_handle() {
    static cublasLtHandle_t handle = NULL;
    if (!handle) cublasCheck(cublasLtCreate(&handle));
    return handle;
}
static void* cublaslt_workspace() {
    static void* workspace = NULL;
    if (!workspace) cudaCheck(cudaMalloc(&workspace, CUBLASLT_WORKSPACE_BYTES));
    return workspace;
}

// The cuBLASLt call behind the two below: D (M, N) = epilogue(op(A) · op(B)) [+ D], bf16 operands, fp32 sums, D of
// type d_type (bf16 or fp32); the epilogue's bias (or bias gradient) and aux pointers as cuBLASLt takes them. Row-major
// as gemm_bf16_cuda: cuBLASLt sees Dᵀ (N, M) column-major, with B first. False where cuBLASLt offers no algorithm.
static bool gemm_lt_cuda(void* D, cudaDataType_t d_type, bool accumulate, const bfloat16* A, const bfloat16* B, int M,
                         int N, int K, bool trans_a, bool trans_b, uint32_t epilogue, const void* bias, bfloat16* aux) {
    cublasLtMatmulDesc_t desc;
    cublasCheck(cublasLtMatmulDescCreate(&desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    int32_t op_b = trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, op_a = trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
    cublasCheck(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSA, &op_b, sizeof(op_b)));  // swapped:
    cublasCheck(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSB, &op_a, sizeof(op_a)));  // B first
    cublasCheck(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue, sizeof(epilogue)));
    if (bias) cublasCheck(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof(bias)));
    if (aux) {
        int64_t ld = N;
        cublasCheck(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER, &aux, sizeof(aux)));
        cublasCheck(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD, &ld, sizeof(ld)));
    }
    // the operands as stored, column-major: B (N x K or K x N), A (K x M or M x K), D (N x M)
    cublasLtMatrixLayout_t lb, la, ld;
    cublasCheck(cublasLtMatrixLayoutCreate(&lb, CUDA_R_16BF, trans_b ? K : N, trans_b ? N : K, trans_b ? K : N));
    cublasCheck(cublasLtMatrixLayoutCreate(&la, CUDA_R_16BF, trans_a ? M : K, trans_a ? K : M, trans_a ? M : K));
    cublasCheck(cublasLtMatrixLayoutCreate(&ld, d_type, N, M, N));
    cublasLtMatmulPreference_t pref;
    cublasCheck(cublasLtMatmulPreferenceCreate(&pref));
    uint64_t workspace = CUBLASLT_WORKSPACE_BYTES;
    cublasCheck(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &workspace,
                                                     sizeof(workspace)));
    cublasLtMatmulHeuristicResult_t heuristic;
    int found = 0;
    cublasLtMatmulAlgoGetHeuristic(cublaslt_handle(), desc, lb, la, ld, ld, pref, 1, &heuristic, &found);
    if (found > 0) {
        float alpha = 1.0f, beta = accumulate ? 1.0f : 0.0f;
        cublasCheck(cublasLtMatmul(cublaslt_handle(), desc, &alpha, B, lb, A, la, &beta, D, ld, D, ld, &heuristic.algo,
                                   cublaslt_workspace(), CUBLASLT_WORKSPACE_BYTES, cudaStreamPerThread));
    }
    cublasCheck(cublasLtMatmulPreferenceDestroy(pref));
    cublasCheck(cublasLtMatrixLayoutDestroy(ld));
    cublasCheck(cublasLtMatrixLayoutDestroy(la));
    cublasCheck(cublasLtMatrixLayoutDestroy(lb));
    cublasCheck(cublasLtMatmulDescDestroy(desc));
    return found > 0;
}

// The product of gemm_bf16_cuda to a bf16 result, D (M, N) = epilogue(op(A) · op(B)), with what follows it applied
// to each fp32 sum in the product's epilogue, before the one rounding to bf16 as it is stored (a pass over D saved):
//   bias (N values, bf16; or NULL):  D[i, j] = sum + bias[j]                        (CUBLASLT_EPILOGUE_BIAS)
//   GEMM_GELU_FORWARD:               gelu_in[i, j] = sum + bias[j] (stored), D[i, j] = GELU(sum + bias[j]), GELU's
//                                    tanh approximation (CUBLASLT_EPILOGUE_GELU_AUX_BIAS; gelu_in is the "aux" matrix)
//   GEMM_GELU_BACKWARD:              D[i, j] = sum · GELU'(gelu_in[i, j]) (read): the product is dL/d(GELU's output),
//                                    D dL/d(GELU's input) (CUBLASLT_EPILOGUE_DGELU), ops/gelu.h's backward formula
// cuBLASLt sees Dᵀ column-major (above), so the bias runs along D's rows there, as cuBLASLt wants it (one value per
// row of its D), and the aux matrix has D's leading dimension N (a multiple of 8). Dies where cuBLASLt has no
// algorithm: the layers have no other way to a bf16 result with these epilogues.
enum GemmGelu { GEMM_NO_GELU, GEMM_GELU_FORWARD, GEMM_GELU_BACKWARD };
static void gemm_lt_bf16_cuda(bfloat16* D, const bfloat16* A, const bfloat16* B, int M, int N, int K, bool trans_a,
                              bool trans_b, const bfloat16* bias, GemmGelu gelu = GEMM_NO_GELU, bfloat16* gelu_in = NULL) {
    if (M <= 0 || N <= 0) return;
    if (gelu != GEMM_NO_GELU && (!gelu_in || N % 8 != 0))
        die("gemm_lt_bf16_cuda: GELU in the epilogue needs GELU's input and the columns (%d) a multiple of 8", N);
    if (gelu == GEMM_GELU_BACKWARD && bias) die("gemm_lt_bf16_cuda: no bias with GELU's backward");
    uint32_t epilogue = gelu == GEMM_GELU_BACKWARD  ? CUBLASLT_EPILOGUE_DGELU
                        : gelu == GEMM_GELU_FORWARD ? (bias ? CUBLASLT_EPILOGUE_GELU_AUX_BIAS : CUBLASLT_EPILOGUE_GELU_AUX)
                                                    : (bias ? CUBLASLT_EPILOGUE_BIAS : CUBLASLT_EPILOGUE_DEFAULT);
    if (!gemm_lt_cuda(D, CUDA_R_16BF, false, A, B, M, N, K, trans_a, trans_b, epilogue, bias,
                      gelu != GEMM_NO_GELU ? gelu_in : NULL))
        die("gemm_lt_bf16_cuda: cuBLASLt has no algorithm for (%d x %d) = (%d x %d) · (%d x %d), epilogue %u", M, N,
            M, K, K, N, epilogue);
}

// gemm_bf16_cuda's accumulating product, Cm (fp32, M x N) += op(A) · op(B), with the row sums of op(A) computed in
// its epilogue: row_sums[i] = Σ_k op(A)[i, k] (M values, fp32, written over; CUBLASLT_EPILOGUE_BGRADB, "B" being A
// in the swapped call). A layer's weight gradient dW = doutᵀ · inp is such a product, and the row sums of doutᵀ are
// its bias gradient, so the bias's backward makes no pass of its own over dout. False (nothing computed) where
// cuBLASLt offers no algorithm: the caller then runs the product and the sums its own way.
static bool gemm_lt_row_sums_cuda(float* Cm, float* row_sums, const bfloat16* A, const bfloat16* B, int M, int N,
                                  int K, bool trans_a, bool trans_b) {
    if (M <= 0 || N <= 0 || K <= 0) return false;  // (an empty product: the caller's way handles it)
    return gemm_lt_cuda(Cm, CUDA_R_32F, true, A, B, M, N, K, trans_a, trans_b, CUBLASLT_EPILOGUE_BGRADB, row_sums,
                        NULL);
}
#endif
