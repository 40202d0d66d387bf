// model_config.h: the shape of a GPT-2 before any memory: its configuration (the presets tiny ... d48, the
// limits a file's header must keep to), the 16 parameter tensors in llm.c's order and shapes, their count, and
// the slots the optimizers see, GPT-2's initial values (drawn on the host) and its flops per token. Everything here
// is arithmetic on sizes, taken in 64 bits.
// Flow: settings or a model file's header -> GPT2Config -> model.h builds the model from it.
#pragma once
#include "common.h"

struct GPT2Config {
    int max_seq_len;        // maxT: positions the model has embeddings for (1024 for GPT-2)
    int vocab_size;         // V: 50257 for GPT-2's tokenizer
    int padded_vocab_size;  // Vp: V rounded up to a multiple of 64, for friendlier matmul shapes
    int num_layers;         // L
    int num_heads;          // NH
    int channels;           // C
};

static int round_up_64(int v) { return (v + 63) / 64 * 64; }

static GPT2Config gpt2_config_make(int max_seq_len, int vocab_size, int padded_vocab_size, int num_layers,
                                   int num_heads, int channels) {
    GPT2Config c;
    c.max_seq_len = max_seq_len;
    c.vocab_size = vocab_size;
    c.padded_vocab_size = padded_vocab_size;
    c.num_layers = num_layers;
    c.num_heads = num_heads;
    c.channels = channels;
    return c;
}

// Named sizes: "dN" is GPT-2's family with N layers (d12 = GPT-2 124M, d24 = 350M, d36 = 774M,
// d48 = 1558M, as llm.c names them); the small ones are ours, for tests and CPU runs.
static int gpt2_config_preset(GPT2Config* cfg, const char* name, char* err) {
    struct Preset { const char* name; int L, NH, C, maxT; };
    static const Preset presets[] = {
        {"tiny", 2, 2, 32, 64},   {"d2", 2, 2, 128, 256},   {"d4", 4, 4, 128, 256},  {"d6", 6, 6, 384, 512},
        {"d12", 12, 12, 768, 1024}, {"d24", 24, 16, 1024, 1024}, {"d36", 36, 20, 1280, 1024},
        {"d48", 48, 25, 1600, 1024},
    };
    for (const Preset& p : presets)
        if (strcmp(p.name, name) == 0) {
            *cfg = gpt2_config_make(p.maxT, 50257, round_up_64(50257), p.L, p.NH, p.C);
            return 0;
        }
    return fail(err, "--model: unknown model '%s' (expected tiny, d2, d4, d6, d12, d24, d36 or d48)", name);
}


// ----------------------------------------------------------------------------------------------------
// parameters

#define NUM_PARAM_TENSORS 16
enum ParamTensor {
    P_WTE, P_WPE, P_LN1W, P_LN1B, P_QKVW, P_QKVB, P_ATTPROJW, P_ATTPROJB,
    P_LN2W, P_LN2B, P_FCW, P_FCB, P_FCPROJW, P_FCPROJB, P_LNFW, P_LNFB
};
static const char* param_tensor_names[NUM_PARAM_TENSORS] = {
    "wte", "wpe", "ln1w", "ln1b", "qkvw", "qkvb", "attprojw", "attprojb",
    "ln2w", "ln2b", "fcw", "fcb", "fcprojw", "fcprojb", "lnfw", "lnfb"};

