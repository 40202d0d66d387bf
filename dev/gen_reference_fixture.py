"""dev/gen_reference_fixture.py: what PyTorch computes for a tiny GPT-2, for tests/test_reference.cpp and
tests/test_llmc_interop.cpp (CI has no Python: the results are committed under tests/fixtures/).
Flow: the whole step, data -> model -> loss -> backward -> optimizer, done by dev/reference.py's GPT2 and
torch.optim, in float32 (PyTorch's usual precision: our C++ should agree tightly) and in float64 (the truth:
our float32 should agree to float32 rounding).

Writes
  tests/fixtures/reference_gpt2.bin   tiny model (L 2, NH 2, C 32, maxT 16, V 91, Vp 128), batch 2 x 16:
      p0                       the initial parameters (llm.c order), float32
      ids, targets             (STEPS, B, T): one batch per optimizer step; the first is the forward/backward one
      logits_f32, logits_f64   (B, T, Vp) on the first batch
      loss_f32, loss_f64       its mean loss
      grad_f32, grad_f64       every parameter's gradient, flat in llm.c's order
      adamw_*                  STEPS steps of torch.optim.AdamW (weight decay on 2-D tensors only), clipped
      muon_torch_*             STEPS steps of torch.optim.Muon (Newton-Schulz in bfloat16) on the hidden matrices
                               (each layer's qkvw, attprojw, fcw, fcprojw its own matrix) + torch.optim.AdamW on
                               the rest (decay on wte, wpe only)
      muon_ns64_*              the same with the Newton-Schulz in float64 (reference.py's ns_quintic; float32
                               state): muon.h's precision, the tight comparison
      muon_f64_*               the same, everything in float64
    each run stores *_delta (final parameters minus p0, float32: the change is what the optimizer computed; the
    absolute parameters would hide its last digits), *_loss (STEPS: the loss before each step) and *_norm
    (STEPS: the gradient norm before clipping).
    Float64 results are stored as float32 (relative rounding 6e-8, far below every tolerance; keeps the file
    under 1 MB). Hyperparameters: arrays config, schedule, lr_mult, adamw_hyper, muon_hyper (see below).
  tests/fixtures/reference_model_fp32.bin, reference_model_bf16.bin: llm.c model files (versions 3 and 5) of
      a smaller model, written by reference.py's write_model, and tests/fixtures/reference_model.bin: their
      expected parameters (params, params_bf16: rounded to nearest even) and the loss of a batch.
Run from the repository root: python3 dev/gen_reference_fixture.py

Reproducibility. Everything is seeded (numpy's generator; nothing here draws from torch's), so a rerun gives
the same bytes as long as PyTorch's CPU kernels add in the same order. That order depends on the thread count:
at 1 thread against 2, torch 2.15 on the same CPU gave float32 arrays that differ in the last bits (grad_f32
by 1.3e-8 relative, the AdamW and float64-NS Muon changes by 3.5e-7 and 1.4e-6 over the compared entries; the
bf16 Newton-Schulz of torch.optim.Muon amplifies its input's rounding to 0.75%), float64 ones only in the key
bias that no test compares; the tests pass on either. So this script runs on one thread: the committed
fixtures come back byte for byte from any machine with the same PyTorch and CPU kernels (checked: torch
2.15.0, MKL, AVX2, with any OMP_NUM_THREADS). Another PyTorch version or instruction set (AVX-512) may pick
other kernels and change the float32 arrays at rounding level, far inside the tests' tolerances.
"""
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fixture import write_fixture  # noqa: E402
from reference import (GPT2, Config, PARAM_NAMES, bf16_round, clip_gradients, lr_multiplier,  # noqa: E402
                       muon_update, num_parameters, param_slots, tensor_ranges, write_model)

