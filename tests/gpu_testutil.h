// tests/gpu_testutil.h: what the GPU tests (tests/test_gpu*.cu, built by nvcc) share: the check that skips a
// test visibly where there is no GPU, copies between host vectors and device buffers, and the closeness test
// used to compare a kernel with its CPU reference.
#pragma once
#include "testutil.h"
#include "../tensor.h"

// True when a CUDA GPU can be used (the test then runs); false when the machine has none (the test skips, saying
// so). CUDA installed but refusing (a driver older than the build needs) fails the test with CUDA's error: that
// is not "no GPU" (tensor.h's cuda_device_count tells the two apart).
static bool gpu_check_available() {
    char err[ERR_LEN] = "";
    int gpus = cuda_device_count(err);
    if (gpus < 0) FAIL_CHECK(err);
    return gpus > 0;
}
static bool gpu_available() {
    static int available = -1;
    if (available < 0) available = gpu_check_available();
    return available == 1;
}

static float* to_device(const std::vector<float>& h) {
    float* d = NULL;
    cudaCheck(cudaMalloc(&d, sizeof(float) * (h.size() ? h.size() : 1)));
    cudaCheck(cudaMemcpy(d, h.data(), sizeof(float) * h.size(), cudaMemcpyHostToDevice));
    return d;
}

static int* to_device_int(const std::vector<int>& h) {
    int* d = NULL;
    cudaCheck(cudaMalloc(&d, sizeof(int) * (h.size() ? h.size() : 1)));
    cudaCheck(cudaMemcpy(d, h.data(), sizeof(int) * h.size(), cudaMemcpyHostToDevice));
    return d;
}

static std::vector<float> to_host(const float* d, size_t n) {
    std::vector<float> h(n);
    cudaCheck(cudaMemcpy(h.data(), d, sizeof(float) * n, cudaMemcpyDeviceToHost));
    return h;
}

static double rms(const float* x, size_t n) {
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += (double)x[i] * x[i];
    return n ? sqrt(s / n) : 0.0;
}

// Every entry within tol · (|ref_i| + rms(ref)): relative where a value is large, relative to the typical
// size where a value is near zero (a sum that cancels has an error of the size of its terms, not of itself).
// Reports the worst entry, so a failure says where and by how much.
static void check_close(const char* what, const std::vector<float>& got, const std::vector<float>& ref, double tol) {
    REQUIRE(got.size() == ref.size());
    double scale = rms(ref.data(), ref.size()), worst = 0.0;
    size_t worst_i = 0;
    for (size_t i = 0; i < ref.size(); i++) {
        double excess = fabs((double)got[i] - ref[i]) / (fabs((double)ref[i]) + scale + 1e-30);
        if (isnan(excess)) excess = INFINITY;  // a NaN on either side fails
        if (excess > worst) {
            worst = excess;
            worst_i = i;
        }
    }
    CHECK_MESSAGE(worst <= tol, std::string(what) << ": worst entry " << worst_i << " got " << got[worst_i] << " expected "
                                     << ref[worst_i] << " (error " << worst << " of |ref| + rms, tolerance " << tol
                                     << ")");
}

// bit for bit (for results computed in the same order on both sides, and for determinism)
static void check_bitwise(const char* what, const std::vector<float>& got, const std::vector<float>& ref) {
    REQUIRE(got.size() == ref.size());
    size_t differ = 0, first = 0;
    for (size_t i = 0; i < ref.size(); i++)
        if (memcmp(&got[i], &ref[i], sizeof(float)) != 0 && differ++ == 0) first = i;
    CHECK_MESSAGE(differ == 0, std::string(what) << ": " << differ << " entries differ in their bits, the first at " << first
                                    << ": " << (differ ? got[first] : 0.0f) << " vs " << (differ ? ref[first] : 0.0f));
}

// 16-bit storage (model.h's gpt2_storage16): device buffers of bf16 values
static bfloat16* device_bf16(size_t n) {
    bfloat16* d = NULL;
    cudaCheck(cudaMalloc(&d, sizeof(bfloat16) * n));
    return d;
}

// h's values rounded to bf16, in a new 16-bit device buffer
static bfloat16* bf16_to_device(const std::vector<float>& h) {
    std::vector<bfloat16> b(h.size());
    for (size_t i = 0; i < h.size(); i++) b[i] = bf16_from_float(h[i]);
    bfloat16* d = device_bf16(h.size() ? h.size() : 1);
    cudaCheck(cudaMemcpy(d, b.data(), sizeof(bfloat16) * b.size(), cudaMemcpyHostToDevice));
    return d;
}

static std::vector<float> bf16_to_host(const bfloat16* d, size_t n) {
    std::vector<bfloat16> h(n);
    cudaCheck(cudaMemcpy(h.data(), d, sizeof(bfloat16) * n, cudaMemcpyDeviceToHost));
    std::vector<float> f(n);
    for (size_t i = 0; i < n; i++) f[i] = bf16_to_float(h[i]);
    return f;
}

// A tensor on the GPU holding bf16 values over the given buffers (any may be NULL), as the ops see the model's
static Tensor bf16_tensor(float* data, bfloat16* data16, float* grad) {
    Tensor t;
    memset(&t, 0, sizeof(t));
    t.device = DEV_CUDA;
    t.data = data;
    t.data16 = data16;
    t.grad = grad;
    t.bf16 = true;
    t.name = "test";
    return t;
}
