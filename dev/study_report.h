// dev/study_report.h: what the study writes once its runs are done: OUT/runs.csv (one row per run), seeds.csv and
// delving.csv (the tables of those parts), and in OUT/summary.md the tables of the four parts with a verdict on each published claim, computed from the numbers
// by the rules stated beside them; PNG plots beside it. The numbers come from the runs' own logs (dev/study.h).
// Flow: dev/study.cpp -> study_report -> summary.md, *.csv, *.png (README's "Study" section quotes them).
#pragma once
#include "../report/heatmap.h"
#include "../report/plot.h"
#include "dev/study.h"

static const char* study_status_name(RunStatus s) {
    return s == RUN_OK ? "ok" : s == RUN_DIVERGED ? "diverged" : s == RUN_FAILED ? "failed" : "not run";
}

static void study_write_runs_csv(const StudySettings* s, const std::vector<StudyRun>& plan, FILE* f) {
    fprintf(f, "part,optimizer,lr,wd,seed,status,final_val_loss,best_val_loss,tokens,train_seconds,wall_seconds,"
               "matrix_rms_end\n");
    for (const StudyRun& r : plan) {
        const RunCurves* c = &r.curves;
        double best = INFINITY, rms = NAN, drift;
        for (double l : c->eval_loss) best = fmin(best, l);
        study_rms_end(c, &rms, &drift);
        fprintf(f, "%s,%s,%g,%g,%lld,%s,%.6f,%.6f,%.0f,%.3f,%.1f,%.6f\n", study_part_name[r.part], r.optimizer.c_str(), r.lr,
                r.wd, s->first_seed + r.seed_index, study_status_name(r.status), study_final_loss(&r),
                c->eval_loss.empty() ? NAN : best, c->eval_tokens.empty() ? 0.0 : c->eval_tokens.back(),
                c->eval_seconds.empty() ? 0.0 : c->eval_seconds.back(), r.wall_seconds, rms);
    }
}

static void study_plot(const char* dir, const char* file, const char* title, const char* xl, const char* yl, int logx,
                       const std::vector<PlotSeries>& s) {
    char path[1024], err[ERR_LEN];
    snprintf(path, sizeof(path), "%s/%s", dir, file);
    PlotSpec spec = {title, xl, yl, logx, 0, 900, 560};
    if (s.empty() || plot_lines(path, &spec, s.data(), (int)s.size(), err)) printf("plot %s skipped\n", file);
}

// "6.1234 ± 0.0123" (n = 1: no spread)
static std::string fmt_ms(MeanStd m, const char* fmt) {
    char a[64], b[64];
    snprintf(a, sizeof(a), fmt, m.mean);
    if (m.n < 2) return a;
    snprintf(b, sizeof(b), fmt, m.std);
    return std::string(a) + " ± " + b;
}

