// trainer.h: one training run, from settings to a trained model: data loaders, the model, the optimizer,
// the step loop (forward, backward, optimizer), evaluation, samples, logs and checkpoints.
// `./train` runs one; `./train compare` (compare.h) runs several with the same data and initial weights.
// Flow: RunConfig -> run_training: [data -> model -> loss -> backward -> optimizer] x steps -> RunResult.
#pragma once
#include <sys/stat.h>
#include "checkpoint.h"
#include "data/loader.h"
#include "data/prepare.h"
#include "sample.h"

// The settings of a run: one flat struct, filled from the flag table in train.cu (which gives each default
// and its meaning). A value of 0 (or "auto") for a size means: pick for the device (run_config_resolve).
struct RunConfig {
    // data
    char data[512];          // training data: a .txt file (tokenized once into cache_dir) or a glob of shards
    char val_data[512];      // validation shards; "" = the .txt's validation split, or --data with train -> val
    char cache_dir[256];     // where .txt corpora are tokenized to
    // model and batch
    char model[16];          // tiny, d2, d4, d6, d12, d24, d36, d48; auto = d4 on the CPU, d12 on a GPU
    int layers, heads, channels;  // override the preset's sizes (0 = keep)
    int batch;               // B, sequences per micro-batch (0 = auto)
    int seq_len;             // T, tokens per sequence (0 = auto; at most the model's context)
    int grad_accum;          // micro-batches per optimizer step
    // budget and schedule
    int steps;               // optimizer steps (0 = auto)
    char schedule[16];       // cosine | wsd | constant
    int warmup;              // linear warmup steps
    float final_lr_frac;     // cosine: lr at the end, as a fraction of the peak
    float cooldown_frac;     // wsd: fraction of the run spent decaying linearly to zero
    // optimizer (a negative number keeps the optimizer's own default; see optim.h)
    char optimizer[32];      // adamw, muon, ... (see --help)
    float lr, adam_lr, weight_decay, adam_weight_decay, beta1, beta2, eps, grad_clip;
    // evaluation, samples, logs, checkpoints
    int eval_every;          // steps between validation evaluations (0 = auto: about 10 per run)
    int eval_batches;        // validation batches per evaluation (fixed, so runs compare)
    int sample_every;        // steps between printed samples (0 = never)
    int sample_tokens;       // tokens per sample
    int health_every;        // steps between optimizer-health measurements (0 = auto: about 8 per run; -1 = off)
    float target_loss;       // stop when validation loss reaches this (0 = train the whole budget)
    int checkpoint_every;    // steps between checkpoints (0 = only at the end)
    char out_dir[256];       // runs write into out_dir/run_name/
    char run_name[64];       // "" = the optimizer's name
    char resume[512];        // a checkpoint to continue from
    char init_from[512];     // an llm.c model file (or checkpoint) whose weights a new run starts from
    int stop_at;             // stop after this many steps as if interrupted, leaving a checkpoint (0 = never)
    // machine
    char device[8];          // cpu | cuda | auto
    char attention[8];       // GPU attention: simple (cuBLAS + softmax kernels) | flash (ops/attention_flash.h)
    int threads;             // CPU threads (0 = all cores)
    long long seed;          // initial weights and data order
    // the comparison (compare.h)
    char optimizers[256];    // comma-separated optimizers to compare
    int sweep_lr;            // 1: try a small learning-rate grid per optimizer and keep the best
};

// What a run leaves behind, for the logs and for the comparison's table and plots.
#define MAX_EVALS 512
struct RunResult {
    char name[64];
    int status;                 // 0 finished; 1 stopped on a non-finite loss
    int steps;                  // optimizer steps done
    double tokens;              // training tokens seen
    double train_seconds;       // training time (evaluation and logging excluded)
    double optimizer_seconds;   // of which in the optimizer step
    double peak_memory;         // GPU: the most device memory in use after a step (bytes); 0 on the CPU
    float final_val_loss, best_val_loss, final_train_loss;
    double tokens_to_target, seconds_to_target;  // -1 when the target was not reached
    int num_evals;
    double eval_step[MAX_EVALS], eval_tokens[MAX_EVALS], eval_seconds[MAX_EVALS], eval_loss[MAX_EVALS];
    int num_health;             // health measurements: means over the hidden matrices
    double health_step[MAX_EVALS], health_stable_rank[MAX_EVALS], health_effective_rank[MAX_EVALS],
        health_ortho_error[MAX_EVALS], health_grad_cosine[MAX_EVALS];
};

