// tests/emu/blas.cpp: cuBLAS, cuBLASLt and cuSOLVER on the CPU, for the emulated test build (declared in
// tests/emu/include/cublas_v2.h, cublasLt.h and cusolverDn.h). Each call checks its arguments as the library does and
// returns the same status for the same mistake (an `lda` smaller than the rows it must span is
// CUBLAS_STATUS_INVALID_VALUE), then queues its computation like a kernel (tests/emu/runtime.cpp runs it in
// stream order). The emulation also checks what the library cannot: that every operand, over the whole extent the
// call will touch, is device memory (a fault like an illegal address on a GPU, with a message naming the operand).
//
// GEMM, as cuBLAS documents it (column-major): C = alpha · op(A) · op(B) + beta · C for each of batchCount
// matrices at the given strides, op(X) = X or Xᵀ; op(A) is m x k, op(B) k x n, C m x n; A is stored
// (transa == N ? m x k : k x m) with leading dimension lda ≥ its rows, likewise B, and C m x n with ldc ≥ m.
// beta = 0 never reads C (it may hold NaN). Each entry is summed over k in order in the compute type: float for
// CUBLAS_COMPUTE_32F, float of inputs rounded to TF32 (10-bit mantissa, round to nearest) for _FAST_TF32 or
// bfloat16 for _FAST_16BF, double for CUBLAS_COMPUTE_64F.
#include <algorithm>
#include <stdio.h>
#include <stdlib.h>
#include <vector>
#include "../emu/include/cublas_v2.h"
#include "../emu/include/cublasLt.h"
#include "../emu/include/cusolverDn.h"
#include "internal.h"

struct EmuBlasHandle {
    cublasMath_t math;
    cudaStream_t stream;  // cublasSetStream's; 0 (the legacy stream, for a library) until set
};
struct EmuSolverHandle {
    int unused;
};
static EmuBlasHandle lt_blas_handle = {CUBLAS_DEFAULT_MATH, 0};  // what cublasLtMatmul hands gemm_call

