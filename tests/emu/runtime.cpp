// tests/emu/runtime.cpp: the CUDA runtime on the CPU (declared in tests/emu/cuda_emu.h, which says what it
// guarantees): device memory, the work queue, kernel launches (blocks one at a time, each CUDA thread a fiber),
// __syncthreads and the warp intrinsics, errors, events.
// Sections: fibers (the context switch and the sanitizers' fiber annotations); memory; the block scheduler;
// launches; the queue; the runtime API.
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
#include <deque>
#include <map>
#include <string>
#include <vector>
#include "internal.h"

#if defined(__SANITIZE_ADDRESS__)
#define EMU_ASAN 1
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif
#if defined(__SANITIZE_THREAD__) || defined(EMU_TSAN)
#define EMU_TSAN_FIBERS 1
#include <sanitizer/tsan_interface.h>
#endif
#if !defined(__x86_64__)
#include <ucontext.h>
#endif

std::atomic<emu::Thread*> emu::current_thread;
uint3 blockIdx;
dim3 blockDim, gridDim;

namespace emu {

// ----------------------------------------------------------------------------------------------------
// errors: the last error (what cudaGetLastError returns and clears: bad launch configurations, bad arguments)
// and the sticky error (a fault while a kernel ran: every later synchronizing call returns it, as on a GPU,
// until clear_errors())

static cudaError_t last_error = cudaSuccess, sticky_error = cudaSuccess;
static char message[1024];
static bool quiet = false;

void report(const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof(message), fmt, ap);
    va_end(ap);
    if (!quiet) fprintf(stderr, "CUDA emulation: %s\n", message);
}
const char* last_message() { return message; }
void set_quiet(bool q) { quiet = q; }
static cudaError_t set_last(cudaError_t e) {
    if (e != cudaSuccess) last_error = e;
    return e;
}
void fault(cudaError_t e) {
    if (sticky_error == cudaSuccess) sticky_error = e;
}

static Stats counters;
Stats stats() { return counters; }
void count_blas_call() { counters.blas_calls++; }

// ----------------------------------------------------------------------------------------------------
// fibers: a stack and a saved stack pointer each. The switch saves the callee-saved registers on the old stack
// and pops them from the new one (System V x86-64; elsewhere, ucontext). A new fiber's stack is prepared so that
// the first switch "returns" into emu_context_start, which calls emu_fiber_main.

#if defined(__x86_64__)
extern "C" void emu_context_switch(void** save_sp, void* new_sp);
extern "C" void emu_context_start();
asm(R"(
    .text
    .globl emu_context_switch
    .type emu_context_switch, @function
emu_context_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    subq $8, %rsp
    stmxcsr (%rsp)
    fnstcw 4(%rsp)
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    ldmxcsr (%rsp)
    fldcw 4(%rsp)
    addq $8, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size emu_context_switch, .-emu_context_switch

    .globl emu_context_start
    .type emu_context_start, @function
emu_context_start:
    andq $-16, %rsp
    call emu_fiber_main
    ud2
    .size emu_context_start, .-emu_context_start
)");
#endif

struct Fiber {
#if defined(__x86_64__)
    void* sp;
#else
    ucontext_t ctx;
#endif
    char* stack;          // lowest usable address (a guard page lies below it); NULL for the host's own stack
    size_t stack_size;
    bool fresh;           // the next switch into it starts emu_fiber_main
    void* asan_fake_stack;
    void* tsan_fiber;     // ThreadSanitizer: its context (one CUDA thread index's: see thread_fiber)
    int thread;           // the CUDA thread (linear index in the block) it runs, while it runs one
};

static const size_t STACK_SIZE = 256 * 1024;  // a kernel's frames, sanitizer redzones included
static Fiber host_fiber;                      // the scheduler, on the host thread's own stack
static Fiber* running = &host_fiber;
// Fixed arrays, not containers, for what fibers touch: nothing is allocated while a kernel runs (under
// ThreadSanitizer an allocation from a CUDA thread's context would look like a race with the scheduler).
static const int MAX_FIBERS = 1100;           // a fiber per waiting thread (1024 at most) plus runners
static Fiber* fiber_pool[MAX_FIBERS];         // every fiber made so far
static int num_fibers = 0;
static Fiber* parked[MAX_FIBERS];             // fibers between runs, ready to take the next CUDA thread
static int num_parked = 0;

static Fiber* fiber_new() {
    if (num_fibers == MAX_FIBERS) {
        fprintf(stderr, "CUDA emulation: more than %d fibers at once\n", MAX_FIBERS);
        abort();
    }
    Fiber* f = new Fiber();
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    char* mem = (char*)mmap(NULL, STACK_SIZE + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                            -1, 0);
    if (mem == MAP_FAILED) {
        fprintf(stderr, "CUDA emulation: cannot map a fiber stack (%s)\n", strerror(errno));
        abort();
    }
    mprotect(mem, page, PROT_NONE);  // a stack overflow faults instead of overwriting the next stack
    f->stack = mem + page;
    f->stack_size = STACK_SIZE;
    f->fresh = true;
#ifdef EMU_TSAN_FIBERS
    f->tsan_fiber = __tsan_create_fiber(0);
#endif
    fiber_pool[num_fibers++] = f;
    return f;
}

extern "C" void emu_fiber_main();

// prepares f to start emu_fiber_main on its next switch (after a fault, a fiber's frames are abandoned this way)
static void fiber_reset(Fiber* f) {
    f->fresh = true;
#ifdef EMU_ASAN
    ASAN_UNPOISON_MEMORY_REGION(f->stack, f->stack_size);
#endif
}

static void fiber_prepare(Fiber* f) {
#if defined(__x86_64__)
    uint64_t* top = (uint64_t*)(((uintptr_t)(f->stack + f->stack_size)) & ~(uintptr_t)15);
    uint64_t* sp = top - 8;
    uint32_t mxcsr_fpcw[2];
    asm volatile("stmxcsr %0" : "=m"(mxcsr_fpcw[0]));
    asm volatile("fnstcw %0" : "=m"(mxcsr_fpcw[1]));
    memcpy(&sp[0], mxcsr_fpcw, 8);             // popped into MXCSR and the x87 control word
    for (int i = 1; i <= 6; i++) sp[i] = 0;    // r15 r14 r13 r12 rbx rbp (rbp 0 ends a backtrace)
    sp[7] = (uint64_t)(uintptr_t)emu_context_start;  // where the switch's `ret` goes
    f->sp = sp;
#else
    getcontext(&f->ctx);
    f->ctx.uc_stack.ss_sp = f->stack;
    f->ctx.uc_stack.ss_size = f->stack_size;
    f->ctx.uc_link = NULL;
    makecontext(&f->ctx, emu_fiber_main, 0);
#endif
    f->fresh = false;
}

