// tensor.h: where numbers live, and the tape that runs the backward pass (devices and their memory: device.h).
//  - Arena: one allocation carved into many buffers. It is walked twice with the same calls: first with
//    no memory (to add up the sizes), then for real. The model uses one arena for its parameters, one for
//    their gradients and one for activations (values and gradients), as llm.c does.
//  - Tensor: a buffer of floats (or of bf16 values: 16-bit storage), its gradient buffer (or NULL), a shape and a
//    device.
//  - Tape: the reverse-mode autodiff record. Each op in ops/ runs its forward and pushes a node; backward
//    walks the nodes in reverse and calls each node's handwritten backward, which adds (+=) into the
//    gradients of its inputs. The tape is a fixed array: recording a step allocates nothing.
// Flow: data -> [tensors on the tape: model -> loss -> backward] -> optimizer.
#pragma once
#include "device.h"

// ----------------------------------------------------------------------------------------------------
// arena: one allocation, handed out in 256-byte aligned pieces

struct Arena {
    char* base;       // NULL during the sizing pass
    size_t used;      // bytes handed out so far
    size_t capacity;  // bytes allocated (0 during the sizing pass)
    Device device;
};

static Arena arena_sizing(Device d) {
    Arena a = {NULL, 0, 0, d};
    return a;
}

// a piece of `bytes` bytes; NULL while sizing
static void* arena_take_bytes(Arena* a, size_t bytes) {
    bytes = (bytes + 255) & ~(size_t)255;
    char* p = NULL;
    if (a->base) {
        if (a->used + bytes > a->capacity)
            die("arena overflow: the second pass asked for more than the first (a bug in the layout code)");
        p = a->base + a->used;
    }
    a->used += bytes;
    return p;
}

// a piece of `count` floats, or of `count` bf16 values (16-bit storage: numerics.h); NULL while sizing
static float* arena_take(Arena* a, size_t count) { return (float*)arena_take_bytes(a, count * sizeof(float)); }
static bfloat16* arena_take_bf16(Arena* a, size_t count) {
    return (bfloat16*)arena_take_bytes(a, count * sizeof(bfloat16));
}

// after the sizing pass: allocate what was counted (zeroed), and rewind for the real pass
static void arena_allocate(Arena* a) {
    a->capacity = a->used;
    a->base = (char*)device_malloc(a->device, a->capacity);
    device_zero(a->device, a->base, a->capacity);
    a->used = 0;
}

// after the sizing pass: use `base` (part of a larger allocation, `used` bytes big) instead of allocating
static void arena_place(Arena* a, char* base) {
    a->capacity = a->used;
    a->base = base;
    a->used = 0;
}

static void arena_free(Arena* a) {
    device_free(a->device, a->base);
    a->base = NULL;
    a->used = a->capacity = 0;
}

// ----------------------------------------------------------------------------------------------------
// tensor

struct Tensor {
    float* data;    // values
    float* grad;    // dLoss/dvalues, same size; NULL where no gradient is needed
    int shape[4];   // sizes of the leading `ndim` dimensions (informational: ops take sizes explicitly)
    int ndim;
    size_t size;    // number of floats
    Device device;
    const char* name;
    bool bf16;      // holds bf16 values (in fp32 storage): the op that writes it rounds what it stores (as_stored)
    bfloat16* data16;  // 16-bit storage (the GPU at --precision bf16, model.h): the values in bf16, as the only
                       // storage (data NULL: stored16 below; the logits, the residual stream, ...) or as
                       // a copy of data for a product's bf16 operand (the weights the products read); or NULL
    bfloat16* grad16;  // the gradient in 16-bit storage (grad NULL), written whole by its one reader's backward
                       // (the MLP's fch at 16-bit storage: fcproj's product, GELU's derivative in its epilogue)
};

