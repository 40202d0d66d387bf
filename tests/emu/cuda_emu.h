// tests/emu/cuda_emu.h: CUDA on the CPU, for the tests. What a CUDA source sees of the CUDA runtime (types,
// qualifiers, the built-in variables, the device intrinsics, the runtime API) when it is built by the host
// compiler instead of nvcc: `make test` builds every tests/test_gpu*.cu and the project's kernels a second time
// this way, so that each kernel runs on every commit, against its CPU twin, on a machine with no GPU.
// The stand-in headers in tests/emu/include (cuda_runtime.h, cublas_v2.h, cusolverDn.h) include this file; the
// runtime is tests/emu/runtime.cpp (launches, memory, errors), tests/emu/blas.cpp (cuBLAS, cuSOLVER).
// The sources stay plain CUDA: tests/emu/translate.pl rewrites each launch `k<<<grid, block, smem>>>(args)` into
// `emu_launch(..., k, emu::config(grid, block, smem), args)` and `extern __shared__ T x[];` into a pointer to
// the block's dynamic shared memory, in a copy of the tree under build/; nothing else changes.
//
// How a launch executes (the semantics that expose what GPU code gets wrong):
//  - The work queue: launches, cuBLAS calls, memsets, async copies and event records are queued in order and run
//    when the host waits (cudaDeviceSynchronize, a blocking cudaMemcpy, cudaEventSynchronize) or the queue is
//    full, as a GPU runs its stream asynchronously. EMU_SYNC=1 runs each launch at once instead.
//  - The blocks of a launch run one at a time; within a block every CUDA thread is a fiber (its own stack, on
//    one host thread), so __syncthreads is a real barrier: a fiber that reaches it waits until every thread of
//    the block that has not returned reaches it too (a returned thread leaves it, as on the hardware). Threads
//    run in index order between barriers in even blocks and in reverse order in odd ones, so a missing barrier
//    shows as a read of a value not yet written, in one block or the other.
//  - __shared__ memory is per block: poisoned (all bits set: NaN) before each block; dynamic shared memory is a
//    separate allocation of exactly the launch's size per block, so AddressSanitizer sees an overrun.
//  - Warp intrinsics (__shfl_*_sync, __ballot_sync, __any/__all_sync, __syncwarp) exchange values among the 32
//    lanes of a warp: each waits for every lane of its mask; a lane of the mask that has returned, two lanes at
//    different intrinsics or masks, or a wait that can never end (a deadlock) stops the launch with an error.
//  - Atomics are atomic (the host's atomic builtins). Kernels run with their arguments checked: a pointer
//    argument that is not device memory stops the launch.
//  - Launch limits as an H100 enforces them: at most 1024 threads per block (1024, 1024, 64 per dimension),
//    grid y and z at most 65535, x at most 2^31 − 1, dynamic shared memory at most 48 KiB unless
//    cudaFuncSetAttribute raised it, never more than 227 KiB: a launch past them fails, as cudaGetLastError says.
#pragma once
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <atomic>
#include <tuple>
#include <type_traits>
#include <utility>

// ----------------------------------------------------------------------------------------------------
// qualifiers: a kernel is a host function; static __shared__ variables live in one section of the binary,
// which the runtime poisons before each block (blocks run one at a time, so one copy serves all)

#define __global__
#define __device__
#define __host__
#define __constant__
#define __forceinline__ inline __attribute__((always_inline))
#define __noinline__ __attribute__((noinline))
#define __launch_bounds__(...)
#define __restrict__ __restrict
#define __align__(n) __attribute__((aligned(n)))
#define __shared__ static __attribute__((section("emu_shared")))

// ----------------------------------------------------------------------------------------------------
// types of the runtime (values as in CUDA's driver_types.h, so messages and codes match a real GPU's)

struct uint3 {
    unsigned x, y, z;
};
struct dim3 {
    unsigned x, y, z;
    constexpr dim3(unsigned vx = 1, unsigned vy = 1, unsigned vz = 1) : x(vx), y(vy), z(vz) {}
};
// CUDA's vector type for 128-bit loads and stores: 16-byte aligned as on the GPU, so a float4 access through a
// misaligned pointer (a fault on the hardware) is undefined behaviour here too, which UBSan's alignment check in
// `make sanitize-cpu` reports
struct __align__(16) float4 {
    float x, y, z, w;
};
static inline float4 make_float4(float x, float y, float z, float w) {
    float4 v = {x, y, z, w};
    return v;
}

