// tests/test_hostile.cpp: the promises of README against a hostile user (issue "Hostile input and crashes"): every
// file, flag and checkpoint setting that once crashed, hung, misled or was silently accepted, each now refused
// with one line naming it; checkpoints that carry a checksum; logs that survive a kill; resume that says what it
// does. Each case below is one that was seen to fail before its fix.
#include <signal.h>
#include <functional>
#include "cliutil.h"
#include "runutil.h"

// ----------------------------------------------------------------------------------------------------
// files made for the cases

static void write_bytes_at(const std::string& path, const std::vector<char>& bytes) {
    write_file(path, bytes.data(), bytes.size());
}

static std::vector<char> file_bytes(const std::string& path) {
    std::vector<char> b;
    FILE* f = fopen(path.c_str(), "rb");
    REQUIRE(f != NULL);
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), f)) > 0) b.insert(b.end(), buf, buf + n);
    fclose(f);
    return b;
}

// A checkpoint of a fresh tiny model, with its settings (a test_config over `data`), optimizer and state changed
// by `edit` first: written by the real writer, so its checksums are right and only the edited values are wrong.
static std::string edited_checkpoint(const std::string& data, const std::string& name,
                                     std::function<void(GPT2Config*, RunConfig*, OptimizerConfig*, TrainState*)> edit) {
    RunConfig rc = test_config(data, {"--run-name", name});
    OptimizerConfig oc = optimizer_config_adamw();
    TrainState st;
    memset(&st, 0, sizeof(st));
    st.best_val_loss = st.last_val_loss = INFINITY;
    GPT2Config cfg;
    char err[ERR_LEN];
    REQUIRE(gpt2_config_preset(&cfg, "tiny", err) == 0);
    edit(&cfg, &rc, &oc, &st);
    GPT2 model;
    gpt2_build(&model, &cfg, 1, 1, DEV_CPU, 0);
    Optimizer opt;
    OptimizerConfig sane = optimizer_config_adamw();  // the optimizer object itself must build; the file holds oc
    REQUIRE(optimizer_init(&opt, &model, &sane, err) == 0);
    opt.cfg = oc;
    std::string path = data + "/" + name + ".bin";
    REQUIRE_MESSAGE(checkpoint_save(path.c_str(), &model, &opt, &st, &rc, sizeof(rc), err) == 0, err);
    optimizer_free(&opt);
    gpt2_free(&model);
    return path;
}

// run_training resuming `ckpt` with the test settings plus `extra`: its error message ("" on success)
// (only --resume and `extra` on the command line, as a user resumes: every other setting is the checkpoint's)
static std::string resume_error(const std::string& data, const std::string& ckpt, std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"--resume", ckpt};
    args.insert(args.end(), extra.begin(), extra.end());
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(&a[0]);
    RunConfig rc;
    char parse_err[ERR_LEN];
    REQUIRE_MESSAGE(run_config_from_args(&rc, (int)argv.size(), argv.data(), parse_err) == 0, parse_err);
    (void)data;
    OptimizerConfig oc = optimizer_config_adamw();
    RunResult res;
    char err[ERR_LEN] = "";
    int status = run_training(&rc, &oc, DEV_CPU, &res, err);
    return status == 0 ? std::string() : std::string(err);
}

// llm.c model header for a config (version 3, fp32)
static std::vector<char> model_header_bytes(int T, int V, int L, int NH, int C, int Vp) {
    int header[256] = {20240326, 3, T, V, L, NH, C, Vp};
    return std::vector<char>((char*)header, (char*)header + sizeof(header));
}

static const char* TINY_RUN = " --device cpu --model tiny --batch 1 --seq-len 8 --steps 1 --eval-batches 1";

// ----------------------------------------------------------------------------------------------------
// 1, 2: crafted model headers and foreign vocabularies

