// ops/residual.h: the residual connection, out = a + b: each block adds its output to the stream.
// The model runs every add fused with the layernorm that reads its result (residual_layernorm, ops/layernorm.h);
// this plain add is the reference that fusion is tested against (tests/opcases.h) and timed against (make bench).
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

#ifdef __CUDACC__
// ----------------------------------------------------------------------------------------------------
// CUDA kernels (one thread per element) and launchers

static __global__ void residual_forward_kernel(float* out, const float* a, const float* b, size_t n) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i] = a[i] + b[i];
}

// backward formula above
static __global__ void residual_backward_kernel(float* da, float* db, const float* dout, size_t n) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    if (da) da[i] += dout[i];
    if (db) db[i] += dout[i];
}

static void residual_forward_cuda(float* out, const float* a, const float* b, size_t n) {
    if (n == 0) return;
    residual_forward_kernel<<<cuda_blocks(n, 256), 256>>>(out, a, b, n);
    cudaCheckLaunch();
}

static void residual_backward_cuda(float* da, float* db, const float* dout, size_t n) {
    if (n == 0) return;
    residual_backward_kernel<<<cuda_blocks(n, 256), 256>>>(da, db, dout, n);
    cudaCheckLaunch();
}
#endif

// ----------------------------------------------------------------------------------------------------
// by device: the one place that picks the CPU or the CUDA code

static void residual_forward(Device d, float* out, const float* a, const float* b, size_t n) {
#ifdef __CUDACC__
    if (d == DEV_CUDA) return residual_forward_cuda(out, a, b, n);
#endif
    residual_forward_cpu(out, a, b, n);
}

static void residual_backward(Device d, float* da, float* db, const float* dout, size_t n) {
#ifdef __CUDACC__
    if (d == DEV_CUDA) return residual_backward_cuda(da, db, dout, n);
#endif
    residual_backward_cpu(da, db, dout, n);
}
