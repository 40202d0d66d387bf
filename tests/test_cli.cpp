// tests/test_cli.cpp: ./train itself on bad input: each case must end with exactly one line on stderr,
// "error: ..." naming the file or flag and what was expected, and a non-zero exit status (never a crash); and
// ./train on a whole run: sampling from its checkpoint, starting from one, stopping on a signal.
// `make test` builds ./train before running the tests, from the repository root.
#include <signal.h>
#include "cliutil.h"

static const char* SMALL = " --device cpu --model tiny --batch 1 --seq-len 8 --steps 1 --out /tmp/muongpt_cli_runs";

TEST_CASE("cli: a wrong flag, a bad value, a missing value") {
    expect_one_line_error("--bogus 3", "unknown flag '--bogus'");
    expect_one_line_error("--batch many", "--batch: expected an integer from 0 to 65536, got 'many'");
    expect_one_line_error("--lr", "--lr: missing its value");
    expect_one_line_error("--device tpu", "--device: expected one of cpu|cuda|auto, got 'tpu'");
    expect_one_line_error("frobnicate", "unknown command 'frobnicate'");
    expect_one_line_error("--model d13 --device cpu", "unknown model 'd13'");
}

TEST_CASE("cli: a model that cannot be built is refused before training") {
    expect_one_line_error(std::string("--heads 3") + SMALL + " --data /nonexistent_train.bin", "3 heads do not divide 32 channels");
    expect_one_line_error(std::string(SMALL) + " --seq-len 100", "--seq-len 100: longer than the model's context 64");
    expect_one_line_error(std::string(SMALL) + " --optimizer muon --ns-gram 2 --ns-dtype bf16",
                          "--ns-gram 2 with --ns-dtype bf16: Newton-Schulz on the Gram matrix is full precision only");
}

// --seq-len's default (0: 256 on the CPU) is at most the model's context: tiny's is 64, and an unset --seq-len must
// not be refused as too long (it was: "--seq-len 256: longer than the model's context 64", naming a flag not given)
TEST_CASE("cli: --model tiny without --seq-len trains at its context of 64") {
    REQUIRE_MESSAGE(access("./train", X_OK) == 0, "./train is missing: run the tests with `make test`");
    CommandResult r = run_command("./train --device cpu --model tiny --batch 1 --steps 1 --eval-batches 1 "
                                  "--out /tmp/muongpt_cli_runs --run-name tiny_context", "2>&1");
    INFO(r.text);
    CHECK(r.status == 0);
    CHECK(r.text.find("batch 1 x 64 x 1") != std::string::npos);
}

TEST_CASE("cli: missing, truncated and foreign token files") {
    std::string dir = temp_dir();
    expect_one_line_error(std::string(SMALL) + " --data " + dir + "/missing.bin --val-data " + dir + "/missing.bin",
                          "missing.bin");
    int header[256] = {20240520, 1, 1000};
    std::vector<uint16_t> tokens(100, 7);  // the header promises 1000 tokens; 100 are there
    std::vector<char> bytes((char*)header, (char*)header + sizeof(header));
    bytes.insert(bytes.end(), (char*)tokens.data(), (char*)tokens.data() + 200);
    write_file(dir + "/trunc.bin", bytes.data(), bytes.size());
    expect_one_line_error(std::string(SMALL) + " --data " + dir + "/trunc.bin --val-data " + dir + "/trunc.bin",
                          "trunc.bin");
    header[0] = 12345;  // not llm.c's magic
    header[2] = 100;
    bytes.assign((char*)header, (char*)header + sizeof(header));
    bytes.insert(bytes.end(), (char*)tokens.data(), (char*)tokens.data() + 200);
    write_file(dir + "/magic.bin", bytes.data(), bytes.size());
    expect_one_line_error(std::string(SMALL) + " --data " + dir + "/magic.bin --val-data " + dir + "/magic.bin",
                          "magic");
}

