// tests/test_train.cpp: whole runs through run_training on small synthetic shards (tests/runutil.h): resuming is bit-exact,
// a diverging run stops with a message and keeps its last good checkpoint, --stop-at leaves a checkpoint.
#include <string>
#include <vector>
#include "runutil.h"

// parameters and optimizer moments of a checkpoint, as one host vector
static std::vector<float> checkpoint_numbers(const std::string& path) {
    GPT2Config cfg;
    RunConfig rc;
    OptimizerConfig oc;
    char err[ERR_LEN];
    REQUIRE_MESSAGE(checkpoint_peek(path.c_str(), &cfg, &rc, sizeof(rc), &oc, err) == 0, err);
    GPT2 model;
    gpt2_build(&model, &cfg, 1, 1, DEV_CPU, 0);
    Optimizer opt;
    REQUIRE(optimizer_init(&opt, &model, &oc, err) == 0);
    TrainState st;
    REQUIRE_MESSAGE(checkpoint_load(path.c_str(), &model, &opt, &st, err) == 0, err);
    std::vector<float> all(model.params[0].data, model.params[0].data + model.num_parameters);
    all.insert(all.end(), opt.m, opt.m + model.num_parameters);
    all.insert(all.end(), opt.v, opt.v + model.num_parameters);
    optimizer_free(&opt);
    gpt2_free(&model);
    return all;
}

TEST_CASE("train: N steps straight equal N/2 steps + checkpoint + resume + N/2 steps, bit for bit") {
    std::string dir = make_test_data(1);
    char err[ERR_LEN];
    OptimizerConfig oc = optimizer_config_adamw();
    RunResult res;

    RunConfig straight = test_config(dir, {"--run-name", "straight"});
    REQUIRE_MESSAGE(run_training(&straight, &oc, DEV_CPU, &res, err) == 0, err);
    CHECK(res.steps == 8);

    RunConfig first = test_config(dir, {"--run-name", "split", "--stop-at", "4"});
    REQUIRE_MESSAGE(run_training(&first, &oc, DEV_CPU, &res, err) == 0, err);
    CHECK(res.steps == 4);
    std::string ckpt = dir + "/runs/split/checkpoint.bin";
    RunConfig second = test_config(dir, {"--resume", ckpt});
    REQUIRE_MESSAGE(run_training(&second, &oc, DEV_CPU, &res, err) == 0, err);
    CHECK(res.steps == 8);

    std::vector<float> a = checkpoint_numbers(dir + "/runs/straight/checkpoint.bin");
    std::vector<float> b = checkpoint_numbers(ckpt);
    REQUIRE(a.size() == b.size());
    CHECK(memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);  // parameters, m and v: the same bits
    std::vector<std::string> la = logged_losses(dir + "/runs/straight/log.csv");
    std::vector<std::string> lb = logged_losses(dir + "/runs/split/log.csv");
    CHECK(la.size() == 8);
    CHECK(la == lb);  // the same 8 training losses, 4 before and 4 after the resume
}

TEST_CASE("train: a diverging run stops with one message and keeps its last good checkpoint") {
    std::string dir = make_test_data(2);
    char err[ERR_LEN] = "";
    OptimizerConfig oc = optimizer_config_adamw();
    oc.lr = 1e30f;  // the first update makes the weights astronomically large: the next loss is not finite
    oc.grad_clip = 0.0f;
    RunResult res;
    RunConfig rc = test_config(dir, {"--run-name", "diverge", "--checkpoint-every", "1"});
    CHECK(run_training(&rc, &oc, DEV_CPU, &res, err) != 0);
    CHECK(res.status == 1);
    CHECK(strstr(err, "stopping") != NULL);
    CHECK(strstr(err, "checkpoint.bin") != NULL);
    // the checkpoint on disk is the last good one: finite parameters
    std::vector<float> numbers = checkpoint_numbers(dir + "/runs/diverge/checkpoint.bin");
    bool finite = true;
    for (float x : numbers) finite = finite && isfinite(x);
    CHECK(finite);
}

TEST_CASE("flags: defaults come from the table; bad values are refused by name") {
    RunConfig rc;
    char err[ERR_LEN];
    char a0[] = "--batch", a1[] = "x7";
    char* bad[] = {a0, a1};
    CHECK(run_config_from_args(&rc, 2, bad, err) != 0);
    CHECK(std::string(err) == "--batch: expected an integer, got 'x7'");
    char b0[] = "--bogus";
    char* unknown[] = {b0};
    CHECK(run_config_from_args(&rc, 1, unknown, err) != 0);
    CHECK(strstr(err, "unknown flag '--bogus'") != NULL);
    REQUIRE(run_config_from_args(&rc, 0, NULL, err) == 0);
    CHECK(std::string(rc.data) == "data/tinyshakespeare.txt");
    CHECK(rc.seed == 1337);
    CHECK(rc.grad_accum == 1);
}