enum cudaError {
    cudaSuccess = 0,
    cudaErrorInvalidValue = 1,
    cudaErrorMemoryAllocation = 2,
    cudaErrorInitializationError = 3,
    cudaErrorInvalidConfiguration = 9,
    cudaErrorInvalidDevicePointer = 17,
    cudaErrorInvalidMemcpyDirection = 21,
    cudaErrorInsufficientDriver = 35,
    cudaErrorInvalidDeviceFunction = 98,
    cudaErrorNoDevice = 100,
    cudaErrorInvalidDevice = 101,
    cudaErrorInvalidResourceHandle = 400,
    cudaErrorNotReady = 600,
    cudaErrorIllegalAddress = 700,
    cudaErrorLaunchOutOfResources = 701,
    cudaErrorLaunchFailure = 719,
    cudaErrorStreamCaptureUnsupported = 900,
    cudaErrorStreamCaptureInvalidated = 901,
    cudaErrorStreamCaptureUnmatched = 903,
    cudaErrorStreamCaptureImplicit = 906,
    cudaErrorUnknown = 999
};
typedef cudaError cudaError_t;

enum cudaMemcpyKind {
    cudaMemcpyHostToHost = 0,
    cudaMemcpyHostToDevice = 1,
    cudaMemcpyDeviceToHost = 2,
    cudaMemcpyDeviceToDevice = 3,
    cudaMemcpyDefault = 4
};
enum cudaFuncAttribute { cudaFuncAttributeMaxDynamicSharedMemorySize = 8 };
enum cudaDeviceAttr {
    cudaDevAttrMaxThreadsPerBlock = 1,
    cudaDevAttrMaxSharedMemoryPerBlock = 8,
    cudaDevAttrWarpSize = 10,
    cudaDevAttrMultiProcessorCount = 16,
    cudaDevAttrComputeCapabilityMajor = 75,
    cudaDevAttrComputeCapabilityMinor = 76,
    cudaDevAttrMaxSharedMemoryPerBlockOptin = 97
};

struct cudaDeviceProp {
    char name[256];
    size_t totalGlobalMem, sharedMemPerBlock, sharedMemPerBlockOptin;
    int warpSize, maxThreadsPerBlock, maxThreadsDim[3], maxGridSize[3], multiProcessorCount, major, minor;
};

struct EmuStream;
typedef EmuStream* cudaStream_t;
struct EmuEvent;
typedef EmuEvent* cudaEvent_t;
struct EmuGraph;
typedef EmuGraph* cudaGraph_t;
struct EmuGraphExec;
typedef EmuGraphExec* cudaGraphExec_t;
// The streams (one queue runs them all, in order). The emulation builds as nvcc builds the project, with
// `--default-stream per-thread`: stream 0 in a launch or a runtime call is the calling thread's default stream,
// cudaStreamPerThread, which stream capture accepts. The libraries (cuBLAS, cuBLASLt, cuSOLVER) are not built so:
// their stream 0, a handle's stream never set, is cudaStreamLegacy, which a capture refuses.
#define cudaStreamLegacy ((cudaStream_t)0x1)
#define cudaStreamPerThread ((cudaStream_t)0x2)
enum cudaStreamCaptureMode { cudaStreamCaptureModeGlobal = 0, cudaStreamCaptureModeThreadLocal = 1,
                             cudaStreamCaptureModeRelaxed = 2 };
enum cudaStreamCaptureStatus { cudaStreamCaptureStatusNone = 0, cudaStreamCaptureStatusActive = 1,
                               cudaStreamCaptureStatusInvalidated = 2 };

// ----------------------------------------------------------------------------------------------------
// the built-in variables: the running block's (set by the runtime before each block) and the running thread's
// (the fiber now executing; an atomic, so ThreadSanitizer sees no race in the runtime's own bookkeeping)

namespace emu {
struct Thread {
    uint3 idx;  // threadIdx
    int linear;  // threadIdx.x + blockDim.x·(threadIdx.y + blockDim.y·threadIdx.z)
};
extern std::atomic<Thread*> current_thread;
}  // namespace emu

extern uint3 blockIdx;
extern dim3 blockDim, gridDim;
#define threadIdx (emu::current_thread.load(std::memory_order_relaxed)->idx)
static const int warpSize = 32;

