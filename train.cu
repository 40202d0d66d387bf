// train.cu: the one binary. Reads the command line and runs one of:
//   ./train [train] [flags]     train one model (run.h)
//   ./train compare [flags]     Muon against AdamW and friends, the default job of `make train` (report/compare.h)
//   ./train prepare FILES --out DIR    text -> llm.c token shards (data/prepare.h)
//   ./train sample --checkpoint F --prompt TEXT    generate text from a checkpoint or llm.c model file
// Every flag, its default and its meaning live in one table (settings.h); --help prints it.
// Built by nvcc it runs on the GPU when there is one, on the CPU otherwise (--device); built by g++, CPU only.
// Under `mpirun -np N` (a build with MPI: dist.h) train and compare run on N ranks, data parallel.
#include <omp.h>
#include "report/compare.h"

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
    printf("\nwith --resume the checkpoint's settings win; these may change: %s\n", RESUMABLE);
    printf("Ctrl-C (SIGINT), SIGTERM or SIGHUP: the run stops at the next step with a checkpoint (exit status\n"
           "128 + the signal: 130, 143, 129); a second one stops it at once\n");
    printf("\noptimizers: %s\n\ntheir defaults (a flag left at default keeps them):\n", OPTIMIZER_NAMES_HELP);
    optimizer_print_defaults(stdout);
    if (dist_build()[0])
        printf("\nseveral processes (built with %s): mpirun -np N ./train [compare] [flags] trains one model on N ranks,\n"
               "each reading --batch sequences of every N x --batch (on GPUs: one GPU a rank); rank 0 logs and writes\n",
               dist_build());
    else
        printf("\none process only: this build has no MPI (install libopenmpi-dev, or run make deps as root, and rebuild\n"
               "for mpirun -np N ./train)\n");
}

// ----------------------------------------------------------------------------------------------------
// subcommands

// more threads than cores only slow the step (and libgomp fails on absurd counts): at most one per core. The
// ranks on one machine share its cores (mpirun may also have bound each rank to its own).
static void set_threads(int threads) {
    int cores = omp_get_num_procs();
    if (threads > cores) die("--threads %d: this machine has %d cores (expected 0, all of them, to %d)", threads, cores, cores);
    if (threads == 0 && dist.local_ranks > 1) threads = cores / dist.local_ranks > 1 ? cores / dist.local_ranks : 1;
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
    if (dev == DEV_CUDA) dist_use_gpu();
    if (compare && rc.resume[0])
        die("--resume: continues one run (./train --resume F); ./train compare starts its runs afresh");
    if (!rc.resume[0]) run_config_resolve(&rc, dev);  // a resumed run takes the checkpoint's (run.h)
    if (compare) return compare_main(&rc, dev);
    OptimizerConfig oc;
    if (optimizer_config_from_run(&rc, rc.optimizer, &oc, err)) die("%s", err);
    RunResult res;
    if (run_training(&rc, &oc, dev, &res, err)) die("%s", err);
    printf("%s: %d steps, final val_loss %.4f (best %.4f), %.0f tokens in %.1fs of training\n",
           res.status == 2 ? "stopped" : "done", res.steps, res.final_val_loss, res.best_val_loss, res.tokens,
           res.train_seconds);
    if (res.peak_memory > 0)
        printf("peak GPU memory in use: %.0f MiB (the whole device: our buffers, cuBLAS, the CUDA context)\n",
               res.peak_memory / 1048576.0);
    return res.status == 2 ? run_signal_exit_status() : 0;
}

