// tests/opcases.h: one table of op cases, as ggml's test-backend-ops keeps one. A case is an op at one shape: its
// buffers (inputs, outputs, what the forward saves for the backward, the upstream gradient, the gradients), how
// they are filled, and the op's forward and backward called through its X_forward / X_backward(Device, ...)
// entry, the one the tape calls. Three drivers read the table:
//  - tests/test_ops.cpp: finite differences of L = Σ out ⊙ r against every analytic gradient, on the CPU;
//  - tests/test_gpu.cu: the CUDA op against the CPU op, and against itself on a second run (determinism), on a
//    GPU or on the CUDA emulation;
//  - dev/bench_cpu.cpp and dev/bench_gpu.cu: each op's forward and backward timed at the model's shapes.
// op_case_run runs a case on either device from the same host buffers, so each driver is a few lines.
#pragma once
#include <functional>
#include <string>
#include <vector>
#include "../ops/attention.h"
#include "../ops/crossentropy.h"
#include "../ops/embedding.h"
#include "../ops/gelu.h"
#include "../ops/layernorm.h"
#include "../ops/matmul.h"
#include "../ops/residual.h"

enum OpRole {
    OP_INPUT,    // a differentiable input: random
    OP_CONST,    // an input without a gradient (the bias of a bias-free product is one)
    OP_OUTPUT,   // the forward's result; L = Σ output ⊙ dout (summed over the outputs, if there are several)
    OP_SAVED,    // what the forward keeps for the backward (mean, rstd, att, lse)
    OP_DOUT,     // the upstream gradient dL/doutput: random (the k-th OP_DOUT belongs to the k-th OP_OUTPUT)
    OP_GRAD,     // the gradient of input `of`; backwards add (the loss's sets), so it starts random (zero for
                 // finite differences)
    OP_SCRATCH,  // working space
};

struct OpBuf {
    const char* name;
    OpRole role;
    size_t n;
    double gpu_tol;    // GPU vs CPU: |gpu − cpu| <= tol·(|cpu| + rms(cpu)) (gpu_testutil.h); 0: bit for bit; < 0: not
                       // compared
    int of = -1;       // OP_GRAD: the index of its input; OP_INPUT: the entries finite differences sample (fd_count)
    int fd_count = 0;  // OP_INPUT: how many entries the finite-difference check perturbs
    float scale = 1.0f, shift = 0.0f;  // random fill: shift + scale·N(0, 1)
};

typedef std::function<void(Device, Kernels, float**, int**)> OpRun;

struct OpCase {
    std::string name;                    // "layernorm N=74 C=1001"
    std::vector<OpBuf> bufs;
    std::vector<std::vector<int>> ints;  // ids, targets, token groups: filled here, on the host
    OpRun forward, backward;
    std::function<void(std::vector<std::vector<float>>*)> adjust;  // after the random fill (e.g. padded logits)
    double flops;                        // forward + backward, for the benchmark
    bool rounds = false;                 // at Kernels.precision bf16 its forward stores bf16 values (as_stored)
    bool reads_bf16 = false;             // at Kernels.precision bf16 it reads its input as bf16 values (the loss)
    int head_size = 0;                   // attention: C / NH (flash attention has kernels for some head sizes)
};

// whether the forward stores bf16 values (--precision bf16: the model's activations)
static bool bf16_of(Kernels k) { return k.precision == PRECISION_BF16; }

// A sum of K float32 terms of size ~1 carries a rounding error of about 6e-8·sqrt(K) of its typical size in any
// order; the GPU and the CPU add in different orders, so an entry behind a K-term sum is compared at
// sum_tol(K) = 1e-6 + 2.4e-7·sqrt(K), four times that estimate.
static double sum_tol(double K) { return 1e-6 + 2.4e-7 * sqrt(K); }

// ----------------------------------------------------------------------------------------------------
// the cases, one builder per op

