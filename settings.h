// settings.h: a run's settings and the command line: RunConfig, the one table that gives each flag its default
// and meaning (the parser fills a RunConfig from it; --help prints it; tests build their RunConfig through it,
// so a test run has exactly the defaults a user gets), the sizes "auto" picks per device, the device itself,
// and the optimizer settings a run's flags make.
// Flow: argv -> run_config_from_args -> RunConfig -> run_training (run.h) / compare_main (report/compare.h).
#pragma once
#include <errno.h>
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
};

enum FlagType { FLAG_INT, FLAG_INT64, FLAG_FLOAT, FLAG_STRING };

struct Flag {
    const char* name;   // "--batch"
    FlagType type;
    void* value;        // where it lands
    size_t size;        // string buffer size
    const char* def;    // default, as it would be typed
    const char* help;
};

#define FLAG_STR(name, field, def, help) {name, FLAG_STRING, rc->field, sizeof(rc->field), def, help}
#define FLAG_NUM(name, type, field, def, help) {name, type, &rc->field, 0, def, help}

// The flags of training and comparing, one row per RunConfig field: its flag, its default as typed, what it
// means. This is the only description of the settings; --help prints it. Optimizer numbers left at -1 take the
// optimizer's own default (optim.h; ./train --help lists them).
static int run_flags(RunConfig* rc, Flag* f) {
    Flag table[] = {
        FLAG_STR("--data", data, "data/tinyshakespeare.txt", "training data: a .txt (tokenized once, cached) or a shard glob"),
        FLAG_STR("--val-data", val_data, "", "validation shards (default: the .txt's split, or --data with train->val)"),
        FLAG_STR("--cache-dir", cache_dir, "out/data", "where .txt corpora are tokenized to"),
        FLAG_STR("--model", model, "auto", "tiny|d2|d4|d6|d12|d24|d36|d48 (auto: d4 on CPU, d12 on GPU)"),
        FLAG_NUM("--layers", FLAG_INT, layers, "0", "override the model's layers (0: the preset's)"),
        FLAG_NUM("--heads", FLAG_INT, heads, "0", "override the model's attention heads (must divide channels)"),
        FLAG_NUM("--channels", FLAG_INT, channels, "0", "override the model's width C"),
        FLAG_NUM("--batch", FLAG_INT, batch, "0", "B, sequences per micro-batch (0: 8 on CPU, 16 on GPU)"),
        FLAG_NUM("--seq-len", FLAG_INT, seq_len, "0", "T, tokens per sequence, at most the model's context (0: 256 on CPU, 1024 on GPU)"),
        FLAG_NUM("--grad-accum", FLAG_INT, grad_accum, "1", "micro-batches per optimizer step"),
        FLAG_NUM("--steps", FLAG_INT, steps, "0", "optimizer steps (0: 150 on CPU, 600 on GPU)"),
        FLAG_STR("--schedule", schedule, "cosine", "learning-rate schedule after warmup: cosine|wsd|constant"),
        FLAG_NUM("--warmup", FLAG_INT, warmup, "10", "linear warmup steps"),
        FLAG_NUM("--final-lr-frac", FLAG_FLOAT, final_lr_frac, "0.1", "cosine: final lr as a fraction of the peak"),
        FLAG_NUM("--cooldown-frac", FLAG_FLOAT, cooldown_frac, "0.2", "wsd: fraction of the run decaying to zero"),
        FLAG_STR("--optimizer", optimizer, "adamw", "optimizer of a single run (see the list below)"),
        FLAG_NUM("--lr", FLAG_FLOAT, lr, "-1", "peak lr of the hidden matrices (AdamW run: of everything)"),
        FLAG_NUM("--adam-lr", FLAG_FLOAT, adam_lr, "-1", "peak lr of the AdamW group in Muon runs"),
        FLAG_NUM("--wd", FLAG_FLOAT, weight_decay, "-1", "decoupled weight decay of the hidden matrices"),
        FLAG_NUM("--adam-wd", FLAG_FLOAT, adam_weight_decay, "-1", "weight decay of the AdamW group's 2-D tensors"),
        FLAG_NUM("--beta1", FLAG_FLOAT, beta1, "-1", "AdamW beta1 (of the AdamW group in Muon runs)"),
        FLAG_NUM("--beta2", FLAG_FLOAT, beta2, "-1", "AdamW beta2"),
        FLAG_NUM("--eps", FLAG_FLOAT, eps, "-1", "AdamW epsilon"),
        FLAG_NUM("--clip", FLAG_FLOAT, grad_clip, "-1", "clip the global gradient norm (0: off)"),
        FLAG_NUM("--eval-every", FLAG_INT, eval_every, "0", "steps between validation evaluations (0: ~10 per run)"),
        FLAG_NUM("--eval-batches", FLAG_INT, eval_batches, "4", "validation batches per evaluation (fixed)"),
        FLAG_NUM("--sample-every", FLAG_INT, sample_every, "0", "steps between printed samples (0: never)"),
        FLAG_NUM("--sample-tokens", FLAG_INT, sample_tokens, "32", "tokens per printed sample"),
        FLAG_NUM("--health-every", FLAG_INT, health_every, "0", "steps between optimizer-health logs (0: ~8 per run, -1: off)"),
        FLAG_NUM("--target-loss", FLAG_FLOAT, target_loss, "0", "stop at this validation loss (0: full budget)"),
        FLAG_NUM("--checkpoint-every", FLAG_INT, checkpoint_every, "0", "steps between checkpoints (0: at the end)"),
        FLAG_STR("--out", out_dir, "out", "output folder: runs go to OUT/RUN-NAME/"),
        FLAG_STR("--run-name", run_name, "", "this run's folder name (default: the optimizer's name)"),
        FLAG_STR("--resume", resume, "", "continue from this checkpoint (its settings win)"),
        FLAG_STR("--init-from", init_from, "", "start from a model file's weights (llm.c's gpt2_124M.bin, a checkpoint)"),
        FLAG_NUM("--stop-at", FLAG_INT, stop_at, "0", "stop after this step as if interrupted, with a checkpoint"),
        FLAG_STR("--device", device, "auto", "cpu|cuda|auto"),
        FLAG_STR("--attention", attention, "simple", "GPU attention: simple (cuBLAS, T x T scores) or flash (fused, no T x T buffers)"),
        FLAG_NUM("--threads", FLAG_INT, threads, "0", "CPU threads (0: all cores)"),
        FLAG_NUM("--seed", FLAG_INT64, seed, "1337", "initial weights and data order"),
        FLAG_STR("--optimizers", optimizers, "adamw,muon", "compare: the optimizers to compare"),
        FLAG_NUM("--sweep-lr", FLAG_INT, sweep_lr, "0", "compare: 1 = try lr x {0.5, 1, 2} each, keep the best"),
        FLAG_NUM("--momentum", FLAG_FLOAT, momentum, "-1", "Muon family: momentum beta, in [0, 1) (beta1 of the RMS base)"),
        FLAG_NUM("--nesterov", FLAG_INT, nesterov, "-1", "Muon family: 1 = Nesterov momentum, 0 = plain"),
        FLAG_NUM("--ns-steps", FLAG_INT, ns_steps, "-1", "Muon family: Newton-Schulz steps, 1 to 99"),
        FLAG_STR("--adjust-lr", adjust_lr, "", "Muon family: lr scale by shape, original (lr sqrt(max(1, rows/cols))) or "
                                               "match_rms_adamw (0.2 lr sqrt(max(rows, cols)), with AdamW's lr and wd)"),
    };
    int n = (int)(sizeof(table) / sizeof(table[0]));
    for (int i = 0; i < n; i++) f[i] = table[i];
    return n;
}

