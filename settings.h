// settings.h: a run's settings and the command line: RunConfig, the one table that gives each flag its default
// and meaning (the parser fills a RunConfig from it; --help prints it; tests build their RunConfig through it,
// so a test run has exactly the defaults a user gets), the sizes "auto" picks per device, the device itself,
// and the optimizer settings a run's flags make.
// Flow: argv -> run_config_from_args -> RunConfig -> run_training (run.h) / compare_main (report/compare.h).
#pragma once
#include <errno.h>
#include <string>
#include "optim.h"

// The settings of a run: one flat struct, each field described once, by its row in run_flags's table below
// (flag, default, meaning). A size of 0 (or "auto") means: pick for the device (run_config_resolve). Checkpoints
// store the struct as it is: its fields keep their order.
struct RunConfig {
    char data[512], val_data[512], cache_dir[256];  // data
    char model[16];                                 // the model and the batch
    int layers, heads, channels;
    int batch, seq_len, grad_accum;
    int steps;                                      // budget and schedule
    char schedule[16];
    int warmup;
    float final_lr_frac, cooldown_frac;
    char optimizer[32];                             // the optimizer (below 0: the optimizer's own default)
    float lr, adam_lr, weight_decay, adam_weight_decay, beta1, beta2, eps, grad_clip;
    int eval_every, eval_batches;                   // evaluation, samples, logs, checkpoints
    int sample_every, sample_tokens;
    int health_every;
    float target_loss;
    int checkpoint_every;
    char out_dir[256], run_name[64], resume[512], init_from[512];
    int stop_at;
    char device[8], attention[8];                   // the machine
    int threads;
    long long seed;
    char optimizers[256];                           // the comparison (report/compare.h)
    int sweep_lr;
    float momentum;                                 // the Muon family's knobs, named as torch.optim.Muon's
    int nesterov, ns_steps;
    char adjust_lr[24];
    char ns_dtype[8];
    char matmul[8];                                 // the machine: the products' precision
    float ns_gram;                                  // the Muon family: Newton-Schulz on the Gram matrix
    char precision[8];                              // the machine: the numbers the model stores
    int cuda_graph;                                 // the machine: the micro-step as a CUDA graph
};

enum FlagType { FLAG_INT, FLAG_INT64, FLAG_FLOAT, FLAG_STRING };

// One setting: its flag, where its value lands, its default as typed, what it accepts, what it means. The
// accepted values are checked in one place, flag_check, for a value typed on the command line and for one read
// back from a checkpoint alike.
struct Flag {
    const char* name;     // "--batch"
    FlagType type;
    void* value;          // where it lands
    size_t size;          // string buffer size
    const char* def;      // default, as it would be typed
    double lo, hi;        // numbers: the accepted range, lo <= v <= hi (v < hi when hi_open); lo > hi: any
    bool hi_open;
    bool optional;        // numbers: also "default" (stored as -1): the optimizer's own value
    const char* choices;  // strings: "a|b|c", the accepted values besides the default (NULL: any)
    const char* help;
};

#define FLAG_STR(name, field, def, choices, help) {name, FLAG_STRING, rc->field, sizeof(rc->field), def, 0, 0, false, false, choices, help}
#define FLAG_NUM(name, type, field, def, lo, hi, help) {name, type, &rc->field, 0, def, lo, hi, false, false, NULL, help}
// an optimizer's number: "default" (-1) keeps the optimizer's own (optim.h); FLAG_OPT_BELOW excludes hi
#define FLAG_OPT(name, type, field, lo, hi, help) {name, type, &rc->field, 0, "default", lo, hi, false, true, NULL, help}
#define FLAG_OPT_BELOW(name, field, lo, hi, help) {name, FLAG_FLOAT, &rc->field, 0, "default", lo, hi, true, true, NULL, help}
#define BIG 1e9  // "no practical limit" for counts of steps

