// tests/test_optim.cpp: the optimizer plumbing of optim.h: names and settings, which tensors each optimizer
// touches, Q/K/V apart, weight decay ∝ lr², and the health measurements of a step.
#include <string>
#include <vector>
#include "testutil.h"
#include "../run.h"

static GPT2Config optim_test_config() { return gpt2_config_make(8, 60, 64, 2, 2, 16); }

// a model with gradients from one real backward on a random batch
static void model_with_gradients(GPT2* model, uint64_t seed) {
    GPT2Config cfg = optim_test_config();
    gpt2_build(model, &cfg, 2, 8, DEV_CPU, seed);
    int ids[16], targets[16];
    Rng rng = rng_make(seed + 100);
    for (int i = 0; i < 16; i++) {
        ids[i] = (int)(rng_u32(&rng) % cfg.vocab_size);
        targets[i] = (int)(rng_u32(&rng) % cfg.vocab_size);
    }
    gpt2_zero_grad(model);
    gpt2_forward(model, ids, targets, 2, 8);
    gpt2_backward(model, 2, 8, 1.0f / 16);
}

TEST_CASE("optimizers by name: the family, suffixes, per-optimizer settings, and clear errors") {
    OptimizerConfig c;
    char err[ERR_LEN];
    REQUIRE(optimizer_config_by_name("muon", &c, err) == 0);
    CHECK(c.matrix == MATRIX_MUON);
    CHECK(c.muon.method == MUON_NS);
    CHECK(c.lr == doctest::Approx(0.02));
    REQUIRE(optimizer_config_by_name("polar", &c, err) == 0);
    CHECK(c.muon.method == MUON_POLAR);
    REQUIRE(optimizer_config_by_name("normuon", &c, err) == 0);
    CHECK(c.muon.normuon == 1);
    REQUIRE(optimizer_config_by_name("rms-p=0.25+lr2", &c, err) == 0);
    CHECK(c.muon.method == MUON_SPECTRAL);
    CHECK(c.muon.base == BASE_ADAM_RMS);
    CHECK(c.muon.p == 0.25f);
    CHECK(c.lr2_decay == 1);
    CHECK(c.lr == doctest::Approx(2e-2));  // the Delving paper's AdamQ
    REQUIRE(optimizer_config_by_name("p=0", &c, err) == 0);
    CHECK(c.muon.method == MUON_NS);  // p = 0 is Muon
    REQUIRE(optimizer_config_by_name("muon+match+qkv", &c, err) == 0);
    CHECK(c.muon.adjust == ADJUST_MATCH_RMS_ADAMW);
    CHECK(c.split_qkv == 1);
    CHECK(c.lr == doctest::Approx(optimizer_config_adamw().lr));
    CHECK(optimizer_config_by_name("p=0.3", &c, err) != 0);
    CHECK(strstr(err, "p in {0, 0.25, 0.5, 1}") != NULL);
    CHECK(optimizer_config_by_name("muon+foo", &c, err) != 0);
    CHECK(strstr(err, "unknown suffix '+foo'") != NULL);
    CHECK(optimizer_config_by_name("sgd", &c, err) != 0);
    CHECK(strstr(err, "unknown optimizer 'sgd'") != NULL);

    RunConfig rc;
    REQUIRE(run_config_from_args(&rc, 0, NULL, err) == 0);
    REQUIRE(optimizer_config_from_run(&rc, "muon:lr=0.05:wd=0", &c, err) == 0);
    CHECK(c.lr == doctest::Approx(0.05));
    CHECK(c.weight_decay == 0.0f);
    CHECK(std::string(c.name) == "muon:lr=0.05:wd=0");
    CHECK(optimizer_config_from_run(&rc, "adamw:lr=fast", &c, err) != 0);
    CHECK(strstr(err, "bad setting 'lr=fast'") != NULL);
    rc.lr = 0.1f;  // a flag applies to every optimizer, then the spec's own settings win
    REQUIRE(optimizer_config_from_run(&rc, "adamw", &c, err) == 0);
    CHECK(c.lr == doctest::Approx(0.1));
    CHECK(c.adam_lr == doctest::Approx(0.1));
}

