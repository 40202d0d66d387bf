// tests/test_train.cpp: whole runs through run_training on small synthetic shards (tests/runutil.h): resuming is bit-exact,
// a diverging run stops with a message and keeps its last good checkpoint, --stop-at leaves a checkpoint.
#include <unistd.h>
#include <string>
#include <vector>
#include "runutil.h"

// a checkpoint's model and optimizer, loaded on the CPU (gpt2_free and optimizer_free them)
static void checkpoint_model(const std::string& path, GPT2* model, Optimizer* opt) {
    GPT2Config cfg;
    RunConfig rc;
    OptimizerConfig oc;
    TrainState st;
    char err[ERR_LEN];
    REQUIRE_MESSAGE(checkpoint_peek(path.c_str(), &cfg, &rc, sizeof(rc), &oc, &st, err) == 0, err);
    gpt2_build(model, &cfg, 1, 1, DEV_CPU, 0);
    REQUIRE(optimizer_init(opt, model, &oc, err) == 0);
    REQUIRE_MESSAGE(checkpoint_load(path.c_str(), model, opt, &st, err) == 0, err);
}

// parameters and optimizer moments of a checkpoint, as one host vector
static std::vector<float> checkpoint_numbers(const std::string& path) {
    GPT2 model;
    Optimizer opt;
    checkpoint_model(path, &model, &opt);
    std::vector<float> all(model.params[0].data, model.params[0].data + model.num_parameters);
    all.insert(all.end(), opt.m, opt.m + model.num_parameters);
    all.insert(all.end(), opt.v, opt.v + model.num_parameters);
    optimizer_free(&opt);
    gpt2_free(&model);
    return all;
}

// At both precisions: at bf16 the resumed run rebuilds the weights' bf16 copy from the checkpoint's fp32 master
// weights, and must still be the same run.
TEST_CASE("train: N steps straight equal N/2 steps + checkpoint + resume + N/2 steps, bit for bit (fp32 and bf16)") {
    std::string dir = make_test_data(1);
    char err[ERR_LEN];
    OptimizerConfig oc = optimizer_config_adamw();
    std::vector<std::string> resumed[2];  // each precision's last 4 losses, after the resume
    for (std::string precision : {"fp32", "bf16"}) {
        CAPTURE(precision);
        RunResult res;
        std::string straight_name = "straight-" + precision, split_name = "split-" + precision;
        RunConfig straight = test_config(dir, {"--run-name", straight_name, "--precision", precision});
        REQUIRE_MESSAGE(run_training(&straight, &oc, DEV_CPU, &res, err) == 0, err);
        CHECK(res.steps == 8);

        RunConfig first = test_config(dir, {"--run-name", split_name, "--precision", precision, "--stop-at", "4"});
        REQUIRE_MESSAGE(run_training(&first, &oc, DEV_CPU, &res, err) == 0, err);
        CHECK(res.steps == 4);
        std::string ckpt = dir + "/runs/" + split_name + "/checkpoint.bin";
        RunConfig second = test_config(dir, {"--resume", ckpt});
        REQUIRE_MESSAGE(run_training(&second, &oc, DEV_CPU, &res, err) == 0, err);
        CHECK(res.steps == 8);

        std::vector<float> a = checkpoint_numbers(dir + "/runs/" + straight_name + "/checkpoint.bin");
        std::vector<float> b = checkpoint_numbers(ckpt);
        REQUIRE(a.size() == b.size());
        CHECK(memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);  // parameters, m and v: the same bits
        std::vector<std::string> la = logged_losses(dir + "/runs/" + straight_name + "/log.csv");
        std::vector<std::string> lb = logged_losses(dir + "/runs/" + split_name + "/log.csv");
        CHECK(la.size() == 8);
        CHECK(la == lb);  // the same 8 training losses, 4 before and 4 after the resume
        resumed[precision == "bf16"].assign(lb.begin() + 4, lb.end());
    }
    CHECK(resumed[0] != resumed[1]);  // the resumed bf16 run kept its checkpoint's precision
}

