// muon.h: Muon, the optimizer of the 2-D hidden weight matrices, and its variants: the update of one matrix as a
// pure function, the fp64 CPU reference and then its batched fp32 GPU twin. The orthogonalizers are in
// orthogonalize.h and spectral.h, the health metrics in health.h, the primitives in linalg.h. Flow: data -> model -> loss -> backward -> optimizer: optim.h hands every
// Muon-managed matrix to muon_update(); AdamW (adamw.h) keeps embeddings, head, gains and biases.
//
// What Muon does (KellerJordan/Muon; torch.optim.Muon since PyTorch 2.9), per weight W (rows, cols):
//   1. momentum       B <- B + (1-β)(G - B)   (β = 0.95: an exponential average of the gradient G)
//                     U = G + β(B - G) with Nesterov, else U = B
//   2. orthogonalize  O ≈ polar(U): for U = P Σ Qᵀ (SVD), O = P Qᵀ. Every singular direction of the step gets
//                     the same size, so the few dominant directions of a gradient no longer drown the rare
//                     ones; O is the steepest-descent step under the spectral norm.
//   3. scaled step    W <- W (1 - lr·wd) - lr·scale·O, scale = √max(1, rows/cols) ("original", Keller) or
//                     0.2·√max(rows, cols) ("match_rms_adamw", Moonlight arXiv 2502.16982: the update RMS
//                     then matches AdamW's, so AdamW's lr and wd carry over).
//
// Why the Newton–Schulz (NS) coefficients are what they are. One step X <- aX + b(XXᵀ)X + c(XXᵀ)²X maps
// X = P Σ Qᵀ to P φ(Σ) Qᵀ with φ(σ) = aσ + bσ³ + cσ⁵: it moves the singular values only, with nothing but
// matrix products (fast on a GPU; no SVD). Dividing X by ‖X‖_F first puts every σ in [0, 1]. The classic cubic
// (1.5, -0.5) converges to 1 but lifts a small σ by only 1.5x per step. Keller's quintic (3.4445, -4.7750,
// 2.0315) maximises the slope at zero, φ'(0) = a, so a σ of 1e-3 reaches order one within 5 steps
// (3.4445^5 ≈ 485); the price is that it never settles at 1 but oscillates in a band: 5 steps send σ/‖X‖_F in
// [0.01, 1] to [0.68, 1.13], and [1e-3, 1] to [0.47, 1.20] (tests/test_muon.cpp measures it on matrices).
// Training does not mind; what matters is that no direction is left behind.
//   Polar Express (Amsel et al., arXiv 2505.16932) uses a different (a, b, c) at each of its 5 steps, each the
// minimax-best quintic for the interval the singular values occupy after the step before: same cost, band
// [0.86, 1.14] for σ/‖X‖_F >= 1e-3 (the 1.01 in its normalisation is a safety margin).
//
// Variants (pure functions below; optim.h picks them per run through MuonHyper):
//   NorMuon (arXiv 2510.05491): per-row (per-neuron) Adam-like step sizes after orthogonalizing, since an
//     orthogonal update can still have very uneven row norms.
//   Spectral powers ("Delving into Muon and Beyond", arXiv 2602.04669): U Σ^p Vᵀ, from Muon (p = 0) to the raw
//     direction (p = 1), on a momentum or an Adam m̂/(√v̂ + ε) base.
//   Weight decay ∝ lr² (Chou, arXiv 2512.08217; AdamC, Defazio, arXiv 2506.02285): keeps weight norms steady
//     as the lr decays.
//   Health metrics ("Muon as a Residual Connection", arXiv 2607.01124): stable and effective rank and
//     orthogonality error of the update, its cosine with the gradient, its RMS, the weight's spectral norm.
//
// Conventions: matrices are row-major double (rows, cols); rows = fan-out (PyTorch's shape[0]); s = min(rows,
// cols), l = max(rows, cols), n = rows·cols. No function allocates: callers pass `work`; each function states
// how many doubles it needs, and muon_work_doubles(rows, cols) is enough for all of them. Matrix products run
// on OpenMP threads, each output row computed by one thread in a fixed order: results do not depend on the
// number of threads.
#pragma once
#include "health.h"
#include "spectral.h"

