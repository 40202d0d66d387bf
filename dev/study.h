// dev/study.h: the study's plan and bookkeeping (dev/study.cpp runs it; tests/test_study.cpp checks it).
// Four parts, each a list of ./train runs at a fixed token budget:
//   sweep    every optimizer at lr_points peak lrs, log-spaced by 2 around its default, seed 0;
//   seeds    each optimizer again at its best lr of the sweep, with seeds 1 .. seeds-1 (seed 0 is the sweep's run);
//   decay    Muon at three lrs with decay ∝ lr and with decay ∝ lr², the hidden matrices' RMS logged every step;
//   delving  U Σ^p Vᵀ for p in {0, ¼, ½, 1} on the momentum and on Adam's RMS base (and AdamW beside them),
//            each over an lr grid spanning `delving_span` (30x or more), with delving_seeds seeds.
// Seed k is the same for every optimizer (./train --seed: initial weights and data order), so runs pair by seed.
// A Muon-family run also has an AdamW group (embeddings, the tied head, gains, biases: most of a small model's
// parameters). In the sweep and delving parts AdamW runs first, and that group then takes AdamW's best lr of the
// same part, so the comparison is of what updates the hidden matrices, not of an untuned embedding lr. The plan
// therefore grows as runs finish (study_plan_ready): AdamW's runs, then the others', then the seeds part.
// Every run has its own folder, OUT/runs/NAME/, and is done when NAME/result exists: a study run again skips the
// done ones and resumes an interrupted one from its checkpoint.
// Flow: StudySettings -> study_plan -> (./train per run, study_plan_ready after each) -> study_load_curves -> the
// tables of dev/study_report.h.
#pragma once
#include <signal.h>
#include <sys/wait.h>
#include <string>
#include <vector>
#include "../optim.h"

enum StudyPart { PART_SWEEP, PART_SEEDS, PART_DELVING, PART_DECAY, NUM_PARTS };
static const char* const study_part_name[NUM_PARTS] = {"sweep", "seeds", "delving", "decay"};

// one part's model and budget (the same for every run of the part: a fixed token budget and schedule shape)
struct StudyScale {
    char model[16];
    int batch, seq_len, steps, warmup;
    char schedule[16];   // cosine | constant
    int eval_every;      // validation (on the same fixed batches in every run)
    int health_every;    // -1: off
};

struct StudySettings {
    StudyScale scale[NUM_PARTS];      // PART_SEEDS uses the sweep's
    std::string optimizers;           // sweep: comma-separated ./train optimizer names
    std::string delving_rules;        // delving: the rules (and "adamw" as the baseline)
    int lr_points;                    // sweep: lrs per optimizer, ratio 2 between neighbours
    int delving_lr_points;            // delving: lrs per rule ...
    double delving_span;              // ... from lr/sqrt(span) to lr·sqrt(span) around its default
    int seeds, delving_seeds;         // seeds per optimizer at the best lr; per delving cell
    long long first_seed;             // seed k is first_seed + k
    double decay_lr;                  // decay: Muon's middle lr; the others are half and twice it
    double decay_per_step;            // decay: the per-step decay factor 1 - d at the middle lr (d), both rules
    double good_margin;               // nats: an lr is "good" when its final loss is within this of the best
    std::string out;                  // output folder (runs go to OUT/runs/)
    std::string train;                // the trainer binary
    std::string train_flags;          // passed to every run (e.g. --device cuda --threads 2)
};

// The defaults: sized so the whole study takes about an hour on 2 CPU cores (d4 with 1,024-token steps for the
// sweep and seeds, d2 with 512-token steps for the rest). The sweep's 7 lrs span 64x: at so short a budget the
// best lr can sit well above an optimizer's default.
static StudySettings study_defaults() {
    StudySettings s;
    s.scale[PART_SWEEP] = {"d4", 8, 128, 32, 4, "cosine", 4, 8};
    s.scale[PART_SEEDS] = s.scale[PART_SWEEP];
    s.scale[PART_DELVING] = {"d2", 4, 128, 32, 4, "cosine", 8, -1};
    s.scale[PART_DECAY] = {"d2", 4, 128, 100, 3, "constant", 25, -1};
    s.optimizers = "adamw,muon,polar,normuon,muon+lr2";
    s.delving_rules = "adamw,p=0,p=0.25,p=0.5,p=1,rms-p=0,rms-p=0.25,rms-p=0.5,rms-p=1";
    s.lr_points = 7;
    s.delving_lr_points = 5;
    s.delving_span = 32.0;
    s.seeds = 3;
    s.delving_seeds = 2;
    s.first_seed = 1337;
    s.decay_lr = 0.02;
    s.decay_per_step = 0.04;
    s.good_margin = 0.1;
    s.out = "out/study";
    s.train = "./train";
    return s;
}

