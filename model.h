// model.h: GPT-2 built from the ops: parameters, activations, forward and backward (its shape: model_config.h).
// Parameters follow llm.c's order and layout exactly (16 tensors, each stacked over layers), so a model file
// can go to and from llm.c. Pre-LN blocks, learned position embeddings, the LM head tied to the token
// embedding, the vocabulary padded from 50257 to a multiple of 64.
// Flow: data (ids) -> gpt2_forward (records the tape) -> loss -> gpt2_backward (walks it) -> optimizer.
#pragma once
#include "ops/attention.h"
#include "ops/crossentropy.h"
#include "ops/embedding.h"
#include "ops/gelu.h"
#include "ops/layernorm.h"
#include "ops/matmul.h"
#include "model_config.h"

// ----------------------------------------------------------------------------------------------------
// the model

struct BlockParams {  // views of one layer's slice of the stacked tensors
    Tensor ln1w, ln1b, qkvw, qkvb, attprojw, attprojb, ln2w, ln2b, fcw, fcb, fcprojw, fcprojb;
};

struct BlockActs {  // one layer's activations; shapes for the allocated (B, T)
    Tensor ln1, ln1_mean, ln1_rstd;  // (B, T, C), (B, T), (B, T)
    Tensor qkv;                      // (B, T, 3C)
    Tensor atty;                     // (B, T, C)   attention output, before the projection
    Tensor att;                      // what attention's backward needs (no gradient): the softmax probabilities
                                     // (B, NH, T, T), or with flash attention on the GPU L (B, NH, T)
    Tensor attproj;                  // (B, T, C)
    Tensor res2;                     // (B, T, C)   stream after attention
    Tensor ln2, ln2_mean, ln2_rstd;  // (B, T, C), (B, T), (B, T)
    Tensor fch, fch_gelu;            // (B, T, 4C)
    Tensor fcproj;                   // (B, T, C)
    Tensor res3;                     // (B, T, C)   stream after the MLP: the next block's input
};

// Activation gradients in two sets, used by alternate layers. Walking backward, layer l adds into the gradients of
// its own activations and of the stream entering it, and reads only two gradients of layer l + 1's set (its ln1,
// and the stream entering it, which is layer l's res3); layer l + 2's are consumed by then. So layer l's gradients
// live in set l % 2, which a tape node zeroes just before layer l's backward (recorded after the layer's forward;
// set L % 2, which the LM head's backward writes first, by a node recorded after the head), so no backward clears
// the whole arena: 2 layers' worth of gradient memory instead of L (d12 at B = 32, T = 1024: 3.6 GB instead of
// 21.7 GB). llm.c shares them the same way. The final layernorm's gradient is "ln1 of layer L" (set L % 2).
struct GradSet {  // the slots of one set, each (B, T, width)
    float *stream, *ln1, *qkv, *atty, *attproj, *res2, *ln2, *fch, *fch_gelu, *fcproj;
};
static const int GRAD_SET_WIDTHS[10] = {1, 1, 3, 1, 1, 1, 1, 4, 4, 1};  // the slots' widths above, in units of C
static const int GRAD_SET_C = 18;                                        // their sum
static const int GRAD_SET_MLP_C = 8;  // fch's and fch_gelu's: at 16-bit storage not in the set (fch's is 16-bit)

struct GPT2 {
    GPT2Config config;
    Device device;
    size_t num_parameters;
    Arena param_arena;     // one allocation: every parameter, llm.c's order
    Arena grad_arena;      // one allocation: their gradients, same layout
    Tensor params[NUM_PARAM_TENSORS];   // the master weights: what the optimizer updates and checkpoints hold
    Arena weight_arena;    // --precision bf16: the parameters rounded to bf16 (else nothing allocated)
    Tensor weights[NUM_PARAM_TENSORS];  // what the layers read: params' values (fp32) or the rounded copies (bf16:
                                        // gpt2_weight_fp32_copy), with params' gradients (gpt2_forward refreshes)
    BlockParams* blocks;   // (L) views into weights

