// tests/test_study.cpp: the machinery of `make study` (dev/study.h): the lr grids, the plan (names, seed pairing,
// the decay rules' settings), the seeds part chosen from the sweep, the target-loss bookkeeping, reading a run's
// logs back, the stability count; then a whole study on the tiny model, twice (the second runs nothing) and with
// one run interrupted and resumed from its checkpoint (the same final loss, to the bit, as uninterrupted).
#include <doctest/doctest.h>
#include <set>
#include "cliutil.h"
#include "dev/study.h"

TEST_CASE("study: lr grids are log-spaced around the default and span what they say") {
    std::vector<double> g = study_lr_grid(0.02, 5, 16.0);  // the sweep's: a factor 2 between neighbours
    REQUIRE(g.size() == 5);
    const double want[5] = {0.005, 0.01, 0.02, 0.04, 0.08};
    for (int i = 0; i < 5; i++) CHECK(g[i] == doctest::Approx(want[i]).epsilon(1e-12));
    std::vector<double> d = study_lr_grid(1.0, 5, 32.0);  // the spectral family's: at least 30x
    CHECK(d.back() / d.front() == doctest::Approx(32.0).epsilon(1e-12));
    CHECK(d[2] == doctest::Approx(1.0).epsilon(1e-12));
    CHECK(study_lr_grid(0.3, 1, 32.0)[0] == 0.3);
}

// a finished run with a validation curve (tokens 0, 100, 200, ...)
static void finish(StudyRun* r, std::vector<double> losses) {
    r->status = RUN_OK;
    r->curves = RunCurves();
    for (size_t i = 0; i < losses.size(); i++) {
        r->curves.eval_tokens.push_back(100.0 * i);
        r->curves.eval_seconds.push_back(2.0 * i);
        r->curves.eval_loss.push_back(losses[i]);
    }
}

TEST_CASE("study: the plan pairs seeds across optimizers, names every run apart, and sets the decay rules") {
    StudySettings s = study_defaults();
    std::vector<StudyRun> plan;
    char err[ERR_LEN];
    REQUIRE(study_plan(&s, &plan, err) == 0);
    size_t opts = study_split(s.optimizers).size(), rules = study_split(s.delving_rules).size();
    int per_part[NUM_PARTS] = {0, 0, 0, 0};
    for (const StudyRun& r : plan) {
        per_part[r.part]++;
        CHECK((r.part == PART_DECAY || r.optimizer == "adamw"));  // at first: AdamW's grids and the decay part
    }
    CHECK(per_part[PART_SWEEP] == s.lr_points);
    CHECK(per_part[PART_DELVING] == s.delving_lr_points * s.delving_seeds);
    CHECK(per_part[PART_DECAY] == 6);
    // AdamW done (its best: the third lr of each grid): the others follow, their AdamW group at that lr
    for (StudyRun& r : plan)
        if (r.optimizer == "adamw") finish(&r, {10.0, r.lr_index == 2 ? 6.0 : 7.0});
    study_plan_ready(&s, &plan);
    double sweep_best = study_find(plan, PART_SWEEP, "adamw", 2, 0)->lr;
    double delving_best = study_find(plan, PART_DELVING, "adamw", 2, 0)->lr;
    memset(per_part, 0, sizeof(per_part));
    std::set<std::string> names;
    for (const StudyRun& r : plan) {
        per_part[r.part]++;
        names.insert(r.name);
        if (r.optimizer != "adamw" && r.part == PART_SWEEP) CHECK(r.adam_lr == sweep_best);
        if (r.optimizer != "adamw" && r.part == PART_DELVING) CHECK(r.adam_lr == delving_best);
        if (r.part == PART_SWEEP) CHECK(r.seed_index == 0);
        if (r.part == PART_DELVING)  // every delving cell has each seed once
            for (int k = 0; k < s.delving_seeds; k++) CHECK(study_find(plan, PART_DELVING, r.optimizer, r.lr_index, k));
    }
    CHECK(per_part[PART_SWEEP] == (int)opts * s.lr_points);
    CHECK(per_part[PART_SEEDS] == 0);  // chosen once the whole sweep is done
    CHECK(per_part[PART_DELVING] == (int)rules * s.delving_lr_points * s.delving_seeds);
    CHECK(names.size() == plan.size());
    CHECK((int)plan.size() + (int)opts * (s.seeds - 1) == study_expected_runs(&s));
    study_plan_ready(&s, &plan);  // planning again adds nothing
    CHECK((int)plan.size() + (int)opts * (s.seeds - 1) == study_expected_runs(&s));
    // the command of seed k carries --seed first_seed + k, whatever the optimizer; the AdamW group its lr
    const StudyRun* a = study_find(plan, PART_DELVING, "adamw", 1, 1);
    const StudyRun* b = study_find(plan, PART_DELVING, "rms-p=0.5", 3, 1);
    REQUIRE(a);
    REQUIRE(b);
    std::string seed = "--seed " + std::to_string(s.first_seed + 1) + " ";
    CHECK(study_command(&s, a, false).find(seed) != std::string::npos);
    CHECK(study_command(&s, b, false).find(seed) != std::string::npos);
    CHECK(study_command(&s, a, false).find("--adam-lr") == std::string::npos);
    CHECK(study_command(&s, b, false).find("--adam-lr") != std::string::npos);
    // decay: at the middle lr both rules decay by d per step; ∝ lr keeps wd, ∝ lr² keeps wd / lr
    for (int i = 0; i < 3; i++) {
        const StudyRun* lin = study_find(plan, PART_DECAY, "muon", i, 0);
        const StudyRun* sq = study_find(plan, PART_DECAY, "muon+lr2", i, 0);
        REQUIRE(lin);
        REQUIRE(sq);
        CHECK(lin->lr == sq->lr);
        CHECK(lin->wd == doctest::Approx(s.decay_per_step / s.decay_lr));
        CHECK(sq->wd / sq->lr == doctest::Approx(s.decay_per_step / (s.decay_lr * s.decay_lr)));
        if (i == 1) CHECK(sq->wd * sq->lr == doctest::Approx(s.decay_per_step));  // +lr2 at its peak: wd·lr²/lr
    }
    StudySettings bad = s;
    bad.delving_rules = "adamw,nosuch";
    std::vector<StudyRun> none;
    CHECK(study_plan(&bad, &none, err) != 0);
    CHECK(std::string(err).find("nosuch") != std::string::npos);
}