// n points, log-spaced, from center/sqrt(span) to center·sqrt(span) (span = last/first); n = 1 gives the center
static std::vector<double> study_lr_grid(double center, int n, double span) {
    std::vector<double> g(n);
    for (int i = 0; i < n; i++) g[i] = n == 1 ? center : center * pow(span, (double)i / (n - 1) - 0.5);
    return g;
}

static std::vector<std::string> study_split(const std::string& list) {
    std::vector<std::string> out;
    size_t start = 0;
    while (start <= list.size()) {
        size_t comma = list.find(',', start);
        std::string item = list.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
        if (!item.empty()) out.push_back(item);
        if (comma == std::string::npos) break;
        start = comma + 1;
    }
    return out;
}

// the optimizer's default peak lr (of the hidden matrices; an AdamW run's only lr), as ./train sets it
static int study_default_lr(const char* name, double* lr, char* err) {
    OptimizerConfig c;
    if (optimizer_config_by_name(name, &c, err)) return -1;
    *lr = c.lr;
    return 0;
}

enum RunStatus { RUN_TODO, RUN_OK, RUN_DIVERGED, RUN_FAILED };

// What a finished run's log.csv and health.csv say (study_load_curves).
struct RunCurves {
    std::vector<double> eval_step, eval_tokens, eval_seconds, eval_loss;
    std::vector<double> step, matrix_rms;          // every training step
    std::vector<double> health_effective_rank, health_grad_cosine;  // per measurement, mean over hidden matrices
};

struct StudyRun {
    StudyPart part;
    std::string optimizer;   // as ./train --optimizer takes it
    double lr;               // peak lr (the hidden matrices'; everything's in an AdamW run)
    double wd;               // hidden matrices' weight decay; < 0: the optimizer's default
    double adam_lr;          // a Muon-family run's AdamW-group peak lr; < 0: the optimizer's default
    int lr_index;            // position in its grid
    int seed_index;          // seed first_seed + seed_index
    std::string name;        // folder under OUT/runs/
    RunStatus status;
    std::string message;     // a failed or diverged run's last error line
    double wall_seconds;     // what running it took, start-up and evaluations included (its last invocation)
    RunCurves curves;
};

static StudyRun study_run(const StudySettings* s, StudyPart part, const std::string& opt, double lr, double wd,
                          double adam_lr, int lr_index, int seed_index) {
    StudyRun r;
    r.part = part;
    r.optimizer = opt;
    r.lr = lr;
    r.wd = wd;
    r.adam_lr = adam_lr;
    r.lr_index = lr_index;
    r.seed_index = seed_index;
    r.status = RUN_TODO;
    r.wall_seconds = 0;
    char name[160], wd_text[32] = "", adam_text[32] = "";
    if (wd >= 0) snprintf(wd_text, sizeof(wd_text), "-wd%.4g", wd);
    if (adam_lr >= 0) snprintf(adam_text, sizeof(adam_text), "-alr%.4g", adam_lr);
    snprintf(name, sizeof(name), "%s-%s-lr%.4g%s%s-s%lld", study_part_name[part == PART_SEEDS ? PART_SWEEP : part],
             opt.c_str(), lr, wd_text, adam_text, s->first_seed + seed_index);
    r.name = name;
    return r;
}

// ----------------------------------------------------------------------------------------------------
// reading a run back

static double study_final_loss(const StudyRun* r) {
    return r->status == RUN_OK && !r->curves.eval_loss.empty() ? r->curves.eval_loss.back() : NAN;
}

