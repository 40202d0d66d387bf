// tests/emu/internal.h: what the emulation's two halves share: tests/emu/runtime.cpp (memory, the work queue,
// launches) offers these to tests/emu/blas.cpp (cuBLAS and cuSOLVER, which queue their work like kernels).
#pragma once
#include <functional>
#include "cuda_emu.h"

namespace emu {
// true when [p, p + bytes) lies inside one device allocation
bool is_device_range(const void* p, size_t bytes);
// queues host code as one operation of the stream (a library call's computation), run in order with the kernels
void enqueue_work(const char* what, std::function<void()> work);
// an error the emulation found: one line on stderr (unless quiet), kept for last_message()
void report(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
void count_blas_call();
// false (the capture invalidated, the error noted) when a library call would run on the legacy default stream
// (`stream` 0 or cudaStreamLegacy, as a library sees it) while a stream captures: the caller fails the call
bool library_stream_ok(const char* call, cudaStream_t stream);
// a fault found while queued work ran: the sticky error every later synchronizing call returns
void fault(cudaError_t e);
}  // namespace emu