// RunConfig from flags, as the command line makes it
static int settings_from(std::vector<std::string> args, RunConfig* rc, char* err) {
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(&a[0]);
    return run_config_from_args(rc, (int)argv.size(), argv.data(), err);
}

TEST_CASE("optimizer flags: Muon's knobs by torch.optim.Muon's names, checked, and flags win over --adjust-lr") {
    RunConfig rc;
    OptimizerConfig c;
    char err[ERR_LEN];
    REQUIRE(settings_from({"--momentum", "0.9", "--nesterov", "0", "--ns-steps", "3", "--adjust-lr", "match_rms_adamw",
                           "--ns-dtype", "bf16"}, &rc, err) == 0);
    REQUIRE(optimizer_config_from_run(&rc, "muon", &c, err) == 0);
    CHECK(c.muon.ns_bf16 == 1);
    CHECK(c.muon.momentum == 0.9f);
    CHECK(c.muon.nesterov == 0);
    CHECK(c.muon.ns_steps == 3);
    CHECK(c.muon.adjust == ADJUST_MATCH_RMS_ADAMW);
    CHECK(c.lr == optimizer_config_adamw().lr);  // match_rms_adamw takes AdamW's lr and decay
    CHECK(c.weight_decay == optimizer_config_adamw().weight_decay);
    REQUIRE(optimizer_config_from_run(&rc, "adamw", &c, err) == 0);  // AdamW has no such knobs: untouched
    CHECK(c.muon.momentum == 0.0f);
    CHECK(c.muon.ns_bf16 == 0);
    REQUIRE(settings_from({"--adjust-lr", "match_rms_adamw", "--lr", "0.05"}, &rc, err) == 0);
    REQUIRE(optimizer_config_from_run(&rc, "muon", &c, err) == 0);
    CHECK(c.lr == 0.05f);  // an explicit --lr wins
    CHECK(c.muon.ns_bf16 == 0);  // fp32 by default
    CHECK(c.muon.ns_gram == 0.0f);  // and never on the Gram matrix
    REQUIRE(settings_from({"--adjust-lr", "original"}, &rc, err) == 0);
    REQUIRE(optimizer_config_from_run(&rc, "muon+match", &c, err) == 0);
    CHECK(c.muon.adjust == ADJUST_ORIGINAL);  // the flag after the name's suffix
    REQUIRE(settings_from({"--ns-gram", "2.5"}, &rc, err) == 0);
    REQUIRE(optimizer_config_from_run(&rc, "polar", &c, err) == 0);
    CHECK(c.muon.ns_gram == 2.5f);
    // the Gram form with bf16: each flag is valid alone, the pair is refused when the optimizer is made
    REQUIRE(settings_from({"--ns-gram", "2", "--ns-dtype", "bf16"}, &rc, err) == 0);
    CHECK(optimizer_config_from_run(&rc, "muon", &c, err) != 0);
    CHECK(std::string(err).find("--ns-gram 2 with --ns-dtype bf16") == 0);
    CHECK(optimizer_config_from_run(&rc, "adamw", &c, err) == 0);  // no Newton-Schulz there: nothing to refuse
    struct Bad { std::vector<std::string> args; const char* message; };
    const Bad bad[] = {{{"--momentum", "1"}, "--momentum 1: expected a number in [0, 1), or default"},
                       {{"--nesterov", "2"}, "--nesterov 2: expected an integer from 0 to 1, or default"},
                       {{"--ns-steps", "0"}, "--ns-steps 0: expected an integer from 1 to 99, or default"},
                       {{"--ns-steps", "100"}, "--ns-steps 100: expected an integer from 1 to 99, or default"},
                       {{"--adjust-lr", "fast"}, "--adjust-lr: expected one of original|match_rms_adamw, got 'fast'"},
                       {{"--ns-dtype", "fp16"}, "--ns-dtype: expected one of fp32|bf16, got 'fp16'"},
                       {{"--matmul", "fp16"}, "--matmul: expected one of auto|fp32|tf32|bf16, got 'fp16'"},
                       {{"--precision", "fp16"}, "--precision: expected one of auto|bf16|fp32, got 'fp16'"},
                       {{"--attention", "fast"}, "--attention: expected one of flash|simple, got 'fast'"},
                       {{"--ns-gram", "-1"}, "--ns-gram -1: expected a number from 0 to 1000000"}};
    for (const Bad& b : bad) {  // refused as they are parsed, by the flag table's ranges
        CHECK(settings_from(b.args, &rc, err) != 0);
        CHECK(std::string(err) == b.message);
    }
}