namespace {

size_t type_size(cudaDataType_t t) {
    return t == CUDA_R_64F ? 8 : t == CUDA_R_32F ? 4 : 2;
}

float bf16_to_float(uint16_t b) {
    uint32_t bits = (uint32_t)b << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}
uint16_t float_to_bf16(float f) {  // round to nearest even, NaN kept a NaN
    uint32_t bits;
    memcpy(&bits, &f, 4);
    if ((bits & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((bits >> 16) | 0x40);
    bits += 0x7fffu + ((bits >> 16) & 1);
    return (uint16_t)(bits >> 16);
}
float round_tf32(float f) {  // cvt.rna.tf32.f32: 10 mantissa bits, ties away from zero
    uint32_t bits;
    memcpy(&bits, &f, 4);
    if ((bits & 0x7f800000u) != 0x7f800000u) bits = (bits + 0x1000u) & 0xffffe000u;
    memcpy(&f, &bits, 4);
    return f;
}

double load(const void* p, cudaDataType_t t, size_t i) {
    if (t == CUDA_R_32F) return ((const float*)p)[i];
    if (t == CUDA_R_64F) return ((const double*)p)[i];
    return bf16_to_float(((const uint16_t*)p)[i]);
}
void store(void* p, cudaDataType_t t, size_t i, double v) {
    if (t == CUDA_R_32F) ((float*)p)[i] = (float)v;
    else if (t == CUDA_R_64F) ((double*)p)[i] = v;
    else ((uint16_t*)p)[i] = float_to_bf16((float)v);
}

const char* op_name(cublasOperation_t op) { return op == CUBLAS_OP_N ? "N" : "T"; }

// the bytes a stored matrix (rows x cols, leading dimension ld) spans in each of `batch` entries, checked to be
// device memory; false (after reporting) when not
bool operand_ok(const char* call, const char* which, const void* p, cudaDataType_t t, int rows, int cols, int ld,
                long long stride, int batch) {
    if (rows == 0 || cols == 0) return true;
    size_t es = type_size(t);
    for (int b = 0; b < batch; b++) {
        const char* first = (const char*)p + (long long)b * stride * (long long)es;
        size_t span = ((size_t)(cols - 1) * ld + rows) * es;
        if (!emu::is_device_range(first, span)) {
            emu::report("%s: operand %s (%d x %d, ld %d, batch entry %d of %d at %p) is not all device memory", call,
                        which, rows, cols, ld, b, batch, (const void*)first);
            return false;
        }
    }
    return true;
}

struct Gemm {
    cublasOperation_t transa, transb;
    int m, n, k, lda, ldb, ldc, batch;
    long long sa, sb, sc;
    const void *A, *B;
    void* C;
    cudaDataType_t ta, tb, tc;
    cublasComputeType_t compute;
    double alpha, beta;
    // cuBLASLt's epilogue (tests/emu/include/cublasLt.h), on the fp32 value before it is stored: + bias[row] (of C's
    // type), then GELU, the value before it stored to aux (of C's type, leading dimension aux_ld) where given; or
    // (dgelu) the value times GELU's derivative at aux's value
    const void* bias;
    bool gelu, dgelu;
    void* aux;
    long long aux_ld;
    void* bgrad;  // BGRADB: bgrad[j] = Σ_l op(B)[l, j] (of C's type), from op(B) as the compute type reads it
};

// GELU's tanh approximation, x/2 · (1 + tanh(√(2/π) · (x + 0.044715 x³))), as cuBLASLt's GELU epilogues compute it
float gelu_tanh(float x) {
    return 0.5f * x * (1.0f + tanhf(0.7978845608f * (x + 0.044715f * x * x * x)));
}
// its derivative: (1 + t)/2 + x/2 · (1 − t²) · √(2/π) · (1 + 3 · 0.044715 x²), t = tanh(√(2/π) · (x + 0.044715 x³))
float gelu_tanh_slope(float x) {
    float t = tanhf(0.7978845608f * (x + 0.044715f * x * x * x));
    return 0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * 0.7978845608f * (1.0f + 3.0f * 0.044715f * x * x);
}

// one queued GEMM, computed as the comment at the top says
void gemm_run(const Gemm& g) {
    bool dbl = g.compute == CUBLAS_COMPUTE_64F;
    bool tf32 = g.compute == CUBLAS_COMPUTE_32F_FAST_TF32, bf16 = g.compute == CUBLAS_COMPUTE_32F_FAST_16BF;
    size_t m = g.m, n = g.n, k = g.k;
    for (int b = 0; b < g.batch; b++) {
        size_t ea = type_size(g.ta), eb = type_size(g.tb), ec = type_size(g.tc);
        const char* A = (const char*)g.A + (long long)b * g.sa * (long long)ea;
        const char* B = (const char*)g.B + (long long)b * g.sb * (long long)eb;
        char* C = (char*)g.C + (long long)b * g.sc * (long long)ec;
        // op(A) packed column-major (m x k), op(B) packed column-major (k x n), in the compute type
        std::vector<double> Ad(dbl ? m * k : 0), Bd(dbl ? k * n : 0);
        std::vector<float> Af(dbl ? 0 : m * k), Bf(dbl ? 0 : k * n);
        for (size_t l = 0; l < k; l++)
            for (size_t i = 0; i < m; i++) {
                size_t at = g.transa == CUBLAS_OP_N ? i + l * g.lda : l + i * g.lda;
                double v = load(A, g.ta, at);
                if (dbl) Ad[i + l * m] = v;
                else Af[i + l * m] = tf32 ? round_tf32((float)v) : bf16 ? bf16_to_float(float_to_bf16((float)v)) : (float)v;
            }
        for (size_t j = 0; j < n; j++)
            for (size_t l = 0; l < k; l++) {
                size_t at = g.transb == CUBLAS_OP_N ? l + j * g.ldb : j + l * g.ldb;
                double v = load(B, g.tb, at);
                if (dbl) Bd[l + j * k] = v;
                else Bf[l + j * k] = tf32 ? round_tf32((float)v) : bf16 ? bf16_to_float(float_to_bf16((float)v)) : (float)v;
            }
        if (g.bgrad)
            for (size_t j = 0; j < n; j++) {
                float s = 0.0f;
                for (size_t l = 0; l < k; l++) s += Bf[l + j * k];
                store(g.bgrad, g.tc, j, s);
            }
#pragma omp parallel for schedule(static)
        for (long long jj = 0; jj < (long long)n; jj++) {
            size_t j = (size_t)jj;
            std::vector<double> accd(dbl ? m : 0, 0.0);
            std::vector<float> accf(dbl ? 0 : m, 0.0f);
            for (size_t l = 0; l < k; l++) {
                if (dbl) {
                    double bv = Bd[l + j * k];
                    for (size_t i = 0; i < m; i++) accd[i] += Ad[i + l * m] * bv;
                } else {
                    float bv = Bf[l + j * k];
                    for (size_t i = 0; i < m; i++) accf[i] += Af[i + l * m] * bv;
                }
            }
            for (size_t i = 0; i < m; i++) {
                size_t at = i + j * g.ldc;
                double sum = dbl ? accd[i] : (double)accf[i];
                double v;
                if (dbl) v = g.beta == 0.0 ? g.alpha * sum : g.alpha * sum + g.beta * load(C, g.tc, at);
                else {  // float arithmetic, as the 32F compute type
                    float s = (float)g.alpha * (float)sum;
                    if (g.beta != 0.0) s += (float)g.beta * (float)load(C, g.tc, at);
                    if (g.bias) s += (float)load(g.bias, g.tc, i);
                    if (g.gelu) {
                        if (g.aux) store(g.aux, g.tc, i + j * g.aux_ld, s);
                        s = gelu_tanh(s);
                    }
                    if (g.dgelu) s *= gelu_tanh_slope((float)load(g.aux, g.tc, i + j * g.aux_ld));
                    v = s;
                }
                store(C, g.tc, at, v);
            }
        }
    }
}

bool types_supported(cudaDataType_t ta, cudaDataType_t tb, cudaDataType_t tc, cublasComputeType_t compute) {
    if (compute == CUBLAS_COMPUTE_64F) return ta == CUDA_R_64F && tb == CUDA_R_64F && tc == CUDA_R_64F;
    if (compute == CUBLAS_COMPUTE_32F || compute == CUBLAS_COMPUTE_32F_PEDANTIC || compute == CUBLAS_COMPUTE_32F_FAST_TF32 ||
        compute == CUBLAS_COMPUTE_32F_FAST_16BF) {
        if (ta == CUDA_R_32F && tb == CUDA_R_32F && tc == CUDA_R_32F) return true;
        return ta == CUDA_R_16BF && tb == CUDA_R_16BF && (tc == CUDA_R_16BF || tc == CUDA_R_32F);
    }
    return false;
}

// stream: where the library runs it (a cuBLAS handle's, the stream passed to cublasLtMatmul)
cublasStatus_t gemm_call(const char* call, cublasHandle_t handle, Gemm g, const void* alpha, const void* beta,
                         cudaStream_t stream) {
    emu::count_blas_call();
    if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (!emu::library_stream_ok(call, stream)) return CUBLAS_STATUS_EXECUTION_FAILED;
    auto invalid = [&](const char* why) {
        emu::report("%s(%s, %s, m %d, n %d, k %d, lda %d, ldb %d, ldc %d, batch %d): %s: CUBLAS_STATUS_INVALID_VALUE",
                    call, op_name(g.transa), op_name(g.transb), g.m, g.n, g.k, g.lda, g.ldb, g.ldc, g.batch, why);
        return CUBLAS_STATUS_INVALID_VALUE;
    };
    if ((g.transa != CUBLAS_OP_N && g.transa != CUBLAS_OP_T) || (g.transb != CUBLAS_OP_N && g.transb != CUBLAS_OP_T))
        return invalid("op is not N or T");
    if (g.m < 0 || g.n < 0 || g.k < 0) return invalid("a negative size");
    if (g.batch < 0) return invalid("a negative batch count");
    int a_rows = g.transa == CUBLAS_OP_N ? g.m : g.k, b_rows = g.transb == CUBLAS_OP_N ? g.k : g.n;
    if (g.lda < (a_rows > 1 ? a_rows : 1)) return invalid("lda is smaller than max(1, rows of A as stored)");
    if (g.ldb < (b_rows > 1 ? b_rows : 1)) return invalid("ldb is smaller than max(1, rows of B as stored)");
    if (g.ldc < (g.m > 1 ? g.m : 1)) return invalid("ldc is smaller than max(1, m)");
    if (!alpha || !beta) return invalid("alpha or beta is NULL");
    if (!types_supported(g.ta, g.tb, g.tc, g.compute)) {
        emu::report("%s: data types %d/%d/%d with compute type %d: CUBLAS_STATUS_NOT_SUPPORTED (not emulated)", call,
                    (int)g.ta, (int)g.tb, (int)g.tc, (int)g.compute);
        return CUBLAS_STATUS_NOT_SUPPORTED;
    }
    bool dbl_scalars = g.compute == CUBLAS_COMPUTE_64F;  // alpha and beta in the compute type, host pointer mode
    g.alpha = dbl_scalars ? *(const double*)alpha : *(const float*)alpha;
    g.beta = dbl_scalars ? *(const double*)beta : *(const float*)beta;
    if (g.m == 0 || g.n == 0 || g.batch == 0) return CUBLAS_STATUS_SUCCESS;
    int a_cols = g.transa == CUBLAS_OP_N ? g.k : g.m, b_cols = g.transb == CUBLAS_OP_N ? g.n : g.k;
    const char* name = call;
    emu::enqueue_work(name, [g, a_rows, a_cols, b_rows, b_cols, name]() {
        if (!operand_ok(name, "A", g.A, g.ta, a_rows, a_cols, g.lda, g.sa, g.batch) ||
            !operand_ok(name, "B", g.B, g.tb, b_rows, b_cols, g.ldb, g.sb, g.batch) ||
            !operand_ok(name, "C", g.C, g.tc, g.m, g.n, g.ldc, g.sc, g.batch) ||
            (g.bias && !operand_ok(name, "bias", g.bias, g.tc, g.m, 1, g.m, 0, 1)) ||
            (g.aux && !operand_ok(name, "aux", g.aux, g.tc, g.m, g.n, (int)g.aux_ld, 0, 1)) ||
            (g.bgrad && !operand_ok(name, "bias gradient", g.bgrad, g.tc, g.n, 1, g.n, 0, 1))) {
            emu::fault(cudaErrorIllegalAddress);
            return;
        }
        gemm_run(g);
    });
    return CUBLAS_STATUS_SUCCESS;
}

}  // namespace

cublasStatus_t cublasCreate(cublasHandle_t* handle) {
    if (!handle) return CUBLAS_STATUS_INVALID_VALUE;
    *handle = new EmuBlasHandle{CUBLAS_DEFAULT_MATH, 0};
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasDestroy(cublasHandle_t handle) {
    if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
    cudaDeviceSynchronize();
    delete handle;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSetMathMode(cublasHandle_t handle, cublasMath_t mode) {
    if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
    handle->math = mode;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasGetMathMode(cublasHandle_t handle, cublasMath_t* mode) {
    if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (!mode) return CUBLAS_STATUS_INVALID_VALUE;
    *mode = handle->math;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSetStream(cublasHandle_t handle, cudaStream_t stream) {
    if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
    handle->stream = stream;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasGemmStridedBatchedEx(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb,
                                          int m, int n, int k, const void* alpha, const void* A, cudaDataType_t Atype,
                                          int lda, long long strideA, const void* B, cudaDataType_t Btype, int ldb,
                                          long long strideB, const void* beta, void* C, cudaDataType_t Ctype, int ldc,
                                          long long strideC, int batchCount, cublasComputeType_t computeType,
                                          cublasGemmAlgo_t) {
    Gemm g = {transa, transb, m, n, k, lda, ldb, ldc, batchCount, strideA, strideB, strideC, A, B, C, Atype, Btype, Ctype,
              computeType, 0.0, 0.0, NULL, false, false, NULL, 0, NULL};
    return gemm_call("cublasGemmStridedBatchedEx", handle, g, alpha, beta, handle ? handle->stream : 0);
}

cublasStatus_t cublasGemmEx(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m, int n,
                            int k, const void* alpha, const void* A, cudaDataType_t Atype, int lda, const void* B,
                            cudaDataType_t Btype, int ldb, const void* beta, void* C, cudaDataType_t Ctype, int ldc,
                            cublasComputeType_t computeType, cublasGemmAlgo_t) {
    Gemm g = {transa, transb, m, n, k, lda, ldb, ldc, 1, 0, 0, 0, A, B, C, Atype, Btype, Ctype, computeType, 0.0, 0.0,
              NULL, false, false, NULL, 0, NULL};
    return gemm_call("cublasGemmEx", handle, g, alpha, beta, handle ? handle->stream : 0);
}

cublasStatus_t cublasSgemm(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m, int n,
                           int k, const float* alpha, const float* A, int lda, const float* B, int ldb,
                           const float* beta, float* C, int ldc) {
    cublasComputeType_t compute =
        handle && handle->math == CUBLAS_TF32_TENSOR_OP_MATH ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
    Gemm g = {transa, transb, m, n, k, lda, ldb, ldc, 1, 0, 0, 0, A, B, C, CUDA_R_32F, CUDA_R_32F, CUDA_R_32F, compute,
              0.0, 0.0, NULL, false, false, NULL, 0, NULL};
    return gemm_call("cublasSgemm", handle, g, alpha, beta, handle ? handle->stream : 0);
}

cublasStatus_t cublasDgemm(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m, int n,
                           int k, const double* alpha, const double* A, int lda, const double* B, int ldb,
                           const double* beta, double* C, int ldc) {
    Gemm g = {transa, transb, m, n, k, lda, ldb, ldc, 1, 0, 0, 0, A, B, C, CUDA_R_64F, CUDA_R_64F, CUDA_R_64F,
              CUBLAS_COMPUTE_64F, 0.0, 0.0, NULL, false, false, NULL, 0, NULL};
    return gemm_call("cublasDgemm", handle, g, alpha, beta, handle ? handle->stream : 0);
}

// ----------------------------------------------------------------------------------------------------
// cuBLASLt: a descriptor of the operation (compute type, ops, epilogue and its pointers), one of each matrix
// (type, rows, cols, ld), a preference (the workspace allowed); the heuristic offers one algorithm where the
// combination is one the emulation computes, and cublasLtMatmul runs gemm_run with the epilogue.

struct EmuLtHandle {
    int unused;
};
struct EmuLtMatmulDesc {
    cublasComputeType_t compute;
    cudaDataType_t scale;
    cublasOperation_t transa, transb;
    cublasLtEpilogue_t epilogue;
    const void* bias;
    void* aux;
    int64_t aux_ld;
};
struct EmuLtLayout {
    cudaDataType type;
    uint64_t rows, cols;
    int64_t ld;
};
struct EmuLtPreference {
    uint64_t max_workspace;
};

namespace {
bool has_bias(cublasLtEpilogue_t e) { return e == CUBLASLT_EPILOGUE_BIAS || e == CUBLASLT_EPILOGUE_GELU_BIAS || e == CUBLASLT_EPILOGUE_GELU_AUX_BIAS; }
bool has_gelu(cublasLtEpilogue_t e) { return e == CUBLASLT_EPILOGUE_GELU || e == CUBLASLT_EPILOGUE_GELU_BIAS || e == CUBLASLT_EPILOGUE_GELU_AUX || e == CUBLASLT_EPILOGUE_GELU_AUX_BIAS; }
std::vector<cublasLtEpilogue_t> lt_refused;  // emu_lt_offer's
bool has_aux(cublasLtEpilogue_t e) {
    return e == CUBLASLT_EPILOGUE_GELU_AUX || e == CUBLASLT_EPILOGUE_GELU_AUX_BIAS || e == CUBLASLT_EPILOGUE_DGELU;
}

// the checks cuBLASLt makes of an operation and its layouts (the heuristic's and the matmul's): the status, and the
// Gemm it describes (its pointers left to the caller)
cublasStatus_t lt_check(const char* call, cublasLtHandle_t handle, cublasLtMatmulDesc_t d, cublasLtMatrixLayout_t a,
                        cublasLtMatrixLayout_t b, cublasLtMatrixLayout_t c, cublasLtMatrixLayout_t dd, Gemm* g) {
    if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
    auto fail = [&](cublasStatus_t s, const char* why) {
        emu::report("%s: %s: %s", call, why, s == CUBLAS_STATUS_NOT_SUPPORTED ? "CUBLAS_STATUS_NOT_SUPPORTED" : "CUBLAS_STATUS_INVALID_VALUE");
        return s;
    };
    if (!d || !a || !b || !c || !dd) return fail(CUBLAS_STATUS_INVALID_VALUE, "a descriptor is NULL");
    uint64_t m = c->rows, n = c->cols;
    uint64_t k = d->transa == CUBLAS_OP_N ? a->cols : a->rows;
    if ((d->transa == CUBLAS_OP_N ? a->rows : a->cols) != m || (d->transb == CUBLAS_OP_N ? b->cols : b->rows) != n ||
        (d->transb == CUBLAS_OP_N ? b->rows : b->cols) != k)
        return fail(CUBLAS_STATUS_INVALID_VALUE, "op(A) (m x k), op(B) (k x n) and C (m x n) do not agree");
    if (a->ld < (int64_t)(a->rows > 1 ? a->rows : 1) || b->ld < (int64_t)(b->rows > 1 ? b->rows : 1) || c->ld < (int64_t)(m > 1 ? m : 1))
        return fail(CUBLAS_STATUS_INVALID_VALUE, "a leading dimension is smaller than its rows");
    if (dd->type != c->type || dd->rows != m || dd->cols != n || dd->ld != c->ld)
        return fail(CUBLAS_STATUS_NOT_SUPPORTED, "D's layout differs from C's (not emulated)");
    if (d->scale != CUDA_R_32F || !types_supported(a->type, b->type, c->type, d->compute))
        return fail(CUBLAS_STATUS_NOT_SUPPORTED, "data, scale or compute types (not emulated)");
    for (cublasLtEpilogue_t e : lt_refused)
        if (e == d->epilogue) return fail(CUBLAS_STATUS_NOT_SUPPORTED, "the epilogue is refused (emu_lt_offer)");
    bool bgrad = d->epilogue == CUBLASLT_EPILOGUE_BGRADB;
    if ((has_bias(d->epilogue) || bgrad) && !d->bias)
        return fail(CUBLAS_STATUS_INVALID_VALUE, "a bias epilogue without a bias pointer");
    if (bgrad && d->compute == CUBLAS_COMPUTE_64F) return fail(CUBLAS_STATUS_NOT_SUPPORTED, "BGRADB in fp64 (not emulated)");
    if (has_aux(d->epilogue) && (!d->aux || d->aux_ld < (int64_t)m || d->aux_ld % 8 != 0))
        return fail(CUBLAS_STATUS_INVALID_VALUE, "a GELU epilogue with aux without an aux pointer, or its ld below D's rows or not a multiple of 8");
    *g = Gemm{d->transa, d->transb, (int)m, (int)n, (int)k, (int)a->ld, (int)b->ld, (int)c->ld, 1, 0, 0, 0, NULL, NULL, NULL,
              a->type, b->type, c->type, d->compute, 0.0, 0.0, has_bias(d->epilogue) ? d->bias : NULL,
              has_gelu(d->epilogue), d->epilogue == CUBLASLT_EPILOGUE_DGELU, has_aux(d->epilogue) ? d->aux : NULL,
              d->aux_ld, bgrad ? (void*)d->bias : NULL};
    return CUBLAS_STATUS_SUCCESS;
}
}  // namespace

cublasStatus_t cublasLtCreate(cublasLtHandle_t* handle) {
    if (!handle) return CUBLAS_STATUS_INVALID_VALUE;
    *handle = new EmuLtHandle{0};
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtDestroy(cublasLtHandle_t handle) {
    if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
    cudaDeviceSynchronize();
    delete handle;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulDescCreate(cublasLtMatmulDesc_t* desc, cublasComputeType_t compute, cudaDataType_t scale) {
    if (!desc) return CUBLAS_STATUS_INVALID_VALUE;
    *desc = new EmuLtMatmulDesc{compute, scale, CUBLAS_OP_N, CUBLAS_OP_N, CUBLASLT_EPILOGUE_DEFAULT, NULL, NULL, 0};
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t desc) {
    delete desc;
    return CUBLAS_STATUS_SUCCESS;
}
// each attribute by the size cuBLASLt documents for it (int32_t for the ops and the epilogue, pointers, int64_t)
cublasStatus_t cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t desc, cublasLtMatmulDescAttributes_t attr,
                                              const void* buf, size_t size) {
    if (!desc || !buf) return CUBLAS_STATUS_INVALID_VALUE;
    size_t want = attr == CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD ? 8 : attr == CUBLASLT_MATMUL_DESC_BIAS_POINTER || attr == CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER ? sizeof(void*) : 4;
    if (size != want) {
        emu::report("cublasLtMatmulDescSetAttribute(%d): %zu bytes given, %zu expected: CUBLAS_STATUS_INVALID_VALUE", (int)attr, size, want);
        return CUBLAS_STATUS_INVALID_VALUE;
    }
    switch (attr) {
        case CUBLASLT_MATMUL_DESC_TRANSA: desc->transa = (cublasOperation_t) * (const int32_t*)buf; break;
        case CUBLASLT_MATMUL_DESC_TRANSB: desc->transb = (cublasOperation_t) * (const int32_t*)buf; break;
        case CUBLASLT_MATMUL_DESC_EPILOGUE: desc->epilogue = (cublasLtEpilogue_t) * (const uint32_t*)buf; break;
        case CUBLASLT_MATMUL_DESC_BIAS_POINTER: memcpy(&desc->bias, buf, sizeof(void*)); break;
        case CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER: memcpy(&desc->aux, buf, sizeof(void*)); break;
        case CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD: memcpy(&desc->aux_ld, buf, 8); break;
        default: return CUBLAS_STATUS_INVALID_VALUE;
    }
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t* layout, cudaDataType type, uint64_t rows, uint64_t cols,
                                          int64_t ld) {
    if (!layout) return CUBLAS_STATUS_INVALID_VALUE;
    *layout = new EmuLtLayout{type, rows, cols, ld};
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t layout) {
    delete layout;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t* pref) {
    if (!pref) return CUBLAS_STATUS_INVALID_VALUE;
    *pref = new EmuLtPreference{0};
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t pref) {
    delete pref;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulPreferenceSetAttribute(cublasLtMatmulPreference_t pref,
                                                    cublasLtMatmulPreferenceAttributes_t attr, const void* buf, size_t size) {
    if (!pref || !buf || attr != CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES || size != 8) return CUBLAS_STATUS_INVALID_VALUE;
    memcpy(&pref->max_workspace, buf, 8);
    return CUBLAS_STATUS_SUCCESS;
}
// one algorithm, needing no workspace, where lt_check passes; none (and NOT_SUPPORTED) where the emulation has none
cublasStatus_t cublasLtMatmulAlgoGetHeuristic(cublasLtHandle_t handle, cublasLtMatmulDesc_t desc,
                                              cublasLtMatrixLayout_t a, cublasLtMatrixLayout_t b,
                                              cublasLtMatrixLayout_t c, cublasLtMatrixLayout_t d,
                                              cublasLtMatmulPreference_t pref, int requested,
                                              cublasLtMatmulHeuristicResult_t results[], int* returned) {
    if (!returned || !results || !pref || requested < 1) return CUBLAS_STATUS_INVALID_VALUE;
    *returned = 0;
    Gemm g;
    cublasStatus_t s = lt_check("cublasLtMatmulAlgoGetHeuristic", handle, desc, a, b, c, d, &g);
    if (s != CUBLAS_STATUS_SUCCESS) return s;
    memset(&results[0], 0, sizeof(results[0]));
    results[0].state = CUBLAS_STATUS_SUCCESS;
    results[0].wavesCount = 1.0f;
    *returned = 1;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmul(cublasLtHandle_t handle, cublasLtMatmulDesc_t desc, const void* alpha, const void* A,
                              cublasLtMatrixLayout_t Adesc, const void* B, cublasLtMatrixLayout_t Bdesc,
                              const void* beta, const void* C, cublasLtMatrixLayout_t Cdesc, void* D,
                              cublasLtMatrixLayout_t Ddesc, const cublasLtMatmulAlgo_t*, void*, size_t,
                              cudaStream_t stream) {
    Gemm g;
    cublasStatus_t s = lt_check("cublasLtMatmul", handle, desc, Adesc, Bdesc, Cdesc, Ddesc, &g);
    if (s != CUBLAS_STATUS_SUCCESS) return s;
    if (C != D) {
        emu::report("cublasLtMatmul: C and D at different addresses: CUBLAS_STATUS_NOT_SUPPORTED (not emulated)");
        return CUBLAS_STATUS_NOT_SUPPORTED;
    }
    g.A = A;
    g.B = B;
    g.C = D;
    return gemm_call("cublasLtMatmul", handle ? (cublasHandle_t)&lt_blas_handle : NULL, g, alpha, beta, stream);
}

// ----------------------------------------------------------------------------------------------------
// cuSOLVER: the symmetric eigensolver (syevd) by LAPACK's dsyevd (Debian's liblapack), on the matrix where it lies

extern "C" void dsyevd_(const char* jobz, const char* uplo, const int* n, double* a, const int* lda, double* w,
                        double* work, const int* lwork, int* iwork, const int* liwork, int* info, size_t jobz_len,
                        size_t uplo_len);

namespace {
// LAPACK's minimum workspace for dsyevd (what it reports to a workspace query)
int syevd_lwork(cusolverEigMode_t jobz, int n) {
    if (n <= 1) return 1;
    return jobz == CUSOLVER_EIG_MODE_NOVECTOR ? 2 * n + 1 : 1 + 6 * n + 2 * n * n;
}
cusolverStatus_t syevd_check(const char* call, cusolverDnHandle_t handle, cusolverEigMode_t jobz,
                             cublasFillMode_t uplo, int n, int lda) {
    emu::count_blas_call();
    if (!handle) return CUSOLVER_STATUS_NOT_INITIALIZED;
    const char* bad = NULL;
    if (jobz != CUSOLVER_EIG_MODE_NOVECTOR && jobz != CUSOLVER_EIG_MODE_VECTOR) bad = "jobz is not NOVECTOR or VECTOR";
    else if (uplo != CUBLAS_FILL_MODE_LOWER && uplo != CUBLAS_FILL_MODE_UPPER) bad = "uplo is not LOWER or UPPER";
    else if (n < 0) bad = "n is negative";
    else if (lda < (n > 1 ? n : 1)) bad = "lda is smaller than max(1, n)";
    if (!bad) return CUSOLVER_STATUS_SUCCESS;
    emu::report("%s(n %d, lda %d): %s: CUSOLVER_STATUS_INVALID_VALUE", call, n, lda, bad);
    return CUSOLVER_STATUS_INVALID_VALUE;
}
}  // namespace

cusolverStatus_t cusolverDnCreate(cusolverDnHandle_t* handle) {
    if (!handle) return CUSOLVER_STATUS_INVALID_VALUE;
    *handle = new EmuSolverHandle{0};
    return CUSOLVER_STATUS_SUCCESS;
}
cusolverStatus_t cusolverDnDestroy(cusolverDnHandle_t handle) {
    if (!handle) return CUSOLVER_STATUS_NOT_INITIALIZED;
    delete handle;
    return CUSOLVER_STATUS_SUCCESS;
}

cusolverStatus_t cusolverDnDsyevd_bufferSize(cusolverDnHandle_t handle, cusolverEigMode_t jobz, cublasFillMode_t uplo,
                                             int n, const double*, int lda, const double*, int* lwork) {
    cusolverStatus_t s = syevd_check("cusolverDnDsyevd_bufferSize", handle, jobz, uplo, n, lda);
    if (s != CUSOLVER_STATUS_SUCCESS) return s;
    if (!lwork) return CUSOLVER_STATUS_INVALID_VALUE;
    *lwork = syevd_lwork(jobz, n);
    return CUSOLVER_STATUS_SUCCESS;
}

// W (n) = eigenvalues of the symmetric A (n x n, column-major, ld lda; the `uplo` triangle is read) in ascending
// order; A is overwritten (with the eigenvectors for VECTOR). devInfo (device int): 0, or -i when the i-th
// parameter (not counting the handle) is wrong, or i > 0 when LAPACK did not converge.
cusolverStatus_t cusolverDnDsyevd(cusolverDnHandle_t handle, cusolverEigMode_t jobz, cublasFillMode_t uplo, int n,
                                  double* A, int lda, double* W, double* work, int lwork, int* devInfo) {
    cusolverStatus_t s = syevd_check("cusolverDnDsyevd", handle, jobz, uplo, n, lda);
    if (s != CUSOLVER_STATUS_SUCCESS) return s;
    if (!devInfo) return CUSOLVER_STATUS_INVALID_VALUE;
    if (!emu::library_stream_ok("cusolverDnDsyevd", 0)) return CUSOLVER_STATUS_EXECUTION_FAILED;  // no stream set
    int need = syevd_lwork(jobz, n);
    emu::enqueue_work("cusolverDnDsyevd", [=]() {
        if (!emu::is_device_range(devInfo, sizeof(int)) ||
            (n > 0 && (!emu::is_device_range(A, sizeof(double) * ((size_t)(n - 1) * lda + n)) ||
                       !emu::is_device_range(W, sizeof(double) * n) ||
                       !emu::is_device_range(work, sizeof(double) * (lwork > 0 ? lwork : 1))))) {
            emu::report("cusolverDnDsyevd(n %d, lda %d, lwork %d): an operand is not all device memory", n, lda, lwork);
            emu::fault(cudaErrorIllegalAddress);
            return;
        }
        if (lwork < need) {
            *devInfo = -8;  // lwork
            return;
        }
        if (n == 0) {
            *devInfo = 0;
            return;
        }
        char jz = jobz == CUSOLVER_EIG_MODE_VECTOR ? 'V' : 'N', ul = uplo == CUBLAS_FILL_MODE_LOWER ? 'L' : 'U';
        int lw = need, liwork = jobz == CUSOLVER_EIG_MODE_VECTOR ? 3 + 5 * n : 1, info = 0;
        std::vector<double> lapack_work(lw);
        std::vector<int> iwork(liwork);
        dsyevd_(&jz, &ul, &n, A, &lda, W, lapack_work.data(), &lw, iwork.data(), &liwork, &info, 1, 1);
        *devInfo = info;
    });
    return CUSOLVER_STATUS_SUCCESS;
}

void emu_lt_offer(cublasLtEpilogue_t epilogue, bool offered) {
    lt_refused.erase(std::remove(lt_refused.begin(), lt_refused.end(), epilogue), lt_refused.end());
    if (!offered) lt_refused.push_back(epilogue);
}
