// tests/test_mpi.cpp: whole runs of ./train on 2 ranks under mpirun (dist.h's promise): one rank's losses with twice
// the batch, an exact resume, resumes across rank counts, bad input stopping every rank with one line, a killed
// rank ending the job with its last checkpoint whole, a signal to one rank stopping them all at one step. They
// skip, saying so, where ./train was built without MPI.
// Inside one job of ranks (the exchanges, the split optimizer step, the split checkpoint): tests/mpi/test_ranks.cpp.
#include <signal.h>
#include "cliutil.h"
#include "runutil.h"

// mpirun as root needs its consent; -q keeps its own banners out of the one-line errors; 2 ranks on 2 cores
static const char* MPIRUN = "timeout 300 mpirun --allow-run-as-root --oversubscribe -q";

static bool have_mpi() {
    static int have = -1;
    if (have < 0)
        have = run_command("./train --help", "2>&1").text.find("several processes (built with") != std::string::npos &&
               run_command("command -v mpirun").status == 0;
    return have == 1;
}
#define REQUIRE_MPI()                                                                                \
    if (!have_mpi()) {                                                                               \
        MESSAGE("SKIPPED: ./train was built without MPI, or mpirun is missing (make deps installs it)"); \
        return;                                                                                      \
    }

// the flags of every run here: the tiny model on two small shards, 10 steps, an evaluation every 2
static std::string flags(const std::string& dir, const std::string& extra) {
    return "--model tiny --seq-len 16 --steps 10 --warmup 2 --eval-every 2 --eval-batches 2 --health-every 5 --data " +
           dir + "/train.bin --val-data " + dir + "/val.bin " + extra;
}

// runs a command, requiring success (its output shown if not)
static void run_ok(const std::string& cmd) {
    CommandResult r = run_command(cmd, "2>&1");
    INFO(cmd << "\n" << r.text);
    REQUIRE(r.status == 0);
}

// log.csv's training losses and validation losses, in order, as numbers
static std::vector<double> losses(const std::string& csv) {
    std::vector<double> out;
    std::string text = file_text(csv);
    REQUIRE(!text.empty());
    for (size_t at = text.find('\n') + 1; at < text.size(); at = text.find('\n', at) + 1) {
        std::string line = text.substr(at, text.find('\n', at) - at);
        std::vector<std::string> fields;
        for (size_t a = 0, b; (b = line.find(',', a)) != std::string::npos || a <= line.size(); a = b + 1) {
            fields.push_back(line.substr(a, b == std::string::npos ? std::string::npos : b - a));
            if (b == std::string::npos) break;
        }
        for (int k : {2, 3})
            if ((int)fields.size() > k && !fields[k].empty()) out.push_back(atof(fields[k].c_str()));
    }
    return out;
}

// the two runs' losses agree to `tol` (or exactly, with tol 0), entry by entry; b may be the tail of a (a run
// resumed into a folder of its own logs only the steps after its checkpoint)
static void check_same_losses(const std::string& a, const std::string& b, double tol) {
    std::vector<double> la = losses(a), lb = losses(b);
    REQUIRE(la.size() >= lb.size());
    REQUIRE(lb.size() >= 8);
    la.erase(la.begin(), la.end() - lb.size());
    double worst = 0.0;
    for (size_t i = 0; i < la.size(); i++) worst = fmax(worst, fabs(la[i] - lb[i]));
    INFO(a << " against " << b << ": largest difference " << worst);
    CHECK(worst <= tol);
}

// The tolerance of "the same within fp32 rounding": the ranks sum their gradients and losses in another order
// than one process with the whole batch, a few ulp at each step that the updates carry on. On losses near 10.8,
// 1e-4 is 1e-5 relative: orders above the differences seen (about 1e-6 over 10 steps), orders below any real
// difference in what was trained (a batch read twice or a gradient not averaged moves the loss by 1e-2 or more).
static const double RANKS_TOL = 1e-4;

