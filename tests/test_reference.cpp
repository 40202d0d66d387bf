// tests/test_reference.cpp: our GPT-2, AdamW and Muon against PyTorch's, number for number, on the CPU.
// tests/fixtures/reference_gpt2.bin (written by dev/gen_reference_fixture.py with dev/reference.py) holds a tiny
// model's initial parameters, three batches, and what PyTorch computed from them in float32 and in float64:
// logits, loss and the 16 gradients of the first batch, then the parameters after three steps of
// torch.optim.AdamW, and of torch.optim.Muon + AdamW. We load the same parameters into model.h's GPT2 and
// run the same steps through optim.h. Flow: the whole of data -> model -> loss -> backward -> optimizer.
//
// How results are compared: per parameter tensor, the norm-wise relative error ‖ours − ref‖/‖ref‖ (a tensor
// at a time, so a wrong formula in one small tensor cannot hide in the others). After the optimizer steps we
// compare the change from the initial parameters, not the parameters: the change is what the optimizer
// computed, and next to the parameters (~0.1) its last digits would vanish in float32.
//
// The key bias. qkvb[l, C:2C] adds q·b_k to every attention score of a row, which the softmax ignores: its
// gradient is exactly zero, and in floating point it is rounding noise (~1e-9 in float32, ~1e-17 in float64).
// Adam divides a gradient by its own running size, so it turns that noise into steps of up to ~lr in any
// implementation (in three AdamW steps PyTorch's float32 run moves it by up to 9e-4, ours by 1.1e-3, PyTorch's
// float64 run by 2e-12 (noise 1e-18 over eps 1e-8), against lr 1e-2). Those 2C values per layer are left out
// of the optimizer comparisons; their gradient is checked to be at noise level instead.
// Tiny gradients. Adam's first step is g/(|g| + eps) per entry, whose slope eps/(|g| + eps)² peaks at
// 1/(4 eps) where |g| = eps = 1e-8: a float32 gradient entry carries an absolute error of ~1e-9 (5e-7 of the
// tensor's typical entry, from sums of ~32 terms that cancel), which there moves the step by up to 5% of lr.
// Measured: one qkvw entry with g = -6.46e-8 (float64), -6.39e-8 (ours), -6.44e-8 (torch float32) puts a
// 5e-5 difference into a tensor whose change has norm 1.4. Entries with 0 < |g| < 1e-6 in the first
// gradient (below it, a gradient error of 1e-9 moves the step by more than 1e-5 of lr) are left out too:
// 3 of the 30K here.
#include "testutil.h"
#include "../optim.h"
#include "fixture.h"

struct Reference {
    Fixture fx;
    GPT2Config cfg;
    int B, T, steps;
    size_t n;  // parameters
};

static const FixtureArray* need(const Reference& r, const char* name, size_t count) {
    const FixtureArray* a = r.fx.find(name);
    REQUIRE_MESSAGE(a != NULL, "reference_gpt2.bin has no array " << std::string(name) << " (regenerate the fixture)");
    REQUIRE_MESSAGE(a->count() == count, std::string(name) << ": " << a->count() << " values, expected " << count);
    return a;
}

static void load_reference(Reference* r) {
    char err[ERR_LEN] = "";
    REQUIRE_MESSAGE(fixture_load(&r->fx, "tests/fixtures/reference_gpt2.bin", err) == 0, err);
    const int32_t* c = need(*r, "config", 9)->i32();
    REQUIRE(c != NULL);
    r->cfg.max_seq_len = c[0];
    r->cfg.vocab_size = c[1];
    r->cfg.padded_vocab_size = c[2];
    r->cfg.num_layers = c[3];
    r->cfg.num_heads = c[4];
    r->cfg.channels = c[5];
    r->B = c[6];
    r->T = c[7];
    r->steps = c[8];
    REQUIRE(gpt2_config_check(&r->cfg, err) == 0);
    r->n = gpt2_num_parameters(&r->cfg);
}