    int B, T;              // the batch the activations are sized for
    Arena act_arena;       // one allocation: activation values, then (act_grad_arena) their gradients
    Arena act_grad_arena;  // lies inside act_arena's allocation, so one memset clears every activation gradient
    BlockActs* acts;       // (L)
    Tensor grad_sets[2];   // the two activation-gradient sets (above), as tensors for the tape's zeroing nodes
    Tensor encoded;        // (B, T, C)
    Tensor lnf, lnf_mean, lnf_rstd;  // (B, T, C), (B, T), (B, T)
    Tensor logits;         // (B, T, Vp); its grad is its data: dlogits after the backward (at 16-bit storage, data16)
    Tensor lse;            // (B, T)  log-sum-exp of each row of logits
    Tensor losses;         // (B, T)
    Tensor grad16;         // 16-bit storage (gpt2_storage16): a product's output gradient rounded to bf16, (B, T, 3C)
    Tensor fch_grad16;     // and fch's gradient, which fcproj's backward writes in bf16 (ops/matmul.h), (B, T, 4C)
    Tensor att_scratch;    // attention's backward's scratch, shared: (B, NH, T), (B, NH, T, T) on the simple GPU path
    Kernels kernels;       // how the GPU runs its products and attention (tensor.h), what the buffers are sized for
    int* ids;              // (B, T) inputs on the device
    int* token_groups;     // (3 B T + 1) on the GPU: the positions grouped by token, for dwte (ops/embedding.h)
    int *host_groups, *host_counts;  // host copy of token_groups; (Vp) scratch for computing it
    int* targets;          // (B, T) targets on the device
    float* host_losses;    // (B, T) losses copied back for the mean
    Tape tape;
    float fused_loss_scale;  // > 0: the last recorded forward computed the loss's gradient for this loss_scale
};

// 16-bit storage (numerics.h's bfloat16, Tensor.data16; README's bf16 section): on the GPU at bf16 precision with
// bf16 products the activations are held in bf16 (with flash attention every one; d12 at B = 64, T = 1024: 66.9 ->
// 35.6 GB in all). The products run on bf16 operands (ops/matmul.h's matmul_bf16, through cuBLASLt) with the bias,
// its gradient and GELU both ways in their epilogues. The same numbers as fp32 storage of bf16 values but for one
// rounding point: the epilogue's GELU reads fc's fp32 sum (as llm.c's), the CPU fch's bf16 value (as autocast).
// fp32 storage: the activation gradients, the statistics, qkv, atty and attproj on the simple attention path.
// the products' bf16 operands and biases
static const int STORAGE16_WEIGHTS[9] = {P_WTE, P_QKVW, P_QKVB, P_ATTPROJW, P_ATTPROJB, P_FCW, P_FCB, P_FCPROJW,
                                         P_FCPROJB};
static bool gpt2_storage16(Device device, Kernels k) { return device == DEV_CUDA && kernels_bf16(k); }
// whether weight i has an fp32 copy at bf16 precision: at 16-bit storage those with 16-bit copies have none (data
// NULL; the embedding reads wte's too), but on the simple attention path qkv's bias and the attention projection
// (fp32 storage there)
static bool gpt2_weight_fp32_copy(Device device, Kernels k, int i) {
    bool copy16 = false, simple = !attention_uses_flash(device, k.attention);
    for (int j : STORAGE16_WEIGHTS) copy16 |= j == i;
    return !gpt2_storage16(device, k) || !copy16 || (simple && (i == P_QKVB || i == P_ATTPROJW || i == P_ATTPROJB));
}