// A tensor with storage from `values` and, if `grads` is not NULL, a gradient buffer from `grads`.
// Dimensions after the first zero are unused: tensor_make("ln1", &a, &g, B, T, C) is (B, T, C).
// With `bf16_only`, the values are 16-bit storage alone (data16; data and grad NULL).
static Tensor tensor_make(const char* name, Arena* values, Arena* grads, int d0, int d1 = 0, int d2 = 0,
                          int d3 = 0, bool bf16_only = false) {
    Tensor t;
    memset(&t, 0, sizeof(t));
    int dims[4] = {d0, d1, d2, d3};
    t.size = 1;
    for (int i = 0; i < 4 && dims[i] > 0; i++) {
        t.shape[i] = dims[i];
        t.ndim = i + 1;
        t.size *= (size_t)dims[i];
    }
    t.name = name;
    t.device = values->device;
    if (bf16_only) {
        t.data16 = arena_take_bf16(values, t.size);
        t.bf16 = true;
        return t;
    }
    t.data = arena_take(values, t.size);
    t.grad = grads ? arena_take(grads, t.size) : NULL;
    return t;
}

// The values' 16-bit storage where it is their only storage (data NULL), else NULL: what the ops' 16-bit arguments
// take (a weight's 16-bit copy, beside its data, is an operand a product asks for by name: ops/matmul.h)
static bfloat16* stored16(const Tensor* t) { return t->data ? NULL : t->data16; }

// A view of `count` floats starting at `offset` inside `base` (its gradient and its bf16 copy too, where it has them).
static Tensor tensor_view(const Tensor* base, const char* name, size_t offset, int d0, int d1 = 0) {
    Tensor t;
    memset(&t, 0, sizeof(t));
    t.name = name;
    t.device = base->device;
    t.shape[0] = d0;
    t.shape[1] = d1;
    t.ndim = d1 > 0 ? 2 : 1;
    t.size = (size_t)d0 * (d1 > 0 ? d1 : 1);
    t.data = base->data ? base->data + offset : NULL;
    t.grad = base->grad ? base->grad + offset : NULL;
    t.data16 = base->data16 ? base->data16 + offset : NULL;
    return t;
}

// ----------------------------------------------------------------------------------------------------
// kernel choices: how a model's ops run, chosen when the model is built (--attention, --matmul, --precision),
// passed to the ops that have a choice and kept on the tape for their backward. The CPU has one attention; its
// products round their inputs as the GPU's level does, and it keeps the same precision's rounding points.

// the GPU's matrix products (gemm.h): cuBLAS in FP32; cuBLAS allowed TF32 tensor cores (inputs rounded to 10
// mantissa bits: faster, not CPU parity); the handwritten teaching kernel (gemm_tiled.h); cuBLAS on the bf16
// tensor cores (fp32 buffers, inputs rounded to bf16, fp32 accumulation: Muon's --ns-dtype bf16)
enum GemmLevel { GEMM_CUBLAS = 0, GEMM_CUBLAS_TF32 = 1, GEMM_TILED = 2, GEMM_CUBLAS_BF16 = 3 };
// the GPU's attention (ops/attention.h): cuBLAS products and softmax kernels, saving (B, NH, T, T)
// probabilities; or the fused flash kernels (ops/attention_flash.h), saving only a logsumexp per row
enum AttentionPath { ATTENTION_SIMPLE = 0, ATTENTION_FLASH = 1 };
// the numbers a model stores (model.h): fp32 everywhere; or bf16's, as a bf16 trainer stores them (llm.c, PyTorch's
// autocast): the weights the layers read are a bf16-rounded copy of the fp32 master weights, and every activation
// is rounded to bf16 where it is made (the logits: where the loss reads them), while statistics (layernorm's mean
// and rstd, softmax's max and sum, the loss), sums, gradients and optimizer state stay fp32. Held in fp32 buffers
// with bf16 values, on both devices.
enum Precision { PRECISION_FP32 = 0, PRECISION_BF16 = 1 };
struct Kernels {
    GemmLevel gemm;
    AttentionPath attention;
    Precision precision;
};

