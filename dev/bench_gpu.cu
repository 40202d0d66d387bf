// dev/bench_gpu.cu: `make bench` on the GPU (Google Benchmark; nvcc builds it). Measures, in one run:
//  - the teaching GEMM (gemm_tiled.h) against cuBLAS FP32 (and cuBLAS with TF32, for scale) at GPT-2
//    124M's matmul shapes: TFLOP/s and ratios;
//  - each op's CUDA forward and backward at d12 shapes (B 16, T 1024, C 768, 12 heads, vocabulary 50257);
//  - attention's two GPU paths, the simple one (cuBLAS + softmax kernels) and the fused flash kernels
//    (ops/attention_flash.h), forward + backward at those shapes: time, TFLOP/s, ratio, saved memory;
//  - a whole d12 training step (forward, backward, AdamW) in tokens/s and MFU as llm.c counts it
//    (6N + 6LCT flops per token against the GPU's dense bf16 peak; this FP32 code reaches a few percent).
// GPU times come from CUDA events around each iteration (manual time), so they are the GPU's, not the queue's.
// On a machine without a GPU it prints one line and exits 0.
#include <benchmark/benchmark.h>
#include "bench_report.h"
#include <functional>
#include <map>
#include <string>
#include <vector>
#include "../data/prepare.h"
#include "../optim.h"

static const int BENCH_B = 16, BENCH_T = 1024, BENCH_C = 768, BENCH_NH = 12, BENCH_V = 50257, BENCH_VP = 50304;
static const int BENCH_N = BENCH_B * BENCH_T;

// x[i] uniform in [-scale, scale) from a hash of (seed, i): fills gigabytes without a host round trip
static __global__ void bench_fill_kernel(float* x, size_t n, uint32_t seed, float scale) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    uint32_t h = (uint32_t)i * 747796405u + seed * 2891336453u;
    h = ((h >> ((h >> 28u) + 4u)) ^ h) * 277803737u;  // PCG's output permutation
    h = (h >> 22u) ^ h;
    x[i] = scale * ((h >> 8) / 8388608.0f - 1.0f);
}

static float* bench_buffer(size_t n, uint32_t seed, float scale = 1.0f) {
    float* x = (float*)device_malloc(DEV_CUDA, sizeof(float) * n);
    bench_fill_kernel<<<cuda_blocks(n, 256), 256>>>(x, n, seed, scale);
    cudaCheckLaunch();
    return x;
}

static int* bench_ids(int n, int vocab, uint64_t seed) {
    std::vector<int> h(n);
    Rng rng = rng_make(seed);
    for (int& id : h) id = (int)(rng_u32(&rng) % vocab);
    int* d = (int*)device_malloc(DEV_CUDA, sizeof(int) * n);
    copy_to_device(DEV_CUDA, d, h.data(), sizeof(int) * n);
    return d;
}

// Times fn on the GPU: one untimed call (warm-up, cuBLAS's first-call set-up), then each iteration between
// two CUDA events.
static void gpu_timed(benchmark::State& state, const std::function<void()>& fn) {
    cudaEvent_t start, stop;
    cudaCheck(cudaEventCreate(&start));
    cudaCheck(cudaEventCreate(&stop));
    fn();
    cudaCheck(cudaDeviceSynchronize());
    for (auto _ : state) {
        cudaCheck(cudaEventRecord(start));
        fn();
        cudaCheck(cudaEventRecord(stop));
        cudaCheck(cudaEventSynchronize(stop));
        float ms = 0.0f;
        cudaCheck(cudaEventElapsedTime(&ms, start, stop));
        state.SetIterationTime(ms / 1e3);
    }
    cudaCheck(cudaEventDestroy(start));
    cudaCheck(cudaEventDestroy(stop));
}

// ----------------------------------------------------------------------------------------------------
// the teaching GEMM against cuBLAS: out (N, OC) = inp (N, C) · Wᵀ at GPT-2 124M's shapes, N = B·T

