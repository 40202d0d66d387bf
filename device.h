// device.h: the machine under the tensors: which device, its memory, and what CUDA code shares (the formulas both
// devices compute with, exp and bf16 among them: numerics.h).
//  - Device: CPU or CUDA; memory on either (allocate, zero, fill, copy to and from the host), waiting for the
//    GPU, the clock the training loop's phases read, GPU detection, the GPU's memory in use and peak FLOP/s.
//  - CUDA only (nvcc): every CUDA and cuBLAS call checked (file and line), launch sizes, the one cuBLAS handle,
//    warp and block reductions in a fixed order, and scratch buffers that only grow.
// Flow: under tensor.h (arena, tensors, tape); everything that touches a device includes it through tensor.h.
#pragma once
#include <unistd.h>
#include "numerics.h"
#ifdef __CUDACC__
#include <cublas_v2.h>
#include <cuda_runtime.h>

// Every CUDA and cuBLAS call is checked; a failure names the file and the line.
static void cuda_check(cudaError_t e, const char* file, int line) {
    if (e != cudaSuccess) die("CUDA error at %s:%d: %s", file, line, cudaGetErrorString(e));
}
static void cublas_check(cublasStatus_t s, const char* file, int line) {
    if (s != CUBLAS_STATUS_SUCCESS) die("cuBLAS error %d at %s:%d", (int)s, file, line);
}
#define cudaCheck(call) cuda_check((call), __FILE__, __LINE__)
#define cublasCheck(call) cublas_check((call), __FILE__, __LINE__)
// after a kernel launch: catches a bad launch configuration at the line that made it
#define cudaCheckLaunch() cuda_check(cudaGetLastError(), __FILE__, __LINE__)
#endif

#ifdef _OPENMP
#include <omp.h>
#endif

enum Device { DEV_CPU = 0, DEV_CUDA = 1 };

static const char* device_name(Device d) { return d == DEV_CUDA ? "cuda" : "cpu"; }

// ----------------------------------------------------------------------------------------------------
// raw memory on a device

static void* device_malloc(Device d, size_t bytes) {
    if (d == DEV_CPU) return xmalloc(bytes);
#ifdef __CUDACC__
    void* p = NULL;
    cudaError_t e = cudaMalloc(&p, bytes);
    if (e != cudaSuccess) {
        size_t free_b = 0, total_b = 0;
        cudaMemGetInfo(&free_b, &total_b);
        die("out of GPU memory: wanted %.1f MiB, %.1f MiB free of %.1f MiB", bytes / 1048576.0,
            free_b / 1048576.0, total_b / 1048576.0);
    }
    return p;
#else
    die("this binary was built without CUDA (no nvcc): use --device cpu");
    return NULL;
#endif
}

static void device_free(Device d, void* p) {
    if (!p) return;
    if (d == DEV_CPU) { free(p); return; }
#ifdef __CUDACC__
    cudaCheck(cudaFree(p));
#endif
}

static void device_zero(Device d, void* p, size_t bytes) {
    if (d == DEV_CPU) { memset(p, 0, bytes); return; }
#ifdef __CUDACC__
    cudaCheck(cudaMemsetAsync(p, 0, bytes));  // queued on the stream, so a graph can hold it (step_graph.h)
#endif
}

// copies between host memory and a device buffer (a plain memcpy on the CPU)
static void copy_to_device(Device d, void* dst, const void* src, size_t bytes) {
    if (d == DEV_CPU) { memcpy(dst, src, bytes); return; }
#ifdef __CUDACC__
    cudaCheck(cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice));
#endif
}

static void copy_to_host(Device d, void* dst, const void* src, size_t bytes) {
    if (d == DEV_CPU) { memcpy(dst, src, bytes); return; }
#ifdef __CUDACC__
    cudaCheck(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost));
#endif
}

// a copy within one device's memory (queued behind earlier GPU work)
static void device_copy(Device d, void* dst, const void* src, size_t bytes) {
    if (d == DEV_CPU) { memcpy(dst, src, bytes); return; }
#ifdef __CUDACC__
    cudaCheck(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice));
#endif
}

