"""dev/speed_compare.py: training speed of ./train next to PyTorch (eager and torch.compile), side by side.
The same GPT-2 config (a model.h preset), batch, sequence length, optimizer (AdamW: decay on 2-D tensors,
clipping to 1) and number of steps, on the same device and thread count; prints tokens/s of each and the
ratios. Flow: the whole training step (data -> model -> loss -> backward -> optimizer), timed.

  python3 dev/speed_compare.py                                  # d2, batch 4 x 128, 10 steps, GPU if any
  python3 dev/speed_compare.py --device cpu --steps 6 --no-compile
  python3 dev/speed_compare.py --model d12 --batch 16 --seq-len 1024 --device cuda --precision bf16

Precision: by default both compute in FP32 everywhere (cuBLAS in plain FP32, no TF32), the like-for-like
comparison. --precision tf32 runs PyTorch's matmuls in TF32 and ./train with --matmul tf32 (the same inputs
rounded, on the tensor cores); --precision bf16 runs PyTorch under bf16 autocast and ./train with --precision
bf16 (a bf16 copy of the weights, bf16 activations in 16-bit storage on the GPU, bf16 tensor-core products).
--cuda-graph 1 passes the same flag to ./train (its micro-step replayed as a CUDA graph; PyTorch runs as above).

Timing: each step from zeroing the gradients to the end of the optimizer step (the GPU synchronized), the
first --skip steps left out (warm-up: allocation, torch.compile's compilation, cuBLAS heuristics); the
median of the rest gives tokens/s = B*T/median. ./train's own per-step "ms" are used the same way (its
evaluation and logging are timed apart from training). PyTorch gets random token ids (speed does not depend
on them); ./train reads its default corpus. On a shared machine other processes take cores from whichever
run is timed: the header prints the load average, and numbers taken under load are only a rough guide.
"""
import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from reference import GPT2, PRESETS, gpt2_init, num_parameters, preset  # noqa: E402

STEP_LINE = re.compile(r"^step (\d+)/(\d+) loss \S+ .*?\bms ([\d.]+) tok/s ([\d.]+)")


def sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


def time_torch(args, cfg, device, compiled):
    """step times (seconds) of PyTorch training; the first includes torch.compile's compilation"""
    torch.manual_seed(0)
    model = GPT2(cfg, gpt2_init(cfg, 0), device=device)
    decay = [p for s, p in zip(model.slots, model.params) if s.kind != "vector"]
    rest = [p for s, p in zip(model.slots, model.params) if s.kind == "vector"]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": rest, "weight_decay": 0.0}],
                            lr=1e-3, betas=(0.9, 0.95), eps=1e-8, fused=device == "cuda")

    def loss_of(ids, targets):
        return model(ids, targets, sdpa=True)[1]

    step_fn = torch.compile(loss_of) if compiled else loss_of
    rng = np.random.default_rng(1)
    batches = [torch.from_numpy(rng.integers(0, cfg.vocab_size, size=(2, args.batch, args.seq_len))).to(device)
               for _ in range(min(args.steps, 4))]
    amp = torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=args.precision == "bf16")
    times = []
    for step in range(args.steps):
        ids, targets = batches[step % len(batches)]
        sync(device)
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        with amp:
            loss = step_fn(ids, targets)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sync(device)
        times.append(time.perf_counter() - t0)
        print(f"  step {step + 1}/{args.steps} loss {loss.item():.4f} ms {times[-1] * 1e3:.1f}", flush=True)
    return times


def time_train(args, device, threads):
    """step times (seconds) from ./train's per-step log lines, and its last reported tok/s"""
    help_text = subprocess.run([args.train, "--help"], capture_output=True, text=True).stdout
    out_dir = tempfile.mkdtemp(prefix="muongpt_speed_")
    cmd = [args.train, "--model", args.model, "--batch", str(args.batch), "--seq-len", str(args.seq_len),
           "--steps", str(args.steps), "--device", device, "--optimizer", "adamw", "--eval-every", str(args.steps),
           "--eval-batches", "1", "--out", out_dir, "--run-name", "speed"]
    if "--threads" in help_text and device == "cpu":
        cmd += ["--threads", str(threads)]
    if "--health-every" in help_text:
        cmd += ["--health-every", "-1"]  # no optimizer-health SVDs inside the timed steps
    if "--precision" in help_text:  # ./train's GPU default is bf16: say fp32 when fp32 is meant
        cmd += ["--precision", "bf16" if args.precision == "bf16" else "fp32"]
    if "--matmul" in help_text:
        cmd += ["--matmul", args.precision]
    if args.cuda_graph:
        if "--cuda-graph" not in help_text:
            raise SystemExit(f"error: --cuda-graph 1: {args.train} has no --cuda-graph flag")
        cmd += ["--cuda-graph", "1"]
    print("  " + " ".join(cmd), flush=True)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    times, reported, tail = [], None, []
    for line in proc.stdout:
        tail = (tail + [line.rstrip()])[-5:]
        m = STEP_LINE.match(line)
        if m:
            times.append(float(m.group(3)) / 1e3)
            reported = float(m.group(4))
            print("  " + line.rstrip(), flush=True)
    proc.wait()
    shutil.rmtree(out_dir, ignore_errors=True)  # its checkpoint: 12 bytes per parameter
    if proc.returncode != 0 or not times:
        raise SystemExit(f"error: {args.train} failed (exit {proc.returncode}):\n" + "\n".join(tail))
    return times, reported