static OpCase matmul_case(int N, int C, int OC, bool bias) {
    OpCase c;
    c.name = "matmul N=" + std::to_string(N) + " C=" + std::to_string(C) + " OC=" + std::to_string(OC) +
             (bias ? "" : " no bias");
    c.bufs = {{"inp", OP_INPUT, (size_t)N * C, 0, -1, 40},
              {"weight", OP_INPUT, (size_t)OC * C, 0, -1, 40},
              {"bias", bias ? OP_INPUT : OP_CONST, (size_t)OC, 0, -1, 7},
              {"out", OP_OUTPUT, (size_t)N * OC, sum_tol(C)},
              {"dout", OP_DOUT, (size_t)N * OC, -1},
              {"dinp", OP_GRAD, (size_t)N * C, sum_tol(OC), 0},
              {"dweight", OP_GRAD, (size_t)OC * C, sum_tol(N), 1},
              {"dbias", OP_GRAD, (size_t)OC, sum_tol(N), 2}};  // without bias: left as it was, on both devices
    c.forward = [=](Device d, Kernels k, float** b, int**) {
        matmul_forward(d, k.gemm, b[3], b[0], b[1], bias ? b[2] : NULL, N, C, OC, bf16_of(k));
    };
    c.rounds = true;
    c.backward = [=](Device d, Kernels k, float** b, int**) {
        matmul_backward(d, k.gemm, b[5], b[6], bias ? b[7] : NULL, b[4], b[0], b[1], N, C, OC, kernels_bf16(k));
    };
    c.flops = 6.0 * N * C * OC;
    return c;
}

static OpCase layernorm_case(int N, int C) {
    OpCase c;
    c.name = "layernorm N=" + std::to_string(N) + " C=" + std::to_string(C);
    // x̂ passes through two sums over C (mean, variance), dx through two more; dw and db sum over the N rows
    double row = 2 * sum_tol(C), col = 2 * sum_tol(N);
    c.bufs = {{"inp", OP_INPUT, (size_t)N * C, 0, -1, 40, 2.0f, 3.0f},  // a mean far from zero, as in the residual stream
              {"weight", OP_INPUT, (size_t)C, 0, -1, C},
              {"bias", OP_INPUT, (size_t)C, 0, -1, C},
              {"out", OP_OUTPUT, (size_t)N * C, row},
              {"mean", OP_SAVED, (size_t)N, row},
              {"rstd", OP_SAVED, (size_t)N, row},
              {"dout", OP_DOUT, (size_t)N * C, -1},
              {"dinp", OP_GRAD, (size_t)N * C, 2 * row, 0},
              {"dweight", OP_GRAD, (size_t)C, col + row, 1},
              {"dbias", OP_GRAD, (size_t)C, col, 2}};
    c.forward = [=](Device d, Kernels k, float** b, int**) {
        layernorm_forward(d, b[3], b[4], b[5], b[0], b[1], b[2], N, C, bf16_of(k));
    };
    c.rounds = true;
    c.backward = [=](Device d, Kernels, float** b, int**) {
        layernorm_backward(d, b[7], b[8], b[9], b[6], b[0], b[1], b[4], b[5], N, C);
    };
    c.flops = 20.0 * N * C;
    return c;
}