CFG = Config(max_seq_len=16, vocab_size=91, padded_vocab_size=128, num_layers=2, num_heads=2, channels=32)
B, T, STEPS = 2, 16, 3
SEED = 20261123
# adamw.h's Schedule {SCHEDULE_COSINE, warmup 1, total 3, final_frac 0.1}: multipliers 1, 1, 0.55
SCHEDULE = dict(kind="cosine", warmup=1, total=3, final_frac=0.1, cooldown_frac=0.0)
# AdamW run: llm.c's recipe (betas, eps, decay 0.1 on 2-D tensors, clip 1) at a larger lr, so three steps
# visibly lower the loss (4.81, 4.25, 4.20); every step is clipped (gradient norms 2.7, 2.4, 1.4)
ADAMW = dict(lr=1e-2, beta1=0.9, beta2=0.95, eps=1e-8, weight_decay=0.1, grad_clip=1.0)
# Muon run: Keller Jordan's hidden-matrix settings (lr 0.02, momentum 0.95, Nesterov, 5 NS steps, the
# "original" shape scaling sqrt(max(1, rows/cols)), weight decay 0.01); the AdamW group at lr 3e-3 (so it
# moves visibly in three steps), betas (0.9, 0.95), eps 1e-8, decay 0.1 on wte and wpe, none on vectors
MUON = dict(lr=0.02, momentum=0.95, nesterov=1, weight_decay=0.01, ns_steps=5, adjust=0,
            adam_lr=3e-3, beta1=0.9, beta2=0.95, eps=1e-8, adam_weight_decay=0.1, grad_clip=1.0)
HIDDEN = ("qkvw", "attprojw", "fcw", "fcprojw")
DECAYED_2D = ("wte", "wpe") + HIDDEN  # llm.c: weight decay on 2-D tensors only


def initial_params(cfg, rng):
    """Weights N(0, 0.1) (five times GPT-2's 0.02, so attention is far from uniform and every gradient term is
    well above rounding), gains 1 + N(0, 0.1), biases N(0, 0.05): a bug that swaps a gain and a bias, or
    ignores one, shows. The padded wte rows are non-zero too: their logits are computed (and compared) but
    must take no part in the loss."""
    flat = np.zeros(num_parameters(cfg), dtype=np.float32)
    for s in param_slots(cfg):
        n = int(np.prod(s.shape))
        name = PARAM_NAMES[s.tensor]
        if name in ("ln1w", "ln2w", "lnfw"):
            v = 1.0 + 0.1 * rng.standard_normal(n)
        elif s.kind == "vector":
            v = 0.05 * rng.standard_normal(n)
        else:
            v = 0.1 * rng.standard_normal(n)
        flat[s.offset:s.offset + n] = v
    return flat


def learnable_batches(rng):
    """(STEPS, B, T) ids and targets: sequences x_{t+1} = (5 x_t + 3) mod V from random starts, so every batch
    follows one rule and three steps lower the loss on the next, unseen batch"""
    seq = np.zeros((STEPS, B, T + 1), dtype=np.int64)
    seq[:, :, 0] = rng.integers(0, CFG.vocab_size, size=(STEPS, B))
    for t in range(T):
        seq[:, :, t + 1] = (5 * seq[:, :, t] + 3) % CFG.vocab_size
    return seq[:, :, :T].copy(), seq[:, :, 1:].copy()


def lr32(peak, mult):
    """the C code's per-step lr: peak * multiplier in float32"""
    return float(np.float32(peak) * np.float32(mult))


def step_batch(model, ids, targets, s):
    for p in model.params:
        p.grad = None
    _, loss = model(torch.from_numpy(ids[s]), torch.from_numpy(targets[s]))
    loss.backward()
    return loss.item()


