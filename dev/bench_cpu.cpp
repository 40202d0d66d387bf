// dev/bench_cpu.cpp: `make bench` on the CPU (Google Benchmark). Measures, in one run on this machine:
//  - the blocked GEMM against the naive three loops (the reference), at the model's shapes: GFLOP/s and ratio;
//  - each part of a training step of the default CPU model (d4, B 8, T 256): forward, backward, AdamW, Muon;
//  - each op's forward and backward at those shapes, from the op-case table (tests/opcases.h);
//  - a whole training step in tokens/s, with each optimizer, and the optimizer's share of the step;
//  - Newton–Schulz (Keller's quintic, 5 steps, fp64) on one matrix, plain and on the Gram matrix (--ns-gram), at
//    d4's and d6's shapes and at long/short side ratio 4.
// The ratios at the end come from the same run's measurements (a reporter collects them).
#include <benchmark/benchmark.h>
#include "bench_report.h"
#include <map>
#include <string>
#include <vector>
#include "../optim.h"
#include "../tests/opcases.h"

static std::vector<float> bench_random(size_t n, uint64_t seed) {
    Rng rng = rng_make(seed);
    std::vector<float> v(n);
    for (float& x : v) x = (float)rng_normal(&rng);
    return v;
}

// out (N, OC) = inp (N, C) · Wᵀ at the sizes of the d4 model (N = B·T = 2048 positions, C = 128)
static void matmul_args(benchmark::internal::Benchmark* b) {
    b->Args({2048, 128, 384})->Args({2048, 128, 512})->Args({2048, 512, 128})->Args({256, 128, 50304});
}

static void BM_matmul_naive(benchmark::State& state) {
    int N = (int)state.range(0), C = (int)state.range(1), OC = (int)state.range(2);
    std::vector<float> inp = bench_random((size_t)N * C, 1), w = bench_random((size_t)OC * C, 2), out((size_t)N * OC);
    for (auto _ : state) matmul_forward_cpu_naive(out.data(), inp.data(), w.data(), NULL, N, C, OC);
    state.counters["GFLOP/s"] = benchmark::Counter(2.0 * N * C * OC, benchmark::Counter::kIsIterationInvariantRate,
                                                   benchmark::Counter::kIs1000);
}

static void BM_matmul_blocked(benchmark::State& state) {
    int N = (int)state.range(0), C = (int)state.range(1), OC = (int)state.range(2);
    std::vector<float> inp = bench_random((size_t)N * C, 1), w = bench_random((size_t)OC * C, 2), out((size_t)N * OC);
    for (auto _ : state) matmul_forward_cpu(out.data(), inp.data(), w.data(), NULL, N, C, OC);
    state.counters["GFLOP/s"] = benchmark::Counter(2.0 * N * C * OC, benchmark::Counter::kIsIterationInvariantRate,
                                                   benchmark::Counter::kIs1000);
}
BENCHMARK(BM_matmul_naive)->Apply(matmul_args)->Unit(benchmark::kMillisecond)->MinTime(0.5)->UseRealTime();
BENCHMARK(BM_matmul_blocked)->Apply(matmul_args)->Unit(benchmark::kMillisecond)->MinTime(0.5)->UseRealTime();

// ----------------------------------------------------------------------------------------------------
// a training step of the default CPU model, in parts and whole

struct StepBench {
    GPT2 model;
    Optimizer opt;
    std::vector<int> ids, targets;
    int B, T;
};

static void step_bench_init(StepBench* s, const char* optimizer, Precision precision = PRECISION_FP32) {
    GPT2Config cfg;
    char err[ERR_LEN];
    if (gpt2_config_preset(&cfg, "d4", err)) die("%s", err);
    s->B = 8;
    s->T = 256;
    GemmLevel products = precision == PRECISION_BF16 ? GEMM_CUBLAS_BF16 : GEMM_CUBLAS;  // as --matmul auto
    gpt2_build(&s->model, &cfg, s->B, s->T, DEV_CPU, 1, Kernels{products, ATTENTION_SIMPLE, precision});
    OptimizerConfig oc;
    if (optimizer_config_by_name(optimizer, &oc, err)) die("%s", err);
    if (optimizer_init(&s->opt, &s->model, &oc, err)) die("%s", err);
    Rng rng = rng_make(2);
    for (int i = 0; i < s->B * s->T; i++) {
        s->ids.push_back((int)(rng_u32(&rng) % cfg.vocab_size));
        s->targets.push_back((int)(rng_u32(&rng) % cfg.vocab_size));
    }
}

static void step_bench_free(StepBench* s) {
    optimizer_free(&s->opt);
    gpt2_free(&s->model);
}

