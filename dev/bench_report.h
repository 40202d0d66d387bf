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