def run_adamw(p0, ids, targets, mults, dtype):
    model = GPT2(CFG, p0, dtype=dtype)
    groups = [{"params": [p for s, p in zip(model.slots, model.params) if PARAM_NAMES[s.tensor] in g], "wd": wd}
              for g, wd in ((DECAYED_2D, ADAMW["weight_decay"]),
                            (tuple(set(PARAM_NAMES) - set(DECAYED_2D)), 0.0))]
    opt = torch.optim.AdamW([{"params": g["params"], "weight_decay": g["wd"]} for g in groups], lr=ADAMW["lr"],
                            betas=(ADAMW["beta1"], ADAMW["beta2"]), eps=ADAMW["eps"], foreach=False)
    losses, norms = [], []
    for s in range(STEPS):
        losses.append(step_batch(model, ids, targets, s))
        norms.append(clip_gradients(list(model.params), ADAMW["grad_clip"]))
        for g in opt.param_groups:
            g["lr"] = lr32(ADAMW["lr"], mults[s])
        opt.step()
    return model.flat() - p0.astype(np.float64), losses, norms


def run_muon(p0, ids, targets, mults, dtype, ns):
    """ns: "torch" (torch.optim.Muon, bf16 Newton-Schulz) or "f64" (reference.py's muon_update, float64 NS)"""
    model = GPT2(CFG, p0, dtype=dtype)
    pairs = list(zip(model.slots, model.params))
    hidden = [p for s, p in pairs if s.kind == "matrix"]
    assert all(PARAM_NAMES[s.tensor] in HIDDEN for s, _ in pairs if s.kind == "matrix")
    adam_groups = [
        {"params": [p for s, p in pairs if s.kind == "embedding"], "weight_decay": MUON["adam_weight_decay"]},
        {"params": [p for s, p in pairs if s.kind == "vector"], "weight_decay": 0.0}]
    adam = torch.optim.AdamW(adam_groups, lr=MUON["adam_lr"], betas=(MUON["beta1"], MUON["beta2"]), eps=MUON["eps"],
                             foreach=False)
    adjust = ["original", "match_rms_adamw"][MUON["adjust"]]
    if ns == "torch":
        muon = torch.optim.Muon(hidden, lr=MUON["lr"], weight_decay=MUON["weight_decay"], momentum=MUON["momentum"],
                                nesterov=bool(MUON["nesterov"]), ns_steps=MUON["ns_steps"], adjust_lr_fn=adjust)
    else:
        bufs = [torch.zeros_like(p) for p in hidden]
    losses, norms = [], []
    for s in range(STEPS):
        losses.append(step_batch(model, ids, targets, s))
        norms.append(clip_gradients(list(model.params), MUON["grad_clip"]))
        for g in adam.param_groups:
            g["lr"] = lr32(MUON["adam_lr"], mults[s])
        adam.step()
        lr = lr32(MUON["lr"], mults[s])
        if ns == "torch":
            muon.param_groups[0]["lr"] = lr
            muon.step()
        else:
            for p, buf in zip(hidden, bufs):
                muon_update(p.data, p.grad, buf, lr, MUON["weight_decay"], MUON["momentum"], bool(MUON["nesterov"]),
                            MUON["ns_steps"], adjust, ns_dtype=torch.float64)
    return model.flat() - p0.astype(np.float64), losses, norms


def rel(a, b):
    return np.linalg.norm(a - b) / np.linalg.norm(b)


def comparable(grad64):
    """what tests/test_reference.cpp compares after optimizer steps: all but the key bias qkvb[l, C:2C] (zero
    gradient: Adam turns its rounding noise into steps) and entries with a tiny first gradient 0 < |g| < 1e-6
    (where Adam's g/(|g| + eps) is ill-conditioned)"""
    keep = ~((grad64 != 0) & (np.abs(grad64) < 1e-6))
    o = dict((name, off) for name, off, _ in tensor_ranges(CFG))["qkvb"]
    C = CFG.channels
    for l in range(CFG.num_layers):
        keep[o + l * 3 * C + C:o + l * 3 * C + 2 * C] = False
    return keep