// log.csv's last column, matrix_rms, is sqrt(Σ w² / n) over the hidden matrices' weights after the step
// (optim.h's params_norms): the last step's value against the same RMS computed here from the final checkpoint.
TEST_CASE("train: log.csv's matrix_rms is the RMS of the hidden matrices' weights after the step") {
    std::string dir = make_test_data(1);
    char err[ERR_LEN];
    OptimizerConfig oc = optimizer_config_muon();
    RunResult res;
    RunConfig rc = test_config(dir, {"--run-name", "rms", "--steps", "3"});
    REQUIRE_MESSAGE(run_training(&rc, &oc, DEV_CPU, &res, err) == 0, err);
    GPT2 model;
    Optimizer opt;
    checkpoint_model(dir + "/runs/rms/checkpoint.bin", &model, &opt);
    double sum_sq = 0.0, n = 0.0;
    for (int i = 0; i < opt.num_slots; i++) {
        const ParamSlot* s = &opt.slots[i];
        if (s->kind != PARAM_MATRIX) continue;
        for (size_t k = 0; k < (size_t)s->rows * s->cols; k++) sum_sq += (double)model.params[0].data[s->offset + k] *
                                                                          model.params[0].data[s->offset + k];
        n += (double)s->rows * s->cols;
    }
    REQUIRE(n > 0);
    optimizer_free(&opt);
    gpt2_free(&model);
    FILE* f = fopen((dir + "/runs/rms/log.csv").c_str(), "r");
    REQUIRE(f != NULL);
    char line[512], last[512] = "";
    while (fgets(line, sizeof(line), f)) {
        const char* end = strrchr(line, ',');  // step 3's training row (its evaluation's row ends with a comma)
        if (strncmp(line, "3,", 2) == 0 && end && end[1] != '\n') snprintf(last, sizeof(last), "%s", line);
    }
    fclose(f);
    const char* col = strrchr(last, ',');
    REQUIRE(col != NULL);
    CHECK(atof(col + 1) > 0.0);
    CHECK(fabs(atof(col + 1) - sqrt(sum_sq / n)) <= 6e-7);  // printed with 6 decimals
}

// --matmul bf16 rounds every input of the layers' products to bf16 (8 mantissa bits), and --precision bf16 also
// stores the weights the layers read and every activation as bf16 values (model.h): over 50 steps the losses
// of d2 on a learnable corpus follow the fp32 run's within 1% (the bf16 target of issue 14; measured 2.1e-4 relative
// for the products alone, 3.9e-4 at bf16 precision), and differ from them (the rounding is there: an unrounded run
// is the same bits).
TEST_CASE("train: 50 steps with bf16 products, and at bf16 precision, follow the fp32 run's losses within 1%") {
    std::string dir = make_test_data(8, true);
    char err[ERR_LEN];
    OptimizerConfig oc = optimizer_config_muon();
    std::vector<std::vector<std::string>> losses;
    const char* runs[3][3] = {{"fp32", "fp32", "fp32"}, {"bf16-products", "bf16", "fp32"}, {"bf16", "auto", "bf16"}};
    for (auto& run : runs) {
        RunResult res;
        RunConfig rc = test_config(dir, {"--run-name", run[0], "--model", "d2", "--matmul", run[1], "--precision",
                                         run[2], "--steps", "50", "--eval-every", "50"});
        REQUIRE_MESSAGE(run_training(&rc, &oc, DEV_CPU, &res, err) == 0, err);
        losses.push_back(logged_losses(dir + "/runs/" + run[0] + "/log.csv"));
        REQUIRE(losses.back().size() == 50);
    }
    for (int k = 1; k < 3; k++) {
        double worst = 0.0;
        for (int i = 0; i < 50; i++) {
            double a = atof(losses[0][i].c_str()), b = atof(losses[k][i].c_str());
            worst = fmax(worst, fabs(a - b) / a);
        }
        MESSAGE(std::string(runs[k][0]) << ": worst relative loss difference over 50 steps " << worst);
        CHECK(worst < 1e-2);
        CHECK(losses[0] != losses[k]);
    }
    CHECK(losses[1] != losses[2]);  // the stored activations' rounding is a rounding of its own
    CHECK(atof(losses[0][49].c_str()) < atof(losses[0][0].c_str()) - 2.0);  // it learned (10.9 -> 6.4): a real test
}

// true when every parameter and moment of the checkpoint at `path` is finite
static bool checkpoint_finite(const std::string& path) {
    std::vector<float> numbers = checkpoint_numbers(path);
    for (float x : numbers)
        if (!isfinite(x)) return false;
    return true;
}

// the step a checkpoint was written at
static long long checkpoint_step(const std::string& path) {
    GPT2Config cfg;
    RunConfig rc;
    OptimizerConfig oc;
    TrainState st;
    char err[ERR_LEN];
    REQUIRE_MESSAGE(checkpoint_peek(path.c_str(), &cfg, &rc, sizeof(rc), &oc, &st, err) == 0, err);
    return (long long)st.step;
}

