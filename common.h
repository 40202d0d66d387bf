// common.h: the small things every other file leans on.
// Errors (one clear line and a non-zero exit at the command line; an error message returned by library
// code so tests can check it), a seeded random number generator whose whole state is one integer (so a
// checkpoint can save it), and a wall clock.
// Flow: used everywhere; holds no model or training logic.
#pragma once
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

// ----------------------------------------------------------------------------------------------------
// errors
// Library code never exits: it writes one line into `err` (ERR_LEN bytes) and returns -1, so a test can
// read the message. The command line prints that line with die() and exits with status 1.

#define ERR_LEN 512
#define STRINGIFY_(x) #x
#define STRINGIFY(x) STRINGIFY_(x)  // a number macro as the text of a default: STRINGIFY(32768) -> "32768"

static int fail(char* err, const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, ERR_LEN, fmt, ap);
    va_end(ap);
    return -1;
}

// In a run of several ranks (dist.h) an error ends every rank (die_exit: MPI_Abort), and rank 0 speaks first:
// another rank waits 2 s before it prints, so an error every rank meets (a bad flag, a diverged loss) is one
// line, rank 0's, while an error of that rank alone (its data file) still comes out, naming the rank.
static int die_rank = 0;
static void (*die_exit)(int) = exit;

static void die(const char* fmt, ...) {
    if (die_rank > 0) sleep(2);
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "error: ");
    if (die_rank > 0) fprintf(stderr, "rank %d: ", die_rank);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    fflush(stderr);
    die_exit(1);
    exit(1);
}

// malloc that dies with the size it wanted and the line that asked, instead of returning NULL into a later
// crash (runs check their sizes against the machine's memory first: run.h's run_memory_check)
static void* xmalloc(size_t bytes, const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
    void* p = malloc(bytes ? bytes : 1);
    if (!p) die("out of host memory: could not allocate %.1f MiB (asked by %s:%d)", bytes / 1048576.0, file, line);
    return p;
}

static void* xcalloc(size_t count, size_t size, const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
    void* p = calloc(count ? count : 1, size ? size : 1);
    if (!p) die("out of host memory: could not allocate %.1f MiB (asked by %s:%d)", (double)count * size / 1048576.0, file, line);
    return p;
}


// mkdir -p: creates the folder and its parents. 0, or -1 with a message naming the folder.
static int make_dirs(const char* path, char* err) {
    char buf[1024];
    if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf)) return fail(err, "%.64s...: path too long", path);
    for (char* p = buf + 1;; p++) {
        if (*p != '/' && *p != 0) continue;
        char saved = *p;
        *p = 0;
        if (mkdir(buf, 0755) != 0 && errno != EEXIST) return fail(err, "%s: cannot create folder (%s)", buf, strerror(errno));
        *p = saved;
        if (saved == 0) break;
    }
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) return fail(err, "%s: not a folder", path);
    return 0;
}

// ----------------------------------------------------------------------------------------------------
// checksums (checkpoint.h's files, dist.h's comparison of the ranks' settings)

// A checksum over a byte stream, the same whatever pieces it is fed in: FNV-1a over 8-byte words (the tail
// padded), then the length. Each word goes through a bijection of the running value, so any change to one word
// always changes the sum. An integrity check against corruption, not a cryptographic hash.
struct Checksum {
    uint64_t h, total;
    uint8_t pending[8];
    int npending;
};
static Checksum checksum_start() { return Checksum{0xcbf29ce484222325ull, 0, {0}, 0}; }
static void checksum_word(Checksum* c, uint64_t w) { c->h = (c->h ^ w) * 0x100000001b3ull; }
static void checksum_add(Checksum* c, const void* data, size_t n) {
    const uint8_t* p = (const uint8_t*)data;
    c->total += n;
    while (n > 0 && c->npending > 0 && c->npending < 8) { c->pending[c->npending++] = *p++; n--; }
    if (c->npending == 8) {
        uint64_t w;
        memcpy(&w, c->pending, 8);
        checksum_word(c, w);
        c->npending = 0;
    }
    for (; n >= 8; p += 8, n -= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        checksum_word(c, w);
    }
    while (n > 0) { c->pending[c->npending++] = *p++; n--; }
}
static uint64_t checksum_end(Checksum c) {
    if (c.npending > 0) {
        uint64_t w = 0;
        memcpy(&w, c.pending, c.npending);
        checksum_word(&c, w);
    }
    checksum_word(&c, c.total);
    return c.h;
}

// ----------------------------------------------------------------------------------------------------
// random numbers: xorshift64* (as llm.c), whose whole state is one uint64, saved in checkpoints

struct Rng {
    uint64_t state;
};

static Rng rng_make(uint64_t seed) {
    Rng r;
    r.state = seed * 0x9E3779B97F4A7C15ull + 0x2545F4914F6CDD1Dull;  // spread small seeds; never zero
    if (r.state == 0) r.state = 1;
    return r;
}

static uint32_t rng_u32(Rng* r) {
    r->state ^= r->state >> 12;
    r->state ^= r->state << 25;
    r->state ^= r->state >> 27;
    return (uint32_t)((r->state * 0x2545F4914F6CDD1Dull) >> 32);
}

// uniform in [0, 1), 24 random bits
static float rng_uniform(Rng* r) { return (rng_u32(r) >> 8) / 16777216.0f; }

// standard normal by Box-Muller; one value per call keeps the state simple to save
static double rng_normal(Rng* r) {
    double u1 = ((rng_u32(r) >> 8) + 1.0) / 16777217.0;  // (0, 1]: log stays finite
    double u2 = (rng_u32(r) >> 8) / 16777216.0;
    return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

// ----------------------------------------------------------------------------------------------------
// time: the wall clock in seconds (monotonic), and durations as people read them

// "1h05m", "3m20s", "42s": an ETA or an elapsed time
static void format_duration(double seconds, char* out, size_t size) {
    int s = (int)(seconds + 0.5);
    if (s >= 3600) snprintf(out, size, "%dh%02dm", s / 3600, s / 60 % 60);
    else if (s >= 60) snprintf(out, size, "%dm%02ds", s / 60, s % 60);
    else snprintf(out, size, "%ds", s);
}

static double now_seconds() {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}