def per_tensor_report(what, a, b, keep=None):
    keep = np.ones(a.size, dtype=bool) if keep is None else keep
    a, b = np.where(keep, a, 0.0), np.where(keep, b, 0.0)
    worst = max((rel(a[o:o + n], b[o:o + n]), name) for name, o, n in tensor_ranges(CFG)
                if np.linalg.norm(b[o:o + n]) > 0)
    print(f"{what}: whole {rel(a, b):.2e}, worst tensor {worst[1]} {worst[0]:.2e}")


def reference_gpt2():
    rng = np.random.default_rng(SEED)
    p0 = initial_params(CFG, rng)
    ids, targets = learnable_batches(rng)
    mults = [lr_multiplier(s, SCHEDULE["warmup"], SCHEDULE["total"], SCHEDULE["kind"], SCHEDULE["final_frac"],
                           SCHEDULE["cooldown_frac"]) for s in range(STEPS)]
    print(f"lr multipliers {mults}")

    out = {}
    for tag, dtype in (("f32", torch.float32), ("f64", torch.float64)):
        model = GPT2(CFG, p0, dtype=dtype)
        logits, loss = model(torch.from_numpy(ids[0]), torch.from_numpy(targets[0]))
        loss.backward()
        out[tag] = (logits.detach().double().numpy(), loss.item(), model.flat("grad"))
    print(f"loss f32 {out['f32'][1]:.8f} f64 {out['f64'][1]:.8f}")
    per_tensor_report("grad torch f32 vs f64", out["f32"][2], out["f64"][2])
    print(f"logits torch f32 vs f64: {rel(out['f32'][0], out['f64'][0]):.2e}")
    pad = out["f64"][2][CFG.vocab_size * CFG.channels:CFG.padded_vocab_size * CFG.channels]
    assert np.all(pad == 0), "padded wte rows must get no gradient"

    runs = {
        "adamw_f32": run_adamw(p0, ids, targets, mults, torch.float32),
        "adamw_f64": run_adamw(p0, ids, targets, mults, torch.float64),
        "muon_torch": run_muon(p0, ids, targets, mults, torch.float32, "torch"),
        "muon_ns64": run_muon(p0, ids, targets, mults, torch.float32, "f64"),
        "muon_f64": run_muon(p0, ids, targets, mults, torch.float64, "f64"),
    }
    for name, (delta, losses, norms) in runs.items():
        print(f"{name}: losses {np.round(losses, 6).tolist()} norms {np.round(norms, 6).tolist()} "
              f"|delta| {np.linalg.norm(delta):.4f}")
    keep = comparable(out["f64"][2])
    print(f"optimizer comparisons leave out {keep.size - keep.sum()} of {keep.size} entries")
    per_tensor_report("adamw f32 vs f64 (change)", runs["adamw_f32"][0], runs["adamw_f64"][0], keep)
    per_tensor_report("muon ns64 vs f64 (change)", runs["muon_ns64"][0], runs["muon_f64"][0], keep)
    per_tensor_report("muon torch (bf16 NS) vs f64 (change)", runs["muon_torch"][0], runs["muon_f64"][0], keep)

    f32 = np.float32
    arrays = [
        # maxT, V, Vp, L, NH, C, B, T, steps
        ("config", np.array([CFG.max_seq_len, CFG.vocab_size, CFG.padded_vocab_size, CFG.num_layers, CFG.num_heads,
                             CFG.channels, B, T, STEPS], dtype=np.int32)),
        # kind (0 cosine), warmup, total, final_frac, cooldown_frac; lr_mult: what lr_multiplier gives per step
        ("schedule", np.array([0, SCHEDULE["warmup"], SCHEDULE["total"], SCHEDULE["final_frac"],
                               SCHEDULE["cooldown_frac"]], dtype=np.float64)),
        ("lr_mult", np.array(mults, dtype=np.float32)),
        ("adamw_hyper", np.array([ADAMW[k] for k in ("lr", "beta1", "beta2", "eps", "weight_decay", "grad_clip")],
                                 dtype=np.float64)),
        ("muon_hyper", np.array([MUON[k] for k in ("lr", "momentum", "nesterov", "weight_decay", "ns_steps", "adjust",
                                                   "adam_lr", "beta1", "beta2", "eps", "adam_weight_decay",
                                                   "grad_clip")], dtype=np.float64)),
        ("p0", p0),
        ("ids", ids.astype(np.int32)),
        ("targets", targets.astype(np.int32)),
    ]
    for tag in ("f32", "f64"):
        logits, loss, grad = out[tag]
        arrays += [(f"logits_{tag}", logits.astype(f32)), (f"loss_{tag}", np.array([loss])),
                   (f"grad_{tag}", grad.astype(f32))]
    for name, (delta, losses, norms) in runs.items():
        arrays += [(f"{name}_delta", delta.astype(f32)), (f"{name}_loss", np.array(losses)),
                   (f"{name}_norm", np.array(norms))]
    path = os.path.join("tests", "fixtures", "reference_gpt2.bin")
    write_fixture(path, arrays)
    print(f"wrote {path} ({os.path.getsize(path)} bytes)")