#ifdef __CUDACC__
// one thread per element: x[i] = value
static __global__ void fill_kernel(float* x, size_t n, float value) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) x[i] = value;
}
// one thread per element: x[i] *= s
static __global__ void scale_kernel(float* x, size_t n, float s) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) x[i] *= s;
}
#endif

static void device_fill(Device d, float* x, size_t n, float value) {
    if (d == DEV_CPU) {
        for (size_t i = 0; i < n; i++) x[i] = value;
        return;
    }
#ifdef __CUDACC__
    if (n == 0) return;
    fill_kernel<<<(unsigned)((n + 255) / 256), 256>>>(x, n, value);
    cudaCheckLaunch();
#endif
}

// The CUDA GPUs this process can use. Their number; 0 when the machine has none (CUDA says no device, or there is
// no NVIDIA driver at all: then cudaGetDeviceCount says "insufficient driver" and the driver version is 0); -1
// with CUDA's error in err when CUDA is there but refuses (a driver older than this build needs, a broken
// installation), which must not pass for "no GPU" silently. Always 0 in a build without nvcc.
static int cuda_device_count(char* err) {
#ifdef __CUDACC__
    int count = 0, driver = 0, runtime = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    cudaGetLastError();  // clear it, so it does not surface at some later, unrelated check
    if (e == cudaSuccess) return count;
    cudaDriverGetVersion(&driver);
    cudaRuntimeGetVersion(&runtime);
    cudaGetLastError();
    if (e == cudaErrorNoDevice || (e == cudaErrorInsufficientDriver && driver == 0)) return 0;
    return fail(err, "CUDA error: %s (%s; the driver supports CUDA %d.%d, this build needs %d.%d)",
                cudaGetErrorString(e), cudaGetErrorName(e), driver / 1000, driver % 1000 / 10, runtime / 1000,
                runtime % 1000 / 10);
#else
    (void)err;
    return 0;
#endif
}

// x[i] *= s over n floats (gradient clipping)
static void device_scale(Device d, float* x, size_t n, float s) {
    if (d == DEV_CPU) {
#pragma omp parallel for schedule(static)
        for (size_t i = 0; i < n; i++) x[i] *= s;
        return;
    }
#ifdef __CUDACC__
    if (n == 0) return;
    scale_kernel<<<(unsigned)((n + 255) / 256), 256>>>(x, n, s);
    cudaCheckLaunch();
#endif
}

// waits for the device's queued work (before reading a host clock)
static void device_synchronize(Device d) {
#ifdef __CUDACC__
    if (d == DEV_CUDA) cudaCheck(cudaDeviceSynchronize());
#endif
}

// The clock the training loop's phase times read (run.h's step and optimizer times, optim.h's health time),
// through device_clock: the wall clock, read once the device has finished its queued work, so that each phase is
// charged with its own GPU work and not with work queued before it. Tests of those boundaries swap in the CUDA
// emulation's device clock (tests/emu), which moves only as queued work executes.
static double (*phase_clock)() = now_seconds;
static double device_clock(Device d) {
    device_synchronize(d);
    return phase_clock();
}

// Bytes of GPU memory in use now, by everything on the device (our arenas, cuBLAS's workspace, the CUDA
// context): total − free. 0 on the CPU.
static double device_memory_in_use(Device d) {
#ifdef __CUDACC__
    if (d == DEV_CUDA) {
        size_t free_b = 0, total_b = 0;
        cudaCheck(cudaMemGetInfo(&free_b, &total_b));
        return (double)(total_b - free_b);
    }
#endif
    (void)d;
    return 0.0;
}

// Bytes of memory the device has in all: the host's physical memory on the CPU, the GPU's on CUDA. For the
// check that a run fits before it allocates (run.h).
static double device_memory_total(Device d) {
#ifdef __CUDACC__
    if (d == DEV_CUDA) {
        size_t free_b = 0, total_b = 0;
        cudaCheck(cudaMemGetInfo(&free_b, &total_b));
        return (double)total_b;
    }
#endif
    (void)d;
    return (double)sysconf(_SC_PHYS_PAGES) * (double)sysconf(_SC_PAGE_SIZE);
}