// Leaves `running` for `to`. With ThreadSanitizer the switch carries no happens-before edge (so races between
// CUDA threads are seen); the edges that do exist are explicit: the block's start, its barriers, its end.
static void switch_to(Fiber* to) {
    Fiber* from = running;
    if (to->fresh) fiber_prepare(to);
    running = to;
#ifdef EMU_TSAN_FIBERS
    if (!host_fiber.tsan_fiber && from == &host_fiber) host_fiber.tsan_fiber = __tsan_get_current_fiber();
    __tsan_switch_to_fiber(to->tsan_fiber, __tsan_switch_to_fiber_no_sync);
#endif
#ifdef EMU_ASAN
    __sanitizer_start_switch_fiber(&from->asan_fake_stack, to->stack, to->stack_size);
#endif
#if defined(__x86_64__)
    emu_context_switch(&from->sp, to->sp);
#else
    swapcontext(&from->ctx, &to->ctx);
#endif
#ifdef EMU_ASAN
    const void* bottom;
    size_t size;
    __sanitizer_finish_switch_fiber(from->asan_fake_stack, &bottom, &size);
#endif
}

// ----------------------------------------------------------------------------------------------------
// device memory: every cudaMalloc is its own host allocation, so AddressSanitizer sees an access past it. Without
// AddressSanitizer each allocation has a guard zone on either side, checked after each kernel that was given a
// pointer into it. Each allocation starts at a multiple of 256 bytes, as cudaMalloc's do (kernels' float4
// accesses and cuBLAS rely on it). New memory is filled with all bits set (a NaN as float or double, -1 as int), so a kernel that
// reads what nobody wrote shows it.

struct Allocation {
    char* base;
    size_t bytes;
};
static std::map<uintptr_t, Allocation> allocations;  // by base address
static size_t allocated_bytes = 0;
static const size_t DEVICE_MEMORY = 80ull << 30;  // what cudaMemGetInfo reports as total (an H100's 80 GB)
#ifdef EMU_ASAN
static const size_t GUARD = 0;
#else
static const size_t GUARD = 256;  // a multiple of the alignment below, so the base keeps it
#endif
static const size_t DEVICE_ALIGNMENT = 256;  // cudaMalloc's (at least 256 bytes): what float4 and cuBLAS may assume
static const unsigned char GUARD_BYTE = 0xA5;

static const Allocation* find_allocation(const void* p) {
    uintptr_t a = (uintptr_t)p;
    auto it = allocations.upper_bound(a);
    if (it == allocations.begin()) return NULL;
    --it;
    const Allocation& al = it->second;
    return a <= (uintptr_t)al.base + al.bytes ? &al : NULL;  // one past the end still names the allocation
}

bool is_device_range(const void* p, size_t bytes) {
    const Allocation* al = find_allocation(p);
    return al && (uintptr_t)p + bytes <= (uintptr_t)al->base + al->bytes;
}

static bool guards_intact(const Allocation* al) {
    for (size_t i = 0; i < GUARD; i++)
        if ((unsigned char)al->base[-1 - (long)i] != GUARD_BYTE || (unsigned char)al->base[al->bytes + i] != GUARD_BYTE)
            return false;
    return true;
}

// ----------------------------------------------------------------------------------------------------
// the block scheduler. One block at a time; its threads are claimed in order (reverse order in odd blocks) by
// runner fibers: a runner runs one thread after another to completion, so a kernel without barriers costs one
// fiber and no switches. A thread that waits (at __syncthreads or a warp intrinsic) keeps its runner, and the
// scheduler starts another runner for the next thread. When every thread that has not returned waits at the
// barrier, they all become runnable, in the block's order; a warp intrinsic completes when every lane of its mask
// has arrived.

enum ThreadState { T_UNSTARTED, T_RUNNING, T_RUNNABLE, T_BARRIER, T_WARP, T_DONE };
enum WarpOp { W_SHFL_IDX, W_SHFL_UP, W_SHFL_DOWN, W_SHFL_XOR, W_BALLOT, W_ANY, W_ALL, W_SYNCWARP };
static const char* warp_op_name(int op) {
    static const char* names[] = {"__shfl_sync", "__shfl_up_sync", "__shfl_down_sync", "__shfl_xor_sync",
                                  "__ballot_sync", "__any_sync", "__all_sync", "__syncwarp"};
    return names[op];
}

struct ThreadSlot {
    Thread t;
    int state;
    Fiber* fiber;       // the runner running it (while started and not done)
    uint64_t result;    // a warp intrinsic's result for this lane
};

struct WarpGroup {     // one warp intrinsic in progress: the lanes of `mask` that have arrived
    bool active;
    int op, width;
    unsigned mask, arrived;
    uint64_t value[32];
    int arg[32];
};

static const int MAX_THREADS = 1024, MAX_GROUPS = 4;
struct BlockRun {
    Launch* launch;
    int nthreads, claimed, done, at_barrier;
    bool reverse, failed;
    unsigned barrier_generation;
    ThreadSlot threads[MAX_THREADS];
    WarpGroup groups[MAX_THREADS / 32][MAX_GROUPS];
    unsigned warp_generation[MAX_THREADS / 32];
    Fiber* runnable[MAX_FIBERS];  // a ring: the fibers whose threads may run, in order
    int runnable_head, runnable_count;
    void* dynamic_shared;
};
static BlockRun block;
// addresses for ThreadSanitizer's release/acquire pairs: [parity][0] the barrier, [parity][1 + w] warp w's
// __syncwarp; block_start: the scheduler's set-up before every thread; block_end: every thread before what follows
static char tsan_sync[2][1 + MAX_THREADS / 32], block_start, block_end;

#ifdef EMU_TSAN_FIBERS
// Under ThreadSanitizer each CUDA thread index has a fiber of its own, with a context of its own (reused block
// after block), so it reports races between the threads of a block. A fiber does not carry several CUDA threads
// there: ThreadSanitizer would take one stack's addresses, used by two threads in turn, for a race.
static Fiber* thread_fiber[MAX_THREADS];
static void tsan_release(void* a) { __tsan_release(a); }
static void tsan_acquire(void* a) { __tsan_acquire(a); }
#else
static void tsan_release(void*) {}
static void tsan_acquire(void*) {}
#endif

static ThreadSlot* self() { return &block.threads[current_thread.load(std::memory_order_relaxed)->linear]; }

static const char* state_name(int s) {
    static const char* names[] = {"not started", "running", "runnable", "at __syncthreads", "at a warp intrinsic",
                                  "returned"};
    return names[s];
}