// llm.c's shapes: each per-layer tensor is stacked, e.g. qkvw (L, 3C, C). rows x cols per layer.
static void gpt2_param_shapes(const GPT2Config* cfg, int layers[NUM_PARAM_TENSORS], int rows[NUM_PARAM_TENSORS],
                              int cols[NUM_PARAM_TENSORS]) {
    int L = cfg->num_layers, C = cfg->channels;
    const int shape[NUM_PARAM_TENSORS][3] = {
        {1, cfg->padded_vocab_size, C}, {1, cfg->max_seq_len, C},  // wte (Vp, C), wpe (maxT, C)
        {L, 1, C}, {L, 1, C},                                      // ln1w, ln1b (L, C)
        {L, 3 * C, C}, {L, 1, 3 * C},                              // qkvw (L, 3C, C), qkvb (L, 3C)
        {L, C, C}, {L, 1, C},                                      // attprojw (L, C, C), attprojb (L, C)
        {L, 1, C}, {L, 1, C},                                      // ln2w, ln2b (L, C)
        {L, 4 * C, C}, {L, 1, 4 * C},                              // fcw (L, 4C, C), fcb (L, 4C)
        {L, C, 4 * C}, {L, 1, C},                                  // fcprojw (L, C, 4C), fcprojb (L, C)
        {1, 1, C}, {1, 1, C},                                      // lnfw, lnfb (C)
    };
    for (int i = 0; i < NUM_PARAM_TENSORS; i++) {
        layers[i] = shape[i][0];
        rows[i] = shape[i][1];
        cols[i] = shape[i][2];
    }
}

static size_t gpt2_num_parameters(const GPT2Config* cfg) {
    int layers[NUM_PARAM_TENSORS], rows[NUM_PARAM_TENSORS], cols[NUM_PARAM_TENSORS];
    gpt2_param_shapes(cfg, layers, rows, cols);
    size_t n = 0;
    for (int i = 0; i < NUM_PARAM_TENSORS; i++) n += (size_t)layers[i] * rows[i] * cols[i];
    return n;
}

// The largest model this code holds: each size fits an int with room for the 4C of the MLP, and every product of
// sizes is taken in 64 bits, so a crafted file header cannot wrap a count into a small allocation.
#define GPT2_MAX_LAYERS 1024
#define GPT2_MAX_CHANNELS 65536
#define GPT2_MAX_CONTEXT (1 << 20)
#define GPT2_MAX_VOCAB (1 << 24)
#define GPT2_MAX_PARAMETERS (1ll << 36)  // 64G parameters: 256 GiB of fp32 weights alone

static int gpt2_config_check(const GPT2Config* cfg, char* err) {
    if (cfg->num_layers < 1 || cfg->num_heads < 1 || cfg->channels < 1 || cfg->max_seq_len < 1 ||
        cfg->vocab_size < 2)
        return fail(err, "model config: layers %d, heads %d, channels %d, context %d, vocab %d must all be positive",
                    cfg->num_layers, cfg->num_heads, cfg->channels, cfg->max_seq_len, cfg->vocab_size);
    if (cfg->num_layers > GPT2_MAX_LAYERS || cfg->num_heads > cfg->channels || cfg->channels > GPT2_MAX_CHANNELS ||
        cfg->max_seq_len > GPT2_MAX_CONTEXT || cfg->padded_vocab_size > GPT2_MAX_VOCAB)
        return fail(err, "model config: layers %d (at most %d), heads %d (at most the channels), channels %d (at most %d), "
                    "context %d (at most %d), padded vocab %d (at most %d): too large", cfg->num_layers,
                    GPT2_MAX_LAYERS, cfg->num_heads, cfg->channels, GPT2_MAX_CHANNELS, cfg->max_seq_len,
                    GPT2_MAX_CONTEXT, cfg->padded_vocab_size, GPT2_MAX_VOCAB);
    if (cfg->channels % cfg->num_heads != 0)
        return fail(err, "model config: %d heads do not divide %d channels (head size must be a whole number)",
                    cfg->num_heads, cfg->channels);
    if (cfg->padded_vocab_size < cfg->vocab_size)
        return fail(err, "model config: padded vocabulary %d is smaller than the vocabulary %d",
                    cfg->padded_vocab_size, cfg->vocab_size);
    if ((long long)gpt2_num_parameters(cfg) > GPT2_MAX_PARAMETERS)
        return fail(err, "model config: %.3g parameters, more than the %.3g this code holds",
                    (double)gpt2_num_parameters(cfg), (double)GPT2_MAX_PARAMETERS);
    return 0;
}

