"""dev/reference.py: the PyTorch oracle. GPT-2 with exactly muongpt's (and llm.c's) parameter layout, the
optimizer pieces our C++ uses (global-norm clipping, the learning-rate schedule, Muon with its Newton-Schulz
in any precision), and readers and writers for llm.c model files and our checkpoints.
Flow: the same data -> model -> loss -> backward -> optimizer as train.cu, written the obvious PyTorch way, so
dev/gen_reference_fixture.py can record what PyTorch computes and tests/test_reference.cpp can check that we
compute the same; dev/speed_compare.py times it against ./train.

As a module:  cfg, flat, version = read_model("gpt2_124M.bin");  model = GPT2(cfg, flat);
              logits, loss = model(ids, targets)
Command line: python3 dev/reference.py --model FILE --tokens "15496 11 995 ..."   (loss of one sequence)
              python3 dev/reference.py --model out/adamw/checkpoint.bin --shard data.bin --batch 4 --seq-len 64
              python3 dev/reference.py --model out/adamw/checkpoint.bin --self-check   (the readers and writers)
A run's validation loss can be checked this way: ./train evaluates the first eval_batches batches of B x T
from the start of the validation shard, which are the first eval_batches*B*T + 1 tokens, so
--shard VAL --batch eval_batches*B --seq-len T gives the run's val_loss (measured on a 2-step tiny run:
10.826863 here, best_val_loss 10.826863 in its checkpoint).

Layout (model.h): 16 tensors, each stacked over the L layers, in llm.c's order: wte (Vp, C), wpe (maxT, C),
ln1w (L, C), ln1b, qkvw (L, 3C, C), qkvb (L, 3C), attprojw (L, C, C), attprojb, ln2w, ln2b, fcw (L, 4C, C),
fcb (L, 4C), fcprojw (L, C, 4C), fcprojb, lnfw (C), lnfb. Here every layer's slice is its own Parameter (a
"slot", as in model.h's gpt2_param_slots), so an optimizer can treat each layer's matrix as one matrix (Muon).
"""
import argparse
import math
import os
import struct
import tempfile
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

MODEL_MAGIC = 20240326
MODEL_VERSION_FP32 = 3
MODEL_VERSION_BF16 = 5
STATE_MAGIC = 20261123
STATE_VERSION = 1
SHARD_MAGIC = 20240520
HEADER_INTS = 256
LAYERNORM_EPS = 1e-5
PARAM_NAMES = ["wte", "wpe", "ln1w", "ln1b", "qkvw", "qkvb", "attprojw", "attprojb",
               "ln2w", "ln2b", "fcw", "fcb", "fcprojw", "fcprojb", "lnfw", "lnfb"]
# TrainState of checkpoint.h: step, opt_t (int64), rng_state (uint64), data epoch/shard/offset (int64),
# train_seconds, tokens (double), best_val_loss, last_val_loss (float): 72 bytes, no padding
TRAIN_STATE_FORMAT = "<qqQqqqddff"
TRAIN_STATE_FIELDS = ["step", "opt_t", "rng_state", "data_epoch", "data_shard", "data_offset",
                      "train_seconds", "tokens", "best_val_loss", "last_val_loss"]


# ----------------------------------------------------------------------------------------------------------
# configuration and layout

@dataclass
class Config:
    max_seq_len: int        # maxT: positions with an embedding
    vocab_size: int         # V: real tokens; the softmax runs over these only
    padded_vocab_size: int  # Vp: rows of wte (V rounded up, for friendlier matmul shapes)
    num_layers: int         # L
    num_heads: int          # NH
    channels: int           # C


# model.h's presets "dN" (GPT-2 family) and the small ones, with GPT-2's vocabulary
PRESETS = {"tiny": (2, 2, 32, 64), "d2": (2, 2, 128, 256), "d4": (4, 4, 128, 256), "d6": (6, 6, 384, 512),
           "d12": (12, 12, 768, 1024), "d24": (24, 16, 1024, 1024), "d36": (36, 20, 1280, 1024),
           "d48": (48, 25, 1600, 1024)}


def preset(name):
    L, NH, C, maxT = PRESETS[name]
    return Config(maxT, 50257, 50304, L, NH, C)