// stores text into a flag; -1 with a message naming the flag when it is not a valid value
static int flag_set(const Flag* f, const char* text, char* err) {
    char* end = NULL;
    errno = 0;
    switch (f->type) {
        case FLAG_INT: {
            long v = strtol(text, &end, 10);
            if (!*text || *end || errno || v < -2147483647L || v > 2147483647L)
                return fail(err, "%s: expected an integer, got '%s'", f->name, text);
            *(int*)f->value = (int)v;
            return 0;
        }
        case FLAG_INT64: {
            long long v = strtoll(text, &end, 10);
            if (!*text || *end || errno) return fail(err, "%s: expected an integer, got '%s'", f->name, text);
            *(long long*)f->value = v;
            return 0;
        }
        case FLAG_FLOAT: {
            float v = strtof(text, &end);
            if (!*text || *end || errno || !isfinite(v)) return fail(err, "%s: expected a number, got '%s'", f->name, text);
            *(float*)f->value = v;
            return 0;
        }
        case FLAG_STRING:
            if (strlen(text) >= f->size) return fail(err, "%s: value longer than %zu characters", f->name, f->size - 1);
            snprintf((char*)f->value, f->size, "%s", text);
            return 0;
    }
    return 0;
}

// Sets every default, then applies argv[first..] ("--name value" or "--name=value").
static int flags_parse(Flag* flags, int n, int argc, char** argv, int first, char* err) {
    for (int i = 0; i < n; i++)
        if (flag_set(&flags[i], flags[i].def, err)) return -1;
    for (int a = first; a < argc; a++) {
        const char* arg = argv[a];
        const char* eq = strchr(arg, '=');
        size_t len = eq ? (size_t)(eq - arg) : strlen(arg);
        const Flag* f = NULL;
        for (int i = 0; i < n; i++)
            if (strlen(flags[i].name) == len && strncmp(flags[i].name, arg, len) == 0) f = &flags[i];
        if (!f) return fail(err, "unknown flag '%s' (see ./train --help)", arg);
        const char* value = eq ? eq + 1 : (a + 1 < argc ? argv[++a] : NULL);
        if (!value) return fail(err, "%s: missing its value", f->name);
        if (flag_set(f, value, err)) return -1;
    }
    return 0;
}