// the model built for the fixture's batch, holding the fixture's initial parameters
static void build_reference_model(GPT2* model, const Reference& r) {
    gpt2_build(model, &r.cfg, r.B, r.T, DEV_CPU, 1);
    memcpy(model->params[0].data, need(r, "p0", r.n)->f32(), r.n * sizeof(float));
}

// The fixture's float64 numbers (f32 or f64 arrays) as doubles
static std::vector<double> as_doubles(const FixtureArray* a) {
    std::vector<double> v(a->count());
    for (size_t i = 0; i < v.size(); i++) v[i] = a->f64() ? a->f64()[i] : a->f32() ? a->f32()[i] : a->i32()[i];
    return v;
}

// Per tensor ‖ours − ref‖/‖ref‖ <= tol, one CHECK per tensor naming it; skip[i] = 1 leaves element i out.
// Returns the largest error seen.
static double check_tensors(const char* what, const std::vector<double>& ours, const std::vector<double>& ref,
                            const GPT2Config* cfg, double tol, const std::vector<char>* skip = NULL) {
    int layers[NUM_PARAM_TENSORS], rows[NUM_PARAM_TENSORS], cols[NUM_PARAM_TENSORS];
    gpt2_param_shapes(cfg, layers, rows, cols);
    double worst = 0.0;
    size_t offset = 0;
    for (int i = 0; i < NUM_PARAM_TENSORS; i++) {
        size_t count = (size_t)layers[i] * rows[i] * cols[i];
        double num = 0.0, den = 0.0, max_abs = 0.0;
        for (size_t j = offset; j < offset + count; j++) {
            if (skip && (*skip)[j]) continue;
            double d = ours[j] - ref[j];
            num += d * d;
            den += ref[j] * ref[j];
            max_abs = fmax(max_abs, fabs(d));
        }
        double rel = sqrt(num / (den > 0 ? den : 1e-300));
        worst = fmax(worst, rel);
        CHECK_MESSAGE(rel <= tol, std::string(what) << " " << std::string(param_tensor_names[i]) << ": relative error "
                                                    << rel << " (max abs " << max_abs << ", ‖ref‖ " << sqrt(den)
                                                    << ") above " << tol);
        offset += count;
    }
    MESSAGE(std::string(what) << ": worst tensor relative error " << worst << " (tolerance " << tol << ")");
    return worst;
}

// 1 for the key-bias entries qkvb[l, C:2C] (see the top of the file)
static std::vector<char> key_bias_mask(const GPT2* model) {
    std::vector<char> mask(model->num_parameters, 0);
    int C = model->config.channels;
    size_t base = model->params[P_QKVB].data - model->params[0].data;
    for (int l = 0; l < model->config.num_layers; l++)
        for (int c = C; c < 2 * C; c++) mask[base + (size_t)l * 3 * C + c] = 1;
    return mask;
}

// The entries the optimizer comparisons leave out: the key bias, and the few entries whose first gradient is
// tiny but not zero, 0 < |g| < 1e-6 (see the top of the file). Checks they are few (< 0.1%).
static std::vector<char> ill_conditioned_mask(const GPT2* model, const Reference& r) {
    std::vector<char> mask = key_bias_mask(model);
    std::vector<double> g = as_doubles(need(r, "grad_f64", r.n));
    size_t tiny = 0;
    for (size_t i = 0; i < r.n; i++)
        if (!mask[i] && g[i] != 0.0 && fabs(g[i]) < 1e-6) {
            mask[i] = 1;
            tiny++;
        }
    CHECK_MESSAGE(tiny < r.n / 1000, tiny << " entries with a tiny first gradient");
    return mask;
}

static Schedule reference_schedule(const Reference& r) {
    std::vector<double> s = as_doubles(need(r, "schedule", 5));
    Schedule sched = {(ScheduleKind)(int)s[0], (int)s[1], (int)s[2], (float)s[3], (float)s[4]};
    return sched;
}

