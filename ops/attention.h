// ops/attention.h: causal multi-head self-attention, the only op that mixes positions.
// qkv (B, T, 3C) holds the queries, keys and values side by side (q in [0, C), k in [C, 2C), v in [2C, 3C));
// head h uses channels [h·HS, (h+1)·HS) of each, HS = C/NH.
// Flow: layernorm -> matmul (qkv) -> attention -> matmul (projection) -> residual.
#pragma once
#include <math.h>
#include "../gemm.h"  // the simple GPU path's products
#include "attention_flash_backward.h"  // the fused GPU path (CUDA only; it includes the forward)

// ----------------------------------------------------------------------------------------------------
// CPU reference

// Σ_i a[i]·b[i]: 8 lanes (lane l sums the i ≡ l mod 8 in order, one vector register), the lanes added in a
// fixed tree 3 deep (a simd reduction's epilogue adds them one after another), then the last n mod 8 terms
static inline float attention_dot(const float* a, const float* b, int n) {
    float lane[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int i0 = 0;
    for (; i0 + 8 <= n; i0 += 8)
        for (int l = 0; l < 8; l++) lane[l] += a[i0 + l] * b[i0 + l];
    float s = ((lane[0] + lane[4]) + (lane[2] + lane[6])) + ((lane[1] + lane[5]) + (lane[3] + lane[7]));
    for (; i0 < n; i0++) s += a[i0] * b[i0];
    return s;
}

// y[0 : n] += Σ_{j < count} w[j] · x[j·stride + 0 : n], each entry summed over j in order (so the bits do not
// depend on how it is computed). The sums sit in registers 32 entries at a time, two or four independent vector
// chains (a sum kept in y itself would wait for its own store at every j); the rest one entry at a time.
static inline void attention_add_weighted_rows(float* y, const float* w, const float* x, size_t stride, int count,
                                               int n) {
    int i0 = 0;
    for (; i0 + 32 <= n; i0 += 32) {
        float acc[32];
        for (int i = 0; i < 32; i++) acc[i] = y[i0 + i];
        for (int j = 0; j < count; j++) {
            const float* xj = x + j * stride + i0;
#pragma omp simd
            for (int i = 0; i < 32; i++) acc[i] += w[j] * xj[i];
        }
        for (int i = 0; i < 32; i++) y[i0 + i] = acc[i];
    }
    for (; i0 < n; i0++) {
        float acc = y[i0];
        for (int j = 0; j < count; j++) acc += w[j] * x[j * stride + i0];
        y[i0] = acc;
    }
}

// For each batch b, head h and query position t:
//   s[t2]   = q_t · k_t2 / sqrt(HS)          for t2 ≤ t (causal: a position sees only the past)
//   att[t2] = exp(s[t2] − max s) / Σ exp(s − max s),  0 for t2 > t
//   out_t   = Σ_t2 att[t2] · v_t2
// att (B, NH, T, T) is kept for the backward; only the softmax output is needed there. The dot products and
// sums run in vector lanes added in a fixed order (attention_dot, `omp simd` reductions): the same bits every
// run, on any thread count; the exponentials by exp_nonpositive (numerics.h).
// bf16: out holds bf16 values (as_stored)
static void attention_forward_cpu(float* out, float* att, const float* qkv, int B, int T, int C, int NH,
                                  bool bf16 = false) {
    int HS = C / NH;
    float scale = 1.0f / sqrtf((float)HS);
#pragma omp parallel for collapse(3) schedule(static)
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++)
            for (int t = 0; t < T; t++) {
                const float* q = qkv + ((size_t)b * T + t) * 3 * C + h * HS;
                float* a = att + (((size_t)b * NH + h) * T + t) * T;
                float maxv = -INFINITY;
                for (int t2 = 0; t2 <= t; t2++) {
                    const float* k = qkv + ((size_t)b * T + t2) * 3 * C + C + h * HS;
                    float s = attention_dot(q, k, HS) * scale;
                    a[t2] = s;
                    if (s > maxv) maxv = s;
                }
                float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
                for (int t2 = 0; t2 <= t; t2++) {
                    a[t2] = exp_nonpositive(a[t2] - maxv);
                    sum += a[t2];
                }
#pragma omp simd
                for (int t2 = 0; t2 <= t; t2++) a[t2] /= sum;
                for (int t2 = t + 1; t2 < T; t2++) a[t2] = 0.0f;
                float* o = out + ((size_t)b * T + t) * C + h * HS;
                for (int i = 0; i < HS; i++) o[i] = 0.0f;
                attention_add_weighted_rows(o, a, qkv + (size_t)b * T * 3 * C + 2 * C + h * HS, 3 * (size_t)C, t + 1,
                                            HS);
                if (bf16) bf16_round_row(o, HS);
            }
}