@dataclass
class Slot:
    name: str    # "h1.qkvw", "wte"
    tensor: int  # index into PARAM_NAMES
    layer: int
    shape: tuple  # (rows, cols) for matrices and embeddings, (C,) for gains and biases
    offset: int  # into the flat parameter vector
    kind: str    # "embedding" (wte, wpe), "matrix" (a hidden 2-D weight: Muon's), "vector"


def tensor_shapes(cfg):
    """(layers, rows, cols) of each of the 16 tensors, as model.h's gpt2_param_shapes"""
    L, C = cfg.num_layers, cfg.channels
    return [(1, cfg.padded_vocab_size, C), (1, cfg.max_seq_len, C), (L, 1, C), (L, 1, C),
            (L, 3 * C, C), (L, 1, 3 * C), (L, C, C), (L, 1, C), (L, 1, C), (L, 1, C),
            (L, 4 * C, C), (L, 1, 4 * C), (L, C, 4 * C), (L, 1, C), (1, 1, C), (1, 1, C)]


def param_slots(cfg):
    """one slot per tensor and layer in memory order (tensor-major): model.h's gpt2_param_slots"""
    slots, offset = [], 0
    for i, (layers, rows, cols) in enumerate(tensor_shapes(cfg)):
        per_layer = PARAM_NAMES[i] not in ("wte", "wpe", "lnfw", "lnfb")
        for layer in range(layers):
            name = f"h{layer}.{PARAM_NAMES[i]}" if per_layer else PARAM_NAMES[i]
            kind = "embedding" if i < 2 else "matrix" if rows > 1 else "vector"
            shape = (rows, cols) if rows > 1 else (cols,)
            slots.append(Slot(name, i, layer, shape, offset, kind))
            offset += rows * cols
    return slots


def num_parameters(cfg):
    return sum(layers * rows * cols for layers, rows, cols in tensor_shapes(cfg))


def tensor_ranges(cfg):
    """[(name, offset, count)] of the 16 stacked tensors in the flat vector"""
    out, offset = [], 0
    for name, (layers, rows, cols) in zip(PARAM_NAMES, tensor_shapes(cfg)):
        out.append((name, offset, layers * rows * cols))
        offset += layers * rows * cols
    return out


def gpt2_init(cfg, seed, std=0.02):
    """GPT-2's initialisation (as model.h, not bit for bit: numpy's generator): weights N(0, std), the two
    residual projections N(0, std/sqrt(2L)), biases 0, gains 1, the padded vocabulary rows 0. float32."""
    rng = np.random.default_rng(seed)
    flat = np.zeros(num_parameters(cfg), dtype=np.float32)
    for s in param_slots(cfg):
        n = int(np.prod(s.shape))
        name = PARAM_NAMES[s.tensor]
        if name in ("ln1w", "ln2w", "lnfw"):
            flat[s.offset:s.offset + n] = 1.0
        elif s.kind != "vector":
            sd = std / math.sqrt(2 * cfg.num_layers) if name in ("attprojw", "fcprojw") else std
            values = rng.standard_normal(n) * sd
            if name == "wte":
                values[cfg.vocab_size * cfg.channels:] = 0.0
            flat[s.offset:s.offset + n] = values
    return flat


# ----------------------------------------------------------------------------------------------------------
# the model

