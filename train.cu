// train.cu: the one binary. Reads the command line and runs one of:
//   ./train [train] [flags]     train one model (trainer.h)
//   ./train compare [flags]     Muon against AdamW and friends, the default job of `make train` (compare.h)
//   ./train prepare FILES --out DIR    text -> llm.c token shards (data/prepare.h)
//   ./train sample --checkpoint F --prompt TEXT    generate text from a checkpoint or llm.c model file
// Every flag, its default and its meaning live in one table below; --help prints it.
// Built by nvcc it runs on the GPU when there is one, on the CPU otherwise (--device); built by g++, CPU only.
#include <omp.h>
#include "compare.h"

// ----------------------------------------------------------------------------------------------------
// the flag table

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
        FLAG_NUM("--target-loss", FLAG_FLOAT, target_loss, "0", "stop at this validation loss (0: full budget)"),
        FLAG_NUM("--checkpoint-every", FLAG_INT, checkpoint_every, "0", "steps between checkpoints (0: at the end)"),
        FLAG_STR("--out", out_dir, "out", "output folder: runs go to OUT/RUN-NAME/"),
        FLAG_STR("--run-name", run_name, "", "this run's folder name (default: the optimizer's name)"),
        FLAG_STR("--resume", resume, "", "continue from this checkpoint (its settings win)"),
        FLAG_STR("--device", device, "auto", "cpu|cuda|auto"),
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

static void print_help() {
    RunConfig rc;
    Flag flags[64];
    int n = run_flags(&rc, flags);
    printf("muongpt: train GPT-2 on the CPU or a GPU, and compare Muon with AdamW.\n\n"
           "usage:\n"
           "  ./train [train] [flags]                      train one model\n"
           "  ./train compare [flags]                      compare optimizers (make train runs this)\n"
           "  ./train prepare FILE.txt... --out DIR        tokenize text into llm.c shards\n"
           "  ./train sample --checkpoint F [--prompt TEXT --tokens N --temperature T --top-k K --seed S]\n\n"
           "flags (name, default, meaning):\n");
    flags_print(flags, n);
    printf("\noptimizers: %s\n", OPTIMIZER_NAMES_HELP);
}

// ----------------------------------------------------------------------------------------------------
// subcommands

static void set_threads(int threads) {
    if (threads > 0) omp_set_num_threads(threads);
}

// train one model, or compare several
static int cmd_train(int argc, char** argv, int first, bool compare) {
    RunConfig rc;
    memset(&rc, 0, sizeof(rc));
    Flag flags[64];
    int n = run_flags(&rc, flags);
    char err[ERR_LEN];
    if (flags_parse(flags, n, argc, argv, first, err)) die("%s", err);
    set_threads(rc.threads);
    int ok;
    Device dev = device_resolve(rc.device, err, &ok);
    if (!ok) die("%s", err);
    run_config_resolve(&rc, dev);
    if (compare) return compare_main(&rc, dev);
    OptimizerConfig oc;
    if (optimizer_config_from_run(&rc, rc.optimizer, &oc, err)) die("%s", err);
    RunResult res;
    if (run_training(&rc, &oc, dev, &res, err)) die("%s", err);
    printf("done: %d steps, final val_loss %.4f (best %.4f), %.0f tokens in %.1fs of training\n", res.steps,
           res.final_val_loss, res.best_val_loss, res.tokens, res.train_seconds);
    return 0;
}

// ./train sample: text from a checkpoint (or any llm.c model file)
static int cmd_sample(int argc, char** argv) {
    struct { char checkpoint[512], prompt[4096], device[8]; int tokens, top_k; float temperature; long long seed; } s;
    Flag flags[] = {
        {"--checkpoint", FLAG_STRING, s.checkpoint, sizeof(s.checkpoint), "", "checkpoint or llm.c model file"},
        {"--prompt", FLAG_STRING, s.prompt, sizeof(s.prompt), "", "text to continue (\"\": start a new document)"},
        {"--tokens", FLAG_INT, &s.tokens, 0, "64", "tokens to generate"},
        {"--temperature", FLAG_FLOAT, &s.temperature, 0, "1.0", "softmax temperature (0: always the most likely)"},
        {"--top-k", FLAG_INT, &s.top_k, 0, "40", "sample among the k most likely (0: all)"},
        {"--seed", FLAG_INT64, &s.seed, 0, "1337", "random seed"},
        {"--device", FLAG_STRING, s.device, sizeof(s.device), "auto", "cpu|cuda|auto"},
    };
    int n = (int)(sizeof(flags) / sizeof(flags[0]));
    char err[ERR_LEN];
    for (int a = 2; a < argc; a++)
        if (strcmp(argv[a], "--help") == 0) {
            printf("usage: ./train sample --checkpoint F [flags]\n");
            flags_print(flags, n);
            return 0;
        }
    if (flags_parse(flags, n, argc, argv, 2, err)) die("%s", err);
    if (!s.checkpoint[0]) die("--checkpoint: required (a checkpoint.bin from a run, or an llm.c model file)");
    if (s.tokens < 1) die("--tokens: expected a positive count, got %d", s.tokens);
    int ok;
    Device dev = device_resolve(s.device, err, &ok);
    if (!ok) die("%s", err);
    FILE* f = fopen(s.checkpoint, "rb");
    if (!f) die("%s: cannot open (%s)", s.checkpoint, strerror(errno));
    GPT2Config cfg;
    int version;
    if (model_read_header(f, s.checkpoint, &cfg, &version, err)) die("%s", err);
    GPT2 model;
    gpt2_build(&model, &cfg, 1, cfg.max_seq_len, dev, 0);
    if (model_read_params(f, s.checkpoint, &model, version, err)) die("%s", err);
    fclose(f);
    Tokenizer tok;
    if (tokenizer_load(&tok, "data/encoder.json", "data/vocab.bpe", err)) die("%s", err);
    std::vector<int> ids;
    ids.push_back(GPT2_EOT);
    if (tokenizer_encode(&tok, s.prompt, strlen(s.prompt), &ids, err)) die("%s", err);
    int n_prompt = (int)ids.size();
    ids.resize(n_prompt + s.tokens);
    Rng rng = rng_make((uint64_t)s.seed);
    generate(&model, ids.data(), n_prompt, n_prompt + s.tokens, s.temperature, s.top_k, &rng);
    std::string text;
    tokenizer_decode(&tok, ids.data() + 1, ids.size() - 1, &text, err);
    printf("%s\n", text.c_str());
    tokenizer_free(&tok);
    gpt2_free(&model);
    return 0;
}

int main(int argc, char** argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);  // one line at a time, also into a pipe or a log file
    const char* cmd = argc > 1 && argv[1][0] != '-' ? argv[1] : "train";
    for (int a = 1; a < argc; a++)
        if ((strcmp(argv[a], "--help") == 0 || strcmp(argv[a], "-h") == 0) && strcmp(cmd, "sample") != 0 &&
            strcmp(cmd, "prepare") != 0) {
            print_help();
            return 0;
        }
    int first = argc > 1 && argv[1][0] != '-' ? 2 : 1;
    if (strcmp(cmd, "train") == 0) return cmd_train(argc, argv, first, false);
    if (strcmp(cmd, "compare") == 0) return cmd_train(argc, argv, first, true);
    if (strcmp(cmd, "prepare") == 0) return prepare_main(argc - 1, argv + 1);
    if (strcmp(cmd, "sample") == 0) return cmd_sample(argc, argv);
    die("unknown command '%s' (expected train, compare, prepare or sample; see ./train --help)", cmd);
}
