// optim.h: which optimizer updates which parameter, and one optimizer step over the whole model.
// The grouping is plain data: a table of slots (one per tensor and layer, from model.h), each marked with the
// update it gets. An AdamW run gives every slot to AdamW. A Muon-family run gives the hidden 2-D weights (qkv,
// attention projection, MLP in and out) to the matrix method (muon.h) and the rest (token/position embeddings,
// which are also the tied LM head, layernorm gains, biases) to AdamW, as Keller Jordan's reference and
// torch.optim.Muon do. The state is one allocation: m and v, each as large as the parameters, in the same
// layout (Muon keeps its momentum in m, and its second moments, if any, in v).
// Flow: backward -> optimizer_step (norm, clip, update every slot, health every N steps) -> next step.
#pragma once
#include "adamw.h"
#include "model.h"
#include "muon.h"

enum MatrixMethod { MATRIX_ADAMW, MATRIX_MUON };

struct OptimizerConfig {
    char name[48];             // the label in logs and tables: "adamw", "muon", "p=0.5", "muon+lr2", ...
    MatrixMethod matrix;       // how the hidden 2-D weights are updated
    float lr;                  // peak learning rate of the hidden matrices (of everything, in an AdamW run)
    float adam_lr;             // peak learning rate of the AdamW group in a Muon-family run
    float weight_decay;        // decoupled decay of the hidden matrices
    float adam_weight_decay;   // decoupled decay of the AdamW group's 2-D tensors (embeddings); never vectors
    float beta1, beta2, eps;   // AdamW's moments
    float grad_clip;           // clip the global gradient norm to this (0: off)
    int lr2_decay;             // weight decay ∝ lr² (arXiv 2512.08217), in both groups
    MuonHyper muon;            // the Muon family's knobs (MATRIX_MUON); its per-step fields are set at each step
    int split_qkv;             // orthogonalize Q, K and V apart instead of the fused (3C, C) matrix
};

struct Optimizer {
    OptimizerConfig cfg;
    Device device;
    int num_slots;
    ParamSlot* slots;                  // (num_slots) from gpt2_param_slots
    unsigned char* use_matrix_method;  // (num_slots) 1: the slot gets cfg.matrix's update; 0: AdamW
    AdamWSlice* adamw_slices;          // (num_slots) this step's AdamW slices
    size_t num_parameters;
    Arena state;                       // one allocation: m, then v
    float* m;                          // (num_parameters) first moment / momentum buffer
    float* v;                          // (num_parameters) second moment
    int t;                             // optimizer steps taken (bias corrections count from 1)
    double* work;                      // the CPU's Muon (and health) scratch: muon_work_doubles of the largest matrix
    float* work_gpu;                   // the GPU's Muon scratch: muon_work_floats_cuda of the largest slot
    // health metrics (every N steps, on the hidden matrices, whatever updates them)
    float* before;                     // (all hidden matrices, device) the weights before a measured step
    size_t* before_offset;             // (num_slots) where each hidden matrix's copy lies in `before`
    double* decay;                     // (num_slots) the weight decay factor the step applied to each slot
    double* update;                    // (largest matrix) CPU: one matrix's update, W_before·decay − W_after
    float* update_gpu;                 // (largest matrix) GPU: the same
    double* sv_host;                   // (smaller side of the largest matrix) singular values, host
    UpdateHealth* health;              // (num_slots) the last measured health, valid where health_step == t
    int health_step;
    double health_seconds;             // time the last step spent measuring health (not training time)
};

// ----------------------------------------------------------------------------------------------------
// the optimizers by name

