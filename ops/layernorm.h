// ops/layernorm.h: layer normalization over the channels of each position, y = w · (x − μ)/σ + b, alone or fused
// with the residual add before it (x = a + b, both outputs written in one pass over the rows).
// GPT-2 applies it before attention, before the MLP (pre-LN) and once more before the LM head; every one of them
// but the first reads a stream just made by a residual add, so the model runs those as residual_layernorm: the
// sum is written once and normalised while its row is still in cache, instead of written by one kernel and read
// back by the next (ops/residual.h keeps the plain add, the reference the fused op is tested and timed against).
// Flow: residual stream (+ block output) -> layernorm -> matmul.
#pragma once
#include "../tensor.h"

// ----------------------------------------------------------------------------------------------------
// CPU reference

// For each of the N rows x (C): μ = mean(x), rstd = 1/sqrt(var(x) + 1e-5) (biased variance, as PyTorch),
// x̂ = (x − μ)·rstd, out = w ⊙ x̂ + b. μ and rstd (N) are kept for the backward.
// Fused (add != NULL): the row is x = inp + add, first stored in `sum` (the residual stream the next block reads);
// the same float additions as residual_forward_cpu, so fused and unfused give the same bits.
// bf16: out and sum hold bf16 values (as_stored), and the row normalised is the stored sum, as the backward sees it.
static void layernorm_forward_cpu(float* out, float* mean, float* rstd, const float* inp, const float* weight,
                                  const float* bias, int N, int C, const float* add = NULL, float* sum = NULL,
                                  bool bf16 = false) {
    const float eps = 1e-5f;
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float* x = inp + (size_t)n * C;
        if (add) {
            float* r = sum + (size_t)n * C;
            for (int c = 0; c < C; c++) r[c] = x[c] + add[(size_t)n * C + c];
            if (bf16) bf16_round_row(r, C);
            x = r;
        }
        float m = 0.0f;
        for (int c = 0; c < C; c++) m += x[c];
        m /= C;
        float v = 0.0f;
        for (int c = 0; c < C; c++) v += (x[c] - m) * (x[c] - m);
        v /= C;
        float s = 1.0f / sqrtf(v + eps);
        float* y = out + (size_t)n * C;
        for (int c = 0; c < C; c++) y[c] = (x[c] - m) * s * weight[c] + bias[c];
        if (bf16) bf16_round_row(y, C);  // the row is still in cache
        mean[n] = m;
        rstd[n] = s;
    }
}

// With g = dout ⊙ w (the gradient reaching x̂) and means over the C channels of a row:
//   dx += rstd · (g − mean(g) − x̂ · mean(g ⊙ x̂))
//   dw += Σ_rows dout ⊙ x̂          db += Σ_rows dout
// dx is independent per row (parallel over rows); dw and db sum over rows, so they are computed in a second
// pass parallel over channels, each channel summing its rows in order (deterministic).
// Fused (x = a + b): dx_before is the gradient x already has from its other readers (the next residual add), the
// total dx = dx_before + the line above goes to da and db (d(a + b)/da = d(a + b)/db = 1) and dinp is NULL:
// the sum's gradient is never stored. Unfused: dx_before = dinp, and the total is stored back (+=).
static void layernorm_backward_cpu(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                                   const float* weight, const float* mean, const float* rstd, int N, int C,
                                   const float* dx_before = NULL, float* da = NULL, float* db = NULL) {
    if (!dx_before) dx_before = dinp;
    if (dx_before && (dinp || da || db)) {
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
            size_t row = (size_t)n * C;
            for (int c = 0; c < C; c++) {
                float xhat = (x[c] - m) * s;
                float dx = dx_before[row + c] + s * (d[c] * weight[c] - g_mean - xhat * gx_mean);
                if (dinp) dinp[row + c] = dx;
                if (da) da[row + c] += dx;
                if (db) db[row + c] += dx;
            }
        }
    }
    const int chunk = 16;  // channels per task: contiguous loads in each row
#pragma omp parallel for schedule(static)
    for (int c0 = 0; c0 < C; c0 += chunk) {
        int c1 = c0 + chunk < C ? c0 + chunk : C;
        float w_sum[16] = {0}, b_sum[16] = {0};
        for (int n = 0; n < N; n++) {
            const float* x = inp + (size_t)n * C;
            const float* d = dout + (size_t)n * C;
            for (int c = c0; c < c1; c++) {
                w_sum[c - c0] += d[c] * (x[c] - mean[n]) * rstd[n];
                b_sum[c - c0] += d[c];
            }
        }
        for (int c = c0; c < c1; c++) {
            dweight[c] += w_sum[c - c0];
            dbias[c] += b_sum[c - c0];
        }
    }
}