TEST_CASE("mpirun -np 2: two ranks of batch B train as one rank of batch 2B (AdamW and Muon)") {
    REQUIRE_MPI();
    std::string dir = make_test_data(31);
    for (const char* opt : {"adamw", "muon"}) {
        run_ok("./train " + flags(dir, std::string("--batch 4 --out ") + dir + "/one --optimizer " + opt));
        run_ok(std::string(MPIRUN) + " -np 2 ./train " + flags(dir, std::string("--batch 2 --out ") + dir + "/two --optimizer " + opt));
        check_same_losses(dir + "/one/" + opt + "/log.csv", dir + "/two/" + opt + "/log.csv", RANKS_TOL);
    }
    // and not by accident: one rank with batch 2 (half the data) trains differently
    run_ok("./train " + flags(dir, "--batch 2 --out " + dir + "/half --optimizer muon"));
    std::vector<double> half = losses(dir + "/half/muon/log.csv"), two = losses(dir + "/two/muon/log.csv");
    double apart = 0.0;
    for (size_t i = 0; i < half.size() && i < two.size(); i++) apart = fmax(apart, fabs(half[i] - two[i]));
    CHECK(apart > 100 * RANKS_TOL);
}

// the model part of a checkpoint (its header and every parameter): what an exact resume must reproduce
static std::string model_part(const std::string& path) {
    std::string text = file_text(path);
    GPT2Config cfg;
    char err[ERR_LEN];
    REQUIRE(gpt2_config_preset(&cfg, "tiny", err) == 0);
    size_t bytes = 1024 + 4 * gpt2_num_parameters(&cfg);
    REQUIRE(text.size() > bytes);
    return text.substr(0, bytes);
}

TEST_CASE("mpirun -np 2: a resumed run is the uninterrupted run, bit for bit; checkpoints resume across rank counts") {
    REQUIRE_MPI();
    std::string dir = make_test_data(32), two = std::string(MPIRUN) + " -np 2 ./train ";
    run_ok(two + flags(dir, "--batch 2 --optimizer normuon --out " + dir + "/full"));
    run_ok(two + flags(dir, "--batch 2 --optimizer normuon --stop-at 4 --out " + dir + "/part"));
    run_ok("cp " + dir + "/part/normuon/checkpoint.bin " + dir + "/at4.bin");
    run_ok(two + "--resume " + dir + "/part/normuon/checkpoint.bin");
    check_same_losses(dir + "/full/normuon/log.csv", dir + "/part/normuon/log.csv", 0.0);
    CHECK(model_part(dir + "/full/normuon/checkpoint.bin") == model_part(dir + "/part/normuon/checkpoint.bin"));

    // 2 ranks' checkpoint on 1 rank: --batch becomes the global batch, 4; the same run within rounding
    CommandResult on1 = run_command("./train --resume " + dir + "/at4.bin --out " + dir + "/on1", "2>&1");
    INFO(on1.text);
    REQUIRE(on1.status == 0);
    CHECK(on1.text.find("batch 4 x 16 x 1 = 64 tokens/step") != std::string::npos);
    check_same_losses(dir + "/full/normuon/log.csv", dir + "/on1/normuon/log.csv", RANKS_TOL);

    // and the reverse: 1 rank's checkpoint (batch 4) resumed by 2 ranks of batch 2
    run_ok("./train " + flags(dir, "--batch 4 --optimizer normuon --out " + dir + "/single"));
    run_ok("./train " + flags(dir, "--batch 4 --optimizer normuon --stop-at 4 --out " + dir + "/single_part"));
    run_ok(two + "--resume " + dir + "/single_part/normuon/checkpoint.bin");
    check_same_losses(dir + "/single/normuon/log.csv", dir + "/single_part/normuon/log.csv", RANKS_TOL);
}

// an mpirun command that must fail on every rank with one line naming `must_contain`, in bounded time
static void expect_ranks_error(const std::string& cmd, const char* must_contain) {
    CommandResult r = run_command(cmd);
    INFO(cmd << "\nstderr: " << r.text);
    CHECK(r.status != 0);
    CHECK(r.status != 124);  // timeout's: a rank waited forever
    CHECK(r.text.rfind("error: ", 0) == 0);
    CHECK(std::count(r.text.begin(), r.text.end(), '\n') == 1);
    CHECK(r.text.find(must_contain) != std::string::npos);
}