static void gpt2_layout_params(GPT2* m) {
    int layers[NUM_PARAM_TENSORS], rows[NUM_PARAM_TENSORS], cols[NUM_PARAM_TENSORS];
    gpt2_param_shapes(&m->config, layers, rows, cols);
    // one contiguous block in each arena (no alignment gaps between tensors): the flat layout llm.c writes
    Tensor all;
    memset(&all, 0, sizeof(all));
    all.device = m->device;
    all.size = gpt2_num_parameters(&m->config);
    all.data = arena_take(&m->param_arena, all.size);
    all.grad = arena_take(&m->grad_arena, all.size);
    size_t offset = 0;
    for (int i = 0; i < NUM_PARAM_TENSORS; i++) {
        Tensor* w = &m->weights[i];
        m->params[i] = tensor_view(&all, param_tensor_names[i], offset, layers[i] * rows[i], cols[i]);
        *w = m->params[i];  // what the layers read: the same values, or bf16 copies (the same gradients)
        if (m->kernels.precision == PRECISION_BF16)
            w->data = gpt2_weight_fp32_copy(m->device, m->kernels, i) ? arena_take(&m->weight_arena, w->size) : NULL;
        offset += w->size;
    }
    if (gpt2_storage16(m->device, m->kernels))  // and the products' 16-bit copies
        for (int i : STORAGE16_WEIGHTS) m->weights[i].data16 = arena_take_bf16(&m->weight_arena, m->weights[i].size);
}

// per-layer views of the weights the layers read: layer l of a stacked tensor starts at l · (its per-layer size)
static void gpt2_layout_blocks(GPT2* m) {
    int C = m->config.channels;
    for (int l = 0; l < m->config.num_layers; l++) {
        BlockParams* b = &m->blocks[l];
        Tensor* p = m->weights;
        b->ln1w = tensor_view(&p[P_LN1W], "ln1w", (size_t)l * C, C);
        b->ln1b = tensor_view(&p[P_LN1B], "ln1b", (size_t)l * C, C);
        b->qkvw = tensor_view(&p[P_QKVW], "qkvw", (size_t)l * 3 * C * C, 3 * C, C);
        b->qkvb = tensor_view(&p[P_QKVB], "qkvb", (size_t)l * 3 * C, 3 * C);
        b->attprojw = tensor_view(&p[P_ATTPROJW], "attprojw", (size_t)l * C * C, C, C);
        b->attprojb = tensor_view(&p[P_ATTPROJB], "attprojb", (size_t)l * C, C);
        b->ln2w = tensor_view(&p[P_LN2W], "ln2w", (size_t)l * C, C);
        b->ln2b = tensor_view(&p[P_LN2B], "ln2b", (size_t)l * C, C);
        b->fcw = tensor_view(&p[P_FCW], "fcw", (size_t)l * 4 * C * C, 4 * C, C);
        b->fcb = tensor_view(&p[P_FCB], "fcb", (size_t)l * 4 * C, 4 * C);
        b->fcprojw = tensor_view(&p[P_FCPROJW], "fcprojw", (size_t)l * 4 * C * C, C, 4 * C);
        b->fcprojb = tensor_view(&p[P_FCPROJB], "fcprojb", (size_t)l * C, C);
    }
}

// Set k's slots, carved from its block of width·B·T·C floats (NULL while sizing); without the MLP's hidden slots
// at 16-bit storage (storage16: width GRAD_SET_C - GRAD_SET_MLP_C, fch and fch_gelu NULL).
static GradSet grad_set_slots(float* base, size_t BTC, bool storage16) {
    GradSet g;
    float** slots[] = {&g.stream, &g.ln1, &g.qkv, &g.atty, &g.attproj, &g.res2, &g.ln2, &g.fch, &g.fch_gelu, &g.fcproj};
    size_t offset = 0;
    for (int i = 0; i < 10; i++) {
        bool mlp_hidden = slots[i] == &g.fch || slots[i] == &g.fch_gelu;
        *slots[i] = base && !(storage16 && mlp_hidden) ? base + offset : NULL;
        offset += storage16 && mlp_hidden ? 0 : GRAD_SET_WIDTHS[i] * BTC;
    }
    if (offset != (GRAD_SET_C - (storage16 ? GRAD_SET_MLP_C : 0)) * BTC)
        die("grad_set_slots: the slots' widths do not add up to GRAD_SET_C");
    return g;
}