#ifdef __CUDACC__
// ----------------------------------------------------------------------------------------------------
// CUDA kernels

#define LN_COLS 8    // dweight/dbias: channels per block (a 32-byte sector of each row)
#define LN_LANES 64  // dweight/dbias: threads per channel, each summing every 64th row

// One warp per row; blocks of 8 warps. Lane l reads channels l, l+32, ...; mean and variance by two
// passes over the row (as the CPU), each finished with a butterfly sum, so every lane holds the same μ, rstd.
// Fused (add != NULL): the first pass forms x = inp + add, stores it in `sum` and adds it up; the later passes
// read back what the same lane wrote (from cache), so the row crosses global memory once in and once out.
// The 16-bit twins (the GPU at bf16: model.h's gpt2_storage16), each used instead of its fp32 buffer where not NULL
// (numerics.h's load_value, store_value): inp16, add16 and sum16, the residual stream and the block's output;
// out16, the output. The same values (bf16's either way); the backward reads the input, never the output.
static __global__ void layernorm_forward_kernel(float* out, bfloat16* out16, float* mean, float* rstd,
                                                const float* inp, const bfloat16* inp16, const float* weight,
                                                const float* bias, int N, int C, const float* add,
                                                const bfloat16* add16, float* sum, bfloat16* sum16, bool bf16) {
    int n = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (n >= N) return;
    size_t row = (size_t)n * C;
    const float* x = inp16 ? NULL : inp + row;  // the row normalised, in one storage or the other
    const bfloat16* x16 = inp16 ? inp16 + row : NULL;
    float total = 0.0f;
    if (add || add16) {
        for (int c = lane; c < C; c += 32) {
            float v = as_stored(load_value(x, x16, c) + load_value(add, add16, row + c), bf16);
            store_value(sum, sum16, row + c, v, bf16);
            total += v;
        }
        x = sum16 ? NULL : sum + row;
        x16 = sum16 ? sum16 + row : NULL;
    } else {
        for (int c = lane; c < C; c += 32) total += load_value(x, x16, c);
    }
    float m = warp_reduce_sum(total) / C;
    float var = 0.0f;
    for (int c = lane; c < C; c += 32) {
        float d = load_value(x, x16, c) - m;
        var += d * d;
    }
    float s = 1.0f / sqrtf(warp_reduce_sum(var) / C + 1e-5f);
    for (int c = lane; c < C; c += 32)
        store_value(out, out16, row + c, (load_value(x, x16, c) - m) * s * weight[c] + bias[c], bf16);
    if (lane == 0) {
        mean[n] = m;
        rstd[n] = s;
    }
}

// dx, backward formula above layernorm_backward_cpu (dx_before, dinp, da, db as there). One warp per row, as the
// forward; inp16 not NULL: the input in 16-bit storage instead of inp (the residual stream).
static __global__ void layernorm_backward_dinp_kernel(float* dinp, const float* dout, const float* inp,
                                                      const bfloat16* inp16, const float* weight, const float* mean,
                                                      const float* rstd, int N, int C, const float* dx_before,
                                                      float* da, float* db) {
    int n = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (n >= N) return;
    size_t row = (size_t)n * C;
    const float* d = dout + row;
    float m = mean[n], s = rstd[n];
    float g_sum = 0.0f, gx_sum = 0.0f;
    for (int c = lane; c < C; c += 32) {
        float g = d[c] * weight[c];
        g_sum += g;
        gx_sum += g * (load_value(inp, inp16, row + c) - m) * s;
    }
    float g_mean = warp_reduce_sum(g_sum) / C, gx_mean = warp_reduce_sum(gx_sum) / C;
    for (int c = lane; c < C; c += 32) {
        float xhat = (load_value(inp, inp16, row + c) - m) * s;
        float dx = dx_before[row + c] + s * (d[c] * weight[c] - g_mean - xhat * gx_mean);
        if (dinp) dinp[row + c] = dx;
        if (da) da[row + c] += dx;
        if (db) db[row + c] += dx;
    }
}