// AdamW with llm.c's GPT-2 recipe: betas (0.9, 0.95), eps 1e-8, decay 0.1 on 2-D tensors, clip 1. The lr is
// higher than GPT-2 124M's 6e-4: the models here are small and the runs short.
static OptimizerConfig optimizer_config_adamw() {
    OptimizerConfig c;
    memset(&c, 0, sizeof(c));
    snprintf(c.name, sizeof(c.name), "adamw");
    c.matrix = MATRIX_ADAMW;
    c.lr = c.adam_lr = 1e-3f;
    c.weight_decay = c.adam_weight_decay = 0.1f;
    c.beta1 = 0.9f;
    c.beta2 = 0.95f;
    c.eps = 1e-8f;
    c.grad_clip = 1.0f;
    c.muon.beta2 = 0.95f;
    c.muon.ns_steps = 5;
    return c;
}

// Muon as Keller Jordan's reference sets it: lr 0.02, momentum 0.95 with Nesterov, 5 NS steps, the
// "original" shape scale, weight decay 0.01; the AdamW group keeps AdamW's settings.
static OptimizerConfig optimizer_config_muon() {
    OptimizerConfig c = optimizer_config_adamw();
    snprintf(c.name, sizeof(c.name), "muon");
    c.matrix = MATRIX_MUON;
    c.muon.method = MUON_NS;
    c.muon.base = BASE_MOMENTUM;
    c.muon.adjust = ADJUST_ORIGINAL;
    c.lr = 0.02f;
    c.weight_decay = 0.01f;
    c.muon.momentum = 0.95f;
    c.muon.nesterov = 1;
    return c;
}

#define OPTIMIZER_NAMES_HELP                                                                              \
    "adamw, muon (Newton-Schulz), polar (Polar Express), normuon, p=P or rms-p=P (U S^p V^T on the momentum " \
    "or on Adam's RMS-normalized update, P in {0, 0.25, 0.5, 1}); suffixes: +lr2 (weight decay ~ lr^2), "   \
    "+qkv (orthogonalize Q, K, V apart), +match (match_rms_adamw scale, AdamW's lr and wd)"

// The spectral family's matrix learning rates, from the Delving paper's GPT-2 124M configs
// (Ocram7/BeyondMuon config/gpt-124M-NS): momentum base p = 0, ¼, ½, 1 and RMS base the same.
static float spectral_lr(int rms_base, float p) {
    const float momentum_lr[4] = {7e-3f, 4e-2f, 2e-1f, 5.0f}, rms_lr[4] = {7e-3f, 2e-2f, 1e-2f, 4e-3f};
    int i = p <= 0.0f ? 0 : p <= 0.25f ? 1 : p <= 0.5f ? 2 : 3;
    return rms_base ? rms_lr[i] : momentum_lr[i];
}

// Muon's lr scale by matrix shape, by torch.optim.Muon's names (adjust_lr_fn): "original" (Keller Jordan),
// or "match_rms_adamw" (Moonlight), which also takes AdamW's lr and weight decay. 0, or -1 with a message.
static int optimizer_set_adjust_lr(OptimizerConfig* c, const char* name, char* err) {
    if (strcmp(name, "original") == 0) {
        c->muon.adjust = ADJUST_ORIGINAL;
    } else if (strcmp(name, "match_rms_adamw") == 0) {
        OptimizerConfig adamw = optimizer_config_adamw();
        c->muon.adjust = ADJUST_MATCH_RMS_ADAMW;  // Moonlight: AdamW's lr and wd carry over
        c->lr = adamw.lr;
        c->weight_decay = adamw.weight_decay;
    } else {
        return fail(err, "--adjust-lr: expected original or match_rms_adamw, got '%s'", name);
    }
    return 0;
}