// The block cannot go on: say why (the launch is named by block_fail's caller), abandon its fibers.
static void block_fail(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
static void block_fail(const char* fmt, ...) {
    char what[700];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    const Launch* l = block.launch;
    report("kernel %s (launched at %s:%d), block (%u, %u, %u): %s", l->name, l->file, l->line, blockIdx.x, blockIdx.y,
           blockIdx.z, what);
    block.failed = true;
    fault(cudaErrorLaunchFailure);
    tsan_release(&block_end);  // the message written here happens before the host reads it
}

// back to the scheduler until made runnable again (a fault: never)
static void suspend() { switch_to(&host_fiber); }

static void make_runnable(ThreadSlot* s) {
    s->state = T_RUNNABLE;
    block.runnable[(block.runnable_head + block.runnable_count++) % MAX_FIBERS] = s->fiber;
}

// every thread waiting at the barrier becomes runnable, in the block's order
static void barrier_release() {
    int n = block.nthreads;
    for (int k = 0; k < n; k++) {
        ThreadSlot* s = &block.threads[block.reverse ? n - 1 - k : k];
        if (s->state == T_BARRIER) make_runnable(s);
    }
    block.at_barrier = 0;
    block.barrier_generation++;
}

static void warp_check_exit(int linear);

// the CUDA threads a runner fiber runs, one after another, until the block has none left to start
static void runner_loop() {
    for (;;) {
        if (block.failed || block.claimed >= block.nthreads) return;
        int k = block.claimed++;
        int t = block.reverse ? block.nthreads - 1 - k : k;
        ThreadSlot* s = &block.threads[t];
        s->fiber = running;
        running->thread = t;
        s->state = T_RUNNING;
        current_thread.store(&s->t, std::memory_order_relaxed);
        tsan_acquire(&block_start);  // it sees what the scheduler set up
        block.launch->body(block.launch->args);
        tsan_release(&block_end);    // what follows the block sees all it did
        s->state = T_DONE;
        block.done++;
        warp_check_exit(t);
        if (block.at_barrier > 0 && block.at_barrier == block.nthreads - block.done) barrier_release();
#ifdef EMU_TSAN_FIBERS
        return;  // one thread per fiber (thread_fiber)
#endif
    }
}

extern "C" void emu_fiber_main() {
#ifdef EMU_ASAN
    const void* bottom;
    size_t size;
    __sanitizer_finish_switch_fiber(NULL, &bottom, &size);
    if (!host_fiber.stack) {  // the first switch came from the host's stack: its bounds, for switching back
        host_fiber.stack = (char*)bottom;
        host_fiber.stack_size = size;
    }
#endif
    for (;;) {
        runner_loop();
#ifndef EMU_TSAN_FIBERS
        parked[num_parked++] = running;
#endif
        suspend();
    }
}

// runs block `block_linear` of launch l; false when it failed
static bool run_block(Launch* l, unsigned block_linear, size_t static_shared_bytes, char* static_shared) {
    block.launch = l;
    dim3 bd = l->cfg.block;
    int n = (int)(bd.x * bd.y * bd.z);
    block.nthreads = n;
    block.claimed = block.done = block.at_barrier = 0;
    block.reverse = block_linear % 2 == 1;
    block.failed = false;
    block.barrier_generation = 0;
    block.runnable_head = block.runnable_count = 0;
    for (int t = 0; t < n; t++) {
        ThreadSlot* s = &block.threads[t];
        s->t.idx.x = t % bd.x;
        s->t.idx.y = t / bd.x % bd.y;
        s->t.idx.z = t / (bd.x * bd.y);
        s->t.linear = t;
        s->state = T_UNSTARTED;
        s->fiber = NULL;
    }
    for (int w = 0; w < (n + 31) / 32; w++) {
        for (int g = 0; g < MAX_GROUPS; g++) block.groups[w][g].active = false;
        block.warp_generation[w] = 0;
    }
    if (static_shared_bytes) memset(static_shared, 0xFF, static_shared_bytes);  // shared memory starts undefined
    block.dynamic_shared = malloc(l->cfg.shared_bytes ? l->cfg.shared_bytes : 1);
    memset(block.dynamic_shared, 0xFF, l->cfg.shared_bytes);
    tsan_release(&block_start);

    while (!block.failed) {
        Fiber* f = NULL;
        if (block.runnable_count > 0) {
            f = block.runnable[block.runnable_head];
            block.runnable_head = (block.runnable_head + 1) % MAX_FIBERS;
            block.runnable_count--;
            ThreadSlot* s = &block.threads[f->thread];  // the thread it carries runs again
            s->state = T_RUNNING;
            current_thread.store(&s->t, std::memory_order_relaxed);
        } else if (block.claimed < n) {  // a runner for the threads not yet started
#ifdef EMU_TSAN_FIBERS
            int t = block.reverse ? n - 1 - block.claimed : block.claimed;  // the thread it will claim
            f = thread_fiber[t] ? thread_fiber[t] : (thread_fiber[t] = fiber_new());
#else
            f = num_parked > 0 ? parked[--num_parked] : fiber_new();
#endif
        } else if (block.done == n) {
            break;
        } else {  // nobody can run, and not everyone has returned: the rest wait for each other forever
            int counts[6] = {0, 0, 0, 0, 0, 0}, first_warp = -1;
            for (int t = 0; t < n; t++) {
                counts[block.threads[t].state]++;
                if (first_warp < 0 && block.threads[t].state == T_WARP) first_warp = t;
            }
            char detail[200] = "";
            if (first_warp >= 0) {
                int w = first_warp / 32;
                for (int g = 0; g < MAX_GROUPS; g++)
                    if (block.groups[w][g].active) {
                        const WarpGroup& G = block.groups[w][g];
                        snprintf(detail, sizeof(detail), "; warp %d waits in %s (mask 0x%08x) for lanes 0x%08x", w,
                                 warp_op_name(G.op), G.mask, G.mask & ~G.arrived);
                        break;
                    }
            }
            block_fail("deadlock: %d threads wait at __syncthreads, %d at warp intrinsics, %d have returned%s",
                       counts[T_BARRIER], counts[T_WARP], counts[T_DONE], detail);
            break;
        }
        switch_to(f);
    }
    tsan_acquire(&block_end);
    free(block.dynamic_shared);
    block.dynamic_shared = NULL;
    if (block.failed) {  // abandon the frames of every fiber that is not parked
        num_parked = 0;
        for (int i = 0; i < num_fibers; i++) {
            fiber_reset(fiber_pool[i]);
            parked[num_parked++] = fiber_pool[i];
        }
        return false;
    }
    return true;
}

}  // namespace emu

// ----------------------------------------------------------------------------------------------------
// __syncthreads and the warp intrinsics (called from kernels, on a thread's fiber)

using namespace emu;

static void require_kernel(const char* what) {
    if (running == &host_fiber) {
        fprintf(stderr, "CUDA emulation: %s called outside a kernel\n", what);
        abort();
    }
}

void __syncthreads() {
    require_kernel("__syncthreads");
    ThreadSlot* s = self();
    void* sync = &tsan_sync[block.barrier_generation % 2][0];
    tsan_release(sync);
    s->state = T_BARRIER;
    block.at_barrier++;
    if (block.at_barrier == block.nthreads - block.done) barrier_release();
    suspend();
    tsan_acquire(sync);
}