static void BM_gemm(benchmark::State& state, GemmLevel kind) {
    int N = (int)state.range(0), C = (int)state.range(1), OC = (int)state.range(2);
    float *inp = bench_buffer((size_t)N * C, 1), *w = bench_buffer((size_t)OC * C, 2);
    float* out = bench_buffer((size_t)N * OC, 3);
    gpu_timed(state, [&]() { matmul_forward_cuda(kind, out, inp, w, NULL, N, C, OC); });
    state.counters["TFLOP/s"] = benchmark::Counter(2.0 * N * C * OC / 1e12, benchmark::Counter::kIsIterationInvariantRate);
    for (float* p : {inp, w, out}) device_free(DEV_CUDA, p);
}

static void gemm_args(benchmark::internal::Benchmark* b) {
    b->Args({BENCH_N, 768, 2304})->Args({BENCH_N, 768, 3072})->Args({BENCH_N, 3072, 768})->Args({BENCH_N, 768, 50304});
}
BENCHMARK_CAPTURE(BM_gemm, cublas_fp32, GEMM_CUBLAS)->Apply(gemm_args)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_gemm, cublas_tf32, GEMM_CUBLAS_TF32)->Apply(gemm_args)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_gemm, tiled, GEMM_TILED)->Apply(gemm_args)->UseManualTime()->Unit(benchmark::kMillisecond);

// ----------------------------------------------------------------------------------------------------
// each op, forward and backward, at d12 shapes (backwards add into their gradients every iteration: the
// values drift, the work does not)

// Real text's token frequencies, not uniform ids (the embedding's backward sums each token's rows: a frequent
// token is the work): the first B·T tokens of tinyshakespeare, GPT-2 encoded. The newline (198) is about one
// token in six there. Falls back to uniform ids, saying so, where the corpus or the vocabulary is missing.
static std::vector<int> bench_corpus_ids(int n) {
    static std::vector<int> ids;
    if ((int)ids.size() >= n) return std::vector<int>(ids.begin(), ids.begin() + n);
    Tokenizer tok;
    char err[ERR_LEN];
    FILE* f = fopen("data/tinyshakespeare.txt", "rb");
    std::vector<char> text(400000);
    size_t len = f ? fread(text.data(), 1, text.size(), f) : 0;
    if (f) fclose(f);
    if (len == 0 || tokenizer_load_default(&tok, err) || tokenizer_encode(&tok, text.data(), len, &ids, err) ||
        (int)ids.size() < n) {
        printf("bench_gpu: no corpus to take token frequencies from (%s): uniform ids\n", len ? err : "data/tinyshakespeare.txt");
        ids.resize(n);
        Rng rng = rng_make(4);
        for (int& id : ids) id = (int)(rng_u32(&rng) % BENCH_V);
    }
    return std::vector<int>(ids.begin(), ids.begin() + n);
}

static void BM_embedding(benchmark::State& state, bool backward) {
    std::vector<int> host_ids = bench_corpus_ids(BENCH_N), counts(BENCH_VP), groups(3 * BENCH_N);
    int G = embedding_token_groups(host_ids.data(), BENCH_N, BENCH_VP, counts.data(), groups.data());
    int* ids = (int*)device_malloc(DEV_CUDA, sizeof(int) * BENCH_N);
    int* d_groups = (int*)device_malloc(DEV_CUDA, sizeof(int) * 3 * BENCH_N);
    copy_to_device(DEV_CUDA, ids, host_ids.data(), sizeof(int) * BENCH_N);
    copy_to_device(DEV_CUDA, d_groups, groups.data(), sizeof(int) * 3 * BENCH_N);
    float *wte = bench_buffer((size_t)BENCH_VP * BENCH_C, 5), *wpe = bench_buffer((size_t)BENCH_T * BENCH_C, 6);
    float* out = bench_buffer((size_t)BENCH_N * BENCH_C, 7);
    if (backward)
        gpu_timed(state, [&]() { embedding_backward_cuda(wte, wpe, out, ids, d_groups, G, BENCH_B, BENCH_T, BENCH_C); });
    else gpu_timed(state, [&]() { embedding_forward_cuda(out, ids, wte, wpe, BENCH_B, BENCH_T, BENCH_C); });
    state.counters["tokens"] = G;                                        // distinct tokens in the batch
    state.counters["largest"] = groups[BENCH_N + 1] - groups[BENCH_N];  // positions of the most frequent one
    device_free(DEV_CUDA, ids);
    device_free(DEV_CUDA, d_groups);
    for (float* p : {wte, wpe, out}) device_free(DEV_CUDA, p);
}