TEST_CASE("muon run: the hidden matrices get muon_update, everything else AdamW") {
    GPT2 model;
    model_with_gradients(&model, 1);
    std::vector<float> before(model.params[0].data, model.params[0].data + model.num_parameters);
    std::vector<float> grads(model.params[0].grad, model.params[0].grad + model.num_parameters);
    OptimizerConfig oc = optimizer_config_muon();
    oc.grad_clip = 0.0f;  // so muon_update below sees the same gradient
    oc.adam_lr = 0.0f;    // the AdamW group must then stay exactly where it is
    oc.adam_weight_decay = 0.0f;
    Optimizer opt;
    char err[ERR_LEN];
    REQUIRE(optimizer_init(&opt, &model, &oc, err) == 0);
    optimizer_step(&opt, &model, 1.0f, false);
    const float* after = model.params[0].data;
    std::vector<double> work(muon_work_doubles(48, 64));
    for (int i = 0; i < opt.num_slots; i++) {
        const ParamSlot* s = &opt.slots[i];
        size_t n = (size_t)s->rows * s->cols;
        if (s->kind == PARAM_MATRIX) {
            CHECK(opt.use_matrix_method[i] == 1);
            // the same step computed directly from the pure update function
            std::vector<float> p(before.begin() + s->offset, before.begin() + s->offset + n), m(n, 0.0f), v(n, 0.0f);
            MuonHyper h = muon_hyper(&oc, oc.lr, oc.lr, 1);
            muon_update(p.data(), grads.data() + s->offset, m.data(), v.data(), s->rows, s->cols, &h, work.data(),
                        NULL);
            CHECK_MESSAGE(memcmp(p.data(), after + s->offset, n * sizeof(float)) == 0, s->name);
        } else {
            CHECK(opt.use_matrix_method[i] == 0);
            CHECK_MESSAGE(memcmp(before.data() + s->offset, after + s->offset, n * sizeof(float)) == 0, s->name);
        }
    }
    optimizer_free(&opt);
    gpt2_free(&model);
}

TEST_CASE("muon+qkv: Q, K and V are orthogonalized apart") {
    GPT2 fused, split;
    model_with_gradients(&fused, 2);
    model_with_gradients(&split, 2);
    OptimizerConfig a = optimizer_config_muon(), b = optimizer_config_muon();
    b.split_qkv = 1;
    a.grad_clip = b.grad_clip = 0.0f;
    Optimizer oa, ob;
    char err[ERR_LEN];
    REQUIRE(optimizer_init(&oa, &fused, &a, err) == 0);
    REQUIRE(optimizer_init(&ob, &split, &b, err) == 0);
    std::vector<float> before(split.params[0].data, split.params[0].data + split.num_parameters);
    optimizer_step(&oa, &fused, 1.0f, false);
    optimizer_step(&ob, &split, 1.0f, false);
    int C = 16;
    const Tensor* qkv = &split.params[P_QKVW];
    size_t off = qkv->data - split.params[0].data;  // layer 0's (3C, C)
    std::vector<double> work(muon_work_doubles(C, C));
    MuonHyper h = muon_hyper(&b, b.lr, b.lr, 1);
    for (int block = 0; block < 3; block++) {
        size_t o = off + (size_t)block * C * C;
        std::vector<float> p(before.begin() + o, before.begin() + o + C * C), m(C * C, 0.0f), v(C * C, 0.0f);
        muon_update(p.data(), split.params[0].grad + o, m.data(), v.data(), C, C, &h, work.data(), NULL);
        CHECK(memcmp(p.data(), split.params[0].data + o, sizeof(float) * C * C) == 0);
    }
    CHECK(max_abs_diff(fused.params[0].data + off, split.params[0].data + off, 3 * C * C) > 1e-4);
    optimizer_free(&oa);
    optimizer_free(&ob);
    gpt2_free(&fused);
    gpt2_free(&split);
}