// The flags of training and comparing, one row per RunConfig field: its flag, its default as typed, the values
// it takes, what it means. This is the only description of the settings; --help prints it. The limits are what
// the code can hold (sizes whose products stay far inside 64 bits and whose tensors index in int), not advice.
static int run_flags(RunConfig* rc, Flag* f) {
    Flag table[] = {
        FLAG_STR("--data", data, "data/tinyshakespeare.txt", NULL, "training data: a .txt (tokenized once, cached) or a shard glob"),
        FLAG_STR("--val-data", val_data, "", NULL, "validation shards (default: the .txt's split, or --data with train->val)"),
        FLAG_STR("--cache-dir", cache_dir, "out/data", NULL, "where .txt corpora are tokenized to"),
        FLAG_STR("--model", model, "auto", NULL, "tiny|d2|d4|d6|d12|d24|d36|d48 (auto: d4 on CPU, d12 on GPU)"),
        FLAG_NUM("--layers", FLAG_INT, layers, "0", 0, 1024, "override the model's layers (0: the preset's)"),
        FLAG_NUM("--heads", FLAG_INT, heads, "0", 0, 1024, "override the model's attention heads (must divide channels)"),
        FLAG_NUM("--channels", FLAG_INT, channels, "0", 0, 65536, "override the model's width C"),
        FLAG_NUM("--batch", FLAG_INT, batch, "0", 0, 65536, "B, sequences per micro-batch (0: 8 on CPU, 16 on GPU)"),
        FLAG_NUM("--seq-len", FLAG_INT, seq_len, "0", 0, 1 << 20, "T, tokens per sequence, at most the model's context (0: 256 on CPU, 1024 on GPU, or the context if shorter)"),
        FLAG_NUM("--grad-accum", FLAG_INT, grad_accum, "1", 1, 65536, "micro-batches per optimizer step"),
        FLAG_NUM("--steps", FLAG_INT, steps, "0", 0, BIG, "optimizer steps (0: 80 on CPU, 600 on GPU)"),
        FLAG_STR("--schedule", schedule, "cosine", "cosine|wsd|constant", "learning-rate schedule after warmup: cosine|wsd|constant"),
        FLAG_NUM("--warmup", FLAG_INT, warmup, "10", 0, BIG, "linear warmup steps"),
        FLAG_NUM("--final-lr-frac", FLAG_FLOAT, final_lr_frac, "0.1", 0, 1, "cosine: final lr as a fraction of the peak"),
        FLAG_NUM("--cooldown-frac", FLAG_FLOAT, cooldown_frac, "0.2", 0, 1, "wsd: fraction of the run decaying to zero"),
        FLAG_STR("--optimizer", optimizer, "adamw", NULL, "optimizer of a single run (see the list below)"),
        FLAG_OPT("--lr", FLAG_FLOAT, lr, 0, 1e6, "peak lr of the hidden matrices (AdamW run: of everything)"),
        FLAG_OPT("--adam-lr", FLAG_FLOAT, adam_lr, 0, 1e6, "peak lr of the AdamW group in Muon runs"),
        FLAG_OPT("--wd", FLAG_FLOAT, weight_decay, 0, 1e6, "decoupled weight decay of the hidden matrices"),
        FLAG_OPT("--adam-wd", FLAG_FLOAT, adam_weight_decay, 0, 1e6, "weight decay of the AdamW group's 2-D tensors"),
        FLAG_OPT_BELOW("--beta1", beta1, 0, 1, "AdamW beta1 (of the AdamW group in Muon runs)"),
        FLAG_OPT_BELOW("--beta2", beta2, 0, 1, "AdamW beta2"),
        FLAG_OPT("--eps", FLAG_FLOAT, eps, 0, 1, "AdamW epsilon"),
        FLAG_OPT("--clip", FLAG_FLOAT, grad_clip, 0, 1e9, "clip the global gradient norm (0: off)"),
        FLAG_NUM("--eval-every", FLAG_INT, eval_every, "0", 0, BIG, "steps between validation evaluations (0: ~10 per run)"),
        FLAG_NUM("--eval-batches", FLAG_INT, eval_batches, "4", 1, 1 << 20, "validation batches per evaluation (fixed)"),
        FLAG_NUM("--sample-every", FLAG_INT, sample_every, "0", 0, BIG, "steps between printed samples (0: never)"),
        FLAG_NUM("--sample-tokens", FLAG_INT, sample_tokens, "32", 1, 1 << 20, "tokens per printed sample"),
        FLAG_NUM("--health-every", FLAG_INT, health_every, "0", -1, BIG, "steps between optimizer-health logs (0: ~8 per run, -1: off)"),
        FLAG_NUM("--target-loss", FLAG_FLOAT, target_loss, "0", 0, 1e6, "stop at this validation loss (0: full budget)"),
        FLAG_NUM("--checkpoint-every", FLAG_INT, checkpoint_every, "0", 0, BIG, "steps between checkpoints (0: at the end)"),
        FLAG_STR("--out", out_dir, "out", NULL, "output folder: runs go to OUT/RUN-NAME/"),
        FLAG_STR("--run-name", run_name, "", NULL, "this run's folder name (default: the optimizer's name)"),
        FLAG_STR("--resume", resume, "", NULL, "continue from this checkpoint (its settings win, but the few listed below)"),
        FLAG_STR("--init-from", init_from, "", NULL, "start from a model file's weights (llm.c's gpt2_124M.bin, a checkpoint)"),
        FLAG_NUM("--stop-at", FLAG_INT, stop_at, "0", 0, BIG, "stop after this step as if interrupted, with a checkpoint"),
        FLAG_STR("--device", device, "auto", "cpu|cuda|auto", "cpu|cuda|auto"),
        FLAG_STR("--attention", attention, "flash", "flash|simple", "GPU attention: flash (fused kernels, no T x T buffers) or simple (cuBLAS products, T x T scores kept); the CPU has one attention"),
        FLAG_STR("--precision", precision, "auto", "auto|bf16|fp32", "the numbers the model stores: bf16 (a bf16 copy of the fp32 master weights, "
                                                                     "bf16 activations; fp32 statistics, sums, gradients and optimizer state) or fp32 "
                                                                     "(auto: bf16 on a GPU, fp32 on the CPU; the CPU rounds as the GPU does)"),
        FLAG_STR("--matmul", matmul, "auto", "auto|fp32|tf32|bf16", "the layers' matrix products: fp32, or on the GPU's tensor cores with inputs "
                                                                    "rounded to tf32 or bf16 and fp32 sums (the CPU rounds the same inputs; auto: "
                                                                    "bf16 at bf16 precision, else fp32)"),
        FLAG_NUM("--cuda-graph", FLAG_INT, cuda_graph, "0", 0, 1, "GPU: 1 = capture the forward and backward once as a CUDA graph and "
                                                                   "replay it each micro-step (the same results; step_graph.h)"),
        FLAG_NUM("--threads", FLAG_INT, threads, "0", 0, 4096, "CPU threads, at most the cores there are (0: all cores)"),
        FLAG_NUM("--seed", FLAG_INT64, seed, "1337", 1, 0, "initial weights and data order"),
        FLAG_STR("--optimizers", optimizers, "adamw,muon", NULL, "compare: the optimizers to compare"),
        FLAG_NUM("--sweep-lr", FLAG_INT, sweep_lr, "0", 0, 1, "compare: 1 = try lr x {0.5, 1, 2} each, keep the best"),
        FLAG_OPT_BELOW("--momentum", momentum, 0, 1, "Muon family: momentum beta (beta1 of the RMS base)"),
        FLAG_OPT("--nesterov", FLAG_INT, nesterov, 0, 1, "Muon family: 1 = Nesterov momentum, 0 = plain"),
        FLAG_OPT("--ns-steps", FLAG_INT, ns_steps, 1, 99, "Muon family: Newton-Schulz steps"),
        FLAG_STR("--adjust-lr", adjust_lr, "", "original|match_rms_adamw", "Muon family: lr scale by shape, original (lr sqrt(max(1, rows/cols))) or "
                                                                     "match_rms_adamw (0.2 lr sqrt(max(rows, cols)), with AdamW's lr and wd)"),
        FLAG_STR("--ns-dtype", ns_dtype, "fp32", "fp32|bf16", "Muon family: Newton-Schulz and Polar Express in fp32 (the device's full "
                                                             "precision: fp64 on the CPU) or bf16 (as torch.optim.Muon: each matrix rounded to bf16, "
                                                             "fp32 sums on the GPU's tensor cores)"),
        FLAG_NUM("--ns-gram", FLAG_FLOAT, ns_gram, "0", 0, 1e6, "Muon family: Newton-Schulz and Polar Express on the small Gram matrix "
                                                                 "(the same map, fewer flops once long/short side > 1.5) for the matrices "
                                                                 "whose long/short side is at least this (0: never); fp32 only"),
    };
    int n = (int)(sizeof(table) / sizeof(table[0]));
    for (int i = 0; i < n; i++) f[i] = table[i];
    return n;
}