class GPT2(nn.Module):
    """GPT-2 (pre-LN, learned positions, tied LM head over the padded vocabulary) on muongpt's slots."""

    def __init__(self, cfg, flat=None, dtype=torch.float32, device="cpu"):
        super().__init__()
        self.cfg = cfg
        self.slots = param_slots(cfg)
        self.index = {s.name: i for i, s in enumerate(self.slots)}
        self.params = nn.ParameterList(
            [nn.Parameter(torch.zeros(s.shape, dtype=dtype, device=device)) for s in self.slots])
        if flat is not None:
            self.load_flat(flat)

    def p(self, name, layer=None):
        return self.params[self.index[name if layer is None else f"h{layer}.{name}"]]

    @torch.no_grad()
    def load_flat(self, flat):
        """flat: the parameters in llm.c's order (numpy or torch, any float dtype)"""
        flat = torch.as_tensor(np.asarray(flat))
        if flat.numel() != num_parameters(self.cfg):
            raise ValueError(f"{flat.numel()} parameters given, the config has {num_parameters(self.cfg)}")
        for s, p in zip(self.slots, self.params):
            p.copy_(flat[s.offset:s.offset + p.numel()].view(s.shape))

    def flat(self, attr="data"):
        """the parameters ("data") or their gradients ("grad") in llm.c's order, as a float64 numpy array"""
        parts = []
        for p in self.params:
            t = p.detach() if attr == "data" else p.grad
            parts.append(torch.zeros(p.numel(), dtype=torch.float64) if t is None else
                         t.detach().reshape(-1).double().cpu())
        return torch.cat(parts).numpy()

    def forward(self, ids, targets=None, sdpa=False):
        """ids, targets (B, T) int64. Returns logits (B, T, Vp) and the mean loss over the first V logits
        (None without targets). sdpa: F.scaled_dot_product_attention instead of the written-out softmax."""
        cfg = self.cfg
        B, T = ids.shape
        C, NH, V = cfg.channels, cfg.num_heads, cfg.vocab_size
        HS = C // NH
        x = F.embedding(ids, self.p("wte")) + self.p("wpe")[:T]  # (B, T, C)
        if not sdpa:
            causal = torch.ones(T, T, dtype=torch.bool, device=ids.device).tril()
        for layer in range(cfg.num_layers):
            h = F.layer_norm(x, (C,), self.p("ln1w", layer), self.p("ln1b", layer), LAYERNORM_EPS)
            qkv = F.linear(h, self.p("qkvw", layer), self.p("qkvb", layer))  # (B, T, 3C): q, k, v side by side
            q, k, v = (t.view(B, T, NH, HS).transpose(1, 2) for t in qkv.split(C, dim=2))  # (B, NH, T, HS)
            if sdpa:
                y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            else:
                att = (q @ k.transpose(-2, -1)) / math.sqrt(HS)  # (B, NH, T, T)
                att = att.masked_fill(~causal, float("-inf")).softmax(dim=-1)
                y = att @ v  # (B, NH, T, HS)
            y = y.transpose(1, 2).reshape(B, T, C)
            x = x + F.linear(y, self.p("attprojw", layer), self.p("attprojb", layer))
            h = F.layer_norm(x, (C,), self.p("ln2w", layer), self.p("ln2b", layer), LAYERNORM_EPS)
            h = F.gelu(F.linear(h, self.p("fcw", layer), self.p("fcb", layer)), approximate="tanh")  # (B, T, 4C)
            x = x + F.linear(h, self.p("fcprojw", layer), self.p("fcprojb", layer))
        x = F.layer_norm(x, (C,), self.p("lnfw"), self.p("lnfb"), LAYERNORM_EPS)
        logits = F.linear(x, self.p("wte"))  # (B, T, Vp): the tied head, padded rows included
        if targets is None:
            return logits, None
        # the padded logits take no part in the softmax (and so get no gradient)
        loss = F.cross_entropy(logits[..., :V].reshape(-1, V), targets.reshape(-1))
        return logits, loss


# ----------------------------------------------------------------------------------------------------------
# optimizer pieces, as adamw.h, optim.h and muon.h compute them

def lr_multiplier(step, warmup, total, kind="cosine", final_frac=0.0, cooldown_frac=0.0):
    """adamw.h's lr_multiplier (step from 0), in float32 as the C code: a multiplier of the peak lr"""
    f = np.float32
    if step < warmup:
        return float(f(step + 1) / f(warmup))
    if kind == "constant":
        return 1.0
    decay_steps = total - warmup
    if decay_steps <= 0:
        return 1.0
    if kind == "cosine":
        progress = min(f(1.0), f(step - warmup) / f(decay_steps))
        cosine = f(0.5) * (f(1.0) + np.cos(f(math.pi) * progress))
        return float(f(final_frac) + (f(1.0) - f(final_frac)) * cosine)
    cooldown = int(f(cooldown_frac) * f(total) + f(0.5))
    if step < total - cooldown or cooldown <= 0:
        return 1.0
    return float(max(f(0.0), f(total - step) / f(cooldown)))