// loss_scale > 0: the loss's backward fused into the forward, as ./train runs a step (0: the forward alone)
static float step_forward(StepBench* s, float loss_scale = 0.0f) {
    gpt2_zero_grad(&s->model);
    return gpt2_forward(&s->model, s->ids.data(), s->targets.data(), s->B, s->T, loss_scale);
}

static void step_backward(StepBench* s) { gpt2_backward(&s->model, s->B, s->T, 1.0f / (s->B * s->T)); }

static void BM_step_forward(benchmark::State& state) {
    StepBench s;
    step_bench_init(&s, "adamw");
    for (auto _ : state) benchmark::DoNotOptimize(step_forward(&s));
    state.counters["tok/s"] = benchmark::Counter(s.B * s.T, benchmark::Counter::kIsIterationInvariantRate);
    step_bench_free(&s);
}

static void BM_step_backward(benchmark::State& state) {
    StepBench s;
    step_bench_init(&s, "adamw");
    step_forward(&s);
    for (auto _ : state) step_backward(&s);  // the tape stays recorded: the same backward each time
    step_bench_free(&s);
}

// the optimizer step alone (gradients from one real backward), for each optimizer
static void BM_optimizer(benchmark::State& state, const char* name) {
    StepBench s;
    step_bench_init(&s, name);
    step_forward(&s);
    step_backward(&s);
    for (auto _ : state) optimizer_step(&s.opt, &s.model, 1e-9f, false);  // a tiny lr keeps the weights where they are
    step_bench_free(&s);
}

// forward + backward + optimizer: tokens/s of training
static void BM_train_step(benchmark::State& state, const char* name, Precision precision) {
    StepBench s;
    step_bench_init(&s, name, precision);
    for (auto _ : state) {
        step_forward(&s, 1.0f / (s.B * s.T));
        step_backward(&s);
        optimizer_step(&s.opt, &s.model, 1e-9f, false);
    }
    state.counters["tok/s"] = benchmark::Counter(s.B * s.T, benchmark::Counter::kIsIterationInvariantRate);
    state.counters["GFLOP/s"] = benchmark::Counter(gpt2_flops_per_token(&s.model.config, s.T) * s.B * s.T,
                                                   benchmark::Counter::kIsIterationInvariantRate,
                                                   benchmark::Counter::kIs1000);
    step_bench_free(&s);
}

BENCHMARK(BM_step_forward)->Unit(benchmark::kMillisecond)->MinTime(2.0)->UseRealTime();
BENCHMARK(BM_step_backward)->Unit(benchmark::kMillisecond)->MinTime(2.0)->UseRealTime();
BENCHMARK_CAPTURE(BM_optimizer, adamw, "adamw")->Unit(benchmark::kMillisecond)->MinTime(1.0)->UseRealTime();
BENCHMARK_CAPTURE(BM_optimizer, muon, "muon")->Unit(benchmark::kMillisecond)->MinTime(1.0)->UseRealTime();
BENCHMARK_CAPTURE(BM_train_step, adamw, "adamw", PRECISION_FP32)->Unit(benchmark::kMillisecond)->MinTime(4.0)->UseRealTime();
// --precision bf16 on the CPU: the same step with the bf16 rounding points (what they cost here)
BENCHMARK_CAPTURE(BM_train_step, adamw_bf16, "adamw", PRECISION_BF16)->Unit(benchmark::kMillisecond)->MinTime(4.0)->UseRealTime();

// ----------------------------------------------------------------------------------------------------
// Newton–Schulz on one matrix (rows, cols), plain (newton_schulz_batch) or on the Gram matrix
// (newton_schulz_gram_batch): Keller's quintic, 5 steps, fp64, as a CPU run's Muon step takes it

static void BM_ns(benchmark::State& state, bool gram) {
    int rows = (int)state.range(0), cols = (int)state.range(1), s = rows < cols ? rows : cols;
    size_t n = (size_t)rows * cols;
    std::vector<float> x0 = bench_random(n, 4);
    std::vector<double> X0(x0.begin(), x0.end()), X(n), work(n + 4 * (size_t)s * s);
    for (auto _ : state) {
        X = X0;
        if (gram) newton_schulz_gram_batch(X.data(), rows, cols, 1, NS_ABC, 0, 5, 1.0, work.data());
        else newton_schulz_batch(X.data(), rows, cols, 1, NS_ABC, 0, 5, 1.0, work.data());
    }
}

// d4 (C 128): qkvw, fcw, fcprojw, attprojw; d6 (C 384): qkvw, fcw; long/short side 4 at 256 and 384
static const int NS_SHAPES[][2] = {{384, 128}, {512, 128}, {128, 512}, {128, 128}, {1152, 384}, {1536, 384},
                                   {256, 1024}, {384, 1536}};
