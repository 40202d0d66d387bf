// tests/mpi/test_ranks.cpp: the data-parallel pieces inside one job of several ranks: `make test` runs this binary
// under `mpirun -np 2` (dist.h's exchanges, the distributed optimizer step against one rank's, the checkpoint of a
// split optimizer state). Every rank runs every case in the same order, so every exchange has all its ranks; a
// case checks with CHECK (never REQUIRE past an exchange), so a failure on one rank cannot leave the other waiting.
// Rank 0 prints doctest's report; another rank's goes to build/test_ranks.rank<r>.log, shown if it failed.
// Whole runs under mpirun (losses, resume, bad input, a killed rank): tests/test_mpi.cpp.
#define DOCTEST_CONFIG_IMPLEMENT
#include <string>
#include <vector>
#include "../testutil.h"
#include "../../checkpoint.h"

TEST_CASE("ranks: sums, gathers, broadcasts and the agreement check") {
    int r = dist.rank, n = dist.ranks;
    REQUIRE(n >= 2);  // the same on every rank
    std::vector<float> x = {1.0f + r, -2.0f * r, 0.5f};
    dist_sum(DEV_CPU, x.data(), x.size());
    CHECK(x[0] == n + n * (n - 1) / 2.0f);
    CHECK(x[1] == -(float)(n * (n - 1)));
    CHECK(x[2] == 0.5f * n);
    double d = r + 0.25;
    dist_sum_doubles(&d, 1);
    CHECK(d == n * (n - 1) / 2.0 + 0.25 * n);
    std::vector<float> mine = {(float)r, 10.0f + r}, all(2 * n, -1.0f), root(2 * n, -1.0f);
    dist_allgather(DEV_CPU, mine.data(), all.data(), 2);
    dist_gather_root(mine.data(), root.data(), 2);
    for (int k = 0; k < n; k++) {
        CHECK(all[2 * k] == k);
        CHECK(all[2 * k + 1] == 10.0f + k);
        if (r == 0) CHECK(root[2 * k + 1] == 10.0f + k);
    }
    if (r > 0) CHECK(root[0] == -1.0f);  // only root's buffer is written
    int value = r == 0 ? 42 : 0;
    dist_broadcast(&value, sizeof(value));
    CHECK(value == 42);
    const char same[] = "every rank", *differs = r == 1 ? "rank one" : "the others";
    CHECK(dist_first_differing(same, sizeof(same)) == -1);
    CHECK(dist_first_differing(differs, strlen(differs)) == 1);
}

// a model with random weights and the same random gradients on every rank
static void make_model(GPT2* m, uint64_t seed) {
    GPT2Config cfg;
    char err[ERR_LEN];
    REQUIRE(gpt2_config_preset(&cfg, "tiny", err) == 0);
    gpt2_build(m, &cfg, 2, 16, DEV_CPU, seed);
}

static void set_gradients(GPT2* m, uint64_t seed) {
    std::vector<float> g = random_vector(m->num_parameters, seed, 1e-3f);
    memcpy(m->params[0].grad, g.data(), g.size() * sizeof(float));
}

TEST_CASE("ranks: a step split among the ranks is one rank's step, bit for bit, for every optimizer") {
    const char* names[] = {"adamw", "muon", "polar", "normuon", "muon+qkv", "rms-p=0.5", "p=0.25", "muon+lr2"};
    for (const char* name : names) {
        INFO(name << " on " << dist.ranks << " ranks");
        OptimizerConfig oc;
        char err[ERR_LEN];
        REQUIRE(optimizer_config_by_name(name, &oc, err) == 0);
        GPT2 split, one;
        make_model(&split, 5);
        make_model(&one, 5);
        Optimizer os, o1;
        REQUIRE(optimizer_init(&os, &split, &oc, err, dist.rank, dist.ranks) == 0);
        REQUIRE(optimizer_init(&o1, &one, &oc, err) == 0);
        CHECK(os.part.floats[dist.rank] < o1.part.floats[0]);  // this rank keeps a part of the state
        for (int step = 0; step < 3; step++) {
            set_gradients(&split, 100 + step);
            set_gradients(&one, 100 + step);
            double ns = optimizer_step(&os, &split, 0.7f, step == 2), n1 = optimizer_step(&o1, &one, 0.7f, step == 2);
            CHECK(ns == n1);
        }
        size_t n = one.num_parameters;
        CHECK(memcmp(split.params[0].data, one.params[0].data, n * sizeof(float)) == 0);
        float* whole = optimizer_state_gather(&os);  // rank 0's; every rank takes part
        if (dist_root()) {
            CHECK(memcmp(whole, o1.m, n * sizeof(float)) == 0);
            CHECK(memcmp(whole + n, o1.v, n * sizeof(float)) == 0);
            CHECK(os.health_step == 3);  // health is rank 0's alone: it measures every matrix
            for (int i = 0; i < os.num_slots; i++) CHECK(os.health[i].stable_rank == o1.health[i].stable_rank);
        }
        free(whole);
        optimizer_free(&os);
        optimizer_free(&o1);
        gpt2_free(&split);
        gpt2_free(&one);
    }
}

