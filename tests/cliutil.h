// tests/cliutil.h: running ./train from a test (tests/test_cli.cpp, tests/test_hostile.cpp): a command's exit status
// and output, the one-line-error promise, temporary folders and files.
#pragma once
#include <sys/wait.h>
#include <unistd.h>
#include <algorithm>
#include <string>
#include <vector>
#include "testutil.h"

struct CommandResult {
    int status;          // exit status (128 + signal when killed by one)
    std::string text;    // what it printed (see run_command's `capture`)
};

// runs a shell command; capture: a shell redirection choosing what comes back in text, e.g. "2>&1 >/dev/null"
// (stderr only) or "2>&1" (both)
static CommandResult run_command(const std::string& cmd, const char* capture = "2>&1 >/dev/null") {
    FILE* p = popen((cmd + " " + capture).c_str(), "r");
    CommandResult r = {-1, ""};
    if (!p) return r;
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), p)) > 0) r.text.append(buf, n);
    int st = pclose(p);
    r.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    return r;
}

static void expect_one_line_error(const std::string& args, const char* must_contain) {
    REQUIRE_MESSAGE(access("./train", X_OK) == 0, "./train is missing: run the tests with `make test`");
    CommandResult r = run_command("./train " + args);
    INFO("./train " << args << "\nstderr: " << r.text);
    CHECK(r.status == 1);
    CHECK(r.text.rfind("error: ", 0) == 0);
    CHECK(std::count(r.text.begin(), r.text.end(), '\n') == 1);
    CHECK(r.text.find(must_contain) != std::string::npos);
}

// a whole file as text ("" when it cannot be read)
static std::string file_text(const std::string& path) {
    std::string text;
    FILE* f = fopen(path.c_str(), "rb");
    if (!f) return text;
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), f)) > 0) text.append(buf, n);
    fclose(f);
    return text;
}

static std::string temp_dir() { return test_temp_dir("muongpt_cli"); }

static void write_file(const std::string& path, const void* data, size_t bytes) {
    FILE* f = fopen(path.c_str(), "wb");
    REQUIRE(f != NULL);
    fwrite(data, 1, bytes, f);
    fclose(f);
}