// bf16 precision with bf16 products: the products read bf16 activations and bf16 output gradients (the GPU holds
// them in 16-bit storage: model.h's gpt2_storage16; the CPU rounds them where it packs them), and a bias gradient
// sums its output gradient as the products read it, in bf16 (ops/matmul.h), as autocast and llm.c do
static bool kernels_bf16(Kernels k) { return k.precision == PRECISION_BF16 && k.gemm == GEMM_CUBLAS_BF16; }

// ----------------------------------------------------------------------------------------------------
// the tape

struct TapeNode;
typedef void (*BackwardFn)(const TapeNode* node);

struct TapeNode {
    const char* op;        // "layernorm", "matmul", ...: for messages and profiles
    BackwardFn backward;   // the op's backward; it dispatches to the CPU or CUDA kernel by device
    Tensor* out;           // the output: out->grad holds dLoss/dout when backward runs
    Tensor* out2;          // a second output, or NULL (residual_layernorm's sum: its grad, too, is complete)
    Tensor* in[4];         // the inputs: backward adds into in[i]->grad (skipped where it is NULL)
    Tensor* saved[2];      // what the forward kept for the backward (layernorm's mean and rstd, ...)
    const int* ids;        // integer inputs (token ids, targets) on the tensors' device
    const int* aux;        // integer data the backward needs besides (embedding on the GPU: positions by token)
    int dims[4];           // the op's sizes (e.g. B, T, C, NH), as the forward was called
    Kernels kernels;       // the kernel choices the forward ran with (matmul, attention)
};

struct Tape {
    TapeNode* nodes;  // fixed capacity, allocated once
    int count;
    int capacity;
    bool recording;   // false: ops run their forward only (evaluation, sampling)
};

static void tape_init(Tape* tape, int capacity) {
    tape->nodes = (TapeNode*)xcalloc(capacity, sizeof(TapeNode));
    tape->count = 0;
    tape->capacity = capacity;
    tape->recording = true;
}

static void tape_free(Tape* tape) {
    free(tape->nodes);
    tape->nodes = NULL;
    tape->count = tape->capacity = 0;
}

// forget the last step's nodes; the buffers they point at stay where they are
static void tape_reset(Tape* tape) { tape->count = 0; }

static void tape_push(Tape* tape, const TapeNode* node) {
    if (!tape || !tape->recording) return;
    if (tape->count == tape->capacity) die("tape full (%d nodes): raise its capacity in model.h", tape->capacity);
    tape->nodes[tape->count++] = *node;
}

// Reverse-mode sweep: the last op's backward first. Each backward reads out->grad (complete by then,
// because every consumer of `out` was recorded later and has already run) and adds into its inputs.
static void tape_backward(const Tape* tape) {
    for (int i = tape->count - 1; i >= 0; i--) tape->nodes[i].backward(&tape->nodes[i]);
}

// a node: the op, its backward, its output, its inputs, what the forward saved for the backward and the op's sizes
// (each list as long as the op needs, the rest NULL or 0); ops set the other fields (ids, aux, out2, kernels)
static TapeNode tape_node(const char* op, BackwardFn backward, Tensor* out, Tensor* const (&in)[4] = {},
                          Tensor* const (&saved)[2] = {}, const int (&dims)[4] = {}) {
    TapeNode n;
    memset(&n, 0, sizeof(n));
    n.op = op;
    n.backward = backward;
    n.out = out;
    for (int i = 0; i < 4; i++) n.in[i] = in[i], n.dims[i] = dims[i];
    for (int i = 0; i < 2; i++) n.saved[i] = saved[i];
    return n;
}

static void zero_grad_node(const TapeNode* node) {
    device_zero(node->out->device, node->out->grad, node->out->size * sizeof(float));
}

// Records a node whose backward sets t's gradient to zero: buffers reused by several tensors (model.h's
// activation-gradient sets) are cleared between users, at the point of the backward walk the node was recorded at.
static void tape_zero_grad(Tape* tape, Tensor* t) {
    TapeNode n = tape_node("zero_grad", zero_grad_node, t);
    tape_push(tape, &n);
}
