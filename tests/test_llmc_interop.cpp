// tests/test_llmc_interop.cpp: llm.c's model file format, between us, llm.c and PyTorch (checkpoint.h).
// Our model_save -> model_read round trip keeps every bit; files written by dev/reference.py (fp32, version 3,
// and bf16, version 5: tests/fixtures/reference_model_*.bin, from dev/gen_reference_fixture.py) load with the
// parameters and the loss PyTorch has for them; a checkpoint reads as a model file (llm.c ignores the
// training state behind it); broken files are refused with one line that names the file and the problem.
// Flow: the model files at the two ends of training (an initial model in, a trained one out).
#include <unistd.h>

#include "testutil.h"
#include "../checkpoint.h"
#include "fixture.h"

// A small model (1 layer, 2 heads, 8 channels, maxT 8, vocabulary 10 padded to 16): the fixture's config.
static GPT2Config small_config() { return gpt2_config_make(8, 10, 16, 1, 2, 8); }

static std::string temp_path(const char* name) {
    return std::string("/tmp/muongpt_interop_") + std::to_string((int)getpid()) + "_" + name;
}

static std::vector<char> read_bytes(const char* path) {
    std::vector<char> bytes;
    FILE* f = fopen(path, "rb");
    if (!f) return bytes;
    char buf[4096];
    size_t got;
    while ((got = fread(buf, 1, sizeof(buf), f)) > 0) bytes.insert(bytes.end(), buf, buf + got);
    fclose(f);
    return bytes;
}

static void write_bytes(const char* path, const std::vector<char>& bytes) {
    FILE* f = fopen(path, "wb");
    REQUIRE(f != NULL);
    REQUIRE(fwrite(bytes.data(), 1, bytes.size(), f) == bytes.size());
    fclose(f);
}

// Reads a model file into `model` (built here from the file's header). 0, or -1 with the message in err.
static int load_model_file(const char* path, GPT2* model, int* version, char* err) {
    FILE* f = fopen(path, "rb");
    if (!f) return fail(err, "%s: cannot open", path);
    GPT2Config cfg;
    int rc = model_read_header(f, path, &cfg, version, err);
    if (rc == 0) {
        gpt2_build(model, &cfg, 2, cfg.max_seq_len, DEV_CPU, 0);
        rc = model_read_params(f, path, model, *version, err);
        if (rc) gpt2_free(model);
    }
    fclose(f);
    return rc;
}

static bool same_config(const GPT2Config& a, const GPT2Config& b) {
    return a.max_seq_len == b.max_seq_len && a.vocab_size == b.vocab_size &&
           a.padded_vocab_size == b.padded_vocab_size && a.num_layers == b.num_layers && a.num_heads == b.num_heads &&
           a.channels == b.channels;
}

static uint32_t bits_of(float x) {
    uint32_t b;
    memcpy(&b, &x, 4);
    return b;
}

TEST_CASE("llm.c model file: model_save then model_read gives back every bit") {
    GPT2Config cfg = small_config();
    GPT2 a, b;
    gpt2_build(&a, &cfg, 1, 4, DEV_CPU, 3);
    std::string path = temp_path("roundtrip.bin");
    char err[ERR_LEN] = "";
    REQUIRE_MESSAGE(model_save(&a, path.c_str(), err) == 0, err);
    // the header llm.c expects: 256 int32, then the parameters as fp32
    std::vector<char> bytes = read_bytes(path.c_str());
    REQUIRE(bytes.size() == 1024 + a.num_parameters * 4);
    const int* header = (const int*)bytes.data();
    CHECK(header[0] == 20240326);
    CHECK(header[1] == 3);
    CHECK(header[2] == 8);
    CHECK(header[3] == 10);
    CHECK(header[4] == 1);
    CHECK(header[5] == 2);
    CHECK(header[6] == 8);
    CHECK(header[7] == 16);
    for (int i = 8; i < 256; i++) REQUIRE(header[i] == 0);
    int version = 0;
    REQUIRE_MESSAGE(load_model_file(path.c_str(), &b, &version, err) == 0, err);
    CHECK(version == MODEL_VERSION_FP32);
    CHECK(same_config(b.config, cfg));
    CHECK(memcmp(a.params[0].data, b.params[0].data, a.num_parameters * sizeof(float)) == 0);
    remove(path.c_str());
    gpt2_free(&a);
    gpt2_free(&b);
}

