"""dev/bench_tokenizer.py: GPT-2 encode throughput, ours (data/tokenizer.h) beside tiktoken, one core, one run.

Run from the repository root:  python3 dev/bench_tokenizer.py [text file] [runs]
Pins itself (and so the C++ timing program it starts) to one CPU, builds build/bench_tokenizer from
dev/bench_tokenizer.cpp when it is missing or stale, then alternates one timed tiktoken encode_ordinary
of the text with one run of ours (cold and warm cache), checks that both give the same ids, and prints
the medians in MB/s and the ratio.
tiktoken's "gpt2" encoding is built offline from data/vocab.bpe and data/encoder.json (no download).
"""
import os
import struct
import subprocess
import sys
import time

import tiktoken
from tiktoken.load import data_gym_to_mergeable_bpe_ranks

GPT2_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
BINARY = "build/bench_tokenizer"
SOURCES = ["dev/bench_tokenizer.cpp", "data/tokenizer.h", "data/bytes.h", "common.h"]
BUILD = ["g++", "-O2", "-march=native", "-std=c++17", "-Wall", "-Wno-unused-function", "-I.",
         "dev/bench_tokenizer.cpp", "-o", BINARY, "-lpcre2-8"]


def fnv1a64_ids(ids):
    h = 0xCBF29CE484222325
    for byte in struct.pack(f"<{len(ids)}i", *ids):
        h = ((h ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else "data/tinyshakespeare.txt"
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    cpu = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})  # one core, for both (children inherit it)

    if not os.path.exists(BINARY) or any(os.path.getmtime(s) > os.path.getmtime(BINARY) for s in SOURCES):
        os.makedirs("build", exist_ok=True)
        print("building:", " ".join(BUILD))
        subprocess.run(BUILD, check=True)

    ranks = data_gym_to_mergeable_bpe_ranks(vocab_bpe_file="data/vocab.bpe", encoder_json_file="data/encoder.json")
    enc = tiktoken.Encoding(name="gpt2", pat_str=GPT2_PATTERN, mergeable_ranks=ranks, special_tokens={"<|endoftext|>": 50256})
    text = open(path, encoding="utf-8", newline="").read()
    nbytes = len(text.encode())
    # interleaved (one tiktoken run, one of ours, ...) so that a change in machine load hits both alike
    times, cold, warm, same = [], [], [], True
    for _ in range(runs):
        t0 = time.perf_counter()
        ids = enc.encode_ordinary(text)
        times.append(time.perf_counter() - t0)
        out = subprocess.run([BINARY, path, "1"], check=True, capture_output=True, text=True).stdout
        ours = dict(line.split() for line in out.splitlines())
        same &= int(ours["tokens"]) == len(ids) and ours["ids_fnv"] == f"{fnv1a64_ids(ids):016x}"
        cold.append(float(ours["cold_seconds"]))
        warm.append(float(ours["warm_seconds"]))
    median = lambda v: sorted(v)[len(v) // 2]
    tiktoken_s, cold_s, warm_s = median(times), median(cold), median(warm)

    mbs = lambda s: nbytes / s / 1e6
    print(f"GPT-2 encode throughput on {path} ({nbytes / 1e6:.2f} MB, {len(ids)} tokens), "
          f"CPU {cpu} only, median of {runs} runs")
    print(f"  tiktoken {tiktoken.__version__} encode_ordinary          {mbs(tiktoken_s):7.1f} MB/s")
    print(f"  muongpt tokenizer_encode, cold cache   {mbs(cold_s):7.1f} MB/s   {tiktoken_s / cold_s:.2f}x tiktoken")
    print(f"  muongpt tokenizer_encode, warm cache   {mbs(warm_s):7.1f} MB/s   {tiktoken_s / warm_s:.2f}x tiktoken")
    print(f"  same ids as tiktoken: {'yes' if same else 'NO'}")
    if not same:
        sys.exit(1)


if __name__ == "__main__":
    main()