// ----------------------------------------------------------------------------------------------------
// the update for one Muon-managed matrix

enum MuonMethod { MUON_NS = 0, MUON_POLAR = 1, MUON_SPECTRAL = 2 };
enum MuonBase { BASE_MOMENTUM = 0, BASE_ADAM_RMS = 1 };
enum MuonAdjust { ADJUST_ORIGINAL = 0, ADJUST_MATCH_RMS_ADAMW = 1, ADJUST_NONE = 2 };

#define NORMUON_EPS 1e-10  // O_ij / (√v_i + eps), as the NorMuon code

// The knobs of the Muon family, as an optimizer's configuration holds them (OptimizerConfig.muon), and this
// step's values, which optimizer_step fills from the run (muon_hyper): the flag --momentum lands in `momentum`
// here and goes from here to the kernel.
struct MuonHyper {
    float momentum;      // β (β1 of the Adam base), 0.95
    int nesterov;        // 1: orthogonalize G + β(B - G) instead of B (momentum base only)
    int method;          // MUON_NS (Keller's quintic), MUON_POLAR (Polar Express), MUON_SPECTRAL (U Σ^p Vᵀ)
    double p;            // MUON_SPECTRAL: the power, in [0, 1]
    int base;            // BASE_MOMENTUM (Muon) or BASE_ADAM_RMS (Adam's m̂/(√v̂ + ε), arXiv 2602.04669)
    int normuon;         // 1: NorMuon's per-row normalization after orthogonalizing (arXiv 2510.05491)
    int adjust;          // lr scale: ADJUST_ORIGINAL, ADJUST_MATCH_RMS_ADAMW, ADJUST_NONE (muon_lr_scale)
    int ns_steps;        // MUON_NS: Newton–Schulz steps, 5
    int ns_bf16;         // 1: Newton–Schulz and Polar Express in bf16, as torch.optim.Muon (orthogonalize.h)
    float ns_gram;       // Newton–Schulz and Polar Express on the Gram matrix for a matrix whose long/short side
                         // ratio is >= ns_gram (muon_uses_gram; orthogonalize.h); 0: never (the default)
    float beta2;         // second-moment decay: Adam base and NorMuon, 0.95
    // this step's, set from the optimizer's shared settings at each step
    float lr;            // this step's learning rate (after warmup/decay)
    float lr_max;        // the schedule's peak lr (lr² weight decay only)
    float weight_decay;  // decoupled: W <- W (1 - lr·wd), or (1 - wd·lr²/lr_max) with lr2_decay
    int lr2_decay;       // 1: weight decay ∝ lr² (arXiv 2512.08217)
    float eps;           // Adam base: m̂/(√v̂ + eps)
    int step;            // 1-based step count, for Adam's bias correction
};

// lr multiplier for a (rows, cols) matrix, rows = fan-out, as torch.optim.Muon's _adjust_lr: original
// √max(1, rows/cols), match_rms_adamw 0.2·√max(rows, cols); ADJUST_NONE 1 (the spectral family's own choice)
static double muon_lr_scale(int rows, int cols, int adjust) {
    if (adjust == ADJUST_ORIGINAL) return sqrt(fmax(1.0, (double)rows / cols));
    if (adjust == ADJUST_MATCH_RMS_ADAMW) return 0.2 * sqrt((double)(rows > cols ? rows : cols));
    return 1.0;
}

// Whether the Newton–Schulz family runs on the Gram matrix (newton_schulz_gram_batch) for a (rows, cols) matrix:
// when ns_gram > 0 and max/min side >= ns_gram. It pays from a ratio of 1.5 in multiply-adds (orthogonalize.h);
// the same map in exact arithmetic, so the choice is only one of speed.
static bool muon_uses_gram(int rows, int cols, const MuonHyper* h) {
    double ratio = rows > cols ? (double)rows / cols : (double)cols / rows;
    return h->ns_gram > 0.0f && h->method != MUON_SPECTRAL && ratio >= h->ns_gram;
}

