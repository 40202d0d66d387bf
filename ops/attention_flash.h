// ops/attention_flash.h: fused causal attention on the GPU, flash-attention style (FlashAttention, arXiv
// 2205.14135; the loop order of FlashAttention-2, arXiv 2307.08691), in FP32. It computes what
// attention_forward_cpu / attention_backward_cpu (ops/attention.h) compute, but never materializes the
// (T, T) score matrix: queries and keys go through shared memory a tile at a time, and the backward recomputes
// the probabilities from q, k and the per-row logsumexp L that the forward saves, (B, NH, T) instead of
// (B, NH, T, T).
// This file: what both directions share and the forward; the backward is ops/attention_flash_backward.h.
// Flow: ops/attention.h's attention_forward/backward -> here at ATTENTION_FLASH; CUDA only (nvcc). Tests:
// tests/test_gpu_flash.cu (against the CPU and the simple GPU path); speed: dev/bench_gpu.cu.
// Layouts as in ops/attention.h: qkv (B, T, 3C), q | k | v side by side, head h at channels [h·HS, (h+1)·HS).
//
// Work split. A block of 16 x 16 threads owns one (batch, head) and one tile of TILE rows (query rows in the
// forward and in the dq pass, key rows in the dk/dv pass). Thread (tx, ty) = (tid % 16, tid / 16) holds, of
// every TILE x TILE block of scores, rows ty + 16r and columns tx + 16c (r, c < TILE/16), and of every
// TILE x HS block of outputs, rows ty + 16r and channels tx + 16c (c < HS/16): the register tiles of
// gemm_tiled.h. The 16 threads that share a ty (half a warp) together hold whole rows, so the
// softmax's row maxima and sums are shuffles within half a warp. TILE = 64 for head sizes up to 64, 32 for 128,
// so that no kernel asks for more than 97.5 KiB of shared memory (head size 64's dk/dv pass): within what
// every GPU since Ampere lets a block use (99 KiB on consumer Ampere and Ada, 163 on an A100, 227 on an H100).
// Deterministic: every output element is summed by one thread in a fixed order; no atomics.
#pragma once
#include "../tensor.h"

#ifdef __CUDACC__
// ----------------------------------------------------------------------------------------------------
// CUDA kernels

#define FLASH_THREADS 256  // 16 x 16 threads per block

// rows per tile (queries or keys) for a head size
static __host__ __device__ constexpr int flash_tile(int HS) { return HS <= 64 ? 64 : 32; }

// Rows of a tile (TILE, HS) in shared memory are padded to HS + 1 floats, and rows of a score tile
// (TILE, TILE) to TILE + 1: 16 threads reading 16 different rows at one column then hit 16 different banks.

// rows t0 .. t0 + TILE − 1 of one head's q, k, v (ld = 3C) or dout (ld = C) into the shared tile dst
// (TILE, HS + 1); src points at the head's first channel of row 0, plus `offset` (C for k, 2C for v). Rows at or
// past T are zero. qkv in 16-bit storage (model.h's gpt2_storage16): src16 in place of src (then NULL), widened
// to fp32 as it is loaded (exact). Consecutive threads read consecutive channels of a row: the loads coalesce.
template <int HS, int TILE>
static __device__ __forceinline__ void flash_load_tile(float* dst, const float* src, size_t ld, int t0, int T,
                                                       const bfloat16* src16 = NULL, size_t offset = 0) {
    for (int e = threadIdx.x; e < TILE * HS; e += FLASH_THREADS) {
        int r = e / HS, i = e % HS;
        size_t at = offset + (size_t)(t0 + r) * ld + i;
        dst[r * (HS + 1) + i] = t0 + r < T ? load_value(src, src16, at) : 0.0f;
    }
}


