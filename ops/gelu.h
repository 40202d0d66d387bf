// ops/gelu.h: the MLP's nonlinearity, GELU in GPT-2's tanh form.
// Flow: matmul (C -> 4C) -> gelu -> matmul (4C -> C).
#pragma once
#include "../tensor.h"

#define GELU_SCALE 0.7978845608028654f  // sqrt(2/π)

// ----------------------------------------------------------------------------------------------------
// the formulas, shared by the CPU loops and the CUDA kernels

// y = ½ x (1 + tanh(u)),  u = sqrt(2/π) (x + 0.044715 x³); tanh by exp (numerics.h), which the CPU vectorizes
static HOST_DEVICE FORCE_INLINE float gelu_value(float x) {
    float u = GELU_SCALE * (x + 0.044715f * x * x * x);
    return 0.5f * x * (1.0f + tanh_by_exp(u));
}

// dy/dx = ½ (1 + tanh u) + ½ x (1 − tanh² u) · sqrt(2/π) (1 + 3 · 0.044715 x²)
static HOST_DEVICE FORCE_INLINE float gelu_slope(float x) {
    float u = GELU_SCALE * (x + 0.044715f * x * x * x);
    float th = tanh_by_exp(u);
    float du_dx = GELU_SCALE * (1.0f + 3.0f * 0.044715f * x * x);
    return 0.5f * (1.0f + th) + 0.5f * x * (1.0f - th * th) * du_dx;
}

// ----------------------------------------------------------------------------------------------------
// CPU reference

// bf16: out holds bf16 values, rounded in a pass of their own (a test inside the vectorized loop costs the fp32
// path a third of its speed; the kernel below rounds as it stores, where the test costs nothing)
static void gelu_forward_cpu(float* out, const float* inp, size_t n, bool bf16 = false) {
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; i++) out[i] = gelu_value(inp[i]);
    if (bf16) device_round_bf16(DEV_CPU, out, out, n);
}

// dinp += dout · dy/dx (gelu_slope)
static void gelu_backward_cpu(float* dinp, const float* inp, const float* dout, size_t n) {
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; i++) dinp[i] += dout[i] * gelu_slope(inp[i]);
}

#ifdef __CUDACC__
// ----------------------------------------------------------------------------------------------------
// CUDA kernels (the same formulas) and launchers

// Four elements per thread, read and written with 128-bit accesses (float4: one load instruction and one memory
// transaction per four floats instead of four), the last n % 4 one at a time by the thread after the last group.
// Every pointer must be 16-byte aligned: the arenas and device_malloc align to 256 bytes (the launchers check).
static __global__ void gelu_forward_kernel(float* out, const float* inp, size_t n, bool bf16) {
    size_t i = 4 * ((size_t)blockIdx.x * blockDim.x + threadIdx.x);
    if (i + 4 <= n) {
        float4 x = *(const float4*)(inp + i);
        *(float4*)(out + i) = make_float4(as_stored(gelu_value(x.x), bf16), as_stored(gelu_value(x.y), bf16),
                                          as_stored(gelu_value(x.z), bf16), as_stored(gelu_value(x.w), bf16));
    } else {
        for (; i < n; i++) out[i] = as_stored(gelu_value(inp[i]), bf16);
    }
}

static __global__ void gelu_backward_kernel(float* dinp, const float* inp, const float* dout, size_t n) {
    size_t i = 4 * ((size_t)blockIdx.x * blockDim.x + threadIdx.x);
    if (i + 4 <= n) {
        float4 x = *(const float4*)(inp + i), d = *(const float4*)(dout + i), g = *(const float4*)(dinp + i);
        *(float4*)(dinp + i) = make_float4(g.x + d.x * gelu_slope(x.x), g.y + d.y * gelu_slope(x.y),
                                           g.z + d.z * gelu_slope(x.z), g.w + d.w * gelu_slope(x.w));
    } else {
        for (; i < n; i++) dinp[i] += dout[i] * gelu_slope(inp[i]);
    }
}

