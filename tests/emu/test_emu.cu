// tests/emu/test_emu.cu: the CUDA emulation checks itself. Deliberately broken kernels and calls (a missing
// __syncthreads before a shared-memory read, a write past a buffer, a wrong lda, a block of 2048 threads, a
// warp intrinsic waiting for a lane that returned, a deadlock, a host pointer given to a kernel, a copy in the
// wrong direction) must each be caught; correct ones (barriers that returned threads leave, per-block shared
// memory, atomics, the work queue) must behave as on a GPU. Built only into the emulated test binary
// (build/emu/*/test): on a real GPU these kernels are undefined behaviour, not tests.
#include <sys/wait.h>
#include <unistd.h>
#include <string>
#include <functional>
#include <cublasLt.h>
#include "../gpu_testutil.h"
#include "../../ops/matmul.h"

// every error these tests provoke is expected: keep the emulation's explanations off stderr, and forget the
// error afterwards so the next test starts clean
struct ExpectErrors {
    ExpectErrors() { emu::set_quiet(true); }
    ~ExpectErrors() {
        cudaDeviceSynchronize();
        emu::clear_errors();
        emu::set_quiet(false);
    }
};

static bool message_has(const char* part) { return strstr(emu::last_message(), part) != NULL; }

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
// A sanitizer stops the process at what it finds: run the broken kernel in a child and read what it said.
static std::string run_in_child(void (*fn)()) {
    char path[] = "/tmp/emu_child_XXXXXX";
    int fd = mkstemp(path);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fd, 2);
        fn();
        _exit(0);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    std::string text;
    char buf[4096];
    lseek(fd, 0, SEEK_SET);
    for (ssize_t r; (r = read(fd, buf, sizeof(buf))) > 0;) text.append(buf, r);
    close(fd);
    unlink(path);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) text += "\n(the child exited normally)";
    return text;
}
#endif

// ----------------------------------------------------------------------------------------------------
// shared memory and barriers

// out[b·256 + t] = in[b·256 + 255 − t] through shared memory; without the barrier a thread may read its partner's
// slot before the partner wrote it
static __global__ void reverse_block_kernel(float* out, const float* in, int with_barrier) {
    __shared__ float tile[256];
    int t = threadIdx.x;
    tile[t] = in[blockIdx.x * 256 + t];
    if (with_barrier) __syncthreads();
    out[blockIdx.x * 256 + t] = tile[255 - t];
}

// out[b·256 + t] = in[b·256 + t − 1] (0 for t = 0): the neighbour below, which runs first in index order
static __global__ void shift_block_kernel(float* out, const float* in, int with_barrier) {
    __shared__ float tile[256];
    int t = threadIdx.x;
    tile[t] = in[blockIdx.x * 256 + t];
    if (with_barrier) __syncthreads();
    out[blockIdx.x * 256 + t] = t > 0 ? tile[t - 1] : 0.0f;
}

static std::vector<float> run_tile_kernel(void (*kernel)(float*, const float*, int), int with_barrier, int blocks) {
    std::vector<float> in(256 * blocks);
    for (size_t i = 0; i < in.size(); i++) in[i] = (float)i;
    float *d_in = to_device(in), *d_out = to_device(in);
    emu_launch(__FILE__, __LINE__, "tile_kernel", kernel, emu::config(blocks, 256), d_out, d_in, with_barrier);
    cudaCheck(cudaGetLastError());
    std::vector<float> out = to_host(d_out, in.size());
    cudaCheck(cudaFree(d_in));
    cudaCheck(cudaFree(d_out));
    return out;
}

static size_t count_wrong(const std::vector<float>& out, bool reverse) {
    size_t wrong = 0;
    for (size_t i = 0; i < out.size(); i++) {
        size_t b = i / 256, t = i % 256;
        float want = reverse ? (float)(b * 256 + 255 - t) : t > 0 ? (float)(i - 1) : 0.0f;
        wrong += !(out[i] == want);
    }
    return wrong;
}

#if defined(__SANITIZE_THREAD__)
static void reverse_without_barrier() { run_tile_kernel(reverse_block_kernel, 0, 1); }
static void shift_without_barrier() { run_tile_kernel(shift_block_kernel, 0, 1); }
#endif

TEST_CASE("emulation: a missing __syncthreads before a shared-memory read is caught") {
#if defined(__SANITIZE_THREAD__)
    // ThreadSanitizer sees every CUDA thread as a thread: the unordered write and read of `tile` are a data race
    for (void (*broken)() : {reverse_without_barrier, shift_without_barrier}) {
        std::string report = run_in_child(broken);
        CHECK_MESSAGE(report.find("ThreadSanitizer: data race") != std::string::npos, report);
        CHECK_MESSAGE(report.find("_block_kernel") != std::string::npos, report);
    }
#endif
    // with the barrier both kernels are exact
    CHECK(count_wrong(run_tile_kernel(reverse_block_kernel, 1, 2), true) == 0);
    CHECK(count_wrong(run_tile_kernel(shift_block_kernel, 1, 2), false) == 0);
#if !defined(__SANITIZE_THREAD__)
    // without it, threads run in index order in even blocks and in reverse in odd ones, and shared memory starts
    // as NaN: whichever way the missing dependency points, some thread reads a slot not yet written
    std::vector<float> reversed = run_tile_kernel(reverse_block_kernel, 0, 2);
    CHECK(count_wrong(reversed, true) > 0);
    std::vector<float> shifted = run_tile_kernel(shift_block_kernel, 0, 2);
    size_t wrong_block1 = 0;
    for (size_t i = 256; i < 512; i++) wrong_block1 += isnan(shifted[i]);
    CHECK(wrong_block1 > 0);  // block 1 runs its threads from the top: each reads below before it was written
#endif
}

