#!/usr/bin/env python3
"""PB-LLM fixtures for tests/test_pb_llm.c, from an independent NumPy
implementation written from the paper (arXiv 2310.00034, sections 3-4) and
the authors' code (hahnyuan/PB-LLM: gptq_pb/gptq.py LowHighGPT.fasterquant,
gptq_pb/low_quant.py "xnor", low_high_gptq/high_quant.py).  Imports nothing
from slimbench.

    python3 tests/reference/make_pb_llm_fixtures.py     # from the repository root, about a second

On one small layer (W [32, 128], H from 512 tokens, one dead input):
  1. 8-bit asymmetric min-max grid per row on W as given (HighQuantizer,
     calibrated before dead inputs are zeroed);
  2. dead inputs: H_jj = 1, W[:, j] = 0; damping; U = upper Cholesky of H^-1;
  3. per group of columns (all columns: the authors' groupsize -1, or 64):
     salience s = W^2 / U_jj^2 (or |W|) over the [rows, gs] slice; t = the
     sorted value at index floor(n * (1 - r)); salient = s > t;
  4. per (row, group): mu = mean, alpha = mean |w - mu| of the binarized
     weights (f16);
  5. GPTQ's column loop (lazy blocks): salient weights take their 8-bit grid
     point, others mu + alpha when w >= mu, else mu - alpha; the error
     (w - q) / U_ii feeds the later columns.
Deviation from the authors' low_quant.py on purpose (as slimbench): mu and
alpha over the binarized weights only (theirs average W*mask over the whole
group, salient entries counted as zeros), and sign(0) = +1.
Precision as slimbench: float64 H, U and salience; float32 weights and
feedback; the 8-bit scale, mu and alpha rounded to f16 before use.

Writes tests/reference/pb_llm/: w.f32, h.f64, and per case NAME.mask.u8,
NAME.q.f32 [rows, cols]; cases.json (settings, gptq loss, H-weighted errors of
PB-LLM and of plain binarization of every weight).
"""
import json
import os

import numpy as np

ROWS, COLS, N_TOKENS, DEAD, DAMP = 32, 128, 512, 7, 0.01
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "pb_llm")
F32 = np.float32

CASES = [  # name, salient fraction, hessian salience, group size (0: whole row), block size
    ("r10_hessian_row", 0.1, True, 0, 128),
    ("r10_hessian_g64_blk32", 0.1, True, 64, 32),
    ("r20_magnitude_row", 0.2, False, 0, 64),
]


def f16(x):
    return np.asarray(x, F32).astype(np.float16).astype(F32)


def storable_scale(scale):
    a = np.minimum(np.abs(scale), F32(65504.0))
    s = f16(a)
    s = np.where(s == 0, F32(2.0 ** -24), s)
    return np.copysign(s, scale).astype(F32)


def fit8(w):
    """HighQuantizer(8, perchannel, asymmetric) per row, the scale kept f16-storable."""
    xmin = np.minimum(w.min(axis=1), F32(0))
    xmax = np.maximum(w.max(axis=1), F32(0))
    both0 = (xmin == 0) & (xmax == 0)
    xmin = np.where(both0, F32(-1), xmin).astype(F32)
    xmax = np.where(both0, F32(1), xmax).astype(F32)
    scale = ((xmax - xmin) / F32(255)).astype(F32)
    zero = np.round(-xmin / scale).astype(F32)
    return storable_scale(scale), zero


def upper_factor(h):
    l = np.linalg.cholesky(h)
    linv = np.linalg.inv(l)
    return np.linalg.cholesky(linv.T @ linv).T