// "name[+suffix...]" -> settings. 0, or -1 with a message.
static int optimizer_config_by_name(const char* full_name, OptimizerConfig* c, char* err) {
    char buf[48];
    if (strlen(full_name) >= sizeof(buf)) return fail(err, "optimizer name '%s' is too long", full_name);
    snprintf(buf, sizeof(buf), "%s", full_name);
    char* suffix = strchr(buf, '+');
    if (suffix) *suffix++ = 0;
    const char* name = buf;
    float p = 0.0f;
    int used = 0;  // "p=0.5" or "rms-p=0.5", the number to the end of the name
    bool spectral = (sscanf(name, "p=%f%n", &p, &used) == 1 || sscanf(name, "rms-p=%f%n", &p, &used) == 1) &&
                    name[used] == 0;
    if (strcmp(name, "adamw") == 0) {
        *c = optimizer_config_adamw();
    } else if (strcmp(name, "muon") == 0 || strcmp(name, "polar") == 0 || strcmp(name, "normuon") == 0) {
        *c = optimizer_config_muon();
        if (strcmp(name, "polar") == 0) c->muon.method = MUON_POLAR;
        if (strcmp(name, "normuon") == 0) c->muon.normuon = 1;
    } else if (spectral) {
        // "Delving into Muon and Beyond" (arXiv 2602.04669): p = 0 is Muon (NS, original scale); p > 0 takes
        // U Σ^p Vᵀ by the coupled Newton iteration, unscaled; weight decay 0 and Q, K, V apart, as their runs
        int rms = strncmp(name, "rms-", 4) == 0;
        if (!(p == 0.0f || p == 0.25f || p == 0.5f || p == 1.0f))
            return fail(err, "optimizer '%s': the spectral family takes p in {0, 0.25, 0.5, 1}", full_name);
        *c = optimizer_config_muon();
        c->muon.base = rms ? BASE_ADAM_RMS : BASE_MOMENTUM;
        c->muon.method = p == 0.0f ? MUON_NS : MUON_SPECTRAL;
        c->muon.p = p;
        c->muon.adjust = p == 0.0f ? ADJUST_ORIGINAL : ADJUST_NONE;
        c->lr = spectral_lr(rms, p);
        c->weight_decay = 0.0f;
        c->split_qkv = 1;
    } else {
        return fail(err, "unknown optimizer '%s' (expected %s)", full_name, OPTIMIZER_NAMES_HELP);
    }
    for (char* s = suffix; s; s = suffix) {
        suffix = strchr(s, '+');
        if (suffix) *suffix++ = 0;
        if (strcmp(s, "lr2") == 0) c->lr2_decay = 1;
        else if (strcmp(s, "qkv") == 0 && c->matrix == MATRIX_MUON) c->split_qkv = 1;
        else if (strcmp(s, "match") == 0 && c->matrix == MATRIX_MUON) optimizer_set_adjust_lr(c, "match_rms_adamw", err);
        else return fail(err, "optimizer '%s': unknown suffix '+%s' (expected +lr2, +qkv or +match)", full_name, s);
    }
    snprintf(c->name, sizeof(c->name), "%s", full_name);
    return 0;
}

// The defaults of each optimizer, one line each, for --help (what a flag left at -1 keeps).
static void optimizer_print_defaults(FILE* f) {
    const char* names[] = {"adamw", "muon", "polar", "normuon", "p=0.5", "rms-p=0.5"};
    char err[ERR_LEN];
    for (const char* name : names) {
        OptimizerConfig c;
        if (optimizer_config_by_name(name, &c, err)) continue;
        if (c.matrix == MATRIX_ADAMW) {
            fprintf(f, "  %-10s lr %g, wd %g (2-D tensors), beta1 %g, beta2 %g, eps %g, clip %g\n", name, c.lr,
                    c.weight_decay, c.beta1, c.beta2, c.eps, c.grad_clip);
            continue;
        }
        fprintf(f, "  %-10s hidden matrices: lr %g, wd %g, momentum %g, nesterov %d, ns-steps %d, adjust-lr %s%s; the rest "
                   "AdamW: lr %g, wd %g\n", name, c.lr, c.weight_decay, c.muon.momentum, c.muon.nesterov, c.muon.ns_steps,
                c.muon.adjust == ADJUST_ORIGINAL ? "original" : c.muon.adjust == ADJUST_MATCH_RMS_ADAMW ? "match_rms_adamw" : "none",
                c.split_qkv ? ", Q/K/V apart" : "", c.adam_lr, c.adam_weight_decay);
    }
}