// ----------------------------------------------------------------------------------------------------
// device intrinsics

void __syncthreads();
void __syncwarp(unsigned mask = 0xffffffffu);
unsigned __ballot_sync(unsigned mask, int predicate);
int __any_sync(unsigned mask, int predicate);
int __all_sync(unsigned mask, int predicate);
unsigned __activemask();
void __threadfence();
void __threadfence_block();

namespace emu {
enum Shuffle { SHFL_IDX, SHFL_UP, SHFL_DOWN, SHFL_XOR };
// every lane of `mask` gives its value's bits; each gets back the bits of the lane the mode names
uint64_t shuffle(Shuffle mode, unsigned mask, uint64_t bits, int lane_arg, int width);
template <typename T> static T shuffle_typed(Shuffle mode, unsigned mask, T var, int lane_arg, int width) {
    static_assert(sizeof(T) <= 8 && std::is_trivially_copyable<T>::value, "shuffles move values of up to 8 bytes");
    uint64_t bits = 0;
    memcpy(&bits, &var, sizeof(T));
    bits = shuffle(mode, mask, bits, lane_arg, width);
    T out;
    memcpy(&out, &bits, sizeof(T));
    return out;
}
}  // namespace emu

template <typename T> static T __shfl_sync(unsigned mask, T var, int src_lane, int width = 32) {
    return emu::shuffle_typed(emu::SHFL_IDX, mask, var, src_lane, width);
}
template <typename T> static T __shfl_up_sync(unsigned mask, T var, unsigned delta, int width = 32) {
    return emu::shuffle_typed(emu::SHFL_UP, mask, var, (int)delta, width);
}
template <typename T> static T __shfl_down_sync(unsigned mask, T var, unsigned delta, int width = 32) {
    return emu::shuffle_typed(emu::SHFL_DOWN, mask, var, (int)delta, width);
}
template <typename T> static T __shfl_xor_sync(unsigned mask, T var, int lane_mask, int width = 32) {
    return emu::shuffle_typed(emu::SHFL_XOR, mask, var, lane_mask, width);
}

static inline int __ffs(int x) { return __builtin_ffs(x); }
static inline int __ffsll(long long x) { return __builtin_ffsll(x); }
static inline int __popc(unsigned x) { return __builtin_popcount(x); }
static inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
static inline int __clz(int x) { return x == 0 ? 32 : __builtin_clz((unsigned)x); }
static inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
static inline double rsqrt(double x) { return 1.0 / sqrt(x); }
static inline float __fdividef(float a, float b) { return a / b; }
template <typename T> static T __ldg(const T* p) { return *p; }