// prepare reads its flags through the same table code as train: --help is a success, an unknown flag, a bad value,
// no input and a missing file are one line each
TEST_CASE("cli: prepare's command line") {
    REQUIRE(access("./train", X_OK) == 0);
    CommandResult help = run_command("./train prepare --help", "");
    CHECK(help.status == 0);
    CHECK(help.text.find("--val-tokens 32768") != std::string::npos);
    expect_one_line_error("prepare --bogus 1 x.txt", "unknown flag '--bogus'");
    expect_one_line_error("prepare --shard-tokens 0 x.txt", "--shard-tokens 0: expected an integer from 1 to 2147483647");
    expect_one_line_error("prepare", "prepare: no text files given");
    std::string dir = temp_dir();
    expect_one_line_error("prepare " + dir + "/missing.txt --out " + dir, "missing.txt: cannot open");
}

TEST_CASE("cli: --help lists every flag with its default") {
    REQUIRE(access("./train", X_OK) == 0);
    CommandResult r = run_command("./train --help", "");
    CHECK(r.status == 0);
    const std::string& out = r.text;
    for (const char* flag : {"--data data/tinyshakespeare.txt", "--batch 0", "--lr default", "--seed 1337", "--resume",
                             "--device auto", "--optimizers"})
        CHECK_MESSAGE(out.find(flag) != std::string::npos, flag);
}

// dir/train.bin and dir/val.bin: 600 random GPT-2 tokens each, as llm.c shards
static void write_random_shards(const std::string& dir) {
    Rng rng = rng_make(5);
    for (const char* name : {"/train.bin", "/val.bin"}) {
        int header[256] = {20240520, 1, 600};
        std::vector<uint16_t> tokens(600);
        for (uint16_t& t : tokens) t = (uint16_t)(rng_u32(&rng) % 50257);
        std::vector<char> bytes((char*)header, (char*)header + sizeof(header));
        bytes.insert(bytes.end(), (char*)tokens.data(), (char*)tokens.data() + 1200);
        write_file(dir + name, bytes.data(), bytes.size());
    }
}

TEST_CASE("cli: train a tiny model, then sample from its checkpoint; a missing checkpoint is one clear line") {
    REQUIRE(access("./train", X_OK) == 0);
    std::string dir = temp_dir();
    write_random_shards(dir);
    // --sample-every prints samples during training (a regression: the run's tokenizer once lived in
    // calloc'ed memory, and loading it crashed)
    std::string run = "./train --device cpu --model tiny --batch 2 --seq-len 16 --steps 2 --eval-batches 1 --out " +
                      dir + "/runs --run-name t --sample-every 1 --sample-tokens 4 --data " + dir + "/train.bin";
    CommandResult r = run_command(run, "2>&1");
    const std::string& log = r.text;
    INFO(log);
    REQUIRE(r.status == 0);
    size_t samples = 0;
    for (size_t at = log.find("\nsample: "); at != std::string::npos; at = log.find("\nsample: ", at + 1)) samples++;
    CHECK(samples == 2);
    CommandResult sample = run_command("./train sample --device cpu --tokens 5 --seed 3 --checkpoint " + dir +
                                       "/runs/t/checkpoint.bin", "");
    CHECK(sample.status == 0);
    CHECK(sample.text.size() > 1);  // five tokens of (untrained) text and a newline
    expect_one_line_error("sample --device cpu --checkpoint " + dir + "/nope.bin", "nope.bin: cannot open");
    expect_one_line_error("sample --device cpu --checkpoint tests/fixtures/reference_model_bf16.bin",
                          "vocabulary of 10 tokens, but sampling needs GPT-2's (50257)");

    // --init-from: a new run from the checkpoint's weights starts at the loss the first run ended at (the same
    // validation batches), not at an untrained model's ~10.8
    CommandResult again = run_command("./train --device cpu --model d2 --batch 2 --seq-len 16 --steps 1 "
                                      "--eval-batches 1 --eval-every 1 --out " + dir + "/runs --run-name u --data " +
                                      dir + "/train.bin --init-from " + dir + "/runs/t/checkpoint.bin", "2>&1");
    INFO(again.text);
    REQUIRE(again.status == 0);
    CHECK(again.text.find("initial weights from") != std::string::npos);
    CHECK(again.text.find("L 2, NH 2, C 32") != std::string::npos);  // the file's config, not d2's
    auto val_loss_at = [](const std::string& text, const char* step) {
        size_t at = text.find(std::string(step) + " val_loss ");
        return at == std::string::npos ? -1.0 : atof(text.c_str() + at + strlen(step) + 10);
    };
    double ended = val_loss_at(log, "step 2"), started = val_loss_at(again.text, "step 0");
    CHECK(ended > 0.0);
    CHECK(started == doctest::Approx(ended).epsilon(1e-6));
    expect_one_line_error(std::string(SMALL) + " --init-from tests/fixtures/reference_model_fp32.bin",
                          "vocabulary of 10 tokens, but the data are GPT-2 tokens");
    expect_one_line_error("sample --device cpu --checkpoint " + dir + "/train.bin", "bad magic 20240520");
}