// shared memory belongs to its block: block 1 reads what it never wrote (poisoned, NaN), not block 0's values
static __global__ void shared_per_block_kernel(float* out) {
    __shared__ float slot[32];
    if (blockIdx.x == 0) slot[threadIdx.x] = 1.0f;
    __syncthreads();
    out[blockIdx.x * 32 + threadIdx.x] = slot[threadIdx.x];
}

TEST_CASE("emulation: __shared__ memory is per block and starts undefined") {
    float* d_out = to_device(std::vector<float>(64, 0.0f));
    shared_per_block_kernel<<<2, 32>>>(d_out);
    cudaCheck(cudaGetLastError());
    std::vector<float> out = to_host(d_out, 64);
    for (int i = 0; i < 32; i++) CHECK(out[i] == 1.0f);
    for (int i = 32; i < 64; i++) CHECK(isnan(out[i]));
    cudaCheck(cudaFree(d_out));
}

// threads that return early leave the barrier: the others still pass it
static __global__ void early_return_kernel(int* out) {
    __shared__ int seen[64];
    int t = threadIdx.x;
    if (t >= 40) return;
    seen[t] = t;
    __syncthreads();
    out[t] = seen[39 - t];
}

TEST_CASE("emulation: a thread that has returned leaves __syncthreads") {
    int* d_out = to_device_int(std::vector<int>(40, -1));
    early_return_kernel<<<1, 64>>>(d_out);
    cudaCheck(cudaGetLastError());
    std::vector<int> out(40);
    cudaCheck(cudaMemcpy(out.data(), d_out, sizeof(int) * 40, cudaMemcpyDeviceToHost));
    for (int t = 0; t < 40; t++) CHECK(out[t] == 39 - t);
    cudaCheck(cudaFree(d_out));
}

// dynamic shared memory: exactly the launch's bytes, per block
static __global__ void dynamic_shared_kernel(float* out, int n) {
    extern __shared__ float buf[];
    for (int i = threadIdx.x; i < n; i += blockDim.x) buf[i] = (float)(i % 2 + blockIdx.x);  // sums stay exact in float
    __syncthreads();
    float s = 0.0f;
    for (int i = 0; i < n; i++) s += buf[i];
    if (threadIdx.x == 0) out[blockIdx.x] = s;
}

TEST_CASE("emulation: dynamic shared memory, and the 48 KiB / 227 KiB limits of a launch") {
    float* d_out = to_device(std::vector<float>(3, 0.0f));
    int n = 1000;
    dynamic_shared_kernel<<<3, 128, n * sizeof(float)>>>(d_out, n);
    cudaCheck(cudaGetLastError());
    std::vector<float> out = to_host(d_out, 3);
    for (int b = 0; b < 3; b++) CHECK(out[b] == (float)(n / 2 + n * b));
    ExpectErrors expect;
    int big = 60 * 1024 / (int)sizeof(float);  // 60 KiB: more than a kernel gets without opting in
    dynamic_shared_kernel<<<1, 128, big * sizeof(float)>>>(d_out, big);
    CHECK(cudaGetLastError() == cudaErrorInvalidValue);
    CHECK(message_has("opt in"));
    CHECK(cudaFuncSetAttribute(dynamic_shared_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, 64 * 1024) ==
          cudaSuccess);
    dynamic_shared_kernel<<<1, 128, big * sizeof(float)>>>(d_out, big);
    CHECK(cudaGetLastError() == cudaSuccess);
    CHECK(to_host(d_out, 1)[0] == (float)(big / 2));
    CHECK(cudaFuncSetAttribute(dynamic_shared_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, 228 * 1024) ==
          cudaErrorInvalidValue);
    cudaCheck(cudaFree(d_out));
}

// ----------------------------------------------------------------------------------------------------
// launch limits

static __global__ void store_index_kernel(int* out) {
    out[blockIdx.x * blockDim.x + threadIdx.x] = blockIdx.x * blockDim.x + threadIdx.x;
}

TEST_CASE("emulation: a launch the hardware refuses fails the same way (2048 threads, grid limits)") {
    int* d_out = to_device_int(std::vector<int>(4096, 0));
    store_index_kernel<<<2, 1024>>>(d_out);  // the largest block
    CHECK(cudaGetLastError() == cudaSuccess);
    ExpectErrors expect;
    store_index_kernel<<<1, 2048>>>(d_out);
    CHECK(cudaGetLastError() == cudaErrorInvalidConfiguration);
    CHECK(message_has("2048 threads"));
    CHECK(cudaGetLastError() == cudaSuccess);  // cudaGetLastError clears a launch error, as on a GPU
    store_index_kernel<<<dim3(1, 65536), 32>>>(d_out);
    CHECK(cudaGetLastError() == cudaErrorInvalidConfiguration);
    store_index_kernel<<<1, dim3(1, 1, 65)>>>(d_out);
    CHECK(cudaGetLastError() == cudaErrorInvalidConfiguration);
    store_index_kernel<<<0, 32>>>(d_out);
    CHECK(cudaGetLastError() == cudaErrorInvalidConfiguration);
    cudaCheck(cudaFree(d_out));
}

