// flags.h: the command line's flags: one table gives each flag's name, type, default and meaning; the
// parser fills a RunConfig from it and --help prints it. Tests build their RunConfig through it too, so a
// test run has exactly the defaults a user gets.
// Flow: argv -> flags_parse -> RunConfig -> run_training / compare_main.
#pragma once
#include "trainer.h"

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

// The flags of training and comparing. Optimizer numbers left at -1 take the optimizer's own default
// (optim.h: AdamW lr 6e-4 as llm.c; Muon lr 0.02 as Keller Jordan's reference, ...).
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
        FLAG_NUM("--seq-len", FLAG_INT, seq_len, "0", "T, tokens per sequence (0: 256 on CPU, 1024 on GPU)"),
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
        FLAG_NUM("--beta1", FLAG_FLOAT, beta1, "-1", "AdamW beta1 (Muon: momentum)"),
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
        FLAG_STR("--attention", attention, "simple", "GPU attention: simple (cuBLAS, T x T scores) or flash (fused)"),
        FLAG_NUM("--threads", FLAG_INT, threads, "0", "CPU threads (0: all cores)"),
        FLAG_NUM("--seed", FLAG_INT64, seed, "1337", "initial weights and data order"),
        FLAG_STR("--optimizers", optimizers, "adamw,muon", "compare: the optimizers to compare"),
        FLAG_NUM("--sweep-lr", FLAG_INT, sweep_lr, "0", "compare: 1 = try lr x {0.5, 1, 2} each, keep the best"),
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