// atomics: read-modify-write as one step (the host's atomic builtins), returning the old value
// floating-point add as a compare-and-swap loop on the value's bits (Bits: an unsigned integer of T's size)
template <typename T, typename Bits> static T emu_atomic_add_fp(T* p, T v) {
    Bits* bits = (Bits*)p;
    Bits old = __atomic_load_n(bits, __ATOMIC_RELAXED), next;
    T x;
    do {
        memcpy(&x, &old, sizeof(T));
        x += v;
        memcpy(&next, &x, sizeof(T));
    } while (!__atomic_compare_exchange_n(bits, &old, next, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED));
    memcpy(&x, &old, sizeof(T));
    return x;
}
static inline int atomicAdd(int* p, int v) { return __atomic_fetch_add(p, v, __ATOMIC_RELAXED); }
static inline unsigned atomicAdd(unsigned* p, unsigned v) { return __atomic_fetch_add(p, v, __ATOMIC_RELAXED); }
static inline unsigned long long atomicAdd(unsigned long long* p, unsigned long long v) {
    return __atomic_fetch_add(p, v, __ATOMIC_RELAXED);
}
static inline float atomicAdd(float* p, float v) { return emu_atomic_add_fp<float, uint32_t>(p, v); }
static inline double atomicAdd(double* p, double v) { return emu_atomic_add_fp<double, uint64_t>(p, v); }
static inline int atomicSub(int* p, int v) { return __atomic_fetch_sub(p, v, __ATOMIC_RELAXED); }
static inline unsigned atomicSub(unsigned* p, unsigned v) { return __atomic_fetch_sub(p, v, __ATOMIC_RELAXED); }
template <typename T> static T emu_atomic_extreme(T* p, T v, bool max) {
    T old = __atomic_load_n(p, __ATOMIC_RELAXED);
    while ((max ? v > old : v < old) &&
           !__atomic_compare_exchange_n(p, &old, v, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
    }
    return old;
}
static inline int atomicMax(int* p, int v) { return emu_atomic_extreme(p, v, true); }
static inline unsigned atomicMax(unsigned* p, unsigned v) { return emu_atomic_extreme(p, v, true); }
static inline int atomicMin(int* p, int v) { return emu_atomic_extreme(p, v, false); }
static inline unsigned atomicMin(unsigned* p, unsigned v) { return emu_atomic_extreme(p, v, false); }
static inline int atomicExch(int* p, int v) { return __atomic_exchange_n(p, v, __ATOMIC_RELAXED); }
static inline unsigned atomicExch(unsigned* p, unsigned v) { return __atomic_exchange_n(p, v, __ATOMIC_RELAXED); }
static inline int atomicCAS(int* p, int compare, int v) {
    __atomic_compare_exchange_n(p, &compare, v, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED);
    return compare;
}
static inline unsigned atomicCAS(unsigned* p, unsigned compare, unsigned v) {
    __atomic_compare_exchange_n(p, &compare, v, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED);
    return compare;
}
static inline unsigned long long atomicCAS(unsigned long long* p, unsigned long long compare, unsigned long long v) {
    __atomic_compare_exchange_n(p, &compare, v, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED);
    return compare;
}

// ----------------------------------------------------------------------------------------------------
// the runtime API (tests/emu/runtime.cpp)

cudaError_t cudaMalloc(void** p, size_t bytes);
template <typename T> static cudaError_t cudaMalloc(T** p, size_t bytes) { return cudaMalloc((void**)p, bytes); }
cudaError_t cudaFree(void* p);
cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind);
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, cudaStream_t stream = 0);
cudaError_t cudaMemset(void* p, int value, size_t bytes);
cudaError_t cudaMemsetAsync(void* p, int value, size_t bytes, cudaStream_t stream = 0);
cudaError_t cudaMemGetInfo(size_t* free_bytes, size_t* total_bytes);
cudaError_t cudaDeviceSynchronize();
cudaError_t cudaStreamSynchronize(cudaStream_t stream);
cudaError_t cudaDeviceReset();
cudaError_t cudaGetLastError();
cudaError_t cudaPeekAtLastError();
const char* cudaGetErrorString(cudaError_t e);
const char* cudaGetErrorName(cudaError_t e);
cudaError_t cudaGetDeviceCount(int* count);
cudaError_t cudaDriverGetVersion(int* version);
cudaError_t cudaRuntimeGetVersion(int* version);
cudaError_t cudaGetDevice(int* device);
cudaError_t cudaSetDevice(int device);
cudaError_t cudaGetDeviceProperties(cudaDeviceProp* prop, int device);
cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attr, int device);
cudaError_t cudaEventCreate(cudaEvent_t* event);
cudaError_t cudaEventDestroy(cudaEvent_t event);
cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream = 0);
cudaError_t cudaEventSynchronize(cudaEvent_t event);
cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t end);
// Stream capture and graphs (global mode only). While a stream captures, what would be queued (launches, library
// calls, async device copies and memsets) is recorded instead; a call that needs the host to wait or that stands
// outside the stream (a synchronous or host copy, cudaMemset, cudaMalloc, cudaFree, a synchronize, an event, a
// library call on the legacy stream) fails and invalidates the capture, so cudaStreamEndCapture fails too. A
// graph launch queues a copy of every recorded operation, with the argument values captured.
cudaError_t cudaStreamBeginCapture(cudaStream_t stream, cudaStreamCaptureMode mode);
cudaError_t cudaStreamEndCapture(cudaStream_t stream, cudaGraph_t* graph);
cudaError_t cudaStreamIsCapturing(cudaStream_t stream, cudaStreamCaptureStatus* status);
cudaError_t cudaGraphInstantiate(cudaGraphExec_t* exec, cudaGraph_t graph, unsigned long long flags = 0);
cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t stream);
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec);
cudaError_t cudaGraphDestroy(cudaGraph_t graph);

namespace emu {
cudaError_t func_set_attribute(const void* func, cudaFuncAttribute attr, int value);
}
template <typename F> static cudaError_t cudaFuncSetAttribute(F* func, cudaFuncAttribute attr, int value) {
    return emu::func_set_attribute((const void*)func, attr, value);
}