@torch.no_grad()
def clip_gradients(params, max_norm):
    """optim.h's clipping: norm = sqrt(Σ g²) over every gradient (summed in float64); if norm > max_norm, every
    gradient is scaled by max_norm/norm. (torch.nn.utils.clip_grad_norm_ divides by norm + 1e-6 instead, and
    scales even when the norm is below max_norm by a factor it then clamps to 1.) Returns the norm."""
    norm = math.sqrt(sum(float(p.grad.double().pow(2).sum()) for p in params if p.grad is not None))
    if max_norm > 0 and norm > max_norm and math.isfinite(norm):
        scale = max_norm / norm
        if params[0].dtype == torch.float32:
            scale = float(np.float32(scale))  # the C code's float clip_scale
        for p in params:
            if p.grad is not None:
                p.grad.mul_(scale)
    return norm


NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)  # Keller Jordan's quintic: slope 3.4445 at zero


def ns_quintic(G, steps=5, eps=1e-7, dtype=torch.float64):
    """Newton-Schulz quintic in `dtype` (float64 here; torch.optim.Muon uses bfloat16): X = G/(‖G‖_F + eps),
    then `steps` times A = X Xᵀ, B = bA + cA², X = aX + BX, on Xᵀ when G is tall (the Gram matrix on the small
    side). Keller's muon.py and muon.h divide by ‖G‖_F + eps; torch.optim.Muon by max(‖G‖_F, eps)."""
    a, b, c = NS_COEFFICIENTS
    tall = G.size(0) > G.size(1)
    X = G.to(dtype)
    if tall:
        X = X.T
    X = X / (X.norm() + eps)
    for _ in range(steps):
        A = X @ X.T
        X = a * X + (b * A + c * (A @ A)) @ X
    return X.T if tall else X


def muon_lr_scale(rows, cols, adjust="original"):
    """torch.optim.Muon's _adjust_lr factor: Keller's sqrt(max(1, rows/cols)) or Moonlight's 0.2 sqrt(max)"""
    if adjust == "original":
        return math.sqrt(max(1.0, rows / cols))
    if adjust == "match_rms_adamw":
        return 0.2 * math.sqrt(max(rows, cols))
    raise ValueError(f"adjust {adjust!r}: expected original or match_rms_adamw")


@torch.no_grad()
def muon_update(param, grad, buf, lr, weight_decay, momentum=0.95, nesterov=True, ns_steps=5,
                adjust="original", ns_dtype=torch.float64):
    """One Muon step on one matrix (KellerJordan/Muon; torch.optim.Muon's order), in place:
         buf <- lerp(buf, g, 1 - β);  U = nesterov ? lerp(g, buf, β) : buf;  O = NS(U)
         W <- W (1 - lr wd) - lr scale O     (computed in float64, rounded once to W's dtype)
    buf has W's dtype (float32 state as the C code, or float64)."""
    buf.lerp_(grad, 1 - momentum)
    u = grad.lerp(buf, momentum) if nesterov else buf
    O = ns_quintic(u, ns_steps, dtype=ns_dtype).double()
    step = lr * muon_lr_scale(param.size(0), param.size(1), adjust)
    param.copy_(param.double() * (1.0 - lr * weight_decay) - step * O)


# ----------------------------------------------------------------------------------------------------------
# llm.c model files and our checkpoints (checkpoint.h)

def _read_exact(f, nbytes, path, what):
    data = f.read(nbytes)
    if len(data) != nbytes:
        raise ValueError(f"{path}: truncated {what}: {len(data)} of {nbytes} bytes present")
    return data