// Tokens (or, with seconds = true, training seconds) at which the validation curve first reaches `level`,
// interpolated linearly between the two evaluations around the crossing; -1 when it never does.
static double study_to_level(const RunCurves* c, double level, bool seconds) {
    const std::vector<double>& x = seconds ? c->eval_seconds : c->eval_tokens;
    for (size_t i = 0; i < c->eval_loss.size(); i++) {
        if (!(c->eval_loss[i] <= level)) continue;
        if (i == 0) return x[0];
        double a = c->eval_loss[i - 1], b = c->eval_loss[i];
        double f = a > b ? (a - level) / (a - b) : 1.0;
        return x[i - 1] + f * (x[i] - x[i - 1]);
    }
    return -1.0;
}

// the column of `name` in a CSV header line, or -1
static int csv_column(const char* header, const char* name) {
    int col = 0;
    size_t n = strlen(name);
    for (const char* p = header;; col++) {
        const char* end = p + strcspn(p, ",\r\n");
        if ((size_t)(end - p) == n && strncmp(p, name, n) == 0) return col;
        if (*end != ',') return -1;
        p = end + 1;
    }
}

// the fields of one CSV line (no quoting: ./train's logs have none); an empty field is NaN
static std::vector<double> csv_fields(const char* line) {
    std::vector<double> v;
    for (const char* p = line;;) {
        const char* end = p + strcspn(p, ",\r\n");
        v.push_back(end > p ? strtod(p, NULL) : NAN);
        if (*end != ',') break;
        p = end + 1;
    }
    return v;
}

static int study_read_csv(const std::string& path, std::vector<std::string>* header_out,
                          std::vector<std::vector<double>>* rows, char* err) {
    FILE* f = fopen(path.c_str(), "r");
    if (!f) return fail(err, "%s: cannot open", path.c_str());
    char line[4096];
    if (!fgets(line, sizeof(line), f)) {
        fclose(f);
        return fail(err, "%s: empty (expected a header line)", path.c_str());
    }
    header_out->assign(1, line);
    while (fgets(line, sizeof(line), f))
        if (strchr(line, '\n')) rows->push_back(csv_fields(line));  // a torn last line is not a row
    fclose(f);
    return 0;
}

// a run's curves from OUT/runs/NAME/log.csv and health.csv
static int study_load_curves(const std::string& dir, RunCurves* c, char* err) {
    *c = RunCurves();
    std::vector<std::string> header;
    std::vector<std::vector<double>> rows;
    if (study_read_csv(dir + "/log.csv", &header, &rows, err)) return -1;
    const char* h = header[0].c_str();
    int cs = csv_column(h, "step"), ct = csv_column(h, "tokens"), cv = csv_column(h, "val_loss"),
        ctl = csv_column(h, "train_loss"), csec = csv_column(h, "train_seconds"), cr = csv_column(h, "matrix_rms");
    if (cs < 0 || ct < 0 || cv < 0 || ctl < 0 || csec < 0 || cr < 0)
        return fail(err, "%s/log.csv: expected the columns step, tokens, train_loss, val_loss, train_seconds, "
                    "matrix_rms", dir.c_str());
    int need = std::max({cs, ct, cv, ctl, csec, cr});
    for (const std::vector<double>& row : rows) {
        if ((int)row.size() <= need) continue;
        if (!isnan(row[cv])) {
            c->eval_step.push_back(row[cs]);
            c->eval_tokens.push_back(row[ct]);
            c->eval_seconds.push_back(row[csec]);
            c->eval_loss.push_back(row[cv]);
        } else if (!isnan(row[ctl])) {
            c->step.push_back(row[cs]);
            c->matrix_rms.push_back(row[cr]);
        }
    }
    header.clear();
    rows.clear();
    if (study_read_csv(dir + "/health.csv", &header, &rows, err)) return 0;  // no health logged
    h = header[0].c_str();
    int hs = csv_column(h, "step"), he = csv_column(h, "effective_rank"), hc = csv_column(h, "grad_cosine");
    if (hs < 0 || he < 0 || hc < 0) return fail(err, "%s/health.csv: expected step, effective_rank, grad_cosine", dir.c_str());
    double at = NAN, sum_e = 0, sum_c = 0;
    int n = 0;
    for (size_t i = 0; i <= rows.size(); i++) {  // rows of one step are consecutive: one mean per step
        bool end = i == rows.size() || (int)rows[i].size() <= std::max({hs, he, hc}) || rows[i][hs] != at;
        if (end && n > 0) {
            c->health_effective_rank.push_back(sum_e / n);
            c->health_grad_cosine.push_back(sum_c / n);
            sum_e = sum_c = 0;
            n = 0;
        }
        if (i == rows.size() || (int)rows[i].size() <= std::max({hs, he, hc})) continue;
        at = rows[i][hs];
        sum_e += rows[i][he];
        sum_c += rows[i][hc];
        n++;
    }
    return 0;
}