// ./train sample: text from a checkpoint (or any llm.c model file)
static int cmd_sample(int argc, char** argv) {
    struct { char checkpoint[512], prompt[4096], device[8]; int tokens, top_k; float temperature; long long seed; } s;
    Flag flags[] = {
        {"--checkpoint", FLAG_STRING, s.checkpoint, sizeof(s.checkpoint), "", 0, 0, false, false, NULL, "checkpoint or llm.c model file"},
        {"--prompt", FLAG_STRING, s.prompt, sizeof(s.prompt), "", 0, 0, false, false, NULL, "text to continue (\"\": start a new document)"},
        {"--tokens", FLAG_INT, &s.tokens, 0, "64", 1, 1 << 20, false, false, NULL, "tokens to generate"},
        {"--temperature", FLAG_FLOAT, &s.temperature, 0, "1.0", 0, 100, false, false, NULL, "softmax temperature (0: always the most likely)"},
        {"--top-k", FLAG_INT, &s.top_k, 0, "40", 0, 1 << 24, false, false, NULL, "sample among the k most likely (0: all)"},
        {"--seed", FLAG_INT64, &s.seed, 0, "1337", 1, 0, false, false, NULL, "random seed"},
        {"--device", FLAG_STRING, s.device, sizeof(s.device), "auto", 0, 0, false, false, "cpu|cuda|auto", "cpu|cuda|auto"},
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
    int ok;
    Device dev = device_resolve(s.device, err, &ok);
    if (!ok) die("%s", err);
    FILE* f = fopen(s.checkpoint, "rb");
    if (!f) die("%s: cannot open (%s)", s.checkpoint, strerror(errno));
    GPT2Config cfg;
    int version;
    if (model_read_header(f, s.checkpoint, &cfg, &version, err)) die("%s", err);
    if (cfg.vocab_size != GPT2_VOCAB_SIZE)  // its ids would not be GPT-2's: the tokenizer cannot read them
        die("%s: vocabulary of %d tokens, but sampling needs GPT-2's (%d)", s.checkpoint, cfg.vocab_size,
            GPT2_VOCAB_SIZE);
    GPT2 model;
    gpt2_build(&model, &cfg, 1, cfg.max_seq_len, dev, 0);
    if (model_read_params(f, s.checkpoint, &model, version, err)) die("%s", err);
    fclose(f);
    Tokenizer tok;
    if (tokenizer_load_default(&tok, err)) die("%s", err);
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

// ./train prepare FILES [flags]: text -> llm.c token shards (data/prepare.h). The words that are not flags (nor
// a flag's value) are the input files.
static int cmd_prepare(int argc, char** argv) {
    struct { char out[512]; long long val_tokens, shard_tokens; } s;
    Flag flags[] = {
        {"--out", FLAG_STRING, s.out, sizeof(s.out), DATA_CACHE_DIR, 0, 0, false, false, NULL, "output folder"},
        {"--val-tokens", FLAG_INT64, &s.val_tokens, 0, STRINGIFY(PREPARE_VAL_TOKENS), 0, 1e15, false, false, NULL,
         "tokens in the validation split (llm.c's recipe)"},
        {"--shard-tokens", FLAG_INT64, &s.shard_tokens, 0, STRINGIFY(PREPARE_SHARD_TOKENS), 1, 2147483647, false, false, NULL,
         "training tokens per shard for large inputs"},
    };
    int n = (int)(sizeof(flags) / sizeof(flags[0]));
    std::vector<char*> flag_args, inputs;
    for (int a = 2; a < argc; a++) {
        if (strcmp(argv[a], "--help") == 0 || strcmp(argv[a], "-h") == 0) {
            printf("usage: ./train prepare FILE.txt... [flags]\n"
                   "Tokenizes each text file with GPT-2's BPE (data/encoder.json and data/vocab.bpe, from the repository\n"
                   "root) into llm.c token shards by llm.c's tinyshakespeare recipe: each \"\\n\\n\"-separated section is a\n"
                   "document with <|endoftext|> before it; the first --val-tokens go to OUT/<stem>_val.bin, the rest to\n"
                   "OUT/<stem>_train.bin (or OUT/<stem>_train_000000.bin, ... when the text may exceed one shard).\n");
            flags_print(flags, n);
            return 0;
        }
        if (strncmp(argv[a], "--", 2) == 0) {
            flag_args.push_back(argv[a]);
            if (!strchr(argv[a], '=') && a + 1 < argc) flag_args.push_back(argv[++a]);
        } else {
            inputs.push_back(argv[a]);
        }
    }
    char err[ERR_LEN];
    if (flags_parse(flags, n, (int)flag_args.size(), flag_args.data(), 0, err)) die("%s", err);
    if (inputs.empty()) die("prepare: no text files given (usage: ./train prepare FILE.txt... [--out DIR]; see --help)");
    PrepareOptions opt;
    opt.out_dir = s.out;
    opt.val_tokens = s.val_tokens;
    opt.shard_tokens = s.shard_tokens;
    Tokenizer tok;
    if (tokenizer_load_default(&tok, err)) die("%s", err);
    for (const char* path : inputs) {
        PrepareStats st;
        if (prepare_text(&tok, path, &opt, &st, err)) die("%s", err);
        prepare_print(path, &st);
    }
    tokenizer_free(&tok);
    return 0;
}

static int run_command(int argc, char** argv) {
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
    if (strcmp(cmd, "prepare") == 0 || strcmp(cmd, "sample") == 0) {  // one process's work: rank 0 does it
        if (!dist_root()) return 0;
        return strcmp(cmd, "prepare") == 0 ? cmd_prepare(argc, argv) : cmd_sample(argc, argv);
    }
    die("unknown command '%s' (expected train, compare, prepare or sample; see ./train --help)", cmd);
    return 1;
}

int main(int argc, char** argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);  // one line at a time, also into a pipe or a log file
    dist_init(&argc, &argv);
    int status = run_command(argc, argv);
    dist_finalize();
    return status;
}