// An activation: values from `values`, its gradient at `grad` (a slot of a gradient set), bf16 values at bf16;
// storage16: the values in 16-bit storage alone (gpt2_storage16)
static Tensor activation(const char* name, Arena* values, float* grad, bool bf16, int d0, int d1 = 0, int d2 = 0,
                         bool storage16 = false) {
    Tensor t = tensor_make(name, values, NULL, d0, d1, d2, 0, storage16);
    t.grad = grad;
    t.bf16 = bf16;
    return t;
}

// Called twice with the same B, T: once to size the arenas, once to hand out the pieces.
static void gpt2_layout_acts(GPT2* m) {
    int B = m->B, T = m->T, C = m->config.channels, NH = m->config.num_heads, Vp = m->config.padded_vocab_size;
    int L = m->config.num_layers;
    Arena *a = &m->act_arena, *g = &m->act_grad_arena;
    size_t BTC = (size_t)B * T * C;
    bool bf16 = m->kernels.precision == PRECISION_BF16;  // the activations' values; statistics stay fp32
    bool s16 = gpt2_storage16(m->device, m->kernels);       // and in 16-bit storage (above)
    bool flash = attention_uses_flash(m->device, m->kernels.attention);
    if (s16) {  // the products' bf16 output gradients: rounded from fp32 (qkv, fcproj), and fch's
        m->grad16 = tensor_make("grad16", a, NULL, 3 * B, T, C, 0, true);
        m->fch_grad16 = tensor_make("fch_grad16", a, NULL, 4 * B, T, C, 0, true);
    }
    GradSet sets[2];
    for (int k = 0; k < 2; k++) {
        int width = GRAD_SET_C - (s16 ? GRAD_SET_MLP_C : 0);
        m->grad_sets[k] = tensor_make("grad_set", g, NULL, width * B, T, C);  // gradients only: data is the block
        m->grad_sets[k].grad = m->grad_sets[k].data;
        sets[k] = grad_set_slots(m->grad_sets[k].data, BTC, s16);
    }
    m->encoded = activation("encoded", a, sets[0].stream, bf16, B, T, C, s16);
    for (int l = 0; l < L; l++) {
        BlockActs* x = &m->acts[l];
        const GradSet* s = &sets[l % 2];
        x->ln1 = activation("ln1", a, s->ln1, bf16, B, T, C, s16);
        x->ln1_mean = tensor_make("ln1_mean", a, NULL, B, T);
        x->ln1_rstd = tensor_make("ln1_rstd", a, NULL, B, T);
        x->qkv = activation("qkv", a, s->qkv, bf16, B, T, 3 * C, s16 && flash);  // the flash kernels read bf16
        x->atty = activation("atty", a, s->atty, bf16, B, T, C, s16 && flash);  // the flash kernels write bf16
        if (attention_saved_floats(m->device, m->kernels.attention, B, NH, T) == (size_t)B * NH * T)
            x->att = tensor_make("att_lse", a, NULL, B, NH, T);
        else
            x->att = tensor_make("att", a, NULL, B, NH, T, T);
        x->attproj = activation("attproj", a, s->attproj, bf16, B, T, C, s16 && flash);  // from atty in 16 bits
        x->res2 = activation("res2", a, s->res2, bf16, B, T, C, s16);
        x->ln2 = activation("ln2", a, s->ln2, bf16, B, T, C, s16);
        x->ln2_mean = tensor_make("ln2_mean", a, NULL, B, T);
        x->ln2_rstd = tensor_make("ln2_rstd", a, NULL, B, T);
        x->fch = activation("fch", a, s->fch, bf16, B, T, 4 * C, s16);
        x->fch.grad16 = s16 ? m->fch_grad16.data16 : NULL;  // shared: each layer's is read as soon as it is written
        x->fch_gelu = activation("fch_gelu", a, s->fch_gelu, bf16, B, T, 4 * C, s16);
        x->fcproj = activation("fcproj", a, s->fcproj, bf16, B, T, C, s16);
        x->res3 = activation("res3", a, sets[(l + 1) % 2].stream, bf16, B, T, C, s16);  // entering layer l + 1
    }
    m->lnf = activation("lnf", a, sets[L % 2].ln1, bf16, B, T, C, s16);  // "ln1 of layer L"
    m->lnf_mean = tensor_make("lnf_mean", a, NULL, B, T);
    m->lnf_rstd = tensor_make("lnf_rstd", a, NULL, B, T);
    // the loss's backward writes dlogits over the logits (ops/crossentropy.h): one buffer, not two; at bf16 the loss
    // reads them as bf16 values, in fp32 storage, or in 16-bit storage on the GPU (gpt2_storage16)
    m->logits = tensor_make("logits", a, NULL, B, T, Vp, 0, s16);
    if (!s16) m->logits.grad = m->logits.data;
    m->lse = tensor_make("lse", a, NULL, B, T);
    m->losses = tensor_make("losses", a, g, B, T);
    if (attention_scratch_floats(m->device, m->kernels.attention, B, NH, T) == (size_t)B * NH * T)
        m->att_scratch = tensor_make("att_scratch", a, NULL, B, NH, T);
    else
        m->att_scratch = tensor_make("att_scratch", a, NULL, B, NH, T, T);
}