// ----------------------------------------------------------------------------------------------------
// set-up

// the blocks one slot is orthogonalized in: the whole matrix, or Q, K and V apart for qkvw with split_qkv
static int matrix_blocks(const Optimizer* opt, const ParamSlot* s) {
    return opt->cfg.split_qkv && s->rows == 3 * s->cols && strstr(s->name, "qkvw") ? 3 : 1;
}

// the Muon half of a configuration with this step's lr, peak lr and step count
static MuonHyper muon_hyper(const OptimizerConfig* c, float lr, float lr_max, int t) {
    MuonHyper h = c->muon;
    h.lr = lr;
    h.lr_max = lr_max;
    h.weight_decay = c->weight_decay;
    h.lr2_decay = c->lr2_decay;
    h.eps = c->eps;
    h.step = t;
    return h;
}

// The AdamW half of a configuration, and the flags both halves share (the Muon half: muon_check). For one made
// by name these hold by construction; one read from a checkpoint is checked here before it is used.
static int optimizer_config_check(const OptimizerConfig* c, char* err) {
    int matrix;  // read as the int it is stored as: a file's value need not be a valid MatrixMethod
    memcpy(&matrix, &c->matrix, sizeof(matrix));
    if (!memchr(c->name, 0, sizeof(c->name)) || (matrix != MATRIX_ADAMW && matrix != MATRIX_MUON))
        return fail(err, "optimizer: unknown method %d or unterminated name", matrix);
    if (!(c->lr >= 0 && c->lr <= 1e6f) || !(c->adam_lr >= 0 && c->adam_lr <= 1e6f) ||
        !(c->weight_decay >= 0 && c->weight_decay <= 1e6f) || !(c->adam_weight_decay >= 0 && c->adam_weight_decay <= 1e6f) ||
        !(c->beta1 >= 0 && c->beta1 < 1) || !(c->beta2 >= 0 && c->beta2 < 1) || !(c->eps >= 0 && c->eps <= 1) ||
        !(c->grad_clip >= 0 && c->grad_clip <= 1e9f))
        return fail(err, "optimizer %s: lr %g, adam_lr %g, wd %g, adam_wd %g, beta1 %g, beta2 %g, eps %g, clip %g out of "
                    "range", c->name, c->lr, c->adam_lr, c->weight_decay, c->adam_weight_decay, c->beta1, c->beta2,
                    c->eps, c->grad_clip);
    const int flags[] = {c->lr2_decay, c->muon.normuon, c->muon.nesterov, c->split_qkv};
    for (int f : flags)
        if (f != 0 && f != 1) return fail(err, "optimizer %s: a 0/1 setting holds %d", c->name, f);
    return 0;
}

