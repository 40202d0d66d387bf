"""dev/gen_muon_fixture.py: torch.optim.Muon reference steps for tests/test_muon.cpp (muon_update).

Writes tests/fixtures/muon_steps.bin. For a few small matrices (wide 16x24, tall 32x12) and settings
(Nesterov or not, weight decay, both adjust_lr_fn), three steps from the same start with fresh gradients:
  - torch_p1, torch_p3: parameters after 1 and 3 steps of the real torch.optim.Muon (its Newton-Schulz runs
    in bf16, so the test compares loosely);
  - ref_p1, ref_p3, ref_u1, ref_u3: the same steps in float64 written out here (Keller's Newton-Schulz,
    X / (||X||_F + 1e-7)), with the float32 state of the C code (momentum and parameters rounded to float32
    after each step, hyperparameters as float32) and the applied update lr*scale*O in float64: the test
    compares these tightly.
Run from the repository root: python3 dev/gen_muon_fixture.py
"""
import math
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fixture import write_fixture  # noqa: E402

NS_ABC = (3.4445, -4.7750, 2.0315)
STEPS = 3
# rows, cols, lr, weight_decay, momentum, nesterov, adjust (0 original, 1 match_rms_adamw)
CASES = [
    (16, 24, 0.02, 0.1, 0.95, 1, 0),
    (32, 12, 0.01, 0.05, 0.95, 0, 1),
    (32, 12, 0.02, 0.0, 0.9, 1, 0),
    (16, 24, 0.005, 0.1, 0.95, 0, 1),
]
ADJUST_NAMES = ["original", "match_rms_adamw"]


def ns_fp64(G, steps=5):
    """Keller's Newton-Schulz quintic in float64; the Gram matrix on the small side, as torch."""
    a, b, c = NS_ABC
    X = G.T if G.shape[0] > G.shape[1] else G
    X = X / (np.sqrt(np.sum(X * X)) + 1e-7)
    for _ in range(steps):
        A = X @ X.T
        B = b * A + c * (A @ A)
        X = a * X + B @ X
    return X.T if G.shape[0] > G.shape[1] else X


def lr_scale(rows, cols, adjust):
    return math.sqrt(max(1.0, rows / cols)) if adjust == 0 else 0.2 * math.sqrt(max(rows, cols))


def f32(x):
    """a Python float rounded to float32, as the C code's MuonHyper holds it"""
    return float(np.float32(x))


def reference_steps(p0, grads, lr, wd, mom, nesterov, adjust):
    """float64 math with the C code's float32 state; returns params and applied updates after each step"""
    rows, cols = p0.shape
    lr, wd, beta = f32(lr), f32(wd), f32(mom)
    p = p0.astype(np.float32)
    buf = np.zeros_like(p, dtype=np.float32)
    params, updates = [], []
    for g in grads:
        g64 = g.astype(np.float64)
        b64 = buf.astype(np.float64)
        buf = (b64 + (1.0 - beta) * (g64 - b64)).astype(np.float32)
        b64 = buf.astype(np.float64)
        u = g64 + beta * (b64 - g64) if nesterov else b64
        O = ns_fp64(u)
        step = lr * lr_scale(rows, cols, adjust)
        upd = step * O
        p = (p.astype(np.float64) * (1.0 - lr * wd) - upd).astype(np.float32)
        params.append(p.copy())
        updates.append(upd)
    return params, updates


def torch_steps(p0, grads, lr, wd, mom, nesterov, adjust):
    param = torch.nn.Parameter(torch.tensor(p0))
    opt = torch.optim.Muon([param], lr=lr, weight_decay=wd, momentum=mom, nesterov=bool(nesterov),
                           adjust_lr_fn=ADJUST_NAMES[adjust])
    out = []
    for g in grads:
        param.grad = torch.tensor(g)
        opt.step()
        out.append(param.detach().numpy().copy())
    return out


def main():
    rng = np.random.default_rng(20240520)
    arrays = [("ncases", np.array([len(CASES)], dtype=np.int32))]
    for ci, (rows, cols, lr, wd, mom, nesterov, adjust) in enumerate(CASES):
        p0 = (0.1 * rng.standard_normal((rows, cols))).astype(np.float32)
        # gradients of different sizes and an anisotropic spectrum, as real ones
        grads = np.stack([(rng.standard_normal((rows, cols)) @ np.diag(np.linspace(0.2, 2.0, cols)) * 10.0 ** -t)
                          for t in range(STEPS)]).astype(np.float32)
        ref_p, ref_u = reference_steps(p0, grads, lr, wd, mom, nesterov, adjust)
        tp = torch_steps(p0, grads, lr, wd, mom, nesterov, adjust)
        for k in (0, 2):  # how far bf16 torch is from the float64 reference, printed for the test's tolerance
            d_t, d_r = tp[k] - p0, ref_p[k] - p0
            print(f"case {ci} ({rows}x{cols}) step {k + 1}: |torch - fp64| / |fp64| on the parameter change "
                  f"= {np.linalg.norm(d_t - d_r) / np.linalg.norm(d_r):.2e}")
        pre = f"c{ci}_"
        arrays += [
            (pre + "config", np.array([rows, cols, lr, wd, mom, nesterov, adjust], dtype=np.float64)),
            (pre + "p0", p0),
            (pre + "grads", grads),
            (pre + "torch_p1", tp[0]), (pre + "torch_p3", tp[2]),
            (pre + "ref_p1", ref_p[0]), (pre + "ref_p3", ref_p[2]),
            (pre + "ref_u1", ref_u[0]), (pre + "ref_u3", ref_u[2]),
        ]
    path = os.path.join("tests", "fixtures", "muon_steps.bin")
    write_fixture(path, arrays)
    print(f"wrote {path} ({os.path.getsize(path)} bytes)")


if __name__ == "__main__":
    main()
