// ops/embedding.h: the first layer. Each position gets its token's embedding plus its position's embedding.
// Flow: data (token ids) -> embedding -> the first block's layernorm.
#pragma once
#include <algorithm>
#include "../tensor.h"

// ----------------------------------------------------------------------------------------------------
// CPU reference

// out[b, t, :] = wte[ids[b, t], :] + wpe[t, :]        ids (B, T), wte (Vp, C), wpe (maxT, C), out (B, T, C)
// bf16: out holds bf16 values (as_stored)
static void embedding_forward_cpu(float* out, const int* ids, const float* wte, const float* wpe, int B, int T,
                                  int C, bool bf16 = false) {
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            float* o = out + ((size_t)b * T + t) * C;
            const float* e = wte + (size_t)ids[b * T + t] * C;
            const float* p = wpe + (size_t)t * C;
            for (int c = 0; c < C; c++) o[c] = e[c] + p[c];
            if (bf16) bf16_round_row(o, C);
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

// ----------------------------------------------------------------------------------------------------
// dwte on the GPU sums, for each distinct token, the dout rows of the positions that hold it. Which positions
// those are is worked out on the host, where the ids come from (llm.c does the same), into `groups` (3N + 1 ints):
//   groups[0 .. N)          the positions, token by token, each token's in increasing order (a counting sort)
//   groups[N + 2g], [+ 1]   group g's first and one-past-last index into that list, for G groups, the largest
//                           group first (so its long sum starts first), ties by token
//   groups[3N]              G, the number of distinct tokens: the kernel reads it, so its launch is the same for
//                           every batch (a CUDA graph replays it: step_graph.h)
// counts: Vp ints of host scratch. Returns G.
static int embedding_token_groups(const int* ids, int N, int Vp, int* counts, int* groups) {
    memset(counts, 0, sizeof(int) * Vp);
    for (int n = 0; n < N; n++) counts[ids[n]]++;
    int* order = groups;
    int* table = groups + N;
    int G = 0, at = 0;
    for (int v = 0; v < Vp; v++) {  // counts[v] becomes where token v's positions start
        int c = counts[v];
        if (c) {
            table[2 * G] = at;
            table[2 * G + 1] = at + c;
            G++;
        }
        counts[v] = at;
        at += c;
    }
    for (int n = 0; n < N; n++) order[counts[ids[n]]++] = n;  // positions in increasing order within a token
    // largest group first; equal sizes in token order (the sort is stable)
    struct Span { int begin, end; };
    Span* spans = (Span*)table;
    std::stable_sort(spans, spans + G, [](const Span& a, const Span& b) { return a.end - a.begin > b.end - b.begin; });
    groups[3 * N] = G;
    return G;
}

#ifdef __CUDACC__
// ----------------------------------------------------------------------------------------------------
// CUDA kernels

// one thread per output element (n, c), n = b·T + t. 16-bit storage where not NULL (on the GPU at bf16: model.h's
// gpt2_storage16), the same values: out16, the output (the residual stream) instead of out; wte16, the table read
// instead of wte (its bf16 copy, which the LM head's product reads too)
static __global__ void embedding_forward_kernel(float* out, bfloat16* out16, const int* ids, const float* wte,
                                                const bfloat16* wte16, const float* wpe, int N, int T, int C, bool bf16) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (size_t)N * C) return;
    int n = (int)(i / C), c = (int)(i % C);
    store_value(out, out16, i, load_value(wte, wte16, (size_t)ids[n] * C + c) + wpe[(size_t)(n % T) * C + c], bf16);
}
// the same, four channels a thread with 128-bit accesses (float4), where C % 4 == 0 and the tables and out are
// 16-byte aligned (every row then starts aligned); wte16's four values as four 16-bit loads
static __global__ void embedding_forward4_kernel(float* out, bfloat16* out16, const int* ids, const float* wte,
                                                 const bfloat16* wte16, const float* wpe, int N, int T, int C,
                                                 bool bf16) {
    size_t i = 4 * ((size_t)blockIdx.x * blockDim.x + threadIdx.x);
    if (i >= (size_t)N * C) return;
    int n = (int)(i / C), c = (int)(i % C);
    size_t row = (size_t)ids[n] * C + c;
    float4 e = wte16 ? make_float4(bf16_to_float(wte16[row]), bf16_to_float(wte16[row + 1]),
                                   bf16_to_float(wte16[row + 2]), bf16_to_float(wte16[row + 3]))
                     : *(const float4*)(wte + row);
    float4 p = *(const float4*)(wpe + (size_t)(n % T) * C + c);
    if (out16) {  // four bf16 values, one 16-bit store each (a warp's stores still cover 256 contiguous bytes)
        out16[i] = bf16_from_float(e.x + p.x);
        out16[i + 1] = bf16_from_float(e.y + p.y);
        out16[i + 2] = bf16_from_float(e.z + p.z);
        out16[i + 3] = bf16_from_float(e.w + p.w);
        return;
    }
    *(float4*)(out + i) = make_float4(as_stored(e.x + p.x, bf16), as_stored(e.y + p.y, bf16),
                                      as_stored(e.z + p.z, bf16), as_stored(e.w + p.w, bf16));
}

#define WTE_THREADS 128        // channels per block of the dwte backward
#define WTE_GROUP_BLOCKS 512   // blocks along the groups (at most N), whatever the batch's G: 3,072 at d12