// The NaN promise: a diverging run stops at the step that diverged, before a checkpoint can hold its numbers;
// the message names the checkpoint kept (finite, at the step it says) or says there is none.
TEST_CASE("train: a diverging run stops where it diverges, keeps a finite checkpoint, and says which") {
    std::string dir = make_test_data(2);
    RunResult res;
    // weight decay 1e6 at lr 1e6 multiplies the weights by about -1e12 a step: in a few steps they overflow.
    // Evaluated every step, the validation loss is the first to go; evaluated only at the end, the training loss.
    for (const char* eval_every : {"1", "100"}) {
        char err[ERR_LEN] = "";
        OptimizerConfig oc = optimizer_config_adamw();
        oc.lr = oc.adam_lr = 1e6f;
        oc.weight_decay = oc.adam_weight_decay = 1e6f;
        oc.grad_clip = 0.0f;
        std::string name = std::string("explode") + eval_every;
        RunConfig rc = test_config(dir, {"--run-name", name, "--checkpoint-every", "1", "--eval-every", eval_every,
                                         "--schedule", "constant", "--warmup", "0"});
        CHECK(run_training(&rc, &oc, DEV_CPU, &res, err) != 0);
        INFO("eval every " << std::string(eval_every) << ": " << err);
        CHECK(res.status == 1);
        CHECK(strstr(err, "stopping") != NULL);
        std::string ckpt = dir + "/runs/" + name + "/checkpoint.bin";
        REQUIRE(strstr(err, ("the last good checkpoint, " + ckpt).c_str()) != NULL);
        CHECK(checkpoint_finite(ckpt));
        long long at = checkpoint_step(ckpt);
        CHECK(at >= 1);
        CHECK(strstr(err, ("at step " + std::to_string(at) + ", is kept").c_str()) != NULL);
    }
    // eps 0: the padded vocabulary's rows have zero gradients, so the first update is 0/0 = NaN; the run stops at
    // step 1, before its first checkpoint, and says there is none
    char err[ERR_LEN] = "";
    OptimizerConfig oc = optimizer_config_adamw();
    oc.eps = 0.0f;
    RunConfig rc = test_config(dir, {"--run-name", "nan", "--checkpoint-every", "1"});
    CHECK(run_training(&rc, &oc, DEV_CPU, &res, err) != 0);
    INFO(err);
    CHECK(res.status == 1);
    CHECK(strstr(err, "step 1: the norm of the updated parameters is NaN") != NULL);
    CHECK(strstr(err, "no checkpoint had been written yet") != NULL);
    CHECK(access((dir + "/runs/nan/checkpoint.bin").c_str(), F_OK) != 0);
}

// A validation loss that is not finite stops the run too: embeddings of 3e38 (finite, so the file is accepted) make
// the first evaluation's logits overflow.
TEST_CASE("train: a non-finite validation loss stops the run") {
    std::string dir = make_test_data(3);
    GPT2Config cfg;
    char err[ERR_LEN] = "";
    REQUIRE(gpt2_config_preset(&cfg, "tiny", err) == 0);
    GPT2 model;
    gpt2_build(&model, &cfg, 1, 1, DEV_CPU, 0);
    for (size_t i = 0; i < model.params[P_WTE].size; i++) model.params[P_WTE].data[i] = 3e38f;
    std::string huge = dir + "/huge.bin";
    REQUIRE_MESSAGE(model_save(&model, huge.c_str(), err) == 0, err);
    gpt2_free(&model);
    OptimizerConfig oc = optimizer_config_adamw();
    RunResult res;
    RunConfig rc = test_config(dir, {"--run-name", "huge", "--init-from", huge});
    CHECK(run_training(&rc, &oc, DEV_CPU, &res, err) != 0);
    INFO(err);
    CHECK(res.status == 1);
    CHECK(strstr(err, "step 0: the validation loss is") != NULL);
    CHECK(strstr(err, "no checkpoint had been written yet") != NULL);
}

TEST_CASE("flags: defaults come from the table; bad values are refused by name") {
    RunConfig rc;
    char err[ERR_LEN];
    char a0[] = "--batch", a1[] = "x7";
    char* bad[] = {a0, a1};
    CHECK(run_config_from_args(&rc, 2, bad, err) != 0);
    CHECK(std::string(err) == "--batch: expected an integer from 0 to 65536, got 'x7'");
    char b0[] = "--bogus";
    char* unknown[] = {b0};
    CHECK(run_config_from_args(&rc, 1, unknown, err) != 0);
    CHECK(strstr(err, "unknown flag '--bogus'") != NULL);
    REQUIRE(run_config_from_args(&rc, 0, NULL, err) == 0);
    CHECK(std::string(rc.data) == "data/tinyshakespeare.txt");
    CHECK(rc.seed == 1337);
    CHECK(rc.grad_accum == 1);
}

// --cuda-graph is the GPU's only: the CPU's resolved settings say 0 (so the start-up line and a checkpoint say what
// runs), the GPU's keep what was asked
TEST_CASE("settings: --cuda-graph 1 is kept on the GPU and resolved to 0 on the CPU") {
    CHECK(test_config("/nonexistent", {"--cuda-graph", "1"}, DEV_CPU).cuda_graph == 0);
    CHECK(test_config("/nonexistent", {"--cuda-graph", "1"}, DEV_CUDA).cuda_graph == 1);
    CHECK(test_config("/nonexistent", {}, DEV_CUDA).cuda_graph == 0);  // off by default
}
