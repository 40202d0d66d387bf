// tests/testutil.h: what the CPU tests share: temporary folders, random buffers, and the finite-difference gradient
// check.
#pragma once
#include <doctest/doctest.h>
#include <ftw.h>
#include <stdlib.h>
#include <string>
#include <vector>
#include "../device.h"

// A new folder /tmp/<prefix>_XXXXXX (mkdtemp), removed with all it holds when the test binary exits (atexit: a
// forked child leaves by _exit and removes nothing), so runs of make test leave nothing behind in /tmp.
static int temp_remove_entry(const char* path, const struct stat*, int, struct FTW*) { return remove(path); }
static std::vector<std::string>* temp_dirs() {
    static std::vector<std::string> dirs;
    return &dirs;
}
static void temp_dirs_remove() {
    for (const std::string& dir : *temp_dirs()) nftw(dir.c_str(), temp_remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}
static std::string test_temp_dir(const char* prefix) {
    std::string path = std::string("/tmp/") + prefix + "_XXXXXX";
    REQUIRE(mkdtemp(&path[0]) != NULL);
    if (temp_dirs()->empty()) atexit(temp_dirs_remove);
    temp_dirs()->push_back(path);
    return path;
}

// how many of x's n values are not bf16 values (a bf16 value rounds to itself: bf16_round)
static size_t not_bf16(const float* x, size_t n) {
    size_t off = 0;
    for (size_t i = 0; i < n; i++) off += bf16_round(x[i]) != x[i];
    return off;
}

static std::vector<float> random_vector(size_t n, uint64_t seed, float scale = 1.0f) {
    Rng rng = rng_make(seed);
    std::vector<float> v(n);
    for (size_t i = 0; i < n; i++) v[i] = (float)(scale * rng_normal(&rng));
    return v;
}

static double max_abs_diff(const float* a, const float* b, size_t n) {
    double m = 0.0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs((double)a[i] - b[i]));
    return m;
}

// ‖a − b‖ / ‖b‖
static double rel_error(const float* a, const float* b, size_t n) {
    double num = 0.0, den = 0.0;
    for (size_t i = 0; i < n; i++) {
        num += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        den += (double)b[i] * b[i];
    }
    return sqrt(num / (den > 0 ? den : 1e-300));
}

// Central finite differences of a scalar function L(x) at `count` entries of x (spread over x), compared
// with the analytic gradient. loss() recomputes L from the current contents of x (it is perturbed in place
// and restored). Passes when every entry has |numeric − analytic| <= atol + rtol·|analytic|.
template <typename LossFn>
static void check_gradient(const char* what, float* x, const float* analytic, size_t n, int count, float h,
                           double atol, double rtol, LossFn loss) {
    int failures = 0;
    size_t stride = n > (size_t)count ? n / count : 1;
    for (size_t j = stride / 2; j < n; j += stride) {
        float saved = x[j];
        x[j] = saved + h;
        double lp = loss();
        x[j] = saved - h;
        double lm = loss();
        x[j] = saved;
        double numeric = (lp - lm) / (2.0 * h);
        double tol = atol + rtol * fabs(analytic[j]);
        if (fabs(numeric - analytic[j]) > tol) {
            if (failures++ < 5)
                MESSAGE(std::string(what) << "[" << j << "]: numeric " << numeric << " vs analytic " << analytic[j]);
        }
    }
    CHECK_MESSAGE(failures == 0, std::string(what) << ": " << failures << " entries outside tolerance");
}