# ----------------------------------------------------------------------------------------------------------
# llm.c model files for the interop test

SMALL = Config(max_seq_len=8, vocab_size=10, padded_vocab_size=16, num_layers=1, num_heads=2, channels=8)
# float32 bit patterns placed in the padded wte rows (which take no part in the loss) to pin bf16 rounding:
# exact bf16 values, exact ties (to even: down for 0x3F80 8000, up for 0x3F81 8000), just above a tie, a
# negative tie, a subnormal, the largest finite values, -0
BF16_CASES = [0x3F800000, 0xC0000000, 0x3E200000, 0x3F808000, 0x3F818000, 0x3F808001, 0x3F807FFF,
              0xBF818000, 0x00012345, 0x7F7F0000, 0x7F7F7FFF, 0x80000000, 0x3DCCCCCD]


def reference_model_files():
    rng = np.random.default_rng(SEED + 1)
    flat = initial_params(SMALL, rng)
    start = SMALL.vocab_size * SMALL.channels  # the first padded row of wte
    flat[start:start + len(BF16_CASES)] = np.array(BF16_CASES, dtype=np.uint32).view(np.float32)
    ids = rng.integers(0, SMALL.vocab_size, size=(2, SMALL.max_seq_len)).astype(np.int64)
    targets = rng.integers(0, SMALL.vocab_size, size=(2, SMALL.max_seq_len)).astype(np.int64)
    rounded = bf16_round(flat)
    losses = []
    for params in (flat, rounded):
        with torch.no_grad():
            _, loss = GPT2(SMALL, params, dtype=torch.float64)(torch.from_numpy(ids), torch.from_numpy(targets))
        losses.append(loss.item())
    d = os.path.join("tests", "fixtures")
    write_model(os.path.join(d, "reference_model_fp32.bin"), SMALL, flat, version=3)
    write_model(os.path.join(d, "reference_model_bf16.bin"), SMALL, flat, version=5)
    write_fixture(os.path.join(d, "reference_model.bin"), [
        ("config", np.array([SMALL.max_seq_len, SMALL.vocab_size, SMALL.padded_vocab_size, SMALL.num_layers,
                             SMALL.num_heads, SMALL.channels], dtype=np.int32)),
        ("params", flat), ("params_bf16", rounded),
        ("ids", ids.astype(np.int32)), ("targets", targets.astype(np.int32)),
        ("loss_f64", np.array([losses[0]])), ("loss_bf16_f64", np.array([losses[1]])),
    ])
    print(f"wrote reference_model_fp32.bin, reference_model_bf16.bin, reference_model.bin "
          f"(losses fp32 {losses[0]:.6f}, bf16 {losses[1]:.6f})")


if __name__ == "__main__":
    torch.manual_seed(0)
    torch.set_num_threads(1)  # a fixed summation order: the same bytes on any machine (see the top)
    reference_gpt2()
    reference_model_files()