static void BM_layernorm(benchmark::State& state, bool backward) {
    size_t n = (size_t)BENCH_N * BENCH_C;
    float *inp = bench_buffer(n, 8), *out = bench_buffer(n, 9), *dinp = bench_buffer(n, 10);
    float *w = bench_buffer(BENCH_C, 11), *b = bench_buffer(BENCH_C, 12), *dw = bench_buffer(BENCH_C, 13),
          *db = bench_buffer(BENCH_C, 14), *mean = bench_buffer(BENCH_N, 15), *rstd = bench_buffer(BENCH_N, 16);
    layernorm_forward_cuda(out, mean, rstd, inp, w, b, BENCH_N, BENCH_C);
    if (backward)
        gpu_timed(state, [&]() { layernorm_backward_cuda(dinp, dw, db, out, inp, w, mean, rstd, BENCH_N, BENCH_C); });
    else gpu_timed(state, [&]() { layernorm_forward_cuda(out, mean, rstd, inp, w, b, BENCH_N, BENCH_C); });
    for (float* p : {inp, out, dinp, w, b, dw, db, mean, rstd}) device_free(DEV_CUDA, p);
}

// the layer at the qkv projection (C -> 3C, with bias) and the tied LM head (C -> Vp, no bias)
static void BM_matmul(benchmark::State& state, bool backward) {
    int C = BENCH_C, OC = (int)state.range(0);
    bool bias = OC != BENCH_VP;
    float *inp = bench_buffer((size_t)BENCH_N * C, 17), *dinp = bench_buffer((size_t)BENCH_N * C, 18);
    float *w = bench_buffer((size_t)OC * C, 19), *dw = bench_buffer((size_t)OC * C, 20);
    float *b = bench_buffer(OC, 21), *db = bench_buffer(OC, 22), *out = bench_buffer((size_t)BENCH_N * OC, 23);
    if (backward)
        gpu_timed(state, [&]() { matmul_backward_cuda(GEMM_CUBLAS, dinp, dw, bias ? db : NULL, out, inp, w, BENCH_N, C, OC); });
    else gpu_timed(state, [&]() { matmul_forward_cuda(GEMM_CUBLAS, out, inp, w, bias ? b : NULL, BENCH_N, C, OC); });
    state.counters["TFLOP/s"] = benchmark::Counter((backward ? 4.0 : 2.0) * BENCH_N * C * OC / 1e12,
                                                   benchmark::Counter::kIsIterationInvariantRate);
    for (float* p : {inp, dinp, w, dw, b, db, out}) device_free(DEV_CUDA, p);
}