TEST_CASE("ranks: a checkpoint of a split state is whole: one rank resumes it, and the ranks resume it split") {
    char err[ERR_LEN];
    OptimizerConfig oc;
    REQUIRE(optimizer_config_by_name("normuon", &oc, err) == 0);  // m and v both used by the matrices
    GPT2 split, one;
    make_model(&split, 9);
    make_model(&one, 9);
    Optimizer os, o1;
    REQUIRE(optimizer_init(&os, &split, &oc, err, dist.rank, dist.ranks) == 0);
    REQUIRE(optimizer_init(&o1, &one, &oc, err) == 0);
    for (int step = 0; step < 2; step++) {
        set_gradients(&split, 7 + step);
        set_gradients(&one, 7 + step);
        optimizer_step(&os, &split, 1.0f, false);
        optimizer_step(&o1, &one, 1.0f, false);
    }
    int zero = 0;  // every rank's temporary folder name is rank 0's
    std::string dir;
    char path[256] = "";
    if (dist_root()) snprintf(path, sizeof(path), "%s/ckpt.bin", test_temp_dir("muongpt_ranks").c_str());
    dist_broadcast(path, sizeof(path));
    TrainState st;
    memset(&st, 0, sizeof(st));
    st.step = 2;
    st.opt_t = 2;
    CHECK(checkpoint_save(path, &split, &os, &st, &zero, sizeof(zero), err) == 0);
    // one rank's optimizer reads the whole state: the one-rank run's, exactly
    GPT2 back;
    make_model(&back, 1);
    Optimizer ob;
    REQUIRE(optimizer_init(&ob, &back, &oc, err) == 0);
    TrainState st_back;
    CHECK(checkpoint_load(path, &back, &ob, &st_back, err) == 0);
    size_t n = one.num_parameters;
    CHECK(memcmp(ob.m, o1.m, n * sizeof(float)) == 0);
    CHECK(memcmp(ob.v, o1.v, n * sizeof(float)) == 0);
    CHECK(memcmp(back.params[0].data, one.params[0].data, n * sizeof(float)) == 0);
    // the ranks read it split: each takes its own pieces, and the next step is still one rank's
    GPT2 again;
    make_model(&again, 1);
    Optimizer oa;
    REQUIRE(optimizer_init(&oa, &again, &oc, err, dist.rank, dist.ranks) == 0);
    CHECK(checkpoint_load(path, &again, &oa, &st_back, err) == 0);
    size_t mine = oa.part.floats[dist.rank];
    CHECK(memcmp(oa.m, os.m, mine * sizeof(float)) == 0);
    CHECK(memcmp(oa.v, os.v, mine * sizeof(float)) == 0);
    set_gradients(&again, 50);
    set_gradients(&one, 50);
    optimizer_step(&oa, &again, 1.0f, false);
    optimizer_step(&o1, &one, 1.0f, false);
    CHECK(memcmp(again.params[0].data, one.params[0].data, n * sizeof(float)) == 0);
    for (Optimizer* o : {&os, &o1, &ob, &oa}) optimizer_free(o);
    for (GPT2* m : {&split, &one, &back, &again}) gpt2_free(m);
}

// doctest on every rank; rank 0 reports, the others write their report to a file and show it if they failed
int main(int argc, char** argv) {
    dist_init(&argc, &argv);
    if (!dist.mpi || dist.ranks < 2) {
        fprintf(stderr, "tests/mpi/test_ranks: run it under mpirun with 2 or more ranks (make test does)\n");
        return 1;
    }
    doctest::Context context(argc, argv);
    context.setOption("no-colors", true);  // mpirun gives each rank a terminal; the log is read by scripts
    char log[256];
    snprintf(log, sizeof(log), "build/test_ranks.rank%d.log", dist.rank);
    if (dist.rank > 0) context.setOption("out", log);
    int failed = context.run();
    double total = failed != 0;  // the ranks that failed a case
    dist_sum_doubles(&total, 1);
    if (dist.rank > 0 && failed) {
        fprintf(stderr, "---- rank %d failed: its report (%s) ----\n", dist.rank, log);
        FILE* f = fopen(log, "r");
        char line[1024];
        while (f && fgets(line, sizeof(line), f)) fputs(line, stderr);
        if (f) fclose(f);
    }
    if (dist.rank == 0) printf("ranks with a failure: %d of %d\n", (int)total, dist.ranks);
    dist_finalize();
    return total > 0;
}