// dev/reference.py wrote these files from the parameters in reference_model.bin; PyTorch (float64) computed
// the loss of the fixture's batch under each.
TEST_CASE("llm.c model file: fp32 and bf16 files written by PyTorch load with the expected values and loss") {
    Fixture fx;
    char err[ERR_LEN] = "";
    REQUIRE_MESSAGE(fixture_load(&fx, "tests/fixtures/reference_model.bin", err) == 0, err);
    GPT2Config cfg = small_config();
    size_t n = gpt2_num_parameters(&cfg);
    const FixtureArray *params = fx.find("params"), *rounded = fx.find("params_bf16"), *ids = fx.find("ids"),
                       *targets = fx.find("targets"), *cfg_arr = fx.find("config");
    REQUIRE((params && rounded && ids && targets && cfg_arr && fx.find("loss_f64") && fx.find("loss_bf16_f64")));
    REQUIRE(params->count() == n);
    REQUIRE(rounded->count() == n);
    const int32_t* c = cfg_arr->i32();
    GPT2Config fixture_cfg = {c[0], c[1], c[2], c[3], c[4], c[5]};
    REQUIRE(same_config(fixture_cfg, cfg));
    int B = ids->dims[0], T = ids->dims[1];

    struct Case { const char* path; int version; const FixtureArray* expected; double loss; };
    Case cases[2] = {
        {"tests/fixtures/reference_model_fp32.bin", MODEL_VERSION_FP32, params, fx.find("loss_f64")->f64()[0]},
        {"tests/fixtures/reference_model_bf16.bin", MODEL_VERSION_BF16, rounded, fx.find("loss_bf16_f64")->f64()[0]},
    };
    for (const Case& k : cases) {
        CAPTURE(k.path);
        GPT2 model;
        int version = 0;
        REQUIRE_MESSAGE(load_model_file(k.path, &model, &version, err) == 0, err);
        CHECK(version == k.version);
        CHECK(same_config(model.config, cfg));
        // identical bits: fp32 is copied, bf16 widened by a shift, both exact
        CHECK(memcmp(model.params[0].data, k.expected->f32(), n * sizeof(float)) == 0);
        // the loss PyTorch computed in float64 from the same parameters; ours is float32 through ~20 ops on
        // a tiny model: 1e-5 relative is ~100 float32 ulp
        float loss = gpt2_forward(&model, ids->i32(), targets->i32(), B, T);
        CHECK(fabs(loss - k.loss) <= 1e-5 * k.loss);
        gpt2_free(&model);
    }
}

