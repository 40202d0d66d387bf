// ops/attention_flash_backward.h: the backward of the fused causal attention of ops/attention_flash.h (its tiles,
// its work split and its helpers): D, then dK and dV per key tile, then dQ per query tile, recomputing the
// probabilities from q, k and the forward's logsumexp L. CUDA only (nvcc).
// Flow: ops/attention.h's attention_backward -> here at ATTENTION_FLASH. Tests: tests/test_gpu_flash.cu.
#pragma once
#include "attention_flash.h"

#ifdef __CUDACC__
// Backward. With P = softmax(S) row by row (causal), S = Q·Kᵀ / sqrt(HS), O = P·V and dO = dL/dO, for one
// (b, h):
//   dV = Pᵀ · dO                  dP = dO · Vᵀ
//   dS = P ∘ (dP − D)             D_i = Σ_j P_ij dP_ij = dO_i · O_i   (softmax backward; D is one dot per row)
//   dQ = dS · K / sqrt(HS)        dK = dSᵀ · Q / sqrt(HS)
// with P_ij = exp(s_ij − L_i) recomputed from q, k and the forward's L. These are the formulas above
// attention_backward_cpu; like it, the kernels add into dqkv (+=). Three kernels: D; dK and dV per key tile
// (looping over the query tiles at or after it); dQ per query tile (looping over the key tiles up to it).
// Each output row is summed by one block: no atomics, the same bits every run, at the price of computing
// P and dP twice.

// D[b, h, t] = Σ_i dout[b, t, h·HS + i] · out[b, t, h·HS + i]: one warp per row (b, h, t); D (B, NH, T); out in
// either storage (out16: 16-bit, out NULL)
static __global__ void attention_flash_rowdot_kernel(float* D, const float* dout, const float* out,
                                                     const bfloat16* out16, int rows, int T, int C, int NH) {
    int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (row >= rows) return;
    int t = row % T, bh = row / T, b = bh / NH, h = bh % NH, HS = C / NH;
    size_t base = ((size_t)b * T + t) * C + h * HS;
    float sum = 0.0f;
    for (int i = lane; i < HS; i += 32) sum += dout[base + i] * load_value(out, out16, base + i);
    sum = warp_reduce_sum(sum);
    if (lane == 0) D[row] = sum;
}

// dK and dV of one key tile (keys k0 .. k0 + TILE − 1), one block per (b·NH + h, key tile). Thread (tx, ty)
// holds keys j = k0 + ty + 16r: it computes the transposed blocks Pᵀ and dSᵀ (key rows, query columns
// i = q0 + tx + 16c) and sums dV_j += Σ_i Pᵀ_ji dO_i, dK_j += Σ_i dSᵀ_ji q_i over the query tiles in order.
// Shared memory: Ks, Vs, Qs, dOs (TILE, HS + 1); Pt, dSt (TILE, TILE + 1).
template <int HS>
static __global__ void __launch_bounds__(FLASH_THREADS)
    attention_flash_backward_kv_kernel(float* dqkv, const float* dout, const float* qkv, const bfloat16* qkv16,
                                       const float* L, const float* D, int T, int C, int NH, float scale) {
    constexpr int TILE = flash_tile(HS), RT = TILE / 16, CT = HS / 16;
    extern __shared__ float flash_smem[];
    float* Ks = flash_smem;
    float* Vs = Ks + TILE * (HS + 1);
    float* Qs = Vs + TILE * (HS + 1);
    float* dOs = Qs + TILE * (HS + 1);
    float* Pt = dOs + TILE * (HS + 1);
    float* dSt = Pt + TILE * (TILE + 1);
    int bh = blockIdx.x, b = bh / NH, h = bh % NH;
    int k0 = blockIdx.y * TILE;  // first key row; key tile 0 sees every query tile, so it starts first
    int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
    size_t head = (size_t)b * T * 3 * C + h * HS;
    const float* q = qkv ? qkv + head : NULL;
    const bfloat16* q16 = qkv16 ? qkv16 + head : NULL;
    const float* d = dout + (size_t)b * T * C + h * HS;  // row t of the head's dout at d + t·C
    const float* L_bh = L + (size_t)bh * T;
    const float* D_bh = D + (size_t)bh * T;

    flash_load_tile<HS, TILE>(Ks, q, 3 * C, k0, T, q16, C);
    flash_load_tile<HS, TILE>(Vs, q, 3 * C, k0, T, q16, 2 * C);
    float dk[RT][CT], dv[RT][CT];
#pragma unroll
    for (int r = 0; r < RT; r++)
#pragma unroll
        for (int c = 0; c < CT; c++) dk[r][c] = dv[r][c] = 0.0f;
    for (int q0 = k0; q0 < T; q0 += TILE) {  // query tiles from the diagonal one on (earlier queries see none)
        flash_load_tile<HS, TILE>(Qs, q, 3 * C, q0, T, q16);
        flash_load_tile<HS, TILE>(dOs, d, C, q0, T);
        __syncthreads();  // Ks, Vs (first pass), Qs and dOs loaded
        float s[RT][RT], dp[RT][RT];
        flash_tile_dots<HS, TILE>(s, Ks, Qs, tx, ty);   // sᵀ_ji = k_j · q_i
        flash_tile_dots<HS, TILE>(dp, Vs, dOs, tx, ty);  // dPᵀ_ji = v_j · dO_i
#pragma unroll
        for (int c = 0; c < RT; c++) {
            int i = q0 + tx + 16 * c;
            float Li = i < T ? L_bh[i] : 0.0f, Di = i < T ? D_bh[i] : 0.0f;
#pragma unroll
            for (int r = 0; r < RT; r++) {
                int j = k0 + ty + 16 * r;
                float p = j <= i && i < T ? expf(s[r][c] * scale - Li) : 0.0f;
                Pt[(ty + 16 * r) * (TILE + 1) + tx + 16 * c] = p;
                dSt[(ty + 16 * r) * (TILE + 1) + tx + 16 * c] = p * (dp[r][c] - Di);
            }
        }
        __syncthreads();  // Pt and dSt complete
        flash_tile_product<HS, TILE>(dv, Pt, dOs, tx, ty);
        flash_tile_product<HS, TILE>(dk, dSt, Qs, tx, ty);
        __syncthreads();  // Qs, dOs, Pt and dSt are overwritten by the next tile
    }
#pragma unroll
    for (int r = 0; r < RT; r++) {
        int j = k0 + ty + 16 * r;
        if (j >= T) continue;
        float* dst = dqkv + ((size_t)b * T + j) * 3 * C + h * HS;
#pragma unroll
        for (int c = 0; c < CT; c++) {
            dst[C + tx + 16 * c] += dk[r][c] * scale;
            dst[2 * C + tx + 16 * c] += dv[r][c];
        }
    }
}

