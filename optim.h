// optim.h: which optimizer updates which parameter, and one optimizer step over the whole model.
// The grouping is plain data: a table of slots (one per tensor and layer, from model.h), each marked with the
// update it gets. An AdamW run gives every slot to AdamW. A Muon-family run gives the hidden 2-D weights (qkv,
// attention projection, MLP in and out) to the matrix method (muon.h) and the rest (token/position embeddings,
// which are also the tied LM head, layernorm gains, biases) to AdamW, as Keller Jordan's reference and
// torch.optim.Muon do. The state is one allocation: m and v, each as large as the parameters this rank updates
// (all of them with one rank; its pieces, packed, with several: partition.h), Muon's momentum in m and its second
// moments, if any, in v. The optimizers by name and their settings: optimizers.h.
// Flow: backward -> optimizer_step (norm, clip, update this rank's pieces, gather them, health every N steps).
#pragma once
#include "model.h"
#include "optimizers.h"
#include "partition.h"

struct Optimizer {
    OptimizerConfig cfg;
    Device device;
    int num_slots;
    ParamSlot* slots;                  // (num_slots) from gpt2_param_slots
    unsigned char* use_matrix_method;  // (num_slots) 1: the slot gets cfg.matrix's update; 0: AdamW
    AdamWSlice* adamw_slices;          // (this rank's pieces) this step's AdamW slices
    size_t num_parameters;
    Partition part;                    // which parameters this rank updates (all of them with one rank)
    Arena state;                       // one allocation: m, then v
    float* m;                          // (part.floats[rank]) first moment / momentum buffer, packed by piece
    float* v;                          // (part.floats[rank]) second moment
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
// set-up

// the blocks one slot is orthogonalized in: the whole matrix, or Q, K and V apart for qkvw with split_qkv
static int matrix_blocks(const Optimizer* opt, const ParamSlot* s) {
    return opt->cfg.split_qkv && s->rows == 3 * s->cols && strstr(s->name, "qkvw") ? 3 : 1;
}

// rank of ranks: the share of the step this process takes (dist.h; one rank updates everything)
static int optimizer_init(Optimizer* opt, const GPT2* model, const OptimizerConfig* cfg, char* err, int rank = 0,
                          int ranks = 1) {
    memset(opt, 0, sizeof(*opt));
    if (optimizer_config_check(cfg, err)) return -1;
    opt->cfg = *cfg;
    opt->device = model->device;
    opt->slots = (ParamSlot*)xcalloc(4 + 12 * model->config.num_layers, sizeof(ParamSlot));
    opt->num_slots = gpt2_param_slots(&model->config, opt->slots);
    opt->use_matrix_method = (unsigned char*)xcalloc(opt->num_slots, 1);
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
    // a matrix method's cost, to deal its matrices among the ranks: a Newton–Schulz step on a block with sides
    // s <= l is two s x l x s products and one s³ (4s²l + 2s³ FLOPs), the same for every method's iteration; on
    // the Gram matrix (--ns-gram) 5 steps cost 2s²l + 17s³ multiply-adds (orthogonalize.h), a fifth of it a step
    double* cost = (double*)xcalloc(opt->num_slots, sizeof(double));
    for (int i = 0; i < opt->num_slots; i++) {
        const ParamSlot* s = &opt->slots[i];
        double blocks = matrix_blocks(opt, s), a = s->rows / blocks, b = s->cols, lo = a < b ? a : b, hi = a + b - lo;
        bool gram = muon_uses_gram((int)a, (int)b, &cfg->muon);
        if (opt->use_matrix_method[i]) cost[i] = blocks * lo * lo * (gram ? (2.0 * hi + 17.0 * lo) / 5.0 : 2.0 * hi + lo);
    }
    partition_build(&opt->part, opt->slots, opt->num_slots, cost, rank, ranks, model->device);
    opt->adamw_slices = (AdamWSlice*)xcalloc(opt->part.first[rank + 1] - opt->part.first[rank] + 1, sizeof(AdamWSlice));
    free(cost);
    opt->state = arena_sizing(model->device);
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1) arena_allocate(&opt->state);
        opt->m = arena_take(&opt->state, opt->part.floats[rank]);
        opt->v = arena_take(&opt->state, opt->part.floats[rank]);
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
    partition_free(&opt->part);
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
        char gram[64] = "";
        if (c->muon.ns_gram > 0.0f && c->muon.method != MUON_SPECTRAL)
            snprintf(gram, sizeof(gram), " (on the Gram matrix where long/short side >= %g)", c->muon.ns_gram);
        if (group == 1)
            fprintf(f, "optimizer %s: hidden matrices by %s%s%s%s%s (%.2fM params, lr %.3g, wd %.3g%s%s): %s\n", c->name,
                    c->muon.method == MUON_POLAR ? "Polar Express" : c->muon.method == MUON_SPECTRAL ? "U S^p V^T" : "Newton-Schulz",
                    c->muon.ns_bf16 && c->muon.method != MUON_SPECTRAL ? " in bf16" : "", gram,
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
static void matrix_method_step(Optimizer* opt, const Piece* piece, float* params, const float* grads,
                               const MuonHyper* h) {
    const ParamSlot* s = &opt->slots[piece->slot];
    int blocks = matrix_blocks(opt, s), rows = s->rows / blocks;
    size_t block = (size_t)rows * s->cols;
    float *p = params + s->offset, *m = opt->m + piece->state, *v = opt->v + piece->state;
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
// scaling the gradients in place; the Muon family on each of this rank's hidden matrices; AdamW on all its
// slices in one call; then every rank's updated pieces to every rank (partition.h). With `health`, the weights of
// the hidden matrices are kept first, and the health pass (rank 0's: it alone logs) measures every update after.
// Returns the norm before clipping; if it is not finite, nothing is updated (the caller stops the run and keeps
// its last checkpoint). The gradients are the whole batch's: with several ranks, summed across them already.
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
    health = health && opt->part.rank == 0;
    for (int i = 0; i < opt->num_slots; i++) {  // every slot's decay (health reads them), whoever updates it
        const ParamSlot* s = &opt->slots[i];
        if (health && s->kind == PARAM_MATRIX)
            device_copy(opt->device, opt->before + opt->before_offset[i], params + s->offset,
                        (size_t)s->rows * s->cols * sizeof(float));
        opt->decay[i] = opt->use_matrix_method[i] ? decay_factor(h.lr, h.lr_max, h.weight_decay, h.lr2_decay)
                        : 1.0 - (double)adam_lr * (s->kind == PARAM_VECTOR ? 0.0f : adam_wd);
    }
    const Partition* part = &opt->part;
    int n_slices = 0;
    for (int k = part->first[part->rank]; k < part->first[part->rank + 1]; k++) {
        const Piece* piece = &part->pieces[k];
        const ParamSlot* s = &opt->slots[piece->slot];
        if (opt->use_matrix_method[piece->slot]) {
            matrix_method_step(opt, piece, params, grads, &h);
        } else {
            float wd = s->kind == PARAM_VECTOR ? 0.0f : adam_wd;
            opt->adamw_slices[n_slices++] = {piece->offset, piece->count, piece->state, adam_lr, wd};
        }
    }
    adamw_update_slices(opt->device, params, grads, opt->m, opt->v, opt->adamw_slices, n_slices, c->beta1, c->beta2,
                        c->eps, 1.0f, opt->t);
    partition_gather_params(&opt->part, params);
    if (health) optimizer_health(opt, params, grads);
    return norm;
}

// After the update: the norm of all the parameters, sqrt(Σ w²), into *params_norm (the run checks it is finite
// before any checkpoint can hold them), and the RMS of the hidden matrices' weights taken together, sqrt(Σ w² / n),
// returned: the quantity the weight-decay rule sets at steady state (arXiv 2512.08217), logged every step
// (log.csv's matrix_rms). One norm pass per buffer, all in one wait on the GPU (grad_norms).
static double params_norms(const Optimizer* opt, const float* params, size_t num_params, double* params_norm) {
    const float** xs = (const float**)xmalloc(sizeof(float*) * (opt->num_slots + 1));
    size_t* ns = (size_t*)xmalloc(sizeof(size_t) * (opt->num_slots + 1));
    double* norms = (double*)xmalloc(sizeof(double) * (opt->num_slots + 1));
    xs[0] = params;  // all of them first, then each hidden matrix
    ns[0] = num_params;
    int count = 1;
    for (int i = 0; i < opt->num_slots; i++) {
        const ParamSlot* s = &opt->slots[i];
        if (s->kind != PARAM_MATRIX) continue;
        xs[count] = params + s->offset;
        ns[count++] = (size_t)s->rows * s->cols;
    }
    grad_norms(opt->device, xs, ns, count, norms);
    double sum_sq = 0.0, n = 0.0;
    for (int k = 1; k < count; k++) {
        sum_sq += norms[k] * norms[k];
        n += (double)ns[k];
    }
    *params_norm = norms[0];
    free(xs);
    free(ns);
    free(norms);
    return n > 0 ? sqrt(sum_sq / n) : 0.0;
}