// The sweep: final loss per optimizer and lr, the best lr, the good-lr basin; loss against lr in one plot.
// Returns each optimizer's best lr index (in `opts` order).
static std::vector<int> study_report_sweep(const StudySettings* s, const std::vector<StudyRun>& plan,
                                           const std::vector<std::string>& opts, FILE* md, const char* dir) {
    fprintf(md, "## 1. Learning-rate sweeps (%s, seed %lld)\n\nFinal validation loss at each peak lr (the hidden "
                "matrices' lr; AdamW's only lr), %d lrs a factor 2 apart around each optimizer's default. "
                "\"Good\": within %.2f nats of that optimizer's best.\n\n| optimizer | lrs: final val loss | best lr | "
                "good lrs (span) |\n|---|---|---|---|\n", s->scale[PART_SWEEP].model, s->first_seed, s->lr_points,
            s->good_margin);
    std::vector<int> best(opts.size());
    std::vector<std::vector<double>> xs(opts.size()), ys(opts.size());
    for (size_t o = 0; o < opts.size(); o++) {
        double best_loss;
        best[o] = study_best_index(plan, PART_SWEEP, opts[o], 0, &best_loss);
        std::string cells;
        double lo = INFINITY, hi = 0;
        int good = 0;
        for (int i = 0; i < s->lr_points; i++) {
            const StudyRun* r = study_find(plan, PART_SWEEP, opts[o], i, 0);
            if (!r) continue;
            double l = study_final_loss(r);
            char cell[64];
            if (isfinite(l)) snprintf(cell, sizeof(cell), "%s%.3g: %.4f", cells.empty() ? "" : ", ", r->lr, l);
            else snprintf(cell, sizeof(cell), "%s%.3g: %s", cells.empty() ? "" : ", ", r->lr, study_status_name(r->status));
            cells += cell;
            if (isfinite(l)) {
                xs[o].push_back(r->lr);
                ys[o].push_back(l);
            }
            if (isfinite(l) && l <= best_loss + s->good_margin) {
                good++;
                lo = fmin(lo, r->lr);
                hi = fmax(hi, r->lr);
            }
        }
        const StudyRun* b = best[o] >= 0 ? study_find(plan, PART_SWEEP, opts[o], best[o], 0) : NULL;
        fprintf(md, "| %s | %s | %s | %d (%.0fx) |\n", opts[o].c_str(), cells.c_str(),
                b ? std::to_string(b->lr).substr(0, 8).c_str() : "none", good, good ? hi / lo : 0.0);
    }
    std::vector<PlotSeries> series;
    for (size_t o = 0; o < opts.size(); o++)
        series.push_back({opts[o].c_str(), xs[o].data(), ys[o].data(), (int)xs[o].size()});
    study_plot(dir, "sweep_lr.png", "Final validation loss against the peak learning rate", "peak lr (log)",
               "final val loss", 1, series);
    fprintf(md, "\n![loss against lr](sweep_lr.png)\n\n");
    return best;
}