def _read_model_part(f, path):
    header = np.frombuffer(_read_exact(f, 4 * HEADER_INTS, path, "model header"), dtype="<i4")
    if header[0] != MODEL_MAGIC:
        raise ValueError(f"{path}: bad magic {header[0]} (expected {MODEL_MAGIC}, an llm.c model file)")
    version = int(header[1])
    if version not in (MODEL_VERSION_FP32, MODEL_VERSION_BF16):
        raise ValueError(f"{path}: model version {version} not supported (expected 3 = fp32 or 5 = bf16)")
    maxT, V, L, NH, C, Vp = (int(x) for x in header[2:8])
    cfg = Config(max_seq_len=maxT, vocab_size=V, padded_vocab_size=Vp, num_layers=L, num_heads=NH, channels=C)
    if cfg.channels % max(cfg.num_heads, 1) or min(header[2:8]) < 1 or cfg.padded_vocab_size < cfg.vocab_size:
        raise ValueError(f"{path}: implausible config {cfg}")
    n = num_parameters(cfg)
    if version == MODEL_VERSION_FP32:
        flat = np.frombuffer(_read_exact(f, 4 * n, path, "parameters"), dtype="<f4").copy()
    else:
        half = np.frombuffer(_read_exact(f, 2 * n, path, "parameters"), dtype="<u2")
        flat = (half.astype(np.uint32) << 16).view(np.float32)  # bf16 is the top half of an fp32
    return cfg, flat, version


def read_model(path):
    """an llm.c model file (or the model part of a checkpoint) -> (Config, float32 params, version)"""
    with open(path, "rb") as f:
        return _read_model_part(f, path)


def to_bf16_bits(flat):
    """float32 -> bf16 bits (uint16), rounding to nearest even as torch's .to(torch.bfloat16)"""
    t = torch.from_numpy(np.ascontiguousarray(flat, dtype=np.float32)).to(torch.bfloat16)
    return t.view(torch.int16).numpy().view(np.uint16)


def bf16_round(flat):
    """float32 values rounded to bf16 and widened back to float32"""
    return (to_bf16_bits(flat).astype(np.uint32) << 16).view(np.float32)


def _model_bytes(cfg, flat, version):
    header = np.zeros(HEADER_INTS, dtype="<i4")
    header[:8] = [MODEL_MAGIC, version, cfg.max_seq_len, cfg.vocab_size, cfg.num_layers, cfg.num_heads,
                  cfg.channels, cfg.padded_vocab_size]
    flat = np.asarray(flat, dtype=np.float32)
    if flat.size != num_parameters(cfg):
        raise ValueError(f"{flat.size} parameters given, the config has {num_parameters(cfg)}")
    body = flat.astype("<f4").tobytes() if version == MODEL_VERSION_FP32 else to_bf16_bits(flat).astype("<u2").tobytes()
    return header.tobytes() + body


def write_model(path, cfg, flat, version=MODEL_VERSION_FP32):
    """an llm.c model file: version 3 (fp32) or 5 (bf16, rounded to nearest even)"""
    if version not in (MODEL_VERSION_FP32, MODEL_VERSION_BF16):
        raise ValueError(f"version {version}: expected 3 (fp32) or 5 (bf16)")
    with open(path, "wb") as f:
        f.write(_model_bytes(cfg, flat, version))


def read_checkpoint(path):
    """a checkpoint (checkpoint.h) -> dict: config, params, state (TrainState fields, when its size is the one
    this script knows), m, v (AdamW moments / Muon momentum, float32, llm.c's layout), and the opaque bytes
    (state_bytes, run_config_bytes, optimizer_config_bytes) that write_checkpoint puts back unchanged."""
    with open(path, "rb") as f:
        cfg, flat, version = _read_model_part(f, path)
        if version != MODEL_VERSION_FP32:
            raise ValueError(f"{path}: a bf16 model file is not a checkpoint")
        rest = f.read(4 * HEADER_INTS)
        if not rest:
            raise ValueError(f"{path}: a model file without training state (not a checkpoint)")
        if len(rest) != 4 * HEADER_INTS:
            raise ValueError(f"{path}: truncated training-state header")
        header = np.frombuffer(rest, dtype="<i4")
        if header[0] != STATE_MAGIC or header[1] != STATE_VERSION:
            raise ValueError(f"{path}: bad training-state header (magic {header[0]} version {header[1]}, "
                             f"expected {STATE_MAGIC} version {STATE_VERSION})")
        sizes = [int(x) for x in header[2:5]]
        state_bytes = _read_exact(f, sizes[0], path, "TrainState")
        run_config_bytes = _read_exact(f, sizes[1], path, "run settings")
        optimizer_config_bytes = _read_exact(f, sizes[2], path, "optimizer settings")
        n = num_parameters(cfg)
        moments = np.frombuffer(_read_exact(f, 8 * n, path, "optimizer moments"), dtype="<f4")
    state = None
    if sizes[0] == struct.calcsize(TRAIN_STATE_FORMAT):
        state = dict(zip(TRAIN_STATE_FIELDS, struct.unpack(TRAIN_STATE_FORMAT, state_bytes)))
    return {"config": cfg, "params": flat, "state": state, "m": moments[:n].copy(), "v": moments[n:].copy(),
            "state_bytes": state_bytes, "run_config_bytes": run_config_bytes,
            "optimizer_config_bytes": optimizer_config_bytes}


