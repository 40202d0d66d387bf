// compare.h: the comparison that is muongpt's main job. Several optimizers train the same model from the same
// initial weights on the same data order, with the same token budget and schedule shape, each at its own
// learning rate (optionally the best of a small grid, so no optimizer loses by a badly chosen lr). Then a
// side-by-side table (Markdown and CSV) and plots: validation loss against tokens and against training time,
// and the optimizer-health metrics over the run.
// Flow: RunConfig + a list of optimizers -> run_training for each -> compare.md, compare.csv, *.png in --out
// (and spectral.md, a base-by-p grid, when spectral-family runs are among them).
#pragma once
#include <string>
#include <vector>
#include "../run.h"
#include "plot.h"

// "spectral" stands for the Delving paper's eight runs: U Σ^p Vᵀ for p in {0, ¼, ½, 1}, on the momentum and
// on Adam's RMS-normalized update (arXiv 2602.04669)
static const char* SPECTRAL_PRESET = "p=0,p=0.25,p=0.5,p=1,rms-p=0,rms-p=0.25,rms-p=0.5,rms-p=1";

struct CompareEntry {
    OptimizerConfig oc;   // as run (the lr the sweep kept)
    RunResult res;
    bool failed;          // stopped early (non-finite loss) or could not run
    char error[ERR_LEN];
};

// the first evaluation at or below `level`: its tokens and training seconds (false if never)
static bool reached(const RunResult* r, double level, double* tokens, double* seconds) {
    for (int e = 0; e < r->num_evals; e++)
        if (r->eval_loss[e] <= level) {
            *tokens = r->eval_tokens[e];
            *seconds = r->eval_seconds[e];
            return true;
        }
    return false;
}

// one run of one optimizer under its own folder; a failed run is reported, not fatal. With several ranks only a
// diverged run is (every rank sees the same losses, so every rank goes on to the next run together); any other
// failure may be one rank's alone, and ends the job.
static void compare_run(const RunConfig* rc, const OptimizerConfig* oc, const char* run_name, Device dev,
                        CompareEntry* out) {
    RunConfig one = *rc;
    snprintf(one.run_name, sizeof(one.run_name), "%.63s", run_name);
    out->oc = *oc;
    out->failed = run_training(&one, oc, dev, &out->res, out->error) != 0;
    if (out->failed && out->res.status != 1 && dist.ranks > 1) die("run %s: %s", run_name, out->error);
    if (out->failed) printf("run %s failed: %s\n", run_name, out->error);
}

// With --sweep-lr: the peak lr times 0.5, 1 and 2 (the matrices' lr; an AdamW run's only lr), full budget each;
// keeps the run with the lowest final validation loss.
static void compare_optimizer(const RunConfig* rc, const OptimizerConfig* oc, Device dev, CompareEntry* best,
                              FILE* sweep_log) {
    if (!rc->sweep_lr) {
        compare_run(rc, oc, oc->name, dev, best);
        return;
    }
    const float mults[3] = {0.5f, 1.0f, 2.0f};
    bool have = false;
    for (int k = 0; k < 3; k++) {
        OptimizerConfig tried = *oc;
        tried.lr = oc->lr * mults[k];
        if (tried.matrix == MATRIX_ADAMW) tried.adam_lr = tried.lr;
        char name[96];
        snprintf(name, sizeof(name), "%s@lr%.3g", oc->name, tried.lr);
        CompareEntry* e = (CompareEntry*)xcalloc(1, sizeof(CompareEntry));
        compare_run(rc, &tried, name, dev, e);
        fprintf(sweep_log, "| %s | %.3g | %s |\n", oc->name, tried.lr,
                e->failed ? "diverged" : (std::to_string(e->res.final_val_loss)).c_str());
        if (!e->failed && (!have || e->res.final_val_loss < best->res.final_val_loss)) {
            *best = *e;
            snprintf(best->res.name, sizeof(best->res.name), "%s", oc->name);
            have = true;
        }
        if ((!have && k == 2) || e->res.status == 2) *best = *e;  // all diverged: the last; or the signal's run
        free(e);
        if (best->res.status == 2) return;  // stopped by a signal: no more runs
    }
}