// Bytes of activation memory (values and gradients) a model of this config needs for batches of B x T on
// `device` with the kernel choices `kernels`: gpt2_build's sizing pass alone, nothing allocated.
static size_t gpt2_activation_bytes(const GPT2Config* cfg, int B, int T, Device device, Kernels kernels) {
    GPT2 m = {};
    m.config = *cfg;
    m.device = device;
    m.kernels = kernels;
    m.B = B;
    m.T = T;
    m.acts = (BlockActs*)xcalloc(cfg->num_layers, sizeof(BlockActs));
    m.act_arena = arena_sizing(device);
    m.act_grad_arena = arena_sizing(device);
    gpt2_layout_acts(&m);
    free(m.acts);
    return m.act_arena.used + m.act_grad_arena.used;
}

// Bytes of the layers' copy of the weights (bf16 precision; none at fp32): its sizing pass alone, as above.
static size_t gpt2_weight_copy_bytes(const GPT2Config* cfg, Device device, Kernels kernels) {
    GPT2 m = {};
    m.config = *cfg;
    m.device = device;
    m.kernels = kernels;
    m.param_arena = arena_sizing(device);
    m.grad_arena = arena_sizing(device);
    m.weight_arena = arena_sizing(device);
    gpt2_layout_params(&m);
    return m.weight_arena.used;
}

