// tests/fuzz/fuzz_util.h: what the fuzz targets share: a per-process scratch folder for the files the readers
// take by path, writing an input there, and finding the repository root (for data/encoder.json, data/vocab.bpe).
// Built only by `make fuzz` (clang++ -fsanitize=fuzzer,address,undefined); see tests/fuzz/README.md.
#pragma once
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <string>
#include <vector>

// A folder of our own under $TMPDIR, else /dev/shm (memory: a disk's /tmp can be 30x slower per input), else
// /tmp; made once per process and removed at exit with what is in it, so parallel fuzzers never share a file.
static char fuzz_dir[PATH_MAX];

static void fuzz_dir_remove() {
    if (!fuzz_dir[0]) return;
    std::string cmd = std::string("rm -rf '") + fuzz_dir + "'";
    if (system(cmd.c_str()) != 0) fprintf(stderr, "fuzz: could not remove %s\n", fuzz_dir);
}

// a crashed target leaves its folder behind (no atexit on abort): the next one removes those whose process is gone
static void fuzz_remove_stale(const char* tmp) {
    DIR* d = opendir(tmp);
    for (struct dirent* e; d && (e = readdir(d));) {
        int pid = 0;
        if (sscanf(e->d_name, "muongpt_fuzz_%d_", &pid) != 1 || pid <= 0 || kill(pid, 0) == 0 || errno != ESRCH) continue;
        std::string cmd = std::string("rm -rf '") + tmp + "/" + e->d_name + "'";
        if (system(cmd.c_str()) != 0) fprintf(stderr, "fuzz: could not remove %s/%s\n", tmp, e->d_name);
    }
    if (d) closedir(d);
}

static const char* fuzz_scratch_dir() {
    if (fuzz_dir[0]) return fuzz_dir;
    const char* tmp = getenv("TMPDIR");
    if (!tmp || !tmp[0]) tmp = access("/dev/shm", W_OK | X_OK) == 0 ? "/dev/shm" : "/tmp";
    fuzz_remove_stale(tmp);
    snprintf(fuzz_dir, sizeof(fuzz_dir), "%s/muongpt_fuzz_%d_XXXXXX", tmp, (int)getpid());
    if (!mkdtemp(fuzz_dir)) {
        perror("fuzz: mkdtemp");
        abort();
    }
    atexit(fuzz_dir_remove);
    return fuzz_dir;
}

// fuzz_scratch_dir()/name
static std::string fuzz_path(const char* name) { return std::string(fuzz_scratch_dir()) + "/" + name; }

// writes n bytes to path; a failure here is the machine's, not the code under test's
static void fuzz_write_file(const std::string& path, const void* data, size_t n) {
    FILE* f = fopen(path.c_str(), "wb");
    if (!f || (n > 0 && fwrite(data, 1, n, f) != n) || fclose(f) != 0) {
        perror(path.c_str());
        abort();
    }
}

// The repository root: the working directory when it holds data/vocab.bpe (make runs the targets from there),
// else two folders above the executable (build/fuzz/<target>).
static std::string fuzz_repo_root() {
    if (access("data/vocab.bpe", R_OK) == 0) return ".";
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n > 0) {
        exe[n] = 0;
        std::string root(exe);
        for (int up = 0; up < 3 && root.find('/') != std::string::npos; up++) root.erase(root.rfind('/'));
        if (access((root + "/data/vocab.bpe").c_str(), R_OK) == 0) return root;
    }
    return ".";
}

// a bug found by a harness check (not a sanitizer): say what, then crash so libFuzzer keeps the input
#define FUZZ_CHECK(cond, ...)                                              \
    do {                                                                   \
        if (!(cond)) {                                                     \
            fprintf(stderr, "fuzz check failed: %s (%s:%d): ", #cond, __FILE__, __LINE__); \
            fprintf(stderr, __VA_ARGS__);                                  \
            fprintf(stderr, "\n");                                         \
            abort();                                                       \
        }                                                                  \
    } while (0)

// With FUZZ_VERBOSE=1 in the environment, the targets say what each step returned (to see which checks an input
// reaches when reproducing one); silent otherwise, as fuzzing wants.
static void fuzz_note(const char* step, int rc, const char* err) {
    static int verbose = getenv("FUZZ_VERBOSE") != NULL;
    if (verbose) fprintf(stderr, "fuzz: %s: %s\n", step, rc == 0 ? "ok" : err);
}
