#!/usr/bin/env python3
"""GPTQ column-loop fixtures for tests/test_gptq.c, from an independent NumPy
implementation written from the paper (arXiv 2210.17323, Algorithm 1) and the
authors' gptq.py / quant.py (IST-DASLab/gptq).  Imports nothing from slimbench.

    python3 tests/reference/make_gptq_fixtures.py     # from the repository root, < 1 s

Precision mirrors what slimbench does (and what the authors do on the GPU, in
float32): H, damping, Cholesky, inverse and the upper Cholesky factor in
float64, then the factor cast to float32; the weights, the error feedback and
the quantizer (quant.py's min-max find_params + quantize) in float32, with
round-half-to-even.  The scale is rounded to float16 after the zero is fitted,
because slimbench's packed format stores f16 scales and GPTQ's error feedback
must see the value that will be stored.

Writes tests/reference/gptq/: w.f32 [ROWS, COLS], h.f64 [COLS, COLS] (with one
dead input), and per case NAME.codes.u8 [ROWS, COLS] (original column order),
NAME.q.f32 (dequantized weights), NAME.gidx.i32 [COLS] (group of each original
column), NAME.scales.f32 / NAME.zeros.f32 [ROWS, n_groups]; cases.json lists
the cases with their settings and gptq's loss (sum of Losses).
"""
import json
import os

import numpy as np

ROWS, COLS, N_TOKENS, DEAD = 32, 128, 512, 5
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "gptq")

CASES = [
    # name, bits, group_size (-1: per channel), sym, act_order, static_groups, block_size
    ("b4_pc", 4, -1, False, False, False, 128),
    ("b3_g32", 3, 32, False, False, False, 128),
    ("b3_g32_blk48", 3, 32, False, False, False, 48),
    ("b4_pc_act", 4, -1, False, True, False, 128),
    ("b3_g32_act_static", 3, 32, False, True, True, 128),
    ("b4_g32_act_gidx", 4, 32, False, True, False, 128),
    ("b3_g32_sym", 3, 32, True, False, False, 64),
    ("b2_g64_static", 2, 64, False, False, True, 128),
]


def f16_storable(scale):
    """Nearest f16 (ties to even), kept as float32; clamped like slimbench's quantizer."""
    a = np.minimum(np.abs(scale), np.float32(65504.0))
    s = a.astype(np.float16).astype(np.float32)
    s = np.where(s == 0, np.float32(2.0 ** -24), s)
    return np.copysign(s, scale).astype(np.float32)


def fit(x, bits, sym):
    """quant.py find_params(weight=True, perchannel=True) on rows of x (float32)."""
    maxq = np.float32(2 ** bits - 1)
    xmin = np.minimum(x.min(axis=1), np.float32(0))
    xmax = np.maximum(x.max(axis=1), np.float32(0))
    if sym:
        xmax = np.maximum(np.abs(xmin), xmax)
        xmin = np.where(xmin < 0, -xmax, xmin)
    both0 = (xmin == 0) & (xmax == 0)
    xmin = np.where(both0, np.float32(-1), xmin).astype(np.float32)
    xmax = np.where(both0, np.float32(1), xmax).astype(np.float32)
    scale = ((xmax - xmin) / maxq).astype(np.float32)
    if sym:
        zero = np.full_like(scale, (maxq + 1) / 2)
    else:
        zero = np.round(-xmin / scale).astype(np.float32)
    return f16_storable(scale), zero


def code_of(w, scale, zero, bits):
    maxq = np.float32(2 ** bits - 1)
    return np.clip(np.round(w / scale) + zero, 0, maxq).astype(np.float32)


def upper_chol_of_inverse(h):
    l = np.linalg.cholesky(h)
    linv = np.linalg.inv(l)
    hinv = linv.T @ linv
    return np.linalg.cholesky(hinv).T  # upper: Hinv = Uᵀ U


