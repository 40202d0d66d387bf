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

// ----------------------------------------------------------------------------------------------------
// on the tape

static void embedding_backward_node(const TapeNode* node) {
    int B = node->dims[0], T = node->dims[1], C = node->dims[2];
    embedding_backward_cpu(node->in[0]->grad, node->in[1]->grad, node->out->grad, node->ids, B, T, C);
}

// out (B, T, C) = wte[ids] + wpe[0:T]; ids (B, T) live on the tensors' device
static void embedding(Tape* tape, Tensor* out, const int* ids, Tensor* wte, Tensor* wpe, int B, int T, int C) {
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
