// tests/test_model.cpp: the whole GPT-2 on the CPU: gradients of every parameter tensor against finite
// differences, the parameter layout, overfitting one batch, AdamW by hand, the schedules.
#include "testutil.h"
#include "../optim.h"

// A tiny model for tests: 2 layers, 2 heads, 16 channels, a 60-token vocabulary padded to 64.
static GPT2Config tiny_config() { return gpt2_config_make(8, 60, 64, 2, 2, 16); }

static void random_tokens(int* ids, int n, int vocab, uint64_t seed) {
    Rng rng = rng_make(seed);
    for (int i = 0; i < n; i++) ids[i] = (int)(rng_u32(&rng) % vocab);
}

TEST_CASE("model: parameter count and layout follow llm.c") {
    GPT2Config d12;
    char err[ERR_LEN];
    REQUIRE(gpt2_config_preset(&d12, "d12", err) == 0);
    CHECK(d12.padded_vocab_size == 50304);
    CHECK(gpt2_num_parameters(&d12) == 124475904ull);  // GPT-2 124M in llm.c's padded layout
    ParamSlot slots[4 + 12 * 12];
    int n = gpt2_param_slots(&d12, slots);
    CHECK(n == 4 + 12 * 12);
    CHECK(strcmp(slots[0].name, "wte") == 0);
    CHECK(strcmp(slots[n - 1].name, "lnfb") == 0);
    CHECK(slots[n - 1].offset + slots[n - 1].cols == gpt2_num_parameters(&d12));
    int matrices = 0;
    for (int i = 0; i < n; i++) matrices += slots[i].kind == PARAM_MATRIX;
    CHECK(matrices == 4 * 12);  // qkvw, attprojw, fcw, fcprojw per layer
}

TEST_CASE("model: configs that cannot work are refused with one clear line") {
    GPT2Config c = tiny_config();
    char err[ERR_LEN];
    c.num_heads = 3;  // 3 does not divide 16
    CHECK(gpt2_config_check(&c, err) != 0);
    CHECK(strstr(err, "heads do not divide") != NULL);
    CHECK(gpt2_config_preset(&c, "d13", err) != 0);
    CHECK(strstr(err, "unknown model 'd13'") != NULL);
}

// Finite differences of the mean loss for entries of every parameter tensor.
// Tolerance: the loss (~4) is computed in float32 through ~25 ops, so its rounding noise is ~1e-6·4; divided
// by 2h = 2e-2 that is ~2e-4 in a numeric derivative. With parameters drawn at std 0.3 (not GPT-2's 0.02, so
// that every path carries a gradient well above that noise) the checked gradients are ~1e-3 to 1e-1, and
// |numeric − analytic| <= 5e-4 + 2e-2·|analytic| fails any formula error larger than a few percent.
TEST_CASE("model: gradient check of every parameter tensor (tiny config)") {
    GPT2Config cfg = tiny_config();
    int B = 2, T = 8;
    GPT2 model;
    gpt2_build(&model, &cfg, B, T, DEV_CPU, 1);
    std::vector<float> p = random_vector(model.num_parameters, 2, 0.3f);
    memcpy(model.params[0].data, p.data(), p.size() * sizeof(float));
    int ids[16], targets[16];
    random_tokens(ids, B * T, cfg.vocab_size, 3);
    random_tokens(targets, B * T, cfg.vocab_size, 4);

    gpt2_zero_grad(&model);
    float loss = gpt2_forward(&model, ids, targets, B, T);
    CHECK(loss > 0.0f);
    gpt2_backward(&model, B, T, 1.0f / (B * T));
    std::vector<float> grad(model.params[0].grad, model.params[0].grad + model.num_parameters);

    model.tape.recording = false;  // finite differences need forwards only
    for (int i = 0; i < NUM_PARAM_TENSORS; i++) {
        Tensor* t = &model.params[i];
        size_t offset = t->data - model.params[0].data;
        size_t n = t->size;
        if (i == P_WTE) n = (size_t)cfg.vocab_size * cfg.channels;  // the padded rows are never used
        check_gradient(param_tensor_names[i], t->data, grad.data() + offset, n, 12, 1e-2f, 5e-4, 2e-2,
                       [&]() { return (double)gpt2_forward(&model, ids, targets, B, T); });
    }
    // the padded rows of wte get no gradient: their logits take no part in the softmax
    for (size_t j = (size_t)cfg.vocab_size * cfg.channels; j < model.params[P_WTE].size; j++)
        CHECK(grad[j] == 0.0f);
    gpt2_free(&model);
}