static void ns_args(benchmark::internal::Benchmark* b) {
    for (auto& sh : NS_SHAPES) b->Args({sh[0], sh[1]});
}
BENCHMARK_CAPTURE(BM_ns, plain, false)->Apply(ns_args)->Unit(benchmark::kMillisecond)->MinTime(0.5)->UseRealTime();
BENCHMARK_CAPTURE(BM_ns, gram, true)->Apply(ns_args)->Unit(benchmark::kMillisecond)->MinTime(0.5)->UseRealTime();

// ----------------------------------------------------------------------------------------------------
// each op of the table at d4's shapes, forward or backward alone (backwards add into their gradients every
// iteration: the values drift, the work does not)

static const int OP_B = 8, OP_T = 256, OP_C = 128, OP_NH = 4, OP_VP = 50304;

static void BM_op(benchmark::State& state, const OpCase* c, bool backward) {
    Kernels k = {GEMM_CUBLAS, ATTENTION_SIMPLE};
    std::vector<std::vector<float>> h = op_case_inputs(*c, 1, false);
    OpCaseBuffers d = op_case_alloc(*c, DEV_CPU);
    for (size_t i = 0; i < h.size(); i++) memcpy(d.b[i], h[i].data(), sizeof(float) * h[i].size());
    c->forward(DEV_CPU, k, d.b.data(), d.in.data());
    for (auto _ : state) (backward ? c->backward : c->forward)(DEV_CPU, k, d.b.data(), d.in.data());
    op_case_free(&d);
}

static std::vector<OpCase> bench_op_cases = op_cases_bench(OP_B, OP_T, OP_C, OP_NH, OP_VP);

static void register_op_benchmarks() {
    for (const OpCase& c : bench_op_cases)
        for (int backward = 0; backward < 2; backward++)
            benchmark::RegisterBenchmark(("op/" + c.name + (backward ? "/backward" : "/forward")).c_str(), BM_op, &c,
                                         (bool)backward)
                ->Unit(benchmark::kMillisecond)->MinTime(0.3)->UseRealTime();
}

// ----------------------------------------------------------------------------------------------------
// the machine's peak for the GEMM's micro-kernel, computed: cores × clock × 2 FMA units × 8 lanes × 2 flops

// The clock, measured: a chain of dependent integer adds retires one add per cycle on any x86 or Arm core,
// so adds per second is cycles per second. Every core runs a chain at once (the all-core clock, lower than a
// lone core's boost); the slowest sets the figure.
static double measure_clock_hz() {
    double slowest = 1e30;
#pragma omp parallel reduction(min : slowest)
    {
        const long n = 50000000;
        uint64_t x = 0;
        double t0 = now_seconds();
        for (long i = 0; i < n; i++) {
            x += 1; __asm__ volatile("" : "+r"(x)); x += 1; __asm__ volatile("" : "+r"(x));
            x += 1; __asm__ volatile("" : "+r"(x)); x += 1; __asm__ volatile("" : "+r"(x));
            x += 1; __asm__ volatile("" : "+r"(x)); x += 1; __asm__ volatile("" : "+r"(x));
            x += 1; __asm__ volatile("" : "+r"(x)); x += 1; __asm__ volatile("" : "+r"(x));
        }
        double rate = 8.0 * n / (now_seconds() - t0);
        if (x != 8ull * n) rate = 0.0;
        slowest = rate < slowest ? rate : slowest;
    }
    return slowest;
}

// the LM head's forward, out (B·T, Vp) = x (B·T, C) · wteᵀ, against that peak
static void print_gemm_peak(double gemm_ms) {
    int M = OP_B * OP_T, N = OP_VP, K = OP_C;
    double flops = 2.0 * M * N * K;
    int cores = omp_get_max_threads();
    double hz = measure_clock_hz();
    // 2 FMA units per core, 256 bits (8 floats) wide: AVX2 on Zen and Intel's big cores, and also AVX-512 on
    // Zen 4, which runs a 512-bit FMA as two halves. Xeons with two full 512-bit units peak at twice this,
    // which the kernel's 16-lane build (gemm.h, GEMM_LANES) can use.
    double peak = cores * hz * 2 * 8 * 2;
    printf("  GEMM peak (stated): %d threads x %.2f GHz (measured, all cores busy) x 2 FMA units x 8 lanes (256 bits) x 2 flops"
           " = %.0f GFLOP/s\n", cores, hz / 1e9, peak / 1e9);
    if (gemm_ms > 0)
        printf("  LM head forward GEMM (%d x %d x %d): %.0f GFLOP/s = %.0f%% of that peak\n", M, K, N,
               flops / (gemm_ms / 1e3) / 1e9, 100.0 * flops / (gemm_ms / 1e3) / peak);
}

