// runlog.h: what a run reports: the start-up lines (the run, its memory, the optimizer's groups), one greppable
// line per step (loss, lr, norm, ms, tokens/s, MFU, ETA) and per evaluation and health measurement, the same in
// OUT/RUN/log.csv and health.csv (each row flushed whole), and RunResult, what the comparison's tables and plots
// are drawn from. With several ranks, rank 0 alone has the files (the others' RunLog is closed: no rows).
// Flow: run.h calls these at each step; report/compare.h reads the RunResults.
#pragma once
#include <string>
#include "settings.h"

// What a run leaves behind, for the logs and for the comparison's table and plots.
#define MAX_EVALS 512
struct RunResult {
    char name[64];
    int status;                 // 0 finished; 1 stopped on a non-finite loss; 2 stopped by a signal (run.h)
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

// The run's two CSV files, and a moving window over the last ~30 s of steps for tokens/s and the ETA.
struct RunLog {
    FILE* csv;         // log.csv: one line per step and per evaluation
    FILE* health_csv;  // health.csv: one line per hidden matrix per measurement
    double window_tokens, window_seconds;
};

// A resumed run's CSV, cut back to the checkpoint: the header, then every whole row (ending in a newline) whose
// step, its first field, is at most `step`. A row torn by a kill and the rows of steps the resumed run will redo
// go; the file is rewritten through a temp file and a rename. 0, or -1 with a message naming the file.
static int csv_cut_to_step(const char* path, int64_t step, char* err) {
    FILE* f = fopen(path, "rb");
    if (!f) return 0;  // nothing logged yet: the run starts the file
    std::string text, kept;
    char buf[65536];
    size_t got;
    while ((got = fread(buf, 1, sizeof(buf), f)) > 0) text.append(buf, got);
    fclose(f);
    int dropped = 0;
    size_t at = 0;
    for (bool header = true; at < text.size(); header = false) {
        size_t nl = text.find('\n', at);
        if (nl == std::string::npos) {  // torn: no newline
            dropped++;
            break;
        }
        std::string line = text.substr(at, nl + 1 - at);
        at = nl + 1;
        char* end = NULL;
        long long row_step = strtoll(line.c_str(), &end, 10);
        if (header || (end != line.c_str() && *end == ',' && row_step <= step)) kept += line;
        else dropped++;
    }
    if (dropped == 0) return 0;
    std::string tmp = std::string(path) + ".tmp";
    FILE* out = fopen(tmp.c_str(), "wb");
    if (!out) return fail(err, "%s: cannot write (%s)", tmp.c_str(), strerror(errno));
    bool ok = fwrite(kept.data(), 1, kept.size(), out) == kept.size();
    if (fclose(out) != 0 || !ok || rename(tmp.c_str(), path) != 0)
        return fail(err, "%s: cannot rewrite (%s)", path, strerror(errno));
    printf("%s: %d row%s after the checkpoint's step %lld (or torn) removed\n", path, dropped, dropped == 1 ? "" : "s",
           (long long)step);
    return 0;
}

// Opens run_dir/log.csv and health.csv: new with their headers for a fresh run (resume_step < 0), appended to for
// a run resumed at resume_step, once cut back to it. Each row is written whole and flushed, so a kill loses at
// most the row being written, and a resume removes that.
static int runlog_open(RunLog* log, const char* run_dir, int64_t resume_step, char* err) {
    memset(log, 0, sizeof(*log));
    bool fresh = resume_step < 0;
    const char* names[2] = {"log.csv", "health.csv"};
    const char* headers[2] = {
        "step,tokens,train_loss,val_loss,lr_mult,grad_norm,ms,tokens_per_s,train_seconds,matrix_rms\n",
        "step,matrix,optimizer,stable_rank,effective_rank,ortho_error,grad_cosine,update_rms,weight_spectral_norm\n"};
    FILE** files[2] = {&log->csv, &log->health_csv};
    for (int k = 0; k < 2; k++) {
        char path[1024];
        snprintf(path, sizeof(path), "%s/%s", run_dir, names[k]);
        if (!fresh && csv_cut_to_step(path, resume_step, err)) return -1;
        *files[k] = fopen(path, fresh ? "w" : "a");
        if (!*files[k]) return fail(err, "%s: cannot write (%s)", path, strerror(errno));
        if (fresh || (fseek(*files[k], 0, SEEK_END) == 0 && ftell(*files[k]) == 0)) fputs(headers[k], *files[k]);
        fflush(*files[k]);
    }
    return 0;
}

static void runlog_close(RunLog* log) {
    if (log->csv) fclose(log->csv);
    if (log->health_csv) fclose(log->health_csv);
    log->csv = log->health_csv = NULL;
}

// The start-up lines: the run's shape and budget, the memory it holds, and which optimizer updates what.
static void runlog_header(const RunConfig* c, const GPT2* m, const Optimizer* opt, Device dev) {
    const GPT2Config* cfg = &m->config;
    char ranks[160] = "", ranks_batch[32] = "";  // with several ranks: ", 2 ranks over MPI (...)" and " x 2"
    if (dist.ranks > 1) {
        char described[150];
        dist_describe(dev, described, sizeof(described));
        snprintf(ranks, sizeof(ranks), ", %s", described);
        snprintf(ranks_batch, sizeof(ranks_batch), " x %d", dist.ranks);
    }
    printf("run %s: model %s (%.2fM parameters; L %d, NH %d, C %d, context %d), batch %d x %d x %d%s = %lld "
           "tokens/step, %d steps, %s schedule, %d warmup, on %s%s, %s precision, %s products%s, seed %lld\n", c->run_name,
           c->model,
           m->num_parameters / 1e6, cfg->num_layers, cfg->num_heads, cfg->channels, cfg->max_seq_len, c->batch,
           c->seq_len, c->grad_accum, ranks_batch, (long long)c->batch * c->seq_len * c->grad_accum * dist.ranks,
           c->steps, c->schedule, c->warmup, device_name(dev), ranks, c->precision, c->matmul,
           c->cuda_graph ? ", the micro-step as a CUDA graph" : "", c->seed);
    if (dist.ranks > 1)
        printf("ranks: each rank reads %d of every %d sequences; Muon's matrices are dealt among the ranks by Newton-"
               "Schulz cost (each orthogonalizes its own), AdamW's moments are split in %d shares (ZeRO-1); the updated "
               "parameters are gathered after each step\n", c->batch, c->batch * dist.ranks, dist.ranks);
    const char* attention = dev == DEV_CPU ? "the CPU's reference attention"
                            : attention_uses_flash(dev, m->kernels.attention) ? "flash attention, no T x T buffers"
                                                                              : "simple attention, T x T buffers";
    char copy[128] = "";  // bf16 precision: the layers' copy of the weights; at 16-bit storage cuBLASLt's workspace
    if (m->weight_arena.capacity)
        snprintf(copy, sizeof(copy), ", their bf16 copy %.1f MiB", m->weight_arena.capacity / 1048576.0);
    if (gpt2_storage16(dev, m->kernels))
        snprintf(copy + strlen(copy), sizeof(copy) - strlen(copy), ", cuBLASLt's workspace %.1f MiB",
                 CUBLASLT_WORKSPACE_BYTES / 1048576.0);
    printf("memory (%s): parameters %.1f MiB%s, gradients %.1f MiB, optimizer state %.1f MiB, activations %.1f MiB (%s)\n",
           device_name(dev), m->param_arena.capacity / 1048576.0, copy, m->grad_arena.capacity / 1048576.0,
           opt->state.capacity / 1048576.0, (m->act_arena.capacity + m->act_grad_arena.capacity) / 1048576.0,
           attention);
    optimizer_print_groups(opt, stdout);
}

// An evaluation: the line, the CSV row, the result's curve.
static void runlog_eval(RunLog* log, RunResult* res, int64_t step, float val_loss, double tokens, double train_seconds) {
    if (res->num_evals < MAX_EVALS) {
        int e = res->num_evals++;
        res->eval_step[e] = (double)step;
        res->eval_tokens[e] = tokens;
        res->eval_seconds[e] = train_seconds;
        res->eval_loss[e] = val_loss;
    }
    printf("step %lld val_loss %.4f tokens %.0f train_time %.1fs\n", (long long)step, val_loss, tokens, train_seconds);
    if (!log->csv) return;
    fprintf(log->csv, "%lld,%.0f,,%.6f,,,,,%.3f,\n", (long long)step, tokens, val_loss, train_seconds);
    fflush(log->csv);
}

// A training step took dt seconds for `tokens` tokens: the step line (with the moving tokens/s, MFU against the
// device's peak and the ETA over the steps left at the recent rate), the CSV row, and the GPU's peak memory.
static void runlog_step(RunLog* log, RunResult* res, int64_t step, int steps, float loss, float lr, float lr_mult,
                        double norm, double matrix_rms, double dt, double tokens, double total_tokens,
                        double train_seconds, double flops_per_token, Device dev) {
    log->window_tokens += tokens;
    log->window_seconds += dt;
    char eta[32], mfu[32] = "";
    format_duration((steps - step - 1) * log->window_seconds / (log->window_tokens / tokens), eta, sizeof(eta));
    double peak = device_peak_flops(dev);
    if (peak > 0) snprintf(mfu, sizeof(mfu), " mfu %.1f%%", 100.0 * flops_per_token * tokens / dt / (peak * dist.ranks));
    else if (dev == DEV_CUDA) snprintf(mfu, sizeof(mfu), " mfu unknown");  // a GPU not in device_peak_flops's table
    double in_use = device_memory_in_use(dev);
    if (in_use > res->peak_memory) res->peak_memory = in_use;
    printf("step %lld/%d loss %.4f lr %.2e norm %.3f ms %.1f tok/s %.0f%s eta %s\n", (long long)step + 1, steps, loss,
           lr, norm, dt * 1e3, log->window_tokens / log->window_seconds, mfu, eta);
    if (log->window_seconds > 30) log->window_tokens = log->window_seconds = 0;
    if (!log->csv) return;
    fprintf(log->csv, "%lld,%.0f,%.6f,,%.6f,%.6f,%.3f,%.1f,%.3f,%.6f\n", (long long)step + 1, total_tokens, loss,
            lr_mult, norm, dt * 1e3, tokens / dt, train_seconds, matrix_rms);
    fflush(log->csv);
}

// the health of every hidden matrix's update, measured in this step: health.csv and one summary line
static void runlog_health(RunLog* log, RunResult* res, int64_t step, const Optimizer* o) {
    if (!log->health_csv) return;  // measured by rank 0 only
    double sum[4] = {0, 0, 0, 0};
    int count = 0;
    for (int i = 0; i < o->num_slots; i++) {
        if (o->slots[i].kind != PARAM_MATRIX) continue;
        const UpdateHealth* h = &o->health[i];
        fprintf(log->health_csv, "%lld,%s,%s,%.4f,%.4f,%.4f,%.4f,%.4e,%.4f\n", (long long)step, o->slots[i].name,
                o->use_matrix_method[i] ? o->cfg.name : "adamw", h->stable_rank, h->effective_rank, h->ortho_error,
                h->grad_cosine, h->update_rms, h->weight_spectral_norm);
        sum[0] += h->stable_rank;
        sum[1] += h->effective_rank;
        sum[2] += h->ortho_error;
        sum[3] += h->grad_cosine;
        count++;
    }
    fflush(log->health_csv);
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