// GPT-2 124M at B = 32, T = 1024: the simple GPU attention keeps att (B, NH, T, T) per layer and a scratch as
// large, 13 x 1.6 GB; flash attention keeps L (B, NH, T) per layer and a (B, NH, T) scratch; the CPU's backward
// needs only the (B, NH, T) scratch. Sizes from the sizing pass, nothing allocated.
TEST_CASE("model: T x T attention buffers exist only where the attention path uses them (d12, B = 32)") {
    GPT2Config cfg;
    char err[ERR_LEN];
    REQUIRE(gpt2_config_preset(&cfg, "d12", err) == 0);
    const size_t B = 32, T = 1024, L = 12, NH = 12;
    size_t tt = B * NH * T * T * sizeof(float), t1 = B * NH * T * sizeof(float);
    size_t simple = gpt2_activation_bytes(&cfg, B, T, DEV_CUDA, Kernels{GEMM_CUBLAS, ATTENTION_SIMPLE});
    size_t flash = gpt2_activation_bytes(&cfg, B, T, DEV_CUDA, Kernels{GEMM_CUBLAS, ATTENTION_FLASH});
    size_t cpu = gpt2_activation_bytes(&cfg, B, T, DEV_CPU, Kernels{GEMM_CUBLAS, ATTENTION_SIMPLE});
    CHECK(simple - flash == (L + 1) * (tt - t1));
    CHECK(simple - cpu == tt - t1);
    CHECK(flash < simple * 3 / 4);
    CHECK(gpt2_activation_bytes(&cfg, B, T, DEV_CPU, Kernels{GEMM_CUBLAS, ATTENTION_FLASH}) == cpu);  // the CPU has one attention
}

// Activation gradients live in two sets shared by alternate layers (model.h): a layer more adds its values alone.
// Per position a layer keeps 18 C floats of values (ln1 C, qkv 3C, atty C, attproj C, res2 C, ln2 C, fch 4C,
// fch_gelu 4C, fcproj C, res3 C), 4 floats of layernorm statistics and, with flash attention, NH of L.
TEST_CASE("model: activation gradients take two layers' room whatever the depth; d12 at B = 64, T = 1024 fits 80 GB") {
    GPT2Config cfg;
    char err[ERR_LEN];
    REQUIRE(gpt2_config_preset(&cfg, "d12", err) == 0);
    const size_t B = 4, T = 64, C = 768, NH = 12, N = B * T;
    GPT2Config one = cfg, two = cfg;
    one.num_layers = 1;
    two.num_layers = 2;
    size_t layer = gpt2_activation_bytes(&two, B, T, DEV_CUDA, Kernels{GEMM_CUBLAS, ATTENTION_FLASH}) -
                   gpt2_activation_bytes(&one, B, T, DEV_CUDA, Kernels{GEMM_CUBLAS, ATTENTION_FLASH});
    CHECK(layer == (18 * C + 4 + NH) * N * sizeof(float));  // every piece a multiple of 256 bytes here: no padding
    // the figure the issue asks for: GPT-2 124M at B = 64, T = 1024 with the GPU's defaults (flash attention, bf16
    // precision and products: 16-bit storage, model.h), plus 16 bytes a parameter (the master weights,
    // gradients, AdamW's two moments) and the weights' bf16 copy (fp32 buffers, and the token embedding's 16-bit
    // copy), inside an 80 GB card
    Kernels gpu = {GEMM_CUBLAS_BF16, ATTENTION_FLASH, PRECISION_BF16};
    double acts = (double)gpt2_activation_bytes(&cfg, 64, 1024, DEV_CUDA, gpu);
    double copy = (double)gpt2_weight_copy_bytes(&cfg, DEV_CUDA, gpu);
    double total = acts + copy + 16.0 * (double)gpt2_num_parameters(&cfg);
    MESSAGE("d12, B = 64, T = 1024, GPU defaults: activations " << acts / 1e9 << " GB, with the weights' copy, parameters and AdamW "
            << total / 1e9 << " GB");
    CHECK(total < 80e9);
    CHECK(total > 35e9);  // and the sizing is still counting what is there (6.6 GB of bf16 logits alone)
    CHECK(total < 38e9);  // with every activation in 16 bits
}