// Backward, for one (b, h) and query t, with dout_t = dL/dout_t:
//   dv_t2   += att[t2] · dout_t                     datt[t2] = dout_t · v_t2
//   ds[t2]   = att[t2] · (datt[t2] − Σ_t3 att[t3] · datt[t3])      (softmax backward)
//   dq_t    += Σ_t2 ds[t2] · k_t2 / sqrt(HS)        dk_t2   += ds[t2] · q_t / sqrt(HS)
// Different t add into the same dk, dv rows, so each (b, h) is one task that walks t in order: the tasks
// touch disjoint channels, and the result does not depend on the thread count.
// scratch holds one row of datt per (b, h) task: (B, NH, T).
static void attention_backward_cpu(float* dqkv, float* scratch, const float* dout, const float* qkv,
                                   const float* att, int B, int T, int C, int NH) {
    int HS = C / NH;
    float scale = 1.0f / sqrtf((float)HS);
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            float* datt = scratch + ((size_t)b * NH + h) * T;
            for (int t = 0; t < T; t++) {
                const float* a = att + (((size_t)b * NH + h) * T + t) * T;
                const float* d = dout + ((size_t)b * T + t) * C + h * HS;
                const float* q = qkv + ((size_t)b * T + t) * 3 * C + h * HS;
                float* dq = dqkv + ((size_t)b * T + t) * 3 * C + h * HS;
                float dot = 0.0f;  // Σ_t3 att[t3] · datt[t3]
                for (int t2 = 0; t2 <= t; t2++) {
                    const float* v = qkv + ((size_t)b * T + t2) * 3 * C + 2 * C + h * HS;
                    float* dv = dqkv + ((size_t)b * T + t2) * 3 * C + 2 * C + h * HS;
                    float s = attention_dot(d, v, HS);
#pragma omp simd
                    for (int i = 0; i < HS; i++) dv[i] += a[t2] * d[i];
                    datt[t2] = s;
                    dot += a[t2] * s;
                }
                for (int t2 = 0; t2 <= t; t2++) {
                    float ds = a[t2] * (datt[t2] - dot) * scale;
                    datt[t2] = ds;  // datt[t2] is done with: it now holds ds[t2] for dq below
                    float* dk = dqkv + ((size_t)b * T + t2) * 3 * C + C + h * HS;
#pragma omp simd
                    for (int i = 0; i < HS; i++) dk[i] += ds * q[i];
                }
                attention_add_weighted_rows(dq, datt, qkv + (size_t)b * T * 3 * C + C + h * HS, 3 * (size_t)C, t + 1,
                                            HS);
            }
        }
}

// ----------------------------------------------------------------------------------------------------
// Which GPU attention a model runs (AttentionPath, tensor.h; the CPU has one: the reference above). The simple
// path below saves att (B, NH, T, T) for its backward and needs a (B, NH, T, T) scratch; the fused
// flash-attention kernels (ops/attention_flash.h) save only L (B, NH, T), the logsumexp of each row of scores,
// and need B·NH·T floats of scratch. The model picks a path when it is built and sizes its buffers for it alone.

static bool attention_uses_flash(Device d, AttentionPath path) { return d == DEV_CUDA && path == ATTENTION_FLASH; }

// floats attention() saves for its backward per call (att, or L), and the floats of the backward's scratch
static size_t attention_saved_floats(Device d, AttentionPath path, int B, int NH, int T) {
    return (size_t)B * NH * T * (attention_uses_flash(d, path) ? 1 : (size_t)T);
}
static size_t attention_scratch_floats(Device d, AttentionPath path, int B, int NH, int T) {
    return (size_t)B * NH * T * (d == DEV_CUDA && path == ATTENTION_SIMPLE ? (size_t)T : 1);
}

#ifdef __CUDACC__
// ----------------------------------------------------------------------------------------------------
// CUDA: the three steps as separate passes. The two products per head are batched cuBLAS GEMMs reading q, k,
// v where they lie inside qkv (leading dimension 3C); the causal softmax and its backward are kernels.
// Every (b, h) product is a full T x T one (half of it is masked away): simple, and still cuBLAS-fast.

// Softmax of one row of scores, in place: one warp per row (b, h, t) of att (B·NH·T rows of T); blocks of
// 8 warps. Only t2 <= t take part (causal); t2 > t get 0. The scores already carry the 1/sqrt(HS) scale.
static __global__ void attention_softmax_kernel(float* att, int rows, int T) {
    int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (row >= rows) return;
    int t = row % T;
    float* a = att + (size_t)row * T;
    float maxv = -INFINITY;
    for (int t2 = lane; t2 <= t; t2 += 32) maxv = fmaxf(maxv, a[t2]);
    maxv = warp_reduce_max(maxv);
    float sum = 0.0f;
    for (int t2 = lane; t2 <= t; t2 += 32) {
        float e = expf(a[t2] - maxv);
        a[t2] = e;
        sum += e;
    }
    sum = warp_reduce_sum(sum);
    for (int t2 = lane; t2 < T; t2 += 32) a[t2] = t2 <= t ? a[t2] / sum : 0.0f;
}