// the fused residual add and layernorm: sum = a + b, out = layernorm(sum); the sum has an upstream gradient of its
// own (the next residual add reads it), which the backward adds to layernorm's dx before passing both to a and b
static OpCase residual_layernorm_case(int N, int C) {
    OpCase c;
    c.name = "residual_layernorm N=" + std::to_string(N) + " C=" + std::to_string(C);
    double row = 2 * sum_tol(C), col = 2 * sum_tol(N);  // as layernorm_case; the sum is one addition: the same bits
    c.bufs = {{"a", OP_INPUT, (size_t)N * C, 0, -1, 30, 2.0f, 3.0f},  // the stream: a mean far from zero
              {"b", OP_INPUT, (size_t)N * C, 0, -1, 30},
              {"weight", OP_INPUT, (size_t)C, 0, -1, C},
              {"bias", OP_INPUT, (size_t)C, 0, -1, C},
              {"sum", OP_OUTPUT, (size_t)N * C, 0},
              {"out", OP_OUTPUT, (size_t)N * C, row},
              {"mean", OP_SAVED, (size_t)N, row},
              {"rstd", OP_SAVED, (size_t)N, row},
              {"dsum", OP_DOUT, (size_t)N * C, -1},
              {"dout", OP_DOUT, (size_t)N * C, -1},
              {"da", OP_GRAD, (size_t)N * C, 2 * row, 0},
              {"db", OP_GRAD, (size_t)N * C, 2 * row, 1},
              {"dweight", OP_GRAD, (size_t)C, col + row, 2},
              {"dbias", OP_GRAD, (size_t)C, col, 3}};
    c.forward = [=](Device d, Kernels k, float** b, int**) {
        residual_layernorm_forward(d, b[4], b[5], b[6], b[7], b[0], b[1], b[2], b[3], N, C, bf16_of(k));
    };
    c.rounds = true;
    c.backward = [=](Device d, Kernels, float** b, int**) {
        residual_layernorm_backward(d, b[10], b[11], b[12], b[13], b[8], b[9], b[4], b[2], b[6], b[7], N, C);
    };
    c.flops = 21.0 * N * C;
    return c;
}

static OpCase attention_case(int B, int T, int C, int NH) {
    OpCase c;
    c.name = "attention B=" + std::to_string(B) + " T=" + std::to_string(T) + " C=" + std::to_string(C) +
             " NH=" + std::to_string(NH);
    // scores sum over HS, the softmax over T, the outputs over T again; the backward chains two more sums
    double tol = sum_tol(C / NH) + 2 * sum_tol(T);
    size_t qkv = (size_t)B * T * 3 * C, out = (size_t)B * T * C, att = (size_t)B * NH * T * T;
    c.bufs = {{"qkv", OP_INPUT, qkv, 0, -1, 120},
              {"out", OP_OUTPUT, out, tol},
              {"att", OP_SAVED, att, tol},
              {"dout", OP_DOUT, out, -1},
              {"dqkv", OP_GRAD, qkv, 2 * tol, 0},
              {"scratch", OP_SCRATCH, att, -1}};  // (B, NH, T) on the CPU, (B, NH, T, T) for the simple GPU path
    c.forward = [=](Device d, Kernels k, float** b, int**) {
        attention_forward(d, k, b[1], b[2], b[0], B, T, C, NH, bf16_of(k));
    };
    c.rounds = true;
    c.head_size = C / NH;
    c.backward = [=](Device d, Kernels k, float** b, int**) {
        attention_backward(d, k, b[4], b[5], b[3], b[0], b[1], b[2], B, T, C, NH);
    };
    c.flops = 3.0 * 4.0 * B * NH * (double)T * T * (C / NH) / 2;  // causal: half the T x T products
    return c;
}

// GELU and the residual add have no sums; CUDA's tanhf is within 2 ulp of the correctly rounded value (CUDA math
// documentation), glibc's within 1-2, and a fused multiply-add rounds once instead of twice; 1 - tanh² near
// |tanh| = 1 cancels, but that term is then multiplied by ~x³·e^(-2u), so the error stays ~1e-6 of dy/dx.
static OpCase gelu_case(size_t n) {
    OpCase c;
    c.name = "gelu n=" + std::to_string(n);
    c.bufs = {{"inp", OP_INPUT, n, 0, -1, 50, 3.0f},
              {"out", OP_OUTPUT, n, 1e-5},
              {"dout", OP_DOUT, n, -1},
              {"dinp", OP_GRAD, n, 1e-5, 0}};
    c.forward = [=](Device d, Kernels k, float** b, int**) { gelu_forward(d, b[1], b[0], n, bf16_of(k)); };
    c.rounds = true;
    c.backward = [=](Device d, Kernels, float** b, int**) { gelu_backward(d, b[3], b[0], b[2], n); };
    c.flops = 30.0 * n;
    return c;
}