// The seeds: each optimizer at its best lr over `seeds` seeds; the target every optimizer reaches on average; tokens
// and training time to it. Returns AdamW's and Muon's tokens-to-target ratios (paired by seed) through `ratio`.
static void study_report_seeds(const StudySettings* s, const std::vector<StudyRun>& plan,
                               const std::vector<std::string>& opts, const std::vector<int>& best, FILE* md,
                               const char* dir, MeanStd* muon_ratio, MeanStd* muon_loss, MeanStd* adamw_loss) {
    // the target: the highest of the optimizers' mean final losses, so that each reaches it on average
    double target = -INFINITY;
    std::vector<MeanStd> finals(opts.size());
    for (size_t o = 0; o < opts.size(); o++) {
        std::vector<double> f;
        for (int k = 0; k < s->seeds; k++) {
            const StudyRun* r = best[o] >= 0 ? study_find(plan, PART_SEEDS, opts[o], best[o], k) : NULL;
            if (r && isfinite(study_final_loss(r))) f.push_back(study_final_loss(r));
        }
        finals[o] = mean_std(f);
        if (f.size()) target = fmax(target, finals[o].mean);
    }
    fprintf(md, "## 2. Seeds at the best lr (%d seeds)\n\nSeeds %lld .. %lld (initial weights and data order), the "
                "same for every optimizer. Target: %.4f, the highest mean final loss of any optimizer here, so every "
                "one reaches it on average; tokens and training time to it are interpolated between evaluations "
                "(every %d steps).\n\n| optimizer | lr | final val loss | tokens to %.4f | train time to %.4f | "
                "reached | AdamW's tokens / its tokens |\n|---|---|---|---|---|---|---|\n",
            s->seeds, s->first_seed, s->first_seed + s->seeds - 1, target, s->scale[PART_SWEEP].eval_every, target,
            target);
    int adamw = -1;
    for (size_t o = 0; o < opts.size(); o++)
        if (opts[o] == "adamw") adamw = (int)o;
    std::string csv_path = std::string(dir) + "/seeds.csv";
    FILE* csv = fopen(csv_path.c_str(), "w");
    if (csv) fprintf(csv, "optimizer,lr,target,seeds,final_mean,final_std,reached,tokens_to_target_mean,"
                          "tokens_to_target_std,seconds_to_target_mean,seconds_to_target_std,adamw_tokens_ratio_mean,"
                          "adamw_tokens_ratio_std\n");
    std::vector<PlotSeries> series;
    std::vector<std::vector<double>> keep(2 * opts.size());  // the plot's mean curves (tokens, loss) per optimizer
    for (size_t o = 0; o < opts.size(); o++) {
        std::vector<double> tok, sec, ratio;
        for (int k = 0; k < s->seeds; k++) {
            const StudyRun* r = best[o] >= 0 ? study_find(plan, PART_SEEDS, opts[o], best[o], k) : NULL;
            if (!r || r->status != RUN_OK) continue;
            double t = study_to_level(&r->curves, target, false), sc = study_to_level(&r->curves, target, true);
            if (t < 0) continue;
            tok.push_back(t);
            sec.push_back(sc);
            const StudyRun* a = adamw >= 0 && best[adamw] >= 0 ? study_find(plan, PART_SEEDS, "adamw", best[adamw], k) : NULL;
            double ta = a && a->status == RUN_OK ? study_to_level(&a->curves, target, false) : -1;
            if (ta > 0 && t > 0) ratio.push_back(ta / t);
            // the mean curve over seeds (same evaluation steps in every run of the part)
            if (keep[2 * o].empty()) {
                keep[2 * o] = r->curves.eval_tokens;
                keep[2 * o + 1].assign(r->curves.eval_loss.size(), 0.0);
            }
            for (size_t e = 0; e < keep[2 * o + 1].size() && e < r->curves.eval_loss.size(); e++)
                keep[2 * o + 1][e] += r->curves.eval_loss[e] / s->seeds;
        }
        const StudyRun* b = best[o] >= 0 ? study_find(plan, PART_SWEEP, opts[o], best[o], 0) : NULL;
        MeanStd rt = mean_std(ratio);
        fprintf(md, "| %s | %.3g | %s | %s | %s | %zu/%d | %s |\n", opts[o].c_str(), b ? b->lr : NAN,
                fmt_ms(finals[o], "%.4f").c_str(), fmt_ms(mean_std(tok), "%.0f").c_str(),
                (fmt_ms(mean_std(sec), "%.1f") + " s").c_str(), tok.size(), s->seeds,
                ratio.empty() ? "-" : fmt_ms(rt, "%.2f").c_str());
        MeanStd mt = mean_std(tok), ms = mean_std(sec);
        if (csv)
            fprintf(csv, "%s,%g,%.6f,%d,%.6f,%.6f,%zu,%.1f,%.1f,%.3f,%.3f,%.4f,%.4f\n", opts[o].c_str(), b ? b->lr : NAN,
                    target, s->seeds, finals[o].mean, finals[o].std, tok.size(), mt.mean, mt.std, ms.mean, ms.std,
                    rt.mean, rt.std);
        if (opts[o] == "muon") {
            *muon_ratio = rt;
            *muon_loss = finals[o];
        }
        if (opts[o] == "adamw") *adamw_loss = finals[o];
        if (!keep[2 * o].empty())
            series.push_back({opts[o].c_str(), keep[2 * o].data(), keep[2 * o + 1].data(), (int)keep[2 * o].size()});
    }
    if (csv) fclose(csv);
    study_plot(dir, "seeds_val_loss.png", "Validation loss at the best lr (mean over seeds)", "tokens", "val loss", 0,
               series);
    fprintf(md, "\n![validation loss at the best lr](seeds_val_loss.png)\n\n");
}