// What each slice of the parameters is, for the optimizers (which update what) and for logs.
enum ParamKind { PARAM_EMBEDDING, PARAM_MATRIX, PARAM_VECTOR };  // MATRIX: a hidden 2-D weight (Muon's)
struct ParamSlot {
    char name[32];   // "h3.qkvw"
    size_t offset;   // into the flat parameter (and gradient) buffer
    int rows, cols;  // a vector is 1 x C
    ParamKind kind;
};

// One slot per tensor and layer, in memory order; returns the count, 4 + 12 L.
static int gpt2_param_slots(const GPT2Config* cfg, ParamSlot* slots) {
    int layers[NUM_PARAM_TENSORS], rows[NUM_PARAM_TENSORS], cols[NUM_PARAM_TENSORS];
    gpt2_param_shapes(cfg, layers, rows, cols);
    size_t offset = 0;
    int n = 0;
    for (int i = 0; i < NUM_PARAM_TENSORS; i++)
        for (int l = 0; l < layers[i]; l++) {
            ParamSlot* s = &slots[n++];
            if (layers[i] > 1 || (i != P_WTE && i != P_WPE && i != P_LNFW && i != P_LNFB))
                snprintf(s->name, sizeof(s->name), "h%d.%s", l, param_tensor_names[i]);
            else
                snprintf(s->name, sizeof(s->name), "%s", param_tensor_names[i]);
            s->offset = offset;
            s->rows = rows[i];
            s->cols = cols[i];
            s->kind = (i == P_WTE || i == P_WPE) ? PARAM_EMBEDDING : rows[i] > 1 ? PARAM_MATRIX : PARAM_VECTOR;
            offset += (size_t)rows[i] * cols[i];
        }
    return n;
}

// ----------------------------------------------------------------------------------------------------
// initial values and cost, from the shape alone

// GPT-2's initialisation: weights N(0, 0.02), the two residual projections N(0, 0.02/sqrt(2L)) so the
// stream's variance does not grow with depth, biases 0, layernorm gains 1; the padded vocabulary rows 0.
// Drawn on the host in parameter order from one seed, so every device starts from the same bits.
static void gpt2_init_params_host(const GPT2Config* cfg, float* p, uint64_t seed) {
    int layers[NUM_PARAM_TENSORS], rows[NUM_PARAM_TENSORS], cols[NUM_PARAM_TENSORS];
    gpt2_param_shapes(cfg, layers, rows, cols);
    Rng rng = rng_make(seed);
    float residual_std = 0.02f / sqrtf(2.0f * cfg->num_layers);
    for (int i = 0; i < NUM_PARAM_TENSORS; i++) {
        size_t n = (size_t)layers[i] * rows[i] * cols[i];
        bool gain = i == P_LN1W || i == P_LN2W || i == P_LNFW;
        bool weight = i == P_WTE || i == P_WPE || i == P_QKVW || i == P_ATTPROJW || i == P_FCW || i == P_FCPROJW;
        float std = (i == P_ATTPROJW || i == P_FCPROJW) ? residual_std : 0.02f;
        for (size_t j = 0; j < n; j++) {
            if (gain) p[j] = 1.0f;
            else if (!weight) p[j] = 0.0f;
            else if (i == P_WTE && j >= (size_t)cfg->vocab_size * cfg->channels) p[j] = 0.0f;  // padding rows
            else p[j] = (float)(std * rng_normal(&rng));
        }
        p += n;
    }
}

// Flops per token for one forward + backward, as llm.c counts them: 6 per parameter (2 forward, 4 backward)
// plus attention's 6·L·C·T (scores and weighted sum), for MFU.
static double gpt2_flops_per_token(const GPT2Config* cfg, int T) {
    return 6.0 * (double)gpt2_num_parameters(cfg) + 6.0 * cfg->num_layers * cfg->channels * (double)T;
}