// Softmax backward, in place on one row of datt (backward formula above attention_backward_cpu):
//   ds[t2] = att[t2] · (datt[t2] − Σ_t3 att[t3]·datt[t3]) / sqrt(HS)   for t2 <= t, 0 beyond
// One warp per row, as the forward.
static __global__ void attention_softmax_backward_kernel(float* datt, const float* att, int rows, int T,
                                                         float scale) {
    int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (row >= rows) return;
    int t = row % T;
    const float* a = att + (size_t)row * T;
    float* d = datt + (size_t)row * T;
    float dot = 0.0f;
    for (int t2 = lane; t2 <= t; t2 += 32) dot += a[t2] * d[t2];
    dot = warp_reduce_sum(dot);
    for (int t2 = lane; t2 < T; t2 += 32) d[t2] = t2 <= t ? a[t2] * (d[t2] - dot) * scale : 0.0f;
}

// ----------------------------------------------------------------------------------------------------
// CUDA launchers: the CPU functions' arguments, as device pointers. Head h of batch b:
//   q_bh = qkv + b·T·3C + h·HS (T rows, leading dimension 3C), k_bh = q_bh + C, v_bh = q_bh + 2C
//   att_bh = att + (b·NH + h)·T·T (T x T)          out_bh = out + b·T·C + h·HS (T rows, leading dimension C)
// For a fixed h these are a batch over b at constant strides: one strided-batched GEMM per head and step.

static void attention_forward_cuda(GemmLevel gemm, float* out, float* att, const float* qkv, int B, int T, int C,
                                   int NH, bool bf16 = false) {
    if (B == 0 || T == 0) return;
    int HS = C / NH;
    float scale = 1.0f / sqrtf((float)HS);
    long long s_qkv = (long long)T * 3 * C, s_att = (long long)NH * T * T, s_out = (long long)T * C;
    for (int h = 0; h < NH; h++) {
        const float* q = qkv + h * HS;
        float* a = att + (size_t)h * T * T;
        // s_bh (T, T) = q_bh (T, HS) · k_bhᵀ · scale
        gemm_batched_cuda(gemm, a, q, q + C, T, T, HS, false, true, scale, 0.0f, 3 * C, 3 * C, T, s_qkv, s_qkv, s_att, B);
    }
    int rows = B * NH * T;
    attention_softmax_kernel<<<cuda_blocks(rows, 8), 256>>>(att, rows, T);
    cudaCheckLaunch();
    for (int h = 0; h < NH; h++) {
        const float* v = qkv + 2 * C + h * HS;
        // out_bh (T, HS) = att_bh (T, T) · v_bh (T, HS)
        gemm_batched_cuda(gemm, out + h * HS, att + (size_t)h * T * T, v, T, HS, T, false, false, 1.0f, 0.0f, T, 3 * C, C,
                          s_att, s_qkv, s_out, B);
    }
    if (bf16) device_round_bf16(DEV_CUDA, out, out, (size_t)B * T * C);  // cuBLAS wrote fp32: one pass (this path
}                                                                       // is the reference; flash is the fast one)

// scratch: (B, NH, T, T) floats, for datt and then ds
static void attention_backward_cuda(GemmLevel gemm, float* dqkv, float* scratch, const float* dout, const float* qkv,
                                    const float* att, int B, int T, int C, int NH) {
    if (B == 0 || T == 0) return;
    int HS = C / NH;
    float scale = 1.0f / sqrtf((float)HS);
    long long s_qkv = (long long)T * 3 * C, s_att = (long long)NH * T * T, s_out = (long long)T * C;
    for (int h = 0; h < NH; h++) {
        const float* v = qkv + 2 * C + h * HS;
        const float* a = att + (size_t)h * T * T;
        const float* d = dout + h * HS;
        // datt_bh (T, T) = dout_bh (T, HS) · v_bhᵀ
        gemm_batched_cuda(gemm, scratch + (size_t)h * T * T, d, v, T, T, HS, false, true, 1.0f, 0.0f, C, 3 * C, T, s_out,
                          s_qkv, s_att, B);
        // dv_bh (T, HS) += att_bhᵀ (T, T) · dout_bh (T, HS)
        gemm_batched_cuda(gemm, dqkv + 2 * C + h * HS, a, d, T, HS, T, true, false, 1.0f, 1.0f, T, C, 3 * C, s_att, s_out,
                          s_qkv, B);
    }
    int rows = B * NH * T;
    attention_softmax_backward_kernel<<<cuda_blocks(rows, 8), 256>>>(scratch, att, rows, T, scale);
    cudaCheckLaunch();
    for (int h = 0; h < NH; h++) {
        const float* q = qkv + h * HS;
        const float* ds = scratch + (size_t)h * T * T;
        // dq_bh (T, HS) += ds_bh (T, T) · k_bh (T, HS)
        gemm_batched_cuda(gemm, dqkv + h * HS, ds, q + C, T, HS, T, false, false, 1.0f, 1.0f, T, 3 * C, 3 * C, s_att,
                          s_qkv, s_qkv, B);
        // dk_bh (T, HS) += ds_bhᵀ (T, T) · q_bh (T, HS)
        gemm_batched_cuda(gemm, dqkv + C + h * HS, ds, q, T, HS, T, true, false, 1.0f, 1.0f, T, 3 * C, 3 * C, s_att, s_qkv,
                          s_qkv, B);
    }
}
#endif