// Runs the fixture's steps with `opt` from p0, checking each step's loss and gradient norm against the
// fixture's run `run` (its arrays `run`_loss and `run`_norm), and returns the parameter change.
// Loss and norm tolerance: both are sums of many float32 terms (the norm over 30K gradients), whose rounding
// differs between the implementations by ~1e-7 relative; after one or two optimizer steps the parameters
// differ by up to ~5e-6 relative (see below), which moves the loss by less. Measured: at most 1.7e-7 relative
// for both; 5e-6 allows the parameter differences, and a 1% error in a Muon or AdamW step (5e-4) still fails.
static std::vector<double> run_steps(GPT2* model, Optimizer* opt, const Reference& r, const char* run) {
    Schedule sched = reference_schedule(r);
    const float* mult = need(r, "lr_mult", r.steps)->f32();
    std::string base(run);
    std::vector<double> ref_loss = as_doubles(need(r, (base + "_loss").c_str(), r.steps));
    std::vector<double> ref_norm = as_doubles(need(r, (base + "_norm").c_str(), r.steps));
    const int32_t* ids = need(r, "ids", (size_t)r.steps * r.B * r.T)->i32();
    const int32_t* targets = need(r, "targets", (size_t)r.steps * r.B * r.T)->i32();
    for (int s = 0; s < r.steps; s++) {
        CHECK(lr_multiplier(&sched, s) == doctest::Approx(mult[s]).epsilon(1e-6));  // float32 cosf vs numpy: 1 ulp
        gpt2_zero_grad(model);
        float loss = gpt2_forward(model, ids + (size_t)s * r.B * r.T, targets + (size_t)s * r.B * r.T, r.B, r.T);
        gpt2_backward(model, r.B, r.T, 1.0f / (r.B * r.T));
        double norm = optimizer_step(opt, model, lr_multiplier(&sched, s), false);
        CHECK_MESSAGE(fabs(loss - ref_loss[s]) <= 5e-6 * ref_loss[s], base << " step " << s << ": loss " << loss
                                                                        << " vs " << ref_loss[s]);
        CHECK_MESSAGE(fabs(norm - ref_norm[s]) <= 5e-6 * ref_norm[s], base << " step " << s << ": gradient norm "
                                                                        << norm << " vs " << ref_norm[s]);
    }
    const float* p0 = need(r, "p0", r.n)->f32();
    std::vector<double> delta(r.n);
    for (size_t i = 0; i < r.n; i++) delta[i] = (double)model->params[0].data[i] - p0[i];
    return delta;
}

// ----------------------------------------------------------------------------------------------------------