// 16-bit storage (model.h's gpt2_storage16): on the GPU at bf16 precision with bf16 products the residual stream
// (encoded, every layer's res2 and res3), the logits, lnf and every layer's ln1, ln2, qkv, atty and attproj (with
// flash attention), fch, fch_gelu and fcproj take 2 bytes a value instead of 4, and
// fch's and fch_gelu's fp32 gradients give way to two bf16 buffers ((B, T, 3C) for the products' output gradients,
// (B, T, 4C) for fch's); nowhere else.
TEST_CASE("model: the GPU at bf16 holds the activations only products and fused kernels read in 16 bits, only there (sizes)") {
    GPT2Config cfg;
    char err[ERR_LEN];
    REQUIRE(gpt2_config_preset(&cfg, "d12", err) == 0);
    const size_t B = 4, T = 64, N = B * T, C = 768, Vp = 50304, L = 12;
    Kernels bf16 = {GEMM_CUBLAS_BF16, ATTENTION_FLASH, PRECISION_BF16}, fp32_products = bf16, fp32 = {GEMM_CUBLAS, ATTENTION_FLASH};
    fp32_products.gemm = GEMM_CUBLAS;  // bf16 values in fp32 storage: the products could not take bf16 operands
    size_t stored16 = gpt2_activation_bytes(&cfg, B, T, DEV_CUDA, bf16);
    size_t stored32 = gpt2_activation_bytes(&cfg, B, T, DEV_CUDA, fp32_products);
    // the logits, lnf and encoded; less the bf16 gradients (the products' scratch, fch's), plus the two gradient
    // sets' fch and fch_gelu slots (GELU in the products' epilogues: fch's gradient in bf16, fch_gelu's never stored)
    size_t head = N * Vp * 2 + 2 * N * C * 2 - N * 3 * C * 2 - N * 4 * C * 2 + 2 * N * 8 * C * 4;
    // fch, fch_gelu; ln1, ln2, fcproj, res2, res3; with flash attention qkv, atty and attproj
    size_t layer = 2 * N * 4 * C * 2 + 5 * N * C * 2 + N * 3 * C * 2 + 2 * N * C * 2;
    CHECK(stored32 - stored16 == head + L * layer);  // every piece a multiple of 256 bytes
    Kernels simple = bf16, simple32 = fp32_products;  // the simple attention reads and writes in fp32: they stay so
    simple.attention = simple32.attention = ATTENTION_SIMPLE;
    CHECK(gpt2_activation_bytes(&cfg, B, T, DEV_CUDA, simple32) - gpt2_activation_bytes(&cfg, B, T, DEV_CUDA, simple) ==
          head + L * (layer - N * 3 * C * 2 - 2 * N * C * 2));
    CHECK(gpt2_activation_bytes(&cfg, B, T, DEV_CUDA, fp32) == stored32);
    CHECK(gpt2_activation_bytes(&cfg, B, T, DEV_CPU, bf16) == gpt2_activation_bytes(&cfg, B, T, DEV_CPU, fp32));
    size_t P = gpt2_num_parameters(&cfg), maxT = cfg.max_seq_len;
    // the fp32 copies of those read in fp32 (model.h's gpt2_weight_fp32_copy: wpe, the layernorms' gains and
    // biases; on the simple attention path qkv's bias and the attention projection too); the 16-bit copies of wte,
    // of the qkv, attention projection, fc and fcproj weights (3 + 1 + 4 + 4 C² a layer) and biases (3 + 1 + 4 + 1
    // C a layer). Every piece a multiple of 256 bytes here.
    size_t copies16 = Vp * C * 2 + L * 12 * C * C * 2 + L * 9 * C * 2;
    CHECK(gpt2_weight_copy_bytes(&cfg, DEV_CUDA, bf16) == (maxT * C + 4 * L * C + 2 * C) * 4 + copies16);
    CHECK(gpt2_weight_copy_bytes(&cfg, DEV_CUDA, simple) ==
          (maxT * C + 4 * L * C + 2 * C + L * (3 * C + C * C + C)) * 4 + copies16);
    CHECK(gpt2_weight_copy_bytes(&cfg, DEV_CUDA, fp32_products) == (P * 4 + 255) / 256 * 256);
    CHECK(gpt2_weight_copy_bytes(&cfg, DEV_CPU, bf16) == (P * 4 + 255) / 256 * 256);
    CHECK(gpt2_weight_copy_bytes(&cfg, DEV_CUDA, fp32) == 0);
}