TEST_CASE("study: tokens to a target are interpolated between evaluations; never reached is -1") {
    StudyRun r;
    finish(&r, {10.0, 8.0, 6.0, 7.0});
    CHECK(study_to_level(&r.curves, 7.0, false) == doctest::Approx(150.0));  // between 8 (100) and 6 (200)
    CHECK(study_to_level(&r.curves, 7.0, true) == doctest::Approx(3.0));
    CHECK(study_to_level(&r.curves, 11.0, false) == 0.0);                   // at the start
    CHECK(study_to_level(&r.curves, 6.0, false) == doctest::Approx(200.0));
    CHECK(study_to_level(&r.curves, 5.0, false) == -1.0);
    CHECK(study_final_loss(&r) == 7.0);
    r.status = RUN_DIVERGED;
    CHECK(std::isnan(study_final_loss(&r)));
}

TEST_CASE("study: the best lr skips diverged runs; the seeds part repeats it with seeds 1.., once") {
    StudySettings s = study_defaults();
    s.optimizers = "adamw,muon";
    s.lr_points = 3;
    s.seeds = 3;
    s.delving_rules = "adamw";
    std::vector<StudyRun> plan;
    char err[ERR_LEN];
    REQUIRE(study_plan(&s, &plan, err) == 0);
    const double adamw_final[3] = {7.0, 6.5, NAN}, muon_final[3] = {NAN, 6.9, 6.2};
    for (int pass = 0; pass < 2; pass++) {  // AdamW's sweep, then Muon's (planned once AdamW's is done)
        for (StudyRun& r : plan) {
            if (r.part != PART_SWEEP || r.status != RUN_TODO) continue;
            double l = (r.optimizer == "adamw" ? adamw_final : muon_final)[r.lr_index];
            if (std::isnan(l)) r.status = RUN_DIVERGED;
            else finish(&r, {10.0, l});
        }
        if (pass == 0) CHECK(!study_find(plan, PART_SEEDS, "adamw", 1, 1));  // Muon's sweep is still to run
        study_plan_ready(&s, &plan);
    }
    double loss;
    CHECK(study_best_index(plan, PART_SWEEP, "adamw", 0, &loss) == 1);
    CHECK(loss == 6.5);
    CHECK(study_best_index(plan, PART_SWEEP, "muon", 0, &loss) == 2);
    int seeds = 0;
    for (const StudyRun& r : plan) seeds += r.part == PART_SEEDS;
    REQUIRE(seeds == 4);  // 2 optimizers x seeds 1, 2
    const StudyRun* m2 = study_find(plan, PART_SEEDS, "muon", 2, 2);
    REQUIRE(m2);
    const StudyRun* m0 = study_find(plan, PART_SWEEP, "muon", 2, 0);
    CHECK(m2->lr == m0->lr);
    CHECK(m2->adam_lr == m0->adam_lr);
    CHECK(m0->adam_lr == study_find(plan, PART_SWEEP, "adamw", 1, 0)->lr);  // AdamW's best, not its diverged lr
    CHECK(study_find(plan, PART_SEEDS, "muon", 2, 0) == m0);  // seed 0 is the sweep's run
    size_t before = plan.size();
    study_plan_ready(&s, &plan);
    CHECK(plan.size() == before);  // planned once
}