// Builds the model for batches of up to B x T on `device`, initialised from `seed`, for the kernel choices
// `kernels` (by default cuBLAS FP32, the simple attention, fp32 precision): its activations sized for the GPU's
// attention path (the CPU has one), and with a bf16 copy of the weights at bf16 precision.
static void gpt2_build(GPT2* m, const GPT2Config* cfg, int B, int T, Device device, uint64_t seed,
                       Kernels kernels = Kernels{GEMM_CUBLAS, ATTENTION_SIMPLE}) {
    memset(m, 0, sizeof(*m));
    m->config = *cfg;
    m->device = device;
    m->kernels = kernels;
    m->B = B;
    m->T = T;
    int L = cfg->num_layers;
    m->blocks = (BlockParams*)xcalloc(L, sizeof(BlockParams));
    m->acts = (BlockActs*)xcalloc(L, sizeof(BlockActs));

    // parameters and their gradients: size, allocate, lay out
    m->param_arena = arena_sizing(device);
    m->grad_arena = arena_sizing(device);
    m->weight_arena = arena_sizing(device);
    gpt2_layout_params(m);
    arena_allocate(&m->param_arena);
    arena_allocate(&m->grad_arena);
    if (m->weight_arena.used) arena_allocate(&m->weight_arena);
    gpt2_layout_params(m);
    gpt2_layout_blocks(m);
    m->num_parameters = gpt2_num_parameters(cfg);
    float* host = (float*)xmalloc(m->num_parameters * sizeof(float));
    gpt2_init_params_host(cfg, host, seed);
    copy_to_device(device, m->params[0].data, host, m->num_parameters * sizeof(float));
    free(host);

    // activations: values and gradients in one allocation
    m->act_arena = arena_sizing(device);
    m->act_grad_arena = arena_sizing(device);
    gpt2_layout_acts(m);
    size_t value_bytes = m->act_arena.used, grad_bytes = m->act_grad_arena.used;
    char* block = (char*)device_malloc(device, value_bytes + grad_bytes);
    device_zero(device, block, value_bytes + grad_bytes);
    arena_place(&m->act_arena, block);
    arena_place(&m->act_grad_arena, block + value_bytes);
    gpt2_layout_acts(m);

    m->ids = (int*)device_malloc(device, sizeof(int) * B * T);
    if (device == DEV_CUDA) {
        m->token_groups = (int*)device_malloc(device, sizeof(int) * (3 * B * T + 1));
        m->host_groups = (int*)xmalloc(sizeof(int) * (3 * B * T + 1));
        m->host_counts = (int*)xmalloc(sizeof(int) * cfg->padded_vocab_size);
    }
    m->targets = (int*)device_malloc(device, sizeof(int) * B * T);
    m->host_losses = (float*)xmalloc(sizeof(float) * B * T);
    tape_init(&m->tape, 16 * L + 16);  // ~10 nodes per layer plus the ends
}

static void gpt2_free(GPT2* m) {
    arena_free(&m->param_arena);
    arena_free(&m->grad_arena);
    arena_free(&m->weight_arena);
    arena_free(&m->act_arena);  // act_grad_arena lives inside it
    device_free(m->device, m->ids);
    device_free(m->device, m->token_groups);
    free(m->host_groups);
    free(m->host_counts);
    device_free(m->device, m->targets);
    free(m->host_losses);
    free(m->blocks);
    free(m->acts);
    tape_free(&m->tape);
    memset(m, 0, sizeof(*m));
}

// ----------------------------------------------------------------------------------------------------
// forward and backward

// --precision bf16's rounding points (tensor.h's Precision). Before each forward the layers' copies of the weights
// are rounded from the fp32 masters, so nothing that writes params can leave them stale. Each activation holds bf16
// values (Tensor.bf16): the op that writes it rounds each value as it stores it (as_stored), computing in fp32 from
// bf16 inputs. The rounding has no backward of its own (a cast, as in autocast). At fp32 nothing is rounded.
static void gpt2_refresh_weights(GPT2* m) {
    bool bf16 = m->kernels.precision == PRECISION_BF16;
    if (bf16 != m->encoded.bf16 || bf16 != (m->weight_arena.base != NULL))
        die("gpt2_forward: the precision changed after the model was built for %s", m->encoded.bf16 ? "bf16" : "fp32");
    if ((m->logits.data16 != NULL) != gpt2_storage16(m->device, m->kernels))
        die("gpt2_forward: the products' level changed after the model was built %s 16-bit storage",
            m->logits.data16 ? "with" : "without");
    for (int i = 0; i < NUM_PARAM_TENSORS; i++) {  // the fp32 copies (gpt2_weight_fp32_copy), the 16-bit ones
        Tensor* w = &m->weights[i];
        if (bf16 && w->data) device_round_bf16(m->device, w->data, m->params[i].data, w->size);
        if (w->data16) device_to_bf16(m->device, w->data16, m->params[i].data, w->size);
    }
}