// OUT/runs/NAME/result: "ok", or "diverged: MESSAGE" or "failed: MESSAGE", then "seconds S" (the run's wall
// time). Returns the status (RUN_TODO: no file).
static RunStatus study_read_result(const std::string& dir, std::string* message, double* seconds) {
    FILE* f = fopen((dir + "/result").c_str(), "r");
    if (!f) return RUN_TODO;
    char line[2048] = "";
    if (!fgets(line, sizeof(line), f)) line[0] = 0;
    if (fscanf(f, "seconds %lf", seconds) != 1) *seconds = 0;
    fclose(f);
    line[strcspn(line, "\n")] = 0;
    const char* colon = strchr(line, ':');
    *message = colon ? colon + 2 : "";
    if (strncmp(line, "ok", 2) == 0) return RUN_OK;
    if (strncmp(line, "diverged", 8) == 0) return RUN_DIVERGED;
    return RUN_FAILED;
}

// writes the result file atomically (a temp file, then a rename), so a kill never leaves half of one
static int study_write_result(const std::string& dir, RunStatus st, const std::string& message, double seconds,
                              char* err) {
    std::string tmp = dir + "/result.tmp", path = dir + "/result";
    FILE* f = fopen(tmp.c_str(), "w");
    if (!f) return fail(err, "%s: cannot write", tmp.c_str());
    fprintf(f, "%s%s%s\nseconds %.1f\n", st == RUN_OK ? "ok" : st == RUN_DIVERGED ? "diverged" : "failed",
            message.empty() ? "" : ": ", message.c_str(), seconds);
    if (fclose(f) != 0 || rename(tmp.c_str(), path.c_str()) != 0) return fail(err, "%s: cannot write", path.c_str());
    return 0;
}

// ----------------------------------------------------------------------------------------------------
// what the parts conclude

// The sweep's best lr of each optimizer: the grid index with the lowest final loss (-1: every lr diverged).
static int study_best_index(const std::vector<StudyRun>& plan, StudyPart part, const std::string& opt, int seed_index,
                            double* best_loss) {
    int best = -1;
    *best_loss = INFINITY;
    for (const StudyRun& r : plan) {
        if (r.part != part || r.optimizer != opt || r.seed_index != seed_index) continue;
        double l = study_final_loss(&r);
        if (l < *best_loss) {
            *best_loss = l;
            best = r.lr_index;
        }
    }
    return best;
}

// the run of (part, optimizer, lr index, seed index), or NULL; the seeds part's seed 0 is the sweep's run
static const StudyRun* study_find(const std::vector<StudyRun>& plan, StudyPart part, const std::string& opt,
                                  int lr_index, int seed_index) {
    if (part == PART_SEEDS && seed_index == 0) part = PART_SWEEP;
    for (const StudyRun& r : plan)
        if (r.part == part && r.optimizer == opt && (part == PART_SEEDS || r.lr_index == lr_index) &&
            r.seed_index == seed_index)
            return &r;
    return NULL;
}

struct MeanStd {
    double mean, std;  // std: sample standard deviation (n - 1), 0 for one value
    int n;
};

static MeanStd mean_std(const std::vector<double>& x) {
    MeanStd m = {0, 0, (int)x.size()};
    for (double v : x) m.mean += v;
    if (m.n == 0) return {NAN, NAN, 0};
    m.mean /= m.n;
    for (double v : x) m.std += (v - m.mean) * (v - m.mean);
    m.std = m.n > 1 ? sqrt(m.std / (m.n - 1)) : 0.0;
    return m;
}

