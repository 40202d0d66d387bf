#!/usr/bin/env bash
# tests/fuzz/run.sh SECONDS TARGET...: `make fuzz-run`. Runs each libFuzzer target in build/fuzz for SECONDS, one
# after another, on a scratch copy of its seed corpus (build/fuzz/work/<target>: the committed tests/fuzz/corpus
# is never written). Crashes, leaks, sanitizer reports, inputs slower than 10 s (-timeout) and memory over
# 2 GiB (-rss_limit_mb) are failures, written to build/fuzz/crashes/<target>/; a target that hangs past its
# budget is killed. One line per target, e.g. "fuzz fuzz_flags: 123456 executions in 20 s, no crash", and a
# non-zero exit naming each target that failed and its input. Logs: build/fuzz/<target>.log.
set -u
seconds=$1
shift
cd "$(dirname "$0")/../.."
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}
failed=()
for t in "$@"; do
    work=build/fuzz/work/$t crashes=build/fuzz/crashes/$t log=build/fuzz/$t.log
    rm -rf "$work"
    mkdir -p "$work" "$crashes"
    if [ -d "tests/fuzz/corpus/$t" ]; then cp -r "tests/fuzz/corpus/$t/." "$work/"; fi
    timeout -k 10 $((seconds + 120)) "build/fuzz/$t" -max_total_time="$seconds" -print_final_stats=1 -timeout=10 \
        -rss_limit_mb=2048 -artifact_prefix="$crashes/" "$work" >"$log" 2>&1
    rc=$?
    runs=$(sed -nE 's/^stat::number_of_executed_units: *([0-9]+).*/\1/p' "$log" | tail -n1)
    secs=$(sed -nE 's/^Done [0-9]+ runs in ([0-9]+) second.*/\1/p' "$log" | tail -n1)
    if [ "$rc" -eq 0 ] && [ -n "$runs" ]; then
        echo "fuzz $t: $runs executions in ${secs:-$seconds} s, no crash"
        continue
    fi
    input=$(sed -nE 's/.*Test unit written to (.*)$/\1/p' "$log" | tail -n1)
    if [ "$rc" -ge 124 ] && [ -z "$input" ]; then why="killed after $((seconds + 120)) s (a hang)"
    else why="exit status $rc"; fi
    echo "fuzz $t: FAILED ($why) after ${runs:-?} executions; input: ${input:-none written} (log: $log)"
    grep -m 8 -E 'ERROR: |runtime error|fuzz check failed|SUMMARY|out-of-memory|timeout after' "$log" | sed 's/^/    /'
    [ -n "$input" ] && echo "    reproduce: build/fuzz/$t $input"
    failed+=("$t")
done
if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz: ${#failed[@]} of $# targets failed: ${failed[*]}"
    exit 1
fi