static void BM_attention(benchmark::State& state, bool backward) {
    size_t n_qkv = (size_t)BENCH_N * 3 * BENCH_C, n_att = (size_t)BENCH_B * BENCH_NH * BENCH_T * BENCH_T;
    float *qkv = bench_buffer(n_qkv, 24), *dqkv = bench_buffer(n_qkv, 25), *out = bench_buffer((size_t)BENCH_N * BENCH_C, 26);
    float *att = bench_buffer(n_att, 27), *scratch = bench_buffer(n_att, 28);
    attention_forward_cuda(GEMM_CUBLAS, out, att, qkv, BENCH_B, BENCH_T, BENCH_C, BENCH_NH);
    if (backward)
        gpu_timed(state, [&]() {
            attention_backward_cuda(GEMM_CUBLAS, dqkv, scratch, out, qkv, att, BENCH_B, BENCH_T, BENCH_C, BENCH_NH);
        });
    else gpu_timed(state, [&]() { attention_forward_cuda(GEMM_CUBLAS, out, att, qkv, BENCH_B, BENCH_T, BENCH_C, BENCH_NH); });
    for (float* p : {qkv, dqkv, out, att, scratch}) device_free(DEV_CUDA, p);
}

// The two GPU attention paths, forward and backward together (the fused backward recomputes what the simple
// path keeps in att, so only the pair compares like with like). TFLOP/s counts the causal half only:
// 6 products of (T²/2) x HS per (b, h) (2 forward, 4 backward) = 6·B·T²·C flops, llm.c's 6LCT per token.
// saved_MiB: what each path keeps for the backward plus its backward scratch (att + scratch: (B, NH, T, T)
// each for the simple path; L and D: (B, NH, T) each for the fused one).
static void BM_attention_fwd_bwd(benchmark::State& state, bool flash) {
    const int B = BENCH_B, T = BENCH_T, C = BENCH_C, NH = BENCH_NH;
    size_t n_qkv = (size_t)BENCH_N * 3 * C, n_out = (size_t)BENCH_N * C;
    size_t n_saved = flash ? (size_t)B * NH * T : (size_t)B * NH * T * T;
    float *qkv = bench_buffer(n_qkv, 41), *dqkv = bench_buffer(n_qkv, 42), *out = bench_buffer(n_out, 43),
          *dout = bench_buffer(n_out, 44), *saved = bench_buffer(n_saved, 45), *scratch = bench_buffer(n_saved, 46);
    gpu_timed(state, [&]() {
        if (flash) {
            attention_flash_forward_cuda(out, saved, qkv, B, T, C, NH);
            attention_flash_backward_cuda(dqkv, scratch, dout, qkv, out, saved, B, T, C, NH);
        } else {
            attention_forward_cuda(GEMM_CUBLAS, out, saved, qkv, B, T, C, NH);
            attention_backward_cuda(GEMM_CUBLAS, dqkv, scratch, dout, qkv, saved, B, T, C, NH);
        }
    });
    state.counters["TFLOP/s"] = benchmark::Counter(6.0 * B * T * T * C / 1e12, benchmark::Counter::kIsIterationInvariantRate);
    state.counters["saved_MiB"] = 2.0 * n_saved * sizeof(float) / 1048576.0;
    for (float* p : {qkv, dqkv, out, dout, saved, scratch}) device_free(DEV_CUDA, p);
}
BENCHMARK_CAPTURE(BM_attention_fwd_bwd, simple, false)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_attention_fwd_bwd, flash, true)->UseManualTime()->Unit(benchmark::kMillisecond);

static void BM_gelu(benchmark::State& state, bool backward) {
    size_t n = (size_t)BENCH_N * 4 * BENCH_C;
    float *inp = bench_buffer(n, 29, 3.0f), *out = bench_buffer(n, 30), *dinp = bench_buffer(n, 31);
    if (backward) gpu_timed(state, [&]() { gelu_backward_cuda(dinp, inp, out, n); });
    else gpu_timed(state, [&]() { gelu_forward_cuda(out, inp, n); });
    state.counters["GB/s"] = benchmark::Counter((backward ? 16.0 : 8.0) * n / 1e9,
                                                benchmark::Counter::kIsIterationInvariantRate);
    for (float* p : {inp, out, dinp}) device_free(DEV_CUDA, p);
}