// the comparison's table, as Markdown (to stdout and compare.md) and CSV
static void compare_write_table(const RunConfig* rc, const std::vector<CompareEntry>& runs, double level,
                                const char* out_dir, const char* machine) {
    char path[1024];
    snprintf(path, sizeof(path), "%s/compare.csv", out_dir);
    FILE* csv = fopen(path, "w");
    snprintf(path, sizeof(path), "%s/compare.md", out_dir);
    FILE* md = fopen(path, "w");
    if (!csv || !md) die("%s: cannot write the comparison's table", out_dir);
    fprintf(csv, "optimizer,lr,adam_lr,final_val_loss,best_val_loss,tokens_to_level,seconds_to_level,train_seconds,"
                 "tokens,tokens_per_s,optimizer_share,status\n");
    char header[1024];
    snprintf(header, sizeof(header),
             "model %s, batch %d x %d x %d, %d steps, %s schedule, seed %lld, on %s, %s precision, %s products. Same "
             "initial weights and data order for every run. \"to %.3f\": the first evaluation at or below that "
             "validation loss%s.\n\n",
             rc->model, rc->batch, rc->seq_len, rc->grad_accum, rc->steps, rc->schedule, rc->seed, machine,
             rc->precision, rc->matmul, level,
             rc->target_loss > 0 ? " (--target-loss)" : " (the level every run reached)");
    const char* columns = "| optimizer | lr (matrices) | final val loss | best val loss | tokens to %.3f | train time to "
                          "%.3f | train time | tokens/s | optimizer share of step |\n"
                          "|---|---|---|---|---|---|---|---|---|\n";
    for (FILE* f : {stdout, md}) {
        if (f == md) fprintf(f, "# Optimizer comparison\n\n");
        fprintf(f, "%s", header);
        fprintf(f, columns, level, level);
    }
    for (const CompareEntry& e : runs) {
        const RunResult* r = &e.res;
        double tok = -1, sec = -1;
        bool ok = reached(r, level, &tok, &sec);
        char to_tok[32] = "not reached", to_sec[32] = "-", status[32] = "ok";
        if (ok) {
            snprintf(to_tok, sizeof(to_tok), "%.0f", tok);
            snprintf(to_sec, sizeof(to_sec), "%.1fs", sec);
        }
        if (e.failed) snprintf(status, sizeof(status), r->status == 1 ? "diverged" : "failed");
        double tok_s = r->train_seconds > 0 ? r->tokens / r->train_seconds : 0;
        double share = r->train_seconds > 0 ? r->optimizer_seconds / r->train_seconds : 0;
        char label[96];
        snprintf(label, sizeof(label), "%s%s%s%s", r->name, e.failed ? " (" : "", e.failed ? status : "",
                 e.failed ? ")" : "");
        for (FILE* f : {stdout, md})
            fprintf(f, "| %s | %.3g | %.4f | %.4f | %s | %s | %.1fs | %.0f | %.1f%% |\n", label, e.oc.lr, r->final_val_loss, r->best_val_loss, to_tok, to_sec,
                    r->train_seconds, tok_s, 100 * share);
        fprintf(csv, "%s,%g,%g,%.6f,%.6f,%.0f,%.3f,%.3f,%.0f,%.1f,%.4f,%s\n", r->name, e.oc.lr,
                e.oc.matrix == MATRIX_ADAMW ? e.oc.lr : e.oc.adam_lr, r->final_val_loss, r->best_val_loss, tok, sec,
                r->train_seconds, r->tokens, tok_s, share, status);
    }
    fclose(csv);
    fclose(md);
}