static int optimizer_init(Optimizer* opt, const GPT2* model, const OptimizerConfig* cfg, char* err) {
    memset(opt, 0, sizeof(*opt));
    if (optimizer_config_check(cfg, err)) return -1;
    opt->cfg = *cfg;
    opt->device = model->device;
    opt->slots = (ParamSlot*)xcalloc(4 + 12 * model->config.num_layers, sizeof(ParamSlot));
    opt->num_slots = gpt2_param_slots(&model->config, opt->slots);
    opt->use_matrix_method = (unsigned char*)xcalloc(opt->num_slots, 1);
    opt->adamw_slices = (AdamWSlice*)xcalloc(opt->num_slots, sizeof(AdamWSlice));
    opt->health = (UpdateHealth*)xcalloc(opt->num_slots, sizeof(UpdateHealth));
    opt->before_offset = (size_t*)xcalloc(opt->num_slots, sizeof(size_t));
    opt->decay = (double*)xcalloc(opt->num_slots, sizeof(double));
    size_t matrix_floats = 0;
    opt->health_step = -1;
    int max_rows = 1, max_cols = 1;
    MuonHyper h = muon_hyper(cfg, cfg->lr, cfg->lr, 1);
    for (int i = 0; i < opt->num_slots; i++) {
        const ParamSlot* s = &opt->slots[i];
        if (s->kind != PARAM_MATRIX) continue;
        opt->use_matrix_method[i] = cfg->matrix != MATRIX_ADAMW;
        opt->before_offset[i] = matrix_floats;
        matrix_floats += (size_t)s->rows * s->cols;
        if (s->rows > max_rows) max_rows = s->rows;
        if (s->cols > max_cols) max_cols = s->cols;
        int rows = s->rows / matrix_blocks(opt, s);
        if (opt->use_matrix_method[i] && muon_second_floats(rows, s->cols, &h) > (size_t)rows * s->cols)
            return fail(err, "optimizer %s: NorMuon on the RMS base needs more state than v holds", cfg->name);
    }
    if (cfg->matrix == MATRIX_MUON && muon_check(&h, err)) return -1;
    size_t largest = (size_t)max_rows * max_cols;
    opt->work = (double*)xmalloc(sizeof(double) * muon_work_doubles(max_rows, max_cols));
    opt->update = (double*)xmalloc(sizeof(double) * largest);
    opt->before = (float*)device_malloc(model->device, sizeof(float) * (matrix_floats ? matrix_floats : 1));
#ifdef __CUDACC__
    if (model->device == DEV_CUDA) {
        size_t work = 0;
        for (int i = 0; i < opt->num_slots; i++) {
            const ParamSlot* s = &opt->slots[i];
            int blocks = matrix_blocks(opt, s);
            size_t w = muon_work_floats_cuda(s->rows / blocks, s->cols, blocks);
            if (s->kind == PARAM_MATRIX && w > work) work = w;
        }
        opt->work_gpu = (float*)device_malloc(DEV_CUDA, sizeof(float) * work);
        opt->update_gpu = (float*)device_malloc(DEV_CUDA, sizeof(float) * largest);
        opt->sv_host = (double*)xmalloc(sizeof(double) * (max_rows < max_cols ? max_rows : max_cols));
    }
#endif
    opt->num_parameters = model->num_parameters;
    opt->state = arena_sizing(model->device);
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1) arena_allocate(&opt->state);
        opt->m = arena_take(&opt->state, opt->num_parameters);
        opt->v = arena_take(&opt->state, opt->num_parameters);
    }
    return 0;
}

static void optimizer_free(Optimizer* opt) {
    arena_free(&opt->state);
    free(opt->slots);
    free(opt->use_matrix_method);
    free(opt->adamw_slices);
    free(opt->health);
    free(opt->work);
    free(opt->update);
    device_free(opt->device, opt->before);
    free(opt->before_offset);
    free(opt->decay);
    if (opt->work_gpu) device_free(DEV_CUDA, opt->work_gpu);
    if (opt->update_gpu) device_free(DEV_CUDA, opt->update_gpu);
    free(opt->sv_host);
    memset(opt, 0, sizeof(*opt));
}