// s[r][c] = Σ_k A[ty + 16r][k] · Bm[tx + 16c][k]: this thread's entries of A · Bmᵀ (TILE, TILE), for A and
// Bm shared tiles (TILE, HS + 1). Used for the scores q·kᵀ and for dout·vᵀ (and their transposes).
template <int HS, int TILE>
static __device__ __forceinline__ void flash_tile_dots(float (&s)[TILE / 16][TILE / 16], const float* A,
                                                       const float* Bm, int tx, int ty) {
    constexpr int RT = TILE / 16;
#pragma unroll
    for (int r = 0; r < RT; r++)
#pragma unroll
        for (int c = 0; c < RT; c++) s[r][c] = 0.0f;
#pragma unroll 8
    for (int k = 0; k < HS; k++) {
        float a[RT], b[RT];
#pragma unroll
        for (int r = 0; r < RT; r++) a[r] = A[(ty + 16 * r) * (HS + 1) + k];
#pragma unroll
        for (int c = 0; c < RT; c++) b[c] = Bm[(tx + 16 * c) * (HS + 1) + k];
#pragma unroll
        for (int r = 0; r < RT; r++)
#pragma unroll
            for (int c = 0; c < RT; c++) s[r][c] += a[r] * b[c];
    }
}

// acc[r][c] += Σ_j P[ty + 16r][j] · M[j][tx + 16c]: this thread's entries of P · M (TILE, HS), for P a shared
// score tile (TILE, TILE + 1) and M a shared tile (TILE, HS + 1). Used for P·v, Pᵀ·dout, dSᵀ·q and dS·k.
template <int HS, int TILE>
static __device__ __forceinline__ void flash_tile_product(float (&acc)[TILE / 16][HS / 16], const float* P,
                                                          const float* M, int tx, int ty) {
    constexpr int RT = TILE / 16, CT = HS / 16;
#pragma unroll 8
    for (int j = 0; j < TILE; j++) {
        float p[RT], m[CT];
#pragma unroll
        for (int r = 0; r < RT; r++) p[r] = P[(ty + 16 * r) * (TILE + 1) + j];
#pragma unroll
        for (int c = 0; c < CT; c++) m[c] = M[j * (HS + 1) + tx + 16 * c];
#pragma unroll
        for (int r = 0; r < RT; r++)
#pragma unroll
            for (int c = 0; c < CT; c++) acc[r][c] += p[r] * m[c];
    }
}

// max and sum over the 16 threads of a half warp (the threads that share ty, hence a row): butterflies
// with offsets below 16 stay inside the half; every thread ends with the same bits.
static __device__ __forceinline__ float flash_row_max(float v) {
    for (int offset = 8; offset > 0; offset /= 2) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, offset));
    return v;
}
static __device__ __forceinline__ float flash_row_sum(float v) {
    for (int offset = 8; offset > 0; offset /= 2) v += __shfl_xor_sync(0xffffffffu, v, offset);
    return v;
}

