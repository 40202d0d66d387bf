// ops/crossentropy.h: the loss. Softmax over the vocabulary and cross-entropy against the next token, fused:
// the probabilities are never stored, only each row's log-sum-exp; the backward recomputes them. The loss is the
// logits' only reader, so its backward sets their gradient (=, where other ops add) and may write it over the
// logits themselves: the model keeps one (B, T, Vp) buffer for both, its largest activation (model.h).
// Fused (a training step, whose dL/dloss is known before the forward): the forward writes dlogits too, while each
// row is still in cache, and no backward is recorded: forward and backward in one pass, as llm.c's classifier.
// The vocabulary is padded from V = 50257 to Vp = 50304 (a multiple of 64, for fast matmuls); the padded
// logits take no part in the softmax, so they can never win, and get zero gradient.
// bf16 (--precision bf16): the loss reads the logits as bf16 values (as_stored), so the LM head stores them as they
// come and no pass of their own rounds the largest activation: the GPU's kernels round each logit as they read it
// (forward and backward); the CPU rounds each row in place as its forward starts (the row in cache; a test inside
// its vectorized loops would slow the fp32 path), so its backward then reads the rounded values. The same numbers.
// 16-bit storage (the GPU at bf16 with bf16 products, model.h): the logits are bf16 values in a bf16 buffer (data16),
// half the bytes of the largest activation, and the gradient is written over them in bf16 (the products of the LM
// head's backward round it to bf16 anyway); the kernels read and write through logit_at and numerics.h's store_value.
// Flow: LM head (matmul) -> logits (B·T, Vp) -> crossentropy -> per-position losses (B·T).
#pragma once
#include <math.h>
#include "../tensor.h"

// ----------------------------------------------------------------------------------------------------
// CPU reference

// exp_nonpositive (numerics.h): libm's exp is a call per element, and the softmax takes 2 of them per logit,
// ~100M per step at B·T = 2048.

// dloss/dz_v = softmax(z)_v − [v == target] for v < V, 0 for the padding:
//   dlogits[n, v] = dlosses[n] · (exp(z_v − lse) − [v == target])
// One row; each entry is read, then written: dz may be z itself.
static inline void crossentropy_row_backward_cpu(float* dz, const float* z, float d, float l, int target, int V,
                                                 int Vp) {
#pragma omp simd
    for (int v = 0; v < V; v++) dz[v] = d * exp_nonpositive(z[v] - l);
    for (int v = V; v < Vp; v++) dz[v] = 0.0f;
    dz[target] -= d;
}

// For each of the N rows (a position), over the first V logits z:
//   lse = log Σ_v exp(z_v)  (computed as max + log Σ exp(z − max), so it cannot overflow)
//   loss = lse − z[target]  ( = −log softmax(z)[target] )
// The sum runs in float over blocks of 1024 terms (each <= 1), the blocks' sums in double.
// Fused (dlogits not NULL): the row's gradient for dlosses[n] = dloss, as crossentropy_backward_cpu writes it.
static void crossentropy_forward_cpu(float* losses, float* lse, float* logits, const int* targets, int N, int V,
                                     int Vp, float* dlogits = NULL, float dloss = 0.0f, bool bf16 = false) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        float* z = logits + (size_t)n * Vp;
        if (bf16) bf16_round_row(z, V);
        float maxv = -INFINITY;
#pragma omp simd reduction(max : maxv)
        for (int v = 0; v < V; v++) maxv = z[v] > maxv ? z[v] : maxv;
        double sum = 0.0;
        for (int v0 = 0; v0 < V; v0 += 1024) {
            int v1 = v0 + 1024 < V ? v0 + 1024 : V;
            float block = 0.0f;
#pragma omp simd reduction(+ : block)
            for (int v = v0; v < v1; v++) block += exp_nonpositive(z[v] - maxv);
            sum += block;
        }
        float l = maxv + (float)log(sum);
        lse[n] = l;
        losses[n] = l - z[targets[n]];
        if (dlogits) crossentropy_row_backward_cpu(dlogits + (size_t)n * Vp, z, dloss, l, targets[n], V, Vp);
    }
}

static void crossentropy_backward_cpu(float* dlogits, const float* dlosses, const float* logits, const float* lse,
                                      const int* targets, int N, int V, int Vp) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++)
        crossentropy_row_backward_cpu(dlogits + (size_t)n * Vp, logits + (size_t)n * Vp, dlosses[n], lse[n],
                                      targets[n], V, Vp);
}

#ifdef __CUDACC__
// ----------------------------------------------------------------------------------------------------
// CUDA kernels