// A training step passes its loss scale to the forward, which then runs the loss's backward in the same pass
// (ops/crossentropy.h): every parameter's gradient must be what the separate backward gives, bit for bit.
TEST_CASE("model: the loss's backward fused into the forward gives the same gradients, bit for bit") {
    GPT2Config cfg = tiny_config();
    int B = 2, T = 8;
    GPT2 model;
    gpt2_build(&model, &cfg, B, T, DEV_CPU, 1);
    int ids[16], targets[16];
    random_tokens(ids, B * T, cfg.vocab_size, 5);
    random_tokens(targets, B * T, cfg.vocab_size, 6);
    std::vector<float> grads[2];
    float losses[2];
    for (int fused = 0; fused < 2; fused++) {
        gpt2_zero_grad(&model);
        losses[fused] = gpt2_forward(&model, ids, targets, B, T, fused ? 1.0f / (B * T) : 0.0f);
        CHECK(model.tape.count == (fused ? 0 : 1) + 9 * cfg.num_layers + 4);  // the loss's node only unfused
        gpt2_backward(&model, B, T, 1.0f / (B * T));
        grads[fused].assign(model.params[0].grad, model.params[0].grad + model.num_parameters);
    }
    CHECK(losses[1] == losses[0]);
    CHECK(grads[1] == grads[0]);
    double norm = 0.0;
    for (float g : grads[1]) norm += (double)g * g;
    CHECK(norm > 0.0);
    gpt2_free(&model);
}