// The settings --resume may change: where the run goes, how long it runs, and the machine it runs on. Every
// other setting is the checkpoint's, so the resumed run is the same run.
#define RESUMABLE "--steps --stop-at --checkpoint-every --out --run-name --device --threads --resume --cuda-graph"

static void flag_range_text(const Flag* f, char* out, size_t size) {
    const char* kind = f->type == FLAG_FLOAT ? "a number" : "an integer";
    if (f->lo > f->hi) snprintf(out, size, "%s", kind);
    else if (f->hi_open) snprintf(out, size, "%s in [%.15g, %.15g)", kind, f->lo, f->hi);
    else snprintf(out, size, "%s from %.15g to %.15g", kind, f->lo, f->hi);
    if (f->optional) snprintf(out + strlen(out), size - strlen(out), ", or default");
}

// Whether the value held in f->value is one the flag accepts. `where` prefixes the message ("" for the command
// line, "checkpoint F: " for a value read from a file). 0, or -1 with one line naming the flag, value and range.
static int flag_check(const Flag* f, const char* where, char* err) {
    if (f->type == FLAG_STRING) {
        const char* s = (const char*)f->value;
        if (!memchr(s, 0, f->size)) return fail(err, "%s%s: value longer than %zu characters", where, f->name, f->size - 1);
        if (!f->choices || strcmp(s, f->def) == 0) return 0;
        size_t n = strlen(s);
        for (const char* c = f->choices; *c;) {
            const char* bar = strchr(c, '|');
            size_t len = bar ? (size_t)(bar - c) : strlen(c);
            if (len == n && strncmp(c, s, n) == 0) return 0;
            c += len + (bar ? 1 : 0);
        }
        return fail(err, "%s%s: expected one of %s, got '%.64s'", where, f->name, f->choices, s);
    }
    double v = f->type == FLAG_INT ? *(int*)f->value : f->type == FLAG_INT64 ? (double)*(long long*)f->value
                                                                             : *(float*)f->value;
    if (f->optional && v == -1.0) return 0;
    if (f->lo > f->hi && isfinite(v)) return 0;
    if (v >= f->lo && (f->hi_open ? v < f->hi : v <= f->hi)) return 0;
    char range[96], value[32];
    flag_range_text(f, range, sizeof(range));
    if (f->type == FLAG_FLOAT) snprintf(value, sizeof(value), "%.9g", v);
    else snprintf(value, sizeof(value), "%lld", f->type == FLAG_INT ? (long long)*(int*)f->value : *(long long*)f->value);
    return fail(err, "%s%s %s: expected %s", where, f->name, value, range);
}