// Forward, one block per (b·NH + h, query tile). For query row i the scores are s_j = q_i·k_j / sqrt(HS),
// j ≤ i. The online softmax walks the key tiles in order, keeping per row a running maximum m, a running
// sum l = Σ_j exp(s_j − m) and an unnormalized output o = Σ_j exp(s_j − m) · v_j over the keys seen so far.
// A new tile with scores s_j brings m' = max(m, max_j s_j); what was summed against the old m is rescaled:
//   l' = l · exp(m − m') + Σ_j exp(s_j − m')          o' = o · exp(m − m') + Σ_j exp(s_j − m') · v_j
// After the last tile (the one on the diagonal): out_i = o / l, the softmax-weighted sum of the values, and
//   L_i = m + log l = log Σ_j exp(s_j),    so that   att[i][j] = exp(s_j − L_i)   (what the backward uses).
// m starts at −∞ and becomes finite in the first tile (key 0 is visible to every row), so exp(m − m') is 0
// there, never NaN. Masked scores are −∞ and give exp(−∞) = 0.
// Shared memory: Qs, Ks, Vs (TILE, HS + 1) and Ps (TILE, TILE + 1).
// L (B, NH, T). Query tiles are taken last first: they have the most key tiles, so they start first.
template <int HS>
static __global__ void __launch_bounds__(FLASH_THREADS)
    attention_flash_forward_kernel(float* out, bfloat16* out16, float* L, const float* qkv, const bfloat16* qkv16,
                                   int T, int C, int NH, float scale, bool bf16) {
    constexpr int TILE = flash_tile(HS), RT = TILE / 16, CT = HS / 16;
    extern __shared__ float flash_smem[];
    float* Qs = flash_smem;
    float* Ks = Qs + TILE * (HS + 1);
    float* Vs = Ks + TILE * (HS + 1);
    float* Ps = Vs + TILE * (HS + 1);
    int bh = blockIdx.x, b = bh / NH, h = bh % NH;
    int q0 = (gridDim.y - 1 - blockIdx.y) * TILE;  // first query row of this tile
    int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
    size_t head = (size_t)b * T * 3 * C + h * HS;  // row t of the head's q at head + t·3C, k at + C, v at + 2C
    const float* q = qkv ? qkv + head : NULL;      // in whichever storage qkv has
    const bfloat16* q16 = qkv16 ? qkv16 + head : NULL;

    flash_load_tile<HS, TILE>(Qs, q, 3 * C, q0, T, q16);
    float m[RT], l[RT], o[RT][CT];
#pragma unroll
    for (int r = 0; r < RT; r++) {
        m[r] = -INFINITY;
        l[r] = 0.0f;
#pragma unroll
        for (int c = 0; c < CT; c++) o[r][c] = 0.0f;
    }
    for (int k0 = 0; k0 <= q0; k0 += TILE) {  // key tiles up to the diagonal one (k0 = q0)
        flash_load_tile<HS, TILE>(Ks, q, 3 * C, k0, T, q16, C);
        flash_load_tile<HS, TILE>(Vs, q, 3 * C, k0, T, q16, 2 * C);
        __syncthreads();  // Qs (first pass), Ks and Vs loaded
        float s[RT][RT];
        flash_tile_dots<HS, TILE>(s, Qs, Ks, tx, ty);
#pragma unroll
        for (int r = 0; r < RT; r++) {
            int i = q0 + ty + 16 * r;
            float tile_max = -INFINITY;
#pragma unroll
            for (int c = 0; c < RT; c++) {
                int j = k0 + tx + 16 * c;
                s[r][c] = j <= i && j < T ? s[r][c] * scale : -INFINITY;
                tile_max = fmaxf(tile_max, s[r][c]);
            }
            float m_new = fmaxf(m[r], flash_row_max(tile_max));
            float rescale = expf(m[r] - m_new);
            float tile_sum = 0.0f;
#pragma unroll
            for (int c = 0; c < RT; c++) {
                float p = expf(s[r][c] - m_new);
                Ps[(ty + 16 * r) * (TILE + 1) + tx + 16 * c] = p;
                tile_sum += p;
            }
            l[r] = l[r] * rescale + flash_row_sum(tile_sum);
            m[r] = m_new;
#pragma unroll
            for (int c = 0; c < CT; c++) o[r][c] *= rescale;
        }
        __syncthreads();  // Ps complete
        flash_tile_product<HS, TILE>(o, Ps, Vs, tx, ty);
        __syncthreads();  // Ks, Vs and Ps are overwritten by the next tile
    }
#pragma unroll
    for (int r = 0; r < RT; r++) {
        int i = q0 + ty + 16 * r;
        if (i >= T) continue;
        size_t row = ((size_t)b * T + i) * C + h * HS;  // out in either storage (out16: 16-bit, out NULL)
#pragma unroll
        for (int c = 0; c < CT; c++) {
            float v = o[r][c] / l[r];
            if (out16) out16[row + tx + 16 * c] = bf16_from_float(v);
            else out[row + tx + 16 * c] = as_stored(v, bf16);
        }
        if (tx == 0) L[(size_t)bh * T + i] = m[r] + logf(l[r]);
    }
}

