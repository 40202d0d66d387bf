// tests/fuzz/fuzz_shards.cpp: libFuzzer target for data/loader.h, llm.c token shards (256 int32 header:
// magic 20240520, version 1, token count; then uint16 ids) and the batch loader over them.
// Input: an 8-byte prefix of loader settings, then 1 to 3 shard files:
//   [0] B = 1 + b % 4   [1] T = 1 + b % 16   [2] bit 0 shuffle, bits 1-2 shards - 1 (3 -> 1), bit 3 fix the
//   headers (magic, version and count made right, so the fuzzer reaches the tokens and the batching)
//   [3] dataloader_next calls, b % 8   [4] seek epoch, b % 4   [5] seek shard index (b - 1: may be -1 or past
//   the end)   [6..7] seek offset, int16 (may be negative or past the end)
//   then each shard but the last: a uint16 length and that many bytes; the last: the rest.
// The shards are written to a scratch folder and loaded by glob, as a run does (dataloader_init, a few
// dataloader_next, dataloader_seek, more dataloader_next, dataloader_reset, dataloader_free).
// Errors the API returns (-1 with a message) are expected; a bug is a sanitizer report, a crash, a leak, or a
// batch that breaks the loader's promises: every id below 50257, targets the inputs shifted by one, the
// position inside the shards.
#include "data/loader.h"
#include "tests/fuzz/fuzz_util.h"

static void check_batch(const DataLoader* dl) {
    int64_t n = (int64_t)dl->B * dl->T;
    for (int64_t i = 0; i < n; i++) {
        FUZZ_CHECK(dl->inputs[i] >= 0 && dl->inputs[i] < GPT2_VOCAB_SIZE, "input %lld is %d", (long long)i, dl->inputs[i]);
        FUZZ_CHECK(dl->targets[i] >= 0 && dl->targets[i] < GPT2_VOCAB_SIZE, "target %lld is %d", (long long)i, dl->targets[i]);
        if (i + 1 < n) FUZZ_CHECK(dl->targets[i] == dl->inputs[i + 1], "target %lld is not the next input", (long long)i);
    }
    const DataPosition p = dataloader_tell(dl);
    FUZZ_CHECK(p.shard_index >= 0 && p.shard_index < dl->num_shards, "shard index %lld", (long long)p.shard_index);
    FUZZ_CHECK(p.offset >= n && p.offset <= dl->shard_tokens[dl->order[p.shard_index]], "offset %lld", (long long)p.offset);
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < 8) return 0;
    int B = 1 + data[0] % 4, T = 1 + data[1] % 16;
    bool shuffle = data[2] & 1, fix_headers = data[2] & 8;
    int num_shards = 1 + (data[2] >> 1 & 3) % 3, nexts = data[3] % 8;
    DataPosition seek = {data[4] % 4, (int64_t)data[5] - 1, (int16_t)(data[6] | data[7] << 8)};
    const uint8_t* p = data + 8;
    size_t left = size - 8;

    // the shards: shard_0.bin ... (one glob matches them all, sorted by name)
    for (int s = 0; s < num_shards; s++) {
        size_t len = left;
        if (s + 1 < num_shards) {
            if (left < 2) return 0;
            len = p[0] | p[1] << 8;
            p += 2;
            left -= 2;
            if (len > left) len = left;
        }
        std::string bytes((const char*)p, len);
        if (fix_headers && len >= SHARD_HEADER_BYTES) {
            int32_t head[3] = {SHARD_MAGIC, SHARD_VERSION, (int32_t)((len - SHARD_HEADER_BYTES) / 2)};
            memcpy(&bytes[0], head, sizeof(head));
        }
        char name[32];
        snprintf(name, sizeof(name), "shard_%d.bin", s);
        fuzz_write_file(fuzz_path(name), bytes.data(), bytes.size());
        p += len;
        left -= len;
    }
    for (int s = num_shards; s < 3; s++) {  // none left from a previous input
        char name[32];
        snprintf(name, sizeof(name), "shard_%d.bin", s);
        remove(fuzz_path(name).c_str());
    }

    DataLoader dl;
    char err[ERR_LEN];
    std::string pattern = fuzz_path("shard_*.bin");
    int rc = dataloader_init(&dl, pattern.c_str(), B, T, 1337, shuffle, err);
    fuzz_note("dataloader_init", rc, err);
    if (rc != 0) return 0;
    FUZZ_CHECK(dl.num_shards == num_shards, "%d shards found, %d written", dl.num_shards, num_shards);
    bool ok = true;
    for (int i = 0; i < nexts && ok; i++) {
        ok = dataloader_next(&dl, err) == 0;
        fuzz_note("dataloader_next", ok ? 0 : -1, err);
        if (ok) check_batch(&dl);
    }
    rc = dataloader_seek(&dl, seek, err);
    fuzz_note("dataloader_seek", rc, err);
    if (rc == 0) {
        const DataPosition now = dataloader_tell(&dl);
        FUZZ_CHECK(now.epoch == seek.epoch && now.shard_index == seek.shard_index && now.offset == seek.offset,
                   "tell after seek differs");
        for (int i = 0; i < 3; i++)
            if (dataloader_next(&dl, err) == 0) check_batch(&dl);
    }
    dataloader_reset(&dl);
    if (dataloader_next(&dl, err) == 0) check_batch(&dl);
    dataloader_free(&dl);
    return 0;
}