TEST_CASE("mpirun: ranks that disagree, a batch that does not split, a wrong checkpoint: one line, every rank stops") {
    REQUIRE_MPI();
    std::string dir = make_test_data(33), two = std::string(MPIRUN) + " -np 2 ./train ";
    run_ok(two + flags(dir, "--batch 2 --steps 4 --out " + dir + "/r"));
    std::string ckpt = dir + "/r/adamw/checkpoint.bin";
    expect_ranks_error(std::string(MPIRUN) + " -np 3 ./train --resume " + ckpt,
                       "the checkpoint's global batch of 4 sequences does not split among 3 ranks");
    expect_ranks_error(std::string(MPIRUN) + " -np 1 ./train " + flags(dir, "--seed 1") + " : -np 1 ./train " +
                       flags(dir, "--seed 2"), "rank 1 has other settings than rank 0");
    // the same command line, but each rank finds other files there (as two machines might): run from two folders
    std::string cwd = run_command("pwd", "").text;
    cwd.erase(cwd.find_last_not_of('\n') + 1);
    run_ok("mkdir -p " + dir + "/a " + dir + "/b && cp " + dir + "/train.bin " + dir + "/val.bin " + dir + "/a/ && cp " +
           dir + "/val.bin " + dir + "/b/train.bin && cp " + dir + "/val.bin " + dir + "/b/");
    std::string local = "--model tiny --seq-len 16 --steps 4 --batch 2 --data train.bin --val-data val.bin --out " + dir + "/x";
    expect_ranks_error(std::string(MPIRUN) + " -np 1 -wdir " + dir + "/a " + cwd + "/train " + local + " : -np 1 -wdir " +
                       dir + "/b " + cwd + "/train " + local, "rank 1 reads other data than rank 0");
    // a checkpoint of another model than the command line names, a model file without training state, and a
    // damaged checkpoint: refused by every rank
    expect_ranks_error(two + "--resume " + ckpt + " --model d2", "--resume continues the checkpoint's run with its settings");
    std::string bytes = file_text(ckpt);
    write_file(dir + "/model_only.bin", bytes.data(), model_part(ckpt).size());
    expect_ranks_error(two + "--resume " + dir + "/model_only.bin", "a model file without training state");
    bytes[bytes.size() - 5] ^= 1;
    write_file(dir + "/damaged.bin", bytes.data(), bytes.size());
    expect_ranks_error(two + "--resume " + dir + "/damaged.bin", "checksum mismatch");
}

// the pid of the process running ./train as rank `rank` under the job whose output folder is `out` (0 if none)
static pid_t rank_pid(const std::string& out, int rank) {
    CommandResult r = run_command("pgrep -f -- '--out " + out + "'", "");
    char want[64];
    snprintf(want, sizeof(want), "OMPI_COMM_WORLD_RANK=%d", rank);
    for (size_t at = 0; at < r.text.size();) {
        size_t nl = r.text.find('\n', at);
        pid_t pid = (pid_t)atoi(r.text.substr(at, nl - at).c_str());
        at = nl == std::string::npos ? r.text.size() : nl + 1;
        std::string env = file_text("/proc/" + std::to_string(pid) + "/environ");
        for (char& c : env) c = c == 0 ? '\n' : c;
        if ((env + "\n").find(std::string("\n") + want + "\n") != std::string::npos || env.rfind(want, 0) == 0) return pid;
    }
    return 0;
}