// --precision bf16 (tensor.h's Precision, model.h's rounding points): the layers read a bf16 copy of the weights
// and every activation is stored as a bf16 value, while the master weights, the statistics and the gradients stay
// fp32; the loss (within 1e-2, measured 9.1e-5) and every parameter's gradient (within 2e-2, measured <= 9.9e-3)
// stay within bf16's tolerance of the fp32 model's from the same weights, and differ from them (the rounding is
// there). Weights at std 0.3, so few are bf16 values.
TEST_CASE("model: bf16 precision stores bf16 weights and activations, keeps fp32 statistics, stays near fp32") {
    GPT2Config cfg = tiny_config();
    int B = 2, T = 8, N = B * T, C = cfg.channels;
    int ids[16], targets[16];
    random_tokens(ids, N, cfg.vocab_size, 7);
    random_tokens(targets, N, cfg.vocab_size, 8);
    GPT2 fp32, bf16;
    gpt2_build(&fp32, &cfg, B, T, DEV_CPU, 1);
    gpt2_build(&bf16, &cfg, B, T, DEV_CPU, 1, Kernels{GEMM_CUBLAS_BF16, ATTENTION_SIMPLE, PRECISION_BF16});
    CHECK(fp32.weight_arena.capacity == 0);  // fp32: the layers read the parameters themselves
    CHECK(fp32.weights[P_QKVW].data == fp32.params[P_QKVW].data);
    std::vector<float> p = random_vector(fp32.num_parameters, 2, 0.3f);
    memcpy(fp32.params[0].data, p.data(), p.size() * sizeof(float));
    memcpy(bf16.params[0].data, p.data(), p.size() * sizeof(float));
    float loss[2];
    GPT2* models[2] = {&fp32, &bf16};
    for (int k = 0; k < 2; k++) {
        gpt2_zero_grad(models[k]);
        loss[k] = gpt2_forward(models[k], ids, targets, B, T);
    }
    // the weights the layers read are the master weights rounded; the master weights are untouched
    size_t P = bf16.num_parameters;
    for (int i = 0; i < NUM_PARAM_TENSORS; i++) {  // every tensor has one on the CPU
        size_t at = bf16.params[i].data - bf16.params[0].data;
        REQUIRE(bf16.weights[i].data != NULL);
        for (size_t j = 0; j < bf16.params[i].size; j++) REQUIRE(bf16.weights[i].data[j] == bf16_round(p[at + j]));
    }
    CHECK(memcmp(bf16.params[0].data, p.data(), P * sizeof(float)) == 0);
    CHECK(not_bf16(bf16.params[0].data, P) > P / 2);
    CHECK(bf16.weights[P_QKVW].grad == bf16.params[P_QKVW].grad);  // one gradient for both
    // every stored activation holds bf16 values; the layernorm statistics and the loss's log-sum-exp do not
    CHECK(not_bf16(bf16.encoded.data, (size_t)N * C) == 0);
    for (int l = 0; l < cfg.num_layers; l++) {
        BlockActs* a = &bf16.acts[l];
        const Tensor* acts[] = {&a->ln1, &a->qkv, &a->atty, &a->attproj, &a->res2, &a->ln2, &a->fch, &a->fch_gelu,
                                &a->fcproj, &a->res3};
        for (const Tensor* t : acts) {
            CAPTURE(t->name);
            CHECK(not_bf16(t->data, t->size) == 0);
            CHECK(t->size == (size_t)N * t->shape[2]);  // built for this B, T: every value was checked
        }
        CHECK(not_bf16(a->ln1_rstd.data, N) > 0);
        CHECK(not_bf16(a->ln2_mean.data, N) > 0);
    }
    CHECK(not_bf16(bf16.lnf.data, (size_t)N * C) == 0);
    for (int n = 0; n < N; n++)  // the loss read the logits as bf16 values (the CPU's leaves them so: crossentropy.h)
        CHECK(not_bf16(bf16.logits.data + (size_t)n * cfg.padded_vocab_size, cfg.vocab_size) == 0);
    CHECK(not_bf16(bf16.lse.data, N) > 0);
    CHECK(not_bf16(fp32.acts[0].fch.data, (size_t)N * 4 * C) > 0);  // fp32 stores fp32
    // the same model within bf16's tolerance: the loss and every parameter tensor's gradient
    CAPTURE(loss[0]);
    CAPTURE(loss[1]);
    CHECK(fabs(loss[1] - loss[0]) <= 1e-2 * fabs(loss[0]));
    CHECK(loss[1] != loss[0]);
    for (int k = 0; k < 2; k++) gpt2_backward(models[k], B, T, 1.0f / N);
    double worst = 0.0;
    for (int i = 0; i < NUM_PARAM_TENSORS; i++) {
        const Tensor* t = &fp32.params[i];
        double err = rel_error(bf16.params[i].grad, t->grad, t->size);
        CAPTURE(std::string(param_tensor_names[i]));
        CHECK(err <= 2e-2);  // the backward reads ~25 rounded tensors
        CHECK(err > 0.0);
        worst = fmax(worst, err);
    }
    MESSAGE("bf16 vs fp32: loss " << fabs(loss[1] - loss[0]) / loss[0] << " relative, gradients up to " << worst);
    gpt2_free(&fp32);
    gpt2_free(&bf16);
}

