// ops/layernorm.h: layer normalization over the channels of each position, y = w · (x − μ)/σ + b.
// GPT-2 applies it before attention, before the MLP (pre-LN) and once more before the LM head.
// Flow: residual stream -> layernorm -> matmul.
#pragma once
#include "../tensor.h"

// ----------------------------------------------------------------------------------------------------
// CPU reference

// For each of the N rows x (C): μ = mean(x), rstd = 1/sqrt(var(x) + 1e-5) (biased variance, as PyTorch),
// x̂ = (x − μ)·rstd, out = w ⊙ x̂ + b. μ and rstd (N) are kept for the backward.
static void layernorm_forward_cpu(float* out, float* mean, float* rstd, const float* inp, const float* weight,
                                  const float* bias, int N, int C) {
    const float eps = 1e-5f;
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float* x = inp + (size_t)n * C;
        float m = 0.0f;
        for (int c = 0; c < C; c++) m += x[c];
        m /= C;
        float v = 0.0f;
        for (int c = 0; c < C; c++) v += (x[c] - m) * (x[c] - m);
        v /= C;
        float s = 1.0f / sqrtf(v + eps);
        float* y = out + (size_t)n * C;
        for (int c = 0; c < C; c++) y[c] = (x[c] - m) * s * weight[c] + bias[c];
        mean[n] = m;
        rstd[n] = s;
    }
}

// With g = dout ⊙ w (the gradient reaching x̂) and means over the C channels of a row:
//   dx += rstd · (g − mean(g) − x̂ · mean(g ⊙ x̂))
//   dw += Σ_rows dout ⊙ x̂          db += Σ_rows dout
// dx is independent per row (parallel over rows); dw and db sum over rows, so they are computed in a second
// pass parallel over channels, each channel summing its rows in order (deterministic).
static void layernorm_backward_cpu(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                                   const float* weight, const float* mean, const float* rstd, int N, int C) {
    if (dinp) {
#pragma omp parallel for schedule(static)
        for (int n = 0; n < N; n++) {
            const float* x = inp + (size_t)n * C;
            const float* d = dout + (size_t)n * C;
            float m = mean[n], s = rstd[n];
            float g_mean = 0.0f, gx_mean = 0.0f;
            for (int c = 0; c < C; c++) {
                float g = d[c] * weight[c];
                g_mean += g;
                gx_mean += g * (x[c] - m) * s;
            }
            g_mean /= C;
            gx_mean /= C;
            float* dx = dinp + (size_t)n * C;
            for (int c = 0; c < C; c++) {
                float xhat = (x[c] - m) * s;
                dx[c] += s * (d[c] * weight[c] - g_mean - xhat * gx_mean);
            }
        }
    }
    const int chunk = 16;  // channels per task: contiguous loads in each row
#pragma omp parallel for schedule(static)
    for (int c0 = 0; c0 < C; c0 += chunk) {
        int c1 = c0 + chunk < C ? c0 + chunk : C;
        float dw[16] = {0}, db[16] = {0};
        for (int n = 0; n < N; n++) {
            const float* x = inp + (size_t)n * C;
            const float* d = dout + (size_t)n * C;
            for (int c = c0; c < c1; c++) {
                dw[c - c0] += d[c] * (x[c] - mean[n]) * rstd[n];
                db[c - c0] += d[c];
            }
        }
        for (int c = c0; c < c1; c++) {
            dweight[c] += dw[c - c0];
            dbias[c] += db[c - c0];
        }
    }
}

// ----------------------------------------------------------------------------------------------------
// on the tape

static void layernorm_backward_node(const TapeNode* node) {
    const Tensor *out = node->out, *inp = node->in[0], *w = node->in[1], *b = node->in[2];
    int N = node->dims[0], C = node->dims[1];
    layernorm_backward_cpu(inp->grad, w->grad, b->grad, out->grad, inp->data, w->data, node->saved[0]->data,
                           node->saved[1]->data, N, C);
}

// out (N, C) = layernorm(inp (N, C)) with gain weight (C) and bias (C); mean and rstd (N) are saved
static void layernorm(Tape* tape, Tensor* out, Tensor* mean, Tensor* rstd, Tensor* inp, Tensor* weight,
                      Tensor* bias, int N, int C) {
    layernorm_forward_cpu(out->data, mean->data, rstd->data, inp->data, weight->data, bias->data, N, C);
    TapeNode node = tape_node("layernorm", layernorm_backward_node, out);
    node.in[0] = inp;
    node.in[1] = weight;
    node.in[2] = bias;
    node.saved[0] = mean;
    node.saved[1] = rstd;
    node.dims[0] = N;
    node.dims[1] = C;
    tape_push(tape, &node);
}