// stores text into a flag; -1 with a message naming the flag when it is not a valid value
static int flag_set(const Flag* f, const char* text, char* err) {
    char* end = NULL;
    errno = 0;
    if (f->optional && strcmp(text, "default") == 0) text = "-1";
    else if (f->type != FLAG_STRING && strcmp(text, "-1") == 0 && f->optional)
        return fail(err, "%s -1: expected a number >= 0 (or default, the optimizer's own)", f->name);
    char range[96];
    flag_range_text(f, range, sizeof(range));
    switch (f->type) {
        case FLAG_INT: {
            long v = strtol(text, &end, 10);
            if (!*text || *end || errno || v < -2147483647L || v > 2147483647L)
                return fail(err, "%s: expected %s, got '%s'", f->name, range, text);
            *(int*)f->value = (int)v;
            break;
        }
        case FLAG_INT64: {
            long long v = strtoll(text, &end, 10);
            if (!*text || *end || errno) return fail(err, "%s: expected %s, got '%s'", f->name, range, text);
            *(long long*)f->value = v;
            break;
        }
        case FLAG_FLOAT: {
            float v = strtof(text, &end);
            if (!*text || *end || errno || !isfinite(v)) return fail(err, "%s: expected %s, got '%s'", f->name, range, text);
            *(float*)f->value = v;
            break;
        }
        case FLAG_STRING:
            if (strlen(text) >= f->size) return fail(err, "%s: value longer than %zu characters", f->name, f->size - 1);
            snprintf((char*)f->value, f->size, "%s", text);
            break;
    }
    return flag_check(f, "", err);
}