// Health at the best lr (seed 0): the update's effective rank and its cosine with the gradient, means over the
// run's measurements.
static void study_report_health(const StudySettings* s, const std::vector<StudyRun>& plan,
                                const std::vector<std::string>& opts, const std::vector<int>& best, FILE* md) {
    fprintf(md, "## 3. Optimizer health at the best lr (seed %lld)\n\nMeans over the run's measurements (every %d "
                "steps) and over the hidden matrices: the applied update's effective rank, exp(H(σ/Σσ)), and its cosine "
                "with the raw gradient.\n\n| optimizer | effective rank | cos(gradient, update) |\n|---|---|---|\n",
            s->first_seed, s->scale[PART_SWEEP].health_every);
    for (size_t o = 0; o < opts.size(); o++) {
        const StudyRun* r = best[o] >= 0 ? study_find(plan, PART_SWEEP, opts[o], best[o], 0) : NULL;
        if (!r || r->curves.health_effective_rank.empty()) continue;
        fprintf(md, "| %s | %.1f | %.3f |\n", opts[o].c_str(), mean_std(r->curves.health_effective_rank).mean,
                mean_std(r->curves.health_grad_cosine).mean);
    }
    fprintf(md, "\n");
}

// Delving: the base·p × lr grid (mean final loss over seeds), as a table and a heatmap; per rule, the lrs that
// train without diverging and end within good_margin of the rule's best. Returns the stable counts summed over
// the momentum-base rules and over the RMS-base rules, and how many seeds p = 0 (best lr) beat AdamW (best lr).
struct DelvingVerdict {
    int stable_momentum, stable_rms, rules_momentum, rules_rms;
    int p0_beats_adamw, rms_p0_beats_adamw, seeds_compared;
};

static DelvingVerdict study_report_delving(const StudySettings* s, const std::vector<StudyRun>& plan, FILE* md,
                                           const char* dir) {
    std::vector<std::string> rules = study_split(s->delving_rules);
    DelvingVerdict v = {0, 0, 0, 0, 0, 0, 0};
    int n = s->delving_lr_points;
    fprintf(md, "## 4. The spectral family U Σ^p Vᵀ across lrs (%s, %d seeds)\n\nFinal validation loss, mean over "
                "seeds, at each rule's default lr times the factor heading the column (the grid spans %.0fx); "
                "\"div\": a seed diverged. Stable lrs: no seed diverged and the mean is within %.2f nats of the "
                "rule's best.\n\n| rule |", s->scale[PART_DELVING].model, s->delving_seeds, s->delving_span,
            s->good_margin);
    std::vector<double> mult = study_lr_grid(1.0, n, s->delving_span), cells;
    std::vector<std::string> col_text(n), row_text;
    for (int i = 0; i < n; i++) {
        char t[32];
        snprintf(t, sizeof(t), "x%.3g", mult[i]);
        col_text[i] = t;
        fprintf(md, " %s |", t);
    }
    fprintf(md, " stable lrs |\n|---|");
    for (int i = 0; i <= n; i++) fprintf(md, "---|");
    fprintf(md, "\n");
    std::string csv_path = std::string(dir) + "/delving.csv";
    FILE* csv = fopen(csv_path.c_str(), "w");
    if (csv) fprintf(csv, "rule,default_lr,lr_factor,lr,mean_final_val_loss,stable\n");
    for (const std::string& rule : rules) {
        std::vector<double> mean;
        int stable = study_stable_count(plan, s, rule, &mean);
        double lr;
        char err[ERR_LEN];
        if (study_default_lr(rule.c_str(), &lr, err)) lr = NAN;
        fprintf(md, "| %s (lr %.3g) |", rule.c_str(), lr);
        for (int i = 0; i < n; i++) {
            if (isfinite(mean[i])) fprintf(md, " %.4f |", mean[i]);
            else fprintf(md, " div |");
        }
        fprintf(md, " %d/%d |\n", stable, n);
        double best = INFINITY;
        for (double m : mean) best = fmin(best, m);  // fmin skips the NaN of a diverged cell
        for (int i = 0; csv && i < n; i++)
            fprintf(csv, "%s,%g,%g,%g,%.6f,%d\n", rule.c_str(), lr, mult[i], lr * mult[i], mean[i],
                    isfinite(mean[i]) && mean[i] <= best + s->good_margin);
        cells.insert(cells.end(), mean.begin(), mean.end());
        row_text.push_back(rule);
        bool rms = rule.rfind("rms-p=", 0) == 0, mom = rule.rfind("p=", 0) == 0;
        if (rms) {
            v.stable_rms += stable;
            v.rules_rms++;
        }
        if (mom) {
            v.stable_momentum += stable;
            v.rules_momentum++;
        }
    }
    if (csv) fclose(csv);
    // p = 0 against AdamW, each at its own best lr of the grid, seed by seed
    for (int k = 0; k < s->delving_seeds; k++) {
        double best[3];
        const char* who[3] = {"adamw", "p=0", "rms-p=0"};
        for (int w = 0; w < 3; w++) study_best_index(plan, PART_DELVING, who[w], k, &best[w]);
        if (!isfinite(best[0])) continue;
        v.seeds_compared++;
        v.p0_beats_adamw += best[1] < best[0];
        v.rms_p0_beats_adamw += best[2] < best[0];
    }
    std::vector<const char*> rl, cl;
    for (const std::string& r : row_text) rl.push_back(r.c_str());
    for (const std::string& c : col_text) cl.push_back(c.c_str());
    char path[1024], err[ERR_LEN];
    snprintf(path, sizeof(path), "%s/delving_heatmap.png", dir);
    if (!rl.empty() && plot_heatmap(path, "Final validation loss: rule x lr (times each rule's default)",
                                    "lr / the rule's default lr", rl.data(), (int)rl.size(), cl.data(), n,
                                    cells.data(), err))
        printf("heatmap skipped: %s\n", err);
    fprintf(md, "\nStable lrs summed over p: momentum base %d of %d, RMS base %d of %d. At its best lr, p = 0 on the "
                "momentum beat AdamW's best in %d of %d seeds, on the RMS base in %d of %d.\n\n"
                "![rule x lr](delving_heatmap.png)\n\n", v.stable_momentum, v.rules_momentum * n, v.stable_rms,
            v.rules_rms * n, v.p0_beats_adamw, v.seeds_compared, v.rms_p0_beats_adamw, v.seeds_compared);
    return v;
}