// ----------------------------------------------------------------------------------------------------
// memory errors

static __global__ void write_past_end_kernel(float* out, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i <= n) out[i] = 1.0f;  // should be i < n
}

#if defined(__SANITIZE_ADDRESS__)
static void write_past_end() {
    float* d = NULL;
    cudaMalloc(&d, 100 * sizeof(float));
    write_past_end_kernel<<<1, 128>>>(d, 100);
    cudaDeviceSynchronize();
}
#endif

TEST_CASE("emulation: a kernel that writes past its buffer is caught") {
#if defined(__SANITIZE_ADDRESS__)
    std::string report = run_in_child(write_past_end);
    CHECK_MESSAGE(report.find("AddressSanitizer: heap-buffer-overflow") != std::string::npos, report);
#else
    ExpectErrors expect;
    float* d = NULL;
    cudaCheck(cudaMalloc(&d, 100 * sizeof(float)));
    write_past_end_kernel<<<1, 128>>>(d, 100);
    CHECK(cudaGetLastError() == cudaSuccess);        // the launch itself was fine; the fault shows when it runs
    CHECK(cudaDeviceSynchronize() == cudaErrorIllegalAddress);
    CHECK(message_has("wrote outside the 400-byte device buffer"));
    emu::clear_errors();
    cudaCheck(cudaFree(d));
#endif
}

TEST_CASE("emulation: a host pointer given to a kernel is caught") {
    ExpectErrors expect;
    std::vector<int> host(64);
    store_index_kernel<<<1, 64>>>(host.data());
    CHECK(cudaDeviceSynchronize() == cudaErrorIllegalAddress);
    CHECK(message_has("argument 1"));
    CHECK(message_has("is not device memory"));
}

TEST_CASE("emulation: cudaMemcpy checks that the direction matches where the pointers live") {
    ExpectErrors expect;
    std::vector<float> host(10, 1.0f), back(10, 0.0f);
    float* d = to_device(host);
    CHECK(cudaMemcpy(host.data(), back.data(), 40, cudaMemcpyHostToDevice) == cudaErrorInvalidValue);  // dst is host
    CHECK(message_has("destination"));
    CHECK(cudaMemcpy(back.data(), d, 40, cudaMemcpyHostToDevice) == cudaErrorInvalidValue);  // swapped arguments
    CHECK(cudaMemcpy(back.data(), d, 44, cudaMemcpyDeviceToHost) == cudaErrorInvalidValue);  // past the buffer
    CHECK(message_has("run past the end"));
    CHECK(cudaMemcpy(back.data(), d, 40, cudaMemcpyDeviceToHost) == cudaSuccess);
    CHECK(back[9] == 1.0f);
    CHECK(cudaFree(host.data()) == cudaErrorInvalidValue);  // not device memory
    CHECK(cudaFree(d + 1) == cudaErrorInvalidValue);        // not the start of an allocation
    cudaCheck(cudaFree(d));
}

TEST_CASE("emulation: new device memory is all ones (NaN as float), not zeros") {
    float* d = NULL;
    cudaCheck(cudaMalloc(&d, 16 * sizeof(float)));
    std::vector<float> h = to_host(d, 16);
    for (float x : h) CHECK(isnan(x));
    cudaCheck(cudaFree(d));
}

// ----------------------------------------------------------------------------------------------------
// warps

static __global__ void warp_sum_kernel(float* out, const float* in) {
    float v = in[threadIdx.x];
    for (int offset = 16; offset > 0; offset /= 2) v += __shfl_xor_sync(0xffffffffu, v, offset);
    unsigned odd = __ballot_sync(0xffffffffu, threadIdx.x % 2);
    int any = __any_sync(0xffffffffu, threadIdx.x % 32 == 7), all = __all_sync(0xffffffffu, threadIdx.x % 32 < 31);
    float from_lane3 = __shfl_sync(0xffffffffu, in[threadIdx.x], 3);
    float up = __shfl_up_sync(0xffffffffu, in[threadIdx.x], 1), down = __shfl_down_sync(0xffffffffu, in[threadIdx.x], 1);
    out[threadIdx.x] = v;
    out[64 + threadIdx.x] = (float)(odd == 0xaaaaaaaau) + 2.0f * any + 4.0f * all;
    out[128 + threadIdx.x] = from_lane3;
    out[192 + threadIdx.x] = up;
    out[256 + threadIdx.x] = down;
}