// Sets every default, then applies argv[first..] ("--name value" or "--name=value"). given[i] (may be NULL):
// whether flag i was on the command line.
static int flags_parse(Flag* flags, int n, int argc, char** argv, int first, char* err, bool* given = NULL) {
    for (int i = 0; i < n; i++) {
        if (flag_set(&flags[i], flags[i].def, err)) return -1;
        if (given) given[i] = false;
    }
    for (int a = first; a < argc; a++) {
        const char* arg = argv[a];
        const char* eq = strchr(arg, '=');
        size_t len = eq ? (size_t)(eq - arg) : strlen(arg);
        int found = -1;
        for (int i = 0; i < n; i++)
            if (strlen(flags[i].name) == len && strncmp(flags[i].name, arg, len) == 0) found = i;
        if (found < 0) return fail(err, "unknown flag '%s' (see ./train --help)", arg);
        const char* value = eq ? eq + 1 : (a + 1 < argc ? argv[++a] : NULL);
        if (!value) return fail(err, "%s: missing its value", flags[found].name);
        if (flag_set(&flags[found], value, err)) return -1;
        if (given) given[found] = true;
    }
    return 0;
}

// one line per flag: name, default, meaning, and the values it takes
static void flags_print(const Flag* flags, int n) {
    for (int i = 0; i < n; i++) {
        const Flag* f = &flags[i];
        char left[64], range[64] = "";
        snprintf(left, sizeof(left), "  %s %s", f->name, f->def[0] ? f->def : "\"\"");
        if (f->type != FLAG_STRING && f->lo <= f->hi)
            snprintf(range, sizeof(range), " [%.15g, %.15g%s%s", f->lo, f->hi, f->hi_open ? ")" : "]", f->optional ? " or default" : "");
        printf("%-34s %s%s\n", left, f->help, range);
    }
}

// A RunConfig with every default, then the given flags (as on the command line, without the program and
// the subcommand). For tests and for the comparison's presets. given: as flags_parse's, indexed like run_flags.
static int run_config_from_args(RunConfig* rc, int argc, char** argv, char* err, bool* given = NULL) {
    memset(rc, 0, sizeof(*rc));
    Flag flags[64];
    int n = run_flags(rc, flags);
    return flags_parse(flags, n, argc, argv, 0, err, given);
}

// Every setting of rc against its flag's range (for settings read from a file; the command line's are checked as
// they are parsed). `where` names the file. 0, or -1 with a message naming the one setting.
static int run_config_check(const RunConfig* rc, const char* where, char* err) {
    RunConfig copy = *rc;
    Flag flags[64];
    int n = run_flags(&copy, flags);
    for (int i = 0; i < n; i++)
        if (flag_check(&flags[i], where, err)) return -1;
    return 0;
}

// a flag's value as it would be typed
static void flag_value_text(const Flag* f, char* out, size_t size) {
    switch (f->type) {
        case FLAG_INT: snprintf(out, size, "%d", *(int*)f->value); break;
        case FLAG_INT64: snprintf(out, size, "%lld", *(long long*)f->value); break;
        case FLAG_FLOAT: snprintf(out, size, "%g", *(float*)f->value); break;
        case FLAG_STRING: snprintf(out, size, "%s", (const char*)f->value); break;
    }
    if (f->optional && f->type != FLAG_STRING && strcmp(out, "-1") == 0) snprintf(out, size, "default");
}

// Whether a flag's value is the same in two tables over two RunConfigs (same rows).
static bool flag_same(const Flag* a, const Flag* b) {
    if (a->type == FLAG_STRING) return strcmp((const char*)a->value, (const char*)b->value) == 0;
    return memcmp(a->value, b->value, a->type == FLAG_INT64 ? 8 : 4) == 0;
}