// Tolerances. Ours and torch's float32 both round every product and sum; they sum in different orders, so
// each result carries ~sqrt(K)·6e-8 relative noise for K-term sums (K up to 128 here) through ~25 ops:
// the measured torch-f32 vs torch-f64 gradient error is 3-5e-7. 5e-6 (ten times that) leaves room for any
// legitimate summation order and fails any formula error (a wrong term moves a tensor by > 1e-3).
TEST_CASE("reference: forward and backward agree with PyTorch (logits, loss, all 16 gradients)") {
    Reference r;
    load_reference(&r);
    GPT2 model;
    build_reference_model(&model, r);
    const int32_t* ids = need(r, "ids", (size_t)r.steps * r.B * r.T)->i32();
    const int32_t* targets = need(r, "targets", (size_t)r.steps * r.B * r.T)->i32();
    gpt2_zero_grad(&model);
    float loss = gpt2_forward(&model, ids, targets, r.B, r.T);
    size_t nl = (size_t)r.B * r.T * r.cfg.padded_vocab_size;
    std::vector<double> ours_logits(model.logits.data, model.logits.data + nl);  // the backward writes over them
    gpt2_backward(&model, r.B, r.T, 1.0f / (r.B * r.T));

    // the loss: a mean of 32 float32 losses; 1e-6 relative is ~15 float32 ulp
    double loss32 = as_doubles(need(r, "loss_f32", 1))[0], loss64 = as_doubles(need(r, "loss_f64", 1))[0];
    CHECK(fabs(loss - loss32) <= 1e-6 * loss64);
    CHECK(fabs(loss - loss64) <= 1e-6 * loss64);

    // the logits (B, T, Vp), padded columns included (they are computed; the loss ignores them)
    for (const char* name : {"logits_f32", "logits_f64"}) {
        std::vector<double> ref = as_doubles(need(r, name, nl));
        double num = 0, den = 0;
        for (size_t i = 0; i < nl; i++) {
            num += (ours_logits[i] - ref[i]) * (ours_logits[i] - ref[i]);
            den += ref[i] * ref[i];
        }
        CHECK_MESSAGE(sqrt(num / den) <= 5e-6, std::string(name) << ": relative error " << sqrt(num / den));
        MESSAGE(std::string(name) << ": relative error " << sqrt(num / den) << " (tolerance 5e-6)");
    }

    // every gradient, tensor by tensor
    std::vector<double> grad(model.params[0].grad, model.params[0].grad + r.n);
    check_tensors("gradient vs torch f32", grad, as_doubles(need(r, "grad_f32", r.n)), &r.cfg, 5e-6);
    check_tensors("gradient vs torch f64", grad, as_doubles(need(r, "grad_f64", r.n)), &r.cfg, 5e-6);

    // the key bias's gradient is zero up to rounding: below 1e-6 of the rest of qkvb's
    std::vector<char> key = key_bias_mask(&model);
    double key_sq = 0, rest_sq = 0;
    size_t base = model.params[P_QKVB].data - model.params[0].data;
    for (size_t j = base; j < base + model.params[P_QKVB].size; j++) (key[j] ? key_sq : rest_sq) += grad[j] * grad[j];
    CHECK(sqrt(key_sq) <= 1e-6 * sqrt(rest_sq));
    // the padded vocabulary rows get no gradient at all
    for (size_t j = (size_t)r.cfg.vocab_size * r.cfg.channels; j < model.params[P_WTE].size; j++)
        REQUIRE(model.params[P_WTE].grad[j] == 0.0f);
    gpt2_free(&model);
}

// Three steps of AdamW (decay on 2-D tensors, clipping to 1, the fixture's schedule) from the same start.
// Tolerance 5e-5 on each tensor's change. Gradients enter at ~5e-7 relative noise (above), and Adam's later
// steps divide running means of them; PyTorch's own float32 run differs from its float64 one by 3e-7 to 4e-6
// per tensor, ours by at most 5e-6 (measured). The floor: the gains sit near 1, where a float32 ulp is
// 1.2e-7, so a change of ~6e-3 per entry is only held to 2e-5 relative by any float32 implementation (the
// Muon run's AdamW group, at lr 3e-3, measures 1e-5 on them against float64). 5e-5 sits above that floor and
// still fails a wrong bias correction (~1e-1), decay on a vector (~5e-3) or a missing clip (the clip scales
// differ by step, 0.38 to 0.70, so Adam's ratios move by ~10%).
TEST_CASE("reference: three AdamW steps agree with torch.optim.AdamW") {
    Reference r;
    load_reference(&r);
    GPT2 model;
    build_reference_model(&model, r);
    std::vector<double> h = as_doubles(need(r, "adamw_hyper", 6));  // lr, beta1, beta2, eps, weight_decay, clip
    OptimizerConfig oc = optimizer_config_adamw();
    oc.lr = oc.adam_lr = (float)h[0];
    oc.beta1 = (float)h[1];
    oc.beta2 = (float)h[2];
    oc.eps = (float)h[3];
    oc.weight_decay = oc.adam_weight_decay = (float)h[4];
    oc.grad_clip = (float)h[5];
    Optimizer opt;
    char err[ERR_LEN];
    REQUIRE_MESSAGE(optimizer_init(&opt, &model, &oc, err) == 0, err);
    std::vector<double> delta = run_steps(&model, &opt, r, "adamw_f32");
    std::vector<char> skip = ill_conditioned_mask(&model, r);
    check_tensors("AdamW change vs torch f32", delta, as_doubles(need(r, "adamw_f32_delta", r.n)), &r.cfg, 5e-5, &skip);
    check_tensors("AdamW change vs torch f64", delta, as_doubles(need(r, "adamw_f64_delta", r.n)), &r.cfg, 5e-5, &skip);
    optimizer_free(&opt);
    gpt2_free(&model);
}