// dw += Σ_rows dout ⊙ x̂, db += Σ_rows dout. A block owns LN_COLS channels and all rows: thread (col, lane)
// sums rows lane, lane + LN_LANES, ... in order, then the LN_LANES partial sums of each channel are added
// pairwise in shared memory (a fixed tree). Every channel is summed by one block in one order: no atomics,
// the same bits every run. A warp reads 4 rows x 32 bytes per step.
static __global__ void layernorm_backward_params_kernel(float* dweight, float* dbias, const float* dout,
                                                        const float* inp, const bfloat16* inp16, const float* mean,
                                                        const float* rstd, int N, int C) {
    __shared__ float sw[LN_LANES][LN_COLS], sb[LN_LANES][LN_COLS];
    int col = threadIdx.x % LN_COLS, lane = threadIdx.x / LN_COLS;
    int c = blockIdx.x * LN_COLS + col;
    float dw = 0.0f, db = 0.0f;
    if (c < C)
        for (int n = lane; n < N; n += LN_LANES) {
            float d = dout[(size_t)n * C + c];
            dw += d * (load_value(inp, inp16, (size_t)n * C + c) - mean[n]) * rstd[n];
            db += d;
        }
    sw[lane][col] = dw;
    sb[lane][col] = db;
    __syncthreads();
    for (int stride = LN_LANES / 2; stride > 0; stride /= 2) {
        if (lane < stride) {
            sw[lane][col] += sw[lane + stride][col];
            sb[lane][col] += sb[lane + stride][col];
        }
        __syncthreads();
    }
    if (lane == 0 && c < C) {
        dweight[c] += sw[0][col];
        dbias[c] += sb[0][col];
    }
}

// ----------------------------------------------------------------------------------------------------
// CUDA launchers: the CPU functions' arguments, as device pointers, and the 16-bit twins (kernels above)

static void layernorm_forward_cuda(float* out, float* mean, float* rstd, const float* inp, const float* weight,
                                   const float* bias, int N, int C, const float* add = NULL, float* sum = NULL,
                                   bool bf16 = false, bfloat16* out16 = NULL, const bfloat16* add16 = NULL,
                                   const bfloat16* inp16 = NULL, bfloat16* sum16 = NULL) {
    if (N == 0 || C == 0) return;
    layernorm_forward_kernel<<<cuda_blocks(N, 8), 256>>>(out, out16, mean, rstd, inp, inp16, weight, bias, N, C, add,
                                                         add16, sum, sum16, bf16);
    cudaCheckLaunch();
}

static void layernorm_backward_cuda(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                                    const float* weight, const float* mean, const float* rstd, int N, int C,
                                    const float* dx_before = NULL, float* da = NULL, float* db = NULL,
                                    const bfloat16* inp16 = NULL) {
    if (N == 0 || C == 0) return;
    if (!dx_before) dx_before = dinp;
    if (dx_before && (dinp || da || db)) {
        layernorm_backward_dinp_kernel<<<cuda_blocks(N, 8), 256>>>(dinp, dout, inp, inp16, weight, mean, rstd, N, C,
                                                                   dx_before, da, db);
        cudaCheckLaunch();
    }
    layernorm_backward_params_kernel<<<cuda_blocks(C, LN_COLS), LN_COLS * LN_LANES>>>(dweight, dbias, dout, inp,
                                                                                      inp16, mean, rstd, N, C);
    cudaCheckLaunch();
}
#endif

// ----------------------------------------------------------------------------------------------------
// by device: the one place that picks the CPU or the CUDA code. The 16-bit twins (the GPU's only), each used
// instead of its fp32 buffer where not NULL: inp16 (the stream normalised), out16 (the output); in the fused pair
// a16 and sum16 (the stream before and after the add), b16 (the block's output added).

static void layernorm_forward(Device d, float* out, float* mean, float* rstd, const float* inp, const float* weight,
                              const float* bias, int N, int C, bool bf16 = false, bfloat16* out16 = NULL,
                              const bfloat16* inp16 = NULL) {
#ifdef __CUDACC__
    if (d == DEV_CUDA)
        return layernorm_forward_cuda(out, mean, rstd, inp, weight, bias, N, C, NULL, NULL, bf16, out16, NULL, inp16);
#endif
    if (out16 || inp16) die("layernorm: 16-bit storage is the GPU's only");
    layernorm_forward_cpu(out, mean, rstd, inp, weight, bias, N, C, NULL, NULL, bf16);
}

static void layernorm_backward(Device d, float* dinp, float* dweight, float* dbias, const float* dout,
                               const float* inp, const float* weight, const float* mean, const float* rstd, int N,
                               int C, const bfloat16* inp16 = NULL) {
#ifdef __CUDACC__
    if (d == DEV_CUDA)
        return layernorm_backward_cuda(dinp, dweight, dbias, dout, inp, weight, mean, rstd, N, C, NULL, NULL, NULL,
                                       inp16);
#endif
    if (inp16) die("layernorm: 16-bit storage is the GPU's only");
    layernorm_backward_cpu(dinp, dweight, dbias, dout, inp, weight, mean, rstd, N, C);
}