// The decay rule: the hidden matrices' RMS over the steps at three lrs, decay ∝ lr against ∝ lr². Returns the
// spread (largest over smallest end RMS across the lrs) of each rule, and whether every run had settled.
struct DecayVerdict {
    double spread_lr, spread_lr2;
    bool settled;
};

static DecayVerdict study_report_decay(const StudySettings* s, const std::vector<StudyRun>& plan, FILE* md,
                                       const char* dir) {
    DecayVerdict v = {NAN, NAN, true};
    fprintf(md, "## 5. Weight decay ∝ lr against ∝ lr² (%s, %s lr after %d warmup steps)\n\nMuon at lr %.3g, %.3g "
                "and %.3g. Both rules decay the weights by %.3g per step at the middle lr; ∝ lr: wd fixed, so the "
                "decay per step is wd·lr; ∝ lr²: `muon+lr2` with wd ∝ lr, so the decay per step is c·lr² with one c. "
                "(At the middle lr the two rules are the same run, twice.) End RMS: the hidden matrices' RMS, mean over the last tenth of the steps; drift: its relative change "
                "over the last fifth (settled below 5%%).\n\n| rule | lr | wd | end RMS | drift |\n|---|---|---|---|---|\n",
            s->scale[PART_DECAY].model, s->scale[PART_DECAY].schedule, s->scale[PART_DECAY].warmup, s->decay_lr / 2,
            s->decay_lr, 2 * s->decay_lr, s->decay_per_step);
    std::vector<PlotSeries> series;
    std::vector<std::string> labels;
    labels.reserve(6);
    for (int rule = 0; rule < 2; rule++) {
        const char* opt = rule == 0 ? "muon" : "muon+lr2";
        double lo = INFINITY, hi = -INFINITY;
        for (int i = 0; i < 3; i++) {
            const StudyRun* r = study_find(plan, PART_DECAY, opt, i, 0);
            if (!r) continue;
            double end, drift;
            study_rms_end(&r->curves, &end, &drift);
            fprintf(md, "| ∝ lr%s | %.3g | %.4g | %.5f | %.1f%% |\n", rule ? "²" : "", r->lr, r->wd, end, 100 * drift);
            lo = fmin(lo, end);
            hi = fmax(hi, end);
            v.settled = v.settled && drift < 0.05;
            char label[64];
            snprintf(label, sizeof(label), "decay ~ %s, lr %.3g", rule ? "lr^2" : "lr", r->lr);
            labels.push_back(label);
            series.push_back({labels.back().c_str(), r->curves.step.data(), r->curves.matrix_rms.data(),
                              (int)r->curves.step.size()});
        }
        (rule == 0 ? v.spread_lr : v.spread_lr2) = hi / lo;
    }
    study_plot(dir, "decay_rms.png", "RMS of the hidden matrices: decay ~ lr against decay ~ lr^2", "step",
               "weight RMS", 0, series);
    fprintf(md, "\nSpread of the end RMS across the three lrs (largest / smallest): ∝ lr %.3fx, ∝ lr² %.3fx.\n\n"
                "![weight RMS over steps](decay_rms.png)\n\n", v.spread_lr, v.spread_lr2);
    return v;
}

