// adamw.h: AdamW exactly as torch.optim.AdamW computes it, the global gradient norm used for clipping, and
// the learning-rate schedules (linear warmup, then cosine or warmup-stable-decay).
// Flow: backward -> grad_norm -> (clip) -> adamw_update_slices over the AdamW-managed slices (optim.h decides which).
#pragma once
#include "tensor.h"

// ----------------------------------------------------------------------------------------------------
// AdamW (Loshchilov & Hutter, arXiv 1711.05101), in torch.optim.AdamW's order of operations:
//   p ← p · (1 − lr·wd)                      decoupled weight decay, before the Adam step
//   m ← lerp(m, g, 1 − β1) = β1 m + (1 − β1) g
//   v ← β2 v + (1 − β2) g²
//   p ← p − (lr / (1 − β1ᵗ)) · m / (sqrt(v) / sqrt(1 − β2ᵗ) + eps)
// t counts from 1. grad_scale multiplies g first (gradient clipping folds in here).
// One element, in float (the CPU loop below and the CUDA kernel both call it): step_size = lr/(1 − β1ᵗ),
// decay = 1 − lr·wd, bc2_sqrt = sqrt(1 − β2ᵗ), all computed once per slice.
static HOST_DEVICE inline void adamw_element(float* p, float* m, float* v, float g, float beta1, float beta2,
                                             float eps, float step_size, float decay, float bc2_sqrt) {
    float mi = *m + (1.0f - beta1) * (g - *m);  // torch's lerp_
    float vi = beta2 * *v + (1.0f - beta2) * g * g;
    *m = mi;
    *v = vi;
    float denom = sqrtf(vi) / bc2_sqrt + eps;
    *p = *p * decay - step_size * mi / denom;
}

static void adamw_update_cpu(float* param, const float* grad, float* m, float* v, size_t n, float lr, float beta1,
                             float beta2, float eps, float weight_decay, float grad_scale, int t) {
    float bias_correction1 = 1.0f - powf(beta1, (float)t);
    float bias_correction2_sqrt = sqrtf(1.0f - powf(beta2, (float)t));
    float step_size = lr / bias_correction1;
    float decay = 1.0f - lr * weight_decay;
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++)
        adamw_element(&param[i], &m[i], &v[i], grad[i] * grad_scale, beta1, beta2, eps, step_size, decay,
                      bias_correction2_sqrt);
}

// One contiguous slice of the parameters with its own learning rate and decay (a slot of optim.h, or the part
// of it this rank updates: partition.h): the GPU path updates all of them in one launch; the CPU path loops.
struct AdamWSlice {
    size_t offset, count;  // into the flat parameter and gradient buffers
    size_t state;          // where its moments are in m and v (= offset, but for a rank's share of a run's)
    float lr, weight_decay;
};

static void adamw_update_slices_cpu(float* params, const float* grads, float* m, float* v, const AdamWSlice* slices,
                                    int num_slices, float beta1, float beta2, float eps, float grad_scale, int t) {
    for (int i = 0; i < num_slices; i++) {
        const AdamWSlice* s = &slices[i];
        adamw_update_cpu(params + s->offset, grads + s->offset, m + s->state, v + s->state, s->count, s->lr, beta1,
                         beta2, eps, s->weight_decay, grad_scale, t);
    }
}

// ----------------------------------------------------------------------------------------------------
// global gradient norm, sqrt(Σ g²) over all parameters, for clipping and the logs. Summed in double over
// fixed chunks that are then added in order, so it is the same number whatever the thread count.

static double grad_norm_cpu(const float* g, size_t n) {
    double partial[1024] = {0};  // at most 1024 chunks of at least 64K floats; their sizes depend only on n
    size_t chunk = n / 1024 + 1 > 65536 ? n / 1024 + 1 : 65536;
    int chunks = (int)((n + chunk - 1) / chunk);
#pragma omp parallel for schedule(static)
    for (int c = 0; c < chunks; c++) {
        size_t end = (c + 1) * chunk < n ? (c + 1) * chunk : n;
        double s = 0.0;
        for (size_t i = c * chunk; i < end; i++) s += (double)g[i] * g[i];
        partial[c] = s;
    }
    double total = 0.0;
    for (int c = 0; c < chunks; c++) total += partial[c];
    return sqrt(total);
}

