#!/usr/bin/env bash
# tests/summary.sh LOG LABEL: one line for a doctest run's log: "LABEL: N passed, M failed", and how many test
# cases skipped for want of a GPU (they pass by returning early, with the message "SKIPPED: no CUDA GPU found").
log=$1 label=$2
line=$(grep -E '^\[doctest\] test cases:' "$log" | tail -n 1)
if [ -z "$line" ]; then echo "$label: did not finish (no doctest summary in $log)"; exit 0; fi
passed=$(echo "$line" | sed -E 's/.*\| *([0-9]+) passed.*/\1/')
failed=$(echo "$line" | sed -E 's/.*\| *([0-9]+) failed.*/\1/')
skipped=$(grep -c 'SKIPPED: no CUDA GPU found' "$log")
extra=""
[ "$skipped" -gt 0 ] && extra=" ($skipped of them GPU cases that skipped: no CUDA GPU found)"
echo "$label: $passed passed, $failed failed$extra"