// ----------------------------------------------------------------------------------------------------
// launches: what translate.pl turns `kernel<<<grid, block, smem, stream>>>(args)` into

namespace emu {
struct LaunchConfig {
    dim3 grid, block;
    size_t shared_bytes;
};
static inline LaunchConfig config(dim3 grid, dim3 block, size_t shared_bytes = 0, cudaStream_t stream = 0) {
    (void)stream;  // one queue runs every stream in order
    LaunchConfig c = {grid, block, shared_bytes};
    return c;
}

// A launch as the runtime sees it: the kernel's name and where it was launched (for messages), the function
// (for its attributes), a body that runs the kernel once for the current thread, its argument block (owned by
// the launch: `destroy` frees it), and the values of its pointer arguments (checked to be device memory).
struct Launch {
    const char* name;
    const char* file;
    int line;
    const void* func;
    LaunchConfig cfg;
    void (*body)(void* args);
    void (*destroy)(void* args);
    void* (*copy)(const void* args);  // a copy of the argument block (a graph's launches run more than once)
    void* args;
    const void* pointers[16];
    int pointer_index[16];
    int num_pointers;
};
void enqueue_launch(Launch* launch);  // checks the configuration now, runs the kernel in queue order

template <typename T> static void note_pointer(Launch* l, int index, const T& value) {
    if constexpr (std::is_pointer<T>::value) {
        if (l->num_pointers < 16) {
            l->pointers[l->num_pointers] = (const void*)value;
            l->pointer_index[l->num_pointers++] = index;
        }
    }
}
template <typename Tuple, size_t... I> static void note_pointers(Launch* l, const Tuple& t, std::index_sequence<I...>) {
    (note_pointer(l, (int)I, std::get<I>(t)), ...);
}
}  // namespace emu

template <typename... Params, typename... Args>
static void emu_launch(const char* file, int line, const char* name, void (*kernel)(Params...), emu::LaunchConfig cfg,
                       Args&&... args) {
    static_assert(sizeof...(Params) == sizeof...(Args), "a kernel launch with the wrong number of arguments");
    typedef std::tuple<typename std::decay<Params>::type...> Tuple;
    struct Bound {
        void (*kernel)(Params...);
        Tuple args;
    };
    Bound* bound = new Bound{kernel, Tuple(std::forward<Args>(args)...)};  // converted as a call converts them
    emu::Launch* l = new emu::Launch();
    l->name = name;
    l->file = file;
    l->line = line;
    l->func = (const void*)kernel;
    l->cfg = cfg;
    l->body = [](void* p) {
        Bound* b = (Bound*)p;
        std::apply(b->kernel, b->args);
    };
    l->destroy = [](void* p) { delete (Bound*)p; };
    l->copy = [](const void* p) -> void* { return new Bound(*(const Bound*)p); };
    l->args = bound;
    emu::note_pointers(l, bound->args, std::index_sequence_for<Params...>());
    emu::enqueue_launch(l);
}

// dynamic shared memory of the running block (what `extern __shared__ T name[];` becomes)
namespace emu {
void* dynamic_shared();
}

// ----------------------------------------------------------------------------------------------------
// for the emulation's own tests (tests/emu/test_emu.cu) and for tests of timing and device detection

namespace emu {
const char* last_message();          // the emulator's explanation of the last error it reported ("" if none)
void set_quiet(bool quiet);          // true: keep those explanations off stderr (tests that provoke errors)
void clear_errors();                 // forget the last and the sticky error (after a deliberate fault)
// cudaGetDeviceCount fails with e, cudaDriverGetVersion says driver_version (0: no driver installed); cudaSuccess
// brings the device back (and the driver, CUDA 13.0)
void set_device_count_error(cudaError_t e, int driver_version);
// The device clock: seconds of device work done, advanced only as queued work executes: by each kernel's cost
// (set_kernel_cost: kernels whose name contains `name_part` cost `seconds`; others cost nothing). A test of a
// timing boundary reads it instead of the wall clock: work still queued when the clock is read is not counted.
double device_clock();
void set_kernel_cost(const char* name_part, double seconds);
size_t queued_work();  // queued operations not yet executed
struct Stats {
    long long launches, blocks, threads, blas_calls, graph_launches;
};
Stats stats();
}  // namespace emu