// dwte, backward formula above embedding_backward_cpu. Blocks (x, y) own channels y·128 .. y·128 + 127 of token
// groups x, x + gridDim.x, ... below G (embedding_token_groups; G read from the table): thread c adds a group's
// dout rows for its channel, in increasing position order, onto the token's row of dwte. Every (token, channel)
// is one thread's sum in the CPU's order: no atomics, the same bits as the CPU, and a frequent token (the
// newline, a thousand times in a batch) is summed by C threads side by side, not by one warp.
static __global__ void embedding_backward_wte_kernel(float* dwte, const float* dout, const int* ids,
                                                     const int* groups, int N, int C) {
    int c = blockIdx.y * blockDim.x + threadIdx.x, G = groups[3 * N];
    if (c >= C) return;
    const int* order = groups;
    for (int g = blockIdx.x; g < G; g += gridDim.x) {
        int begin = groups[N + 2 * g], end = groups[N + 2 * g + 1];
        float* row = dwte + (size_t)ids[order[begin]] * C;
        float sum = row[c];
        for (int k = begin; k < end; k++) sum += dout[(size_t)order[k] * C + c];
        row[c] = sum;
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
// CUDA launchers: the CPU functions' arguments, as device pointers; groups (3N + 1 ints, device) from
// embedding_token_groups

static void embedding_forward_cuda(float* out, const int* ids, const float* wte, const float* wpe, int B, int T,
                                   int C, bool bf16 = false, bfloat16* out16 = NULL, const bfloat16* wte16 = NULL) {
    size_t n = (size_t)B * T * C;
    if (n == 0) return;
    if (C % 4 == 0 && aligned16(out) && aligned16(wte) && aligned16(wpe))  // NULL counts as aligned
        embedding_forward4_kernel<<<cuda_blocks(n / 4, 256), 256>>>(out, out16, ids, wte, wte16, wpe, B * T, T, C,
                                                                    bf16);
    else
        embedding_forward_kernel<<<cuda_blocks(n, 256), 256>>>(out, out16, ids, wte, wte16, wpe, B * T, T, C, bf16);
    cudaCheckLaunch();
}

static void embedding_backward_cuda(float* dwte, float* dwpe, const float* dout, const int* ids, const int* groups,
                                    int B, int T, int C) {
    if ((size_t)B * T * C == 0) return;
    if (dwte) {
        unsigned group_blocks = B * T < WTE_GROUP_BLOCKS ? B * T : WTE_GROUP_BLOCKS;
        embedding_backward_wte_kernel<<<dim3(group_blocks, cuda_blocks(C, WTE_THREADS)), WTE_THREADS>>>(
            dwte, dout, ids, groups, B * T, C);
        cudaCheckLaunch();
    }
    if (dwpe) {
        embedding_backward_wpe_kernel<<<cuda_blocks((size_t)T * C, 256), 256>>>(dwpe, dout, B, T, C);
        cudaCheckLaunch();
    }
}
#endif

// ----------------------------------------------------------------------------------------------------
// by device: the one place that picks the CPU or the CUDA code (the GPU's backward reads the token groups; the
// CPU's sums in position order without them); out16, wte16 not NULL: the output, the table in 16-bit storage
// instead of out, wte (the GPU's only)

static void embedding_forward(Device d, float* out, const int* ids, const float* wte, const float* wpe, int B, int T,
                              int C, bool bf16 = false, bfloat16* out16 = NULL, const bfloat16* wte16 = NULL) {
#ifdef __CUDACC__
    if (d == DEV_CUDA) return embedding_forward_cuda(out, ids, wte, wpe, B, T, C, bf16, out16, wte16);
#endif
    if (out16 || wte16) die("embedding: 16-bit storage is the GPU's only");
    embedding_forward_cpu(out, ids, wte, wpe, B, T, C, bf16);
}

static void embedding_backward(Device d, float* dwte, float* dwpe, const float* dout, const int* ids,
                               const int* groups, int B, int T, int C) {
#ifdef __CUDACC__
    if (d == DEV_CUDA) return embedding_backward_cuda(dwte, dwpe, dout, ids, groups, B, T, C);
#endif
    embedding_backward_cpu(dwte, dwpe, dout, ids, B, T, C);
}

// ----------------------------------------------------------------------------------------------------
// on the tape

static void embedding_backward_node(const TapeNode* node) {
    embedding_backward(node->out->device, node->in[0]->grad, node->in[1]->grad, node->out->grad, node->ids, node->aux,
                       node->dims[0], node->dims[1], node->dims[2]);
}

// out (B, T, C) = wte[ids] + wpe[0:T]; ids (B, T) live on the tensors' device. On the GPU the backward also
// needs the positions grouped by token: groups (3·B·T + 1 ints on the device) from embedding_token_groups (unused
// on the CPU: NULL). out and wte in fp32 or 16-bit storage (tensor.h's stored16).
static void embedding(Tape* tape, Tensor* out, const int* ids, const int* groups, Tensor* wte, Tensor* wpe, int B,
                      int T, int C) {
    embedding_forward(out->device, out->data, ids, wte->data, wpe->data, B, T, C, out->bf16, stored16(out),
                      stored16(wte));
    TapeNode node = tape_node("embedding", embedding_backward_node, out, {wte, wpe}, {}, {B, T, C});
    node.ids = ids;
    node.aux = groups;
    tape_push(tape, &node);
}
