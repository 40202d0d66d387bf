// ops/embedding.h: the first layer. Each position gets its token's embedding plus its position's embedding.
// Flow: data (token ids) -> embedding -> the first block's layernorm.
#pragma once
#include "../tensor.h"

// ----------------------------------------------------------------------------------------------------
// CPU reference

// out[b, t, :] = wte[ids[b, t], :] + wpe[t, :]        ids (B, T), wte (Vp, C), wpe (maxT, C), out (B, T, C)
static void embedding_forward_cpu(float* out, const int* ids, const float* wte, const float* wpe, int B, int T,
                                  int C) {
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            float* o = out + ((size_t)b * T + t) * C;
            const float* e = wte + (size_t)ids[b * T + t] * C;
            const float* p = wpe + (size_t)t * C;
            for (int c = 0; c < C; c++) o[c] = e[c] + p[c];
        }
}

// An embedding is a lookup, so its gradient is a scatter-add of the rows that were looked up:
//   dwte[ids[b, t], :] += dout[b, t, :]        dwpe[t, :] += Σ_b dout[b, t, :]
// Two positions can hold the same token, so the dwte loop stays serial (deterministic order); dwpe's rows
// are disjoint across t.
static void embedding_backward_cpu(float* dwte, float* dwpe, const float* dout, const int* ids, int B, int T,
                                   int C) {
    if (dwte)
        for (int b = 0; b < B; b++)
            for (int t = 0; t < T; t++) {
                const float* d = dout + ((size_t)b * T + t) * C;
                float* g = dwte + (size_t)ids[b * T + t] * C;
                for (int c = 0; c < C; c++) g[c] += d[c];
            }
    if (dwpe) {
#pragma omp parallel for schedule(static)
        for (int t = 0; t < T; t++)
            for (int b = 0; b < B; b++) {
                const float* d = dout + ((size_t)b * T + t) * C;
                float* g = dwpe + (size_t)t * C;
                for (int c = 0; c < C; c++) g[c] += d[c];
            }
    }
}

#ifdef __CUDACC__
// ----------------------------------------------------------------------------------------------------
// CUDA kernels

// one thread per output element (n, c), n = b·T + t
static __global__ void embedding_forward_kernel(float* out, const int* ids, const float* wte, const float* wpe,
                                                int N, int T, int C) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (size_t)N * C) return;
    int n = (int)(i / C), c = (int)(i % C);
    out[i] = wte[(size_t)ids[n] * C + c] + wpe[(size_t)(n % T) * C + c];
}

// dwte, backward formula above. Deterministic without atomics or sorting: the warp of position n checks
// whether n is the first position holding its token v; only that "leader" warp writes row v, adding the
// dout rows of every position holding v in increasing position order, lane l owning channels l, l+32, ...
// That is the CPU's order, so dwte comes out bit for bit the same. Ids are scanned 32 at a time with a
// ballot (bit k set: position base+k holds v); the 64 KB of ids of a 16K-token batch stay in cache.
// One warp per position; blocks of 8 warps.
static __global__ void embedding_backward_wte_kernel(float* dwte, const float* dout, const int* ids, int N, int C) {
    int n = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (n >= N) return;  // the whole warp leaves together
    int v = ids[n];
    for (int base = 0; base < n; base += 32) {  // an earlier position with the same token: not the leader
        int m = base + lane;
        if (__ballot_sync(0xffffffffu, m < n && ids[m] == v)) return;
    }
    float* g = dwte + (size_t)v * C;
    for (int base = n; base < N; base += 32) {
        int m = base + lane;
        unsigned hits = __ballot_sync(0xffffffffu, m < N && ids[m] == v);
        while (hits) {
            const float* d = dout + (size_t)(base + __ffs(hits) - 1) * C;  // lowest set bit: the next position
            hits &= hits - 1;
            for (int c = lane; c < C; c += 32) g[c] += d[c];
        }
    }
}

// dwpe[t, c] += Σ_b dout[b, t, c]: one thread per (t, c), summing b in order (the CPU's order)
static __global__ void embedding_backward_wpe_kernel(float* dwpe, const float* dout, int B, int T, int C) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (size_t)T * C) return;
    float g = dwpe[i];
    for (int b = 0; b < B; b++) g += dout[(size_t)b * T * C + i];
    dwpe[i] = g;
}

// ----------------------------------------------------------------------------------------------------
// CUDA launchers: the CPU functions' arguments, as device pointers

static void embedding_forward_cuda(float* out, const int* ids, const float* wte, const float* wpe, int B, int T,
                                   int C) {
    size_t n = (size_t)B * T * C;
    if (n == 0) return;
    embedding_forward_kernel<<<cuda_blocks(n, 256), 256>>>(out, ids, wte, wpe, B * T, T, C);
    cudaCheckLaunch();
}

static void embedding_backward_cuda(float* dwte, float* dwpe, const float* dout, const int* ids, int B, int T,
                                    int C) {
    if ((size_t)B * T * C == 0) return;
    if (dwte) {
        embedding_backward_wte_kernel<<<cuda_blocks((size_t)B * T, 8), 256>>>(dwte, dout, ids, B * T, C);
        cudaCheckLaunch();
    }
    if (dwpe) {
        embedding_backward_wpe_kernel<<<cuda_blocks((size_t)T * C, 256), 256>>>(dwpe, dout, B, T, C);
        cudaCheckLaunch();
    }
}
#endif

// ----------------------------------------------------------------------------------------------------
// on the tape

static void embedding_backward_node(const TapeNode* node) {
    int B = node->dims[0], T = node->dims[1], C = node->dims[2];
    float *dwte = node->in[0]->grad, *dwpe = node->in[1]->grad;
#ifdef __CUDACC__
    if (node->out->device == DEV_CUDA) embedding_backward_cuda(dwte, dwpe, node->out->grad, node->ids, B, T, C);
    else
#endif
        embedding_backward_cpu(dwte, dwpe, node->out->grad, node->ids, B, T, C);
}

// out (B, T, C) = wte[ids] + wpe[0:T]; ids (B, T) live on the tensors' device
static void embedding(Tape* tape, Tensor* out, const int* ids, Tensor* wte, Tensor* wpe, int B, int T, int C) {
#ifdef __CUDACC__
    if (out->device == DEV_CUDA) embedding_forward_cuda(out->data, ids, wte->data, wpe->data, B, T, C);
    else
#endif
        embedding_forward_cpu(out->data, ids, wte->data, wpe->data, B, T, C);
    TapeNode node = tape_node("embedding", embedding_backward_node, out);
    node.in[0] = wte;
    node.in[1] = wpe;
    node.ids = ids;
    node.dims[0] = B;
    node.dims[1] = T;
    node.dims[2] = C;
    tape_push(tape, &node);
}
