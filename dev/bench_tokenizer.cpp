// dev/bench_tokenizer.cpp: encode throughput of data/tokenizer.h, for dev/bench_tokenizer.py, which runs
// it beside tiktoken on one core and prints the ratio. Flow: benchmark only (text -> ids).
// Build: g++ -O2 -march=native -std=c++17 -Wall -Wno-unused-function -I. dev/bench_tokenizer.cpp
//        -o build/bench_tokenizer -lpcre2-8
// Usage: build/bench_tokenizer [text file (data/tinyshakespeare.txt)] [runs (10)]
// Prints key value lines: bytes, tokens, ids_fnv (to check the ids are tiktoken's), and the median time of
// a cold encode (fresh tokenizer, empty piece cache: what tiktoken does on every call) and of a warm one
// (the cache filled by an earlier pass over the same text).
#include <algorithm>

#include "data/tokenizer.h"

static double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

int main(int argc, char** argv) {
    const char* path = argc > 1 ? argv[1] : "data/tinyshakespeare.txt";
    int runs = argc > 2 ? atoi(argv[2]) : 10;
    if (runs < 1) die("runs must be >= 1");
    char err[ERR_LEN];
    std::string text;
    if (read_whole_file(path, &text, err)) die("%s", err);
    std::vector<double> cold, warm;
    std::vector<int> ids;
    for (int r = 0; r < runs; r++) {
        Tokenizer tok;
        if (tokenizer_load(&tok, "data/encoder.json", "data/vocab.bpe", err)) die("%s", err);
        for (int pass = 0; pass < 2; pass++) {
            ids.clear();
            ids.reserve(text.size() / 2);
            double t0 = now_seconds();
            if (tokenizer_encode(&tok, text.data(), text.size(), &ids, err)) die("%s", err);
            (pass == 0 ? cold : warm).push_back(now_seconds() - t0);
        }
        tokenizer_free(&tok);
    }
    uint64_t h = 0xcbf29ce484222325ull;  // FNV-1a 64 over the little-endian int32 ids
    for (int id : ids)
        for (int k = 0; k < 4; k++) { h ^= (uint32_t)id >> (8 * k) & 0xFF; h *= 0x100000001b3ull; }
    printf("bytes %zu\ntokens %zu\nids_fnv %016llx\ncold_seconds %.6f\nwarm_seconds %.6f\n", text.size(), ids.size(),
           (unsigned long long)h, median(cold), median(warm));
    return 0;
}