TEST_CASE("emulation: warp shuffles, ballots and votes exchange values among the 32 lanes of each warp") {
    std::vector<float> in(64);
    for (int i = 0; i < 64; i++) in[i] = (float)(i + 1);
    float *d_in = to_device(in), *d_out = to_device(std::vector<float>(320, 0.0f));
    warp_sum_kernel<<<1, 64>>>(d_out, d_in);
    cudaCheck(cudaGetLastError());
    std::vector<float> out = to_host(d_out, 320);
    for (int t = 0; t < 64; t++) {
        int w = t / 32, lane = t % 32;
        CAPTURE(t);
        CHECK(out[t] == (float)(32 * 32 * w + 32 * 33 / 2));                       // the warp's sum, every lane
        CHECK(out[64 + t] == 3.0f);                                                // ballot and any; not all
        CHECK(out[128 + t] == in[w * 32 + 3]);
        CHECK(out[192 + t] == (lane == 0 ? in[t] : in[t - 1]));                    // lane 0 keeps its own
        CHECK(out[256 + t] == (lane == 31 ? in[t] : in[t + 1]));
    }
    cudaCheck(cudaFree(d_in));
    cudaCheck(cudaFree(d_out));
}

// lanes 16-31 return, then the full-mask shuffle waits for them: undefined on a GPU
static __global__ void shuffle_after_return_kernel(float* out) {
    if (threadIdx.x >= 16) return;
    out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, 1.0f, 1);
}

// lane 0 waits at the barrier for lanes that wait in a shuffle for lane 0
static __global__ void deadlock_kernel(float* out) {
    if (threadIdx.x == 0) __syncthreads();
    else out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, 1.0f, 1);
}

TEST_CASE("emulation: a warp intrinsic waiting for a returned lane, and a deadlock, stop the launch") {
    ExpectErrors expect;
    float* d_out = to_device(std::vector<float>(32, 0.0f));
    shuffle_after_return_kernel<<<1, 32>>>(d_out);
    CHECK(cudaDeviceSynchronize() == cudaErrorLaunchFailure);
    CHECK(message_has("returned"));
    emu::clear_errors();
    deadlock_kernel<<<1, 32>>>(d_out);
    CHECK(cudaDeviceSynchronize() == cudaErrorLaunchFailure);
    CHECK(message_has("deadlock"));
    emu::clear_errors();
    store_index_kernel<<<1, 32>>>((int*)d_out);  // the emulation runs again after the faults were cleared
    CHECK(cudaDeviceSynchronize() == cudaSuccess);
    cudaCheck(cudaFree(d_out));
}

// ----------------------------------------------------------------------------------------------------
// atomics, the queue, the libraries

#if defined(__SANITIZE_THREAD__)
// every thread adds into one global counter without an atomic: right by luck when the emulation runs the threads
// one after another, lost updates on a GPU; ThreadSanitizer calls it a race
static __global__ void unguarded_sum_kernel(int* total) { *total += 1; }
static void unguarded_sum() {
    int* d = to_device_int(std::vector<int>(1, 0));
    unguarded_sum_kernel<<<1, 64>>>(d);
    cudaDeviceSynchronize();
}
TEST_CASE("emulation: a non-atomic update of global memory by many threads is caught (ThreadSanitizer)") {
    std::string report = run_in_child(unguarded_sum);
    CHECK_MESSAGE(report.find("ThreadSanitizer: data race") != std::string::npos, report);
    CHECK_MESSAGE(report.find("unguarded_sum_kernel") != std::string::npos, report);
}
#endif

static __global__ void count_kernel(int* counter, float* sum) {
    atomicAdd(counter, 1);
    atomicAdd(sum, 0.5f);
}

TEST_CASE("emulation: atomics are atomic across threads and blocks") {
    int* d_count = to_device_int(std::vector<int>(1, 0));
    float* d_sum = to_device(std::vector<float>(1, 0.0f));
    count_kernel<<<7, 96>>>(d_count, d_sum);
    cudaCheck(cudaGetLastError());
    int count = 0;
    cudaCheck(cudaMemcpy(&count, d_count, sizeof(int), cudaMemcpyDeviceToHost));
    CHECK(count == 7 * 96);
    CHECK(to_host(d_sum, 1)[0] == 0.5f * 7 * 96);
    cudaCheck(cudaFree(d_count));
    cudaCheck(cudaFree(d_sum));
}

TEST_CASE("emulation: launches are queued and run when the host waits, in order") {
    if (getenv("EMU_SYNC")) { MESSAGE("EMU_SYNC is set: every launch runs at once"); return; }
    int* d = to_device_int(std::vector<int>(64, 0));
    cudaCheck(cudaDeviceSynchronize());
    size_t before = emu::queued_work();
    store_index_kernel<<<2, 32>>>(d);
    cudaCheck(cudaMemsetAsync(d, 0, 32 * sizeof(int)));
    CHECK(emu::queued_work() == before + 2);
    std::vector<int> h(64);
    cudaCheck(cudaMemcpy(h.data(), d, sizeof(int) * 64, cudaMemcpyDeviceToHost));  // waits for both, in order
    CHECK(emu::queued_work() == 0);
    for (int i = 0; i < 64; i++) CHECK(h[i] == (i < 32 ? 0 : i));
    cudaCheck(cudaFree(d));
}

