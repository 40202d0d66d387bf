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
    float target_loss;       // stop when validation loss reaches this (0 = train the whole budget)
    int checkpoint_every;    // steps between checkpoints (0 = only at the end)
    char out_dir[256];       // runs write into out_dir/run_name/
    char run_name[64];       // "" = the optimizer's name
    char resume[512];        // a checkpoint to continue from
    // machine
    char device[8];          // cpu | cuda | auto
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
    float final_val_loss, best_val_loss, final_train_loss;
    double tokens_to_target, seconds_to_target;  // -1 when the target was not reached
    int num_evals;
    double eval_step[MAX_EVALS], eval_tokens[MAX_EVALS], eval_seconds[MAX_EVALS], eval_loss[MAX_EVALS];
};

// The optimizer called `name`, with the run's flags on top (a flag below zero keeps the optimizer's default).
static int optimizer_config_from_run(const RunConfig* rc, const char* name, OptimizerConfig* c, char* err) {
    if (optimizer_config_by_name(name, c, err)) return -1;
    if (rc->lr >= 0) c->lr = rc->lr;
    if (rc->adam_lr >= 0) c->adam_lr = rc->adam_lr;
    if (c->matrix == MATRIX_ADAMW) c->adam_lr = c->lr;
    if (rc->weight_decay >= 0) c->weight_decay = rc->weight_decay;
    if (rc->adam_weight_decay >= 0) c->adam_weight_decay = rc->adam_weight_decay;
    if (c->matrix == MATRIX_ADAMW) c->adam_weight_decay = c->weight_decay;
    if (rc->beta1 >= 0) c->beta1 = rc->beta1;
    if (rc->beta2 >= 0) c->beta2 = rc->beta2;
    if (rc->eps >= 0) c->eps = rc->eps;
    if (rc->grad_clip >= 0) c->grad_clip = rc->grad_clip;
    return 0;
}

