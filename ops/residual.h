// ops/residual.h: the residual connection, out = a + b: each block adds its output to the stream.
// Flow: block input + attention output -> stream; stream + MLP output -> next block.
#pragma once
#include "../tensor.h"

// ----------------------------------------------------------------------------------------------------
// CPU reference

static void residual_forward_cpu(float* out, const float* a, const float* b, size_t n) {
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}

// d(a + b)/da = d(a + b)/db = 1:   da += dout,  db += dout
static void residual_backward_cpu(float* da, float* db, const float* dout, size_t n) {
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        if (da) da[i] += dout[i];
        if (db) db[i] += dout[i];
    }
}

// ----------------------------------------------------------------------------------------------------
// on the tape

static void residual_backward_node(const TapeNode* node) {
    size_t n = (size_t)node->dims[0] * node->dims[1];
    residual_backward_cpu(node->in[0]->grad, node->in[1]->grad, node->out->grad, n);
}

// out (N, C) = a (N, C) + b (N, C)
static void residual(Tape* tape, Tensor* out, Tensor* a, Tensor* b, int N, int C) {
    residual_forward_cpu(out->data, a->data, b->data, (size_t)N * C);
    TapeNode node = tape_node("residual", residual_backward_node, out);
    node.in[0] = a;
    node.in[1] = b;
    node.dims[0] = N;
    node.dims[1] = C;
    tape_push(tape, &node);
}
