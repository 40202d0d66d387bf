// tests/fuzz/fuzz_flags.cpp: libFuzzer target for settings.h, the command line of `./train` and `./train compare`.
// The input is split into argv words on NUL and newline bytes (at most 64 words); then, as train.cu and
// report/compare.h do: run_config_from_args; run_config_check on the result; optimizer_config_from_run for
// --optimizer and for each comma-separated name of --optimizers, each accepted one through optimizer_init on a
// tiny CPU model; and the model's config from --model, --layers, --heads, --channels through gpt2_config_check.
// Errors returned as messages are expected; a bug is a sanitizer report, a crash, a leak, a message that is not
// one terminated line, or settings the parser accepted that run_config_check then rejects.
#include "settings.h"
#include "tests/fuzz/fuzz_util.h"

#define FUZZ_MAX_WORDS 64

static GPT2 model;  // a tiny CPU model for optimizer_init (it reads only the model's shapes and device)

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    GPT2Config cfg = gpt2_config_make(4, 8, 8, 1, 1, 4);
    gpt2_build(&model, &cfg, 1, 1, DEV_CPU, 0);
    return 0;
}

static void check_message(const char* err) {
    const char* end = (const char*)memchr(err, 0, ERR_LEN);
    FUZZ_CHECK(end != NULL, "unterminated error message");
    FUZZ_CHECK(end > err, "empty error message");
}

static void try_optimizer(const RunConfig* rc, const char* spec) {
    char err[ERR_LEN] = "";
    OptimizerConfig oc;
    if (optimizer_config_from_run(rc, spec, &oc, err) != 0) {
        check_message(err);
        return;
    }
    FUZZ_CHECK(memchr(oc.name, 0, sizeof(oc.name)) != NULL, "unterminated optimizer name");
    Optimizer opt;
    if (optimizer_init(&opt, &model, &oc, err) != 0) check_message(err);
    optimizer_free(&opt);
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string text((const char*)data, size);
    std::vector<std::string> words;
    size_t start = 0;
    for (size_t i = 0; i <= size && words.size() < FUZZ_MAX_WORDS; i++)
        if (i == size || text[i] == 0 || text[i] == '\n') {
            if (i > start || i < size) words.push_back(text.substr(start, i - start));  // empty words too
            start = i + 1;
        }
    std::vector<char*> argv;
    for (std::string& w : words) argv.push_back(&w[0]);  // each NUL-terminated by std::string
    argv.push_back(NULL);

    RunConfig rc;
    char err[ERR_LEN] = "";
    if (run_config_from_args(&rc, (int)words.size(), argv.data(), err) != 0) {
        check_message(err);
        return 0;
    }
    FUZZ_CHECK(run_config_check(&rc, "", err) == 0, "parsed settings fail run_config_check: %s", err);

    try_optimizer(&rc, rc.optimizer);
    std::string list = rc.optimizers;
    for (size_t at = 0; at <= list.size();) {
        size_t comma = list.find(',', at);
        std::string name = list.substr(at, comma == std::string::npos ? std::string::npos : comma - at);
        if (!name.empty()) try_optimizer(&rc, name.c_str());
        if (comma == std::string::npos) break;
        at = comma + 1;
    }

    // the model a run would build (run.h's run_open): a preset, then the size flags
    run_config_resolve(&rc, DEV_CPU);
    GPT2Config cfg;
    if (gpt2_config_preset(&cfg, rc.model, err) == 0) {
        if (rc.layers > 0) cfg.num_layers = rc.layers;
        if (rc.heads > 0) cfg.num_heads = rc.heads;
        if (rc.channels > 0) cfg.channels = rc.channels;
        if (gpt2_config_check(&cfg, err) != 0) check_message(err);
        else (void)gpt2_num_parameters(&cfg);
    } else {
        check_message(err);
    }
    return 0;
}