// ----------------------------------------------------------------------------------------------------
// by device and path: the one place that picks the CPU reference, the simple GPU path or the flash kernels.
// att: what the forward saves for the backward (attention_saved_floats); scratch: the backward's working space
// (attention_scratch_floats); out, the forward's output, is read by the flash backward.

// The simple path's products stay fp32 at --matmul tf32 or bf16 (the teaching level aside): the CPU's attention
// and the flash kernels compute in fp32, and the scores go through a softmax.
static GemmLevel attention_gemm(GemmLevel model_level) {
    return model_level == GEMM_TILED ? GEMM_TILED : GEMM_CUBLAS;
}

// qkv16, out16: qkv, out in 16-bit storage in place of qkv, out (model.h's gpt2_storage16): the flash kernels' only
static void attention_forward(Device d, Kernels k, float* out, float* att, const float* qkv, int B, int T, int C,
                              int NH, bool bf16 = false, const bfloat16* qkv16 = NULL, bfloat16* out16 = NULL) {
#ifdef __CUDACC__
    if (attention_uses_flash(d, k.attention))
        return attention_flash_forward_cuda(out, att, qkv, B, T, C, NH, bf16, qkv16, out16);
#endif
    if (qkv16 || out16) die("attention: 16-bit storage needs the flash kernels (the GPU, --attention flash)");
#ifdef __CUDACC__
    if (d == DEV_CUDA) return attention_forward_cuda(attention_gemm(k.gemm), out, att, qkv, B, T, C, NH, bf16);
#endif
    attention_forward_cpu(out, att, qkv, B, T, C, NH, bf16);
}

static void attention_backward(Device d, Kernels k, float* dqkv, float* scratch, const float* dout, const float* qkv,
                               const float* out, const float* att, int B, int T, int C, int NH,
                               const bfloat16* qkv16 = NULL, const bfloat16* out16 = NULL) {
#ifdef __CUDACC__
    if (attention_uses_flash(d, k.attention))
        return attention_flash_backward_cuda(dqkv, scratch, dout, qkv, out, att, B, T, C, NH, qkv16, out16);
#endif
    if (qkv16 || out16) die("attention: 16-bit storage needs the flash kernels (the GPU, --attention flash)");
#ifdef __CUDACC__
    if (d == DEV_CUDA) return attention_backward_cuda(attention_gemm(k.gemm), dqkv, scratch, dout, qkv, att, B, T, C, NH);
#endif
    attention_backward_cpu(dqkv, scratch, dout, qkv, att, B, T, C, NH);
}

// ----------------------------------------------------------------------------------------------------
// on the tape

static void attention_backward_node(const TapeNode* node) {
    const Tensor *qkv = node->in[0], *out = node->out;
    attention_backward(out->device, node->kernels, qkv->grad, node->saved[1]->data, out->grad, qkv->data, out->data,
                       node->saved[0]->data, node->dims[0], node->dims[1], node->dims[2], node->dims[3],
                       stored16(qkv), stored16(out));
}

// out (B, T, C) = attention(qkv (B, T, 3C)) by the kernels' path on the GPU (the CPU runs its reference); att and
// scratch as attention_forward says. The tape node keeps the kernel choices, so the backward matches the
// forward that ran.
static void attention(Tape* tape, Kernels kernels, Tensor* out, Tensor* att, Tensor* scratch, Tensor* qkv, int B,
                      int T, int C, int NH) {
    attention_forward(out->device, kernels, out->data, att->data, qkv->data, B, T, C, NH, out->bf16,
                      stored16(qkv), stored16(out));
    TapeNode node = tape_node(attention_uses_flash(out->device, kernels.attention) ? "attention_flash" : "attention",
                              attention_backward_node, out, {qkv}, {att, scratch}, {B, T, C, NH});
    node.kernels = kernels;
    tape_push(tape, &node);
}