// The host's part of a forward: ids (B, T) and targets (or NULL) to the device, and on the GPU, when the tape
// records, the positions grouped by token for dwte. What follows is device work alone (step_graph.h's graph).
static void gpt2_load_batch(GPT2* m, const int* ids, const int* targets, int B, int T) {
    int N = B * T;
    if (B > m->B || T > m->T || T > m->config.max_seq_len)
        die("gpt2_forward: batch %d x %d exceeds the %d x %d the model was built for", B, T, m->B, m->T);
    copy_to_device(m->device, m->ids, ids, sizeof(int) * N);
    if (m->device == DEV_CUDA && m->tape.recording) {
        embedding_token_groups(ids, N, m->config.padded_vocab_size, m->host_counts, m->host_groups);
        copy_to_device(m->device, m->token_groups, m->host_groups, sizeof(int) * (3 * N + 1));
    }
    if (targets) copy_to_device(m->device, m->targets, targets, sizeof(int) * N);
}

// Runs the model on the batch loaded: the logits, and with targets the per-position losses (m->losses). The tape
// records the ops when m->tape.recording is set, ready for gpt2_backward. loss_scale > 0: the loss_scale the
// gpt2_backward to follow will be given, known now, so the loss's gradient is computed in its forward
// (ops/crossentropy.h: one pass over the logits, which it overwrites).
static void gpt2_run_forward(GPT2* m, int B, int T, bool with_targets, float loss_scale) {
    const GPT2Config* cfg = &m->config;
    int C = cfg->channels, NH = cfg->num_heads, V = cfg->vocab_size, Vp = cfg->padded_vocab_size, N = B * T;
    Tape* tape = &m->tape;
    tape_reset(tape);
    m->fused_loss_scale = 0.0f;
    gpt2_refresh_weights(m);
    Tensor* w = m->weights;
    embedding(tape, &m->encoded, m->ids, m->token_groups, &w[P_WTE], &w[P_WPE], B, T, C);
    Tensor* stream = &m->encoded;  // the residual stream, (B, T, C)
    // every layernorm but the first reads a residual add's result: the two run fused (ops/layernorm.h), the add
    // writing the stream and the layernorm normalising it in one pass; so each block ends with the next one's ln1
    layernorm(tape, &m->acts[0].ln1, &m->acts[0].ln1_mean, &m->acts[0].ln1_rstd, stream, &m->blocks[0].ln1w,
              &m->blocks[0].ln1b, N, C);
    for (int l = 0; l < cfg->num_layers; l++) {
        BlockParams* p = &m->blocks[l];
        BlockActs* a = &m->acts[l];
        // attention half: res2 = stream + proj(attention(qkv(ln1(stream)))), and ln2 = ln2(res2)
        // (a product whose input is in 16-bit storage runs on bf16 operands, m->grad16 its gradient's room)
        matmul(tape, m->kernels, &a->qkv, &a->ln1, &p->qkvw, &p->qkvb, N, C, 3 * C, &m->grad16);
        attention(tape, m->kernels, &a->atty, &a->att, &m->att_scratch, &a->qkv, B, T, C, NH);
        matmul(tape, m->kernels, &a->attproj, &a->atty, &p->attprojw, &p->attprojb, N, C, C, &m->grad16);
        residual_layernorm(tape, &a->res2, &a->ln2, &a->ln2_mean, &a->ln2_rstd, stream, &a->attproj, &p->ln2w,
                           &p->ln2b, N, C);
        // MLP half: res3 = res2 + fcproj(gelu(fc(ln2))), and the next block's ln1 (or the final lnf) of res3
        // (at 16-bit storage GELU runs in the epilogues of the products around it: fc's stores fch_gelu = GELU(fch)
        // beside fch, fcproj's backward writes fch's gradient through GELU's derivative; no GELU op between them)
        bool gelu_in_products = !a->ln2.data;
        matmul(tape, m->kernels, &a->fch, &a->ln2, &p->fcw, &p->fcb, N, C, 4 * C, &m->grad16,
               gelu_in_products ? &a->fch_gelu : NULL);
        if (!gelu_in_products) gelu(tape, &a->fch_gelu, &a->fch, N, 4 * C);
        matmul(tape, m->kernels, &a->fcproj, &a->fch_gelu, &p->fcprojw, &p->fcprojb, N, 4 * C, C, &m->grad16, NULL,
               gelu_in_products ? &a->fch : NULL);
        bool last = l + 1 == cfg->num_layers;  // then res3 is normalised by the final layernorm
        BlockActs* next = &m->acts[last ? l : l + 1];
        Tensor *ln = last ? &m->lnf : &next->ln1, *ln_mean = last ? &m->lnf_mean : &next->ln1_mean,
               *ln_rstd = last ? &m->lnf_rstd : &next->ln1_rstd;
        Tensor *ln_w = last ? &w[P_LNFW] : &m->blocks[l + 1].ln1w, *ln_b = last ? &w[P_LNFB] : &m->blocks[l + 1].ln1b;
        residual_layernorm(tape, &a->res3, ln, ln_mean, ln_rstd, &a->res2, &a->fcproj, ln_w, ln_b, N, C);
        tape_zero_grad(tape, &m->grad_sets[l % 2]);  // runs just before this layer's backward: its set, cleared
        stream = &a->res3;
    }
    matmul(tape, m->kernels, &m->logits, &m->lnf, &w[P_WTE], NULL, N, C, Vp);  // tied LM head: lnf · wteᵀ
    tape_zero_grad(tape, &m->grad_sets[cfg->num_layers % 2]);  // runs before the head's backward: lnf's set
    if (!with_targets) return;

    crossentropy(tape, &m->losses, &m->lse, &m->logits, m->targets, N, V, Vp, loss_scale,
                 m->kernels.precision == PRECISION_BF16);  // bf16: the loss reads the logits as bf16 values
    if (tape->recording) m->fused_loss_scale = loss_scale;  // what gpt2_backward must then be given
}