TEST_CASE("model: initialisation follows GPT-2 (std 0.02, scaled residual projections, zero padding)") {
    GPT2Config cfg;
    char err[ERR_LEN];
    REQUIRE(gpt2_config_preset(&cfg, "d2", err) == 0);
    GPT2 model;
    gpt2_build(&model, &cfg, 1, 4, DEV_CPU, 7);
    auto stdev = [](const Tensor* t, size_t n) {
        double s = 0;
        for (size_t i = 0; i < n; i++) s += (double)t->data[i] * t->data[i];
        return sqrt(s / n);
    };
    size_t real_rows = (size_t)cfg.vocab_size * cfg.channels;
    CHECK(fabs(stdev(&model.params[P_WTE], real_rows) - 0.02) < 0.001);
    CHECK(fabs(stdev(&model.params[P_FCPROJW], model.params[P_FCPROJW].size) - 0.02 / sqrt(4.0)) < 0.001);
    for (size_t j = real_rows; j < model.params[P_WTE].size; j++) REQUIRE(model.params[P_WTE].data[j] == 0.0f);
    CHECK(model.params[P_LN1W].data[0] == 1.0f);
    CHECK(model.params[P_QKVB].data[5] == 0.0f);
    gpt2_free(&model);
}

TEST_CASE("model: a tiny model overfits one batch with AdamW (loss < 0.05)") {
    GPT2Config cfg = tiny_config();
    cfg.max_seq_len = 16;
    cfg.channels = 32;
    int B = 4, T = 16;
    GPT2 model;
    gpt2_build(&model, &cfg, B, T, DEV_CPU, 11);
    OptimizerConfig oc = optimizer_config_adamw();
    oc.lr = 1e-2f;
    oc.weight_decay = 0.0f;
    Optimizer opt;
    char err[ERR_LEN];
    REQUIRE(optimizer_init(&opt, &model, &oc, err) == 0);
    int ids[64], targets[64];
    random_tokens(ids, B * T, cfg.vocab_size, 12);
    random_tokens(targets, B * T, cfg.vocab_size, 13);
    float first = 0, loss = 0;
    for (int step = 0; step < 300; step++) {
        gpt2_zero_grad(&model);
        loss = gpt2_forward(&model, ids, targets, B, T);
        if (step == 0) first = loss;
        gpt2_backward(&model, B, T, 1.0f / (B * T));
        optimizer_step(&opt, &model, 1.0f, false);
    }
    CHECK(first > 3.5f);  // ~ln 60 at the start
    CHECK(loss < 0.05f);
    optimizer_free(&opt);
    gpt2_free(&model);
}

