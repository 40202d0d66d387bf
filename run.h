// run.h: one training run, from settings to a trained model: open (data loaders, the model, the optimizer, a
// resumed state), the step loop (forward, backward, optimizer; evaluation, samples, checkpoints), close. What it
// reports goes through runlog.h. `./train` runs one; `./train compare` (report/compare.h) runs several with the
// same data and initial weights.
// With several ranks (dist.h) every rank runs this same loop on its slice of each batch; the gradients and losses
// are summed across ranks, and rank 0 alone writes the logs, samples and checkpoints.
// Flow: RunConfig -> run_training: [data -> model -> loss -> backward -> optimizer] x steps -> RunResult.
#pragma once
#include <signal.h>
#include <sys/stat.h>
#include "checkpoint.h"
#include "data/loader.h"
#include "data/prepare.h"
#include "runlog.h"
#include "sample.h"
#include "step_graph.h"

// The training and validation shard patterns for --data / --val-data. A .txt is tokenized by rank 0 first; the
// other ranks then find its shards made.
static int resolve_data(const RunConfig* rc, char* train_pattern, char* val_pattern, char* err) {
    size_t n = strlen(rc->data);
    if (n > 4 && strcmp(rc->data + n - 4, ".txt") == 0) {
        int status = dist_root() ? dataset_from_text(rc->data, rc->cache_dir, train_pattern, val_pattern, err) : 0;
        dist_broadcast(&status, sizeof(status));
        if (status || (!dist_root() && dataset_from_text(rc->data, rc->cache_dir, train_pattern, val_pattern, err)))
            return -1;
    } else {
        snprintf(train_pattern, DATA_PATH_LEN, "%.1000s", rc->data);
        const char* at = strstr(rc->data, "train");
        if (at) snprintf(val_pattern, DATA_PATH_LEN, "%.*sval%s", (int)(at - rc->data), rc->data, at + 5);
        else val_pattern[0] = 0;
    }
    if (rc->val_data[0]) snprintf(val_pattern, DATA_PATH_LEN, "%s", rc->val_data);
    if (!val_pattern[0])
        return fail(err, "--val-data: no validation shards given, and none follow from --data %s", rc->data);
    return 0;
}

// Mean loss over the first `batches` validation batches (the same ones every time), over every rank's rows.
// Runs the forward only.
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
    dist_sum_doubles(&sum, 1);
    return done ? (float)(sum / done / dist.ranks) : NAN;
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
    int64_t checkpoint_step;    // the step of the checkpoint this run wrote last; -1 before the first
    RunLog log;                 // log.csv and health.csv
    StepGraph graph;            // --cuda-graph: the micro-step captured (step_graph.h)
};

