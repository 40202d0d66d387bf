// dev/study.cpp: `make study`, Muon against AdamW with tuned lrs and several seeds, and the papers' claims tested
// on the GPT. Runs ./train once per run of the plan (dev/study.h), each into its own folder under OUT/runs/, one
// after the other (each run uses every core), with a progress line (runs done / total, ETA); then writes the
// tables, plots and summary (dev/study_report.h). Resumable: a finished run is not run again, an interrupted one
// continues from its checkpoint, so the same command after a kill or a Ctrl-C picks up where it stopped.
// Flow: a dev tool over the trainer: it drives ./train as a user would and reads back the runs' logs.
//   build: make build/study (make study builds it and ./train, then runs it)
//   run:   ./build/study [--model d12 --budget 4 --train-flags '--device cuda'] [--out out/study]
#include "dev/cli.h"
#include "dev/study_report.h"

static double run_tokens(const StudySettings* s, const StudyRun* r) {
    const StudyScale* c = &s->scale[r->part];
    return (double)c->batch * c->seq_len * c->steps;
}

// The progress line before a run: its place, what it is, and the ETA: this invocation's seconds per token (per
// model: a d2 token is cheaper than a d4 one) times the tokens still to train, the runs not yet planned counted
// at the sweep's size.
struct Progress {
    double t0;
    double seconds[2], tokens[2];  // measured here: [0] the sweep's model, [1] the other parts'
    int done, total;
};

static double seconds_per_token(const Progress* p, int k) {
    double all = p->tokens[0] + p->tokens[1] > 0 ? (p->seconds[0] + p->seconds[1]) / (p->tokens[0] + p->tokens[1]) : 0;
    return p->tokens[k] > 0 ? p->seconds[k] / p->tokens[k] : all;
}

static void progress_line(const StudySettings* s, const std::vector<StudyRun>& plan, const Progress* p,
                          const StudyRun* next) {
    double left = 0;
    for (const StudyRun& r : plan)
        if (r.status == RUN_TODO)
            left += run_tokens(s, &r) * seconds_per_token(p, strcmp(s->scale[r.part].model, s->scale[PART_SWEEP].model) != 0);
    StudyRun unplanned = *next;
    unplanned.part = PART_SWEEP;
    left += (p->total - (int)plan.size()) * run_tokens(s, &unplanned) * seconds_per_token(p, 0);
    char elapsed[32], eta[32];
    format_duration(now_seconds() - p->t0, elapsed, sizeof(elapsed));
    format_duration(left, eta, sizeof(eta));
    printf("study [%d/%d] %s: %s lr %.4g%s seed %lld (elapsed %s, eta %s)\n", p->done + 1, p->total,
           study_part_name[next->part], next->optimizer.c_str(), next->lr,
           next->adam_lr >= 0 ? (" (AdamW group " + std::to_string(next->adam_lr).substr(0, 7) + ")").c_str() : "",
           s->first_seed + next->seed_index, elapsed, seconds_per_token(p, 0) > 0 ? eta : "after the first run");
    fflush(stdout);
}

// Plans what can be planned now and loads what an earlier study finished of it; returns the next run to do, in
// the parts' order (sweep, seeds, decay, delving; within a part, as planned), or NULL when all are done.
static StudyRun* next_run(const StudySettings* s, std::vector<StudyRun>* plan, Progress* p) {
    size_t before = plan->size();
    study_plan_ready(s, plan);
    for (size_t i = before; i < plan->size(); i++) p->done += study_load_done(s, &(*plan)[i]);
    if (plan->size() > before) return next_run(s, plan, p);  // runs done earlier may let more be planned
    const StudyPart order[4] = {PART_SWEEP, PART_SEEDS, PART_DECAY, PART_DELVING};
    for (StudyPart part : order)
        for (StudyRun& r : *plan)
            if (r.part == part && r.status == RUN_TODO) return &r;
    return NULL;
}