// A resumed run: `ckpt` holds the checkpoint's settings, `given` the command line's. A setting the command line
// leaves at its default keeps the checkpoint's; one it sets must be RESUMABLE, or equal to the checkpoint's.
// Prints what came from where. 0, or -1 naming the first flag that cannot change.
static int run_config_resume(RunConfig* ckpt, const RunConfig* given_in, char* err) {
    RunConfig given = *given_in, defaults;
    if (run_config_from_args(&defaults, 0, NULL, err)) return -1;
    Flag fc[64], fg[64], fd[64];
    int n = run_flags(ckpt, fc);
    run_flags(&given, fg);
    run_flags(&defaults, fd);
    char kept[1024] = "", changed[512] = "", value[600], old[600];
    for (int i = 0; i < n; i++) {
        bool resumable = strstr(RESUMABLE " ", (std::string(fc[i].name) + " ").c_str()) != NULL;
        flag_value_text(&fc[i], old, sizeof(old));
        if (!flag_same(&fg[i], &fd[i]) && !flag_same(&fg[i], &fc[i])) {
            flag_value_text(&fg[i], value, sizeof(value));
            if (!resumable)
                return fail(err, "%s %.100s: --resume continues the checkpoint's run with its settings (%s %.100s); only %s may "
                            "change (or start a new run from its weights with --init-from)", fg[i].name, value,
                            fc[i].name, old, RESUMABLE);
            if (strcmp(fc[i].name, "--resume") != 0)
                snprintf(changed + strlen(changed), sizeof(changed) - strlen(changed), " %s %.200s (was %.200s)",
                         fc[i].name, value, old);
            memcpy(fc[i].value, fg[i].value, fc[i].type == FLAG_STRING ? fc[i].size : fc[i].type == FLAG_INT64 ? 8 : 4);
        } else if (!flag_same(&fc[i], &fd[i]) && strcmp(fc[i].name, "--resume") != 0) {
            snprintf(kept + strlen(kept), sizeof(kept) - strlen(kept), " %s %.200s", fc[i].name, old);
        }
    }
    if (given.stop_at != ckpt->stop_at) ckpt->stop_at = given.stop_at;  // an interruption is this invocation's
    printf("resume: settings from the checkpoint:%s\n", kept[0] ? kept : " the defaults");
    if (changed[0]) printf("resume: changed on the command line:%s\n", changed);
    return 0;
}

// Fills the "auto" sizes for the device: a CPU run must finish in minutes on two cores, a GPU run trains
// GPT-2 124M.
static void run_config_resolve(RunConfig* rc, Device dev) {
    bool gpu = dev == DEV_CUDA;
    if (strcmp(rc->model, "auto") == 0) snprintf(rc->model, sizeof(rc->model), "%s", gpu ? "d12" : "d4");
    if (rc->batch == 0) rc->batch = gpu ? 16 : 8;
    if (rc->seq_len == 0) {  // and at most a preset's context (tiny's is 64; a file's is checked when it is read)
        rc->seq_len = gpu ? 1024 : 256;
        GPT2Config preset = {};
        char unknown[ERR_LEN];  // an unknown --model is reported where the model is made
        if (gpt2_config_preset(&preset, rc->model, unknown) == 0 && preset.max_seq_len < rc->seq_len)
            rc->seq_len = preset.max_seq_len;
    }
    if (rc->steps == 0) rc->steps = gpu ? 600 : 80;
    if (rc->eval_every == 0) rc->eval_every = rc->steps / 10 > 0 ? rc->steps / 10 : 1;
    if (rc->health_every == 0) rc->health_every = rc->steps / 8 > 0 ? rc->steps / 8 : 1;
    if (rc->run_name[0] == 0) snprintf(rc->run_name, sizeof(rc->run_name), "%s", rc->optimizer);
    if (strcmp(rc->precision, "auto") == 0) snprintf(rc->precision, sizeof(rc->precision), "%s", gpu ? "bf16" : "fp32");
    if (strcmp(rc->matmul, "auto") == 0)  // a bf16 model's products take bf16 values: the bf16 tensor cores' work
        snprintf(rc->matmul, sizeof(rc->matmul), "%s", strcmp(rc->precision, "bf16") == 0 ? "bf16" : "fp32");
    if (!gpu) rc->cuda_graph = 0;  // a GPU's only: the CPU runs its micro-steps as they come
}

// the kernels the flags choose (tensor.h's Kernels): --matmul's product level, --attention's path, --precision's
// numbers (after run_config_resolve: "auto" is resolved by then)
static Kernels run_kernels(const RunConfig* rc) {
    if (strcmp(rc->precision, "auto") == 0 || strcmp(rc->matmul, "auto") == 0)
        die("run_kernels: --precision and --matmul must be resolved for the device first (run_config_resolve)");
    Kernels k;
    k.gemm = strcmp(rc->matmul, "bf16") == 0 ? GEMM_CUBLAS_BF16 : strcmp(rc->matmul, "tf32") == 0 ? GEMM_CUBLAS_TF32
                                                                                                : GEMM_CUBLAS;
    k.attention = strcmp(rc->attention, "simple") == 0 ? ATTENTION_SIMPLE : ATTENTION_FLASH;
    k.precision = strcmp(rc->precision, "bf16") == 0 ? PRECISION_BF16 : PRECISION_FP32;
    return k;
}