// per-step weight factor. Decoupled decay: 1 - lr_t·wd. With lr2_mode (arXiv 2512.08217; AdamC):
// 1 - wd·lr_t²/lr_max, equal to the former at the peak lr and shrinking with lr², which keeps weight norms steady.
static double decay_factor(double lr_t, double lr_max, double wd, int lr2_mode) {
    if (lr2_mode && lr_max > 0.0) return 1.0 - wd * lr_t * lr_t / lr_max;
    return 1.0 - lr_t * wd;
}

// floats of optimizer state `second` that muon_update needs besides the momentum (rows·cols): Adam's v
// (rows·cols) for the RMS base, then NorMuon's v (rows) when on. 0: pass NULL.
static size_t muon_second_floats(int rows, int cols, const MuonHyper* h) {
    return (h->base == BASE_ADAM_RMS ? (size_t)rows * cols : 0) + (h->normuon ? (size_t)rows : 0);
}

// checks a configuration once, at setup: 0, or -1 with one line in err
static int muon_check(const MuonHyper* h, char* err) {
    if (h->method < MUON_NS || h->method > MUON_SPECTRAL || h->base < BASE_MOMENTUM || h->base > BASE_ADAM_RMS ||
        h->adjust < ADJUST_ORIGINAL || h->adjust > ADJUST_NONE)
        return fail(err, "muon: unknown method %d, base %d or lr adjustment %d", h->method, h->base, h->adjust);
    if (h->method == MUON_SPECTRAL && !(h->p >= 0.0 && h->p <= 1.0))
        return fail(err, "muon: power p = %g (expected 0 <= p <= 1)", h->p);
    if (h->method == MUON_NS && (h->ns_steps < 1 || h->ns_steps > 99))
        return fail(err, "muon: ns_steps = %d (expected 1..99)", h->ns_steps);
    if (!(h->ns_gram >= 0.0f && h->ns_gram <= 1e6f))
        return fail(err, "muon: ns_gram = %g (expected a side ratio from 0, never, to 1e6)", h->ns_gram);
    if (h->ns_gram > 0.0f && h->ns_bf16)
        return fail(err, "--ns-gram %g with --ns-dtype bf16: Newton-Schulz on the Gram matrix is full precision only "
                    "(in bf16 it drifts)", h->ns_gram);
    if (!(h->momentum >= 0.0f && h->momentum < 1.0f))
        return fail(err, "muon: momentum = %g (expected 0 <= β < 1)", h->momentum);
    if ((h->normuon || h->base == BASE_ADAM_RMS) && !(h->beta2 >= 0.0f && h->beta2 < 1.0f))
        return fail(err, "muon: beta2 = %g (expected 0 <= β2 < 1)", h->beta2);
    if (!(h->lr >= 0.0f) || !(h->weight_decay >= 0.0f))
        return fail(err, "muon: lr %g, weight decay %g (expected >= 0)", h->lr, h->weight_decay);
    if (h->lr2_decay && !(h->lr_max > 0.0f))
        return fail(err, "muon: lr² weight decay needs lr_max > 0 (got %g)", h->lr_max);
    return 0;
}

// The elementwise parts of a step, in double (muon_update below and the CUDA kernels below both call them).
// Step 1 for one entry: the momentum B <- lerp(B, G, 1-β) (and for the RMS base Adam's v) updated in place as
// float state; returns the base direction: nesterov ? lerp(G, B, β) : B, or for the RMS base B̂/(√v̂ + ε) with
// bias corrections bc1 = 1 − βᵗ, bc2 = 1 − β2ᵗ.
static HOST_DEVICE inline double muon_base_element(float* momentum, float* v, double g, double beta, double beta2,
                                                   double bc1, double bc2, double eps, int nesterov, int rms) {
    *momentum = (float)(*momentum + (1.0 - beta) * (g - *momentum));
    if (rms) {
        *v = (float)(beta2 * *v + (1.0 - beta2) * g * g);
        return (*momentum / bc1) / (sqrt(*v / bc2) + eps);
    }
    return nesterov ? g + beta * (*momentum - g) : *momentum;
}