// Prints which tensors each optimizer updates, so a user sees the grouping before training starts.
static void optimizer_print_groups(const Optimizer* opt, FILE* f) {
    const OptimizerConfig* c = &opt->cfg;
    for (int group = 1; group >= 0; group--) {
        size_t count = 0;
        char names[4096] = "";
        for (int i = 0; i < opt->num_slots; i++) {
            const ParamSlot* s = &opt->slots[i];
            if (opt->use_matrix_method[i] != group) continue;
            count += (size_t)s->rows * s->cols;
            // name each tensor once: qkvw stands for h0.qkvw .. h{L-1}.qkvw
            const char* dot = strchr(s->name, '.');
            if (s->name[0] == 'h' && dot && strncmp(s->name, "h0.", 3) != 0) continue;
            char item[48];
            snprintf(item, sizeof(item), "%s%s", names[0] ? ", " : "", s->name[0] == 'h' && dot ? dot + 1 : s->name);
            if (strlen(names) + strlen(item) + 1 < sizeof(names)) strcat(names, item);
        }
        if (count == 0) continue;
        if (group == 1)
            fprintf(f, "optimizer %s: hidden matrices by %s%s%s (%.2fM params, lr %.3g, wd %.3g%s%s): %s\n", c->name,
                    c->muon.method == MUON_POLAR ? "Polar Express" : c->muon.method == MUON_SPECTRAL ? "U S^p V^T" : "Newton-Schulz",
                    c->muon.base == BASE_ADAM_RMS ? " of Adam's RMS-normalized update" : " of the momentum",
                    c->muon.normuon ? " + NorMuon" : "", count / 1e6, c->lr, c->weight_decay, c->lr2_decay ? " x lr^2" : "",
                    c->split_qkv ? ", Q/K/V apart" : "", names);
        else
            fprintf(f, "optimizer %s: AdamW (%.2fM params, lr %.3g, wd %.3g%s on 2-D, betas %.3g/%.3g): %s\n", c->name,
                    count / 1e6, c->matrix == MATRIX_ADAMW ? c->lr : c->adam_lr,
                    c->matrix == MATRIX_ADAMW ? c->weight_decay : c->adam_weight_decay, c->lr2_decay ? " x lr^2" : "",
                    c->beta1, c->beta2, names);
    }
}

// ----------------------------------------------------------------------------------------------------
// the step

// the Muon family on one hidden matrix (its blocks: Q, K, V apart for qkvw with split_qkv), on either device
static void matrix_method_step(Optimizer* opt, const ParamSlot* s, float* params, const float* grads,
                               const MuonHyper* h) {
    int blocks = matrix_blocks(opt, s), rows = s->rows / blocks;
    size_t block = (size_t)rows * s->cols;
    float *p = params + s->offset, *m = opt->m + s->offset, *v = opt->v + s->offset;
    const float* g = grads + s->offset;
#ifdef __CUDACC__
    if (opt->device == DEV_CUDA)  // the blocks of one slot in one batched call
        return muon_update_cuda(p, g, m, v, rows, s->cols, blocks, block, h, opt->work_gpu, NULL);
#endif
    for (int b = 0; b < blocks; b++)
        muon_update(p + b * block, g + b * block, m + b * block, v + b * block, rows, s->cols, h, opt->work, NULL);
}

// The health pass, after a step: each hidden matrix's update is what the step did to it, W_before·decay −
// W_after (the decay of the group that updated it), measured as muon.h's update_health says: its ranks and
// orthogonality, its cosine with the (clipped) gradient, its size, and the weight's spectral norm after it.
// Its time is not training time (opt->health_seconds).
static void optimizer_health(Optimizer* opt, const float* params, const float* grads) {
    for (int i = 0; i < opt->num_slots; i++) {
        const ParamSlot* s = &opt->slots[i];
        if (s->kind != PARAM_MATRIX) continue;
        size_t n = (size_t)s->rows * s->cols;
        const float *before = opt->before + opt->before_offset[i], *after = params + s->offset;
        double t0 = device_clock(opt->device);  // the step's queued work is the optimizer's time, not health's
#ifdef __CUDACC__
        if (opt->device == DEV_CUDA) {
            device_copy(DEV_CUDA, opt->update_gpu, before, n * sizeof(float));
            mx_axpby(opt->update_gpu, opt->decay[i], after, -1.0, n);  // before·decay − after
            opt->health[i] = update_health_cuda(opt->update_gpu, grads + s->offset, after, s->rows, s->cols,
                                                opt->sv_host);
        } else
#endif
        {
            for (size_t j = 0; j < n; j++) opt->update[j] = before[j] * opt->decay[i] - after[j];
            opt->health[i] = update_health(opt->update, grads + s->offset, after, s->rows, s->cols, opt->work);
        }
        opt->health_seconds += device_clock(opt->device) - t0;
    }
    opt->health_step = opt->t;
}