// The spectral family as the Delving paper lays it out: one row per base (momentum; Adam's RMS-normalized
// update), one column per p, for the runs named p=P or rms-p=P (no suffix). Two grids: the final validation
// loss, and the largest rise of the validation loss from one evaluation to the next (0 when it only fell), a
// rough measure of stability within one run. Written to spectral.md and stdout; nothing when no run fits.
static void compare_write_spectral_grid(const std::vector<CompareEntry>& runs, const char* out_dir) {
    const float ps[4] = {0.0f, 0.25f, 0.5f, 1.0f};
    const CompareEntry* cell[2][4] = {};  // [base: 0 momentum, 1 RMS][p]
    int found = 0;
    for (const CompareEntry& e : runs) {
        int rms = strncmp(e.oc.name, "rms-", 4) == 0;
        float p;
        int used = 0;
        if (sscanf(e.oc.name + 4 * rms, "p=%f%n", &p, &used) != 1 || e.oc.name[4 * rms + used] != 0) continue;
        for (int j = 0; j < 4; j++)
            if (p == ps[j]) {
                cell[rms][j] = &e;
                found++;
            }
    }
    if (found == 0) return;
    char path[1024];
    snprintf(path, sizeof(path), "%s/spectral.md", out_dir);
    FILE* md = fopen(path, "w");
    if (!md) die("%s: cannot write", path);
    fprintf(md, "# The spectral family U Σ^p Vᵀ (arXiv 2602.04669)\n\n");
    const char* base_name[2] = {"momentum", "Adam RMS"};
    for (int grid = 0; grid < 2; grid++)
        for (FILE* f : {stdout, md}) {
            fprintf(f, "\n%s\n\n| base | p = 0 | p = 0.25 | p = 0.5 | p = 1 |\n|---|---|---|---|---|\n",
                    grid == 0 ? "Final validation loss:" : "Largest rise of the validation loss between evaluations:");
            for (int b = 0; b < 2; b++) {
                fprintf(f, "| %s |", base_name[b]);
                for (int j = 0; j < 4; j++) {
                    const CompareEntry* e = cell[b][j];
                    if (!e) fprintf(f, " - |");
                    else if (e->failed) fprintf(f, " %s |", e->res.status == 1 ? "diverged" : "failed");
                    else if (grid == 0) fprintf(f, " %.4f |", e->res.final_val_loss);
                    else {
                        double rise = 0.0;
                        for (int k = 1; k < e->res.num_evals; k++)
                            rise = fmax(rise, e->res.eval_loss[k] - e->res.eval_loss[k - 1]);
                        fprintf(f, " %.4f |", rise);
                    }
                }
                fprintf(f, "\n");
            }
        }
    fclose(md);
}

// validation loss against tokens and against training time; the health metrics against steps
static void compare_plots(const std::vector<CompareEntry>& runs, const char* out_dir) {
    char path[1024], err[ERR_LEN];
    std::vector<PlotSeries> s;
    const int n = (int)runs.size();
    struct Figure { const char* file; const char* title; const char* xlabel; const char* ylabel; int logx, logy; };
    const Figure figs[6] = {
        {"val_loss_tokens.png", "Validation loss against training tokens", "tokens", "val loss", 0, 0},
        {"val_loss_time.png", "Validation loss against training time", "training seconds", "val loss", 0, 0},
        {"health_stable_rank.png", "Update stable rank (mean over hidden matrices)", "step", "stable rank", 0, 1},
        {"health_effective_rank.png", "Update effective rank (mean over hidden matrices)", "step", "effective rank", 0, 0},
        {"health_ortho_error.png", "Update orthogonality error |Q^T Q - I|_F", "step", "ortho error", 0, 1},
        {"health_grad_cosine.png", "Cosine between gradient and applied update", "step", "cosine", 0, 0},
    };
    for (int f = 0; f < 6; f++) {
        s.clear();
        for (int i = 0; i < n; i++) {
            const RunResult* r = &runs[i].res;
            PlotSeries ps;
            ps.label = r->name;
            if (f < 2) {
                ps.x = f == 0 ? r->eval_tokens : r->eval_seconds;
                ps.y = r->eval_loss;
                ps.n = r->num_evals;
            } else {
                ps.x = r->health_step;
                ps.y = f == 2 ? r->health_stable_rank : f == 3 ? r->health_effective_rank
                       : f == 4 ? r->health_ortho_error : r->health_grad_cosine;
                ps.n = r->num_health;
            }
            if (ps.n > 0) s.push_back(ps);
        }
        if (s.empty()) continue;
        PlotSpec spec = {figs[f].title, figs[f].xlabel, figs[f].ylabel, figs[f].logx, figs[f].logy, 900, 560};
        snprintf(path, sizeof(path), "%s/%s", out_dir, figs[f].file);
        if (plot_lines(path, &spec, s.data(), (int)s.size(), err)) printf("plot skipped: %s\n", err);
        else printf("wrote %s\n", path);
    }
}