// The factor that scales the gradients so their global norm is at most max_norm (1 when it already is,
// or when clipping is off: max_norm <= 0). A non-finite norm is left for the caller to report.
static float clip_scale(double norm, float max_norm) {
    if (max_norm <= 0.0f || !(norm > max_norm) || !isfinite(norm)) return 1.0f;
    return (float)(max_norm / norm);
}

#ifdef __CUDACC__
// ----------------------------------------------------------------------------------------------------
// CUDA: AdamW over every slice in one launch, and the gradient norm

#define ADAMW_CHUNK 4096  // parameters per block: blocks never straddle two slices

// A slice as the kernel sees it: the per-slice constants of adamw_update_cpu, computed on the host in the
// same float arithmetic, and the first block that works on it.
struct AdamWSliceGPU {
    size_t offset, count, state;
    float step_size, decay, bias_correction2_sqrt;
    int first_block;
};

// Block b finds its slice by binary search over first_block (a few hundred slices: ~9 steps), then its 256
// threads update parameters [offset + k·ADAMW_CHUNK, + ADAMW_CHUNK) of it with adamw_element (elementwise: nothing
// is summed, nothing depends on the launch shape). Where the slice's parameters and moments both start at a
// multiple of 4 floats (vec4: the four buffers 16-byte aligned), each thread takes four consecutive ones a pass with
// 128-bit accesses (float4), the last count % 4 one at a time; otherwise (slices start anywhere in the flat
// parameters) every 256th one.
static __global__ void adamw_update_kernel(float* params, const float* grads, float* m, float* v,
                                           const AdamWSliceGPU* slices, int num_slices, float beta1, float beta2,
                                           float eps, float grad_scale, bool vec4) {
    int lo = 0, hi = num_slices - 1;  // the last slice with first_block <= blockIdx.x
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if (slices[mid].first_block <= (int)blockIdx.x) lo = mid;
        else hi = mid - 1;
    }
    AdamWSliceGPU s = slices[lo];
    size_t begin = (size_t)(blockIdx.x - s.first_block) * ADAMW_CHUNK;
    size_t end = begin + ADAMW_CHUNK < s.count ? begin + ADAMW_CHUNK : s.count;
    if (vec4 && s.offset % 4 == 0 && s.state % 4 == 0) {  // begin is a multiple of ADAMW_CHUNK, so of 4
        size_t end4 = begin + (end - begin) / 4 * 4;
        for (size_t j = begin + 4 * threadIdx.x; j < end4; j += 4 * blockDim.x) {
            size_t i = s.offset + j, k = s.state + j;
            float4 p = *(float4*)(params + i), g = *(const float4*)(grads + i);
            float4 mk = *(float4*)(m + k), vk = *(float4*)(v + k);
            float* pe[4] = {&p.x, &p.y, &p.z, &p.w};
            float* me[4] = {&mk.x, &mk.y, &mk.z, &mk.w};
            float* ve[4] = {&vk.x, &vk.y, &vk.z, &vk.w};
            float ge[4] = {g.x, g.y, g.z, g.w};
            for (int e = 0; e < 4; e++)
                adamw_element(pe[e], me[e], ve[e], ge[e] * grad_scale, beta1, beta2, eps, s.step_size, s.decay,
                              s.bias_correction2_sqrt);
            *(float4*)(params + i) = p;
            *(float4*)(m + k) = mk;
            *(float4*)(v + k) = vk;
        }
        begin = end4;  // the tail, below
    }
    for (size_t j = begin + threadIdx.x; j < end; j += blockDim.x) {
        size_t i = s.offset + j, k = s.state + j;
        adamw_element(&params[i], &m[k], &v[k], grads[i] * grad_scale, beta1, beta2, eps, s.step_size, s.decay,
                      s.bias_correction2_sqrt);
    }
}

