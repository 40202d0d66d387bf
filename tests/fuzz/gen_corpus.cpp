// tests/fuzz/gen_corpus.cpp: writes the binary seeds of the fuzz targets' corpora (`make fuzz-corpus`), with the
// project's own writers where there is one, so the seeds are valid files of today's formats:
//   tests/fuzz/corpus/fuzz_model_file/  model files (fp32 by model_save, bf16) and checkpoints (checkpoint_save,
//                                       AdamW and Muon), plus near-valid ones (truncated, a NaN parameter, a flipped
//                                       byte)
//   tests/fuzz/corpus/fuzz_shards/      fuzz_shards inputs: its 8-byte settings prefix, then 1-3 llm.c shards
// The text seeds (tokenizer, flags) are plain files kept in the tree by hand. Every file here is deterministic.
#include "checkpoint.h"
#include "data/loader.h"
#include "settings.h"

#include <string>
#include <vector>

static const char* out_root = "tests/fuzz/corpus";

static void write_bytes(const char* dir, const char* name, const std::string& bytes) {
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s/%s", out_root, dir, name);
    FILE* f = fopen(path, "wb");
    if (!f || fwrite(bytes.data(), 1, bytes.size(), f) != bytes.size() || fclose(f) != 0) die("%s: cannot write", path);
    printf("wrote %s (%zu bytes)\n", path, bytes.size());
}

static std::string read_bytes(const char* path) {
    std::string s;
    char err[ERR_LEN];
    if (read_whole_file(path, &s, err)) die("%s", err);
    return s;
}

// ---- model files and checkpoints ----

// The smallest models worth having: 1-2 layers, C = 8, a 64-token vocabulary, context 8 (the readers take any
// vocabulary >= 2; gpt2_config_check is the only rule).
static void model_seeds() {
    char err[ERR_LEN];
    const char* dir = "fuzz_model_file";
    std::string tmp = std::string(out_root) + "/" + dir + "/.tmp.bin";
    GPT2Config configs[2] = {gpt2_config_make(8, 60, 64, 1, 2, 8), gpt2_config_make(4, 2, 2, 2, 1, 4)};
    for (int c = 0; c < 2; c++) {
        GPT2 m;
        gpt2_build(&m, &configs[c], 1, 1, DEV_CPU, 42 + c);
        if (model_save(&m, tmp.c_str(), err)) die("%s", err);
        std::string fp32 = read_bytes(tmp.c_str());
        write_bytes(dir, c == 0 ? "model_fp32_l1_c8.bin" : "model_fp32_l2_c4.bin", fp32);
        if (c == 1) {
            gpt2_free(&m);
            continue;
        }

        // bf16 (version 5): the same header, the top half of each fp32
        int header[256];
        model_header(&m.config, MODEL_VERSION_BF16, header);
        std::string bf16((const char*)header, sizeof(header));
        for (size_t i = 0; i < m.num_parameters; i++) {
            uint32_t bits;
            memcpy(&bits, &m.params[0].data[i], 4);
            uint16_t h = (uint16_t)(bits >> 16);
            bf16.append((const char*)&h, 2);
        }
        write_bytes(dir, "model_bf16_l1_c8.bin", bf16);
        // near-valid: truncated by one parameter; a NaN in the last layernorm
        write_bytes(dir, "model_fp32_truncated.bin", fp32.substr(0, fp32.size() - 4));
        std::string nan_model = fp32;
        uint32_t nan_bits = 0x7fc00000u;
        memcpy(&nan_model[nan_model.size() - 4], &nan_bits, 4);
        write_bytes(dir, "model_fp32_nan.bin", nan_model);

        // checkpoints: AdamW and Muon after a made-up step, the run's settings as a run stores them
        const char* optimizers[2] = {"adamw", "muon"};
        for (int o = 0; o < 2; o++) {
            char arg0[] = "--optimizer", arg2[] = "--model", arg3[] = "tiny";
            char arg1[16];
            snprintf(arg1, sizeof(arg1), "%s", optimizers[o]);
            char* argv[] = {arg0, arg1, arg2, arg3};
            RunConfig rc;
            if (run_config_from_args(&rc, 4, argv, err)) die("%s", err);
            OptimizerConfig oc;
            if (optimizer_config_from_run(&rc, rc.optimizer, &oc, err)) die("%s", err);
            Optimizer opt;
            if (optimizer_init(&opt, &m, &oc, err)) die("%s", err);
            for (size_t i = 0; i < opt.num_parameters; i++) {
                opt.m[i] = 1e-3f * (float)((int)(i % 7) - 3);
                opt.v[i] = 1e-6f * (float)(i % 5);
            }
            opt.t = 3;
            TrainState st;
            memset(&st, 0, sizeof(st));
            st.step = 3;
            st.opt_t = 3;
            st.rng_state = 0x1234567;
            st.data_offset = 48;
            st.train_seconds = 0.5;
            st.tokens = 48;
            st.best_val_loss = st.last_val_loss = 4.0f;
            if (checkpoint_save(tmp.c_str(), &m, &opt, &st, &rc, sizeof(rc), err)) die("%s", err);
            std::string ckpt = read_bytes(tmp.c_str());
            write_bytes(dir, o == 0 ? "checkpoint_adamw.bin" : "checkpoint_muon.bin", ckpt);
            if (o == 0) {  // near-valid: one flipped byte in the moments (checksum mismatch), truncated state
                std::string flipped = ckpt;
                flipped[flipped.size() - 9] ^= 0x40;
                write_bytes(dir, "checkpoint_adamw_flipped.bin", flipped);
                write_bytes(dir, "checkpoint_adamw_truncated.bin", ckpt.substr(0, ckpt.size() - 100));
            }
            optimizer_free(&opt);
        }
        gpt2_free(&m);
    }
    remove(tmp.c_str());
}