// Step 4 for one entry: W <- W·decay − step·u; returns the applied step step·u
static HOST_DEVICE inline double muon_apply_element(float* param, double u, double decay, double step) {
    double d = step * u;
    *param = (float)(*param * decay - d);
    return d;
}

// ----------------------------------------------------------------------------------------------------
// the elementwise steps and NorMuon's rows on either device: `count` matrices whose parameters and state lie
// `stride` floats apart; the direction u (and update_out) packed n apart, double on the CPU, float on the GPU

static void mx_muon_base(double* u, const float* grad, float* momentum, float* v, size_t n, int count, size_t stride,
                         double beta, double beta2, double bc1, double bc2, double eps, int nesterov, int rms) {
    for (int m = 0; m < count; m++) {
        size_t at = m * stride;
#pragma omp parallel for schedule(static) if (n >= 65536)
        for (size_t i = 0; i < n; i++)
            u[m * n + i] = muon_base_element(&momentum[at + i], rms ? &v[at + i] : NULL, grad[at + i], beta, beta2, bc1,
                                             bc2, eps, nesterov, rms);
    }
}

static void mx_muon_apply(float* param, const double* u, double* update_out, size_t n, int count, size_t stride,
                          double decay, double step) {
    for (int m = 0; m < count; m++) {
#pragma omp parallel for schedule(static) if (n >= 65536)
        for (size_t i = 0; i < n; i++) {
            double d = muon_apply_element(&param[m * stride + i], u[m * n + i], decay, step);
            if (update_out) update_out[m * n + i] = d;
        }
    }
}

// NorMuon's per-row step on O (count, rows, cols): v_r <- β2·v_r + (1-β2)·mean_j O_rj², O_r <- O_r/(√v_r + eps),
// v_r at v_rows + m·stride + r (float state)
static void mx_normuon_rows(double* O, int rows, int cols, int count, float* v_rows, size_t stride, double beta2,
                            double eps) {
    for (int m = 0; m < count; m++)
        for (int r = 0; r < rows; r++) {
            double* o = O + ((size_t)m * rows + r) * cols;
            double mean_sq = frobenius_norm(o, cols);
            mean_sq = mean_sq * mean_sq / cols;
            float* v = v_rows + m * stride + r;
            *v = (float)(beta2 * *v + (1.0 - beta2) * mean_sq);
            double d = sqrt((double)*v) + eps;
            for (int j = 0; j < cols; j++) o[j] /= d;
        }
}

#ifdef __CUDACC__
// Step 1 for entry i of matrix m: the momentum (and Adam's v for the RMS base) in place where they lie (stride),
// the direction u packed (m·n + i)
static __global__ void muon_base_kernel(float* u, const float* grad, float* momentum, float* v, size_t n,
                                        size_t stride, double beta, double beta2, double bc1, double bc2, float eps,
                                        int nesterov, int rms) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    size_t at = blockIdx.y * stride + i;
    u[blockIdx.y * n + i] =
        (float)muon_base_element(&momentum[at], rms ? &v[at] : NULL, grad[at], beta, beta2, bc1, bc2, eps, nesterov, rms);
}

// Step 4 for entry i of matrix m: W where it lies (stride), u and update_out packed
static __global__ void muon_apply_kernel(float* param, const float* u, float* update_out, size_t n, size_t stride,
                                         double decay, double step) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    double d = muon_apply_element(&param[blockIdx.y * stride + i], u[blockIdx.y * n + i], decay, step);
    if (update_out) update_out[blockIdx.y * n + i] = (float)d;
}