#define CE_THREADS 512  // threads per row: a row of 50257 logits is ~100 values per thread

// Backward formula above crossentropy_row_backward_cpu; the softmax is recomputed from the logits and lse.
// The block's threads stride over the row's Vp columns, each entry read by the thread that writes it (so dz may
// be z); the padded columns get zero.
// Each row is fp32 storage (z, dz; read as bf16 values with bf16) or 16-bit storage (z16, dz16 not NULL).
static __device__ float logit_at(const float* z, const bfloat16* z16, int v, bool bf16) {
    return as_stored(load_value(z, z16, v), bf16);  // a bf16 value from z16 is already as stored
}

static __device__ void crossentropy_row_backward(float* dz, bfloat16* dz16, const float* z, const bfloat16* z16,
                                                 float d, float l, int target, int V, int Vp, bool bf16) {
    for (int v = threadIdx.x; v < Vp; v += blockDim.x) {
        float g = v < V ? d * expf(logit_at(z, z16, v, bf16) - l) : 0.0f;
        store_value(dz, dz16, v, v == target ? g - d : g, false);  // the CPU's order: the softmax term, then minus d
    }
}

// One block per row n, in one pass over the row's logits (the largest activation: one read, not two). Each thread
// keeps the online softmax of its strided share: its running max m and s = Σ exp(z − m), rescaled by exp(m − z)
// when a larger z arrives (Milakov & Gimelshein, arXiv 1805.02867). Then the block's max M (a fixed tree), each
// thread's s moved to it, s·exp(m − M), and their sum (a fixed tree): Σ exp(z − M) over the row. The CPU reference
// takes two passes (max, then the sum in double); the two agree to ~1e-7 relative.
// Fused (dlogits not NULL): then the row's gradient for dloss, while the row is still in cache (every thread has
// the lse from the reductions; z[target] was read before them, so dlogits may be the logits).
static __global__ void crossentropy_forward_kernel(float* losses, float* lse, const float* logits,
                                                   const bfloat16* logits16, const int* targets, int V, int Vp,
                                                   float* dlogits, bfloat16* dlogits16, float dloss, bool bf16) {
    int n = blockIdx.x, target = targets[n];
    size_t row = (size_t)n * Vp;
    const float* z = logits ? logits + row : NULL;
    const bfloat16* z16 = logits16 ? logits16 + row : NULL;
    float z_target = logit_at(z, z16, target, bf16);
    float m = -INFINITY, s = 0.0f;
    for (int v = threadIdx.x; v < V; v += blockDim.x) {
        float x = logit_at(z, z16, v, bf16);
        if (x > m) {
            s = s * expf(m - x) + 1.0f;  // exp(-inf) = 0 for the first
            m = x;
        } else {
            s += expf(x - m);
        }
    }
    float maxv = block_reduce_max(m);
    float sum = block_reduce_sum(m == -INFINITY ? 0.0f : s * expf(m - maxv));
    float l = maxv + logf(sum);
    if (threadIdx.x == 0) {
        lse[n] = l;
        losses[n] = l - z_target;
    }
    if (dlogits || dlogits16)
        crossentropy_row_backward(dlogits ? dlogits + row : NULL, dlogits16 ? dlogits16 + row : NULL, z, z16, dloss, l,
                                  target, V, Vp, bf16);
}

// One block per row, as the forward.
static __global__ void crossentropy_backward_kernel(float* dlogits, bfloat16* dlogits16, const float* dlosses,
                                                    const float* logits, const bfloat16* logits16, const float* lse,
                                                    const int* targets, int V, int Vp, bool bf16) {
    int n = blockIdx.x;
    size_t row = (size_t)n * Vp;
    crossentropy_row_backward(dlogits ? dlogits + row : NULL, dlogits16 ? dlogits16 + row : NULL,
                              logits ? logits + row : NULL, logits16 ? logits16 + row : NULL, dlosses[n], lse[n],
                              targets[n], V, Vp, bf16);
}

// ----------------------------------------------------------------------------------------------------
// CUDA launchers: the CPU functions' arguments, as device pointers (targets too); and for 16-bit storage, logits16
// and dlogits16 in place of logits and dlogits (those then NULL; dlogits16 may be logits16)

static void crossentropy_forward_cuda(float* losses, float* lse, const float* logits, const int* targets, int N,
                                      int V, int Vp, float* dlogits = NULL, float dloss = 0.0f, bool bf16 = false,
                                      const bfloat16* logits16 = NULL, bfloat16* dlogits16 = NULL) {
    if (N == 0) return;
    crossentropy_forward_kernel<<<N, CE_THREADS>>>(losses, lse, logits, logits16, targets, V, Vp, dlogits, dlogits16,
                                                   dloss, bf16);
    cudaCheckLaunch();
}

