// tests/test_train.cpp: whole runs through run_training on small synthetic shards: resuming is bit-exact,
// a diverging run stops with a message and keeps its last good checkpoint, --stop-at leaves a checkpoint.
#include <string>
#include <vector>
#include "testutil.h"
#include "../flags.h"

// a temporary folder with a training and a validation shard of random tokens (llm.c's format)
static std::string make_test_data(uint64_t seed) {
    char tmpl[] = "/tmp/muongpt_train_XXXXXX";
    std::string dir = mkdtemp(tmpl);
    Rng rng = rng_make(seed);
    const char* names[2] = {"/train.bin", "/val.bin"};
    for (int f = 0; f < 2; f++) {
        int count = f == 0 ? 4000 : 1000;
        int header[256] = {20240520, 1, count};
        std::vector<uint16_t> tokens(count);
        for (int i = 0; i < count; i++) tokens[i] = (uint16_t)(rng_u32(&rng) % 50257);
        FILE* fp = fopen((dir + names[f]).c_str(), "wb");
        REQUIRE(fp != NULL);
        fwrite(header, sizeof(int), 256, fp);
        fwrite(tokens.data(), 2, count, fp);
        fclose(fp);
    }
    return dir;
}

// RunConfig from flags, as the command line would make it
static RunConfig test_config(const std::string& dir, std::vector<std::string> extra) {
    std::vector<std::string> args = {"--model", "tiny", "--batch", "2", "--seq-len", "16", "--steps", "8",
                                     "--warmup", "2", "--data", dir + "/train.bin", "--val-data", dir + "/val.bin",
                                     "--out", dir + "/runs", "--eval-every", "2", "--eval-batches", "2",
                                     "--device", "cpu"};
    args.insert(args.end(), extra.begin(), extra.end());
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(&a[0]);
    RunConfig rc;
    char err[ERR_LEN];
    REQUIRE_MESSAGE(run_config_from_args(&rc, (int)argv.size(), argv.data(), err) == 0, err);
    run_config_resolve(&rc, DEV_CPU);
    return rc;
}

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

// the train_loss column of a run's log.csv, as text (one entry per training step)
static std::vector<std::string> logged_losses(const std::string& csv) {
    std::vector<std::string> out;
    FILE* f = fopen(csv.c_str(), "r");
    REQUIRE(f != NULL);
    char line[512];
    if (!fgets(line, sizeof(line), f)) line[0] = 0;  // the header
    while (fgets(line, sizeof(line), f)) {
        char* c1 = strchr(line, ',');
        char* c2 = c1 ? strchr(c1 + 1, ',') : NULL;
        char* c3 = c2 ? strchr(c2 + 1, ',') : NULL;
        if (c2 && c3 && c3 > c2 + 1) out.push_back(std::string(c2 + 1, c3));
    }
    fclose(f);
    return out;
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
