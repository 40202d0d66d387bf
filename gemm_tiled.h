// gemm_tiled.h: the teaching GPU matrix product, handwritten: shared-memory tiles and a 4 x 4 block of
// sums per thread in registers. It computes exactly what gemm.h's gemm_batched_cuda asks cuBLAS for (row-major,
// any transposes, leading dimensions, a batch at fixed strides), so a model built with GEMM_TILED runs every
// product on it; tests/test_gpu.cu compares the two and dev/bench_gpu.cu times them (cuBLAS is several times
// faster: it also pipelines the loads, uses wider tiles and vector loads, and is tuned per GPU).
// Flow: gemm.h (gemm_batched_cuda) -> here at GEMM_TILED; CUDA only (nvcc).
#pragma once
#include "tensor.h"

#ifdef __CUDACC__
#define TILE_M 64  // rows of Cm per block
#define TILE_N 64  // columns of Cm per block
#define TILE_K 16  // depth of one step: a TILE_M x TILE_K tile of op(A) and a TILE_K x TILE_N tile of op(B)

// Cm (M, N) = alpha · op(A) (M, K) · op(B) (K, N) + beta · Cm, row-major with leading dimensions:
//   op(A)[i, k] = trans_a ? A[k·lda + i] : A[i·lda + k]      op(B)[k, j] = trans_b ? B[j·ldb + k] : B[k·ldb + j]
// Block (bx, by, z) computes the TILE_M x TILE_N tile of product z at rows by·64, columns bx·64; its 256
// threads step through K TILE_K at a time: load both tiles into shared memory (zero outside the matrices),
// then thread (tx, ty) = (tid % 16, tid / 16) adds the products for rows ty + 16r and columns tx + 16c,
// r, c in 0..3. Per k a thread reads 8 values from shared memory for 16 multiply-adds (one output per
// thread needs 2 reads per multiply-add): shared-memory bandwidth, not arithmetic, bounds the simpler kernel.
// Loads: consecutive threads take consecutive addresses of the matrix in memory (down a column when it is
// stored transposed), so a warp's loads coalesce. Shared rows are padded by one float to spread banks.
// beta = 0 never reads Cm (it may hold garbage, even NaN), as BLAS specifies.
static __global__ void gemm_tiled_kernel(float* Cm, const float* A, const float* B, int M, int N, int K, bool trans_a,
                                         bool trans_b, float alpha, float beta, int lda, int ldb, int ldc,
                                         long long stride_a, long long stride_b, long long stride_c) {
    __shared__ float As[TILE_K][TILE_M + 1];  // As[k][i] = op(A)[i0 + i, k0 + k]
    __shared__ float Bs[TILE_K][TILE_N + 1];  // Bs[k][j] = op(B)[k0 + k, j0 + j]
    A += blockIdx.z * stride_a;
    B += blockIdx.z * stride_b;
    Cm += blockIdx.z * stride_c;
    int i0 = blockIdx.y * TILE_M, j0 = blockIdx.x * TILE_N;
    int tid = threadIdx.x, tx = tid % 16, ty = tid / 16;
    float acc[4][4] = {};
    for (int k0 = 0; k0 < K; k0 += TILE_K) {
        for (int e = tid; e < TILE_M * TILE_K; e += 256) {
            int i = trans_a ? e % TILE_M : e / TILE_K, k = trans_a ? e / TILE_M : e % TILE_K;
            int gi = i0 + i, gk = k0 + k;
            float a = 0.0f;
            if (gi < M && gk < K) a = trans_a ? A[(size_t)gk * lda + gi] : A[(size_t)gi * lda + gk];
            As[k][i] = a;
        }
        for (int e = tid; e < TILE_K * TILE_N; e += 256) {
            int j = trans_b ? e / TILE_K : e % TILE_N, k = trans_b ? e % TILE_K : e / TILE_N;
            int gj = j0 + j, gk = k0 + k;
            float b = 0.0f;
            if (gj < N && gk < K) b = trans_b ? B[(size_t)gj * ldb + gk] : B[(size_t)gk * ldb + gj];
            Bs[k][j] = b;
        }
        __syncthreads();
#pragma unroll
        for (int k = 0; k < TILE_K; k++) {
            float a[4], b[4];
#pragma unroll
            for (int r = 0; r < 4; r++) a[r] = As[k][ty + 16 * r];
#pragma unroll
            for (int c = 0; c < 4; c++) b[c] = Bs[k][tx + 16 * c];
#pragma unroll
            for (int r = 0; r < 4; r++)
#pragma unroll
                for (int c = 0; c < 4; c++) acc[r][c] += a[r] * b[c];
        }
        __syncthreads();  // the tiles are overwritten in the next step
    }
#pragma unroll
    for (int r = 0; r < 4; r++)
#pragma unroll
        for (int c = 0; c < 4; c++) {
            int i = i0 + ty + 16 * r, j = j0 + tx + 16 * c;
            if (i >= M || j >= N) continue;
            float* dst = Cm + (size_t)i * ldc + j;
            *dst = beta == 0.0f ? alpha * acc[r][c] : alpha * acc[r][c] + beta * *dst;
        }
}

// launcher: the arguments of gemm_batched_cuda (gemm.h)
static void gemm_tiled_cuda(float* Cm, const float* A, const float* B, int M, int N, int K, bool trans_a, bool trans_b,
                            float alpha, float beta, int lda, int ldb, int ldc, long long stride_a, long long stride_b,
                            long long stride_c, int batch) {
    if (M <= 0 || N <= 0 || batch <= 0) return;
    dim3 grid(cuda_blocks(N, TILE_N), cuda_blocks(M, TILE_M), batch);
    gemm_tiled_kernel<<<grid, 256>>>(Cm, A, B, M, N, K, trans_a, trans_b, alpha, beta, lda, ldb, ldc, stride_a,
                                     stride_b, stride_c);
    cudaCheckLaunch();
}
#endif