static Device device_resolve(const char* name, char* err, int* ok) {
    *ok = 1;
    char cuda_err[ERR_LEN] = "";
    int gpus = cuda_device_count(cuda_err);  // -1: CUDA is installed but refuses, with the reason in cuda_err
    if (strcmp(name, "cpu") == 0) return DEV_CPU;
    if (strcmp(name, "cuda") == 0) {
        if (gpus <= 0) {
            *ok = 0;
            if (gpus < 0) fail(err, "--device cuda: %s", cuda_err);
            else fail(err, "--device cuda: no CUDA GPU found%s",
#ifdef __CUDACC__
                      ""
#else
                      " (this binary was built without nvcc)"
#endif
                 );
        }
        return DEV_CUDA;
    }
    if (strcmp(name, "auto") != 0) {
        *ok = 0;
        fail(err, "--device: expected cpu, cuda or auto, got '%s'", name);
        return DEV_CPU;
    }
    if (gpus < 0) printf("warning: %s: running on the CPU\n", cuda_err);
    else if (gpus == 0) printf("no CUDA GPU found: running on the CPU\n");
    return gpus > 0 ? DEV_CUDA : DEV_CPU;
}

// The optimizer called `spec`, "name[+suffix...][:key=value...]" (e.g. "muon+lr2:lr=0.03"), with the run's
// flags on top (a flag below zero keeps the optimizer's default) and then the spec's own key=value settings,
// so a comparison can give each optimizer its own learning rate.
static int optimizer_config_from_run(const RunConfig* rc, const char* spec, OptimizerConfig* c, char* err) {
    char name[128];
    snprintf(name, sizeof(name), "%s", spec);
    char* settings = strchr(name, ':');
    if (settings) *settings++ = 0;
    if (optimizer_config_by_name(name, c, err)) return -1;
    if (c->matrix == MATRIX_MUON) {  // the Muon family's own flags (an AdamW run has none of these knobs)
        if (rc->adjust_lr[0] && optimizer_set_adjust_lr(c, rc->adjust_lr, err)) return -1;
        if (rc->momentum >= 0) c->muon.momentum = rc->momentum;  // the ranges are the flag table's (flag_check)
        if (rc->nesterov >= 0) c->muon.nesterov = rc->nesterov;
        if (rc->ns_steps >= 0) c->muon.ns_steps = rc->ns_steps;
        c->muon.ns_bf16 = strcmp(rc->ns_dtype, "bf16") == 0;
        c->muon.ns_gram = rc->ns_gram;
        if (muon_check(&c->muon, err)) return -1;  // e.g. --ns-gram with --ns-dtype bf16, refused here at once
    }
    const float flags[] = {rc->lr, rc->adam_lr, rc->weight_decay, rc->adam_weight_decay, rc->beta1, rc->beta2,
                           rc->eps, rc->grad_clip};
    float* fields[] = {&c->lr, &c->adam_lr, &c->weight_decay, &c->adam_weight_decay, &c->beta1, &c->beta2,
                       &c->eps, &c->grad_clip};
    const char* keys[] = {"lr", "adam_lr", "wd", "adam_wd", "beta1", "beta2", "eps", "clip"};
    for (int i = 0; i < 8; i++)
        if (flags[i] >= 0) *fields[i] = flags[i];
    for (char* kv = settings ? strtok(settings, ":") : NULL; kv; kv = strtok(NULL, ":")) {
        char* eq = strchr(kv, '=');
        int found = -1;
        for (int i = 0; eq && i < 8; i++)
            if ((size_t)(eq - kv) == strlen(keys[i]) && strncmp(kv, keys[i], eq - kv) == 0) found = i;
        char* end = NULL;
        float value = eq ? strtof(eq + 1, &end) : 0.0f;
        if (found < 0 || !end || *end || end == eq + 1 || !(value >= 0.0f))
            return fail(err, "optimizer '%s': bad setting '%s' (expected key=value with key one of lr, adam_lr, wd, "
                        "adam_wd, beta1, beta2, eps, clip, and a number >= 0)", spec, kv);
        *fields[found] = value;
    }
    if (c->matrix == MATRIX_ADAMW) {  // one group: the matrices' settings are everyone's
        c->adam_lr = c->lr;
        c->adam_weight_decay = c->weight_decay;
    }
    snprintf(c->name, sizeof(c->name), "%.*s", (int)sizeof(c->name) - 1, spec);
    return 0;
}