TEST_CASE("emulation: cuBLAS refuses a wrong lda, and computes column-major op(A)·op(B) with alpha and beta") {
    cublasHandle_t h = NULL;
    REQUIRE(cublasCreate(&h) == CUBLAS_STATUS_SUCCESS);
    // column-major A (2 x 3) = [1 3 5; 2 4 6], B (3 x 2) = [1 0; 0 1; 1 1], C (2 x 2) = 10
    std::vector<float> A = {1, 2, 3, 4, 5, 6}, B = {1, 0, 1, 0, 1, 1}, C = {10, 10, 10, 10};
    float *d_A = to_device(A), *d_B = to_device(B), *d_C = to_device(C);
    float alpha = 2.0f, beta = 0.5f;
    CHECK(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, 2, 2, 3, &alpha, d_A, 2, d_B, 3, &beta, d_C, 2) == CUBLAS_STATUS_SUCCESS);
    std::vector<float> got = to_host(d_C, 4);  // A·B = [6 8; 8 10]
    CHECK(got[0] == 2 * 6 + 5);
    CHECK(got[1] == 2 * 8 + 5);
    CHECK(got[2] == 2 * 8 + 5);
    CHECK(got[3] == 2 * 10 + 5);
    ExpectErrors expect;
    CHECK(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, 2, 2, 3, &alpha, d_A, 1, d_B, 3, &beta, d_C, 2) ==
          CUBLAS_STATUS_INVALID_VALUE);  // lda 1 < m = 2
    CHECK(message_has("lda"));
    CHECK(cublasSgemm(h, CUBLAS_OP_T, CUBLAS_OP_N, 3, 2, 2, &alpha, d_A, 1, d_B, 2, &beta, d_C, 3) ==
          CUBLAS_STATUS_INVALID_VALUE);  // op(A) = Aᵀ: A is stored k x m = 2 x 3, so lda >= 2
    CHECK(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, 2, 2, 3, &alpha, d_A, 2, d_B, 3, &beta, d_C, 1) ==
          CUBLAS_STATUS_INVALID_VALUE);  // ldc 1 < m
    CHECK(cublasSgemm(NULL, CUBLAS_OP_N, CUBLAS_OP_N, 2, 2, 3, &alpha, d_A, 2, d_B, 3, &beta, d_C, 2) ==
          CUBLAS_STATUS_NOT_INITIALIZED);
    // an operand that is too small for the call: caught when the call runs
    CHECK(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, 2, 2, 4, &alpha, d_A, 2, d_B, 4, &beta, d_C, 2) ==
          CUBLAS_STATUS_SUCCESS);
    CHECK(cudaDeviceSynchronize() == cudaErrorIllegalAddress);
    CHECK(message_has("operand A"));
    emu::clear_errors();
    for (float* p : {d_A, d_B, d_C}) cudaCheck(cudaFree(p));
    cublasDestroy(h);
}