def write_checkpoint(path, ckpt):
    """writes a dict from read_checkpoint (params, m, v possibly changed) back as a checkpoint"""
    parts = [ckpt["state_bytes"], ckpt["run_config_bytes"], ckpt["optimizer_config_bytes"]]
    header = np.zeros(HEADER_INTS, dtype="<i4")
    header[:5] = [STATE_MAGIC, STATE_VERSION] + [len(p) for p in parts]
    n = num_parameters(ckpt["config"])
    m, v = (np.asarray(ckpt[k], dtype="<f4") for k in ("m", "v"))
    if m.size != n or v.size != n:
        raise ValueError(f"m and v must hold {n} values each")
    with open(path, "wb") as f:
        f.write(_model_bytes(ckpt["config"], ckpt["params"], MODEL_VERSION_FP32))
        f.write(header.tobytes() + b"".join(parts) + m.tobytes() + v.tobytes())


def read_shard_tokens(path, count):
    """the first `count` tokens of an llm.c token shard (uint16 after a 256-int32 header)"""
    with open(path, "rb") as f:
        header = np.frombuffer(_read_exact(f, 4 * HEADER_INTS, path, "shard header"), dtype="<i4")
        if header[0] != SHARD_MAGIC:
            raise ValueError(f"{path}: bad magic {header[0]} (expected {SHARD_MAGIC}, an llm.c token shard)")
        if header[2] < count:
            raise ValueError(f"{path}: holds {header[2]} tokens, {count} needed")
        return np.frombuffer(_read_exact(f, 2 * count, path, "tokens"), dtype="<u2").astype(np.int64)


def self_check(path):
    """Reads `path` (an llm.c model file or a checkpoint) and writes it back with this module's writers, and
    checks: the bytes come back identical (a checkpoint through read_checkpoint/write_checkpoint, a model file
    through read_model/write_model in its own version); a checkpoint's front part is the fp32 model file
    write_model writes (so llm.c reads it); its TrainState unpacks and packs back to the same bytes; the
    parameters survive GPT2's slots (load_flat, then flat) exactly; a bf16 file (version 5) of them reads back
    as bf16_round of them. Returns a list of failures (empty: all good)."""
    failures = []
    original = open(path, "rb").read()
    with open(path, "rb") as f:
        cfg, flat, version = _read_model_part(f, path)
        is_checkpoint = f.read(4) != b""
    fd, tmp = tempfile.mkstemp(prefix="muongpt_selfcheck_", suffix=".bin")
    os.close(fd)
    try:
        if is_checkpoint:
            ckpt = read_checkpoint(path)
            write_checkpoint(tmp, ckpt)
            front = _model_bytes(cfg, flat, MODEL_VERSION_FP32)
            if original[:len(front)] != front:
                failures.append("the checkpoint's front part differs from the fp32 model file of its parameters")
            if ckpt["state"] is None:
                failures.append(f"TrainState of {len(ckpt['state_bytes'])} bytes: this script knows "
                                f"{struct.calcsize(TRAIN_STATE_FORMAT)} (checkpoint.h changed?)")
            elif struct.pack(TRAIN_STATE_FORMAT, *(ckpt["state"][k] for k in TRAIN_STATE_FIELDS)) != ckpt["state_bytes"]:
                failures.append("TrainState does not pack back to the same bytes")
        else:
            write_model(tmp, cfg, flat, version)
        written = open(tmp, "rb").read()
        if written != original:
            at = next((i for i, (a, b) in enumerate(zip(written, original)) if a != b), min(len(written), len(original)))
            failures.append(f"written back, the file differs from byte {at} ({len(written)} vs {len(original)} bytes)")
        if not np.array_equal(GPT2(cfg, flat).flat(), flat.astype(np.float64)):
            failures.append("the parameters do not survive GPT2's slots (load_flat, flat)")
        write_model(tmp, cfg, flat, MODEL_VERSION_BF16)
        _, half, half_version = read_model(tmp)
        if half_version != MODEL_VERSION_BF16 or not np.array_equal(half.view(np.uint32), bf16_round(flat).view(np.uint32)):
            failures.append("a bf16 model file does not read back as the bf16-rounded parameters")
    finally:
        os.remove(tmp)
    return failures