TEST_CASE("study: a rule's stable lrs are those with no diverged seed within the margin of its best") {
    StudySettings s = study_defaults();
    s.delving_rules = "p=0";
    s.delving_lr_points = 4;
    s.delving_seeds = 2;
    std::vector<StudyRun> plan;
    char err[ERR_LEN];
    REQUIRE(study_plan(&s, &plan, err) == 0);
    // per lr, seed 0 and seed 1: means 6.0, 6.05, 6.3; the last lr has a diverged seed
    const double fin[4][2] = {{6.0, 6.0}, {6.1, 6.0}, {6.3, 6.3}, {6.0, NAN}};
    for (StudyRun& r : plan) {
        if (r.part != PART_DELVING) continue;
        double l = fin[r.lr_index][r.seed_index];
        if (std::isnan(l)) r.status = RUN_DIVERGED;
        else finish(&r, {l});
    }
    std::vector<double> mean;
    CHECK(study_stable_count(plan, &s, "p=0", &mean) == 2);
    CHECK(mean[1] == doctest::Approx(6.05));
    CHECK(std::isnan(mean[3]));
}

TEST_CASE("study: a run's logs read back: evaluations, the per-step matrix RMS, health means; torn rows skipped") {
    std::string dir = temp_dir();
    FILE* f = fopen((dir + "/log.csv").c_str(), "w");
    REQUIRE(f);
    fprintf(f, "step,tokens,train_loss,val_loss,lr_mult,grad_norm,ms,tokens_per_s,train_seconds,matrix_rms\n"
               "0,0,,10.5,,,,,0.000,\n1,64,10.4,,1,1.5,20,3200,0.020,0.0200\n2,128,10.1,,1,1.4,20,3200,0.040,0.0210\n"
               "2,128,,9.9,,,,,0.040,\n3,192,9.8,,1,1.4,20,3200,0.06");  // the last row is torn
    fclose(f);
    f = fopen((dir + "/health.csv").c_str(), "w");
    REQUIRE(f);
    fprintf(f, "step,matrix,optimizer,stable_rank,effective_rank,ortho_error,grad_cosine,update_rms,weight_spectral_norm\n"
               "2,h0.qkvw,muon,3,10,0.1,0.2,1e-3,1\n2,h0.fcw,muon,3,20,0.1,0.4,1e-3,1\n4,h0.qkvw,muon,3,30,0.1,0.6,1e-3,1\n");
    fclose(f);
    RunCurves c;
    char err[ERR_LEN];
    REQUIRE(study_load_curves(dir, &c, err) == 0);
    REQUIRE(c.eval_loss.size() == 2);
    CHECK(c.eval_loss[1] == doctest::Approx(9.9));
    CHECK(c.eval_tokens[1] == 128);
    REQUIRE(c.matrix_rms.size() == 2);
    CHECK(c.matrix_rms[1] == doctest::Approx(0.021));
    REQUIRE(c.health_effective_rank.size() == 2);  // one mean per measured step
    CHECK(c.health_effective_rank[0] == doctest::Approx(15.0));
    CHECK(c.health_grad_cosine[1] == doctest::Approx(0.6));
    // the result file round-trips, and a missing one means "to run"
    std::string msg;
    double sec;
    CHECK(study_read_result(dir, &msg, &sec) == RUN_TODO);
    REQUIRE(study_write_result(dir, RUN_DIVERGED, "step 3: the loss is NaN; stopping (x)", 12.5, err) == 0);
    CHECK(study_read_result(dir, &msg, &sec) == RUN_DIVERGED);
    CHECK(msg == "step 3: the loss is NaN; stopping (x)");
    CHECK(sec == 12.5);
    system(("rm -rf '" + dir + "'").c_str());
}