// A delving cell's rule is stable at lr index i when no seed diverged there and the mean final loss over the
// seeds is within `margin` of the rule's best mean. Returns how many of the grid's lrs are; mean_out gets the
// per-lr means (NaN where a seed diverged).
static int study_stable_count(const std::vector<StudyRun>& plan, const StudySettings* s, const std::string& rule,
                              std::vector<double>* mean_out) {
    std::vector<double> mean(s->delving_lr_points, NAN);
    double best = INFINITY;
    for (int i = 0; i < s->delving_lr_points; i++) {
        double sum = 0;
        bool ok = true;
        for (int k = 0; k < s->delving_seeds; k++) {
            const StudyRun* r = study_find(plan, PART_DELVING, rule, i, k);
            double l = r ? study_final_loss(r) : NAN;
            ok = ok && isfinite(l);
            sum += l;
        }
        if (ok) {
            mean[i] = sum / s->delving_seeds;
            best = fmin(best, mean[i]);
        }
    }
    int count = 0;
    for (double m : mean) count += isfinite(m) && m <= best + s->good_margin;
    if (mean_out) *mean_out = mean;
    return count;
}

// ----------------------------------------------------------------------------------------------------
// the plan

static bool study_has(const std::vector<std::string>& list, const char* name) {
    for (const std::string& x : list)
        if (x == name) return true;
    return false;
}

// whether every planned run of (part, optimizer) is done, and at least one is planned
static bool study_done(const std::vector<StudyRun>& plan, StudyPart part, const std::string& opt) {
    int n = 0;
    for (const StudyRun& r : plan)
        if (r.part == part && r.optimizer == opt) {
            if (r.status == RUN_TODO) return false;
            n++;
        }
    return n > 0;
}

// AdamW's best lr in a part (sweep: seed 0; delving: the lowest mean over seeds), -1 if none finished
static double study_adamw_best_lr(const StudySettings* s, const std::vector<StudyRun>& plan, StudyPart part) {
    int best = -1;
    if (part == PART_SWEEP) {
        double loss;
        best = study_best_index(plan, PART_SWEEP, "adamw", 0, &loss);
    } else {
        std::vector<double> mean;
        study_stable_count(plan, s, "adamw", &mean);
        for (int i = 0; i < (int)mean.size(); i++)
            if (isfinite(mean[i]) && (best < 0 || mean[i] < mean[best])) best = i;
    }
    const StudyRun* r = best >= 0 ? study_find(plan, part, "adamw", best, 0) : NULL;
    return r ? r->lr : -1.0;
}

// adds the runs of (part, optimizer) over its lr grid (and seeds), unless planned already
static void study_plan_grid(const StudySettings* s, std::vector<StudyRun>* plan, StudyPart part,
                            const std::string& opt, double adam_lr) {
    if (study_find(*plan, part, opt, 0, 0)) return;
    double lr;
    char err[ERR_LEN];
    if (study_default_lr(opt.c_str(), &lr, err)) return;  // study_plan checked every name
    bool sweep = part == PART_SWEEP;
    int points = sweep ? s->lr_points : s->delving_lr_points, seeds = sweep ? 1 : s->delving_seeds;
    std::vector<double> grid = study_lr_grid(lr, points, sweep ? pow(2.0, points - 1) : s->delving_span);
    for (int i = 0; i < points; i++)
        for (int k = 0; k < seeds; k++) plan->push_back(study_run(s, part, opt, grid[i], -1, adam_lr, i, k));
}