TEST_CASE("hostile: a model header whose sizes would wrap a 32-bit count is refused before any allocation") {
    std::string dir = temp_dir();
    // the header the fuzzer found: 3C and 4C overflow int, and the size_t parameter count wrapped to a file-sized
    // number, so the size check passed and the initialisation wrote past the heap
    std::vector<char> bytes = model_header_bytes(1, 50257, 1, 1, 613792511, 1224424451);
    bytes.resize(bytes.size() + 6321124, 0);
    std::string path = dir + "/crafted.bin";
    write_bytes_at(path, bytes);
    GPT2Config cfg = {1, 50257, 1224424451, 1, 1, 613792511};
    char err[ERR_LEN];
    CHECK(gpt2_config_check(&cfg, err) != 0);
    CHECK(strstr(err, "too large") != NULL);
    expect_one_line_error("sample --device cpu --checkpoint " + path, "too large");
    expect_one_line_error(std::string(TINY_RUN) + " --init-from " + path, "too large");
    expect_one_line_error(std::string(TINY_RUN) + " --resume " + path, "too large");
    // the largest sizes allowed still multiply inside 64 bits
    GPT2Config big = {GPT2_MAX_CONTEXT, GPT2_MAX_VOCAB, GPT2_MAX_VOCAB, GPT2_MAX_LAYERS, 1, GPT2_MAX_CHANNELS};
    CHECK(gpt2_config_check(&big, err) != 0);  // more parameters than GPT2_MAX_PARAMETERS, said as such
    CHECK(strstr(err, "parameters, more than") != NULL);
}

TEST_CASE("hostile: --resume of a checkpoint whose vocabulary is not GPT-2's is refused (it read out of bounds)") {
    std::string data = make_test_data(11);
    std::string ckpt = edited_checkpoint(data, "vocab", [](GPT2Config* c, RunConfig*, OptimizerConfig*, TrainState*) {
        c->vocab_size = 1000;
        c->padded_vocab_size = 1024;
    });
    std::string err = resume_error(data, ckpt);
    CHECK(err.find("vocabulary of 1000 tokens, but the data are GPT-2 tokens") != std::string::npos);
}

// ----------------------------------------------------------------------------------------------------
// 3, 7, 10, 11: flags out of range, each refused by name with its range

TEST_CASE("hostile: flags out of range are refused by name, with the range") {
    struct Case { const char* args; const char* message; };
    const Case cases[] = {
        {"--sample-tokens -1", "--sample-tokens -1: expected an integer from 1 to 1048576"},
        {"sample --checkpoint x --tokens 2147483647", "--tokens 2147483647: expected an integer from 1 to 1048576"},
        {"sample --checkpoint x --top-k -5", "--top-k -5: expected an integer from 0 to"},
        {"sample --checkpoint x --temperature -1", "--temperature -1: expected a number from 0 to 100"},
        {"--threads 100000", "--threads 100000: expected an integer from 0 to 4096"},
        {"--threads -1", "--threads -1: expected an integer from 0 to 4096"},
        {"--threads 4000 --device cpu", "--threads 4000: this machine has"},
        {"--lr -5", "--lr -5: expected a number from 0 to 1000000, or default"},
        {"--lr -1", "--lr -1: expected a number >= 0 (or default"},
        {"--channels -5", "--channels -5: expected an integer from 0 to 65536"},
        {"--layers -2", "--layers -2: expected an integer from 0 to 1024"},
        {"--beta1 2", "--beta1 2: expected a number in [0, 1), or default"},
        {"--beta2 1", "--beta2 1: expected a number in [0, 1), or default"},
        {"--final-lr-frac -3", "--final-lr-frac -3: expected a number from 0 to 1"},
        {"--grad-accum 2147483647", "--grad-accum 2147483647: expected an integer from 1 to 65536"},
        {"--batch -1", "--batch -1: expected an integer from 0 to 65536"},
        {"--eval-batches 0", "--eval-batches 0: expected an integer from 1 to"},
        {"--sweep-lr 7", "--sweep-lr 7: expected an integer from 0 to 1"},
        {"--cuda-graph 2", "--cuda-graph 2: expected an integer from 0 to 1"},
        {"--cuda-graph -1", "--cuda-graph -1: expected an integer from 0 to 1"},
        {"--optimizer p=0junk --device cpu", "unknown optimizer 'p=0junk'"},
        {"compare --optimizers muon,adamw,muon --device cpu", "--optimizers: 'muon' named twice"},
        {"compare --resume x --device cpu", "--resume: continues one run"},
    };
    for (const Case& c : cases) expect_one_line_error(c.args, c.message);
}