static int compare_main(const RunConfig* rc, Device dev) {
    std::string list = rc->optimizers;
    size_t at = list.find("spectral");
    if (at != std::string::npos) list.replace(at, 8, SPECTRAL_PRESET);
    char err[ERR_LEN];
    std::vector<OptimizerConfig> configs;
    size_t start = 0;
    while (start <= list.size()) {
        size_t comma = list.find(',', start);
        std::string name = list.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
        if (!name.empty()) {
            OptimizerConfig oc;
            if (optimizer_config_from_run(rc, name.c_str(), &oc, err)) die("--optimizers: %s", err);
            for (const OptimizerConfig& other : configs)  // each run has its own folder, named after it
                if (strcmp(other.name, oc.name) == 0) die("--optimizers: '%s' named twice", oc.name);
            configs.push_back(oc);
        }
        if (comma == std::string::npos) break;
        start = comma + 1;
    }
    if (configs.empty()) die("--optimizers: no optimizer named");
    if (dist_root() && make_dirs(rc->out_dir, err)) die("%s", err);
    char sweep_path[1024];  // rank 0 writes the files (every rank runs every run)
    snprintf(sweep_path, sizeof(sweep_path), "%s/sweep.md", rc->out_dir);
    FILE* sweep_log = fopen(dist_root() ? sweep_path : "/dev/null", "w");
    if (!sweep_log) die("%s: cannot write", sweep_path);
    fprintf(sweep_log, "| optimizer | lr | final val loss |\n|---|---|---|\n");

    printf("compare: %zu optimizers, each from the same initial weights and data order%s\n", configs.size(),
           rc->sweep_lr ? ", best of lr x {0.5, 1, 2}" : "");
    std::vector<CompareEntry> runs(configs.size());
    size_t done = 0;
    while (done < configs.size() && (done == 0 || runs[done - 1].res.status != 2)) {
        compare_optimizer(rc, &configs[done], dev, &runs[done], sweep_log);
        done++;
    }
    fclose(sweep_log);
    if (runs[done - 1].res.status == 2) {  // a signal stopped a run (run.h): its checkpoint is written; no table
        printf("compare: stopped by a signal in run %zu of %zu (%s, resumable with ./train --resume); no table\n",
               done, configs.size(), runs[done - 1].res.name);
        return run_signal_exit_status();
    }
    int failed = 0;
    for (const CompareEntry& e : runs) failed |= e.failed;
    if (!dist_root()) return failed;
    if (!rc->sweep_lr) remove(sweep_path);

    // the common level: the target if given, else the highest of the runs' best losses (all reached it)
    double level = rc->target_loss;
    if (level <= 0) {
        level = -INFINITY;
        for (const CompareEntry& e : runs)
            if (!e.failed && isfinite(e.res.best_val_loss)) level = fmax(level, e.res.best_val_loss);
        if (!isfinite(level)) level = 0;
    }
    char machine[512];
    device_describe(dev, machine, sizeof(machine));
    if (dist.ranks > 1)  // the table's batch is each rank's
        snprintf(machine + strlen(machine), sizeof(machine) - strlen(machine), ", x %d ranks (each its own batch)", dist.ranks);
    compare_write_table(rc, runs, level, rc->out_dir, machine);
    compare_write_spectral_grid(runs, rc->out_dir);
    compare_plots(runs, rc->out_dir);
    printf("wrote %s/compare.md and %s/compare.csv\n", rc->out_dir, rc->out_dir);
    return failed;
}
