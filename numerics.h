// numerics.h: the formulas both devices compute with, written once (HOST_DEVICE: the CPU loops and the CUDA kernels
// call the same function): exp and tanh in a form the CPU vectorizes, bf16 and TF32 rounding as the tensor cores
// round, and bf16 as 16-bit storage (bfloat16).
// Flow: under device.h (which rounds whole buffers on either device with these) and everything above it.
#pragma once
#include "common.h"

// a function both the CPU and CUDA kernels call (an op's formula, written once)
#ifdef __CUDACC__
#include <cuda_runtime.h>  // __host__, __device__ (built into nvcc; the CPU emulation's stand-in defines them)
#define HOST_DEVICE __host__ __device__
#else
#define HOST_DEVICE
#endif

// ----------------------------------------------------------------------------------------------------
// exp and tanh in a form the CPU loops vectorize (libm's expf and tanhf are a call per element), the same
// formulas in the kernels, so both devices compute the same values

#ifdef __CUDACC__
#define FORCE_INLINE __forceinline__
#else
#define FORCE_INLINE inline __attribute__((always_inline))
#endif

// exp(x) for x <= 0. Write x = k·ln2 + r with k an integer and |r| <= ln2/2; then exp(x) = 2^k · exp(r),
// exp(r) by its Taylor series to r⁷ (the rest is below 0.35⁸/8! = 5e-9 relative), 2^k by writing k into a
// float's exponent bits. Within 2 ulp of expf; below x = -87 (where expf leaves the normal floats) it returns
// exp(-87) ≈ 1.6e-38 instead, which no sum notices. A NaN in gives a NaN out, so a diverged run still stops.
static HOST_DEVICE FORCE_INLINE float exp_nonpositive(float x) {
    const float log2e = 1.44269504f, ln2_hi = 0.693145752f, ln2_lo = 1.42860677e-6f;  // ln2 = hi + lo
    x = x < -87.0f ? -87.0f : x;
    float k = floorf(x * log2e + 0.5f);
    float r = (x - k * ln2_hi) - k * ln2_lo;
    float p = 1.0f + r * (1.0f + r * (0.5f + r * (1.0f / 6 + r * (1.0f / 24 + r * (1.0f / 120 + r * (1.0f / 720 + r * (1.0f / 5040)))))));
    k = k > -127.0f ? k : -127.0f;  // finite x gives k >= -126; a NaN x takes -127 here (and p carries the NaN)
    uint32_t bits = (uint32_t)((int)k + 127) << 23;
    float two_k;
    memcpy(&two_k, &bits, sizeof(two_k));
    return p * two_k;
}

// tanh(u) = sign(u) · (1 − e) / (1 + e) with e = exp(−2|u|) in (0, 1]: no overflow for any u. Within ~1e-7
// of tanhf in absolute terms (near u = 0 the relative error is larger, as 1 − e loses digits; GELU uses
// 1 + tanh, where only the absolute error counts).
static HOST_DEVICE FORCE_INLINE float tanh_by_exp(float u) {
    float e = exp_nonpositive(-2.0f * fabsf(u));
    float t = (1.0f - e) / (1.0f + e);
    return u < 0.0f ? -t : t;
}

// x rounded to bfloat16 (the top 16 bits of an fp32: 8 mantissa bits), to nearest even, and widened back: the
// value a bf16 tensor would hold. Rounding: add half an ulp of bf16 (less one, plus the kept lowest bit: ties go
// to even), then cut the low 16 bits. A NaN stays a NaN (its low bits could carry into the exponent).
static HOST_DEVICE FORCE_INLINE float bf16_round(float x) {
    uint32_t bits;
    memcpy(&bits, &x, sizeof(bits));
    if ((bits & 0x7fffffffu) > 0x7f800000u) return x;
    bits = (bits + 0x7fffu + ((bits >> 16) & 1u)) & 0xffff0000u;
    memcpy(&x, &bits, sizeof(x));
    return x;
}

// n values rounded to bf16 in place by the calling thread: the CPU loops' rounding points, on a row still in cache
// (a test inside their vectorized loops would slow the fp32 path; the caller's loop over rows is the parallel one)
static inline void bf16_round_row(float* x, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] = bf16_round(x[i]);
}

// 16-bit storage (the GPU at --precision bf16 keeps its largest activation, the logits, so: model.h): a bfloat16 is
// the top 16 bits of an fp32 (sign, 8 exponent bits, 7 stored mantissa bits). bf16_from_float rounds as bf16_round
// (a NaN stays a quiet NaN); bf16_to_float is exact. cuBLAS reads and writes these as CUDA_R_16BF.
typedef uint16_t bfloat16;
static HOST_DEVICE FORCE_INLINE bfloat16 bf16_from_float(float x) {
    uint32_t bits;
    memcpy(&bits, &x, sizeof(bits));
    if ((bits & 0x7fffffffu) > 0x7f800000u) return (bfloat16)((bits >> 16) | 0x40u);
    float rounded = bf16_round(x);
    memcpy(&bits, &rounded, sizeof(bits));
    return (bfloat16)(bits >> 16);
}
static HOST_DEVICE FORCE_INLINE float bf16_to_float(bfloat16 b) {
    uint32_t bits = (uint32_t)b << 16;
    float x;
    memcpy(&x, &bits, sizeof(x));
    return x;
}

// x as a tensor stores it: rounded to bf16 in a tensor of bf16 values (Tensor.bf16: --precision bf16), else as it
// is. Each op applies it to the values it writes into its outputs, so no pass of its own rounds them afterwards.
static HOST_DEVICE FORCE_INLINE float as_stored(float x, bool bf16) { return bf16 ? bf16_round(x) : x; }

// Value i of a tensor held in either storage: 16-bit where p16 is set (Tensor.data16), else fp32 (p); and x
// stored there, rounded as that tensor stores it (16-bit storage rounds as bf16_round).
static HOST_DEVICE FORCE_INLINE float load_value(const float* p, const bfloat16* p16, size_t i) {
    return p16 ? bf16_to_float(p16[i]) : p[i];
}
static HOST_DEVICE FORCE_INLINE void store_value(float* p, bfloat16* p16, size_t i, float x, bool bf16) {
    if (p16) p16[i] = bf16_from_float(x);
    else p[i] = as_stored(x, bf16);
}

// x rounded to TF32 (10 mantissa bits) as the tensor cores take an fp32 input (cvt.rna: ties away from zero)
static HOST_DEVICE FORCE_INLINE float tf32_round(float x) {
    uint32_t bits;
    memcpy(&bits, &x, sizeof(bits));
    if ((bits & 0x7f800000u) == 0x7f800000u) return x;  // inf and NaN as they are
    bits = (bits + 0x1000u) & 0xffffe000u;
    memcpy(&x, &bits, sizeof(x));
    return x;
}