static OpCase residual_case(size_t n) {
    OpCase c;
    c.name = "residual n=" + std::to_string(n);
    c.bufs = {{"a", OP_INPUT, n, 0, -1, 30},  // one addition each: nothing to reorder, the same bits
              {"b", OP_INPUT, n, 0, -1, 30},
              {"out", OP_OUTPUT, n, 0},
              {"dout", OP_DOUT, n, -1},
              {"da", OP_GRAD, n, 0, 0},
              {"db", OP_GRAD, n, 0, 1}};
    c.forward = [=](Device d, Kernels, float** b, int**) { residual_forward(d, b[2], b[0], b[1], n); };
    c.backward = [=](Device d, Kernels, float** b, int**) { residual_backward(d, b[4], b[5], b[3], n); };
    c.flops = 3.0 * n;
    return c;
}

// ids: given, or (empty) drawn with many repeats: half the positions from 5 tokens, or from one when there are
// over 1000 (as the newline fills a batch of real text)
static OpCase embedding_case(int B, int T, int C, int Vp, std::vector<int> ids = {}) {
    OpCase c;
    int N = B * T;
    c.name = "embedding B=" + std::to_string(B) + " T=" + std::to_string(T) + " C=" + std::to_string(C) +
             " Vp=" + std::to_string(Vp);
    if (ids.empty()) {
        ids.resize(N);
        Rng rng = rng_make(100 + C);
        for (int i = 0; i < N; i++) ids[i] = N > 1000 && i % 2 ? 198 % Vp : (int)(rng_u32(&rng) % (i % 2 ? 5u : (unsigned)Vp));
    }
    std::vector<int> counts(Vp), groups(3 * N + 1);  // (16, 128, 768): G 1,015, over the kernel's 512 blocks
    embedding_token_groups(ids.data(), N, Vp, counts.data(), groups.data());
    c.ints = {ids, groups};
    // the same additions in the same order as the CPU (see embedding_backward_wte_kernel): the same bits
    c.bufs = {{"wte", OP_INPUT, (size_t)Vp * C, 0, -1, 42},
              {"wpe", OP_INPUT, (size_t)T * C, 0, -1, 30},
              {"out", OP_OUTPUT, (size_t)N * C, 0},
              {"dout", OP_DOUT, (size_t)N * C, -1},
              {"dwte", OP_GRAD, (size_t)Vp * C, 0, 0},
              {"dwpe", OP_GRAD, (size_t)T * C, 0, 1}};
    c.forward = [=](Device d, Kernels k, float** b, int** in) {
        embedding_forward(d, b[2], in[0], b[0], b[1], B, T, C, bf16_of(k));
    };
    c.rounds = true;
    c.backward = [=](Device d, Kernels, float** b, int** in) {
        embedding_backward(d, b[4], b[5], b[3], in[0], in[1], B, T, C);
    };
    c.flops = 4.0 * N * C;
    return c;
}

// padded logits (columns V..Vp) set to `padding`, larger than any real one: they must still take no part
static OpCase crossentropy_case(int N, int V, int Vp, float padding) {
    OpCase c;
    c.name = "crossentropy N=" + std::to_string(N) + " V=" + std::to_string(V) + " Vp=" + std::to_string(Vp);
    std::vector<int> targets(N);
    Rng rng = rng_make(63);
    for (int n = 0; n < N; n++) targets[n] = (int)(rng_u32(&rng) % V);
    c.ints = {targets};
    // lse: the GPU sums exp in float over V terms (the CPU in double); dlogits: exp differs by an ulp or two
    double tol = sum_tol(V);
    c.bufs = {{"logits", OP_INPUT, (size_t)N * Vp, 0, -1, 64, 2.0f},
              {"losses", OP_OUTPUT, (size_t)N, tol},
              {"lse", OP_SAVED, (size_t)N, tol},
              {"dlosses", OP_DOUT, (size_t)N, -1},
              {"dlogits", OP_GRAD, (size_t)N * Vp, tol, 0}};
    c.adjust = [=](std::vector<std::vector<float>>* h) {
        for (int n = 0; n < N; n++)
            for (int v = V; v < Vp; v++) (*h)[0][(size_t)n * Vp + v] = padding;
    };
    c.forward = [=](Device d, Kernels k, float** b, int** in) {
        crossentropy_forward(d, b[1], b[2], b[0], in[0], N, V, Vp, NULL, 0.0f, bf16_of(k));
    };
    c.backward = [=](Device d, Kernels k, float** b, int** in) {
        crossentropy_backward(d, b[4], b[3], b[0], b[2], in[0], N, V, Vp, bf16_of(k));
    };
    c.reads_bf16 = true;
    c.flops = 6.0 * N * V;
    return c;
}