// sum = a + b, out = layernorm(sum): the fused pair (N, C)
static void residual_layernorm_forward(Device d, float* sum, float* out, float* mean, float* rstd, const float* a,
                                       const float* b, const float* weight, const float* bias, int N, int C,
                                       bool bf16 = false, bfloat16* out16 = NULL, const bfloat16* b16 = NULL,
                                       const bfloat16* a16 = NULL, bfloat16* sum16 = NULL) {
#ifdef __CUDACC__
    if (d == DEV_CUDA)
        return layernorm_forward_cuda(out, mean, rstd, a, weight, bias, N, C, b, sum, bf16, out16, b16, a16, sum16);
#endif
    if (out16 || b16 || a16 || sum16) die("layernorm: 16-bit storage is the GPU's only");
    layernorm_forward_cpu(out, mean, rstd, a, weight, bias, N, C, b, sum, bf16);
}

// da, db += dsum + (layernorm's dx); dweight, dbias += as layernorm's. dsum: the sum's gradient from its other
// readers, read only (may be NULL: none)
static void residual_layernorm_backward(Device d, float* da, float* db, float* dweight, float* dbias,
                                        const float* dsum, const float* dout, const float* sum, const float* weight,
                                        const float* mean, const float* rstd, int N, int C,
                                        const bfloat16* sum16 = NULL) {
#ifdef __CUDACC__
    if (d == DEV_CUDA)
        return layernorm_backward_cuda(NULL, dweight, dbias, dout, sum, weight, mean, rstd, N, C, dsum, da, db,
                                       sum16);
#endif
    if (sum16) die("layernorm: 16-bit storage is the GPU's only");
    layernorm_backward_cpu(NULL, dweight, dbias, dout, sum, weight, mean, rstd, N, C, dsum, da, db);
}

// ----------------------------------------------------------------------------------------------------
// on the tape

static void layernorm_backward_node(const TapeNode* node) {
    const Tensor *out = node->out, *inp = node->in[0], *w = node->in[1], *b = node->in[2];
    layernorm_backward(out->device, inp->grad, w->grad, b->grad, out->grad, inp->data, w->data, node->saved[0]->data,
                       node->saved[1]->data, node->dims[0], node->dims[1], stored16(inp));
}

// out (N, C) = layernorm(inp (N, C)) with gain weight (C) and bias (C); mean and rstd (N) are saved; inp and out
// in fp32 or 16-bit storage (tensor.h's stored16)
static void layernorm(Tape* tape, Tensor* out, Tensor* mean, Tensor* rstd, Tensor* inp, Tensor* weight,
                      Tensor* bias, int N, int C) {
    layernorm_forward(out->device, out->data, mean->data, rstd->data, inp->data, weight->data, bias->data, N, C,
                      out->bf16, stored16(out), stored16(inp));
    TapeNode node = tape_node("layernorm", layernorm_backward_node, out, {inp, weight, bias}, {mean, rstd}, {N, C});
    tape_push(tape, &node);
}

static void residual_layernorm_backward_node(const TapeNode* node) {
    const Tensor *out = node->out, *sum = node->out2, *a = node->in[0], *b = node->in[1], *w = node->in[2],
                 *bias = node->in[3];
    residual_layernorm_backward(out->device, a->grad, b->grad, w->grad, bias->grad, sum->grad, out->grad, sum->data,
                                w->data, node->saved[0]->data, node->saved[1]->data, node->dims[0], node->dims[1],
                                stored16(sum));
}

// sum (N, C) = a + b (N, C), and out (N, C) = layernorm(sum) with gain weight (C) and bias (C); mean and rstd (N)
// are saved. Both outputs may be read later: sum is the residual stream, out the next matmul's input. Each tensor
// in fp32 or 16-bit storage (tensor.h's stored16).
static void residual_layernorm(Tape* tape, Tensor* sum, Tensor* out, Tensor* mean, Tensor* rstd, Tensor* a,
                               Tensor* b, Tensor* weight, Tensor* bias, int N, int C) {
    if (sum->bf16 != out->bf16) die("residual_layernorm: the stream and the normalised output must be stored alike");
    residual_layernorm_forward(out->device, sum->data, out->data, mean->data, rstd->data, a->data, b->data,
                               weight->data, bias->data, N, C, out->bf16, stored16(out), stored16(b), stored16(a),
                               stored16(sum));
    TapeNode node = tape_node("residual_layernorm", residual_layernorm_backward_node, out, {a, b, weight, bias},
                              {mean, rstd}, {N, C});
    node.out2 = sum;
    tape_push(tape, &node);
}