// ----------------------------------------------------------------------------------------------------
// CUDA launchers: device pointers, in the layouts of attention_forward_cpu / attention_backward_cpu, except
// that the forward saves L (B, NH, T) where the simple path saves att (B, NH, T, T).

// the head sizes the kernels are instantiated for (each is a template argument: register tiles need it)
static bool attention_flash_head_size_ok(int HS) { return HS == 16 || HS == 32 || HS == 64 || HS == 128; }

static int attention_flash_head_size(int C, int NH) {
    if (NH <= 0 || C % NH != 0) die("flash attention: %d channels do not split into %d heads", C, NH);
    int HS = C / NH;
    if (!attention_flash_head_size_ok(HS))
        die("flash attention: head size %d (C %d / NH %d) is not supported: its kernels are built for head sizes "
            "16, 32, 64 and 128 (the simple attention path takes any)",
            HS, C, NH);
    return HS;
}

// shared memory per block, in bytes, of the forward kernel (the layout listed above it)
template <int HS> static size_t flash_forward_smem() {
    constexpr int TILE = flash_tile(HS);
    return sizeof(float) * (3 * TILE * (HS + 1) + TILE * (TILE + 1));
}
// Lets `kernel` take `bytes` of dynamic shared memory: above 48 KiB a kernel must opt in, up to the GPU's
// limit (163 KiB on an A100, 227 KiB on an H100; 99 KiB on consumer Ampere and Ada).
template <typename Kernel> static void flash_allow_smem(Kernel kernel, size_t bytes, int HS) {
    int dev = 0, limit = 0;
    cudaCheck(cudaGetDevice(&dev));
    cudaCheck(cudaDeviceGetAttribute(&limit, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
    if (bytes > (size_t)limit)
        die("flash attention: head size %d needs %zu bytes of shared memory per block; this GPU allows %d", HS,
            bytes, limit);
    cudaCheck(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes));
}

// blocks: (b·NH + h, tile); gridDim.y is at most 65535
static dim3 flash_grid(int B, int T, int NH, int HS) {
    int tiles = (T + flash_tile(HS) - 1) / flash_tile(HS);
    if (tiles > 65535) die("flash attention: T = %d is too long (%d tiles; at most 65535)", T, tiles);
    return dim3(B * NH, tiles);
}

template <int HS>
static void attention_flash_forward_launch(float* out, bfloat16* out16, float* L, const float* qkv,
                                           const bfloat16* qkv16, int B, int T, int C, int NH, bool bf16) {
    size_t smem = flash_forward_smem<HS>();
    flash_allow_smem(attention_flash_forward_kernel<HS>, smem, HS);
    attention_flash_forward_kernel<HS><<<flash_grid(B, T, NH, HS), FLASH_THREADS, smem>>>(
        out, out16, L, qkv, qkv16, T, C, NH, 1.0f / sqrtf((float)HS), bf16);
    cudaCheckLaunch();
}

// out (B, T, C) = attention(qkv (B, T, 3C)); L (B, NH, T), the logsumexp of each row of scores, for the backward;
// bf16: out holds bf16 values (as_stored); qkv16, out16: qkv, out in 16-bit storage, in place of qkv, out (then NULL)
static void attention_flash_forward_cuda(float* out, float* L, const float* qkv, int B, int T, int C, int NH,
                                         bool bf16 = false, const bfloat16* qkv16 = NULL, bfloat16* out16 = NULL) {
    if (B == 0 || T == 0) return;
    switch (attention_flash_head_size(C, NH)) {
        case 16: attention_flash_forward_launch<16>(out, out16, L, qkv, qkv16, B, T, C, NH, bf16); break;
        case 32: attention_flash_forward_launch<32>(out, out16, L, qkv, qkv16, B, T, C, NH, bf16); break;
        case 64: attention_flash_forward_launch<64>(out, out16, L, qkv, qkv16, B, T, C, NH, bf16); break;
        case 128: attention_flash_forward_launch<128>(out, out16, L, qkv, qkv16, B, T, C, NH, bf16); break;
    }
}
#endif