TEST_CASE("hostile: sizes too large for the machine are refused before allocation, naming the flags") {
    expect_one_line_error("--device cpu --model d48 --batch 65536 --seq-len 1024 --steps 1",
                          "--model d48 --batch 65536 --seq-len 1024: needs");
}

TEST_CASE("hostile: messages name what is wrong: a folder as a shard, a damaged vocabulary, a tiny text") {
    std::string dir = temp_dir();
    expect_one_line_error(std::string(TINY_RUN) + " --data " + dir + " --val-data " + dir, "not a regular file");
    expect_one_line_error("sample --device cpu --checkpoint " + dir, "not a regular file");
    // prepare with a damaged vocabulary: the error is the file's, without "run from the repository root"
    std::string root = dir + "/root";
    char ignored[ERR_LEN];
    make_dirs((root + "/data").c_str(), ignored);
    write_file(root + "/data/encoder.json", "{", 1);
    write_file(root + "/data/vocab.bpe", "x", 1);
    write_file(root + "/small.txt", "a few words\n", 12);
    std::string cwd = getcwd(ignored, sizeof(ignored)) ? ignored : ".";
    CommandResult r = run_command("cd " + root + " && " + cwd + "/train prepare small.txt");
    INFO(r.text);
    CHECK(r.status == 1);
    CHECK(r.text.find("error: data/") == 0);  // the file that is damaged, and what is wrong with it
    CHECK(r.text.find("repository root") == std::string::npos);
    // a text too short for a training split: the hint is prepare's --val-tokens, not a flag train refuses
    // (stderr also carries the "tokenizing" progress line: the error is the last line)
    CommandResult tiny = run_command("cp " + root + "/small.txt " + dir + "/tiny.txt && ./train" + std::string(TINY_RUN) +
                                     " --cache-dir " + dir + "/cache --data " + dir + "/tiny.txt");
    INFO(tiny.text);
    CHECK(tiny.status == 1);
    CHECK(tiny.text.find("no training data (use more text, or a smaller validation split: ./train prepare "
                         "--val-tokens N)\n") != std::string::npos);
}

// ----------------------------------------------------------------------------------------------------
// 6: settings and state read from a checkpoint are checked like the command line's

