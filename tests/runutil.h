// tests/runutil.h: what the tests of whole runs share (tests/test_train.cpp on the CPU, tests/emu/test_emu_train.cu
// on the emulated GPU): small synthetic shards, a RunConfig made from flags as the command line makes it, and
// the losses a run logged.
#pragma once
#include <string>
#include <vector>
#include "testutil.h"
#include "../run.h"

// a temporary folder with a training and a validation shard of random tokens (llm.c's format). learnable: instead
// of uniform over GPT-2's 50257 tokens (a loss that stays at log 50257 = 10.8), a chain over 64 of them in which each
// token is followed by its own successor 3 times in 4, so a model's loss falls well below that within 50 steps
static std::string make_test_data(uint64_t seed, bool learnable = false) {
    std::string dir = test_temp_dir("muongpt_train");
    Rng rng = rng_make(seed);
    const char* names[2] = {"/train.bin", "/val.bin"};
    for (int f = 0; f < 2; f++) {
        int count = f == 0 ? 4000 : 1000;
        int header[256] = {20240520, 1, count};
        std::vector<uint16_t> tokens(count);
        for (int i = 0; i < count; i++) {
            uint32_t r = rng_u32(&rng), k = r % 64;  // learnable: the k-th of 64 tokens 700 apart
            if (learnable && i > 0 && (r >> 8) % 4 != 0) k = ((tokens[i - 1] / 700) * 7 + 3) % 64;  // its successor
            tokens[i] = (uint16_t)(learnable ? k * 700 + 17 : r % 50257);
        }
        FILE* fp = fopen((dir + names[f]).c_str(), "wb");
        REQUIRE(fp != NULL);
        fwrite(header, sizeof(int), 256, fp);
        fwrite(tokens.data(), 2, count, fp);
        fclose(fp);
    }
    return dir;
}

// RunConfig from flags, as the command line would make it
static RunConfig test_config(const std::string& dir, std::vector<std::string> extra, Device dev = DEV_CPU) {
    std::vector<std::string> args = {"--model", "tiny", "--batch", "2", "--seq-len", "16", "--steps", "8",
                                     "--warmup", "2", "--data", dir + "/train.bin", "--val-data", dir + "/val.bin",
                                     "--out", dir + "/runs", "--eval-every", "2", "--eval-batches", "2",
                                     "--device", device_name(dev)};
    args.insert(args.end(), extra.begin(), extra.end());
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(&a[0]);
    RunConfig rc;
    char err[ERR_LEN];
    REQUIRE_MESSAGE(run_config_from_args(&rc, (int)argv.size(), argv.data(), err) == 0, err);
    if (!rc.resume[0]) run_config_resolve(&rc, dev);  // as ./train does: a resumed run takes the checkpoint's
    return rc;
}

// the train_loss column of a run's log.csv, as text (one entry per training step)
static std::vector<std::string> logged_losses(const std::string& csv) {
    std::vector<std::string> out;
    FILE* f = fopen(csv.c_str(), "r");
    REQUIRE(f != NULL);
    char line[512];
    if (!fgets(line, sizeof(line), f)) line[0] = 0;  // the header
    while (fgets(line, sizeof(line), f)) {
        char* c1 = strchr(line, ',');
        char* c2 = c1 ? strchr(c1 + 1, ',') : NULL;
        char* c3 = c2 ? strchr(c2 + 1, ',') : NULL;
        if (c2 && c3 && c3 > c2 + 1) out.push_back(std::string(c2 + 1, c3));
    }
    fclose(f);
    return out;
}