// 16-bit storage (the MLP's hidden layer on the GPU at bf16: model.h): fch and gelu(fch) in bf16, one element a
// thread (2-byte accesses, coalesced across the warp); the gradients stay fp32
static __global__ void gelu_forward_bf16_kernel(bfloat16* out, const bfloat16* inp, size_t n) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i] = bf16_from_float(gelu_value(bf16_to_float(inp[i])));
}
static __global__ void gelu_backward_bf16_kernel(float* dinp, const bfloat16* inp, const float* dout, size_t n) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) dinp[i] += dout[i] * gelu_slope(bf16_to_float(inp[i]));
}

static void gelu_forward_cuda(float* out, const float* inp, size_t n, bool bf16 = false) {
    if (n == 0) return;
    if (!aligned16(out) || !aligned16(inp)) die("gelu_forward_cuda: buffers not 16-byte aligned (float4 accesses)");
    gelu_forward_kernel<<<cuda_blocks((n + 3) / 4, 256), 256>>>(out, inp, n, bf16);
    cudaCheckLaunch();
}

static void gelu_backward_cuda(float* dinp, const float* inp, const float* dout, size_t n) {
    if (n == 0) return;
    if (!aligned16(dinp) || !aligned16(inp) || !aligned16(dout))
        die("gelu_backward_cuda: buffers not 16-byte aligned (float4 accesses)");
    gelu_backward_kernel<<<cuda_blocks((n + 3) / 4, 256), 256>>>(dinp, inp, dout, n);
    cudaCheckLaunch();
}

static void gelu_forward_bf16_cuda(bfloat16* out, const bfloat16* inp, size_t n) {
    if (n == 0) return;
    gelu_forward_bf16_kernel<<<cuda_blocks(n, 256), 256>>>(out, inp, n);
    cudaCheckLaunch();
}

static void gelu_backward_bf16_cuda(float* dinp, const bfloat16* inp, const float* dout, size_t n) {
    if (n == 0) return;
    gelu_backward_bf16_kernel<<<cuda_blocks(n, 256), 256>>>(dinp, inp, dout, n);
    cudaCheckLaunch();
}
#endif

// ----------------------------------------------------------------------------------------------------
// by device: the one place that picks the CPU or the CUDA code; out16 and inp16 not NULL: 16-bit storage (the GPU's
// only: the CPU keeps bf16 values in fp32 buffers), in place of out and inp

static void gelu_forward(Device d, float* out, const float* inp, size_t n, bool bf16 = false, bfloat16* out16 = NULL,
                         const bfloat16* inp16 = NULL) {
#ifdef __CUDACC__
    if (d == DEV_CUDA && out16) return gelu_forward_bf16_cuda(out16, inp16, n);
    if (d == DEV_CUDA) return gelu_forward_cuda(out, inp, n, bf16);
#endif
    if (out16) die("gelu: 16-bit storage is the GPU's only");
    gelu_forward_cpu(out, inp, n, bf16);
}

static void gelu_backward(Device d, float* dinp, const float* inp, const float* dout, size_t n,
                          const bfloat16* inp16 = NULL) {
#ifdef __CUDACC__
    if (d == DEV_CUDA && inp16) return gelu_backward_bf16_cuda(dinp, inp16, dout, n);
    if (d == DEV_CUDA) return gelu_backward_cuda(dinp, inp, dout, n);
#endif
    if (inp16) die("gelu: 16-bit storage is the GPU's only");
    gelu_backward_cpu(dinp, inp, dout, n);
}

// ----------------------------------------------------------------------------------------------------
// on the tape

// (a tensor in 16-bit storage alone has data NULL and its values in data16: tensor.h)
static void gelu_backward_node(const TapeNode* node) {
    const Tensor* inp = node->in[0];
    gelu_backward(node->out->device, inp->grad, inp->data, node->out->grad, (size_t)node->dims[0] * node->dims[1],
                  stored16(inp));
}

// out (N, C) = gelu(inp (N, C)), elementwise; both in fp32 storage or both in 16-bit storage
static void gelu(Tape* tape, Tensor* out, Tensor* inp, int N, int C) {
    if ((out->data == NULL) != (inp->data == NULL)) die("gelu: %s and %s in different storage", out->name, inp->name);
    gelu_forward(out->device, out->data, inp->data, (size_t)N * C, out->bf16, stored16(out),
                 stored16(inp));
    TapeNode node = tape_node("gelu", gelu_backward_node, out, {inp}, {}, {N, C});
    tape_push(tape, &node);
}