TEST_CASE("hostile: a checkpoint's settings, optimizer and state are validated before a resumed run uses them") {
    std::string data = make_test_data(12);
    using Edit = std::function<void(GPT2Config*, RunConfig*, OptimizerConfig*, TrainState*)>;
    struct Case { const char* name; Edit edit; const char* message; };
    const Case cases[] = {
        {"eval", [](GPT2Config*, RunConfig* r, OptimizerConfig*, TrainState*) { r->eval_batches = 0; },
         "setting --eval-batches 0: expected an integer from 1 to"},
        {"sched", [](GPT2Config*, RunConfig* r, OptimizerConfig*, TrainState*) { snprintf(r->schedule, 16, "zigzag"); },
         "setting --schedule: expected one of cosine|wsd|constant, got 'zigzag'"},
        {"unterminated", [](GPT2Config*, RunConfig* r, OptimizerConfig*, TrainState*) { memset(r->device, 'x', 8); },
         "setting --device: value longer than 7 characters"},
        {"lr", [](GPT2Config*, RunConfig* r, OptimizerConfig*, TrainState*) { r->lr = -5; },
         "setting --lr -5: expected a number from 0 to"},
        {"ahead", [](GPT2Config*, RunConfig*, OptimizerConfig*, TrainState* s) { s->step = 9; },
         "the run is at step 9 of its 8: give --steps above 9"},
        {"behind", [](GPT2Config*, RunConfig*, OptimizerConfig*, TrainState* s) { s->step = -3; },
         "training state out of range (step -3"},
        {"method", [](GPT2Config*, RunConfig*, OptimizerConfig* o, TrainState*) { o->matrix = (MatrixMethod)7; },
         "optimizer: unknown method 7"},
        {"beta", [](GPT2Config*, RunConfig*, OptimizerConfig* o, TrainState*) { o->beta2 = 1.0f; },
         "out of range"},
        {"matmul", [](GPT2Config*, RunConfig* r, OptimizerConfig*, TrainState*) { snprintf(r->matmul, 8, "fp8"); },
         "setting --matmul: expected one of auto|fp32|tf32|bf16, got 'fp8'"},
        {"precision", [](GPT2Config*, RunConfig* r, OptimizerConfig*, TrainState*) { snprintf(r->precision, 8, "fp8"); },
         "setting --precision: expected one of auto|bf16|fp32, got 'fp8'"},
        {"ns_dtype", [](GPT2Config*, RunConfig* r, OptimizerConfig*, TrainState*) { snprintf(r->ns_dtype, 8, "fp16"); },
         "setting --ns-dtype: expected one of fp32|bf16, got 'fp16'"},
        {"ns_bf16", [](GPT2Config*, RunConfig*, OptimizerConfig* o, TrainState*) { o->muon.ns_bf16 = 2; },
         "a 0/1 setting holds 2"},
        {"ns_gram", [](GPT2Config*, RunConfig* r, OptimizerConfig*, TrainState*) { r->ns_gram = -2; },
         "setting --ns-gram -2: expected a number from 0 to"},
        {"ns_gram_bf16", [](GPT2Config*, RunConfig*, OptimizerConfig* o, TrainState*) {
             *o = optimizer_config_muon();
             o->muon.ns_gram = 2;
             o->muon.ns_bf16 = 1;
         }, "--ns-gram 2 with --ns-dtype bf16"},
        {"batch", [](GPT2Config*, RunConfig* r, OptimizerConfig*, TrainState*) { r->batch = -4; },
         "setting --batch -4: expected an integer from 0 to"},
    };
    for (const Case& c : cases) {
        std::string err = resume_error(data, edited_checkpoint(data, c.name, c.edit));
        INFO(c.name << ": " << err);
        CHECK(err.find(c.message) != std::string::npos);
    }
    // the 0 = auto of a checkpoint's eval_every is resolved like the command line's (it was a division by zero)
    std::string ckpt = edited_checkpoint(data, "zero", [](GPT2Config*, RunConfig* r, OptimizerConfig*, TrainState*) {
        r->eval_every = 0;
        r->health_every = 0;
    });
    CHECK(resume_error(data, ckpt) == "");
}

// ----------------------------------------------------------------------------------------------------
// 8: resume says what it does; --steps extends, --out redirects, other flags are refused

TEST_CASE("hostile: --resume takes --steps and --out, refuses a flag it would ignore, and leaves the original alone") {
    std::string data = make_test_data(13);
    char err[ERR_LEN] = "";
    OptimizerConfig oc = optimizer_config_adamw();
    RunResult res;
    RunConfig first = test_config(data, {"--run-name", "short", "--steps", "4"});
    REQUIRE_MESSAGE(run_training(&first, &oc, DEV_CPU, &res, err) == 0, err);
    std::string ckpt = data + "/runs/short/checkpoint.bin";
    std::vector<char> before = file_bytes(ckpt);
    // a finished run is not "done" silently: it asks for more steps
    CHECK(resume_error(data, ckpt).find("the run is at step 4 of its 4: give --steps above 4") != std::string::npos);
    // a flag the resumed run would ignore is refused, naming it and what may change
    std::string refused = resume_error(data, ckpt, {"--steps", "6", "--lr", "0.5"});
    CHECK(refused.find("--lr 0.5: --resume continues the checkpoint's run") != std::string::npos);
    CHECK(refused.find(RESUMABLE) != std::string::npos);
    // --steps 6 into another folder: 2 more steps there, the original checkpoint untouched
    CHECK(resume_error(data, ckpt, {"--steps", "6", "--out", data + "/copy", "--run-name", "longer"}) == "");
    CHECK(file_bytes(ckpt) == before);
    GPT2Config cfg;
    RunConfig rc;
    TrainState st;
    REQUIRE(checkpoint_peek((data + "/copy/longer/checkpoint.bin").c_str(), &cfg, &rc, sizeof(rc), &oc, &st, err) == 0);
    CHECK(st.step == 6);
    CHECK(rc.steps == 6);
}

