// tests/fuzz/fuzz_tokenizer.cpp: libFuzzer target for data/tokenizer.h, GPT-2's BPE with the real vocabulary
// (data/encoder.json, data/vocab.bpe, loaded once).
// The input is used twice:
//  1. as text: encode, then decode. A bug is decode(encode(x)) differing from x byte for byte when x is valid
//     UTF-8, or from x with its invalid subsequences replaced by U+FFFD (the API's documented behaviour) when
//     not; an id outside [0, 50256) from encode (ordinary encoding never makes <|endoftext|>); or encoding the
//     replaced text giving other ids than encoding x.
//  2. as little-endian uint16 token ids: decode must fail at the first id >= 50257 (naming it) with the bytes
//     of the ids before it in the output, and decoding the ids with those skipped must succeed; the bytes so
//     decoded (arbitrary, often invalid UTF-8) then go through check 1 too.
// Any sanitizer report (ASan, UBSan), a crash or a leak is a bug as well.
#include "data/tokenizer.h"
#include "tests/fuzz/fuzz_util.h"

static Tokenizer tok;

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    std::string root = fuzz_repo_root();
    char err[ERR_LEN];
    if (tokenizer_load(&tok, (root + "/data/encoder.json").c_str(), (root + "/data/vocab.bpe").c_str(), err)) {
        fprintf(stderr, "fuzz_tokenizer: %s (run from the repository root)\n", err);
        exit(1);
    }
    return 0;
}

// check 1 on text[0, n)
static void round_trip(const char* text, size_t n) {
    char err[ERR_LEN];
    std::string want;
    if (utf8_valid_prefix(text, n) == n) want.assign(text, n);
    else utf8_replace_invalid(text, n, &want);
    std::vector<int> ids;
    FUZZ_CHECK(tokenizer_encode(&tok, text, n, &ids, err) == 0, "encode failed: %s", err);
    for (size_t i = 0; i < ids.size(); i++)
        FUZZ_CHECK(ids[i] >= 0 && ids[i] < GPT2_EOT, "encode gave id %d at %zu", ids[i], i);
    std::string back;
    FUZZ_CHECK(tokenizer_decode(&tok, ids.data(), ids.size(), &back, err) == 0, "decode failed: %s", err);
    FUZZ_CHECK(back == want, "decode(encode(x)) has %zu bytes, expected %zu", back.size(), want.size());
    if (want.size() != n || memcmp(want.data(), text, n) != 0) {  // invalid input: same ids as its replacement
        std::vector<int> again;
        FUZZ_CHECK(tokenizer_encode(&tok, want.data(), want.size(), &again, err) == 0, "encode failed: %s", err);
        FUZZ_CHECK(again == ids, "encode(x) and encode(replaced x) differ (%zu vs %zu ids)", ids.size(), again.size());
    }
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    round_trip((const char*)data, size);

    // check 2: the input as token ids
    size_t n = size / 2;
    std::vector<int> ids(n), kept;
    int first_bad = -1;
    for (size_t i = 0; i < n; i++) {
        ids[i] = data[2 * i] | data[2 * i + 1] << 8;
        if (ids[i] < GPT2_VOCAB_SIZE) kept.push_back(ids[i]);
        else if (first_bad < 0) first_bad = (int)i;
    }
    char err[ERR_LEN];
    std::string out, skipped;
    int rc = tokenizer_decode(&tok, ids.data(), n, &out, err);
    FUZZ_CHECK((rc != 0) == (first_bad >= 0), "decode returned %d, first id outside the vocabulary at %d", rc, first_bad);
    FUZZ_CHECK(tokenizer_decode(&tok, kept.data(), kept.size(), &skipped, err) == 0, "decode of valid ids failed: %s", err);
    size_t prefix = 0;  // bytes of the ids before the first bad one
    for (size_t i = 0; i < (first_bad >= 0 ? (size_t)first_bad : n); i++) {
        size_t len;
        FUZZ_CHECK(tokenizer_token_bytes(&tok, ids[i], &len) != NULL, "id %d has no bytes", ids[i]);
        prefix += len;
    }
    FUZZ_CHECK(out.size() == prefix && skipped.compare(0, prefix, out) == 0,
               "a failed decode left %zu bytes, expected the %zu of the ids before id %d", out.size(), prefix, first_bad);
    round_trip(skipped.data(), skipped.size());
    return 0;
}