TEST_CASE("adamw: three steps against hand-computed values, with bias correction and decay") {
    // one parameter, gradients 0.5, -1.0, 2.0; lr 0.1, betas (0.9, 0.999), eps 1e-8, wd 0.1
    float p = 1.0f, m = 0.0f, v = 0.0f;
    float g[3] = {0.5f, -1.0f, 2.0f};
    // By hand (double), torch.optim.AdamW's update:
    // t=1: p = 1·(1 − 0.01) = 0.99; m = 0.05, v = 0.00025; m̂ = 0.5, v̂ = 0.25 → p = 0.99 − 0.1·0.5/0.5 = 0.89
    // t=2: p = 0.89·0.99 = 0.8811; m = 0.045 − 0.1 = −0.055; v = 0.00024975 + 0.001 = 0.00124975
    //      m̂ = −0.055/0.19 = −0.28947368; v̂ = 0.00124975/0.001999 = 0.62518759 → sqrt 0.79068805
    //      p = 0.8811 + 0.1·0.28947368/0.79068805 = 0.91771045
    // t=3: p = 0.91771045·0.99 = 0.90853335; m = −0.0495 + 0.2 = 0.1505; v = 0.00124850 + 0.004 = 0.00524850
    //      m̂ = 0.1505/0.271 = 0.55535055; v̂ = 0.00524850/0.002997001 = 1.75125059 → sqrt 1.32334746
    //      p = 0.90853335 − 0.1·0.55535055/1.32334746 = 0.86656760
    const double expected[3] = {0.89, 0.91771045, 0.86656760};
    for (int t = 1; t <= 3; t++) {
        adamw_update_cpu(&p, &g[t - 1], &m, &v, 1, 0.1f, 0.9f, 0.999f, 1e-8f, 0.1f, 1.0f, t);
        CHECK(fabs(p - expected[t - 1]) < 2e-6);  // float32 arithmetic on O(1) numbers: a few ulp
    }
}

TEST_CASE("adamw: weight decay reaches 2-D tensors only") {
    GPT2Config cfg = tiny_config();
    GPT2 model;
    gpt2_build(&model, &cfg, 1, 4, DEV_CPU, 5);
    std::vector<float> before(model.params[0].data, model.params[0].data + model.num_parameters);
    OptimizerConfig oc = optimizer_config_adamw();
    oc.lr = 0.5f;
    oc.weight_decay = 0.2f;
    Optimizer opt;
    char err[ERR_LEN];
    REQUIRE(optimizer_init(&opt, &model, &oc, err) == 0);
    gpt2_zero_grad(&model);  // zero gradients: Adam's step is 0/(0 + eps) = 0, only the decay moves anything
    optimizer_step(&opt, &model, 1.0f, false);
    for (int i = 0; i < opt.num_slots; i++) {
        const ParamSlot* s = &opt.slots[i];
        float factor = s->kind == PARAM_VECTOR ? 1.0f : 1.0f - 0.5f * 0.2f;
        size_t j = s->offset + ((size_t)s->rows * s->cols) / 2;  // a middle entry of the slot
        CHECK_MESSAGE(model.params[0].data[j] == doctest::Approx(before[j] * factor).epsilon(1e-6), s->name);
    }
    optimizer_free(&opt);
    gpt2_free(&model);
}

TEST_CASE("adamw: clipping scales the gradient to the maximum norm") {
    CHECK(clip_scale(2.0, 1.0f) == doctest::Approx(0.5));
    CHECK(clip_scale(0.5, 1.0f) == 1.0f);
    CHECK(clip_scale(5.0, 0.0f) == 1.0f);  // off
    float g[4] = {3, 4, 0, 0};
    CHECK(grad_norm_cpu(g, 4) == doctest::Approx(5.0));
}

TEST_CASE("schedules: warmup, cosine to a floor, warmup-stable-decay to zero") {
    Schedule cos_s = {SCHEDULE_COSINE, 10, 110, 0.1f, 0.0f};
    CHECK(lr_multiplier(&cos_s, 0) == doctest::Approx(0.1));
    CHECK(lr_multiplier(&cos_s, 9) == doctest::Approx(1.0));
    CHECK(lr_multiplier(&cos_s, 60) == doctest::Approx(0.55));  // halfway through the decay: ½(1 + 0.1)
    CHECK(lr_multiplier(&cos_s, 110) == doctest::Approx(0.1));
    Schedule wsd = {SCHEDULE_WSD, 10, 110, 0.0f, 0.2f};  // cooldown over the last 22 steps
    CHECK(lr_multiplier(&wsd, 50) == 1.0f);
    CHECK(lr_multiplier(&wsd, 88) == 1.0f);
    CHECK(lr_multiplier(&wsd, 99) == doctest::Approx(0.5));
    CHECK(lr_multiplier(&wsd, 110) == 0.0f);
}