# ----------------------------------------------------------------------------------------------------------
# command line: the loss of a batch under a model file or checkpoint

def main():
    ap = argparse.ArgumentParser(description="GPT-2 loss of a batch under an llm.c model file or muongpt checkpoint")
    ap.add_argument("--model", required=True, help="llm.c model file (fp32 or bf16) or muongpt checkpoint")
    ap.add_argument("--tokens", help="token ids, comma or space separated: inputs are all but the last")
    ap.add_argument("--shard", help="an llm.c token shard: the batch is its first B*T+1 tokens")
    ap.add_argument("--batch", type=int, default=1, help="B (with --shard)")
    ap.add_argument("--seq-len", type=int, default=64, help="T (with --shard)")
    ap.add_argument("--double", action="store_true", help="also compute in float64")
    ap.add_argument("--self-check", action="store_true",
                    help="read the file and write it back (model file or checkpoint): the bytes must be identical")
    args = ap.parse_args()
    if (args.tokens is None) == (args.shard is None) and not (args.self_check and args.shard is None):
        ap.error("give exactly one of --tokens and --shard (or --self-check alone)")

    with open(args.model, "rb") as f:
        cfg, flat, version = _read_model_part(f, args.model)
        is_checkpoint = f.read(4) != b""
    if args.self_check:
        failures = self_check(args.model)
        for line in failures:
            print(f"self-check FAILED: {args.model}: {line}")
        if failures:
            raise SystemExit(1)
        print(f"self-check ok: {args.model} reads and writes back byte for byte (parameters, slots, bf16"
              f"{', training state and optimizer moments' if is_checkpoint else ''})")
        if args.tokens is None and args.shard is None:
            return
    kind = "checkpoint" if is_checkpoint else f"model file, {'fp32' if version == 3 else 'bf16'}"
    print(f"{args.model}: {kind}; L {cfg.num_layers}, NH {cfg.num_heads}, C {cfg.channels}, maxT {cfg.max_seq_len}, "
          f"V {cfg.vocab_size}, Vp {cfg.padded_vocab_size}; {num_parameters(cfg)} parameters")
    if is_checkpoint:
        state = read_checkpoint(args.model)["state"]
        if state:
            print(f"checkpoint at step {state['step']}, {state['tokens']:.0f} tokens, "
                  f"best val_loss {state['best_val_loss']:.4f}")
    if args.tokens is not None:
        seq = np.array([int(t) for t in args.tokens.replace(",", " ").split()], dtype=np.int64)
        if seq.size < 2:
            raise SystemExit("error: --tokens: need at least two ids (inputs and a target)")
        ids, targets = seq[None, :-1], seq[None, 1:]
    else:
        B, T = args.batch, args.seq_len
        seq = read_shard_tokens(args.shard, B * T + 1)
        ids, targets = seq[:-1].reshape(B, T), seq[1:].reshape(B, T)
    if ids.shape[1] > cfg.max_seq_len:
        raise SystemExit(f"error: sequence of {ids.shape[1]} longer than the model's context {cfg.max_seq_len}")
    if max(ids.max(), targets.max()) >= cfg.vocab_size:
        raise SystemExit(f"error: a token id is >= the vocabulary size {cfg.vocab_size}")
    for dtype in [torch.float32] + ([torch.float64] if args.double else []):
        model = GPT2(cfg, flat, dtype=dtype)
        with torch.no_grad():
            _, loss = model(torch.from_numpy(ids), torch.from_numpy(targets))
        print(f"loss {loss.item():.6f} ({str(dtype).replace('torch.', '')}, batch {ids.shape[0]} x {ids.shape[1]})")


if __name__ == "__main__":
    main()
