// tests/test_gpu_reference.cu: the GPU model against PyTorch directly (tests/test_reference.cpp does the same
// on the CPU, with the reasoning behind the tolerances). Same fixture (tests/fixtures/reference_gpt2.bin: a tiny
// GPT-2, a batch, and PyTorch's float64 logits, loss and 16 gradients); the model built on the GPU. Without a
// GPU the comparison is transitive (GPU = CPU in tests/test_gpu_model.cu, CPU = PyTorch); this makes it direct.
#include "gpu_testutil.h"
#include "../model.h"
#include "fixture.h"

// a fixture array's values as doubles (the generator stores the float64 results' logits and gradients as
// float32: 7 digits are plenty for tolerances of 1e-5; the loss as float64)
static std::vector<double> values(const FixtureArray* a) {
    std::vector<double> v(a->count());
    for (size_t i = 0; i < v.size(); i++) v[i] = a->f64() ? a->f64()[i] : a->f32() ? a->f32()[i] : a->i32()[i];
    return v;
}

// ‖ours − ref‖/‖ref‖ over n values
static double relative_error(const float* ours, const double* ref, size_t n) {
    double num = 0.0, den = 0.0;
    for (size_t i = 0; i < n; i++) {
        num += (ours[i] - ref[i]) * (ours[i] - ref[i]);
        den += ref[i] * ref[i];
    }
    return sqrt(num / (den > 0 ? den : 1e-300));
}

// Tolerances: the CPU test holds ours to 5e-6 of PyTorch float64 (measured 3-5e-7). The GPU sums in other
// orders again (cuBLAS's FP32 GEMM, block reductions), adding noise of the same size; 1e-5 for the logits and
// the loss, 2e-5 per gradient tensor (the backward chains twice as many sums) still fails any formula error,
// which moves a tensor by more than 1e-3.
TEST_CASE("gpu reference: forward and backward on the GPU agree with PyTorch (logits, loss, all 16 gradients)") {
    if (!gpu_available()) { MESSAGE("SKIPPED: no CUDA GPU found"); return; }
    Fixture fx;
    char err[ERR_LEN] = "";
    REQUIRE_MESSAGE(fixture_load(&fx, "tests/fixtures/reference_gpt2.bin", err) == 0, err);
    const FixtureArray *config = fx.find("config"), *p0 = fx.find("p0"), *ids = fx.find("ids"),
                       *targets = fx.find("targets"), *logits64 = fx.find("logits_f64"), *loss64 = fx.find("loss_f64"),
                       *grad64 = fx.find("grad_f64");
    REQUIRE((config && p0 && ids && targets && logits64 && loss64 && grad64));
    REQUIRE((config->i32() && p0->f32() && ids->i32() && targets->i32()));
    std::vector<double> ref_logits = values(logits64), ref_grads = values(grad64);
    double ref_loss = values(loss64)[0];
    const int32_t* c = config->i32();
    GPT2Config cfg = gpt2_config_make(c[0], c[1], c[2], c[3], c[4], c[5]);
    int B = c[6], T = c[7];
    REQUIRE(gpt2_config_check(&cfg, err) == 0);
    GPT2 model;
    gpt2_build(&model, &cfg, B, T, DEV_CUDA, 1);
    REQUIRE(p0->count() == model.num_parameters);
    REQUIRE(grad64->count() == model.num_parameters);
    copy_to_device(DEV_CUDA, model.params[0].data, p0->f32(), model.num_parameters * sizeof(float));

    gpt2_zero_grad(&model);
    float loss = gpt2_forward(&model, ids->i32(), targets->i32(), B, T);  // the fixture's first batch
    size_t nl = (size_t)B * T * cfg.padded_vocab_size;
    std::vector<float> logits = to_host(model.logits.data, nl);  // before the backward writes dlogits over them
    gpt2_backward(&model, B, T, 1.0f / (B * T));
    CHECK(fabs(loss - ref_loss) <= 1e-5 * ref_loss);

    REQUIRE(logits64->count() == nl);
    double logits_err = relative_error(logits.data(), ref_logits.data(), nl);
    CHECK_MESSAGE(logits_err <= 1e-5, "logits: relative error " << logits_err);

    std::vector<float> grads = to_host(model.params[0].grad, model.num_parameters);
    for (int i = 0; i < NUM_PARAM_TENSORS; i++) {
        size_t off = model.params[i].data - model.params[0].data, n = model.params[i].size;
        double e = relative_error(grads.data() + off, ref_grads.data() + off, n);
        CHECK_MESSAGE(e <= 2e-5, std::string(param_tensor_names[i]) << ": gradient relative error " << e);
    }
    gpt2_free(&model);
}