def gptq(w0, h0, bits, group_size, sym, damp, block_size, act_order, static_groups):
    """gptq.py fasterquant, returning codes/q in original order and each column's (row-wise) parameters."""
    w = w0.astype(np.float32).copy()
    h = h0.copy()
    rows, cols = w.shape
    # per-channel parameters come from the weights before dead inputs are zeroed (quant.py ready() check first)
    pc_scale, pc_zero = fit(w, bits, sym)
    dead = np.diag(h) == 0
    h[dead, dead] = 1
    w[:, dead] = 0
    groups = []
    if static_groups:
        for g0 in range(0, cols, group_size):
            groups.append(fit(w[:, g0:g0 + group_size], bits, sym))
    perm = np.arange(cols)
    if act_order:
        perm = np.argsort(-np.diag(h), kind="stable")
        w = w[:, perm]
        h = h[perm][:, perm]
    h[np.arange(cols), np.arange(cols)] += damp * np.mean(np.diag(h))
    u = upper_chol_of_inverse(h).astype(np.float32)

    q_all = np.zeros_like(w)
    codes = np.zeros_like(w)
    col_scale = np.zeros_like(w)
    col_zero = np.zeros_like(w)
    loss = 0.0
    scale, zero = pc_scale, pc_zero
    for i1 in range(0, cols, block_size):
        i2 = min(i1 + block_size, cols)
        w1 = w[:, i1:i2].copy()
        err1 = np.zeros_like(w1)
        for i in range(i2 - i1):
            c = i1 + i
            if group_size != -1:
                if not static_groups:
                    if c % group_size == 0:
                        scale, zero = fit(w[:, c:c + group_size], bits, sym)  # global W: no in-block updates
                else:
                    scale, zero = groups[perm[c] // group_size]
            col = w1[:, i]
            d = u[c, c]
            code = code_of(col, scale, zero, bits)
            q = (scale * (code - zero)).astype(np.float32)
            q_all[:, c], codes[:, c], col_scale[:, c], col_zero[:, c] = q, code, scale, zero
            loss += float(np.sum(((col - q).astype(np.float64) / float(d)) ** 2) / 2)
            e = ((col - q) / d).astype(np.float32)
            w1[:, i:] -= np.outer(e, u[c, c:i2]).astype(np.float32)
            err1[:, i] = e
        w[:, i2:] -= (err1 @ u[i1:i2, i2:]).astype(np.float32)

    inv = np.argsort(perm)
    gs = cols if group_size == -1 else group_size
    if group_size == -1:
        gidx = np.zeros(cols, dtype=np.int32)
    elif act_order and not static_groups:
        gidx = (inv // gs).astype(np.int32)  # a column's group is its position in act order
    else:
        gidx = (np.arange(cols) // gs).astype(np.int32)
    q_all, codes, col_scale, col_zero = (a[:, inv] for a in (q_all, codes, col_scale, col_zero))
    n_groups = cols // gs
    scales = np.zeros((rows, n_groups), np.float32)
    zeros = np.zeros((rows, n_groups), np.float32)
    for c in range(cols):
        scales[:, gidx[c]] = col_scale[:, c]
        zeros[:, gidx[c]] = col_zero[:, c]
    return codes.astype(np.uint8), q_all, gidx, scales, zeros, loss


def main():
    rng = np.random.default_rng(2210_17323)
    w = rng.standard_normal((ROWS, COLS)).astype(np.float32) * np.float32(0.05)
    # inputs with uneven channel scales (act order matters), some correlation, one dead channel
    x = rng.standard_normal((N_TOKENS, COLS)) * np.exp(rng.uniform(-1.5, 1.5, COLS))
    x[:, 1:] += 0.3 * x[:, :-1]
    x[:, DEAD] = 0
    x = x.astype(np.float32).astype(np.float64)
    h = 2.0 / N_TOKENS * (x.T @ x)
    os.makedirs(OUT, exist_ok=True)
    w.tofile(os.path.join(OUT, "w.f32"))
    h.tofile(os.path.join(OUT, "h.f64"))
    manifest = {"rows": ROWS, "cols": COLS, "damp": 0.01, "dead_input": DEAD, "numpy": np.__version__, "cases": []}
    for name, bits, gs, sym, act, static, blk in CASES:
        codes, q, gidx, scales, zeros, loss = gptq(w, h, bits, gs, sym, 0.01, blk, act, static)
        codes.tofile(os.path.join(OUT, name + ".codes.u8"))
        q.astype(np.float32).tofile(os.path.join(OUT, name + ".q.f32"))
        gidx.tofile(os.path.join(OUT, name + ".gidx.i32"))
        scales.tofile(os.path.join(OUT, name + ".scales.f32"))
        zeros.tofile(os.path.join(OUT, name + ".zeros.f32"))
        # the H-weighted error of GPTQ and of plain rounding, for the record
        rtn = rtn_weights(w, gs if gs != -1 else COLS, bits, sym)
        manifest["cases"].append({
            "name": name, "bits": bits, "group_size": gs, "sym": sym, "act_order": act, "static_groups": static,
            "block_size": blk, "loss": loss, "n_groups": int(scales.shape[1]),
            "h_err_gptq": h_err(w, q, h), "h_err_rtn": h_err(w, rtn, h),
        })
    with open(os.path.join(OUT, "cases.json"), "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")


def rtn_weights(w, gs, bits, sym):
    out = np.zeros_like(w)
    for g0 in range(0, w.shape[1], gs):
        s, z = fit(w[:, g0:g0 + gs], bits, sym)
        out[:, g0:g0 + gs] = s[:, None] * (code_of(w[:, g0:g0 + gs], s[:, None], z[:, None], bits) - z[:, None])
    return out


def h_err(w, q, h):
    d = (w.astype(np.float64) - q.astype(np.float64))
    return float(np.einsum("ri,ij,rj->", d, h, d))


if __name__ == "__main__":
    main()