namespace emu {
// a lane of a warp that returned while its warp waits for it in an intrinsic: undefined on the hardware
static void warp_check_exit(int linear) {
    int w = linear / 32, lane = linear % 32;
    for (int g = 0; g < MAX_GROUPS; g++) {
        WarpGroup& G = block.groups[w][g];
        if (G.active && (G.mask >> lane & 1) && !(G.arrived >> lane & 1)) {
            block_fail("thread %d (warp %d, lane %d) returned while lanes 0x%08x of its warp wait for it in %s with "
                       "mask 0x%08x", linear, w, lane, G.arrived, warp_op_name(G.op), G.mask);
            return;
        }
    }
}

// the lane whose value lane `lane` receives, or -1 for its own (PTX shfl: outside the lane's width segment)
static int shuffle_source(int op, int lane, int arg, int width) {
    int base = lane / width * width, src;
    if (op == W_SHFL_IDX) src = base + ((arg % width) + width) % width;
    else if (op == W_SHFL_UP) src = lane - arg;
    else if (op == W_SHFL_DOWN) src = lane + arg;
    else src = lane ^ arg;
    return src >= base && src < base + width ? src : -1;
}

// One lane's part in a warp intrinsic: it waits until every lane of `mask` has called the same intrinsic with
// the same mask, then each gets its result.
static uint64_t warp_sync_op(int op, unsigned mask, uint64_t value, int arg, int width) {
    require_kernel(warp_op_name(op));
    ThreadSlot* s = self();
    int linear = s->t.linear, w = linear / 32, lane = linear % 32;
    int lanes_here = block.nthreads - w * 32 < 32 ? block.nthreads - w * 32 : 32;
    unsigned existing = lanes_here == 32 ? 0xffffffffu : (1u << lanes_here) - 1;
    if (!(mask >> lane & 1)) {
        block_fail("thread %d (lane %d) calls %s with mask 0x%08x, which leaves out its own lane", linear, lane,
                   warp_op_name(op), mask);
        suspend();
    }
    if (mask & ~existing) {
        block_fail("thread %d calls %s with mask 0x%08x, but warp %d has only lanes 0x%08x (the block has %d threads)",
                   linear, warp_op_name(op), mask, w, existing, block.nthreads);
        suspend();
    }
    if (op <= W_SHFL_XOR && (width < 1 || width > 32 || (width & (width - 1)))) {
        block_fail("thread %d calls %s with width %d (a power of 2 up to 32)", linear, warp_op_name(op), width);
        suspend();
    }
    for (int l = 0; l < 32; l++)
        if ((mask >> l & 1) && block.threads[w * 32 + l].state == T_DONE) {
            block_fail("thread %d calls %s with mask 0x%08x, but lane %d of its warp has returned", linear,
                       warp_op_name(op), mask, l);
            suspend();
        }
    WarpGroup* G = NULL;
    for (int g = 0; g < MAX_GROUPS; g++) {
        WarpGroup& c = block.groups[w][g];
        if (!c.active) continue;
        if (c.mask == mask) G = &c;
        else if (c.mask & mask) {
            block_fail("lanes of warp %d disagree: thread %d calls %s with mask 0x%08x while lanes 0x%08x wait in %s "
                       "with mask 0x%08x", w, linear, warp_op_name(op), mask, c.arrived, warp_op_name(c.op), c.mask);
            suspend();
        }
    }
    if (G && (G->op != op || G->width != width)) {
        block_fail("lanes of warp %d disagree: thread %d calls %s (width %d) while lanes 0x%08x wait in %s (width %d), "
                   "mask 0x%08x", w, linear, warp_op_name(op), width, G->arrived, warp_op_name(G->op), G->width, mask);
        suspend();
    }
    if (!G) {
        for (int g = 0; g < MAX_GROUPS && !G; g++)
            if (!block.groups[w][g].active) G = &block.groups[w][g];
        if (!G) {
            block_fail("warp %d has more than %d intrinsics in progress at once", w, MAX_GROUPS);
            suspend();
        }
        G->active = true;
        G->op = op;
        G->width = width;
        G->mask = mask;
        G->arrived = 0;
    }
    G->value[lane] = value;
    G->arg[lane] = arg;
    G->arrived |= 1u << lane;
    s->state = T_WARP;
    void* sync = &tsan_sync[block.warp_generation[w] % 2][1 + w];
    if (op == W_SYNCWARP) tsan_release(sync);
    if (G->arrived == mask) {  // the last lane: every lane's result, then all continue in lane order
        unsigned ballot = 0;
        for (int l = 0; l < 32; l++)
            if ((mask >> l & 1) && G->value[l]) ballot |= 1u << l;
        for (int l = 0; l < 32; l++) {
            if (!(mask >> l & 1)) continue;
            ThreadSlot* t = &block.threads[w * 32 + l];
            uint64_t r = 0;
            if (op <= W_SHFL_XOR) {
                int src = shuffle_source(op, l, G->arg[l], width);
                if (src >= 0 && !(mask >> src & 1)) {
                    block_fail("thread %d reads lane %d in %s, which is not in the mask 0x%08x (undefined)",
                               w * 32 + l, src, warp_op_name(op), mask);
                    suspend();
                }
                r = G->value[src >= 0 ? src : l];
            } else if (op == W_BALLOT) r = ballot;
            else if (op == W_ANY) r = ballot != 0;
            else if (op == W_ALL) r = ballot == mask;
            t->result = r;
        }
        G->active = false;
        block.warp_generation[w]++;
        for (int l = 0; l < 32; l++)
            if (mask >> l & 1) make_runnable(&block.threads[w * 32 + l]);
    }
    suspend();
    if (op == W_SYNCWARP) tsan_acquire(sync);
    return s->result;
}

uint64_t shuffle(Shuffle mode, unsigned mask, uint64_t bits, int lane_arg, int width) {
    return warp_sync_op(W_SHFL_IDX + (int)mode, mask, bits, lane_arg, width);
}
}  // namespace emu

unsigned __ballot_sync(unsigned mask, int predicate) { return (unsigned)warp_sync_op(W_BALLOT, mask, predicate != 0, 0, 32); }
int __any_sync(unsigned mask, int predicate) { return (int)warp_sync_op(W_ANY, mask, predicate != 0, 0, 32); }
int __all_sync(unsigned mask, int predicate) { return (int)warp_sync_op(W_ALL, mask, predicate != 0, 0, 32); }
void __syncwarp(unsigned mask) { warp_sync_op(W_SYNCWARP, mask, 0, 0, 32); }
unsigned __activemask() {
    require_kernel("__activemask");
    int w = self()->t.linear / 32;
    unsigned m = 0;
    for (int l = 0; l < 32 && w * 32 + l < block.nthreads; l++)
        if (block.threads[w * 32 + l].state != T_DONE) m |= 1u << l;
    return m;
}
void __threadfence() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
void __threadfence_block() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }

