// tests/fuzz/fuzz_model_file.cpp: libFuzzer target for checkpoint.h's readers: llm.c model files (fp32 and bf16)
// and muongpt checkpoints (a model file, then the training state with two checksums).
// The input is written to a scratch file and read as a run reads it:
//  - as a model file (--init-from): model_read_header; if it passes and the model is small, gpt2_build on the CPU
//    and model_read_params;
//  - as a checkpoint (--resume): checkpoint_peek (model config, RunConfig, OptimizerConfig, TrainState), the
//    peeked RunConfig through run_config_check; if small, gpt2_build, optimizer_init with the peeked
//    OptimizerConfig, checkpoint_load.
// A fuzzer cannot forge the checksums, so an input that has the shape of a checkpoint is read a second time
// with both checksums recomputed: that reaches the training state's own checks.
// Errors the readers return (-1 with a message) are expected; a bug is a sanitizer report, a crash, a leak, or
// a reader that accepts a file and then leaves the model or optimizer inconsistent with it.
#include "checkpoint.h"
#include "settings.h"
#include "tests/fuzz/fuzz_util.h"

// Models are built only up to this size (and memory stays far below libFuzzer's -rss_limit_mb): the parameters
// must be in the file anyway, so inputs of libFuzzer's usual lengths never come near it.
#define FUZZ_MAX_PARAMETERS (1u << 20)

static void read_as_model_file(const char* path) {
    char err[ERR_LEN];
    FILE* f = fopen(path, "rb");
    FUZZ_CHECK(f != NULL, "cannot open %s", path);
    GPT2Config cfg;
    int version = 0, has_state = 0;
    int rc = model_read_header(f, path, &cfg, &version, err, &has_state);
    fuzz_note("model_read_header", rc, err);
    if (rc == 0) {
        FUZZ_CHECK(gpt2_config_check(&cfg, err) == 0, "model_read_header accepted a config that fails its check: %s", err);
        if (gpt2_num_parameters(&cfg) <= FUZZ_MAX_PARAMETERS) {
            GPT2 m;
            gpt2_build(&m, &cfg, 1, 1, DEV_CPU, 0);
            rc = model_read_params(f, path, &m, version, err);
            fuzz_note("model_read_params", rc, err);
            if (rc == 0)
                FUZZ_CHECK(first_non_finite(m.params[0].data, m.num_parameters) < 0, "non-finite parameter accepted");
            gpt2_free(&m);
        }
    }
    fclose(f);
}

static void read_as_checkpoint(const char* path) {
    char err[ERR_LEN];
    GPT2Config cfg;
    RunConfig rc;
    OptimizerConfig oc;
    TrainState st;
    int status = checkpoint_peek(path, &cfg, &rc, sizeof(rc), &oc, &st, err);
    fuzz_note("checkpoint_peek", status, err);
    if (status != 0) return;
    status = run_config_check(&rc, "checkpoint: ", err);  // what a resume does with the settings it read
    fuzz_note("run_config_check", status, err);
    if (gpt2_num_parameters(&cfg) > FUZZ_MAX_PARAMETERS) return;
    GPT2 m;
    gpt2_build(&m, &cfg, 1, 1, DEV_CPU, 0);
    Optimizer opt;
    status = optimizer_init(&opt, &m, &oc, err);
    fuzz_note("optimizer_init", status, err);
    if (status == 0) {
        status = checkpoint_load(path, &m, &opt, &st, err);
        fuzz_note("checkpoint_load", status, err);
    }
    if (status == 0) {
        FUZZ_CHECK(first_non_finite(m.params[0].data, m.num_parameters) < 0, "non-finite parameter accepted");
        FUZZ_CHECK(first_non_finite(opt.m, opt.num_parameters) < 0 && first_non_finite(opt.v, opt.num_parameters) < 0,
                   "non-finite optimizer moment accepted");
    }
    optimizer_free(&opt);  // also after a failed optimizer_init, which may have allocated part of it
    gpt2_free(&m);
}

// The input with a checkpoint's two checksums made right, when it has a checkpoint's layout (a valid fp32 model
// header, the parameters, a state header); false when it has not, or when they were right already.
static bool fix_checksums(std::string* file) {
    if (file->size() < 2048) return false;
    int header[256];
    memcpy(header, file->data(), sizeof(header));
    if (header[0] != MODEL_MAGIC || header[1] != MODEL_VERSION_FP32) return false;
    GPT2Config cfg = gpt2_config_make(header[2], header[3], header[7], header[4], header[5], header[6]);
    char err[ERR_LEN];
    if (gpt2_config_check(&cfg, err)) return false;
    unsigned long long model_bytes = sizeof(header) + 4ull * gpt2_num_parameters(&cfg);
    if (model_bytes + sizeof(header) > file->size()) return false;
    Checksum parts[2] = {checksum_start(), checksum_start()};
    checksum_add(&parts[0], file->data(), model_bytes);
    checksum_add(&parts[1], file->data() + model_bytes + sizeof(header), file->size() - model_bytes - sizeof(header));
    int sums[4];
    for (int part = 0; part < 2; part++) {
        uint64_t sum = checksum_end(parts[part]);
        sums[2 * part] = (int)(uint32_t)sum;
        sums[2 * part + 1] = (int)(uint32_t)(sum >> 32);
    }
    char* at = &(*file)[model_bytes + 5 * sizeof(int)];  // the state header's [5..8]
    if (memcmp(at, sums, sizeof(sums)) == 0) return false;
    memcpy(at, sums, sizeof(sums));
    return true;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string path = fuzz_path("model.bin"), file((const char*)data, size);
    fuzz_write_file(path, data, size);
    read_as_model_file(path.c_str());
    read_as_checkpoint(path.c_str());
    if (fix_checksums(&file)) {
        fuzz_note("checksums recomputed, again", 0, "");
        fuzz_write_file(path, file.data(), file.size());
        read_as_model_file(path.c_str());
        read_as_checkpoint(path.c_str());
    }
    return 0;
}
