// adamw.h: AdamW exactly as torch.optim.AdamW computes it, the global gradient norm used for clipping, and
// the learning-rate schedules (linear warmup, then cosine or warmup-stable-decay).
// Flow: backward -> grad_norm -> (clip) -> adamw_update on each AdamW-managed slice (optim.h decides which).
#pragma once
#include "tensor.h"

// ----------------------------------------------------------------------------------------------------
// AdamW (Loshchilov & Hutter, arXiv 1711.05101), in torch.optim.AdamW's order of operations:
//   p ← p · (1 − lr·wd)                      decoupled weight decay, before the Adam step
//   m ← lerp(m, g, 1 − β1) = β1 m + (1 − β1) g
//   v ← β2 v + (1 − β2) g²
//   p ← p − (lr / (1 − β1ᵗ)) · m / (sqrt(v) / sqrt(1 − β2ᵗ) + eps)
// t counts from 1. grad_scale multiplies g first (gradient clipping folds in here).
static void adamw_update_cpu(float* param, const float* grad, float* m, float* v, size_t n, float lr, float beta1,
                             float beta2, float eps, float weight_decay, float grad_scale, int t) {
    float bias_correction1 = 1.0f - powf(beta1, (float)t);
    float bias_correction2_sqrt = sqrtf(1.0f - powf(beta2, (float)t));
    float step_size = lr / bias_correction1;
    float decay = 1.0f - lr * weight_decay;
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        float g = grad[i] * grad_scale;
        m[i] += (1.0f - beta1) * (g - m[i]);  // torch's lerp_
        v[i] = beta2 * v[i] + (1.0f - beta2) * g * g;
        float denom = sqrtf(v[i]) / bias_correction2_sqrt + eps;
        param[i] = param[i] * decay - step_size * m[i] / denom;
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