static void BM_residual(benchmark::State& state, bool backward) {
    size_t n = (size_t)BENCH_N * BENCH_C;
    float *a = bench_buffer(n, 32), *b = bench_buffer(n, 33), *out = bench_buffer(n, 34);
    if (backward) gpu_timed(state, [&]() { residual_backward_cuda(a, b, out, n); });
    else gpu_timed(state, [&]() { residual_forward_cuda(out, a, b, n); });
    state.counters["GB/s"] = benchmark::Counter((backward ? 20.0 : 12.0) * n / 1e9,
                                                benchmark::Counter::kIsIterationInvariantRate);
    for (float* p : {a, b, out}) device_free(DEV_CUDA, p);
}

static void BM_crossentropy(benchmark::State& state, bool backward) {
    size_t n = (size_t)BENCH_N * BENCH_VP;
    int* targets = bench_ids(BENCH_N, BENCH_V, 35);
    float *logits = bench_buffer(n, 36, 4.0f), *dlogits = bench_buffer(n, 37);
    float *losses = bench_buffer(BENCH_N, 38), *lse = bench_buffer(BENCH_N, 39), *dlosses = bench_buffer(BENCH_N, 40);
    crossentropy_forward_cuda(losses, lse, logits, targets, BENCH_N, BENCH_V, BENCH_VP);
    if (backward)
        gpu_timed(state, [&]() {
            crossentropy_backward_cuda(dlogits, dlosses, logits, lse, targets, BENCH_N, BENCH_V, BENCH_VP);
        });
    else gpu_timed(state, [&]() { crossentropy_forward_cuda(losses, lse, logits, targets, BENCH_N, BENCH_V, BENCH_VP); });
    device_free(DEV_CUDA, targets);
    for (float* p : {logits, dlogits, losses, lse, dlosses}) device_free(DEV_CUDA, p);
}

#define OP_BENCH(fn)                                                                                   \
    BENCHMARK_CAPTURE(fn, forward, false)->UseManualTime()->Unit(benchmark::kMillisecond);            \
    BENCHMARK_CAPTURE(fn, backward, true)->UseManualTime()->Unit(benchmark::kMillisecond)
OP_BENCH(BM_embedding);
OP_BENCH(BM_layernorm);
OP_BENCH(BM_attention);
OP_BENCH(BM_gelu);
OP_BENCH(BM_residual);
OP_BENCH(BM_crossentropy);
BENCHMARK_CAPTURE(BM_matmul, forward, false)->Arg(3 * BENCH_C)->Arg(BENCH_VP)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_matmul, backward, true)->Arg(3 * BENCH_C)->Arg(BENCH_VP)->UseManualTime()->Unit(benchmark::kMillisecond);

// ----------------------------------------------------------------------------------------------------
// a whole d12 training step: forward, backward, AdamW (through optim.h, as the trainer runs it)

static void BM_train_step(benchmark::State& state) {
    GPT2Config cfg;
    char err[ERR_LEN];
    if (gpt2_config_preset(&cfg, "d12", err)) die("%s", err);
    GPT2 model;
    gpt2_build(&model, &cfg, BENCH_B, BENCH_T, DEV_CUDA, 1);
    OptimizerConfig oc = optimizer_config_adamw();
    Optimizer opt;
    if (optimizer_init(&opt, &model, &oc, err)) die("%s", err);
    std::vector<int> text = bench_corpus_ids(BENCH_N + 1);  // real text: inputs and their next tokens
    std::vector<int> ids(text.begin(), text.end() - 1), targets(text.begin() + 1, text.end());
    gpu_timed(state, [&]() {
        gpt2_zero_grad(&model);
        gpt2_forward(&model, ids.data(), targets.data(), BENCH_B, BENCH_T);
        gpt2_backward(&model, BENCH_B, BENCH_T, 1.0f / BENCH_N);
        optimizer_step(&opt, &model, 1e-6f, false);  // a tiny lr keeps the weights where they are
    });
    double flops = gpt2_flops_per_token(&cfg, BENCH_T) * BENCH_N, peak = device_peak_flops(DEV_CUDA);
    state.counters["tok/s"] = benchmark::Counter(BENCH_N, benchmark::Counter::kIsIterationInvariantRate);
    state.counters["TFLOP/s"] = benchmark::Counter(flops / 1e12, benchmark::Counter::kIsIterationInvariantRate);
    if (peak > 0) state.counters["MFU%"] = benchmark::Counter(100.0 * flops / peak, benchmark::Counter::kIsIterationInvariantRate);
    optimizer_free(&opt);
    gpt2_free(&model);
}
BENCHMARK(BM_train_step)->UseManualTime()->Unit(benchmark::kMillisecond)->MinTime(3.0);