// ----------------------------------------------------------------------------------------------------
// the whole report

// Writes OUT/summary.md (and prints it), OUT/runs.csv and the plots. machine: what ran it.
static int study_report(const StudySettings* s, const std::vector<StudyRun>& plan, const char* machine, char* err) {
    const char* dir = s->out.c_str();
    std::string path = s->out + "/runs.csv";
    FILE* csv = fopen(path.c_str(), "w");
    if (!csv) return fail(err, "%s: cannot write", path.c_str());
    study_write_runs_csv(s, plan, csv);
    fclose(csv);
    path = s->out + "/summary.md";
    FILE* md = fopen(path.c_str(), "w");
    if (!md) return fail(err, "%s: cannot write", path.c_str());
    int counts[4] = {0, 0, 0, 0};
    double wall_seconds = 0;
    for (const StudyRun& r : plan) {
        counts[r.status]++;
        wall_seconds += r.wall_seconds;
    }
    const StudyScale* sw = &s->scale[PART_SWEEP];
    fprintf(md, "# Study: Muon against AdamW, tuned, over seeds; the papers' claims on the GPT\n\n%zu runs on %s "
                "(%d ok, %d diverged, %d failed), %.0f minutes in all (start-up and evaluations included).\n\n**Fairness, by "
                "construction.** Seed k gives every optimizer the same initial weights and the same data order "
                "(./train --seed). Within a part every run has the same model, token budget (batch x sequence x steps) "
                "and schedule shape (warmup, then %s); each optimizer's lr is tuned on the same grid density (a "
                "factor 2 between neighbours, centred on its own default); every evaluation uses the same fixed "
                "validation batches. Sweep and seeds: %s, %d x %d tokens x %d steps = %d tokens per run. The AdamW "
                "group of the Muon-family runs (embeddings, the tied head, gains, biases) takes AdamW's best lr of "
                "the same part (sweep %.3g, spectral family %.3g), so what differs is what updates the hidden "
                "matrices.\n\n",
            plan.size(), machine, counts[RUN_OK], counts[RUN_DIVERGED], counts[RUN_FAILED], wall_seconds / 60,
            sw->schedule, sw->model, sw->batch, sw->seq_len, sw->steps, sw->batch * sw->seq_len * sw->steps,
            study_adamw_best_lr(s, plan, PART_SWEEP), study_adamw_best_lr(s, plan, PART_DELVING));
    std::vector<std::string> opts = study_split(s->optimizers);
    std::vector<int> best = study_report_sweep(s, plan, opts, md, dir);
    MeanStd ratio = {NAN, NAN, 0}, muon_loss = {NAN, NAN, 0}, adamw_loss = {NAN, NAN, 0};
    study_report_seeds(s, plan, opts, best, md, dir, &ratio, &muon_loss, &adamw_loss);
    study_report_health(s, plan, opts, best, md);
    DelvingVerdict dv = study_report_delving(s, plan, md, dir);
    DecayVerdict cv = study_report_decay(s, plan, md, dir);

    // the claims, each from the numbers above by the rule stated with it
    fprintf(md, "## The published claims\n\n");
    const char* steps_verdict = ratio.n > 1 && ratio.mean - ratio.std > 1   ? "agrees"
                                : ratio.n > 1 && ratio.mean + ratio.std < 1 ? "does not agree"
                                                                            : "cannot tell at this scale";
    fprintf(md, "1. modded-nanogpt (Muon reaches the target in ~1.56x fewer steps than AdamW on GPT-2 124M): **%s**. "
                "Here AdamW needs %s times Muon's tokens to reach the common target (%d seeds; rule: agrees when the "
                "mean minus one standard deviation is above 1, does not agree when the mean plus one is below 1); "
                "final loss Muon %s, AdamW %s.\n", steps_verdict, fmt_ms(ratio, "%.2f").c_str(),
            ratio.n, fmt_ms(muon_loss, "%.4f").c_str(), fmt_ms(adamw_loss, "%.4f").c_str());
    fprintf(md, "2. Moonlight (~2x compute efficiency, at 1B-16B parameters): **cannot tell at this scale**: the "
                "claim is about models thousands of times larger and trained far longer; the same-direction figure "
                "here is the token ratio above (%s).\n", fmt_ms(ratio, "%.2f").c_str());
    const char* rms_verdict = dv.stable_rms > dv.stable_momentum   ? "agrees"
                              : dv.stable_rms < dv.stable_momentum ? "does not agree"
                                                                   : "cannot tell at this scale";
    fprintf(md, "3. Delving into Muon (the RMS base is more stable than the momentum base across U Σ^p Vᵀ; p = 0 does "
                "not consistently beat Adam): RMS more stable: **%s** (stable lrs %d against %d; rule: more stable "
                "lrs on the RMS base agrees, fewer does not, a tie cannot tell); p = 0 not consistently better than "
                "Adam: **%s** (p = 0 beat AdamW in %d of %d seeds on the momentum, %d of %d on the RMS base; rule: "
                "agrees unless both beat it in every seed).\n",
            rms_verdict, dv.stable_rms, dv.stable_momentum,
            dv.seeds_compared == 0 ? "cannot tell at this scale"
            : (dv.p0_beats_adamw == dv.seeds_compared && dv.rms_p0_beats_adamw == dv.seeds_compared) ? "does not agree"
                                                                                                 : "agrees",
            dv.p0_beats_adamw, dv.seeds_compared, dv.rms_p0_beats_adamw, dv.seeds_compared);
    bool one_norm = cv.spread_lr2 < 1.1 && cv.spread_lr >= 1.1;
    const char* decay = !cv.settled || !isfinite(cv.spread_lr) || !isfinite(cv.spread_lr2) ? "cannot tell at this scale"
                        : one_norm ? "agrees" : "does not agree";
    fprintf(md, "4. Correction of decoupled weight decay (decay ∝ lr² gives a steady-state weight norm that does not "
                "depend on the lr; ∝ lr does not): **%s** (end-RMS spread across a 4x lr range: ∝ lr² %.3fx, ∝ lr "
                "%.3fx; rule: agrees when every run has settled, the ∝ lr² spread is under 1.1x and the ∝ lr spread "
                "is not; runs %s).\n", decay, cv.spread_lr2, cv.spread_lr, cv.settled ? "settled" : "had not all settled");
    fclose(md);
    FILE* f = fopen(path.c_str(), "r");
    char line[4096];
    while (f && fgets(line, sizeof(line), f)) fputs(line, stdout);
    if (f) fclose(f);
    return 0;
}