// Runs ./train on dir's shards for `steps` steps as a background job, sends it SIG<sig> once it has logged step 3,
// and waits for it: its exit status (its output in dir/<name>.log). set -m puts the run in a process group of its
// own, where a background job's SIGINT is not ignored.
static CommandResult run_and_signal(const std::string& dir, const std::string& name, const std::string& sig,
                                    int steps) {
    std::string log = dir + "/" + name + ".log";
    FILE* f = fopen((dir + "/run.sh").c_str(), "w");
    REQUIRE(f != NULL);
    fprintf(f, "set -m\n./train --device cpu --model tiny --batch 2 --seq-len 16 --steps %d --eval-every 1000 "
               "--eval-batches 1 --out %s/runs --run-name %s --data %s/train.bin > %s 2>&1 &\npid=$!\n"
               "for i in $(seq 1200); do grep -q '^step 3/' %s && break; sleep 0.05; done\nkill -%s $pid\nwait $pid\n",
            steps, dir.c_str(), name.c_str(), dir.c_str(), log.c_str(), log.c_str(), sig.c_str());
    fclose(f);
    return run_command("bash " + dir + "/run.sh");
}

// Ctrl-C (SIGINT), SIGTERM or SIGHUP stops a run at the next step boundary with a checkpoint (run.h): the exit
// status is 128 + the signal, the last line names the checkpoint, and a run resumed from it goes on from that step.
// A signal ignored when ./train starts (SIGHUP under nohup) stays ignored: that run trains to its end.
TEST_CASE("cli: SIGINT, SIGTERM and SIGHUP stop a run at the next step, with a checkpoint it resumes from") {
    REQUIRE(access("./train", X_OK) == 0);
    std::string dir = temp_dir();
    write_random_shards(dir);
    const int signals[3] = {SIGINT, SIGTERM, SIGHUP};
    void (*before[3])(int);  // the runs start with each at its default (this test may itself run under nohup)
    for (int i = 0; i < 3; i++) before[i] = signal(signals[i], SIG_DFL);
    for (std::string sig : {"INT", "TERM", "HUP"}) {
        CAPTURE(sig);
        std::string ckpt = dir + "/runs/" + sig + "/checkpoint.bin";
        CommandResult r = run_and_signal(dir, sig, sig, 3000);  // 3000 steps would take minutes
        std::string text = file_text(dir + "/" + sig + ".log");
        INFO(text);
        CHECK(r.status == 128 + (sig == "INT" ? SIGINT : sig == "TERM" ? SIGTERM : SIGHUP));
        size_t at = text.find("stopping at step ");
        REQUIRE(at != std::string::npos);
        long long step = atoll(text.c_str() + at + 17);
        CHECK(step >= 3);
        CHECK(step < 3000);
        CHECK(text.find("on SIG" + sig + (sig == "INT" ? " (Ctrl-C)" : "") + "; continue with --resume " + ckpt) !=
              std::string::npos);
        CHECK(text.find("\nstopped: ") != std::string::npos);
        std::string stop = std::to_string(step + 2);
        CommandResult resumed = run_command("./train --resume " + ckpt + " --stop-at " + stop, "2>&1");
        INFO(resumed.text);
        CHECK(resumed.status == 0);
        CHECK(resumed.text.find("step " + std::to_string(step + 1) + "/3000 ") != std::string::npos);
        CHECK(resumed.text.find("stopping at step " + stop + " as asked (--stop-at)") != std::string::npos);
    }
    signal(SIGHUP, SIG_IGN);
    CommandResult ignored = run_and_signal(dir, "nohup", "HUP", 100);
    std::string text = file_text(dir + "/nohup.log");
    INFO(text);
    CHECK(ignored.status == 0);
    CHECK(text.find("stopping at step") == std::string::npos);
    CHECK(text.find("\ndone: 100 steps") != std::string::npos);
    for (int i = 0; i < 3; i++) signal(signals[i], before[i]);
}