// the final validation loss a finished run's log.csv holds, as text (to compare to the bit)
static std::string final_val_text(const std::string& dir) {
    FILE* f = fopen((dir + "/log.csv").c_str(), "r");
    REQUIRE(f);
    char line[512];
    std::string last;
    while (fgets(line, sizeof(line), f)) {
        std::vector<std::string> fields;
        std::string l = line;
        size_t start = 0, comma;
        while ((comma = l.find(',', start)) != std::string::npos) {
            fields.push_back(l.substr(start, comma - start));
            start = comma + 1;
        }
        if (fields.size() > 3 && !fields[3].empty() && fields[0] != "step") last = fields[3];
    }
    fclose(f);
    return last;
}

TEST_CASE("study: a whole tiny study, run again (nothing reruns) and with a run interrupted (it resumes)") {
    REQUIRE_MESSAGE(access("./build/study", X_OK) == 0, "./build/study is missing: run the tests with `make test`");
    std::string dir = temp_dir();
    std::string study = "./build/study --model tiny --batch 2 --seq-len 32 --budget 0.34 --lr-points 2 --seeds 2 "
                        "--delving-lr-points 2 --delving-seeds 1 --optimizers adamw,muon --delving-rules adamw,rms-p=0 "
                        "--out " + dir;
    CommandResult first = run_command(study, "2>&1");
    INFO(first.text);
    REQUIRE(first.status == 0);
    CHECK(first.text.find("study: 16 runs (0 done earlier)") != std::string::npos);
    for (const char* file : {"summary.md", "runs.csv", "sweep_lr.png", "seeds_val_loss.png", "delving_heatmap.png",
                             "decay_rms.png"})
        CHECK_MESSAGE(access((dir + "/" + file).c_str(), R_OK) == 0, file);
    CommandResult again = run_command(study, "2>&1");
    CHECK(again.status == 0);
    CHECK(again.text.find("study: 16 runs (16 done earlier)") != std::string::npos);
    CHECK(again.text.find("study [") == std::string::npos);  // no run started
    // interrupt one: its folder as a kill leaves it (a checkpoint at step 2, no result), then the study resumes it
    CommandResult plan = run_command(study + " --dry-run 1", "2>&1");
    size_t at = plan.text.find("--run-name 'sweep-muon-lr");
    REQUIRE(at != std::string::npos);
    std::string cmd = plan.text.substr(plan.text.rfind('\n', at) + 1);
    cmd = cmd.substr(0, cmd.find('\n'));
    std::string name = plan.text.substr(at + 12, plan.text.find('\'', at + 12) - (at + 12));
    CHECK(name.find("-alr") != std::string::npos);  // its AdamW group at AdamW's best lr
    std::string run = dir + "/runs/" + name;
    std::string uninterrupted = final_val_text(run);
    REQUIRE(!uninterrupted.empty());
    REQUIRE(system(("rm -rf '" + run + "'").c_str()) == 0);
    REQUIRE(run_command(cmd + " --stop-at 2", "2>&1").status == 0);
    REQUIRE(access((run + "/checkpoint.bin").c_str(), R_OK) == 0);
    CommandResult resumed = run_command(study, "2>&1");
    INFO(resumed.text);
    CHECK(resumed.status == 0);
    // 13: the seeds part's two runs are counted once the sweep is complete again (they depend on its best lrs)
    CHECK(resumed.text.find("study: 16 runs (13 done earlier)") != std::string::npos);
    CHECK(resumed.text.find("study [14/16] sweep: muon") != std::string::npos);
    CHECK(resumed.text.find("study [15/") == std::string::npos);  // nothing else ran
    CHECK(file_text(run + "/stdout.log").find("resum") != std::string::npos);
    CHECK(final_val_text(run) == uninterrupted);
    CHECK(access((run + "/checkpoint.bin").c_str(), F_OK) != 0);  // removed once the run is done
    system(("rm -rf '" + dir + "'").c_str());
}