void* emu::dynamic_shared() {
    require_kernel("dynamic shared memory");
    return block.dynamic_shared;
}

// ----------------------------------------------------------------------------------------------------
// launches: the configuration is checked when the launch is made (a bad one is refused, as cudaGetLastError then
// says); the kernel runs when the queue reaches it

namespace emu {

extern "C" char __start_emu_shared[] __attribute__((weak));
extern "C" char __stop_emu_shared[] __attribute__((weak));

static const size_t DEFAULT_DYNAMIC_SHARED = 48 * 1024, MAX_DYNAMIC_SHARED = 227 * 1024;
static std::map<const void*, size_t> dynamic_shared_limit;  // raised by cudaFuncSetAttribute

cudaError_t func_set_attribute(const void* func, cudaFuncAttribute attr, int value) {
    if (attr != cudaFuncAttributeMaxDynamicSharedMemorySize) {
        report("cudaFuncSetAttribute: attribute %d is not emulated", (int)attr);
        return set_last(cudaErrorInvalidValue);
    }
    if (value < 0 || (size_t)value > MAX_DYNAMIC_SHARED) {
        report("cudaFuncSetAttribute: %d bytes of dynamic shared memory (at most %zu on an H100)", value,
               MAX_DYNAMIC_SHARED);
        return set_last(cudaErrorInvalidValue);
    }
    dynamic_shared_limit[func] = (size_t)value;
    return cudaSuccess;
}

static std::map<std::string, double> kernel_costs;
static double device_seconds = 0.0;
double device_clock() { return device_seconds; }
void set_kernel_cost(const char* name_part, double seconds) {
    if (name_part) kernel_costs[name_part] = seconds;
    else kernel_costs.clear();
}

static void run_launch(Launch* l) {
    for (int i = 0; i < l->num_pointers; i++) {
        const void* p = l->pointers[i];
        if (p && !find_allocation(p)) {
            report("kernel %s (launched at %s:%d): argument %d (%p) is not device memory", l->name, l->file, l->line,
                   l->pointer_index[i] + 1, p);
            fault(cudaErrorIllegalAddress);
            return;
        }
    }
    for (auto& kc : kernel_costs)
        if (strstr(l->name, kc.first.c_str())) device_seconds += kc.second;
    dim3 g = l->cfg.grid;
    blockDim = l->cfg.block;
    gridDim = g;
    size_t static_shared = __start_emu_shared ? (size_t)(__stop_emu_shared - __start_emu_shared) : 0;
    counters.launches++;
    unsigned linear = 0;
    for (unsigned z = 0; z < g.z; z++)
        for (unsigned y = 0; y < g.y; y++)
            for (unsigned x = 0; x < g.x; x++, linear++) {
                blockIdx.x = x;
                blockIdx.y = y;
                blockIdx.z = z;
                counters.blocks++;
                counters.threads += (long long)l->cfg.block.x * l->cfg.block.y * l->cfg.block.z;
                if (!run_block(l, linear, static_shared, __start_emu_shared)) return;
            }
    for (int i = 0; i < l->num_pointers; i++) {
        const Allocation* al = l->pointers[i] ? find_allocation(l->pointers[i]) : NULL;
        if (al && !guards_intact(al)) {
            report("kernel %s (launched at %s:%d) wrote outside the %zu-byte device buffer at %p (argument %d)",
                   l->name, l->file, l->line, al->bytes, (void*)al->base, l->pointer_index[i] + 1);
            fault(cudaErrorIllegalAddress);
            return;
        }
    }
}

// ----------------------------------------------------------------------------------------------------
// the work queue: one stream, in order

struct Op {
    enum Kind { LAUNCH, COPY, SET, EVENT, WORK } kind;
    Launch* launch;
    void* dst;
    const void* src;
    size_t bytes;
    int value;
    EmuEvent* event;
    const char* what;
    std::function<void()> work;
};
static std::deque<Op> queue;
static const size_t QUEUE_LIMIT = 1024;  // as a GPU's launch queue: beyond it, the host waits
static int sync_mode = -1;               // EMU_SYNC=1: every operation runs when it is queued

}  // namespace emu

struct EmuEvent {
    bool recorded, done;
    double wall_seconds;  // when the queue reached the record
};