def pb_llm(w0, h0, frac, hessian, gs, block):
    w = w0.astype(F32).copy()
    h = h0.copy()
    s8, z8 = fit8(w)
    dead = np.diag(h) == 0
    h[dead, dead] = 1
    w[:, dead] = 0
    h[np.arange(COLS), np.arange(COLS)] += DAMP * np.mean(np.diag(h))
    u = upper_factor(h).astype(F32)
    gs = gs or COLS
    mask = np.zeros(w.shape, bool)
    mu, alpha = np.zeros((ROWS, COLS // gs), F32), np.zeros((ROWS, COLS // gs), F32)
    for g in range(COLS // gs):
        sl = slice(g * gs, (g + 1) * gs)
        x = w[:, sl].astype(np.float64)
        d = np.diag(u)[sl].astype(np.float64)
        sal = x ** 2 / d[None, :] ** 2 if hessian else np.abs(x)
        t = np.sort(sal.ravel())[min(int(sal.size * (1 - frac)), sal.size - 1)]
        mask[:, sl] = sal > t
        for r in range(ROWS):
            b = x[r][~mask[r, sl]]
            m = f16(F32(b.mean())) if b.size else F32(0)
            mu[r, g] = m
            alpha[r, g] = f16(F32(np.mean(np.abs(b - np.float64(m))))) if b.size else F32(0)
    q_all = np.zeros_like(w)
    loss = 0.0
    for i1 in range(0, COLS, block):
        i2 = min(i1 + block, COLS)
        w1 = w[:, i1:i2].copy()
        err1 = np.zeros_like(w1)
        for i in range(i2 - i1):
            c = i1 + i
            col = w1[:, i]
            code = np.clip(np.round(col / s8) + z8, 0, 255).astype(F32)
            q8 = (s8 * (code - z8)).astype(F32)
            m, a = mu[:, c // gs], alpha[:, c // gs]
            qb = np.where(col >= m, m + a, m - a).astype(F32)
            q = np.where(mask[:, c], q8, qb).astype(F32)
            q_all[:, c] = q
            d = u[c, c]
            loss += float(np.sum(((col - q).astype(np.float64) / float(d)) ** 2) / 2)
            e = ((col - q) / d).astype(F32)
            w1[:, i:] -= np.outer(e, u[c, c:i2]).astype(F32)
            err1[:, i] = e
        w[:, i2:] -= (err1 @ u[i1:i2, i2:]).astype(F32)
    return mask.astype(np.uint8), q_all, loss


def plain_binarization(w):
    """Every weight binarized per row (no salient weights, no feedback): the baseline PB-LLM improves on."""
    mu = w.mean(axis=1, keepdims=True)
    alpha = np.abs(w - mu).mean(axis=1, keepdims=True)
    return np.where(w >= mu, mu + alpha, mu - alpha).astype(F32)


def h_err(w, q, h):
    d = w.astype(np.float64) - q.astype(np.float64)
    return float(np.einsum("ri,ij,rj->", d, h, d))


def main():
    rng = np.random.default_rng(2310_00034)
    w = (rng.standard_normal((ROWS, COLS)) * 0.05).astype(F32)
    w[rng.integers(0, ROWS, 40), rng.integers(0, COLS, 40)] *= F32(6)  # a few outliers worth keeping in 8 bits
    x = rng.standard_normal((N_TOKENS, COLS)) * np.exp(rng.uniform(-1.5, 1.5, COLS))
    x[:, 1:] += 0.3 * x[:, :-1]
    x[:, DEAD] = 0
    x = x.astype(F32).astype(np.float64)
    h = 2.0 / N_TOKENS * (x.T @ x)
    os.makedirs(OUT, exist_ok=True)
    w.tofile(os.path.join(OUT, "w.f32"))
    h.tofile(os.path.join(OUT, "h.f64"))
    manifest = {"rows": ROWS, "cols": COLS, "damp": DAMP, "dead_input": DEAD, "numpy": np.__version__,
                "h_err_plain_binarization": h_err(w, plain_binarization(w), h), "cases": []}
    for name, frac, hessian, gs, block in CASES:
        mask, q, loss = pb_llm(w, h, frac, hessian, gs, block)
        mask.tofile(os.path.join(OUT, name + ".mask.u8"))
        q.tofile(os.path.join(OUT, name + ".q.f32"))
        manifest["cases"].append({"name": name, "salient_frac": frac, "hessian": hessian, "group_size": gs,
                                  "block_size": block, "loss": loss, "n_salient": int(mask.sum()),
                                  "h_err": h_err(w, q, h)})
    with open(os.path.join(OUT, "cases.json"), "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