TEST_CASE("emulation: cuBLASLt computes the product with its bias and GELU epilogues, and refuses a bad aux ld") {
    cublasLtHandle_t h = NULL;
    REQUIRE(cublasLtCreate(&h) == CUBLAS_STATUS_SUCCESS);
    // column-major bf16 A (2 x 3) = [1 3 5; 2 4 6], B (3 x 1) = [1 0 -1]ᵀ: A·B = [-4; -4]; bias [4.5; 5]
    auto to_device16 = [](std::vector<float> v) {
        std::vector<bfloat16> b(v.size());
        for (size_t i = 0; i < v.size(); i++) b[i] = bf16_from_float(v[i]);
        bfloat16* d = NULL;
        cudaCheck(cudaMalloc(&d, sizeof(bfloat16) * (b.size() > 8 ? b.size() : 8)));
        cudaCheck(cudaMemcpy(d, b.data(), sizeof(bfloat16) * b.size(), cudaMemcpyHostToDevice));
        return d;
    };
    auto to_host16 = [](const bfloat16* d, size_t n) {
        std::vector<bfloat16> b(n);
        cudaCheck(cudaMemcpy(b.data(), d, sizeof(bfloat16) * n, cudaMemcpyDeviceToHost));
        std::vector<float> v(n);
        for (size_t i = 0; i < n; i++) v[i] = bf16_to_float(b[i]);
        return v;
    };
    bfloat16 *d_A = to_device16({1, 2, 3, 4, 5, 6}), *d_B = to_device16({1, 0, -1}), *d_bias = to_device16({4.5f, 5});
    bfloat16 *d_D = to_device16({0, 0}), *d_aux = to_device16(std::vector<float>(8, 0.0f));
    cublasLtMatmulDesc_t desc;
    REQUIRE(cublasLtMatmulDescCreate(&desc, CUBLAS_COMPUTE_32F, CUDA_R_32F) == CUBLAS_STATUS_SUCCESS);
    uint32_t epilogue = CUBLASLT_EPILOGUE_GELU_AUX_BIAS;
    int64_t aux_ld = 8;
    CHECK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue, sizeof(epilogue)) == 0);
    CHECK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &d_bias, sizeof(d_bias)) == 0);
    CHECK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER, &d_aux, sizeof(d_aux)) == 0);
    CHECK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD, &aux_ld, sizeof(aux_ld)) == 0);
    cublasLtMatrixLayout_t la, lb, ld;
    cublasLtMatrixLayoutCreate(&la, CUDA_R_16BF, 2, 3, 2);
    cublasLtMatrixLayoutCreate(&lb, CUDA_R_16BF, 3, 1, 3);
    cublasLtMatrixLayoutCreate(&ld, CUDA_R_16BF, 2, 1, 2);
    cublasLtMatmulPreference_t pref;
    cublasLtMatmulPreferenceCreate(&pref);
    cublasLtMatmulHeuristicResult_t result;
    int found = 0;
    CHECK(cublasLtMatmulAlgoGetHeuristic(h, desc, la, lb, ld, ld, pref, 1, &result, &found) == CUBLAS_STATUS_SUCCESS);
    REQUIRE(found == 1);
    float alpha = 1.0f, beta = 0.0f;
    CHECK(cublasLtMatmul(h, desc, &alpha, d_A, la, d_B, lb, &beta, d_D, ld, d_D, ld, &result.algo, NULL, 0, 0) ==
          CUBLAS_STATUS_SUCCESS);
    std::vector<float> aux = to_host16(d_aux, 2), D = to_host16(d_D, 2);
    CHECK(aux[0] == 0.5f);  // -4 + 4.5: GELU's input, stored
    CHECK(aux[1] == 1.0f);  // -4 + 5
    CHECK(D[0] == bf16_to_float(bf16_from_float(0.5f * 0.5f * (1.0f + tanhf(0.7978845608f * (0.5f + 0.044715f * 0.125f))))));
    CHECK(D[1] == bf16_to_float(bf16_from_float(0.5f * (1.0f + tanhf(0.7978845608f * 1.044715f)))));
    CHECK(fabsf(D[1] - 0.8412f) < 4e-3f);  // GELU(1) = 0.8412 (tanh form)
    // GELU's backward: D = A·B ∘ GELU'(aux), aux now read (its values 0.5 and 1 from above)
    epilogue = CUBLASLT_EPILOGUE_DGELU;
    CHECK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue, sizeof(epilogue)) == 0);
    CHECK(cublasLtMatmul(h, desc, &alpha, d_A, la, d_B, lb, &beta, d_D, ld, d_D, ld, &result.algo, NULL, 0, 0) ==
          CUBLAS_STATUS_SUCCESS);
    D = to_host16(d_D, 2);
    auto slope = [](float x) {  // d/dx of x/2 · (1 + tanh(√(2/π) (x + 0.044715 x³))), by central differences
        auto g = [](double v) { return 0.5 * v * (1.0 + tanh(0.7978845608 * (v + 0.044715 * v * v * v))); };
        return (float)((g(x + 1e-4) - g(x - 1e-4)) / 2e-4);
    };
    CHECK(fabsf(D[0] - (-4.0f) * slope(0.5f)) <= 0.01f * 4.0f * slope(0.5f));  // within bf16's rounding
    CHECK(fabsf(D[1] - (-4.0f) * slope(1.0f)) <= 0.01f * 4.0f * slope(1.0f));
    CHECK(fabsf(slope(1.0f) - 1.0830f) < 1e-3f);  // GELU'(1), tanh form
    CHECK(to_host16(d_aux, 2) == aux);  // read, not written
    ExpectErrors expect;
    aux_ld = 4;  // not a multiple of 8
    CHECK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD, &aux_ld, sizeof(aux_ld)) == 0);
    CHECK(cublasLtMatmulAlgoGetHeuristic(h, desc, la, lb, ld, ld, pref, 1, &result, &found) == CUBLAS_STATUS_INVALID_VALUE);
    CHECK(found == 0);
    CHECK(message_has("aux"));
    epilogue = CUBLASLT_EPILOGUE_BIAS;
    const void* no_bias = NULL;
    CHECK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue, sizeof(epilogue)) == 0);
    CHECK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &no_bias, sizeof(no_bias)) == 0);
    CHECK(cublasLtMatmul(h, desc, &alpha, d_A, la, d_B, lb, &beta, d_D, ld, d_D, ld, &result.algo, NULL, 0, 0) ==
          CUBLAS_STATUS_INVALID_VALUE);
    CHECK(message_has("bias"));
    CHECK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue, 2) == CUBLAS_STATUS_INVALID_VALUE);
    emu::clear_errors();
    cublasLtMatmulPreferenceDestroy(pref);
    for (cublasLtMatrixLayout_t l : {la, lb, ld}) cublasLtMatrixLayoutDestroy(l);
    cublasLtMatmulDescDestroy(desc);
    for (bfloat16* p : {d_A, d_B, d_bias, d_D, d_aux}) cudaCheck(cudaFree(p));
    cublasLtDestroy(h);
}