// ----------------------------------------------------------------------------------------------------
// the summary: ratios from this run's own measurements

int main(int argc, char** argv) {
    char err[ERR_LEN];
    int gpus = cuda_device_count(err);
    if (gpus < 0) die("bench_gpu: %s", err);
    if (gpus == 0) {
        printf("bench_gpu: no CUDA GPU found: nothing to measure\n");
        return 0;
    }
    benchmark::Initialize(&argc, argv);
    RecordingReporter reporter;
    benchmark::RunSpecifiedBenchmarks(&reporter);
    cudaDeviceProp prop;
    cudaCheck(cudaGetDeviceProperties(&prop, 0));
    printf("\nsummary (%s, this run; FP32 unless marked):\n", prop.name);
    const char* shapes[] = {"16384/768/2304", "16384/768/3072", "16384/3072/768", "16384/768/50304"};
    for (const char* s : shapes) {
        double fp32 = ms_of(std::string("BM_gemm/cublas_fp32/") + s + "/");
        double tf32 = ms_of(std::string("BM_gemm/cublas_tf32/") + s + "/");
        double tiled = ms_of(std::string("BM_gemm/tiled/") + s + "/");
        if (fp32 > 0 && tiled > 0)
            printf("  gemm N/C/OC %-16s teaching kernel %.2f ms = %.2fx cuBLAS FP32's time (%.2f ms); TF32 %.2f ms\n",
                   s, tiled, tiled / fp32, fp32, tf32);
    }
    double att_simple = ms_of("BM_attention_fwd_bwd/simple/"), att_flash = ms_of("BM_attention_fwd_bwd/flash/");
    if (att_simple > 0 && att_flash > 0)
        printf("  attention fwd+bwd (B %d, T %d, C %d, NH %d): flash %.2f ms = %.2fx the simple path's time (%.2f ms)\n",
               BENCH_B, BENCH_T, BENCH_C, BENCH_NH, att_flash, att_flash / att_simple, att_simple);
    double step = ms_of("BM_train_step");
    if (step > 0) {
        GPT2Config cfg;
        char err[ERR_LEN];
        gpt2_config_preset(&cfg, "d12", err);
        double flops = gpt2_flops_per_token(&cfg, BENCH_T) * BENCH_N, peak = device_peak_flops(DEV_CUDA);
        printf("  d12 training step (B %d, T %d, AdamW): %.1f ms = %.0f tokens/s, %.1f TFLOP/s", BENCH_B, BENCH_T, step,
               BENCH_N / (step / 1e3), flops / (step / 1e3) / 1e12);
        if (peak > 0) printf(", MFU %.1f%% of the bf16 peak", 100.0 * flops / (step / 1e3) / peak);
        printf("\n");
        const char* ops[] = {"BM_embedding", "BM_layernorm", "BM_attention", "BM_gelu", "BM_residual", "BM_crossentropy"};
        for (const char* op : ops) {
            double f = ms_of(std::string(op) + "/forward"), b = ms_of(std::string(op) + "/backward");
            if (f > 0 && b > 0)
                printf("  %-16s forward %7.3f ms, backward %7.3f ms (one call; %.1f%% of the step)\n", op + 3, f, b,
                       100.0 * (f + b) / step);
        }
    }
    benchmark::Shutdown();
    return 0;
}