namespace emu {

static double wall_seconds() {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void free_launch(Launch* l) {
    l->destroy(l->args);
    delete l;
}

// Runs everything queued, in order. After a fault the rest is dropped, as a GPU drops a faulted context's work.
static void drain() {
    while (!queue.empty()) {
        Op op = std::move(queue.front());
        queue.pop_front();
        if (sticky_error != cudaSuccess) {
            if (op.kind == Op::LAUNCH) free_launch(op.launch);
            continue;
        }
        switch (op.kind) {
            case Op::LAUNCH:
                run_launch(op.launch);
                if (sticky_error == cudaSuccess) free_launch(op.launch);
                else delete op.launch;  // a faulted kernel's threads were abandoned mid-way: its arguments are leaked
                break;
            case Op::COPY: memmove(op.dst, op.src, op.bytes); break;
            case Op::SET: memset(op.dst, op.value, op.bytes); break;
            case Op::EVENT:
                op.event->done = true;
                op.event->wall_seconds = wall_seconds();
                break;
            case Op::WORK: op.work(); break;
        }
    }
}

// ----------------------------------------------------------------------------------------------------
// stream capture: while `capturing`, enqueue records into the graph instead of the queue (global mode: one capture
// at a time, and calls that stand outside the stream are refused, invalidating it)

}  // namespace emu
struct EmuGraph {
    std::vector<emu::Op> ops;  // their launches owned by the graph
};
struct EmuGraphExec {
    std::vector<emu::Op> ops;
};
namespace emu {

static EmuGraph* capturing = NULL;
static bool capture_invalidated = false;

static void free_ops(std::vector<Op>* ops) {
    for (Op& op : *ops)
        if (op.kind == Op::LAUNCH) free_launch(op.launch);
    ops->clear();
}
// an operation recorded or replayed: its own copy of a launch's argument block
static Op copy_op(const Op& op) {
    Op c = op;
    if (op.kind == Op::LAUNCH) {
        c.launch = new Launch(*op.launch);
        c.launch->args = op.launch->copy(op.launch->args);
    }
    return c;
}
// true (and the capture invalidated, the call failing) when a stream is capturing: `call` cannot be captured
static bool refused_in_capture(const char* call) {
    if (!capturing) return false;
    report("%s while a stream is capturing: not allowed in a capture (global mode): the capture is invalidated", call);
    capture_invalidated = true;
    set_last(cudaErrorStreamCaptureUnsupported);
    return true;
}
bool library_stream_ok(const char* call, cudaStream_t stream) {
    if (!capturing || (stream != 0 && stream != cudaStreamLegacy)) return true;
    report("%s on the legacy default stream (the library's stream 0: no cublasSetStream, or stream 0 passed) while "
           "a stream is capturing: the capture is invalidated", call);
    capture_invalidated = true;
    set_last(cudaErrorStreamCaptureImplicit);
    return false;
}

static void enqueue(Op op) {
    if (sync_mode < 0) sync_mode = getenv("EMU_SYNC") && atoi(getenv("EMU_SYNC")) != 0;
    if (capturing) {
        if (op.kind == Op::EVENT) {  // events in a capture: not emulated
            refused_in_capture("cudaEventRecord");
            return;
        }
        capturing->ops.push_back(std::move(op));
        return;
    }
    queue.push_back(std::move(op));
    if (sync_mode || queue.size() >= QUEUE_LIMIT) drain();
}

size_t queued_work() { return queue.size(); }

void enqueue_work(const char* what, std::function<void()> work) {
    Op op{};
    op.kind = Op::WORK;
    op.what = what;
    op.work = std::move(work);
    enqueue(std::move(op));
}

void enqueue_launch(Launch* l) {
    dim3 b = l->cfg.block, g = l->cfg.grid;
    unsigned long long threads = (unsigned long long)b.x * b.y * b.z;
    const char* bad = NULL;
    char why[200];
    if (threads == 0 || threads > 1024 || b.x > 1024 || b.y > 1024 || b.z > 64) {
        snprintf(why, sizeof(why), "block (%u, %u, %u) = %llu threads (at most 1024; x, y at most 1024, z at most 64)",
                 b.x, b.y, b.z, threads);
        bad = why;
    } else if (g.x == 0 || g.y == 0 || g.z == 0 || g.x > 2147483647u || g.y > 65535 || g.z > 65535) {
        snprintf(why, sizeof(why), "grid (%u, %u, %u) (x from 1 to 2^31 - 1, y and z from 1 to 65535)", g.x, g.y, g.z);
        bad = why;
    }
    if (bad) {
        report("launch of %s at %s:%d refused: %s", l->name, l->file, l->line, bad);
        set_last(cudaErrorInvalidConfiguration);
        free_launch(l);
        return;
    }
    auto it = dynamic_shared_limit.find(l->func);
    size_t limit = it != dynamic_shared_limit.end() ? it->second : DEFAULT_DYNAMIC_SHARED;
    if (l->cfg.shared_bytes > limit) {
        report("launch of %s at %s:%d refused: %zu bytes of dynamic shared memory, more than the kernel's %zu (above "
               "48 KiB a kernel must opt in with cudaFuncSetAttribute, up to 227 KiB)", l->name, l->file, l->line,
               l->cfg.shared_bytes, limit);
        set_last(cudaErrorInvalidValue);
        free_launch(l);
        return;
    }
    Op op{};
    op.kind = Op::LAUNCH;
    op.launch = l;
    enqueue(std::move(op));
}

static cudaError_t device_count_error = cudaSuccess;
static const int RUNTIME_VERSION = 13000;  // as the CUDA 13.0 toolkit the project builds with
static int driver_version = RUNTIME_VERSION;
void set_device_count_error(cudaError_t e, int driver) {
    device_count_error = e;
    driver_version = e == cudaSuccess ? RUNTIME_VERSION : driver;
}
void clear_errors() {
    last_error = sticky_error = cudaSuccess;
    message[0] = 0;
}

// the one line `make test` shows for the emulated binary, after doctest's summary
static struct Summary {
    ~Summary() {
        if (counters.launches)
            printf("CUDA emulation: %lld kernel launches (%lld blocks, %lld threads), %lld cuBLAS/cuSOLVER calls, "
                   "%d fibers\n", counters.launches, counters.blocks, counters.threads, counters.blas_calls,
                   num_fibers);
    }
} summary;

}  // namespace emu

// ----------------------------------------------------------------------------------------------------
// the runtime API

static cudaError_t check_sticky() { return sticky_error; }

cudaError_t cudaMalloc(void** p, size_t bytes) {
    if (!p) return set_last(cudaErrorInvalidValue);
    *p = NULL;
    if (emu::refused_in_capture("cudaMalloc")) return cudaErrorStreamCaptureUnsupported;
    if (bytes > DEVICE_MEMORY - allocated_bytes) {
        report("cudaMalloc: %zu bytes, %zu of the device's %zu in use", bytes, allocated_bytes, DEVICE_MEMORY);
        return set_last(cudaErrorMemoryAllocation);
    }
    char* raw = NULL;
    if (posix_memalign((void**)&raw, DEVICE_ALIGNMENT, bytes + 2 * GUARD + 1) != 0) return set_last(cudaErrorMemoryAllocation);
    char* base = raw + GUARD;
    memset(raw, GUARD_BYTE, GUARD);
    memset(base + bytes, GUARD_BYTE, GUARD);
    memset(base, 0xFF, bytes);
    allocations[(uintptr_t)base] = Allocation{base, bytes};
    allocated_bytes += bytes;
    *p = base;
    return cudaSuccess;
}

cudaError_t cudaFree(void* p) {
    if (!p) return cudaSuccess;
    if (emu::refused_in_capture("cudaFree")) return cudaErrorStreamCaptureUnsupported;
    drain();  // cudaFree waits for the work that may still use the memory
    auto it = allocations.find((uintptr_t)p);
    if (it == allocations.end()) {
        report("cudaFree(%p): not the start of a device allocation", p);
        return set_last(cudaErrorInvalidValue);
    }
    if (!guards_intact(&it->second))
        report("cudaFree(%p): something wrote outside this %zu-byte device buffer", p, it->second.bytes);
    allocated_bytes -= it->second.bytes;
    free((char*)p - GUARD);
    allocations.erase(it);
    return check_sticky();
}

// where a pointer lives, as cudaMemcpy's kind names it: true for device memory
static bool check_side(const void* p, size_t bytes, bool device, const char* which, const char* call,
                       cudaMemcpyKind kind) {
    static const char* kinds[] = {"HostToHost", "HostToDevice", "DeviceToHost", "DeviceToDevice", "Default"};
    const Allocation* al = find_allocation(p);
    if (device && (!al || !is_device_range(p, bytes))) {
        if (!al) report("%s(%s): the %s %p is not device memory", call, kinds[kind], which, p);
        else report("%s(%s): %zu bytes at the %s %p run past the end of its %zu-byte device buffer", call, kinds[kind],
                    bytes, which, p, al->bytes);
        return false;
    }
    if (!device && al) {
        report("%s(%s): the %s %p is device memory, where the kind says host", call, kinds[kind], which, p);
        return false;
    }
    return true;
}

static cudaError_t memcpy_checked(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, const char* call,
                                  bool async) {
    if (bytes == 0) return cudaSuccess;
    if (!dst || !src || (int)kind < 0 || (int)kind > 4) {
        report("%s: null pointer or unknown kind %d", call, (int)kind);
        return set_last(cudaErrorInvalidValue);
    }
    bool dst_dev = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice;
    bool src_dev = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice;
    if (kind == cudaMemcpyDefault) {
        dst_dev = find_allocation(dst) != NULL;
        src_dev = find_allocation(src) != NULL;
    }
    if (!check_side(dst, bytes, dst_dev, "destination", call, kind) || !check_side(src, bytes, src_dev, "source", call, kind))
        return set_last(cudaErrorInvalidValue);
    if (async && dst_dev && src_dev) {  // device to device: queued
        Op op{};
        op.kind = Op::COPY;
        op.dst = dst;
        op.src = src;
        op.bytes = bytes;
        enqueue(std::move(op));
        return cudaSuccess;
    }
    // with host memory (pageable), the copy waits for the queue and completes before returning (CUDA's rules for
    // pageable memory make cudaMemcpyAsync behave so too): no capture can hold it
    if (refused_in_capture(call)) return cudaErrorStreamCaptureUnsupported;
    drain();
    if (sticky_error != cudaSuccess) return sticky_error;
    memmove(dst, src, bytes);
    return cudaSuccess;
}

cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind) {
    return memcpy_checked(dst, src, bytes, kind, "cudaMemcpy", false);
}
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, cudaStream_t) {
    return memcpy_checked(dst, src, bytes, kind, "cudaMemcpyAsync", true);
}