static void run_close(Run* r) {
    runlog_close(&r->log);
    if (r->have_tok) tokenizer_free(&r->tok);
    if (r->have_opt) optimizer_free(&r->opt);
    step_graph_free(&r->graph);
    if (r->have_model) gpt2_free(&r->model);
    if (r->have_train) dataloader_free(&r->train);
    if (r->have_val) dataloader_free(&r->val);
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

// The bytes a run will hold, against the memory there is, before anything is allocated: parameters and
// gradients, two moments (4 floats a parameter; with N ranks each keeps about 1/N of the moments, and the
// parameter gather's buffers take (1 + 1/N) floats a parameter: partition.h), at bf16 precision the weights' copies
// (model.h's gpt2_weight_copy_bytes: fp32 and 16-bit), the activations of one micro-batch and, at 16-bit
// storage, cuBLASLt's workspace; on the CPU the ranks of this machine share its memory. 0, or -1 naming the sizes.
static int run_memory_check(const Run* r, Device dev, char* err) {
    const RunConfig* c = &r->rc;
    double sharing = dev == DEV_CPU ? dist.local_ranks : 1.0, n = dist.ranks;
    Kernels k = run_kernels(c);
    double copy = (double)gpt2_weight_copy_bytes(&r->cfg, dev, k) +
                  (gpt2_storage16(dev, k) ? (double)CUBLASLT_WORKSPACE_BYTES : 0.0);
    double weights =
        sharing * ((8.0 + 8.0 / n + (n > 1 ? 4.0 + 4.0 / n : 0.0)) * (double)gpt2_num_parameters(&r->cfg) + copy);
    double acts = sharing * (double)gpt2_activation_bytes(&r->cfg, c->batch, c->seq_len, dev, k);
    double have = device_memory_total(dev);
    if (have > 0 && weights + acts > have)
        return fail(err, "--model %s --batch %d --seq-len %d: needs %.1f GiB (parameters, gradients and optimizer state "
                    "%.1f GiB, activations %.1f GiB), more than the %.1f GiB of %s memory here: use a smaller --batch, "
                    "--seq-len or --model", c->model, c->batch, c->seq_len, (weights + acts) / 1073741824.0,
                    weights / 1073741824.0, acts / 1073741824.0, have / 1073741824.0, dev == DEV_CPU ? "host" : "GPU");
    return 0;
}

// --resume: the checkpoint's settings, checked, with the command line's where it may change them (RESUMABLE).
// Its --batch is the global batch: each of this run's ranks takes its share (any rank count that divides it).
static int run_resume_settings(Run* r, const RunConfig* given, char* err) {
    if (checkpoint_peek(given->resume, &r->cfg, &r->rc, sizeof(r->rc), &r->oc, &r->st, err)) return -1;
    char where[600];
    snprintf(where, sizeof(where), "checkpoint %s: setting ", given->resume);
    if (run_config_check(&r->rc, where, err)) return -1;  // as stored: the global batch
    if (r->rc.batch % dist.ranks != 0)
        return fail(err, "--resume %s: the checkpoint's global batch of %d sequences does not split among %d ranks "
                    "(resume with a number of ranks that divides it)", given->resume, r->rc.batch, dist.ranks);
    r->rc.batch /= dist.ranks;
    if (run_config_resume(&r->rc, given, err)) return -1;
    if (r->rc.steps != 0 && r->st.step >= r->rc.steps)
        return fail(err, "--resume %s: the run is at step %lld of its %d: give --steps above %lld to train it further",
                    given->resume, (long long)r->st.step, r->rc.steps, (long long)r->st.step);
    return 0;
}

// The ranks of a run must run the same command on the same data: every setting as it would be typed, then the
// shards' names and sizes, compared with rank 0's (by hash, dist.h). 0, or -1 naming the first rank that differs.
static int run_ranks_agree(const RunConfig* rc, const DataLoader* train, const DataLoader* val, char* err) {
    std::string text;
    if (!train) {
        RunConfig copy = *rc;
        Flag flags[64];
        char value[600];
        for (int i = 0, n = run_flags(&copy, flags); i < n; i++) {
            flag_value_text(&flags[i], value, sizeof(value));
            text += std::string(flags[i].name) + " " + value + "\n";
        }
    }
    for (const DataLoader* dl : {train, val})
        for (int i = 0; dl && i < dl->num_shards; i++)
            text += std::string(dl->paths[i]) + " " + std::to_string(dl->shard_tokens[i]) + "\n";
    int r = dist_first_differing(text.data(), text.size());
    if (r > 0 && !train) return fail(err, "rank %d has other settings than rank 0: every rank must run the same command", r);
    if (r > 0) return fail(err, "rank %d reads other data than rank 0 (the shards' names or sizes differ): every rank "
                           "must see the same files", r);
    return 0;
}

static int run_open(Run* r, const RunConfig* rc, const OptimizerConfig* oc, Device dev, char* err) {
    if (run_ranks_agree(rc, NULL, NULL, err)) return -1;  // before any other exchange between ranks
    r->rc = *rc;
    r->oc = *oc;
    r->dev = dev;
    r->st.best_val_loss = r->st.last_val_loss = INFINITY;
    r->checkpoint_step = -1;
    if (r->rc.resume[0]) {  // the checkpoint's settings win (but RESUMABLE's), so it is the same run
        if (run_resume_settings(r, rc, err)) return -1;
    } else {
        if (run_config_check(&r->rc, "", err)) return -1;
        if (gpt2_config_preset(&r->cfg, r->rc.model, err)) return -1;
        if (r->rc.layers > 0) r->cfg.num_layers = r->rc.layers;
        if (r->rc.heads > 0) r->cfg.num_heads = r->rc.heads;
        if (r->rc.channels > 0) r->cfg.channels = r->rc.channels;
        if (r->rc.init_from[0]) {
            if (init_config_from(r->rc.init_from, &r->cfg, err)) return -1;
            snprintf(r->rc.model, sizeof(r->rc.model), "from-file");  // the header names the file's shape
        }
    }
    run_config_resolve(&r->rc, dev);
    const RunConfig* c = &r->rc;
    if (gpt2_config_check(&r->cfg, err)) return -1;
    if (r->cfg.vocab_size != GPT2_VOCAB_SIZE)  // the loader's ids are GPT-2's: a smaller table would be read past
        return fail(err, "%s: vocabulary of %d tokens, but the data are GPT-2 tokens (%d)",
                    c->resume[0] ? c->resume : c->init_from[0] ? c->init_from : "model", r->cfg.vocab_size,
                    GPT2_VOCAB_SIZE);
    if (c->seq_len > r->cfg.max_seq_len)
        return fail(err, "--seq-len %d: longer than the model's context %d (give --seq-len %d or less)", c->seq_len,
                    r->cfg.max_seq_len, r->cfg.max_seq_len);
    if (run_memory_check(r, dev, err)) return -1;
    r->sched = {SCHEDULE_COSINE, c->warmup, c->steps, c->final_lr_frac, c->cooldown_frac};
    if (strcmp(c->schedule, "wsd") == 0) r->sched.kind = SCHEDULE_WSD;  // the names are the flag table's
    else if (strcmp(c->schedule, "constant") == 0) r->sched.kind = SCHEDULE_CONSTANT;

    char train_pattern[DATA_PATH_LEN], val_pattern[DATA_PATH_LEN];
    if (resolve_data(c, train_pattern, val_pattern, err)) return -1;
    uint64_t seed = (uint64_t)c->seed;
    if (dataloader_init(&r->train, train_pattern, c->batch, c->seq_len, seed, true, err, dist.rank, dist.ranks)) return -1;
    r->have_train = true;
    if (dataloader_init(&r->val, val_pattern, c->batch, c->seq_len, seed, false, err, dist.rank, dist.ranks)) return -1;
    r->have_val = true;
    if (run_ranks_agree(c, &r->train, &r->val, err)) return -1;
    int64_t val_batches = 0, global = (int64_t)c->batch * dist.ranks * c->seq_len;  // whole batches: evaluation never wraps
    for (int i = 0; i < r->val.num_shards; i++) val_batches += (r->val.shard_tokens[i] - 1) / global;
    if (val_batches < r->rc.eval_batches) {
        printf("validation holds %lld batches of %d x %d: evaluating on those (not %d)\n", (long long)val_batches,
               c->batch, c->seq_len, r->rc.eval_batches);
        r->rc.eval_batches = (int)val_batches;
    }

    gpt2_build(&r->model, &r->cfg, c->batch, c->seq_len, dev, (uint64_t)c->seed, run_kernels(c));
    r->have_model = true;
    step_graph_init(&r->graph, c->cuda_graph == 1);
    if (optimizer_init(&r->opt, &r->model, &r->oc, err, dist.rank, dist.ranks)) return -1;
    r->have_opt = true;
    r->rng = rng_make((uint64_t)c->seed + 1);
    if (c->init_from[0] && !c->resume[0] && init_weights_from(c->init_from, &r->model, err)) return -1;
    if (c->resume[0]) {
        if (checkpoint_load(c->resume, &r->model, &r->opt, &r->st, err, false)) return -1;  // peeked: checksums held
        DataPosition pos = {r->st.data_epoch, r->st.data_shard, r->st.data_offset};
        if (dataloader_seek(&r->train, pos, err)) return -1;
        r->rng.state = r->st.rng_state;
        printf("resumed from %s at step %lld of %d\n", c->resume, (long long)r->st.step, c->steps);
    }
    if (c->sample_every > 0 && dist_root()) {
        char tok_err[ERR_LEN];
        r->have_tok = tokenizer_load_default(&r->tok, tok_err) == 0;
        if (!r->have_tok) printf("no samples: %s\n", tok_err);
    }

    char run_dir[768];
    snprintf(run_dir, sizeof(run_dir), "%s/%s", c->out_dir, c->run_name);
    snprintf(r->ckpt_path, sizeof(r->ckpt_path), "%s/checkpoint.bin", run_dir);
    int status = 0;  // rank 0 writes the files; every rank learns whether it could
    if (dist_root()) {  // a resumed run appends to its logs, once they are cut back to the checkpoint's step
        status = make_dirs(run_dir, err);
        if (status == 0) status = runlog_open(&r->log, run_dir, c->resume[0] ? r->st.step : -1, err);
    }
    dist_broadcast(&status, sizeof(status));
    if (status) dist_broadcast(err, ERR_LEN);
    return status;
}

// A diverged run stops, and says truthfully what it leaves: the checkpoint it wrote last (always finite: each
// step's parameters are checked before a checkpoint can be written), the one it resumed from, or none.
static int run_diverged(Run* r, RunResult* res, int64_t step, const char* what, double bad, char* err) {
    res->status = 1;
    char kept[1200];
    if (r->checkpoint_step >= 0)
        snprintf(kept, sizeof(kept), "the last good checkpoint, %s at step %lld, is kept", r->ckpt_path,
                 (long long)r->checkpoint_step);
    else if (r->rc.resume[0])
        snprintf(kept, sizeof(kept), "no checkpoint written since the one resumed from, %s, which is unchanged", r->rc.resume);
    else snprintf(kept, sizeof(kept), "no checkpoint had been written yet");
    return fail(err, "step %lld: the %s is %s; stopping (%s)", (long long)step, what, isnan(bad) ? "NaN" : "infinite", kept);
}

// validation loss at this step: logs it, records it, checks the target. 1 when the target is met, 0 to go on,
// -1 when the loss is not finite (the run stops).
static int run_evaluate(Run* r, int64_t step, RunResult* res, char* err) {
    float vl = evaluate(&r->model, &r->val, r->rc.eval_batches, err);
    TrainState* st = &r->st;
    runlog_eval(&r->log, res, step, vl, st->tokens, st->train_seconds);
    if (!isfinite(vl)) return run_diverged(r, res, step, "validation loss", vl, err);
    st->last_val_loss = vl;
    if (vl < st->best_val_loss) st->best_val_loss = vl;
    if (r->rc.target_loss > 0 && vl <= r->rc.target_loss && res->tokens_to_target <= 0) {
        res->tokens_to_target = st->tokens;
        res->seconds_to_target = st->train_seconds;
        printf("target val_loss %.4f reached at step %lld: %.0f tokens, %.1fs of training\n", r->rc.target_loss,
               (long long)step, st->tokens, st->train_seconds);
        return 1;
    }
    return 0;
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
    RunConfig stored = r->rc;  // the global batch: every rank's rows (a checkpoint resumes on any rank count)
    stored.batch *= dist.ranks;
    if (checkpoint_save(r->ckpt_path, &r->model, &r->opt, st, &stored, sizeof(stored), err)) return -1;
    r->checkpoint_step = step;
    return 0;
}

// One optimizer step (all micro-batches). Returns 0, or -1 (data error, or a non-finite loss or gradient).
static int run_train_step(Run* r, int64_t step, RunResult* res, char* err) {
    const RunConfig* c = &r->rc;
    int B = c->batch, T = c->seq_len;
    double t0 = device_clock(r->dev);
    gpt2_zero_grad(&r->model);
    double loss_sum = 0.0;
    for (int micro = 0; micro < c->grad_accum; micro++) {  // the mean over every rank's B·T tokens of each
        if (dataloader_next(&r->train, err)) return -1;
        float loss_scale = 1.0f / ((float)B * T * c->grad_accum * dist.ranks);  // dL/dloss_i: L is the mean
        loss_sum += step_micro(&r->graph, &r->model, r->train.inputs, r->train.targets, B, T, loss_scale);
    }
    dist_sum(r->dev, r->model.params[0].grad, r->model.num_parameters);  // every rank: the whole batch's gradient
    dist_sum_doubles(&loss_sum, 1);
    float loss = (float)(loss_sum / c->grad_accum / dist.ranks);
    float lr_mult = lr_multiplier(&r->sched, (int)step);
    bool health = c->health_every > 0 && (step + 1) % c->health_every == 0;
    double t1 = device_clock(r->dev);  // the backward's queued kernels are done: not optimizer time
    if (!isfinite(loss)) return run_diverged(r, res, step + 1, "loss", loss, err);
    double norm = optimizer_step(&r->opt, &r->model, lr_mult, health);
    double t2 = device_clock(r->dev);
    if (!isfinite(norm)) return run_diverged(r, res, step + 1, "gradient norm", norm, err);
    // the updated parameters, checked before any checkpoint can hold them (one pass, a norm's cost)
    double params, matrix_rms = params_norms(&r->opt, r->model.params[0].data, r->model.num_parameters, &params);
    if (!isfinite(params)) return run_diverged(r, res, step + 1, "norm of the updated parameters", params, err);
    // the health measurement is not training time
    double dt = t2 - t0 - r->opt.health_seconds, tokens = (double)B * T * c->grad_accum * dist.ranks;
    if (health) runlog_health(&r->log, res, step + 1, &r->opt);
    r->st.train_seconds += dt;
    r->st.tokens += tokens;
    res->optimizer_seconds += t2 - t1 - r->opt.health_seconds;
    res->final_train_loss = loss;
    runlog_step(&r->log, res, step, c->steps, loss, lr_mult * r->oc.lr, lr_mult, norm, matrix_rms, dt, tokens,
                r->st.tokens, r->st.train_seconds, gpt2_flops_per_token(&r->cfg, T), r->dev);
    return 0;
}

// Interruption: Ctrl-C (SIGINT), SIGTERM (what a batch system sends before it kills a job) or SIGHUP (the terminal
// closed, an ssh connection dropped) stops the run at the next step boundary with a checkpoint, as --stop-at does;
// ./train then exits with 128 + the signal. The handler resets itself as it runs (SA_RESETHAND), so a second signal
// ends the process at once. A signal the shell set to be ignored (SIGINT for a background job, SIGHUP under nohup)
// stays ignored. Outside the step loop the signals do what they did before.
static volatile sig_atomic_t run_signal = 0;
static const int RUN_SIGNALS[3] = {SIGINT, SIGTERM, SIGHUP};
static struct sigaction run_signal_before[3];
static void run_on_signal(int sig) { run_signal = sig; }
static int run_signal_exit_status() { return 128 + (run_signal ? run_signal : SIGTERM); }
static const char* run_stopped_by() {
    return run_signal == SIGINT ? "on SIGINT (Ctrl-C)" : run_signal == SIGTERM ? "on SIGTERM"
           : run_signal == SIGHUP ? "on SIGHUP" : "on another rank's signal";
}
static void run_catch_signals(bool catching) {
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = run_on_signal;
    sa.sa_flags = SA_RESETHAND;
    sigemptyset(&sa.sa_mask);
    for (int i = 0; i < 3; i++) {
        struct sigaction* before = &run_signal_before[i];
        if (!catching) sigaction(RUN_SIGNALS[i], before, NULL);
        else if (sigaction(RUN_SIGNALS[i], NULL, before) == 0 && before->sa_handler != SIG_IGN)
            sigaction(RUN_SIGNALS[i], &sa, NULL);
    }
}
// whether a signal asked the run to stop: on any rank, so that every rank stops at the same step (called once a
// step by every rank)
static bool run_interrupted() {
    double asked = run_signal != 0;
    dist_sum_doubles(&asked, 1);
    return asked > 0;
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
    runlog_header(&r->rc, &r->model, &r->opt, r->dev);
    run_catch_signals(true);
    const RunConfig* c = &r->rc;
    int status = 0;
    const int64_t first_step = r->st.step;
    for (int64_t step = first_step; step <= c->steps; step++) {
        bool last = step == c->steps;
        bool resumed_here = c->resume[0] && step == first_step;  // evaluated before the checkpoint was written
        if ((step % c->eval_every == 0 && !resumed_here) || last) {
            int reached = run_evaluate(r, step, res, err);
            if (reached < 0) {
                status = -1;
                break;
            }
            if (reached) last = true;
        }
        bool signalled = run_interrupted() && !last;
        bool interrupt = (c->stop_at > 0 && step == c->stop_at && !last) || signalled;
        if (r->have_tok && step > 0 && step % c->sample_every == 0)
            print_sample(&r->model, &r->tok, c->sample_tokens, &r->rng);
        if ((c->checkpoint_every > 0 && step > first_step && step % c->checkpoint_every == 0) || last || interrupt)
            if ((status = run_checkpoint(r, step, err)) != 0) break;
        if (interrupt)
            printf("stopping at step %lld %s; continue with --resume %s\n", (long long)step,
                   signalled ? run_stopped_by() : "as asked (--stop-at)", r->ckpt_path);
        if (signalled) res->status = 2;
        if (last || interrupt) break;
        if ((status = run_train_step(r, step, res, err)) != 0) break;
    }
    run_catch_signals(false);
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