def summarize(times, skip, tokens_per_step):
    timed = times[skip:] if len(times) > skip else times[-1:]
    median = statistics.median(timed)
    return median, tokens_per_step / median


def main():
    ap = argparse.ArgumentParser(description="./train against PyTorch eager and torch.compile, tokens/s")
    ap.add_argument("--model", default="d2", choices=sorted(PRESETS), help="model.h preset (default d2)")
    ap.add_argument("--batch", type=int, default=4, help="B, sequences per step")
    ap.add_argument("--seq-len", type=int, default=128, help="T, tokens per sequence")
    ap.add_argument("--steps", type=int, default=10, help="training steps of each implementation")
    ap.add_argument("--skip", type=int, default=2, help="first steps left out of the timing (warm-up, compilation)")
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    ap.add_argument("--threads", type=int, default=0, help="CPU threads for both (0: all cores)")
    ap.add_argument("--precision", default="fp32", choices=["fp32", "tf32", "bf16"],
                    help="PyTorch's precision: fp32 (as ./train), tf32 matmuls, or bf16 autocast")
    ap.add_argument("--no-compile", action="store_true", help="skip torch.compile (slow to compile on the CPU)")
    ap.add_argument("--train", default="./train", help="the muongpt binary")
    ap.add_argument("--cuda-graph", type=int, default=0, choices=[0, 1],
                    help="./train's --cuda-graph (1: its micro-step as a CUDA graph)")
    args = ap.parse_args()

    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    if device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("error: --device cuda: this PyTorch sees no CUDA GPU")
    # fp32 means fp32: PyTorch's default already keeps TF32 off for matmuls, set here so no setting elsewhere leaks
    torch.set_float32_matmul_precision("high" if args.precision == "tf32" else "highest")
    if not os.access(args.train, os.X_OK):
        raise SystemExit(f"error: {args.train}: not found or not executable (build it with make)")
    threads = args.threads or os.cpu_count()
    torch.set_num_threads(threads)
    cfg = preset(args.model)
    if args.seq_len > cfg.max_seq_len:
        raise SystemExit(f"error: --seq-len {args.seq_len} is longer than {args.model}'s context {cfg.max_seq_len}")
    if args.steps <= args.skip:
        raise SystemExit(f"error: --steps {args.steps} must exceed --skip {args.skip}")
    tokens = args.batch * args.seq_len
    where = (torch.cuda.get_device_name() if device == "cuda" else
             f"cpu, {threads} threads, load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    print(f"model {args.model} (L {cfg.num_layers}, NH {cfg.num_heads}, C {cfg.channels}; "
          f"{num_parameters(cfg) / 1e6:.2f}M parameters), batch {args.batch} x {args.seq_len} = {tokens} tokens/step, "
          f"{args.steps} steps (first {args.skip} not timed), {where}; PyTorch {torch.__version__} in {args.precision}, "
          f"./train with --matmul {args.precision}" + (" --precision bf16" if args.precision == "bf16" else ""))

    rows = []
    print("./train:")
    times, reported = time_train(args, device, threads)
    ms, tps = summarize(times, args.skip, tokens)
    rows.append(("./train", ms, tps, f"its last log line: tok/s {reported:.0f}"))
    print("pytorch eager:")
    ms, tps = summarize(time_torch(args, cfg, device, False), args.skip, tokens)
    rows.append(("pytorch eager", ms, tps, ""))
    if not args.no_compile:
        print("pytorch torch.compile:")
        times = time_torch(args, cfg, device, True)
        ms, tps = summarize(times, args.skip, tokens)
        rows.append(("pytorch compile", ms, tps, f"first step (compiling) {times[0]:.1f} s"))

    base = rows[0][2]
    print(f"\n{'implementation':<18}{'ms/step':>10}{'tokens/s':>12}{'x ./train':>11}  note")
    for name, ms, tps, note in rows:
        print(f"{name:<18}{ms * 1e3:>10.1f}{tps:>12.0f}{tps / base:>11.2f}  {note}")


if __name__ == "__main__":
    main()