// The GPU's dense bf16 peak in FLOP/s, for MFU; 0 (printed as no MFU) for the CPU or a GPU not in the table.
// H200 has the H100 SXM's compute; PCIe H100s run lower clocks.
static double device_peak_flops(Device d) {
#ifdef __CUDACC__
    if (d != DEV_CUDA) return 0.0;
    static double peak = -1.0;
    if (peak < 0) {
        cudaDeviceProp prop;
        int dev = 0;
        cudaCheck(cudaGetDevice(&dev));
        cudaCheck(cudaGetDeviceProperties(&prop, dev));
        const char* n = prop.name;
        if (strstr(n, "H100") && strstr(n, "PCIe")) peak = 756e12;
        else if (strstr(n, "H100") || strstr(n, "H200")) peak = 989e12;
        else if (strstr(n, "A100")) peak = 312e12;
        else peak = 0.0;
    }
    return peak;
#else
    (void)d;
    return 0.0;
#endif
}

#ifdef __CUDACC__
// ----------------------------------------------------------------------------------------------------
// what the CUDA kernels in ops/, adamw.h and muon.h share: launch sizes, the one cuBLAS handle, and
// reductions with a fixed order (the same inputs give the same bits on every run: no float atomics anywhere)

// blocks of `threads` that cover n items
static unsigned cuda_blocks(size_t n, int threads) { return (unsigned)((n + threads - 1) / threads); }
// whether a float4 (128-bit) access may start at p
static bool aligned16(const void* p) { return ((uintptr_t)p & 15) == 0; }

// One handle for the whole program, created on first use (cublasCreate costs milliseconds and some memory).
// Host pointer mode; the math mode stays plain FP32 (gemm.h asks for TF32 per call, at GEMM_CUBLAS_TF32). Its
// stream is ours: nvcc builds with `--default-stream per-thread` (Makefile), so every launch and copy here runs on
// the thread's default stream, cudaStreamPerThread, which a CUDA graph can capture (step_graph.h); a library's
// stream 0 is the legacy default stream, which cannot be captured, so the libraries are given ours.
static cublasHandle_t cublas_handle() {
    static cublasHandle_t handle = NULL;
    if (!handle) {
        cublasCheck(cublasCreate(&handle));
        cublasCheck(cublasSetStream(handle, cudaStreamPerThread));
    }
    return handle;
}

// Sums over a warp by a butterfly: every lane ends with the same bits (each step adds a + b on one lane
// and b + a on its partner, and float addition is commutative).
static __device__ float warp_reduce_sum(float v) {
    for (int offset = 16; offset > 0; offset /= 2) v += __shfl_xor_sync(0xffffffffu, v, offset);
    return v;
}
static __device__ float warp_reduce_max(float v) {
    for (int offset = 16; offset > 0; offset /= 2) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, offset));
    return v;
}
static __device__ double warp_reduce_sum_double(double v) {
    for (int offset = 16; offset > 0; offset /= 2) v += __shfl_xor_sync(0xffffffffu, v, offset);
    return v;
}

// Over the whole block (blockDim.x a multiple of 32, at most 1024); every thread gets the result. Each warp
// reduces its values, then every warp reduces the warps' results in the same order. The leading barrier
// lets a kernel call these more than once (the previous call's readers are done with `partial`).
static __device__ float block_reduce_sum(float v) {
    __shared__ float partial[32];
    int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
    v = warp_reduce_sum(v);
    __syncthreads();
    if (lane == 0) partial[warp] = v;
    __syncthreads();
    return warp_reduce_sum(lane < warps ? partial[lane] : 0.0f);
}
static __device__ float block_reduce_max(float v) {
    __shared__ float partial[32];
    int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
    v = warp_reduce_max(v);
    __syncthreads();
    if (lane == 0) partial[warp] = v;
    __syncthreads();
    return warp_reduce_max(lane < warps ? partial[lane] : -INFINITY);
}
static __device__ double block_reduce_sum_double(double v) {
    __shared__ double partial[32];
    int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
    v = warp_reduce_sum_double(v);
    __syncthreads();
    if (lane == 0) partial[warp] = v;
    __syncthreads();
    return warp_reduce_sum_double(lane < warps ? partial[lane] : 0.0);
}

// A device buffer that lives for the whole program and only grows: for the small tables and partial sums
// that launchers need (AdamW's slice table, the gradient norm's partials). Nothing is allocated per step
// once it has reached its size.
static void* device_scratch_grow(void** buf, size_t* capacity, size_t bytes) {
    if (bytes > *capacity) {
        if (*buf) cudaCheck(cudaFree(*buf));
        cudaCheck(cudaMalloc(buf, bytes));
        *capacity = bytes;
    }
    return *buf;
}
#endif