// The classifier as a training step runs it: the loss's backward fused into its forward for dlosses = dloss at
// every position (dlogits in a buffer of its own here; the model writes it over the logits). No backward left.
static OpCase crossentropy_fused_case(int N, int V, int Vp, float padding) {
    OpCase c = crossentropy_case(N, V, Vp, padding);
    c.name = "crossentropy fused N=" + std::to_string(N) + " V=" + std::to_string(V) + " Vp=" + std::to_string(Vp);
    const float dloss = 1.0f / N;
    c.forward = [=](Device d, Kernels k, float** b, int** in) {
        crossentropy_forward(d, b[1], b[2], b[0], in[0], N, V, Vp, b[4], dloss, bf16_of(k));
    };
    c.backward = [](Device, Kernels, float**, int**) {};
    c.flops = 8.0 * N * V;
    return c;
}

// ----------------------------------------------------------------------------------------------------
// the tables

// small enough for finite differences (each perturbed entry reruns the forward twice)
static std::vector<OpCase> op_cases_fd() {
    return {matmul_case(6, 11, 7, true), layernorm_case(5, 19), residual_layernorm_case(4, 17),
            attention_case(2, 7, 12, 3), gelu_case(50), residual_case(30), embedding_case(2, 5, 6, 7, {3, 1, 3, 0, 6, 3, 3, 2, 1, 5}),  // token 3 four times
            crossentropy_case(4, 10, 16, 100.0f)};
}

// awkward shapes for the GPU: not multiples of 32, T = 1, rows of 1000+ channels, GPT-2's 50257/50304 vocabulary
static std::vector<OpCase> op_cases_gpu() {
    return {matmul_case(111, 1001, 67, true), matmul_case(13, 48, 50304, false), matmul_case(1, 1, 1, true),
            matmul_case(65, 33, 129, true), matmul_case(37, 48, 192, true),  // the last: the bias kernel's float4 path
            layernorm_case(1, 7), layernorm_case(74, 1001), layernorm_case(130, 768), layernorm_case(37, 33),
            residual_layernorm_case(1, 7), residual_layernorm_case(74, 1001), residual_layernorm_case(37, 33),
            attention_case(2, 1, 48, 3), attention_case(2, 37, 48, 3), attention_case(1, 67, 768, 12),
            attention_case(3, 5, 12, 4),
            gelu_case(37 * 1001), gelu_case(3), residual_case(3 * 37 * 1001),  // 37037 = 4·9259 + 1, and 3: the tails
            embedding_case(3, 37, 67, 50304), embedding_case(2, 1, 1001, 97), embedding_case(4, 33, 768, 60),
            embedding_case(16, 128, 768, 50304),
            crossentropy_case(5, 50257, 50304, 1e4f), crossentropy_case(37, 60, 64, 1e4f), crossentropy_case(1, 2, 2, 1e4f),
            crossentropy_fused_case(5, 50257, 50304, 1e4f), crossentropy_fused_case(37, 60, 64, 1e4f)};
}