// The stand-in's BGRADB on hand values, and emu_lt_offer's refusal, which takes a layer's backward down the path a
// GPU whose cuBLASLt has no BGRADB algorithm would take (the product, then the column-sum kernel): the same weight
// gradient bits and the same bias gradient to fp32's rounding either way.
TEST_CASE("emulation: cuBLASLt's BGRADB sums op(B) over k; refused, a layer's bias gradient comes from its kernel") {
    // gemm.h's call: Cm (2 x 2) += op(A) (2 x 3) · B (3 x 2), op(A)'s row sums (BGRADB on the swapped operands)
    std::vector<float> a = {1, 2, 3, -4, 5, 0.5f}, b = {1, 0, 0, 1, 2, -1};  // row-major A (2 x 3), B (3 x 2)
    bfloat16 *d_a = bf16_to_device(a), *d_b = bf16_to_device(b);
    float *d_c = to_device({10, 20, 30, 40}), *d_sums = to_device({0, 0});
    REQUIRE(gemm_lt_row_sums_cuda(d_c, d_sums, d_a, d_b, 2, 2, 3, false, false));
    std::vector<float> c = to_host(d_c, 4), sums = to_host(d_sums, 2);
    CHECK(c == std::vector<float>({10 + 7, 20 - 1, 30 - 3, 40 + 4.5f}));  // A·B = [7 -1; -3 4.5]
    CHECK(sums == std::vector<float>({6, 1.5f}));  // 1 + 2 + 3, -4 + 5 + 0.5: written over
    emu_lt_offer(CUBLASLT_EPILOGUE_BGRADB, false);
    {
        ExpectErrors expect;
        CHECK_FALSE(gemm_lt_row_sums_cuda(d_c, d_sums, d_a, d_b, 2, 2, 3, false, false));
        CHECK(to_host(d_c, 4) == c);  // nothing computed
        emu::clear_errors();
    }
    emu_lt_offer(CUBLASLT_EPILOGUE_BGRADB, true);

    // a layer in 16-bit storage, its backward with BGRADB offered and refused
    const int N = 29, C = 16, OC = 24;
    std::vector<float> x = random_vector((size_t)N * C, 141), w = random_vector((size_t)OC * C, 142, 0.3f),
                       bias = random_vector(OC, 143), dout = random_vector((size_t)N * OC, 144);
    std::vector<std::vector<float>> grads[2];
    for (int refused = 0; refused < 2; refused++) {
        emu_lt_offer(CUBLASLT_EPILOGUE_BGRADB, !refused);
        emu::set_quiet(refused);  // (the refusal is reported, as a GPU's cuBLASLt would not be)
        Tensor inp = bf16_tensor(NULL, bf16_to_device(x), to_device(std::vector<float>((size_t)N * C)));
        Tensor weight = bf16_tensor(NULL, bf16_to_device(w), to_device(std::vector<float>((size_t)OC * C)));
        Tensor b = bf16_tensor(to_device(bias), bf16_to_device(bias), to_device(std::vector<float>(OC)));
        Tensor out = bf16_tensor(NULL, device_bf16((size_t)N * OC), NULL);
        out.grad16 = bf16_to_device(dout);  // as the next product's backward leaves it
        Tape tape;
        tape_init(&tape, 2);
        matmul(&tape, Kernels{GEMM_CUBLAS_BF16, ATTENTION_FLASH, PRECISION_BF16}, &out, &inp, &weight, &b, N, C, OC);
        tape_backward(&tape);
        grads[refused] = {to_host(weight.grad, (size_t)OC * C), to_host(b.grad, OC), to_host(inp.grad, (size_t)N * C)};
        tape_free(&tape);
        for (float* p : {inp.grad, weight.grad, b.data, b.grad}) cudaCheck(cudaFree(p));
        for (bfloat16* p : {inp.data16, weight.data16, b.data16, out.data16, out.grad16}) cudaCheck(cudaFree(p));
    }
    emu_lt_offer(CUBLASLT_EPILOGUE_BGRADB, true);
    emu::set_quiet(false);
    check_bitwise("dweight, BGRADB refused", grads[1][0], grads[0][0]);
    check_bitwise("dinp, BGRADB refused", grads[1][2], grads[0][2]);
    check_close("dbias, BGRADB refused", grads[1][1], grads[0][1], 1e-6);
    std::vector<float> ref(OC);  // Σ_n dout[n, o] of dout's bf16 values
    for (int o = 0; o < OC; o++) {
        double s = 0.0;
        for (int n = 0; n < N; n++) s += bf16_round(dout[(size_t)n * OC + o]);
        ref[o] = (float)s;
    }
    check_close("dbias", grads[0][1], ref, 1e-6);
    for (bfloat16* p : {d_a, d_b}) cudaCheck(cudaFree(p));
    for (float* p : {d_c, d_sums}) cudaCheck(cudaFree(p));
}

// ----------------------------------------------------------------------------------------------------
// stream capture and graphs

static __global__ void add_one_kernel(float* x, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) x[i] += 1.0f;
}