// ---- shards ----

// one llm.c shard of `count` ids (the header may lie about the count: `claimed`)
static std::string shard(int count, int claimed, int first_id) {
    int32_t header[SHARD_HEADER_INTS] = {SHARD_MAGIC, SHARD_VERSION, claimed};
    std::string s((const char*)header, sizeof(header));
    for (int i = 0; i < count; i++) {
        uint16_t id = (uint16_t)((first_id + 37 * i) % GPT2_VOCAB_SIZE);
        s.append((const char*)&id, 2);
    }
    return s;
}

// fuzz_shards' 8-byte settings (see fuzz_shards.cpp): B, T, flags, nexts, seek epoch, seek shard + 1, seek offset
static std::string prefix(int B, int T, int flags, int nexts, int epoch, int shard_index, int offset) {
    uint8_t p[8] = {(uint8_t)(B - 1), (uint8_t)(T - 1), (uint8_t)flags, (uint8_t)nexts, (uint8_t)epoch,
                    (uint8_t)(shard_index + 1), (uint8_t)(offset & 0xff), (uint8_t)(offset >> 8 & 0xff)};
    return std::string((const char*)p, 8);
}

// a shard preceded by its uint16 length (every shard but the last)
static std::string sized(const std::string& s) {
    uint16_t n = (uint16_t)s.size();
    return std::string((const char*)&n, 2) + s;
}

static void shard_seeds() {
    const char* dir = "fuzz_shards";
    write_bytes(dir, "one_shard.bin", prefix(2, 4, 0, 3, 0, 0, 8) + shard(40, 40, 11));
    write_bytes(dir, "one_shard_wraps.bin", prefix(1, 3, 1, 7, 2, 0, 30) + shard(9, 9, 50000));
    write_bytes(dir, "two_shards_shuffled.bin", prefix(2, 2, 1 | 1 << 1, 5, 1, 1, 4) + sized(shard(12, 12, 5)) + shard(20, 20, 900));
    write_bytes(dir, "three_shards.bin",
                prefix(1, 4, 1 | 2 << 1, 7, 3, 2, 1) + sized(shard(6, 6, 1)) + sized(shard(10, 10, 2)) + shard(5, 5, 3));
    // near-valid: a token id of 50257; a header claiming one token more than held; a fixed-up header
    std::string bad = shard(40, 40, 11);
    uint16_t id = GPT2_VOCAB_SIZE;
    memcpy(&bad[SHARD_HEADER_BYTES + 2 * 20], &id, 2);
    write_bytes(dir, "bad_token.bin", prefix(2, 4, 0, 3, 0, 0, 8) + bad);
    write_bytes(dir, "count_mismatch.bin", prefix(2, 4, 0, 3, 0, 0, 8) + shard(40, 41, 11));
    std::string garbage = shard(24, 0, 7);
    memset(&garbage[0], 0xA5, 12);
    write_bytes(dir, "fixed_header.bin", prefix(3, 2, 1 << 3, 4, 0, 0, 6) + garbage);
}

int main(int argc, char** argv) {
    if (argc > 1) out_root = argv[1];
    char err[ERR_LEN];
    for (const char* dir : {"fuzz_model_file", "fuzz_shards"})
        if (make_dirs((std::string(out_root) + "/" + dir).c_str(), err)) die("%s", err);
    model_seeds();
    shard_seeds();
    return 0;
}