TEST_CASE("mpirun -np 2: a rank killed mid-run ends the job in seconds, and the last checkpoint is whole") {
    REQUIRE_MPI();
    std::string dir = make_test_data(34), out = dir + "/killed";
    std::string cmd = "exec " + std::string(MPIRUN) + " -np 2 ./train " +
                      flags(dir, "--batch 2 --optimizer muon --steps 100000 --checkpoint-every 2 --out " + out) +
                      " > " + dir + "/job.log 2>&1";
    pid_t job = fork();
    REQUIRE(job >= 0);
    if (job == 0) {
        execl("/bin/sh", "sh", "-c", cmd.c_str(), (char*)NULL);
        _exit(127);
    }
    struct Reaper {  // however this case ends, no rank of the job outlives it
        pid_t job;
        std::string out;
        ~Reaper() {
            run_command("pkill -9 -f -- '--out " + out + "'");
            if (job > 0) waitpid(job, NULL, 0);
        }
    } reaper = {job, out};
    std::string ckpt = out + "/muon/checkpoint.bin";
    bool started = false;  // a few checkpoints written: the run is well under way
    for (int i = 0; i < 1200 && !started; i++) {
        usleep(100000);
        std::string log = file_text(out + "/muon/log.csv");
        started = std::count(log.begin(), log.end(), '\n') >= 12;
    }
    REQUIRE_MESSAGE(started, file_text(dir + "/job.log"));
    pid_t victim = rank_pid(out, 1);
    REQUIRE(victim > 0);
    double t0 = now_seconds();
    kill(victim, SIGKILL);
    int status = 0;
    bool ended = false;
    while (!ended && now_seconds() - t0 < 60) {
        ended = waitpid(job, &status, WNOHANG) == job;
        if (!ended) usleep(50000);
    }
    if (!ended) {  // a hang: end it, then fail
        run_command("pkill -9 -f -- '--out " + out + "'");
        waitpid(job, &status, 0);
    }
    reaper.job = 0;
    INFO("the job took " << now_seconds() - t0 << " s to end after rank 1 was killed");
    CHECK(ended);
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) != 0);
    // the checkpoint left is whole (checksums), and a run resumes from it
    GPT2Config cfg = {};
    RunConfig rc;
    OptimizerConfig oc;
    TrainState st;
    char err[ERR_LEN];
    REQUIRE_MESSAGE(checkpoint_peek(ckpt.c_str(), &cfg, &rc, sizeof(rc), &oc, &st, err) == 0, err);
    CHECK(st.step >= 2);
    run_ok(std::string(MPIRUN) + " -np 2 ./train --resume " + ckpt + " --stop-at " + std::to_string(st.step + 2));
}

// SIGTERM to one rank (run.h): the ranks agree on the step at the next boundary, every rank stops there, the
// checkpoint of that step is written whole, the job exits with 143, and a run resumes from that checkpoint.
TEST_CASE("mpirun -np 2: SIGTERM to one rank stops every rank at the same step, with its checkpoint") {
    REQUIRE_MPI();
    std::string dir = make_test_data(35), out = dir + "/stopped";
    std::string cmd = "exec " + std::string(MPIRUN) + " -np 2 ./train " +
                      flags(dir, "--batch 2 --steps 100000 --eval-every 1000 --out " + out) + " > " + dir + "/job.log 2>&1";
    pid_t job = fork();
    REQUIRE(job >= 0);
    if (job == 0) {
        execl("/bin/sh", "sh", "-c", cmd.c_str(), (char*)NULL);
        _exit(127);
    }
    bool started = false;  // a few steps logged
    for (int i = 0; i < 1200 && !started; i++) {
        usleep(100000);
        std::string log = file_text(out + "/adamw/log.csv");
        started = std::count(log.begin(), log.end(), '\n') >= 6;
    }
    pid_t victim = started ? rank_pid(out, 1) : 0;
    if (victim > 0) kill(victim, SIGTERM);
    int status = 0;
    double t0 = now_seconds();
    bool ended = false;
    while (!ended && now_seconds() - t0 < 60) {
        ended = waitpid(job, &status, WNOHANG) == job;
        if (!ended) usleep(50000);
    }
    if (!ended) {  // a hang (or no signal sent): end it, then fail
        run_command("pkill -9 -f -- '--out " + out + "'");
        waitpid(job, &status, 0);
    }
    std::string text = file_text(dir + "/job.log");
    INFO(text);
    REQUIRE(victim > 0);
    CHECK(ended);
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 128 + SIGTERM);
    size_t at = text.find("stopping at step ");
    REQUIRE(at != std::string::npos);
    long long step = atoll(text.c_str() + at + 17);
    CHECK(text.find("stopping at step " + std::to_string(step) + " on another rank's signal") != std::string::npos);
    GPT2Config cfg = {};
    RunConfig rc;
    OptimizerConfig oc;
    TrainState st;
    char err[ERR_LEN];
    std::string ckpt = out + "/adamw/checkpoint.bin";
    REQUIRE_MESSAGE(checkpoint_peek(ckpt.c_str(), &cfg, &rc, sizeof(rc), &oc, &st, err) == 0, err);
    CHECK(st.step == step);
    run_ok(std::string(MPIRUN) + " -np 2 ./train --resume " + ckpt + " --stop-at " + std::to_string(step + 2));
}