// Plans every run that can be planned now (a call after each run; what is planned stays): AdamW's grids and
// the decay part at once; the others' grids once AdamW's of the same part are done (their AdamW group at its best
// lr); the seeds part once the whole sweep is done (each optimizer at its best lr, seeds 1 .. seeds-1).
static void study_plan_ready(const StudySettings* s, std::vector<StudyRun>* plan) {
    const StudyPart grids[2] = {PART_SWEEP, PART_DELVING};
    for (StudyPart part : grids) {
        std::vector<std::string> opts = study_split(part == PART_SWEEP ? s->optimizers : s->delving_rules);
        bool with_adamw = study_has(opts, "adamw");
        if (with_adamw) study_plan_grid(s, plan, part, "adamw", -1);
        if (with_adamw && !study_done(*plan, part, "adamw")) continue;
        double adam_lr = with_adamw ? study_adamw_best_lr(s, *plan, part) : -1;
        for (const std::string& o : opts)
            if (o != "adamw") study_plan_grid(s, plan, part, o, adam_lr);
    }
    // decay: d at the middle lr for both rules. ∝ lr: wd = d / lr_mid at every lr (decay d·lr/lr_mid);
    // ∝ lr²: ./train's +lr2 decays by wd·lr²/lr_max, so wd = (d / lr_mid²)·lr keeps the factor c·lr² with one c.
    if (!study_find(*plan, PART_DECAY, "muon", 0, 0))
        for (int i = 0; i < 3; i++) {
            double lr = s->decay_lr * pow(2.0, i - 1);
            plan->push_back(study_run(s, PART_DECAY, "muon", lr, s->decay_per_step / s->decay_lr, -1, i, 0));
            plan->push_back(study_run(s, PART_DECAY, "muon+lr2", lr,
                                      s->decay_per_step / (s->decay_lr * s->decay_lr) * lr, -1, i, 0));
        }
    std::vector<std::string> opts = study_split(s->optimizers);
    for (const std::string& o : opts)
        if (!study_done(*plan, PART_SWEEP, o)) return;
    for (const std::string& o : opts) {
        double loss;
        int best = study_best_index(*plan, PART_SWEEP, o, 0, &loss);
        if (best < 0) continue;  // every lr diverged: nothing to repeat
        const StudyRun* at = study_find(*plan, PART_SWEEP, o, best, 0);
        StudyRun base = *at;
        for (int k = 1; k < s->seeds; k++)
            if (!study_find(*plan, PART_SEEDS, o, best, k))
                plan->push_back(study_run(s, PART_SEEDS, o, base.lr, -1, base.adam_lr, best, k));
    }
}

// Checks the settings and every optimizer's name, then plans what can be planned now. 0, or -1 naming the problem.
static int study_plan(const StudySettings* s, std::vector<StudyRun>* plan, char* err) {
    if (s->lr_points < 1 || s->delving_lr_points < 1 || s->seeds < 1 || s->delving_seeds < 1)
        return fail(err, "study: lr points and seeds must be at least 1");
    double lr;
    for (const std::string& list : {s->optimizers, s->delving_rules})
        for (const std::string& o : study_split(list))
            if (study_default_lr(o.c_str(), &lr, err)) return -1;
    study_plan_ready(s, plan);
    return 0;
}

// how many runs the whole study has (the seeds part counted in full)
static int study_expected_runs(const StudySettings* s) {
    int opts = (int)study_split(s->optimizers).size(), rules = (int)study_split(s->delving_rules).size();
    return opts * s->lr_points + opts * (s->seeds - 1) + 6 + rules * s->delving_lr_points * s->delving_seeds;
}

// The decay part's verdict input: a run's matrix RMS at its end (mean over the last tenth of the steps) and its
// drift over the last fifth (relative change), which says whether it has settled.
static void study_rms_end(const RunCurves* c, double* end, double* drift) {
    size_t n = c->matrix_rms.size();
    *end = *drift = NAN;
    if (n < 10) return;
    double sum = 0;
    size_t tail = n / 10;
    for (size_t i = n - tail; i < n; i++) sum += c->matrix_rms[i];
    *end = sum / tail;
    double before = c->matrix_rms[n - 1 - n / 5];
    *drift = fabs(c->matrix_rms[n - 1] - before) / c->matrix_rms[n - 1];
}

// ----------------------------------------------------------------------------------------------------
// running one

static std::string study_run_dir(const StudySettings* s, const StudyRun* r) { return s->out + "/runs/" + r->name; }

// a steps-like count scaled by the budget multiplier (at least 1; -1 stays off)
static int study_scaled(int n, double budget) { return n < 0 ? n : (int)fmax(1.0, lround(n * budget)); }