static void flags_print(const Flag* flags, int n) {
    for (int i = 0; i < n; i++) {
        char left[64];
        snprintf(left, sizeof(left), "  %s %s", flags[i].name, flags[i].def[0] ? flags[i].def : "\"\"");
        printf("%-34s %s\n", left, flags[i].help);
    }
}

// A RunConfig with every default, then the given flags (as on the command line, without the program and
// the subcommand). For tests and for the comparison's presets.
static int run_config_from_args(RunConfig* rc, int argc, char** argv, char* err) {
    memset(rc, 0, sizeof(*rc));
    Flag flags[64];
    int n = run_flags(rc, flags);
    return flags_parse(flags, n, argc, argv, 0, err);
}

// Fills the "auto" sizes for the device: a CPU run must finish in minutes on two cores, a GPU run trains
// GPT-2 124M.
static void run_config_resolve(RunConfig* rc, Device dev) {
    bool gpu = dev == DEV_CUDA;
    if (strcmp(rc->model, "auto") == 0) snprintf(rc->model, sizeof(rc->model), "%s", gpu ? "d12" : "d4");
    if (rc->batch == 0) rc->batch = gpu ? 16 : 8;
    if (rc->seq_len == 0) rc->seq_len = gpu ? 1024 : 256;
    if (rc->steps == 0) rc->steps = gpu ? 600 : 150;
    if (rc->eval_every == 0) rc->eval_every = rc->steps / 10 > 0 ? rc->steps / 10 : 1;
    if (rc->health_every == 0) rc->health_every = rc->steps / 8 > 0 ? rc->steps / 8 : 1;
    if (rc->run_name[0] == 0) snprintf(rc->run_name, sizeof(rc->run_name), "%s", rc->optimizer);
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
        if (rc->momentum >= 0) {
            if (!(rc->momentum < 1.0f)) return fail(err, "--momentum %g: expected a value in [0, 1)", rc->momentum);
            c->momentum = rc->momentum;
        }
        if (rc->nesterov >= 0) {
            if (rc->nesterov > 1) return fail(err, "--nesterov %d: expected 0 or 1", rc->nesterov);
            c->nesterov = rc->nesterov;
        }
        if (rc->ns_steps >= 0) {
            if (rc->ns_steps < 1 || rc->ns_steps > 99) return fail(err, "--ns-steps %d: expected 1 to 99", rc->ns_steps);
            c->ns_steps = rc->ns_steps;
        }
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