// NorMuon's rows (as mx_normuon_rows above): one warp per row r of matrix blockIdx.y
static __global__ void muon_normuon_rows_kernel(float* O, float* v_rows, int rows, int cols, size_t stride,
                                                double beta2, double eps) {
    int r = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (r >= rows) return;
    float* o = O + (blockIdx.y * (size_t)rows + r) * cols;
    double sq = 0.0;
    for (int j = lane; j < cols; j += 32) sq += (double)o[j] * o[j];
    sq = warp_reduce_sum_double(sq);
    float* v = v_rows + blockIdx.y * stride + r;
    float vr = (float)(beta2 * *v + (1.0 - beta2) * (sq / cols));
    __syncwarp();  // every lane has read *v before lane 0 overwrites it
    if (lane == 0) *v = vr;
    double d = sqrt((double)vr) + eps;
    for (int j = lane; j < cols; j += 32) o[j] = (float)(o[j] / d);
}

static void mx_muon_base(float* u, const float* grad, float* momentum, float* v, size_t n, int count, size_t stride,
                         double beta, double beta2, double bc1, double bc2, double eps, int nesterov, int rms) {
    muon_base_kernel<<<muon_grid(n, count), 256>>>(u, grad, momentum, v, n, stride, beta, beta2, bc1, bc2, (float)eps,
                                                   nesterov, rms);
    cudaCheckLaunch();
}
static void mx_muon_apply(float* param, const float* u, float* update_out, size_t n, int count, size_t stride,
                          double decay, double step) {
    muon_apply_kernel<<<muon_grid(n, count), 256>>>(param, u, update_out, n, stride, decay, step);
    cudaCheckLaunch();
}
static void mx_normuon_rows(float* O, int rows, int cols, int count, float* v_rows, size_t stride, double beta2,
                            double eps) {
    muon_normuon_rows_kernel<<<dim3(cuda_blocks(rows, 8), count), 256>>>(O, v_rows, rows, cols, stride, beta2, eps);
    cudaCheckLaunch();
}
#endif

// ----------------------------------------------------------------------------------------------------
// NorMuon and the update, written once over the primitives

// NorMuon (arXiv 2510.05491), on orthogonalized O (count, rows, cols), in the order of the authors' normuon.py:
//   v_i <- β2·v_i + (1-β2)·mean_j O_ij²   (v_rows, float state, starts at 0)
//   O_ij <- O_ij / (√v_i + eps)          (eps outside the root, as in the paper and the code)
//   O <- O·‖O_before‖_F / ‖O‖_F          (the update keeps Muon's size; the lr scaling comes after)
template <typename Real>
static void normuon_batch(Real* O, int rows, int cols, int count, float* v_rows, size_t stride, double beta2,
                          double eps) {
    size_t n = (size_t)rows * cols;
    const double* before = mx_norms(O, n, count, 1);
    mx_normuon_rows(O, rows, cols, count, v_rows, stride, beta2, eps);
    mx_scale_by_norm_ratio(O, n, count, before, mx_norms(O, n, count, 2));
}

// one matrix on the CPU, v_row (rows)
static void normuon_normalize(double* O, int rows, int cols, float* v_row, double beta2, double eps) {
    normuon_batch(O, rows, cols, 1, v_row, (size_t)rows, beta2, eps);
}