// ----------------------------------------------------------------------------------------------------
// the summary: ratios from this run's own measurements

int main(int argc, char** argv) {
    benchmark::Initialize(&argc, argv);
    register_op_benchmarks();
    RecordingReporter reporter;
    benchmark::RunSpecifiedBenchmarks(&reporter);
    printf("\nsummary (this machine, this run):\n");
    const char* shapes[] = {"2048/128/384", "2048/128/512", "2048/512/128", "256/128/50304"};
    for (const char* s : shapes) {
        double naive = ms_of(std::string("BM_matmul_naive/") + s + "/");
        double blocked = ms_of(std::string("BM_matmul_blocked/") + s + "/");
        if (naive > 0 && blocked > 0)
            printf("  matmul N/C/OC %-14s blocked is %.1fx faster than naive (%.2f ms vs %.2f ms)\n", s,
                   naive / blocked, blocked, naive);
    }
    print_gemm_peak(ms_of("op/" + matmul_case(OP_B * OP_T, OP_C, OP_VP, false).name + "/forward"));
    for (auto& sh : NS_SHAPES) {  // multiply-adds in s³: plain 5(2r + 1), Gram 2r + 17, r = long/short (orthogonalize.h)
        std::string shape = std::to_string(sh[0]) + "/" + std::to_string(sh[1]) + "/";
        double plain = ms_of("BM_ns/plain/" + shape), gram = ms_of("BM_ns/gram/" + shape);
        double r = sh[0] > sh[1] ? (double)sh[0] / sh[1] : (double)sh[1] / sh[0];
        if (plain > 0 && gram > 0)
            printf("  Newton-Schulz (quintic, 5 steps, fp64) %4d x %-4d (long/short %.0f): plain %7.2f ms, on the Gram "
                   "matrix %7.2f ms: speed-up %.2fx (multiply-adds: %.2fx fewer)\n", sh[0], sh[1], r, plain, gram,
                   plain / gram, 5 * (2 * r + 1) / (2 * r + 17));
    }
    double fwd = ms_of("BM_step_forward/"), bwd = ms_of("BM_step_backward/");
    double step_adamw = ms_of("BM_train_step/adamw/");
    double opt_adamw = ms_of("BM_optimizer/adamw/");
    if (step_adamw > 0) {
        printf("  d4 training step (B 8, T 256) with AdamW: %.0f ms = %.0f tokens/s; forward %.0f ms, backward %.0f ms\n",
               step_adamw, 8 * 256 / (step_adamw / 1e3), fwd, bwd);
        printf("  AdamW step: %.1f ms, %.1f%% of the training step\n", opt_adamw, 100.0 * opt_adamw / step_adamw);
        double step_bf16 = ms_of("BM_train_step/adamw_bf16/");
        if (step_bf16 > 0)
            printf("  the same step at --precision bf16 (the rounding points, bf16 products): %.0f ms, %.2fx fp32's time\n",
                   step_bf16, step_bf16 / step_adamw);
        double opt_muon = ms_of("BM_optimizer/muon/");  // Newton-Schulz in fp64 on the 16 hidden matrices + AdamW
        if (opt_muon > 0)
            printf("  Muon step (Newton-Schulz, fp64): %.1f ms, %.1f%% of a training step with it\n", opt_muon,
                   100.0 * opt_muon / (step_adamw - opt_adamw + opt_muon));
        int N = OP_B * OP_T;
        print_fusion_summary(residual_layernorm_case(N, OP_C).name, residual_case((size_t)N * OP_C).name,
                             layernorm_case(N, OP_C).name, N, OP_C, 0.0);
        int V = 50257 < OP_VP ? 50257 : OP_VP;
        print_classifier_summary(crossentropy_fused_case(N, V, OP_VP, 0.0f).name, crossentropy_case(N, V, OP_VP, 0.0f).name);
        for (const OpCase& c : bench_op_cases) {  // the ops of one block and the head (the step runs L blocks)
            double f = ms_of("op/" + c.name + "/forward"), b = ms_of("op/" + c.name + "/backward");
            if (f > 0 && b > 0)
                printf("  %-40s forward %7.3f ms, backward %7.3f ms (one call; %.1f%% of the step)\n", c.name.c_str(), f,
                       b, 100.0 * (f + b) / step_adamw);
        }
    }
    benchmark::Shutdown();
    return 0;
}