// The ./train command of a run (without its output redirection): afresh, or resuming from its checkpoint
// (whose settings win, as ./train --resume has it). Checkpoints every quarter of the run.
static std::string study_command(const StudySettings* s, const StudyRun* r, bool resume) {
    const StudyScale* sc = &s->scale[r->part];
    std::string dir = study_run_dir(s, r);
    char buf[2048], wd[96] = "";
    int every = (int)fmax(1, (sc->steps + 3) / 4);
    if (resume) {
        snprintf(buf, sizeof(buf), "%s --resume '%s/checkpoint.bin' --out '%s/runs' --run-name '%s' --checkpoint-every %d %s",
                 s->train.c_str(), dir.c_str(), s->out.c_str(), r->name.c_str(), every, s->train_flags.c_str());
        return buf;
    }
    if (r->wd >= 0) snprintf(wd, sizeof(wd), " --wd %.6g", r->wd);
    if (r->adam_lr >= 0) snprintf(wd + strlen(wd), sizeof(wd) - strlen(wd), " --adam-lr %.6g", r->adam_lr);
    snprintf(buf, sizeof(buf),
             "%s --model %s --batch %d --seq-len %d --steps %d --warmup %d --schedule %s --eval-every %d "
             "--health-every %d --optimizer '%s' --lr %.6g%s --seed %lld --out '%s/runs' --run-name '%s' "
             "--checkpoint-every %d %s",
             s->train.c_str(), sc->model, sc->batch, sc->seq_len, sc->steps, sc->warmup, sc->schedule, sc->eval_every,
             sc->health_every, r->optimizer.c_str(), r->lr, wd, s->first_seed + r->seed_index, s->out.c_str(),
             r->name.c_str(), every, s->train_flags.c_str());
    return buf;
}

// the last line of a run's stdout.log that starts with "error: " (what ./train said when it stopped)
static std::string study_last_error(const std::string& dir) {
    FILE* f = fopen((dir + "/stdout.log").c_str(), "r");
    std::string last;
    if (!f) return last;
    char line[4096];
    while (fgets(line, sizeof(line), f))
        if (strncmp(line, "error: ", 7) == 0) last = std::string(line + 7, strcspn(line + 7, "\n"));
    fclose(f);
    return last;
}

// Runs one study run to its end (resuming it when its folder holds a checkpoint and no result), writes its
// result, removes its checkpoint (the study keeps the logs, not 100 MB per run) and loads its curves.
// Returns 0; 1 when the run was interrupted (a signal: the study stops, the run resumes next time); -1 on an error
// of the study itself (a run that fails is a result, not an error).
static int study_execute(const StudySettings* s, StudyRun* r, char* err) {
    std::string dir = study_run_dir(s, r);
    if (make_dirs(dir.c_str(), err)) return -1;
    bool resume = access((dir + "/checkpoint.bin").c_str(), R_OK) == 0;
    std::string cmd = study_command(s, r, resume) + " >> '" + dir + "/stdout.log' 2>&1";
    double t0 = now_seconds();
    int st = system(cmd.c_str());
    if (st == -1) return fail(err, "study: cannot start a shell for: %s", cmd.c_str());
    if (WIFSIGNALED(st) || (WIFEXITED(st) && WEXITSTATUS(st) >= 128)) return 1;  // killed, or its child was
    std::string msg = WEXITSTATUS(st) == 0 ? "" : study_last_error(dir);
    r->status = WEXITSTATUS(st) == 0 ? RUN_OK : msg.find("; stopping (") != std::string::npos ? RUN_DIVERGED : RUN_FAILED;
    if (r->status == RUN_FAILED && msg.empty()) msg = "exit status " + std::to_string(WEXITSTATUS(st)) + ", see " + dir + "/stdout.log";
    r->message = msg;
    if (r->status != RUN_FAILED && study_load_curves(dir, &r->curves, err)) return -1;
    // the time of the invocations before an interruption is not known: this one's is what the result keeps
    r->wall_seconds = now_seconds() - t0;
    if (study_write_result(dir, r->status, msg, r->wall_seconds, err)) return -1;
    remove((dir + "/checkpoint.bin").c_str());
    return 0;
}

// a run done by an earlier study: its result and curves (false when it is still to run)
static bool study_load_done(const StudySettings* s, StudyRun* r) {
    std::string dir = study_run_dir(s, r);
    r->status = study_read_result(dir, &r->message, &r->wall_seconds);
    char err[ERR_LEN];
    if (r->status != RUN_TODO && r->status != RUN_FAILED && study_load_curves(dir, &r->curves, err)) {
        r->status = RUN_FAILED;
        r->message = err;
    }
    return r->status != RUN_TODO;
}