// dQ of one query tile, one block per (b·NH + h, query tile): dQ_i += Σ_j dS_ij k_j over the key tiles up to
// the diagonal, dS recomputed as in the kernel above (here in query rows, key columns).
// Shared memory: Qs, dOs, Ks, Vs (TILE, HS + 1); dSs (TILE, TILE + 1).
template <int HS>
static __global__ void __launch_bounds__(FLASH_THREADS)
    attention_flash_backward_q_kernel(float* dqkv, const float* dout, const float* qkv, const bfloat16* qkv16,
                                      const float* L, const float* D, int T, int C, int NH, float scale) {
    constexpr int TILE = flash_tile(HS), RT = TILE / 16, CT = HS / 16;
    extern __shared__ float flash_smem[];
    float* Qs = flash_smem;
    float* dOs = Qs + TILE * (HS + 1);
    float* Ks = dOs + TILE * (HS + 1);
    float* Vs = Ks + TILE * (HS + 1);
    float* dSs = Vs + TILE * (HS + 1);
    int bh = blockIdx.x, b = bh / NH, h = bh % NH;
    int q0 = (gridDim.y - 1 - blockIdx.y) * TILE;  // last query tile first, as in the forward
    int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
    size_t head = (size_t)b * T * 3 * C + h * HS;
    const float* q = qkv ? qkv + head : NULL;
    const bfloat16* q16 = qkv16 ? qkv16 + head : NULL;
    const float* d = dout + (size_t)b * T * C + h * HS;

    flash_load_tile<HS, TILE>(Qs, q, 3 * C, q0, T, q16);
    flash_load_tile<HS, TILE>(dOs, d, C, q0, T);
    float Li[RT], Di[RT], dq[RT][CT];
#pragma unroll
    for (int r = 0; r < RT; r++) {
        int i = q0 + ty + 16 * r;
        Li[r] = i < T ? L[(size_t)bh * T + i] : 0.0f;
        Di[r] = i < T ? D[(size_t)bh * T + i] : 0.0f;
#pragma unroll
        for (int c = 0; c < CT; c++) dq[r][c] = 0.0f;
    }
    for (int k0 = 0; k0 <= q0; k0 += TILE) {
        flash_load_tile<HS, TILE>(Ks, q, 3 * C, k0, T, q16, C);
        flash_load_tile<HS, TILE>(Vs, q, 3 * C, k0, T, q16, 2 * C);
        __syncthreads();  // Qs, dOs (first pass), Ks and Vs loaded
        float s[RT][RT], dp[RT][RT];
        flash_tile_dots<HS, TILE>(s, Qs, Ks, tx, ty);   // s_ij = q_i · k_j
        flash_tile_dots<HS, TILE>(dp, dOs, Vs, tx, ty);  // dP_ij = dO_i · v_j
#pragma unroll
        for (int r = 0; r < RT; r++) {
            int i = q0 + ty + 16 * r;
#pragma unroll
            for (int c = 0; c < RT; c++) {
                int j = k0 + tx + 16 * c;
                float p = j <= i && i < T ? expf(s[r][c] * scale - Li[r]) : 0.0f;
                dSs[(ty + 16 * r) * (TILE + 1) + tx + 16 * c] = p * (dp[r][c] - Di[r]);
            }
        }
        __syncthreads();  // dSs complete
        flash_tile_product<HS, TILE>(dq, dSs, Ks, tx, ty);
        __syncthreads();  // Ks, Vs and dSs are overwritten by the next tile
    }
#pragma unroll
    for (int r = 0; r < RT; r++) {
        int i = q0 + ty + 16 * r;
        if (i >= T) continue;
        float* dst = dqkv + ((size_t)b * T + i) * 3 * C + h * HS;
#pragma unroll
        for (int c = 0; c < CT; c++) dst[tx + 16 * c] += dq[r][c] * scale;
    }
}