cudaError_t cudaMemsetAsync(void* p, int value, size_t bytes, cudaStream_t) {
    if (bytes == 0) return cudaSuccess;
    if (!is_device_range(p, bytes)) {
        const Allocation* al = find_allocation(p);
        if (al) report("cudaMemset: %zu bytes at %p run past the end of its %zu-byte device buffer", bytes, p, al->bytes);
        else report("cudaMemset: %p is not device memory", p);
        return set_last(cudaErrorInvalidValue);
    }
    Op op{};
    op.kind = Op::SET;
    op.dst = p;
    op.value = value;
    op.bytes = bytes;
    enqueue(std::move(op));
    return cudaSuccess;
}
cudaError_t cudaMemset(void* p, int value, size_t bytes) {  // synchronous: cudaMemsetAsync is what a capture holds
    if (emu::refused_in_capture("cudaMemset")) return cudaErrorStreamCaptureUnsupported;
    return cudaMemsetAsync(p, value, bytes, 0);
}

cudaError_t cudaMemGetInfo(size_t* free_bytes, size_t* total_bytes) {
    if (free_bytes) *free_bytes = DEVICE_MEMORY - allocated_bytes;
    if (total_bytes) *total_bytes = DEVICE_MEMORY;
    return cudaSuccess;
}

cudaError_t cudaDeviceSynchronize() {
    if (emu::refused_in_capture("cudaDeviceSynchronize")) return cudaErrorStreamCaptureUnsupported;
    drain();
    return sticky_error;
}
cudaError_t cudaStreamSynchronize(cudaStream_t) { return cudaDeviceSynchronize(); }
cudaError_t cudaDeviceReset() {
    drain();
    emu::clear_errors();
    return cudaSuccess;
}

cudaError_t cudaGetLastError() {
    cudaError_t e = last_error != cudaSuccess ? last_error : sticky_error;
    last_error = cudaSuccess;
    return e;
}
cudaError_t cudaPeekAtLastError() { return last_error != cudaSuccess ? last_error : sticky_error; }

// each error's name and CUDA's own wording for it
static const struct {
    cudaError_t code;
    const char *name, *text;
} error_table[] = {
    {cudaSuccess, "cudaSuccess", "no error"},
    {cudaErrorInvalidValue, "cudaErrorInvalidValue", "invalid argument"},
    {cudaErrorMemoryAllocation, "cudaErrorMemoryAllocation", "out of memory"},
    {cudaErrorInitializationError, "cudaErrorInitializationError", "initialization error"},
    {cudaErrorInvalidConfiguration, "cudaErrorInvalidConfiguration", "invalid configuration argument"},
    {cudaErrorInvalidDevicePointer, "cudaErrorInvalidDevicePointer", "invalid device pointer"},
    {cudaErrorInvalidMemcpyDirection, "cudaErrorInvalidMemcpyDirection", "invalid copy direction for memcpy"},
    {cudaErrorInsufficientDriver, "cudaErrorInsufficientDriver",
     "CUDA driver version is insufficient for CUDA runtime version"},
    {cudaErrorInvalidDeviceFunction, "cudaErrorInvalidDeviceFunction", "invalid device function"},
    {cudaErrorNoDevice, "cudaErrorNoDevice", "no CUDA-capable device is detected"},
    {cudaErrorInvalidDevice, "cudaErrorInvalidDevice", "invalid device ordinal"},
    {cudaErrorInvalidResourceHandle, "cudaErrorInvalidResourceHandle", "invalid resource handle"},
    {cudaErrorNotReady, "cudaErrorNotReady", "device not ready"},
    {cudaErrorIllegalAddress, "cudaErrorIllegalAddress", "an illegal memory access was encountered"},
    {cudaErrorLaunchOutOfResources, "cudaErrorLaunchOutOfResources", "too many resources requested for launch"},
    {cudaErrorLaunchFailure, "cudaErrorLaunchFailure", "unspecified launch failure"},
    {cudaErrorStreamCaptureUnsupported, "cudaErrorStreamCaptureUnsupported",
     "operation not permitted when stream is capturing"},
    {cudaErrorStreamCaptureInvalidated, "cudaErrorStreamCaptureInvalidated",
     "operation failed due to a previous error during capture"},
    {cudaErrorStreamCaptureUnmatched, "cudaErrorStreamCaptureUnmatched",
     "capture was not initiated in this stream"},
    {cudaErrorStreamCaptureImplicit, "cudaErrorStreamCaptureImplicit",
     "operation would make the legacy stream depend on a capturing blocking stream"},
};
const char* cudaGetErrorName(cudaError_t e) {
    for (auto& row : error_table)
        if (row.code == e) return row.name;
    return "cudaErrorUnknown";
}
const char* cudaGetErrorString(cudaError_t e) {
    for (auto& row : error_table)
        if (row.code == e) return row.text;
    return "unknown error";
}

cudaError_t cudaGetDeviceCount(int* count) {
    if (!count) return set_last(cudaErrorInvalidValue);
    *count = 0;
    if (device_count_error != cudaSuccess) return set_last(device_count_error);
    *count = 1;
    return cudaSuccess;
}
cudaError_t cudaDriverGetVersion(int* version) {
    if (!version) return set_last(cudaErrorInvalidValue);
    *version = driver_version;
    return cudaSuccess;
}
cudaError_t cudaRuntimeGetVersion(int* version) {
    if (!version) return set_last(cudaErrorInvalidValue);
    *version = RUNTIME_VERSION;
    return cudaSuccess;
}
cudaError_t cudaGetDevice(int* device) {
    if (!device) return set_last(cudaErrorInvalidValue);
    *device = 0;
    return cudaSuccess;
}
cudaError_t cudaSetDevice(int device) { return device == 0 ? cudaSuccess : set_last(cudaErrorInvalidDevice); }

