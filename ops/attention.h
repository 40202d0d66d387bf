// ops/attention.h: causal multi-head self-attention, the only op that mixes positions.
// qkv (B, T, 3C) holds the queries, keys and values side by side (q in [0, C), k in [C, 2C), v in [2C, 3C));
// head h uses channels [h·HS, (h+1)·HS) of each, HS = C/NH.
// Flow: layernorm -> matmul (qkv) -> attention -> matmul (projection) -> residual.
#pragma once
#include <math.h>
#include "../tensor.h"

// ----------------------------------------------------------------------------------------------------
// CPU reference

// For each batch b, head h and query position t:
//   s[t2]   = q_t · k_t2 / sqrt(HS)          for t2 ≤ t (causal: a position sees only the past)
//   att[t2] = exp(s[t2] − max s) / Σ exp(s − max s),  0 for t2 > t
//   out_t   = Σ_t2 att[t2] · v_t2
// att (B, NH, T, T) is kept for the backward; only the softmax output is needed there.
static void attention_forward_cpu(float* out, float* att, const float* qkv, int B, int T, int C, int NH) {
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
                    float s = 0.0f;
                    for (int i = 0; i < HS; i++) s += q[i] * k[i];
                    s *= scale;
                    a[t2] = s;
                    if (s > maxv) maxv = s;
                }
                float sum = 0.0f;
                for (int t2 = 0; t2 <= t; t2++) {
                    a[t2] = expf(a[t2] - maxv);
                    sum += a[t2];
                }
                for (int t2 = 0; t2 <= t; t2++) a[t2] /= sum;
                for (int t2 = t + 1; t2 < T; t2++) a[t2] = 0.0f;
                float* o = out + ((size_t)b * T + t) * C + h * HS;
                for (int i = 0; i < HS; i++) o[i] = 0.0f;
                for (int t2 = 0; t2 <= t; t2++) {
                    const float* v = qkv + ((size_t)b * T + t2) * 3 * C + 2 * C + h * HS;
                    for (int i = 0; i < HS; i++) o[i] += a[t2] * v[i];
                }
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
                    float s = 0.0f;
                    for (int i = 0; i < HS; i++) {
                        s += d[i] * v[i];
                        dv[i] += a[t2] * d[i];
                    }
                    datt[t2] = s;
                    dot += a[t2] * s;
                }
                for (int t2 = 0; t2 <= t; t2++) {
                    float ds = a[t2] * (datt[t2] - dot) * scale;
                    const float* k = qkv + ((size_t)b * T + t2) * 3 * C + C + h * HS;
                    float* dk = dqkv + ((size_t)b * T + t2) * 3 * C + C + h * HS;
                    for (int i = 0; i < HS; i++) {
                        dq[i] += ds * k[i];
                        dk[i] += ds * q[i];
                    }
                }
            }
        }
}

// ----------------------------------------------------------------------------------------------------
// on the tape

static void attention_backward_node(const TapeNode* node) {
    int B = node->dims[0], T = node->dims[1], C = node->dims[2], NH = node->dims[3];
    attention_backward_cpu(node->in[0]->grad, node->saved[1]->data, node->out->grad, node->in[0]->data,
                           node->saved[0]->data, B, T, C, NH);
}

// out (B, T, C) = attention(qkv (B, T, 3C)); att (B, NH, T, T) is saved; scratch is working space for the
// backward, at least B·NH·T floats (the GPU kernels may use more: model.h sizes it for both)
static void attention(Tape* tape, Tensor* out, Tensor* att, Tensor* scratch, Tensor* qkv, int B, int T, int C,
                      int NH) {
    attention_forward_cpu(out->data, att->data, qkv->data, B, T, C, NH);
    TapeNode node = tape_node("attention", attention_backward_node, out);
    node.in[0] = qkv;
    node.saved[0] = att;
    node.saved[1] = scratch;
    node.dims[0] = B;
    node.dims[1] = T;
    node.dims[2] = C;
    node.dims[3] = NH;
    tape_push(tape, &node);
}