// ----------------------------------------------------------------------------------------------------
// 9: checksums; finite models only

TEST_CASE("hostile: a flipped bit, a cut or extra bytes in a checkpoint are refused; a non-finite model too") {
    std::string data = make_test_data(14);
    std::string ckpt = edited_checkpoint(data, "good", [](GPT2Config*, RunConfig*, OptimizerConfig*, TrainState*) {});
    std::vector<char> good = file_bytes(ckpt);
    GPT2Config cfg;
    char err[ERR_LEN];
    REQUIRE(gpt2_config_preset(&cfg, "tiny", err) == 0);
    size_t params_at = 1024, state_at = 1024 + gpt2_num_parameters(&cfg) * 4 + 1024;
    struct Case { const char* name; size_t flip; long long resize; const char* message; };
    const Case cases[] = {
        {"param", params_at + 4 * 1000 + 1, 0, "checksum mismatch in the model part"},
        {"moment", good.size() - 9, 0, "checksum mismatch in the training state"},
        {"settings", state_at + sizeof(TrainState) + 3, 0, "checksum mismatch in the training state"},
        {"short", 0, -4, "truncated"},
        {"long", 0, 16, "extra bytes at the end"},
    };
    for (const Case& c : cases) {
        std::vector<char> b = good;
        if (c.flip) b[c.flip] ^= 0x10;
        if (c.resize) b.resize(b.size() + c.resize, 0);
        std::string path = data + "/" + c.name + ".bin";
        write_bytes_at(path, b);
        std::string e = resume_error(data, path);
        INFO(c.name << ": " << e);
        CHECK(e.find(c.message) != std::string::npos);
        expect_one_line_error("sample --device cpu --checkpoint " + path, c.message);
    }
    // llm.c's reader takes the model part: the checkpoint's front is still a model file (magic, sizes, params)
    CHECK(((const int*)good.data())[0] == 20240326);
    // a model file (no state, so no checksum) holding a NaN: refused by name, not sampled as "!!!!"
    std::vector<char> model(good.begin(), good.begin() + state_at - 1024);
    float nan = NAN;
    memcpy(&model[params_at + 4 * 77], &nan, 4);
    write_bytes_at(data + "/nan_model.bin", model);
    expect_one_line_error("sample --device cpu --checkpoint " + data + "/nan_model.bin",
                          "parameter 77 (in wte) is NaN");
}

// ----------------------------------------------------------------------------------------------------
// atomic checkpoints: kill -9 while they are written

// A run that writes a checkpoint after every step (of a model small enough that the writing is most of its time)
// is killed at eight moments; each time the checkpoint on disk, if there is one yet, must read back whole: its
// sizes and both checksums check out, and a resume could load it. A file cut by the kill would fail the checksum.
TEST_CASE("hostile: kill -9 during checkpoint writes always leaves a whole checkpoint") {
    std::string data = make_test_data(16), dir = temp_dir();
    std::string run = "./train --device cpu --model tiny --batch 2 --seq-len 16 --steps 100000 --eval-every 100000 "
                      "--health-every -1 --checkpoint-every 1 --out " + dir + "/runs --run-name a --data " + data +
                      "/train.bin --val-data " + data + "/val.bin";
    std::string ckpt = dir + "/runs/a/checkpoint.bin";
    int whole = 0, mid_write = 0;
    for (int k = 0; k < 8; k++) {
        remove((ckpt + ".tmp").c_str());
        char delay[16];
        snprintf(delay, sizeof(delay), "%.2f", 0.5 + 0.17 * k);
        run_command("(" + run + " > /dev/null 2>&1 & pid=$!; sleep " + delay + "; kill -9 $pid; wait $pid; true)", "2>&1");
        mid_write += access((ckpt + ".tmp").c_str(), F_OK) == 0;  // the kill came while a checkpoint was written
        if (access(ckpt.c_str(), F_OK) != 0) continue;
        GPT2Config cfg;
        RunConfig rc;
        OptimizerConfig oc;
        TrainState st;
        char err[ERR_LEN] = "";
        CHECK_MESSAGE(checkpoint_peek(ckpt.c_str(), &cfg, &rc, sizeof(rc), &oc, &st, err) == 0, "after a kill at " << delay << " s: " << err);
        whole++;
    }
    CHECK(whole >= 4);  // most kills came after the first checkpoint was written
    MESSAGE(mid_write << " of 8 kills came while a checkpoint was being written");
}