// One optimizer step at lr_mult × the peak learning rates: the global gradient norm; clipping, once, by
// scaling the gradients in place; the Muon family on each of its hidden matrices; AdamW on all its slices in
// one call. With `health`, the weights of the hidden matrices are kept first, and the health pass measures every
// update after. Returns the norm before clipping; if it is not finite, nothing is updated (the caller stops the
// run and keeps its last checkpoint).
static double optimizer_step(Optimizer* opt, GPT2* model, float lr_mult, bool health) {
    const OptimizerConfig* c = &opt->cfg;
    float* params = model->params[0].data;
    float* grads = model->params[0].grad;
    double norm = grad_norm(opt->device, grads, model->num_parameters);
    if (!isfinite(norm)) return norm;
    float scale = clip_scale(norm, c->grad_clip);
    if (scale != 1.0f) device_scale(opt->device, grads, model->num_parameters, scale);
    opt->t++;
    opt->health_seconds = 0.0;
    bool adamw_run = c->matrix == MATRIX_ADAMW;
    float adam_peak = adamw_run ? c->lr : c->adam_lr, adam_lr = adam_peak * lr_mult;
    // weight decay ∝ lr²: the factor 1 − lr·(wd·lr/lr_max) is 1 − wd·lr²/lr_max
    float adam_wd = adamw_run ? c->weight_decay : c->adam_weight_decay;
    if (c->lr2_decay) adam_wd *= lr_mult;
    MuonHyper h = muon_hyper(c, c->lr * lr_mult, c->lr, opt->t);
    int n_slices = 0;
    for (int i = 0; i < opt->num_slots; i++) {
        const ParamSlot* s = &opt->slots[i];
        if (health && s->kind == PARAM_MATRIX)
            device_copy(opt->device, opt->before + opt->before_offset[i], params + s->offset,
                        (size_t)s->rows * s->cols * sizeof(float));
        if (opt->use_matrix_method[i]) {
            matrix_method_step(opt, s, params, grads, &h);
            opt->decay[i] = decay_factor(h.lr, h.lr_max, h.weight_decay, h.lr2_decay);
        } else {
            AdamWSlice* sl = &opt->adamw_slices[n_slices++];
            sl->offset = s->offset;
            sl->count = (size_t)s->rows * s->cols;
            sl->lr = adam_lr;
            sl->weight_decay = s->kind == PARAM_VECTOR ? 0.0f : adam_wd;
            opt->decay[i] = 1.0 - (double)adam_lr * sl->weight_decay;
        }
    }
    adamw_update_slices(opt->device, params, grads, opt->m, opt->v, opt->adamw_slices, n_slices, c->beta1, c->beta2,
                        c->eps, 1.0f, opt->t);
    if (health) optimizer_health(opt, params, grads);
    return norm;
}

// The RMS of the hidden matrices' weights taken together, sqrt(Σ w² / n): the quantity the weight-decay rule
// sets at steady state (arXiv 2512.08217). One norm pass per matrix, logged every step (log.csv's matrix_rms).
static double hidden_matrix_rms(const Optimizer* opt, const float* params) {
    double sum_sq = 0.0, count = 0.0;
    for (int i = 0; i < opt->num_slots; i++) {
        const ParamSlot* s = &opt->slots[i];
        if (s->kind != PARAM_MATRIX) continue;
        double norm = grad_norm(opt->device, params + s->offset, (size_t)s->rows * s->cols);
        sum_sq += norm * norm;
        count += (double)s->rows * s->cols;
    }
    return count > 0 ? sqrt(sum_sq / count) : 0.0;
}
