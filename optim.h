// optim.h: which optimizer updates which parameter, and one optimizer step over the whole model.
// The grouping is plain data: a table of slots (one per tensor and layer, from model.h), each marked with the
// update it gets. An AdamW run gives every slot to AdamW. A Muon run gives the hidden 2-D weights (qkv,
// attention projection, MLP in and out) to Muon and the rest (token/position embeddings, which are also the
// tied LM head, layernorm gains, biases) to AdamW, as Keller Jordan's reference and torch.optim.Muon do.
// The state is one allocation: m and v, each as large as the parameters, in the same layout.
// Flow: backward -> optimizer_step (norm, clip, update every slot) -> next step.
#pragma once
#include "adamw.h"
#include "model.h"

enum MatrixMethod { MATRIX_ADAMW, MATRIX_MUON };

struct OptimizerConfig {
    char name[32];             // the label in logs and tables: "adamw", "muon", ...
    MatrixMethod matrix;       // how the hidden 2-D weights are updated
    float lr;                  // peak learning rate of the hidden matrices (of everything, in an AdamW run)
    float adam_lr;             // peak learning rate of the AdamW group in a Muon run
    float weight_decay;        // decoupled decay of the hidden matrices
    float adam_weight_decay;   // decoupled decay of the AdamW group's 2-D tensors (embeddings); never vectors
    float beta1, beta2, eps;   // AdamW's moments
    float grad_clip;           // clip the global gradient norm to this (0: off)
};

// AdamW with llm.c's GPT-2 recipe: lr 6e-4, betas (0.9, 0.95), eps 1e-8, decay 0.1 on 2-D tensors, clip 1.
static OptimizerConfig optimizer_config_adamw() {
    OptimizerConfig c;
    memset(&c, 0, sizeof(c));
    snprintf(c.name, sizeof(c.name), "adamw");
    c.matrix = MATRIX_ADAMW;
    c.lr = c.adam_lr = 6e-4f;
    c.weight_decay = c.adam_weight_decay = 0.1f;
    c.beta1 = 0.9f;
    c.beta2 = 0.95f;
    c.eps = 1e-8f;
    c.grad_clip = 1.0f;
    return c;
}

struct Optimizer {
    OptimizerConfig cfg;
    Device device;
    int num_slots;
    ParamSlot* slots;        // (num_slots) from gpt2_param_slots
    unsigned char* use_matrix_method;  // (num_slots) 1: the slot gets cfg.matrix's update; 0: AdamW
    size_t num_parameters;
    Arena state;             // one allocation: m, then v
    float* m;                // (num_parameters) first moment / momentum buffer
    float* v;                // (num_parameters) second moment
    int t;                   // optimizer steps taken (AdamW's bias correction counts from 1)
};

static void optimizer_init(Optimizer* opt, const GPT2* model, const OptimizerConfig* cfg) {
    memset(opt, 0, sizeof(*opt));
    opt->cfg = *cfg;
    opt->device = model->device;
    opt->slots = (ParamSlot*)xcalloc(4 + 12 * model->config.num_layers, sizeof(ParamSlot));
    opt->num_slots = gpt2_param_slots(&model->config, opt->slots);
    opt->use_matrix_method = (unsigned char*)xcalloc(opt->num_slots, 1);
    for (int i = 0; i < opt->num_slots; i++)
        opt->use_matrix_method[i] = cfg->matrix != MATRIX_ADAMW && opt->slots[i].kind == PARAM_MATRIX;
    opt->num_parameters = model->num_parameters;
    opt->state = arena_sizing(model->device);
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1) arena_allocate(&opt->state);
        opt->m = arena_take(&opt->state, opt->num_parameters);
        opt->v = arena_take(&opt->state, opt->num_parameters);
    }
}

static void optimizer_free(Optimizer* opt) {
    arena_free(&opt->state);
    free(opt->slots);
    free(opt->use_matrix_method);
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
            // name each tensor once: h0.qkvw stands for h0..h{L-1}.qkvw
            const char* dot = strchr(s->name, '.');
            if (s->name[0] == 'h' && dot && strncmp(s->name, "h0.", 3) != 0) continue;
            char item[48];
            snprintf(item, sizeof(item), "%s%s", names[0] ? ", " : "", s->name[0] == 'h' && dot ? dot + 1 : s->name);
            if (strlen(names) + strlen(item) + 1 < sizeof(names)) strcat(names, item);
        }
        if (count == 0) continue;
        if (group == 1)
            fprintf(f, "optimizer %s: hidden matrices (%.2fM params, lr %.3g, wd %.3g): %s\n", c->name, count / 1e6,
                    c->lr, c->weight_decay, names);
        else
            fprintf(f, "optimizer %s: AdamW group (%.2fM params, lr %.3g, wd %.3g on 2-D, betas %.3g/%.3g): %s\n",
                    c->name, count / 1e6, c->matrix == MATRIX_ADAMW ? c->lr : c->adam_lr,
                    c->matrix == MATRIX_ADAMW ? c->weight_decay : c->adam_weight_decay, c->beta1, c->beta2, names);
    }
}

// One optimizer step at lr_mult × the peak learning rates. Returns the global gradient norm before
// clipping; if it is not finite, nothing is updated (the caller stops the run and keeps its last checkpoint).
static double optimizer_step(Optimizer* opt, GPT2* model, float lr_mult) {
    const OptimizerConfig* c = &opt->cfg;
    double norm = grad_norm_cpu(model->grad_arena.base ? (const float*)model->grad_arena.base : NULL,
                                model->num_parameters);
    if (!isfinite(norm)) return norm;
    float scale = clip_scale(norm, c->grad_clip);
    opt->t++;
    float* params = model->params[0].data;
    float* grads = model->params[0].grad;
    for (int i = 0; i < opt->num_slots; i++) {
        const ParamSlot* s = &opt->slots[i];
        size_t n = (size_t)s->rows * s->cols, off = s->offset;
        bool adamw_run = c->matrix == MATRIX_ADAMW;
        float lr = (adamw_run ? c->lr : c->adam_lr) * lr_mult;
        float wd = s->kind == PARAM_VECTOR ? 0.0f : adamw_run ? c->weight_decay : c->adam_weight_decay;
        adamw_update_cpu(params + off, grads + off, opt->m + off, opt->v + off, n, lr, c->beta1, c->beta2, c->eps,
                         wd, scale, opt->t);
    }
    return norm;
}

// ----------------------------------------------------------------------------------------------------
// optimizers by name, with their defaults

#define OPTIMIZER_NAMES_HELP "adamw"

static int optimizer_config_by_name(const char* name, OptimizerConfig* c, char* err) {
    if (strcmp(name, "adamw") == 0) {
        *c = optimizer_config_adamw();
        return 0;
    }
    return fail(err, "--optimizer: unknown optimizer '%s' (expected one of: %s)", name, OPTIMIZER_NAMES_HELP);
}