TEST_CASE("weight decay ∝ lr²: at half the peak lr, decay by wd·lr²/lr_max") {
    GPT2 model;
    GPT2Config cfg = optim_test_config();
    gpt2_build(&model, &cfg, 1, 4, DEV_CPU, 3);
    std::vector<float> before(model.params[0].data, model.params[0].data + model.num_parameters);
    OptimizerConfig oc = optimizer_config_adamw();
    oc.lr = oc.adam_lr = 0.4f;
    oc.weight_decay = oc.adam_weight_decay = 0.5f;
    oc.lr2_decay = 1;
    Optimizer opt;
    char err[ERR_LEN];
    REQUIRE(optimizer_init(&opt, &model, &oc, err) == 0);
    gpt2_zero_grad(&model);  // no gradient: only the decay moves the weights
    optimizer_step(&opt, &model, 0.5f, false);
    // lr_t = 0.2: ordinary decay would be 1 − 0.2·0.5 = 0.9; ∝ lr²: 1 − 0.5·0.2²/0.4 = 0.95
    const ParamSlot* fc = NULL;
    for (int i = 0; i < opt.num_slots; i++)
        if (strcmp(opt.slots[i].name, "h1.fcw") == 0) fc = &opt.slots[i];
    REQUIRE(fc != NULL);
    size_t j = fc->offset + 7;
    CHECK(model.params[0].data[j] == doctest::Approx(before[j] * 0.95).epsilon(1e-6));
    optimizer_free(&opt);
    gpt2_free(&model);
}

TEST_CASE("health: measured on every hidden matrix, in range, and Muon's updates are higher rank than the gradient") {
    for (const char* name : {"adamw", "muon", "polar"}) {
        GPT2 model;
        model_with_gradients(&model, 4);
        OptimizerConfig oc;
        char err[ERR_LEN];
        REQUIRE(optimizer_config_by_name(name, &oc, err) == 0);
        Optimizer opt;
        REQUIRE(optimizer_init(&opt, &model, &oc, err) == 0);
        std::vector<double> g;
        optimizer_step(&opt, &model, 1.0f, true);
        CHECK(opt.health_step == opt.t);
        for (int i = 0; i < opt.num_slots; i++) {
            const ParamSlot* s = &opt.slots[i];
            if (s->kind != PARAM_MATRIX) continue;
            const UpdateHealth* h = &opt.health[i];
            int k = s->rows < s->cols ? s->rows : s->cols;
            INFO(name << " " << s->name);
            CHECK(h->stable_rank >= 1.0 - 1e-9);
            CHECK(h->stable_rank <= k + 1e-9);
            CHECK(h->effective_rank >= 1.0 - 1e-9);
            CHECK(h->effective_rank <= k + 1e-9);
            CHECK(fabs(h->grad_cosine) <= 1.0 + 1e-12);
            CHECK(h->grad_cosine > 0.0);  // every update here descends
            CHECK(h->update_rms > 0.0);
            if (strcmp(name, "adamw") != 0) {
                // the gradient of a one-batch loss is far from full rank; its orthogonalization is not
                std::vector<double> gd((size_t)s->rows * s->cols), work(muon_work_doubles(s->rows, s->cols));
                for (size_t j = 0; j < gd.size(); j++) gd[j] = model.params[0].grad[s->offset + j];
                CHECK(h->stable_rank > 2.0 * matrix_stable_rank(gd.data(), s->rows, s->cols, work.data()));
            }
        }
        optimizer_free(&opt);
        gpt2_free(&model);
    }
}