cudaError_t cudaGetDeviceProperties(cudaDeviceProp* prop, int device) {
    if (!prop || device != 0) return set_last(cudaErrorInvalidDevice);
    memset(prop, 0, sizeof(*prop));
    snprintf(prop->name, sizeof(prop->name), "CUDA emulation on the CPU (tests/emu)");
    prop->totalGlobalMem = DEVICE_MEMORY;
    prop->sharedMemPerBlock = DEFAULT_DYNAMIC_SHARED;
    prop->sharedMemPerBlockOptin = MAX_DYNAMIC_SHARED;
    prop->warpSize = 32;
    prop->maxThreadsPerBlock = 1024;
    prop->maxThreadsDim[0] = prop->maxThreadsDim[1] = 1024;
    prop->maxThreadsDim[2] = 64;
    prop->maxGridSize[0] = 2147483647;
    prop->maxGridSize[1] = prop->maxGridSize[2] = 65535;
    prop->multiProcessorCount = 1;
    prop->major = 9;
    prop->minor = 0;
    return cudaSuccess;
}

cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attr, int device) {
    if (!value || device != 0) return set_last(cudaErrorInvalidDevice);
    switch (attr) {
        case cudaDevAttrMaxThreadsPerBlock: *value = 1024; break;
        case cudaDevAttrMaxSharedMemoryPerBlock: *value = (int)DEFAULT_DYNAMIC_SHARED; break;
        case cudaDevAttrWarpSize: *value = 32; break;
        case cudaDevAttrMultiProcessorCount: *value = 1; break;
        case cudaDevAttrComputeCapabilityMajor: *value = 9; break;
        case cudaDevAttrComputeCapabilityMinor: *value = 0; break;
        case cudaDevAttrMaxSharedMemoryPerBlockOptin: *value = (int)MAX_DYNAMIC_SHARED; break;
        default: return set_last(cudaErrorInvalidValue);
    }
    return cudaSuccess;
}

cudaError_t cudaEventCreate(cudaEvent_t* event) {
    if (!event) return set_last(cudaErrorInvalidValue);
    *event = new EmuEvent();
    return cudaSuccess;
}
cudaError_t cudaEventDestroy(cudaEvent_t event) {
    if (!event) return set_last(cudaErrorInvalidResourceHandle);
    drain();
    delete event;
    return cudaSuccess;
}
cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t) {
    if (!event) return set_last(cudaErrorInvalidResourceHandle);
    event->recorded = true;
    event->done = false;
    Op op{};
    op.kind = Op::EVENT;
    op.event = event;
    enqueue(std::move(op));
    return cudaSuccess;
}
cudaError_t cudaEventSynchronize(cudaEvent_t event) {
    if (!event) return set_last(cudaErrorInvalidResourceHandle);
    if (emu::refused_in_capture("cudaEventSynchronize")) return cudaErrorStreamCaptureUnsupported;
    drain();
    return sticky_error;
}
cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t end) {
    if (!ms || !start || !end) return set_last(cudaErrorInvalidResourceHandle);
    if (!start->recorded || !end->recorded) return set_last(cudaErrorInvalidResourceHandle);
    if (!start->done || !end->done) return set_last(cudaErrorNotReady);
    *ms = (float)((end->wall_seconds - start->wall_seconds) * 1e3);
    return cudaSuccess;
}

// ----------------------------------------------------------------------------------------------------
// stream capture and graphs (cuda_emu.h says what is recorded and what is refused)

cudaError_t cudaStreamBeginCapture(cudaStream_t stream, cudaStreamCaptureMode mode) {
    if (stream == cudaStreamLegacy) {
        emu::report("cudaStreamBeginCapture: the legacy default stream cannot be captured");
        return emu::set_last(cudaErrorStreamCaptureUnsupported);
    }
    if (mode != cudaStreamCaptureModeGlobal) {
        emu::report("cudaStreamBeginCapture: only the global capture mode is emulated");
        return emu::set_last(cudaErrorInvalidValue);
    }
    if (emu::capturing) {
        emu::report("cudaStreamBeginCapture: a stream is capturing already");
        return emu::set_last(cudaErrorStreamCaptureUnsupported);
    }
    emu::capturing = new EmuGraph();
    emu::capture_invalidated = false;
    return cudaSuccess;
}

cudaError_t cudaStreamEndCapture(cudaStream_t stream, cudaGraph_t* graph) {
    if (!graph || stream == cudaStreamLegacy) return emu::set_last(cudaErrorInvalidValue);
    *graph = NULL;
    if (!emu::capturing) {
        emu::report("cudaStreamEndCapture: the stream is not capturing");
        return emu::set_last(cudaErrorStreamCaptureUnmatched);
    }
    EmuGraph* g = emu::capturing;
    emu::capturing = NULL;
    if (emu::capture_invalidated) {
        emu::free_ops(&g->ops);
        delete g;
        return emu::set_last(cudaErrorStreamCaptureInvalidated);
    }
    *graph = g;
    return cudaSuccess;
}

cudaError_t cudaStreamIsCapturing(cudaStream_t, cudaStreamCaptureStatus* status) {
    if (!status) return emu::set_last(cudaErrorInvalidValue);
    *status = !emu::capturing ? cudaStreamCaptureStatusNone
              : emu::capture_invalidated ? cudaStreamCaptureStatusInvalidated : cudaStreamCaptureStatusActive;
    return cudaSuccess;
}

cudaError_t cudaGraphInstantiate(cudaGraphExec_t* exec, cudaGraph_t graph, unsigned long long) {
    if (!exec || !graph) return emu::set_last(cudaErrorInvalidValue);
    *exec = new EmuGraphExec();
    for (const emu::Op& op : graph->ops) (*exec)->ops.push_back(emu::copy_op(op));
    return cudaSuccess;
}

cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t) {
    if (!exec) return emu::set_last(cudaErrorInvalidResourceHandle);
    if (emu::refused_in_capture("cudaGraphLaunch")) return cudaErrorStreamCaptureUnsupported;
    emu::counters.graph_launches++;
    for (const emu::Op& op : exec->ops) emu::enqueue(emu::copy_op(op));
    return emu::sticky_error;
}

cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec) {
    if (!exec) return emu::set_last(cudaErrorInvalidResourceHandle);
    cudaDeviceSynchronize();  // its copies are queued with launches of their own: nothing of the exec is in use
    emu::free_ops(&exec->ops);
    delete exec;
    return cudaSuccess;
}

cudaError_t cudaGraphDestroy(cudaGraph_t graph) {
    if (!graph) return emu::set_last(cudaErrorInvalidResourceHandle);
    emu::free_ops(&graph->ops);
    delete graph;
    return cudaSuccess;
}