// The optimizer called `spec`, "name[+suffix...][:key=value...]" (e.g. "muon+lr2:lr=0.03"), with the run's
// flags on top (a flag below zero keeps the optimizer's default) and then the spec's own key=value settings,
// so a comparison can give each optimizer its own learning rate.
static int optimizer_config_from_run(const RunConfig* rc, const char* spec, OptimizerConfig* c, char* err) {
    char name[128];
    snprintf(name, sizeof(name), "%s", spec);
    char* settings = strchr(name, ':');
    if (settings) *settings++ = 0;
    if (optimizer_config_by_name(name, c, err)) return -1;
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

// The training and validation shard patterns for --data / --val-data.
static int resolve_data(const RunConfig* rc, char* train_pattern, char* val_pattern, char* err) {
    size_t n = strlen(rc->data);
    if (n > 4 && strcmp(rc->data + n - 4, ".txt") == 0) {
        if (dataset_from_text(rc->data, rc->cache_dir, train_pattern, val_pattern, err)) return -1;
    } else {
        snprintf(train_pattern, DATA_PATH_LEN, "%s", rc->data);
        const char* at = strstr(rc->data, "train");
        if (at) snprintf(val_pattern, DATA_PATH_LEN, "%.*sval%s", (int)(at - rc->data), rc->data, at + 5);
        else val_pattern[0] = 0;
    }
    if (rc->val_data[0]) snprintf(val_pattern, DATA_PATH_LEN, "%s", rc->val_data);
    if (!val_pattern[0])
        return fail(err, "--val-data: no validation shards given, and none follow from --data %s", rc->data);
    return 0;
}

// Mean loss over the first `batches` validation batches (the same ones every time). Runs the forward only.
static float evaluate(GPT2* model, DataLoader* val, int batches, char* err) {
    dataloader_reset(val);
    bool recording = model->tape.recording;
    model->tape.recording = false;
    double sum = 0.0;
    int done = 0;
    for (int i = 0; i < batches; i++) {
        if (dataloader_next(val, err)) break;
        sum += gpt2_forward(model, val->inputs, val->targets, val->B, val->T);
        done++;
    }
    model->tape.recording = recording;
    return done ? (float)(sum / done) : NAN;
}

static void format_duration(double seconds, char* out, size_t size) {
    int s = (int)(seconds + 0.5);
    if (s >= 3600) snprintf(out, size, "%dh%02dm", s / 3600, s / 60 % 60);
    else if (s >= 60) snprintf(out, size, "%dm%02ds", s / 60, s % 60);
    else snprintf(out, size, "%ds", s);
}

// Everything one run holds while it trains.
struct Run {
    RunConfig rc;
    OptimizerConfig oc;
    Device dev;
    GPT2Config cfg;
    GPT2 model;
    Optimizer opt;
    DataLoader train, val;
    TrainState st;
    Schedule sched;
    Rng rng;                    // for the printed samples
    Tokenizer tok;              // for the printed samples
    bool have_model, have_opt, have_train, have_val, have_tok;
    char ckpt_path[1024];
    FILE* csv;                  // log.csv: one line per step and per evaluation
    FILE* health_csv;           // health.csv: one line per hidden matrix per measurement
};

static void run_close(Run* r) {
    if (r->csv) fclose(r->csv);
    if (r->health_csv) fclose(r->health_csv);
    if (r->have_tok) tokenizer_free(&r->tok);
    if (r->have_opt) optimizer_free(&r->opt);
    if (r->have_model) gpt2_free(&r->model);
    if (r->have_train) dataloader_free(&r->train);
    if (r->have_val) dataloader_free(&r->val);
    r->csv = r->health_csv = NULL;
    r->have_tok = r->have_opt = r->have_model = r->have_train = r->have_val = false;
}

// Settings, data, model, optimizer, resumed state, output files. 0, or -1 with a message (nothing left open).
// --init-from: a new run (fresh optimizer, step 0) that starts from a model file's weights, e.g. llm.c's
// gpt2_124M.bin to fine-tune GPT-2. The file's config replaces --model; its vocabulary must be GPT-2's, the
// data's. Two halves, as the model is built between them.
static int init_config_from(const char* path, GPT2Config* cfg, char* err) {
    FILE* f = fopen(path, "rb");
    if (!f) return fail(err, "--init-from %s: cannot open (%s)", path, strerror(errno));
    int version;
    int rc = model_read_header(f, path, cfg, &version, err);
    fclose(f);
    if (rc == 0 && cfg->vocab_size != GPT2_VOCAB_SIZE)
        return fail(err, "--init-from %s: vocabulary of %d tokens, but the data are GPT-2 tokens (%d)", path,
                    cfg->vocab_size, GPT2_VOCAB_SIZE);
    return rc;
}

static int init_weights_from(const char* path, GPT2* model, char* err) {
    GPT2Config cfg;
    int version;
    FILE* f = fopen(path, "rb");
    if (!f) return fail(err, "--init-from %s: cannot open (%s)", path, strerror(errno));
    int rc = model_read_header(f, path, &cfg, &version, err);
    if (rc == 0) rc = model_read_params(f, path, model, version, err);
    fclose(f);
    if (rc == 0) printf("initial weights from %s\n", path);
    return rc;
}

static int run_open(Run* r, const RunConfig* rc, const OptimizerConfig* oc, Device dev, char* err) {
    r->rc = *rc;
    r->oc = *oc;
    r->dev = dev;
    r->st.best_val_loss = r->st.last_val_loss = INFINITY;
    if (r->rc.resume[0]) {  // the checkpoint's settings win (but --resume and --stop-at), so it is the same run
        RunConfig given = r->rc;
        if (checkpoint_peek(given.resume, &r->cfg, &r->rc, sizeof(r->rc), &r->oc, err)) return -1;
        snprintf(r->rc.resume, sizeof(r->rc.resume), "%s", given.resume);
        r->rc.stop_at = given.stop_at;
    } else {
        if (gpt2_config_preset(&r->cfg, r->rc.model, err)) return -1;
        if (r->rc.layers > 0) r->cfg.num_layers = r->rc.layers;
        if (r->rc.heads > 0) r->cfg.num_heads = r->rc.heads;
        if (r->rc.channels > 0) r->cfg.channels = r->rc.channels;
        if (r->rc.init_from[0]) {
            if (init_config_from(r->rc.init_from, &r->cfg, err)) return -1;
            snprintf(r->rc.model, sizeof(r->rc.model), "from-file");  // the header names the file's shape
        }
    }
    const RunConfig* c = &r->rc;
    if (gpt2_config_check(&r->cfg, err)) return -1;
    if (c->seq_len > r->cfg.max_seq_len)
        return fail(err, "--seq-len %d: longer than the model's context %d", c->seq_len, r->cfg.max_seq_len);
    if (c->batch < 1 || c->seq_len < 1 || c->grad_accum < 1 || c->steps < 1 || c->eval_batches < 1)
        return fail(err, "--batch, --seq-len, --grad-accum, --steps and --eval-batches must be positive");
    if (strcmp(c->attention, "simple") != 0 && strcmp(c->attention, "flash") != 0)
        return fail(err, "--attention: expected simple or flash, got '%s'", c->attention);
    if (strcmp(c->attention, "flash") == 0 && dev == DEV_CPU)
        printf("--attention flash: a GPU kernel; the CPU runs its one reference attention\n");
    r->sched = {SCHEDULE_COSINE, c->warmup, c->steps, c->final_lr_frac, c->cooldown_frac};
    if (strcmp(c->schedule, "wsd") == 0) r->sched.kind = SCHEDULE_WSD;
    else if (strcmp(c->schedule, "constant") == 0) r->sched.kind = SCHEDULE_CONSTANT;
    else if (strcmp(c->schedule, "cosine") != 0)
        return fail(err, "--schedule: expected cosine, wsd or constant, got '%s'", c->schedule);

    char train_pattern[DATA_PATH_LEN], val_pattern[DATA_PATH_LEN];
    if (resolve_data(c, train_pattern, val_pattern, err)) return -1;
    if (dataloader_init(&r->train, train_pattern, c->batch, c->seq_len, (uint64_t)c->seed, true, err)) return -1;
    r->have_train = true;
    if (dataloader_init(&r->val, val_pattern, c->batch, c->seq_len, (uint64_t)c->seed, false, err)) return -1;
    r->have_val = true;
    int64_t val_batches = 0;  // whole batches in the validation shards: evaluation never wraps around
    for (int i = 0; i < r->val.num_shards; i++) val_batches += (r->val.shard_tokens[i] - 1) / ((int64_t)c->batch * c->seq_len);
    if (val_batches < r->rc.eval_batches) {
        printf("validation holds %lld batches of %d x %d: evaluating on those (not %d)\n", (long long)val_batches,
               c->batch, c->seq_len, r->rc.eval_batches);
        r->rc.eval_batches = (int)val_batches;
    }

    Kernels kernels = {GEMM_CUBLAS, strcmp(c->attention, "flash") == 0 ? ATTENTION_FLASH : ATTENTION_SIMPLE};
    gpt2_build(&r->model, &r->cfg, c->batch, c->seq_len, dev, (uint64_t)c->seed, kernels);
    r->have_model = true;
    if (optimizer_init(&r->opt, &r->model, &r->oc, err)) return -1;
    r->have_opt = true;
    r->rng = rng_make((uint64_t)c->seed + 1);
    if (c->init_from[0] && !c->resume[0] && init_weights_from(c->init_from, &r->model, err)) return -1;
    if (c->resume[0]) {
        if (checkpoint_load(c->resume, &r->model, &r->opt, &r->st, err)) return -1;
        DataPosition pos = {r->st.data_epoch, r->st.data_shard, r->st.data_offset};
        if (dataloader_seek(&r->train, pos, err)) return -1;
        r->rng.state = r->st.rng_state;
        printf("resumed from %s at step %lld\n", c->resume, (long long)r->st.step);
    }
    if (c->sample_every > 0) {
        char tok_err[ERR_LEN];
        r->have_tok = tokenizer_load(&r->tok, "data/encoder.json", "data/vocab.bpe", tok_err) == 0;
        if (!r->have_tok) printf("no samples: %s\n", tok_err);
    }

    char run_dir[768], path[1024];
    snprintf(run_dir, sizeof(run_dir), "%s/%s", c->out_dir, c->run_name);
    if (make_dirs(run_dir, err)) return -1;
    snprintf(r->ckpt_path, sizeof(r->ckpt_path), "%s/checkpoint.bin", run_dir);
    bool fresh = r->st.step == 0;  // a resumed run appends to its logs
    snprintf(path, sizeof(path), "%s/log.csv", run_dir);
    r->csv = fopen(path, fresh ? "w" : "a");
    if (!r->csv) return fail(err, "%s: cannot write (%s)", path, strerror(errno));
    if (fresh) fprintf(r->csv, "step,tokens,train_loss,val_loss,lr_mult,grad_norm,ms,tokens_per_s,train_seconds\n");
    snprintf(path, sizeof(path), "%s/health.csv", run_dir);
    r->health_csv = fopen(path, fresh ? "w" : "a");
    if (!r->health_csv) return fail(err, "%s: cannot write (%s)", path, strerror(errno));
    if (fresh)
        fprintf(r->health_csv, "step,matrix,optimizer,stable_rank,effective_rank,ortho_error,grad_cosine,update_rms,"
                               "weight_spectral_norm\n");
    return 0;
}

static void run_print_header(const Run* r) {
    const RunConfig* c = &r->rc;
    const GPT2* m = &r->model;
    printf("run %s: model %s (%.2fM parameters; L %d, NH %d, C %d, context %d), batch %d x %d x %d = %d tokens/step, "
           "%d steps, %s schedule, %d warmup, on %s, seed %lld\n", c->run_name, c->model, m->num_parameters / 1e6,
           r->cfg.num_layers, r->cfg.num_heads, r->cfg.channels, r->cfg.max_seq_len, c->batch, c->seq_len,
           c->grad_accum, c->batch * c->seq_len * c->grad_accum, c->steps, c->schedule, c->warmup,
           device_name(r->dev), c->seed);
    const char* attention = r->dev == DEV_CPU ? "the CPU's reference attention"
                            : attention_uses_flash(r->dev, m->kernels.attention) ? "flash attention, no T x T buffers"
                                                                         : "simple attention, T x T buffers";
    printf("memory (%s): parameters %.1f MiB, gradients %.1f MiB, optimizer state %.1f MiB, activations %.1f MiB (%s)\n",
           device_name(r->dev), m->param_arena.capacity / 1048576.0, m->grad_arena.capacity / 1048576.0,
           r->opt.state.capacity / 1048576.0, (m->act_arena.capacity + m->act_grad_arena.capacity) / 1048576.0,
           attention);
    optimizer_print_groups(&r->opt, stdout);
}

// validation loss at this step: logs it, records it, checks the target. Returns true when the target is met.
static bool run_evaluate(Run* r, int64_t step, RunResult* res, char* err) {
    float vl = evaluate(&r->model, &r->val, r->rc.eval_batches, err);
    TrainState* st = &r->st;
    st->last_val_loss = vl;
    if (vl < st->best_val_loss) st->best_val_loss = vl;
    if (res->num_evals < MAX_EVALS) {
        int e = res->num_evals++;
        res->eval_step[e] = (double)step;
        res->eval_tokens[e] = st->tokens;
        res->eval_seconds[e] = st->train_seconds;
        res->eval_loss[e] = vl;
    }
    printf("step %lld val_loss %.4f tokens %.0f train_time %.1fs\n", (long long)step, vl, st->tokens,
           st->train_seconds);
    fprintf(r->csv, "%lld,%.0f,,%.6f,,,,,%.3f\n", (long long)step, st->tokens, vl, st->train_seconds);
    fflush(r->csv);
    if (r->rc.target_loss > 0 && vl <= r->rc.target_loss && res->tokens_to_target <= 0) {
        res->tokens_to_target = st->tokens;
        res->seconds_to_target = st->train_seconds;
        printf("target val_loss %.4f reached at step %lld: %.0f tokens, %.1fs of training\n", r->rc.target_loss,
               (long long)step, st->tokens, st->train_seconds);
        return true;
    }
    return false;
}

static int run_checkpoint(Run* r, int64_t step, char* err) {
    DataPosition pos = dataloader_tell(&r->train);
    TrainState* st = &r->st;
    st->step = step;
    st->opt_t = r->opt.t;
    st->rng_state = r->rng.state;
    st->data_epoch = pos.epoch;
    st->data_shard = pos.shard_index;
    st->data_offset = pos.offset;
    return checkpoint_save(r->ckpt_path, &r->model, &r->opt, st, &r->rc, sizeof(r->rc), err);
}

// the health of every hidden matrix's update, measured in this step: health.csv and one summary line
static void run_log_health(Run* r, int64_t step, RunResult* res) {
    const Optimizer* o = &r->opt;
    double sum[4] = {0, 0, 0, 0};
    int count = 0;
    for (int i = 0; i < o->num_slots; i++) {
        if (o->slots[i].kind != PARAM_MATRIX) continue;
        const UpdateHealth* h = &o->health[i];
        fprintf(r->health_csv, "%lld,%s,%s,%.4f,%.4f,%.4f,%.4f,%.4e,%.4f\n", (long long)step, o->slots[i].name,
                o->use_matrix_method[i] ? o->cfg.name : "adamw", h->stable_rank, h->effective_rank, h->ortho_error,
                h->grad_cosine, h->update_rms, h->weight_spectral_norm);
        sum[0] += h->stable_rank;
        sum[1] += h->effective_rank;
        sum[2] += h->ortho_error;
        sum[3] += h->grad_cosine;
        count++;
    }
    fflush(r->health_csv);
    if (count == 0) return;
    for (int k = 0; k < 4; k++) sum[k] /= count;
    printf("health step %lld (mean of %d hidden matrices): stable_rank %.2f effective_rank %.2f ortho_error %.3f "
           "cos(grad, update) %.3f\n", (long long)step, count, sum[0], sum[1], sum[2], sum[3]);
    if (res->num_health < MAX_EVALS) {
        int k = res->num_health++;
        res->health_step[k] = (double)step;
        res->health_stable_rank[k] = sum[0];
        res->health_effective_rank[k] = sum[1];
        res->health_ortho_error[k] = sum[2];
        res->health_grad_cosine[k] = sum[3];
    }
}

// One optimizer step (all micro-batches). Returns 0, or -1 (data error, or a non-finite loss or gradient).
static int run_train_step(Run* r, int64_t step, RunResult* res, double* window, char* err) {
    const RunConfig* c = &r->rc;
    int B = c->batch, T = c->seq_len;
    double t0 = device_clock(r->dev);
    gpt2_zero_grad(&r->model);
    double loss_sum = 0.0;
    for (int micro = 0; micro < c->grad_accum; micro++) {
        if (dataloader_next(&r->train, err)) return -1;
        loss_sum += gpt2_forward(&r->model, r->train.inputs, r->train.targets, B, T);
        gpt2_backward(&r->model, B, T, 1.0f / ((float)B * T * c->grad_accum));
    }
    float loss = (float)(loss_sum / c->grad_accum);
    float lr_mult = lr_multiplier(&r->sched, (int)step);
    bool health = c->health_every > 0 && (step + 1) % c->health_every == 0;
    double t1 = device_clock(r->dev);  // the backward's queued kernels are done: not optimizer time
    double norm = isfinite(loss) ? optimizer_step(&r->opt, &r->model, lr_mult, health) : NAN;
    double t2 = device_clock(r->dev);
    if (!isfinite(loss) || !isfinite(norm)) {
        double bad = isfinite(loss) ? norm : loss;
        res->status = 1;
        return fail(err, "step %lld: the %s is %s; stopping (the last good checkpoint, %s, is kept)",
                    (long long)step + 1, isfinite(loss) ? "gradient norm" : "loss", isnan(bad) ? "NaN" : "infinite",
                    r->ckpt_path);
    }
    // the health measurement is not training time
    double dt = t2 - t0 - r->opt.health_seconds, tokens = (double)B * T * c->grad_accum;
    if (health) run_log_health(r, step + 1, res);
    r->st.train_seconds += dt;
    r->st.tokens += tokens;
    res->optimizer_seconds += t2 - t1 - r->opt.health_seconds;
    res->final_train_loss = loss;
    window[0] += tokens;  // a moving view of the speed: tokens and seconds since the window opened
    window[1] += dt;
    char eta[32], mfu[32] = "";
    format_duration((c->steps - step - 1) * window[1] / (window[0] / tokens), eta, sizeof(eta));
    double peak = device_peak_flops(r->dev);
    if (peak > 0)
        snprintf(mfu, sizeof(mfu), " mfu %.1f%%", 100.0 * gpt2_flops_per_token(&r->cfg, T) * tokens / dt / peak);
    else if (r->dev == DEV_CUDA)
        snprintf(mfu, sizeof(mfu), " mfu unknown");  // a GPU not in device_peak_flops's table
    double in_use = device_memory_in_use(r->dev);
    if (in_use > res->peak_memory) res->peak_memory = in_use;
    printf("step %lld/%d loss %.4f lr %.2e norm %.3f ms %.1f tok/s %.0f%s eta %s\n", (long long)step + 1, c->steps,
           loss, lr_mult * r->oc.lr, norm, dt * 1e3, window[0] / window[1], mfu, eta);
    fprintf(r->csv, "%lld,%.0f,%.6f,,%.6f,%.6f,%.3f,%.1f,%.3f\n", (long long)step + 1, r->st.tokens, loss, lr_mult,
            norm, dt * 1e3, tokens / dt, r->st.train_seconds);
    if (window[1] > 30) window[0] = window[1] = 0;
    return 0;
}

// One run. `oc` is the optimizer (already resolved from its name and the flags). Returns 0, or -1 with a
// message in err (bad settings or data, or a non-finite loss: the last good checkpoint is then kept).
// The loop, per step: evaluate (every eval_every, timed apart from training), sample, checkpoint, train.
static int run_training(const RunConfig* rc, const OptimizerConfig* oc, Device dev, RunResult* res, char* err) {
    memset(res, 0, sizeof(*res));
    snprintf(res->name, sizeof(res->name), "%s", oc->name);
    Run* r = new Run();  // value-initialized: the plain fields zero, the tokenizer's strings constructed
    if (run_open(r, rc, oc, dev, err)) {
        run_close(r);
        delete r;
        return -1;
    }
    run_print_header(r);
    const RunConfig* c = &r->rc;
    int status = 0;
    double window[2] = {0, 0};
    const int64_t first_step = r->st.step;
    for (int64_t step = first_step; step <= c->steps; step++) {
        bool last = step == c->steps;
        bool resumed_here = c->resume[0] && step == first_step;  // evaluated before the checkpoint was written
        if ((step % c->eval_every == 0 && !resumed_here) || last)
            if (run_evaluate(r, step, res, err)) last = true;
        bool interrupt = c->stop_at > 0 && step == c->stop_at && !last;
        if (r->have_tok && step > 0 && step % c->sample_every == 0)
            print_sample(&r->model, &r->tok, c->sample_tokens, &r->rng);
        if ((c->checkpoint_every > 0 && step > first_step && step % c->checkpoint_every == 0) || last || interrupt)
            if ((status = run_checkpoint(r, step, err)) != 0) break;
        if (interrupt)
            printf("stopping at step %lld as asked (--stop-at); continue with --resume %s\n", (long long)step,
                   r->ckpt_path);
        if (last || interrupt) break;
        if ((status = run_train_step(r, step, res, window, err)) != 0) break;
    }
    res->steps = (int)r->st.step;
    res->tokens = r->st.tokens;
    res->train_seconds = r->st.train_seconds;
    res->final_val_loss = r->st.last_val_loss;
    res->best_val_loss = r->st.best_val_loss;
    if (res->tokens_to_target == 0) res->tokens_to_target = res->seconds_to_target = -1;
    run_close(r);
    delete r;
    return status;
}