static Device device_resolve(const char* name, char* err, int* ok) {
    *ok = 1;
    bool have_gpu = false;
#ifdef __CUDACC__
    int count = 0;
    have_gpu = cudaGetDeviceCount(&count) == cudaSuccess && count > 0;
    cudaGetLastError();  // clear the error a machine without a GPU leaves behind
#endif
    if (strcmp(name, "cpu") == 0) return DEV_CPU;
    if (strcmp(name, "cuda") == 0) {
        if (!have_gpu) {
            *ok = 0;
            fail(err, "--device cuda: no usable CUDA GPU found%s",
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
    if (!have_gpu) printf("no CUDA GPU found: running on the CPU\n");
    return have_gpu ? DEV_CUDA : DEV_CPU;
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

static void make_dirs(const char* path) {
    char buf[1024];
    snprintf(buf, sizeof(buf), "%s", path);
    for (char* p = buf + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            mkdir(buf, 0755);
            *p = '/';
        }
    mkdir(buf, 0755);
}

// One run. `oc` is the optimizer (already resolved from its name and the flags). Returns 0, or -1 with a
// message in err (bad data, a non-finite loss: the last good checkpoint is kept).
static int run_training(const RunConfig* rc_in, const OptimizerConfig* oc_in, Device dev, RunResult* res,
                        char* err) {
    RunConfig rc = *rc_in;
    OptimizerConfig oc = *oc_in;
    memset(res, 0, sizeof(*res));
    TrainState st;
    memset(&st, 0, sizeof(st));
    st.best_val_loss = st.last_val_loss = INFINITY;
    GPT2Config cfg;
    if (rc.resume[0]) {  // the checkpoint's settings win, so the resumed run is the same run
        char resume[512];
        snprintf(resume, sizeof(resume), "%s", rc.resume);
        if (checkpoint_peek(resume, &cfg, &rc, sizeof(rc), &oc, err)) return -1;
        snprintf(rc.resume, sizeof(rc.resume), "%s", resume);
    } else {
        if (gpt2_config_preset(&cfg, rc.model, err)) return -1;
    }
    if (gpt2_config_check(&cfg, err)) return -1;
    if (rc.seq_len > cfg.max_seq_len)
        return fail(err, "--seq-len %d: longer than the model's context %d", rc.seq_len, cfg.max_seq_len);
    if (rc.batch < 1 || rc.seq_len < 1 || rc.grad_accum < 1 || rc.steps < 1)
        return fail(err, "--batch, --seq-len, --grad-accum and --steps must be positive");
    snprintf(res->name, sizeof(res->name), "%s", rc.run_name);

    char train_pattern[DATA_PATH_LEN], val_pattern[DATA_PATH_LEN];
    if (resolve_data(&rc, train_pattern, val_pattern, err)) return -1;
    DataLoader train, val;
    if (dataloader_init(&train, train_pattern, rc.batch, rc.seq_len, (uint64_t)rc.seed, true, err)) return -1;
    if (dataloader_init(&val, val_pattern, rc.batch, rc.seq_len, (uint64_t)rc.seed, false, err)) {
        dataloader_free(&train);
        return -1;
    }

    GPT2 model;
    gpt2_build(&model, &cfg, rc.batch, rc.seq_len, dev, (uint64_t)rc.seed);
    Optimizer opt;
    optimizer_init(&opt, &model, &oc);
    Rng rng = rng_make((uint64_t)rc.seed + 1);
    if (rc.resume[0]) {
        if (checkpoint_load(rc.resume, &model, &opt, &st, err) ||
            dataloader_seek(&train, {st.data_epoch, st.data_shard, st.data_offset}, err)) {
            optimizer_free(&opt);
            gpt2_free(&model);
            dataloader_free(&train);
            dataloader_free(&val);
            return -1;
        }
        rng.state = st.rng_state;
        printf("resumed from %s at step %lld\n", rc.resume, (long long)st.step);
    }

    char run_dir[768], csv_path[1024], ckpt_path[1024];
    snprintf(run_dir, sizeof(run_dir), "%s/%s", rc.out_dir, rc.run_name);
    make_dirs(run_dir);
    snprintf(csv_path, sizeof(csv_path), "%s/log.csv", run_dir);
    snprintf(ckpt_path, sizeof(ckpt_path), "%s/checkpoint.bin", run_dir);
    FILE* csv = fopen(csv_path, st.step > 0 ? "a" : "w");
    if (!csv) die("%s: cannot write the log", csv_path);
    if (st.step == 0) fprintf(csv, "step,tokens,train_loss,val_loss,lr_mult,grad_norm,ms,tokens_per_s,train_seconds\n");

    int B = rc.batch, T = rc.seq_len;
    double tokens_per_step = (double)B * T * rc.grad_accum;
    double flops_per_step = gpt2_flops_per_token(&cfg, T) * tokens_per_step;
    Schedule sched = {SCHEDULE_COSINE, rc.warmup, rc.steps, rc.final_lr_frac, rc.cooldown_frac};
    if (strcmp(rc.schedule, "wsd") == 0) sched.kind = SCHEDULE_WSD;
    if (strcmp(rc.schedule, "constant") == 0) sched.kind = SCHEDULE_CONSTANT;
    printf("run %s: model %s (%.2fM parameters; L %d, NH %d, C %d), batch %d x %d x %d = %.0f tokens/step, "
           "%d steps, %s on %s\n", rc.run_name, rc.model, model.num_parameters / 1e6, cfg.num_layers, cfg.num_heads,
           cfg.channels, B, T, rc.grad_accum, tokens_per_step, rc.steps, rc.schedule, device_name(dev));
    printf("memory: parameters %.1f MiB, gradients %.1f MiB, optimizer state %.1f MiB, activations %.1f MiB\n",
           model.param_arena.capacity / 1048576.0, model.grad_arena.capacity / 1048576.0,
           opt.state.capacity / 1048576.0,
           (model.act_arena.capacity + model.act_grad_arena.capacity) / 1048576.0);
    optimizer_print_groups(&opt, stdout);

    Tokenizer tok;  // for the samples printed during training
    bool have_tokenizer = false;
    if (rc.sample_every > 0) {
        char tok_err[ERR_LEN];
        have_tokenizer = tokenizer_load(&tok, "data/encoder.json", "data/vocab.bpe", tok_err) == 0;
        if (!have_tokenizer) printf("no samples: %s\n", tok_err);
    }

    int rc_status = 0;
    float train_loss = NAN;
    double window_tokens = 0, window_seconds = 0;
    for (int64_t step = st.step; step <= rc.steps; step++) {
        bool last = step == rc.steps;
        // --- evaluation (timed apart from training) ---
        if (step % rc.eval_every == 0 || last) {
            float vl = evaluate(&model, &val, rc.eval_batches, err);
            st.last_val_loss = vl;
            if (vl < st.best_val_loss) st.best_val_loss = vl;
            if (res->num_evals < MAX_EVALS) {
                int e = res->num_evals++;
                res->eval_step[e] = (double)step;
                res->eval_tokens[e] = st.tokens;
                res->eval_seconds[e] = st.train_seconds;
                res->eval_loss[e] = vl;
            }
            printf("step %lld val_loss %.4f tokens %.0f train_time %.1fs\n", (long long)step, vl, st.tokens,
                   st.train_seconds);
            fprintf(csv, "%lld,%.0f,,%.6f,,,,,%.3f\n", (long long)step, st.tokens, vl, st.train_seconds);
            fflush(csv);
            if (rc.target_loss > 0 && vl <= rc.target_loss && res->tokens_to_target <= 0) {
                res->tokens_to_target = st.tokens;
                res->seconds_to_target = st.train_seconds;
                printf("target val_loss %.4f reached at step %lld: %.0f tokens, %.1fs of training\n", rc.target_loss,
                       (long long)step, st.tokens, st.train_seconds);
                last = true;
            }
        }
        if (have_tokenizer && step > 0 && step % rc.sample_every == 0) print_sample(&model, &tok, rc.sample_tokens, &rng);
        if ((rc.checkpoint_every > 0 && step > st.step && step % rc.checkpoint_every == 0) || last) {
            DataPosition pos = dataloader_tell(&train);
            st.step = step;
            st.opt_t = opt.t;
            st.rng_state = rng.state;
            st.data_epoch = pos.epoch;
            st.data_shard = pos.shard_index;
            st.data_offset = pos.offset;
            if (checkpoint_save(ckpt_path, &model, &opt, &st, &rc, sizeof(rc), err)) {
                rc_status = -1;
                break;
            }
        }
        if (last) break;

        // --- one optimizer step ---
        double t0 = now_seconds();
        gpt2_zero_grad(&model);
        double loss_sum = 0.0;
        for (int micro = 0; micro < rc.grad_accum; micro++) {
            if (dataloader_next(&train, err)) {
                rc_status = -1;
                break;
            }
            loss_sum += gpt2_forward(&model, train.inputs, train.targets, B, T);
            gpt2_backward(&model, B, T, 1.0f / (B * T * rc.grad_accum));
        }
        if (rc_status) break;
        train_loss = (float)(loss_sum / rc.grad_accum);
        float lr_mult = lr_multiplier(&sched, (int)step);
        double t1 = now_seconds();
        double norm = isfinite(train_loss) ? optimizer_step(&opt, &model, lr_mult) : NAN;
        device_synchronize(dev);
        double t2 = now_seconds();
        if (!isfinite(train_loss) || !isfinite(norm)) {
            fail(err, "step %lld: %s is %s; stopping (the last good checkpoint, %s, is kept)", (long long)step,
                 isfinite(train_loss) ? "gradient norm" : "loss", isnan(isfinite(train_loss) ? norm : train_loss) ? "NaN" : "infinite",
                 ckpt_path);
            res->status = 1;
            rc_status = -1;
            break;
        }
        double dt = t2 - t0;
        st.train_seconds += dt;
        st.tokens += tokens_per_step;
        res->optimizer_seconds += t2 - t1;
        window_tokens += tokens_per_step;
        window_seconds += dt;
        double tok_s = window_tokens / window_seconds;
        char eta[32], mfu[32] = "";
        format_duration((rc.steps - step - 1) * (window_seconds / (window_tokens / tokens_per_step)), eta, sizeof(eta));
        double peak = device_peak_flops(dev);
        if (peak > 0) snprintf(mfu, sizeof(mfu), " mfu %.1f%%", 100.0 * flops_per_step / dt / peak);
        printf("step %lld/%d loss %.4f lr %.2e norm %.3f ms %.1f tok/s %.0f%s eta %s\n", (long long)step + 1, rc.steps,
               train_loss, lr_mult * oc.lr, norm, dt * 1e3, tok_s, mfu, eta);
        fprintf(csv, "%lld,%.0f,%.6f,,%.6f,%.6f,%.3f,%.1f,%.3f\n", (long long)step + 1, st.tokens, train_loss, lr_mult,
                norm, dt * 1e3, tokens_per_step / dt, st.train_seconds);
        if (window_seconds > 30) window_tokens = window_seconds = 0;  // a moving view of the speed
    }
    fclose(csv);
    if (have_tokenizer) tokenizer_free(&tok);
    res->steps = (int)st.step;
    res->tokens = st.tokens;
    res->train_seconds = st.train_seconds;
    res->final_val_loss = st.last_val_loss;
    res->best_val_loss = st.best_val_loss;
    res->final_train_loss = train_loss;
    if (res->tokens_to_target == 0) res->tokens_to_target = res->seconds_to_target = -1;
    optimizer_free(&opt);
    gpt2_free(&model);
    dataloader_free(&train);
    dataloader_free(&val);
    return rc_status;
}
