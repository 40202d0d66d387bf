// dev/bench_report.h: what dev/bench_cpu.cpp and dev/bench_gpu.cu share: a Google Benchmark reporter that
// prints as usual and also records each benchmark's time, so the summary at the end can print ratios of
// times measured side by side in this one run.
#pragma once
#include <benchmark/benchmark.h>
#include <map>
#include <string>
#include <vector>

static std::map<std::string, double> g_ms;  // benchmark name -> time per iteration, in the benchmark's unit (ms)

struct RecordingReporter : benchmark::ConsoleReporter {
    void ReportRuns(const std::vector<Run>& runs) override {
        for (const Run& r : runs) g_ms[r.benchmark_name()] = r.GetAdjustedRealTime();
        ConsoleReporter::ReportRuns(runs);
    }
};

// the time of the first benchmark whose name starts with `prefix` (the names end in their options); -1: none
static double ms_of(const std::string& prefix) {
    for (const auto& kv : g_ms)
        if (kv.first.compare(0, prefix.size(), prefix) == 0) return kv.second;
    return -1.0;
}

// The fused residual add + layernorm (what the model runs) against the plain add and the plain layernorm it
// replaces, forward and backward, from this run's op timings (names as tests/opcases.h gives them), with the bytes
// each side must move at the least: forward, unfused a, b -> sum; sum -> out (5 N·C floats), fused a, b -> sum,
// out (4); backward, unfused dout, x, dx (rw) for dx, dout, x for dw and db, dx, da (rw), db (rw) (11), fused
// dsum, dout, x, da (rw), db (rw), and dout, x again (9). copy_gbs > 0: a device copy's GB/s, the ceiling.
static void print_fusion_summary(const std::string& fused, const std::string& add, const std::string& ln, double N,
                                 double C, double copy_gbs) {
    for (int backward = 0; backward < 2; backward++) {
        const char* dir = backward ? "/backward" : "/forward";
        double f = ms_of("op/" + fused + dir), u = ms_of("op/" + add + dir) + ms_of("op/" + ln + dir);
        if (f <= 0 || u <= 0) continue;
        double fused_gb = (backward ? 9 : 4) * N * C * 4 / 1e9, plain_gb = (backward ? 11 : 5) * N * C * 4 / 1e9;
        printf("  residual + layernorm %s (N %.0f, C %.0f): fused %.3f ms = %.2fx the unfused pair's time (%.3f ms);"
               " %.0f vs %.0f GB/s", dir + 1, N, C, f, f / u, u, fused_gb / (f / 1e3), plain_gb / (u / 1e3));
        if (copy_gbs > 0) printf(" (%.0f%% and %.0f%% of a device copy's)", 100 * fused_gb / (f / 1e3) / copy_gbs,
                                 100 * plain_gb / (u / 1e3) / copy_gbs);
        printf("\n");
    }
}

// The classifier as a training step runs it (the loss's backward inside its forward, one pass over each row while it
// is in cache) against its forward and backward as two passes, from this run's op timings.
static void print_classifier_summary(const std::string& fused, const std::string& plain) {
    double f = ms_of("op/" + fused + "/forward"), u = ms_of("op/" + plain + "/forward") + ms_of("op/" + plain + "/backward");
    if (f > 0 && u > 0)
        printf("  %s: forward and backward in one pass %.3f ms = %.2fx the two passes' time (%.3f ms)\n", plain.c_str(), f,
               f / u, u);
}