// adamw_update_slices_cpu on device buffers; `slices` is a host array. The slice table goes to the GPU with
// each call (32 bytes a slice); its device copy is kept and only grows.
static void adamw_update_slices_cuda(float* params, const float* grads, float* m, float* v, const AdamWSlice* slices,
                                     int num_slices, float beta1, float beta2, float eps, float grad_scale, int t) {
    static AdamWSliceGPU* table = NULL;  // host staging copy
    static int table_size = 0;
    static void* device_table = NULL;
    static size_t device_capacity = 0;
    if (num_slices <= 0) return;
    if (num_slices > table_size) {
        free(table);
        table = (AdamWSliceGPU*)xmalloc(sizeof(AdamWSliceGPU) * num_slices);
        table_size = num_slices;
    }
    float bias_correction1 = 1.0f - powf(beta1, (float)t);  // as adamw_update_cpu
    float bias_correction2_sqrt = sqrtf(1.0f - powf(beta2, (float)t));
    int blocks = 0;
    for (int i = 0; i < num_slices; i++) {
        AdamWSliceGPU* g = &table[i];
        g->offset = slices[i].offset;
        g->count = slices[i].count;
        g->state = slices[i].state;
        g->step_size = slices[i].lr / bias_correction1;
        g->decay = 1.0f - slices[i].lr * slices[i].weight_decay;
        g->bias_correction2_sqrt = bias_correction2_sqrt;
        g->first_block = blocks;
        blocks += (int)cuda_blocks(slices[i].count, ADAMW_CHUNK);
    }
    if (blocks == 0) return;
    size_t bytes = sizeof(AdamWSliceGPU) * num_slices;
    AdamWSliceGPU* d = (AdamWSliceGPU*)device_scratch_grow(&device_table, &device_capacity, bytes);
    cudaCheck(cudaMemcpy(d, table, bytes, cudaMemcpyHostToDevice));
    bool vec4 = aligned16(params) && aligned16(grads) && aligned16(m) && aligned16(v);
    adamw_update_kernel<<<blocks, 256>>>(params, grads, m, v, d, num_slices, beta1, beta2, eps, grad_scale, vec4);
    cudaCheckLaunch();
}

#define GRAD_NORM_BLOCKS 512   // fixed, not derived from the GPU: the same partial sums on any GPU
#define GRAD_NORM_THREADS 512

// Block b sums g² in double over i = b·512 + tid, stepping by the whole grid (512 x 512 threads), then the
// block's fixed tree: partial[b].
static __global__ void grad_norm_kernel(double* partial, const float* g, size_t n) {
    double s = 0.0;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        s += (double)g[i] * g[i];
    s = block_reduce_sum_double(s);
    if (threadIdx.x == 0) partial[blockIdx.x] = s;
}

// sqrt(Σ g²) of each of `count` buffers on the device, xs[k] of ns[k] floats, into out[k]: each buffer's 512
// partial sums (grad_norm_kernel) come back to the host, all in one copy, and are added in order, so each result
// is the same on every run and the same bits however many are measured together (it may differ from
// grad_norm_cpu in the last bits: the order of the double sums differs). One wait for the GPU for all of them
// (the caller needs the numbers: for clipping, the divergence check, the log).
static void grad_norms_cuda(const float* const* xs, const size_t* ns, int count, double* out) {
    static void* partial = NULL;
    static size_t capacity = 0;
    static double* host = NULL;
    static int host_count = 0;
    if (count <= 0) return;
    double* d = (double*)device_scratch_grow(&partial, &capacity, sizeof(double) * GRAD_NORM_BLOCKS * count);
    if (count > host_count) {
        free(host);
        host = (double*)xmalloc(sizeof(double) * GRAD_NORM_BLOCKS * count);
        host_count = count;
    }
    for (int k = 0; k < count; k++) {
        if (ns[k] == 0) continue;
        grad_norm_kernel<<<GRAD_NORM_BLOCKS, GRAD_NORM_THREADS>>>(d + (size_t)k * GRAD_NORM_BLOCKS, xs[k], ns[k]);
        cudaCheckLaunch();
    }
    cudaCheck(cudaMemcpy(host, d, sizeof(double) * GRAD_NORM_BLOCKS * count, cudaMemcpyDeviceToHost));
    for (int k = 0; k < count; k++) {
        double total = 0.0;
        for (int b = 0; b < GRAD_NORM_BLOCKS && ns[k] > 0; b++) total += host[(size_t)k * GRAD_NORM_BLOCKS + b];
        out[k] = sqrt(total);
    }
}
static double grad_norm_cuda(const float* g, size_t n) {
    double norm = 0.0;
    grad_norms_cuda(&g, &n, 1, &norm);
    return norm;
}
#endif

