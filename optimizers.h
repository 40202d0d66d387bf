// optimizers.h: the optimizers by name, and their settings: OptimizerConfig (AdamW's hyperparameters and the
// Muon family's MuonHyper), the defaults of each named optimizer (AdamW as llm.c, Muon as Keller Jordan's
// reference, Polar Express, NorMuon, the spectral family), "+suffix" variants, --help's list of defaults, and
// the check of a configuration read from a checkpoint.
// Flow: settings.h (flags) -> optimizer_config_by_name -> OptimizerConfig -> optim.h (the step).
#pragma once
#include "adamw.h"
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
        fprintf(f, "  %-10s hidden matrices: lr %g, wd %g, momentum %g, nesterov %d, ns-steps %d, ns-dtype %s, ns-gram %g, "
                   "adjust-lr %s%s; the rest AdamW: lr %g, wd %g\n", name, c.lr, c.weight_decay, c.muon.momentum,
                c.muon.nesterov, c.muon.ns_steps, c.muon.ns_bf16 ? "bf16" : "fp32", c.muon.ns_gram,
                c.muon.adjust == ADJUST_ORIGINAL ? "original" : c.muon.adjust == ADJUST_MATCH_RMS_ADAMW ? "match_rms_adamw" : "none",
                c.split_qkv ? ", Q/K/V apart" : "", c.adam_lr, c.adam_weight_decay);
    }
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
    const int flags[] = {c->lr2_decay, c->muon.normuon, c->muon.nesterov, c->split_qkv, c->muon.ns_bf16};
    for (int f : flags)
        if (f != 0 && f != 1) return fail(err, "optimizer %s: a 0/1 setting holds %d", c->name, f);
    return 0;
}