// the layers of one transformer block and the head, at a model's shapes (B·T positions, width C, NH heads); the
// plain residual add and layernorm beside the fused pair the model runs, for the fused-vs-unfused comparison
// (ids: the embedding's tokens, e.g. real text's, whose frequent tokens are its backward's work; empty: drawn)
static std::vector<OpCase> op_cases_bench(int B, int T, int C, int NH, int Vp, std::vector<int> ids = {}) {
    int N = B * T;
    return {embedding_case(B, T, C, Vp, ids), layernorm_case(N, C), matmul_case(N, C, 3 * C, true),
            attention_case(B, T, C, NH), matmul_case(N, C, 4 * C, true), gelu_case((size_t)N * 4 * C),
            matmul_case(N, 4 * C, C, true), residual_case((size_t)N * C), residual_layernorm_case(N, C),
            matmul_case(N, C, Vp, false), crossentropy_case(N, 50257 < Vp ? 50257 : Vp, Vp, 0.0f),
            crossentropy_fused_case(N, 50257 < Vp ? 50257 : Vp, Vp, 0.0f)};
}

// ----------------------------------------------------------------------------------------------------
// running a case

// The host buffers of a case, filled from `seed`: random (shift + scale·N(0,1)) but for the outputs, saved values
// and scratch (zero) and, with zero_grads, the gradients (zero: what finite differences compare against).
static std::vector<std::vector<float>> op_case_inputs(const OpCase& c, uint64_t seed, bool zero_grads) {
    std::vector<std::vector<float>> h(c.bufs.size());
    for (size_t i = 0; i < c.bufs.size(); i++) {
        const OpBuf& b = c.bufs[i];
        h[i].assign(b.n, 0.0f);
        bool random = b.role == OP_INPUT || b.role == OP_CONST || b.role == OP_DOUT || (b.role == OP_GRAD && !zero_grads);
        Rng rng = rng_make(seed * 1000 + i);
        if (random)
            for (float& x : h[i]) x = b.shift + (float)(b.scale * rng_normal(&rng));
    }
    if (c.adjust) c.adjust(&h);
    return h;
}

// A case's buffers on a device: b[i] for bufs[i], in[i] for ints[i] (the ints copied in).
struct OpCaseBuffers {
    Device dev;
    std::vector<float*> b;
    std::vector<int*> in;
};

static OpCaseBuffers op_case_alloc(const OpCase& c, Device dev) {
    OpCaseBuffers d;
    d.dev = dev;
    for (const OpBuf& buf : c.bufs) d.b.push_back((float*)device_malloc(dev, sizeof(float) * (buf.n ? buf.n : 1)));
    for (const std::vector<int>& v : c.ints) {
        d.in.push_back((int*)device_malloc(dev, sizeof(int) * (v.size() ? v.size() : 1)));
        copy_to_device(dev, d.in.back(), v.data(), sizeof(int) * v.size());
    }
    return d;
}

static void op_case_free(OpCaseBuffers* d) {
    for (float* p : d->b) device_free(d->dev, p);
    for (int* p : d->in) device_free(d->dev, p);
    d->b.clear();
    d->in.clear();
}

// Runs the case's forward (and its backward) on `dev` from host buffers `h`, and returns every buffer as it is
// afterwards: the same call on the CPU and on the GPU, from the same host values.
static std::vector<std::vector<float>> op_case_run(const OpCase& c, Device dev, Kernels k,
                                                   const std::vector<std::vector<float>>& h, bool backward = true) {
    OpCaseBuffers d = op_case_alloc(c, dev);
    for (size_t i = 0; i < h.size(); i++) copy_to_device(dev, d.b[i], h[i].data(), sizeof(float) * h[i].size());
    c.forward(dev, k, d.b.data(), d.in.data());
    if (backward) c.backward(dev, k, d.b.data(), d.in.data());
    std::vector<std::vector<float>> out(h.size());
    for (size_t i = 0; i < h.size(); i++) {
        out[i].resize(h[i].size());
        copy_to_host(dev, out[i].data(), d.b[i], sizeof(float) * h[i].size());
    }
    op_case_free(&d);
    return out;
}