// ----------------------------------------------------------------------------------------------------
// by device: what optim.h calls

static double grad_norm(Device d, const float* g, size_t n) {
#ifdef __CUDACC__
    if (d == DEV_CUDA) return grad_norm_cuda(g, n);
#endif
    return grad_norm_cpu(g, n);
}
// the norms of `count` buffers, xs[k] of ns[k] floats, into out[k] (on the GPU with one wait for all)
static void grad_norms(Device d, const float* const* xs, const size_t* ns, int count, double* out) {
#ifdef __CUDACC__
    if (d == DEV_CUDA) return grad_norms_cuda(xs, ns, count, out);
#endif
    for (int k = 0; k < count; k++) out[k] = grad_norm_cpu(xs[k], ns[k]);
}

static void adamw_update_slices(Device d, float* params, const float* grads, float* m, float* v,
                                const AdamWSlice* slices, int num_slices, float beta1, float beta2, float eps,
                                float grad_scale, int t) {
#ifdef __CUDACC__
    if (d == DEV_CUDA) {
        adamw_update_slices_cuda(params, grads, m, v, slices, num_slices, beta1, beta2, eps, grad_scale, t);
        return;
    }
#endif
    adamw_update_slices_cpu(params, grads, m, v, slices, num_slices, beta1, beta2, eps, grad_scale, t);
}

// ----------------------------------------------------------------------------------------------------
// learning-rate schedules: each returns a multiplier in [0, 1] of every group's peak learning rate

enum ScheduleKind { SCHEDULE_COSINE, SCHEDULE_WSD, SCHEDULE_CONSTANT };

struct Schedule {
    ScheduleKind kind;
    int warmup_steps;     // linear ramp from 1/warmup to 1 over these steps
    int total_steps;      // the run's length; the decay ends here
    float final_frac;     // cosine: the multiplier at the end (0 = decay to zero)
    float cooldown_frac;  // wsd: the last fraction of the run that decays linearly to zero
};

// step counts from 0. Warmup as llm.c: (step + 1)/warmup, so the first step already moves.
static float lr_multiplier(const Schedule* s, int step) {
    if (step < s->warmup_steps) return (float)(step + 1) / s->warmup_steps;
    if (s->kind == SCHEDULE_CONSTANT) return 1.0f;
    int decay_steps = s->total_steps - s->warmup_steps;
    if (decay_steps <= 0) return 1.0f;
    if (s->kind == SCHEDULE_COSINE) {
        // ½(1 + cos(π·progress)) falls from 1 to 0; rescaled to end at final_frac
        float progress = fminf(1.0f, (float)(step - s->warmup_steps) / decay_steps);
        float cosine = 0.5f * (1.0f + cosf((float)M_PI * progress));
        return s->final_frac + (1.0f - s->final_frac) * cosine;
    }
    // warmup-stable-decay: flat at 1, then a straight line to 0 over the last cooldown_frac of the run
    int cooldown = (int)(s->cooldown_frac * s->total_steps + 0.5f);
    int start = s->total_steps - cooldown;
    if (step < start || cooldown <= 0) return 1.0f;
    return fmaxf(0.0f, (float)(s->total_steps - step) / cooldown);
}