// What a capture records runs only when its graph is launched, each launch with the values captured; the calls CUDA's
// global capture mode refuses fail, name themselves, and invalidate the capture, so cudaStreamEndCapture fails.
TEST_CASE("emulation: stream capture records launches, copies and cuBLAS calls, replays them, refuses round trips") {
    std::vector<float> h = {1, 2, 3, 4};
    float *d = to_device(h), *d_sum = to_device(std::vector<float>(1, 0.0f)), *d_copy = to_device(std::vector<float>(4, 0.0f));
    std::vector<float> ones(4, 1.0f);
    float* d_ones = to_device(ones);
    cublasHandle_t blas = NULL;
    REQUIRE(cublasCreate(&blas) == CUBLAS_STATUS_SUCCESS);
    REQUIRE(cublasSetStream(blas, cudaStreamPerThread) == CUBLAS_STATUS_SUCCESS);
    float alpha = 1.0f, beta = 0.0f;
    cudaGraph_t graph = NULL;
    cudaGraphExec_t exec = NULL;
    REQUIRE(cudaStreamBeginCapture(cudaStreamPerThread, cudaStreamCaptureModeGlobal) == cudaSuccess);
    cudaStreamCaptureStatus status;
    REQUIRE(cudaStreamIsCapturing(cudaStreamPerThread, &status) == cudaSuccess);
    CHECK(status == cudaStreamCaptureStatusActive);
    add_one_kernel<<<1, 32>>>(d, 4);                                                      // x += 1
    cudaCheck(cudaMemcpyAsync(d_copy, d, 4 * sizeof(float), cudaMemcpyDeviceToDevice));  // a copy of x
    REQUIRE(cublasSgemm(blas, CUBLAS_OP_N, CUBLAS_OP_N, 1, 1, 4, &alpha, d_ones, 1, d, 4, &beta, d_sum, 1) ==
            CUBLAS_STATUS_SUCCESS);                                                      // sum = Σ x
    alpha = 100.0f;  // changed after the call: the graph keeps the value it was given
    REQUIRE(cudaStreamEndCapture(cudaStreamPerThread, &graph) == cudaSuccess);
    REQUIRE(graph != NULL);
    CHECK(to_host(d, 4)[0] == 1.0f);  // nothing ran yet
    REQUIRE(cudaGraphInstantiate(&exec, graph, 0) == cudaSuccess);
    cudaCheck(cudaGraphDestroy(graph));  // the executable graph holds its own copy
    for (int launch = 1; launch <= 3; launch++) {
        cudaCheck(cudaGraphLaunch(exec, cudaStreamPerThread));
        std::vector<float> x = to_host(d, 4), copy = to_host(d_copy, 4);
        for (int i = 0; i < 4; i++) CHECK(x[i] == h[i] + launch);
        CHECK(copy == x);
        CHECK(to_host(d_sum, 1)[0] == 10.0f + 4 * launch);
    }
    cudaCheck(cudaGraphExecDestroy(exec));

    ExpectErrors expect;
    // each of these, inside a capture, fails and invalidates it
    struct Refused {
        const char* name;
        std::function<bool()> call;  // true when the call failed as it should
    };
    float host = 0.0f;
    void* p = NULL;
    cublasHandle_t legacy = NULL;
    REQUIRE(cublasCreate(&legacy) == CUBLAS_STATUS_SUCCESS);  // its stream never set: the legacy stream
    std::vector<Refused> refused = {
        {"cudaMemcpy", [&] { return cudaMemcpy(&host, d, sizeof(float), cudaMemcpyDeviceToHost) != cudaSuccess; }},
        {"cudaMemcpyAsync", [&] { return cudaMemcpyAsync(d, &host, sizeof(float), cudaMemcpyHostToDevice) != cudaSuccess; }},
        {"cudaMemset", [&] { return cudaMemset(d, 0, sizeof(float)) != cudaSuccess; }},
        {"cudaMalloc", [&] { return cudaMalloc(&p, 64) != cudaSuccess; }},
        {"cudaFree", [&] { return cudaFree(d_ones) != cudaSuccess; }},
        {"cudaDeviceSynchronize", [&] { return cudaDeviceSynchronize() != cudaSuccess; }},
        {"legacy stream", [&] {
             return cublasSgemm(legacy, CUBLAS_OP_N, CUBLAS_OP_N, 1, 1, 4, &alpha, d_ones, 1, d, 4, &beta, d_sum, 1) !=
                    CUBLAS_STATUS_SUCCESS;
         }},
    };
    for (const Refused& r : refused) {
        CAPTURE(r.name);
        REQUIRE(cudaStreamBeginCapture(cudaStreamPerThread, cudaStreamCaptureModeGlobal) == cudaSuccess);
        add_one_kernel<<<1, 32>>>(d, 4);
        CHECK(r.call());
        CHECK(message_has(strcmp(r.name, "legacy stream") == 0 ? "legacy default stream" : r.name));
        REQUIRE(cudaStreamIsCapturing(cudaStreamPerThread, &status) == cudaSuccess);
        CHECK(status == cudaStreamCaptureStatusInvalidated);
        CHECK(cudaStreamEndCapture(cudaStreamPerThread, &graph) == cudaErrorStreamCaptureInvalidated);
        CHECK(graph == NULL);
        emu::clear_errors();
    }
    CHECK(to_host(d, 4)[0] == h[0] + 3);  // the invalidated captures ran nothing
    CHECK(cudaStreamBeginCapture(cudaStreamLegacy, cudaStreamCaptureModeGlobal) == cudaErrorStreamCaptureUnsupported);
    emu::clear_errors();
    cublasDestroy(legacy);
    cublasDestroy(blas);
    for (float* q : {d, d_sum, d_copy, d_ones}) cudaCheck(cudaFree(q));
}