// ----------------------------------------------------------------------------------------------------
// CUDA launchers (ops/attention_flash.h's helpers)

// shared memory per block, in bytes, of each kernel (the layouts listed above each kernel)
template <int HS> static size_t flash_backward_kv_smem() {
    constexpr int TILE = flash_tile(HS);
    return sizeof(float) * (4 * TILE * (HS + 1) + 2 * TILE * (TILE + 1));
}
template <int HS> static size_t flash_backward_q_smem() {
    constexpr int TILE = flash_tile(HS);
    return sizeof(float) * (4 * TILE * (HS + 1) + TILE * (TILE + 1));
}

template <int HS>
static void attention_flash_backward_launch(float* dqkv, float* D, const float* dout, const float* qkv,
                                            const bfloat16* qkv16, const float* L, int B, int T, int C, int NH) {
    float scale = 1.0f / sqrtf((float)HS);
    size_t smem_kv = flash_backward_kv_smem<HS>(), smem_q = flash_backward_q_smem<HS>();
    flash_allow_smem(attention_flash_backward_kv_kernel<HS>, smem_kv, HS);
    flash_allow_smem(attention_flash_backward_q_kernel<HS>, smem_q, HS);
    dim3 grid = flash_grid(B, T, NH, HS);
    attention_flash_backward_kv_kernel<HS><<<grid, FLASH_THREADS, smem_kv>>>(dqkv, dout, qkv, qkv16, L, D, T, C, NH,
                                                                             scale);
    cudaCheckLaunch();
    attention_flash_backward_q_kernel<HS><<<grid, FLASH_THREADS, smem_q>>>(dqkv, dout, qkv, qkv16, L, D, T, C, NH,
                                                                           scale);
    cudaCheckLaunch();
}

// dqkv (B, T, 3C) += the gradient through attention, from dout (B, T, C), the forward's input qkv, its output
// out (B, T, C) and its L (B, NH, T). scratch: B·NH·T floats, for D. qkv16, out16: as the forward.
static void attention_flash_backward_cuda(float* dqkv, float* scratch, const float* dout, const float* qkv,
                                          const float* out, const float* L, int B, int T, int C, int NH,
                                          const bfloat16* qkv16 = NULL, const bfloat16* out16 = NULL) {
    if (B == 0 || T == 0) return;
    int HS = attention_flash_head_size(C, NH), rows = B * NH * T;
    attention_flash_rowdot_kernel<<<cuda_blocks(rows, 8), 256>>>(scratch, dout, out, out16, rows, T, C, NH);
    cudaCheckLaunch();
    switch (HS) {
        case 16: attention_flash_backward_launch<16>(dqkv, scratch, dout, qkv, qkv16, L, B, T, C, NH); break;
        case 32: attention_flash_backward_launch<32>(dqkv, scratch, dout, qkv, qkv16, L, B, T, C, NH); break;
        case 64: attention_flash_backward_launch<64>(dqkv, scratch, dout, qkv, qkv16, L, B, T, C, NH); break;
        case 128: attention_flash_backward_launch<128>(dqkv, scratch, dout, qkv, qkv16, L, B, T, C, NH); break;
    }
}
#endif