// A line naming the machine, for result tables: the GPU's name, or the CPU's model and thread count.
static void device_describe(Device d, char* out, size_t size) {
#ifdef __CUDACC__
    if (d == DEV_CUDA) {
        cudaDeviceProp prop;
        int dev = 0;
        cudaCheck(cudaGetDevice(&dev));
        cudaCheck(cudaGetDeviceProperties(&prop, dev));
        snprintf(out, size, "%.200s (%.0f GiB)", prop.name, prop.totalGlobalMem / 1073741824.0);
        return;
    }
#endif
    (void)d;
    char model[200] = "unknown CPU", line[512];
    FILE* f = fopen("/proc/cpuinfo", "r");
    while (f && fgets(line, sizeof(line), f))
        if (strncmp(line, "model name", 10) == 0 && strchr(line, ':')) {
            snprintf(model, sizeof(model), "%s", strchr(line, ':') + 2);
            model[strcspn(model, "\n")] = 0;
            break;
        }
    if (f) fclose(f);
    int threads = 1;
#ifdef _OPENMP
    threads = omp_get_max_threads();
#endif
    snprintf(out, size, "%s, %d threads", model, threads);
}


// dst = src rounded to bf16 (bf16_round), n values, on either device; dst == src rounds in place. What --precision
// bf16 does where a bf16 tensor would be stored (the weights' copy, each activation: model.h) and what Muon's bf16
// Newton-Schulz does to each matrix (orthogonalize.h). The buffers stay fp32: the values are bf16's.
#ifdef __CUDACC__
// four values a thread with 128-bit accesses (float4), the last n % 4 one at a time, as GELU's kernels do (both
// buffers 16-byte aligned; the scalar kernel below serves the others, e.g. Muon's matrices at odd offsets)
static __global__ void round_bf16_kernel(float* dst, const float* src, size_t n) {
    size_t i = 4 * ((size_t)blockIdx.x * blockDim.x + threadIdx.x);
    if (i + 4 <= n) {
        float4 x = *(const float4*)(src + i);
        *(float4*)(dst + i) = make_float4(bf16_round(x.x), bf16_round(x.y), bf16_round(x.z), bf16_round(x.w));
    } else {
        for (; i < n; i++) dst[i] = bf16_round(src[i]);
    }
}
static __global__ void round_bf16_scalar_kernel(float* dst, const float* src, size_t n) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) dst[i] = bf16_round(src[i]);
}
#endif
static void device_round_bf16(Device d, float* dst, const float* src, size_t n) {
    if (d == DEV_CPU) {
#pragma omp parallel for schedule(static) if (n > 65536)
        for (size_t i = 0; i < n; i++) dst[i] = bf16_round(src[i]);
        return;
    }
#ifdef __CUDACC__
    if (n == 0) return;
    if (aligned16(dst) && aligned16(src)) round_bf16_kernel<<<cuda_blocks((n + 3) / 4, 256), 256>>>(dst, src, n);
    else round_bf16_scalar_kernel<<<cuda_blocks(n, 256), 256>>>(dst, src, n);
    cudaCheckLaunch();
#endif
}

// dst (bf16 storage) = src rounded to bf16, n values, on either device: a bf16 copy for the products that take bf16
// operands at 16-bit storage (the weights they read, an fp32 gradient in their backward: ops/matmul.h, model.h)
#ifdef __CUDACC__
static __global__ void to_bf16_kernel(bfloat16* dst, const float* src, size_t n) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) dst[i] = bf16_from_float(src[i]);
}
#endif
static void device_to_bf16(Device d, bfloat16* dst, const float* src, size_t n) {
    if (d == DEV_CPU) {
#pragma omp parallel for schedule(static) if (n > 65536)
        for (size_t i = 0; i < n; i++) dst[i] = bf16_from_float(src[i]);
        return;
    }
#ifdef __CUDACC__
    if (n == 0) return;
    to_bf16_kernel<<<cuda_blocks(n, 256), 256>>>(dst, src, n);
    cudaCheckLaunch();
#endif
}