int main(int argc, char** argv) {
    StudySettings s = study_defaults();
    std::string model, train_flags;
    double budget = 1.0;
    int batch = 0, seq_len = 0, seeds = s.seeds, delving_seeds = s.delving_seeds, dry_run = 0;
    const DevFlag flags[] = {
        {"--out", DEV_STRING, &s.out, 0, 0, "output folder: runs in OUT/runs/, the tables and plots in OUT/"},
        {"--train", DEV_STRING, &s.train, 0, 0, "the trainer binary"},
        {"--train-flags", DEV_STRING, &s.train_flags, 0, 0, "flags for every run (e.g. '--device cuda')"},
        {"--model", DEV_STRING, &model, 0, 0, "every part's model (default: d4 for the sweeps, d2 for the rest)"},
        {"--budget", DEV_DOUBLE, &budget, 1e-3, 1e3, "multiplies every part's steps (and its warmup and eval interval)"},
        {"--batch", DEV_INT, &batch, 0, 65536, "every part's batch (0: the parts' own, 8 and 4)"},
        {"--seq-len", DEV_INT, &seq_len, 0, 1048576, "every part's sequence length (0: 128)"},
        {"--optimizers", DEV_STRING, &s.optimizers, 0, 0, "the sweep's optimizers"},
        {"--delving-rules", DEV_STRING, &s.delving_rules, 0, 0, "the spectral-family part's rules"},
        {"--lr-points", DEV_INT, &s.lr_points, 1, 99, "lrs per optimizer in the sweep (a factor 2 apart)"},
        {"--delving-lr-points", DEV_INT, &s.delving_lr_points, 1, 99, "lrs per rule in the spectral-family part"},
        {"--delving-span", DEV_DOUBLE, &s.delving_span, 1, 1e6, "largest over smallest lr of that grid"},
        {"--seeds", DEV_INT, &seeds, 1, 1000, "seeds at each optimizer's best lr"},
        {"--delving-seeds", DEV_INT, &delving_seeds, 1, 1000, "seeds per spectral-family cell"},
        {"--dry-run", DEV_INT, &dry_run, 0, 1, "1: print the plan's commands and stop"},
    };
    char err[ERR_LEN];
    if (dev_parse("study", argc, argv, flags, sizeof(flags) / sizeof(flags[0]), err)) die("%s", err);
    s.seeds = seeds;
    s.delving_seeds = delving_seeds;
    for (int p = 0; p < NUM_PARTS; p++) {
        StudyScale* c = &s.scale[p];
        if (!model.empty()) snprintf(c->model, sizeof(c->model), "%s", model.c_str());
        if (batch) c->batch = batch;
        if (seq_len) c->seq_len = seq_len;
        c->steps = study_scaled(c->steps, budget);
        c->warmup = c->warmup ? study_scaled(c->warmup, budget) : 0;
        c->eval_every = study_scaled(c->eval_every, budget);
        c->health_every = study_scaled(c->health_every, budget);
    }
    if (access(s.train.c_str(), X_OK) != 0) die("--train %s: not an executable (build it with make)", s.train.c_str());
    std::vector<StudyRun> plan;
    if (study_plan(&s, &plan, err)) die("%s", err);
    if (make_dirs((s.out + "/runs").c_str(), err)) die("%s", err);
    Progress prog = {now_seconds(), {0, 0}, {0, 0}, 0, study_expected_runs(&s)};
    for (StudyRun& r : plan) prog.done += study_load_done(&s, &r);
    StudyRun* r = next_run(&s, &plan, &prog);
    if (dry_run) {  // what is planned so far (the runs that wait on others' results are not)
        for (const StudyRun& run : plan) printf("%s\n", study_command(&s, &run, false).c_str());
        return 0;
    }
    printf("study: %d runs (%d done earlier), output %s/; each run's output in its folder's stdout.log\n",
           prog.total, prog.done, s.out.c_str());
    for (; r; r = next_run(&s, &plan, &prog)) {
        progress_line(&s, plan, &prog, r);
        double t = now_seconds();
        int st = study_execute(&s, r, err);
        if (st < 0) die("%s", err);
        if (st > 0) {
            printf("study: interrupted; the same command resumes it (%d of %d runs done)\n", prog.done, prog.total);
            return 130;
        }
        double dt = now_seconds() - t;
        int k = strcmp(s.scale[r->part].model, s.scale[PART_SWEEP].model) != 0;
        prog.seconds[k] += dt;
        prog.tokens[k] += run_tokens(&s, r);
        prog.done++;
        if (r->status == RUN_OK) printf("  final val loss %.4f (%.0f s)\n", study_final_loss(r), dt);
        else printf("  %s: %s\n", study_status_name(r->status), r->message.c_str());
    }
    char machine[256];
    device_describe(DEV_CPU, machine, sizeof(machine));
    std::string where = s.train_flags.find("cuda") != std::string::npos ? "the GPU named in the runs' logs" : machine;
    if (study_report(&s, plan, where.c_str(), err)) die("%s", err);
    int failed = 0;
    for (const StudyRun& r : plan) failed += r.status == RUN_FAILED;
    printf("study: wrote %s/summary.md, runs.csv, seeds.csv, delving.csv and the plots%s\n", s.out.c_str(),
           failed ? "; some runs failed (see their stdout.log)" : "");
    return failed ? 1 : 0;
}