// One step for `count` same-shaped matrices W = param (rows, cols) lying `stride` floats apart in param, grad,
// momentum and second (the optimizer state has the parameters' layout), in place. For the defaults (MUON_NS,
// BASE_MOMENTUM, no NorMuon) this is torch.optim.Muon's step, with the orthogonalization in fp64 (the CPU) or
// fp32 (the GPU), or in bf16 as torch's (ns_bf16), on the Gram matrix where ns_gram says (muon_uses_gram):
//   B <- lerp(B, G, 1-β);  U = nesterov ? lerp(G, B, β) : B;  O = NS(U);  W <- W·decay - lr·scale·O
// momentum (rows, cols) and second (muon_second_floats) are float state, zero at the start. update_out (count,
// rows, cols), if not NULL, receives the applied steps lr·scale·O (so W_new = W·decay - update_out).
// work: count·(2n + 5s²) of Real.
template <typename Real>
static void muon_update_batch(float* param, const float* grad, float* momentum, float* second, int rows, int cols,
                              int count, size_t stride, const MuonHyper* h, Real* work, Real* update_out) {
    size_t n = (size_t)rows * cols;
    if (n == 0 || count <= 0) return;
    Real* u = work;                     // (count, rows, cols) the direction, then the orthogonalized update
    Real* scratch = work + count * n;   // for the orthogonalizer
    double beta = h->momentum, beta2 = h->beta2;
    // 1. the base direction (Adam's RMS base: β1 = momentum, v in `second`, the spectral family's)
    int rms = h->base == BASE_ADAM_RMS, t = h->step > 0 ? h->step : 1;
    double bc1 = 1.0 - pow(beta, t), bc2 = 1.0 - pow(beta2, t);
    mx_muon_base(u, grad, momentum, second, n, count, stride, beta, beta2, bc1, bc2, h->eps, h->nesterov, rms);
    // 2. orthogonalize, or take the spectral power
    bool polar = h->method == MUON_POLAR;
    const double* abc = polar ? &POLAR_EXPRESS_ABC[0][0] : NS_ABC;
    int abc_stride = polar ? 3 : 0, steps = polar ? 5 : h->ns_steps;
    double norm_mult = polar ? 1.01 : 1.0;
    if (h->method == MUON_SPECTRAL) spectral_power_batch(u, rows, cols, count, h->p, scratch);
    else if (muon_uses_gram(rows, cols, h))
        newton_schulz_gram_batch(u, rows, cols, count, abc, abc_stride, steps, norm_mult, scratch);
    else newton_schulz_batch(u, rows, cols, count, abc, abc_stride, steps, norm_mult, scratch, h->ns_bf16);
    // 3. NorMuon: per-neuron step sizes
    if (h->normuon) normuon_batch(u, rows, cols, count, second + (rms ? n : 0), stride, beta2, NORMUON_EPS);
    // 4. decay, then the scaled step
    double decay = decay_factor(h->lr, h->lr_max, h->weight_decay, h->lr2_decay);
    double step = (double)h->lr * muon_lr_scale(rows, cols, h->adjust);
    mx_muon_apply(param, u, update_out, n, count, stride, decay, step);
}

// one matrix on the CPU (the fp64 reference). work: 2n + 5s² doubles (muon_work_doubles).
static void muon_update(float* param, const float* grad, float* momentum, float* second, int rows, int cols,
                        const MuonHyper* h, double* work, double* update_out) {
    muon_update_batch(param, grad, momentum, second, rows, cols, 1, (size_t)rows * cols, h, work, update_out);
}

// work doubles enough for every function in this file on a (rows, cols) matrix: 2n + 5s² + rows + cols
static size_t muon_work_doubles(int rows, int cols) {
    size_t s = rows < cols ? rows : cols;
    return 2 * (size_t)rows * cols + 5 * s * s + rows + cols;
}

#ifdef __CUDACC__
// floats of `work` that muon_update_cuda needs for `count` matrices (rows, cols)
static size_t muon_work_floats_cuda(int rows, int cols, int count) {
    size_t s = rows < cols ? rows : cols;
    return (size_t)count * (2 * (size_t)rows * cols + 5 * s * s);
}

// `count` matrices on the GPU, in fp32 (cuBLAS in FP32: MUON_GEMM); the orthogonalization agrees with the CPU's
// fp64 to ~1e-5 of ‖O‖ (NS, Polar Express) (tests/test_gpu_muon.cu). work: muon_work_floats_cuda floats.
static void muon_update_cuda(float* param, const float* grad, float* momentum, float* second, int rows, int cols,
                             int count, size_t stride, const MuonHyper* h, float* work, float* update_out) {
    muon_update_batch(param, grad, momentum, second, rows, cols, count, stride, h, work, update_out);
}
#endif