static float gpt2_batch_loss(GPT2* m, int N) {  // the mean of the N per-position losses, copied back
    copy_to_host(m->device, m->host_losses, m->losses.data, sizeof(float) * N);
    double sum = 0.0;
    for (int i = 0; i < N; i++) sum += m->host_losses[i];
    return (float)(sum / N);
}

// Runs the model on ids (B, T) (host memory): with targets returns the mean loss, without -1 (the logits alone).
static float gpt2_forward(GPT2* m, const int* ids, const int* targets, int B, int T, float loss_scale = 0.0f) {
    gpt2_load_batch(m, ids, targets, B, T);
    gpt2_run_forward(m, B, T, targets != NULL, loss_scale);
    return targets ? gpt2_batch_loss(m, B * T) : -1.0f;
}

static void gpt2_zero_grad(GPT2* m) { device_zero(m->device, m->grad_arena.base, m->grad_arena.capacity); }

// Backward through the recorded forward. The parameter gradients are added to (call gpt2_zero_grad once
// per optimizer step, so several micro-batches can accumulate). loss_scale is dL/dloss_i for every
// position: 1/(B·T) for the mean loss, divided again by the number of accumulated micro-batches.
static void gpt2_backward(GPT2* m, int B, int T, float loss_scale) {
    if (m->fused_loss_scale > 0.0f && m->fused_loss_scale != loss_scale)
        die("gpt2_backward: loss_scale %g, but the forward computed the loss's gradient for %g", loss_scale,
            m->fused_loss_scale);
    device_fill(m->device, m->losses.grad, (size_t)B * T, loss_scale);  // the activations' gradients: the tape's
                                                                         // nodes clear each set before its users
    tape_backward(&m->tape);
}