// ----------------------------------------------------------------------------------------------------
// 5: logs that survive a kill

TEST_CASE("hostile: log.csv keeps every step's row through kill -9, and a resume cuts a torn or redone row") {
    std::string dir = temp_dir();
    // csv_cut_to_step on a file as a kill leaves it: rows past the checkpoint and a torn last line
    std::string csv = dir + "/log.csv";
    const char* text = "step,tokens\n1,32\n2,64\n2,64\n3,96\n4,12";
    write_file(csv, text, strlen(text));
    char err[ERR_LEN];
    REQUIRE(csv_cut_to_step(csv.c_str(), 2, err) == 0);
    std::vector<char> cut = file_bytes(csv);
    CHECK(std::string(cut.begin(), cut.end()) == "step,tokens\n1,32\n2,64\n2,64\n");
    // a real kill: a long run killed once it has printed 3 step lines; every printed step has its whole row
    std::string data = make_test_data(15);
    std::string run = "./train --device cpu --model tiny --batch 2 --seq-len 16 --steps 100000 --eval-every 100000 "
                      "--health-every -1 --checkpoint-every 2 --out " + dir + "/runs --run-name k --data " + data +
                      "/train.bin --val-data " + data + "/val.bin";
    std::string script = "(" + run + " > " + dir + "/out.txt 2>&1 & pid=$!; for i in $(seq 600); do "
                         "[ $(grep -c '^step [0-9]*/' " + dir + "/out.txt) -ge 5 ] && break; sleep 0.05; done; "
                         "kill -9 $pid; wait $pid; true)";
    run_command(script, "2>&1");
    std::vector<char> log = file_bytes(dir + "/runs/k/log.csv");
    std::string logged(log.begin(), log.end());
    int rows = 0;
    for (size_t at = logged.find("\n"); at != std::string::npos && at + 1 < logged.size(); at = logged.find("\n", at + 1))
        if (isdigit((unsigned char)logged[at + 1])) rows++;
    INFO(logged);
    CHECK(rows >= 5);  // the eval row of step 0 and at least 4 of the 5 printed steps (the 5th may be mid-write)
    CHECK(logged.back() == '\n');  // rows are written whole
    // resume: the rows after the checkpoint go, and the run continues the log without a gap or a repeat
    CommandResult again = run_command("./train --resume " + dir + "/runs/k/checkpoint.bin --steps 8", "2>&1");
    INFO(again.text);
    REQUIRE(again.status == 0);
    log = file_bytes(dir + "/runs/k/log.csv");
    logged.assign(log.begin(), log.end());
    std::vector<long long> train_steps;
    for (size_t at = logged.find("\n"); at != std::string::npos && at + 1 < logged.size(); at = logged.find("\n", at + 1)) {
        long long step;
        char kind[8];
        // a training row has its train_loss (third field); an evaluation row leaves it empty
        if (sscanf(logged.c_str() + at + 1, "%lld,%*[^,],%7[^,]", &step, kind) == 2) train_steps.push_back(step);
    }
    REQUIRE(train_steps.size() == 8);
    for (int i = 0; i < 8; i++) CHECK(train_steps[i] == i + 1);
}

// ----------------------------------------------------------------------------------------------------
// 12: the classifier's fast exp on a NaN

TEST_CASE("hostile: exp_nonpositive of NaN is NaN, without shifting a negative number") {
    CHECK(isnan(exp_nonpositive(NAN)));
    CHECK(exp_nonpositive(0.0f) == 1.0f);
    CHECK(exp_nonpositive(-1000.0f) > 0.0f);
}