// Three steps of Muon on the hidden matrices + AdamW on the rest, against three PyTorch runs:
//   muon_ns64:  float32 model and state, Newton-Schulz in float64 (muon.h's precision): 5e-5 as AdamW above
//               (the NS polynomial is smooth, so float32 noise in its input stays ~1e-6 in its output;
//               measured 4e-6 on the matrices);
//   muon_f64:   everything in float64: the same 5e-5 (measured 1e-5, on the gains: the float32 floor above);
//   muon_torch: torch.optim.Muon itself, whose Newton-Schulz runs in bfloat16 (8 bits of mantissa): it differs
//               from the float64 run by 4-6% per matrix, so 0.15 here only catches gross errors (a wrong
//               shape scaling, a missing momentum) and the tight checks above carry the test.
TEST_CASE("reference: three Muon + AdamW steps agree with torch.optim.Muon") {
    Reference r;
    load_reference(&r);
    OptimizerConfig oc;
    char err[ERR_LEN];
    REQUIRE_MESSAGE(optimizer_config_by_name("muon", &oc, err) == 0, err);
    // lr, momentum, nesterov, weight_decay, ns_steps, adjust, adam_lr, beta1, beta2, eps, adam_weight_decay, clip
    std::vector<double> h = as_doubles(need(r, "muon_hyper", 12));
    REQUIRE(oc.matrix == MATRIX_MUON);
    REQUIRE(oc.muon.method == MUON_NS);
    REQUIRE(oc.muon.base == BASE_MOMENTUM);
    // every number from the fixture, though "muon"'s defaults already hold Keller's momentum 0.95, Nesterov,
    // 5 Newton-Schulz steps, the "original" shape scale, lr 0.02 and weight decay 0.01
    oc.lr = (float)h[0];
    oc.muon.momentum = (float)h[1];
    oc.muon.nesterov = (int)h[2];
    oc.weight_decay = (float)h[3];
    oc.muon.ns_steps = (int)h[4];
    oc.muon.adjust = (int)h[5] == 0 ? ADJUST_ORIGINAL : ADJUST_MATCH_RMS_ADAMW;
    oc.adam_lr = (float)h[6];
    oc.beta1 = (float)h[7];
    oc.beta2 = (float)h[8];
    oc.eps = (float)h[9];
    oc.adam_weight_decay = (float)h[10];
    oc.grad_clip = (float)h[11];
    GPT2 model;
    build_reference_model(&model, r);
    Optimizer opt;
    REQUIRE_MESSAGE(optimizer_init(&opt, &model, &oc, err) == 0, err);
    std::vector<double> delta = run_steps(&model, &opt, r, "muon_ns64");
    std::vector<char> skip = ill_conditioned_mask(&model, r);
    check_tensors("Muon change vs torch f32 + float64 NS", delta, as_doubles(need(r, "muon_ns64_delta", r.n)), &r.cfg,
                  5e-5, &skip);
    check_tensors("Muon change vs torch f64", delta, as_doubles(need(r, "muon_f64_delta", r.n)), &r.cfg, 5e-5, &skip);
    check_tensors("Muon change vs torch.optim.Muon (bf16 NS)", delta, as_doubles(need(r, "muon_torch_delta", r.n)),
                  &r.cfg, 0.15, &skip);
    optimizer_free(&opt);
    gpt2_free(&model);
}