// bf16 keeps the top 16 bits of an fp32; writers round to nearest, ties to even (PyTorch's .to(bfloat16)).
// dev/gen_reference_fixture.py put these fp32 bit patterns at the start of the first padded wte row (which
// takes no part in the loss), to pin what a version 5 file holds.
TEST_CASE("llm.c model file: bf16 values round to nearest even, and representable ones survive exactly") {
    Fixture fx;
    char err[ERR_LEN] = "";
    REQUIRE_MESSAGE(fixture_load(&fx, "tests/fixtures/reference_model.bin", err) == 0, err);
    GPT2Config cfg = small_config();
    GPT2 model;
    int version = 0;
    REQUIRE_MESSAGE(load_model_file("tests/fixtures/reference_model_bf16.bin", &model, &version, err) == 0, err);
    REQUIRE(version == MODEL_VERSION_BF16);
    const float* original = fx.find("params")->f32();
    size_t start = (size_t)cfg.vocab_size * cfg.channels;  // the first padded row of wte
    struct { uint32_t in, out; const char* what; } cases[] = {
        {0x3F800000, 0x3F800000, "1.0, exact"},
        {0xC0000000, 0xC0000000, "-2.0, exact"},
        {0x3E200000, 0x3E200000, "0.15625, exact"},
        {0x3F808000, 0x3F800000, "a tie rounds to the even 0x3F80 (down)"},
        {0x3F818000, 0x3F820000, "a tie rounds to the even 0x3F82 (up)"},
        {0x3F808001, 0x3F810000, "just above a tie rounds up"},
        {0x3F807FFF, 0x3F800000, "just below a tie rounds down"},
        {0xBF818000, 0xBF820000, "a negative tie rounds to even"},
        {0x00012345, 0x00010000, "a subnormal rounds like any value"},
        {0x7F7F0000, 0x7F7F0000, "the largest finite bf16, exact"},
        {0x7F7F7FFF, 0x7F7F0000, "below the overflow tie stays finite"},
        {0x80000000, 0x80000000, "-0 keeps its sign"},
        {0x3DCCCCCD, 0x3DCD0000, "0.1 rounds up"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        CAPTURE(cases[i].what);
        REQUIRE(bits_of(original[start + i]) == cases[i].in);  // the fixture holds what this test expects
        CHECK(bits_of(model.params[0].data[start + i]) == cases[i].out);
    }
    // every value: exact where the low 16 bits are zero, else within half a bf16 ulp: 2^-8 of the value
    // (8 significant bits), or half the subnormal spacing 2^-133 near zero
    int exact = 0;
    for (size_t j = 0; j < model.num_parameters; j++) {
        float x = original[j], y = model.params[0].data[j];
        if ((bits_of(x) & 0xFFFF) == 0) {
            exact++;
            REQUIRE(bits_of(y) == bits_of(x));
        } else {
            REQUIRE(fabs((double)y - x) <= fmax(ldexp(fabs((double)x), -8), ldexp(1.0, -134)));
        }
    }
    CHECK(exact >= 5);  // the five exact cases above, at least
    gpt2_free(&model);
}

TEST_CASE("llm.c model file: a checkpoint reads as a model file (llm.c ignores the training state)") {
    GPT2Config cfg = small_config();
    GPT2 a, b;
    gpt2_build(&a, &cfg, 1, 4, DEV_CPU, 5);
    char err[ERR_LEN] = "";
    OptimizerConfig oc = optimizer_config_adamw();
    Optimizer opt;
    REQUIRE_MESSAGE(optimizer_init(&opt, &a, &oc, err) == 0, err);
    TrainState st;
    memset(&st, 0, sizeof(st));
    st.step = 7;
    char run_settings[40] = "any bytes the trainer wants back";
    std::string path = temp_path("checkpoint.bin");
    REQUIRE_MESSAGE(checkpoint_save(path.c_str(), &a, &opt, &st, run_settings, sizeof(run_settings), err) == 0, err);
    int version = 0;
    REQUIRE_MESSAGE(load_model_file(path.c_str(), &b, &version, err) == 0, err);
    CHECK(version == MODEL_VERSION_FP32);
    CHECK(same_config(b.config, cfg));
    CHECK(memcmp(a.params[0].data, b.params[0].data, a.num_parameters * sizeof(float)) == 0);
    remove(path.c_str());
    optimizer_free(&opt);
    gpt2_free(&a);
    gpt2_free(&b);
}

// Broken files: each is refused with one line naming the file and what is wrong, before or while reading.
TEST_CASE("llm.c model file: bad magic, bad version, bad config and truncation give one clear error") {
    std::vector<char> good = read_bytes("tests/fixtures/reference_model_fp32.bin");
    std::vector<char> good_bf16 = read_bytes("tests/fixtures/reference_model_bf16.bin");
    REQUIRE(good.size() > 1024);
    REQUIRE(good_bf16.size() > 1024);
    struct Case { const char* name; std::vector<char> bytes; const char* expect; };
    std::vector<Case> cases;
    std::vector<char> b = good;
    ((int*)b.data())[0] = 20240520;  // a token shard's magic
    cases.push_back({"magic.bin", b, "bad magic 20240520"});
    b = good;
    ((int*)b.data())[1] = 4;
    cases.push_back({"version.bin", b, "model version 4 not supported"});
    b = good;
    ((int*)b.data())[5] = 3;  // 3 heads do not divide 8 channels
    cases.push_back({"heads.bin", b, "heads do not divide"});
    b = good;
    ((int*)b.data())[7] = 8;  // padded vocabulary below the vocabulary
    cases.push_back({"padded.bin", b, "padded vocabulary 8 is smaller"});
    cases.push_back({"header.bin", std::vector<char>(good.begin(), good.begin() + 600), "too short for a model header"});
    cases.push_back({"empty.bin", std::vector<char>(), "too short for a model header"});
    cases.push_back({"params.bin", std::vector<char>(good.begin(), good.end() - 4), "truncated"});
    cases.push_back({"params_bf16.bin", std::vector<char>(good_bf16.begin(), good_bf16.end() - 2), "truncated"});
    for (const Case& k : cases) {
        std::string path = temp_path(k.name);
        write_bytes(path.c_str(), k.bytes);
        GPT2 model;
        int version = 0;
        char err[ERR_LEN] = "";
        CHECK(load_model_file(path.c_str(), &model, &version, err) != 0);
        CHECK_MESSAGE(strstr(err, k.expect) != NULL, std::string(k.name) << ": '" << std::string(err) << "'");
        CHECK_MESSAGE(strstr(err, path.c_str()) != NULL, std::string(k.name) << ": the message names the file");
        CHECK(strchr(err, '\n') == NULL);  // one line
        remove(path.c_str());
    }
}

// model_read_header says it checks the header's sizes against the file's length: a truncated file (or a
// header whose model is larger than the file) is refused before a model is built for it. Without that
// check a corrupt header (here: 64 layers) makes the caller allocate a model the file cannot fill.
TEST_CASE("llm.c model file: model_read_header refuses a file too short for the model its header describes") {
    std::vector<char> b = read_bytes("tests/fixtures/reference_model_fp32.bin");
    REQUIRE(b.size() > 1024);
    std::string path = temp_path("short.bin");
    for (int variant = 0; variant < 2; variant++) {
        std::vector<char> bytes = b;
        if (variant == 0) bytes.resize(bytes.size() - 4);  // one parameter short
        else ((int*)bytes.data())[4] = 64;                // a header for a far larger model
        write_bytes(path.c_str(), bytes);
        FILE* f = fopen(path.c_str(), "rb");
        REQUIRE(f != NULL);
        GPT2Config cfg;
        int version = 0;
        char err[ERR_LEN] = "";
        CHECK_MESSAGE(model_read_header(f, path.c_str(), &cfg, &version, err) != 0,
                      std::string(variant == 0 ? "a truncated file" : "a header larger than the file") << " passed the header check");
        CHECK(strstr(err, "truncated") != NULL);
        fclose(f);
    }
    remove(path.c_str());
}