static void crossentropy_backward_cuda(float* dlogits, const float* dlosses, const float* logits, const float* lse,
                                       const int* targets, int N, int V, int Vp, bool bf16 = false,
                                       bfloat16* dlogits16 = NULL, const bfloat16* logits16 = NULL) {
    if (N == 0) return;
    crossentropy_backward_kernel<<<N, CE_THREADS>>>(dlogits, dlogits16, dlosses, logits, logits16, lse, targets, V, Vp,
                                                    bf16);
    cudaCheckLaunch();
}
#endif

// ----------------------------------------------------------------------------------------------------
// by device: the one place that picks the CPU or the CUDA code (targets on the same device as the logits)

// dlogits not NULL: fused, the gradient for dlosses = dloss at every position written too (may be logits); bf16:
// the logits read as bf16 values (the CPU leaves them rounded). logits16, dlogits16: 16-bit storage (the GPU only)
static void crossentropy_forward(Device d, float* losses, float* lse, float* logits, const int* targets, int N, int V,
                                 int Vp, float* dlogits = NULL, float dloss = 0.0f, bool bf16 = false,
                                 const bfloat16* logits16 = NULL, bfloat16* dlogits16 = NULL) {
#ifdef __CUDACC__
    if (d == DEV_CUDA)
        return crossentropy_forward_cuda(losses, lse, logits, targets, N, V, Vp, dlogits, dloss, bf16, logits16,
                                         dlogits16);
#endif
    if (logits16) die("crossentropy: 16-bit storage is the GPU's only");
    crossentropy_forward_cpu(losses, lse, logits, targets, N, V, Vp, dlogits, dloss, bf16);
}

// bf16: as the forward (the CPU's forward left the logits rounded: its backward reads them as they are)
static void crossentropy_backward(Device d, float* dlogits, const float* dlosses, const float* logits,
                                  const float* lse, const int* targets, int N, int V, int Vp, bool bf16 = false,
                                  bfloat16* dlogits16 = NULL, const bfloat16* logits16 = NULL) {
#ifdef __CUDACC__
    if (d == DEV_CUDA)
        return crossentropy_backward_cuda(dlogits, dlosses, logits, lse, targets, N, V, Vp, bf16, dlogits16, logits16);
#endif
    (void)bf16;
    if (logits16) die("crossentropy: 16-bit storage is the GPU's only");
    crossentropy_backward_cpu(dlogits, dlosses, logits, lse, targets, N, V, Vp);
}

// ----------------------------------------------------------------------------------------------------
// on the tape

// (at 16-bit storage the logits' gradient is written over their bf16 values: logits->data16)
static void crossentropy_backward_node(const TapeNode* node) {
    Tensor* logits = node->in[0];
    bfloat16* logits16 = stored16(logits);
    crossentropy_backward(node->out->device, logits->grad, node->out->grad, logits->data, node->saved[0]->data,
                          node->ids, node->dims[0], node->dims[1], node->dims[2],
                          node->kernels.precision == PRECISION_BF16, logits16, logits16);
}

// losses (N) = cross-entropy of logits (N, Vp) against targets (N), softmax over the first V entries;
// lse (N) is saved. The caller seeds losses->grad (1/N for the mean loss) before the backward, which sets
// logits->grad (which may be logits->data: the logits are then gone once the backward has run).
// dloss > 0 (with a recording tape): fused, logits->grad set here for dL/dlosses = dloss at every position, and
// nothing recorded (the caller's seed of losses->grad must then be the same dloss, or is unused). bf16: the logits
// are read as bf16 values (--precision bf16). Logits in 16-bit storage (data16, data NULL: the GPU at bf16) are read
// from there, and their gradient written over them.
static void crossentropy(Tape* tape, Tensor* losses, Tensor* lse, Tensor* logits, const int* targets, int N, int V,
                         int Vp, float dloss = 0.0f, bool bf16 = false) {
    bool fused = dloss > 0.0f && tape && tape->recording;
    bfloat16* logits16 = stored16(logits);
    crossentropy_forward(losses->device, losses->data, lse->data, logits->data, targets, N, V, Vp,
                         fused ? logits->grad : NULL, dloss, bf16, logits16, fused ? logits16 : NULL);
    if (fused) return;
    TapeNode node = tape_node("crossentropy", crossentropy_backward_node, losses, {logits}, {lse}, {N, V, Vp});
    node.ids = targets;
    node.kernels.precision = bf16 ? PRECISION_BF16 : PRECISION_FP32;
    tape_push(tape, &node);
}
