#!/usr/bin/env python3
"""SliM-LLM fixtures for tests/test_slim_llm.c, from an independent NumPy
implementation written from the paper (arXiv 2405.14917, sections 3.2-3.3)
and the authors' code (Aaronhuang-778/SliM-LLM: slim_gptq.py, utils/
mixed_quantizer.py, utils/salient_mask.py).  Imports nothing from slimbench.

    python3 tests/reference/make_slim_llm_fixtures.py     # from the repository root, a few seconds

What is computed on one small layer (W [32, 128], H from 512 tokens with
uneven channel scales, one dead input):
  - group salience S_g = sum_i sum_{j in g} W_ij^2 / U_jj^2 (float64), U the
    upper Cholesky factor of the damped inverse Hessian, dead inputs zeroed;
  - the salience-determined allocation for every k (k least salient groups
    N-1 bits, k most salient N+1);
  - GPTQ with those per-group widths, each group's grid fitted at its first
    column on the current W by the salience-weighted quantizer calibration
    (SQC): salient = s_ij >= the smallest |z| > 2 outlier of s = W^2/U_jj^2
    over the group's [rows, gs] slice (torch.std: unbiased); per row the
    factor p of (p*xmin, p*xmax) among 1, 1.002 .. 1.1, 0.998 .. 0.9 with the
    lowest sum |q - w|^2.4 (salient ones times lambda); 1-bit groups binarize:
    mu +- mean|w - mu|.

Precision follows slimbench's choices, which the C test checks bit for bit
on most rows: float64 for H, U and salience; float32 weights, feedback and
quantizer; scales rounded to f16 before the codes are taken (format qint
stores f16); 1-bit groups store scale = 2*alpha and the fractional zero
1/2 - mu/scale, both in f16.  Deviations from the authors' code, on purpose:
alpha = mean|w - mu| (theirs: mean|w|), and SQC scores candidates on the
f16-rounded grid.

Writes tests/reference/slim_llm/: w.f32, h.f64, salience.f64 [n_groups],
and per case NAME.widths.u8 [n_groups], NAME.codes.u8 [rows, cols],
NAME.q.f32, NAME.scales.f32 / NAME.zeros.f32 [rows, n_groups]; cases.json.
"""
import json
import os

import numpy as np

ROWS, COLS, N_TOKENS, DEAD, GS, BLOCK, DAMP = 32, 128, 512, 9, 16, 32, 0.01
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "slim_llm")

CASES = [  # name, N, k, sqc, lambda
    ("n2_k2_sqc", 2, 2, True, 1.0),
    ("n2_k3_minmax", 2, 3, False, 1.0),
    ("n3_k1_sqc_l4", 3, 1, True, 4.0),
]

F32 = np.float32


def f16(x):
    return np.asarray(x, F32).astype(np.float16).astype(F32)


def storable_scale(scale):
    a = np.minimum(np.abs(F32(scale)), F32(65504.0))
    s = f16(a)
    s = F32(2.0 ** -24) if s == 0 else s
    return F32(np.copysign(s, scale))


def fit_range(xmin, xmax, bits):
    """Min-max parameters from a range (the GPTQ quantizer), scale kept f16-storable."""
    xmin, xmax = min(F32(xmin), F32(0)), max(F32(xmax), F32(0))
    if xmin == 0 and xmax == 0:
        xmin, xmax = F32(-1), F32(1)
    maxq = F32(2 ** bits - 1)
    scale = F32((xmax - xmin) / maxq)
    zero = F32(np.round(-xmin / scale))
    return storable_scale(scale), zero


def quantize(x, scale, zero, bits):
    x = np.asarray(x, F32)
    if bits == 1:
        code = (x >= F32(scale * F32(F32(0.5) - zero))).astype(F32)
    else:
        code = np.clip(np.round(x / scale) + zero, 0, 2 ** bits - 1).astype(F32)
    return code, (scale * (code - zero)).astype(F32)


def fit_binary(x):
    """mu +- alpha with alpha = mean|x - mu|, as scale = 2 alpha and zero = 1/2 - mu/scale (f16)."""
    mu = F32(np.mean(x.astype(np.float64)))
    alpha = F32(np.mean(np.abs(x.astype(np.float64) - np.float64(mu))))
    alpha = max(alpha, F32(abs(mu) * F32(2.0 ** -8)))
    scale = storable_scale(F32(2) * alpha)
    zero = f16(F32(0.5) - mu / scale)
    return scale, zero


def salient_threshold(s):
    """The smallest |z| > 2 outlier of s (torch.mean / torch.std), or +inf when there is none."""
    mean, sd = s.mean(), s.std(ddof=1)
    out = s[np.abs((s - mean) / sd) > 2]
    return out.min() if out.size else np.inf


FACTORS = [F32(1.0)] + [F32(1.0 + 0.1 * i / 50.0) for i in range(1, 51)] + [F32(1.0 - 0.1 * i / 50.0) for i in range(1, 51)]


def sqc_fit(x, udiag, bits, lam):
    """SQC of one group for every row of x [rows, gs]."""
    sal = x.astype(np.float64) ** 2 / udiag[None, :] ** 2
    thr = salient_threshold(sal.ravel())
    weight = np.where(sal >= thr, lam, 1.0)
    scales, zeros = np.zeros(x.shape[0], F32), np.zeros(x.shape[0], F32)
    for r in range(x.shape[0]):
        xmin, xmax = min(x[r].min(), F32(0)), max(x[r].max(), F32(0))
        if xmin == 0 and xmax == 0:
            xmin, xmax = F32(-1), F32(1)
        best = np.inf
        for p in FACTORS:
            s, z = fit_range(p * xmin, p * xmax, bits)
            _, q = quantize(x[r], s, z, bits)
            e = float(np.sum(weight[r] * np.abs(q.astype(np.float64) - x[r].astype(np.float64)) ** 2.4))
            if e < best:
                best, scales[r], zeros[r] = e, s, z
    return scales, zeros


def minmax_fit(x, bits):
    out = [fit_range(x[r].min(), x[r].max(), bits) for r in range(x.shape[0])]
    return np.array([o[0] for o in out], F32), np.array([o[1] for o in out], F32)


def fit_group(x, udiag, bits, use_sqc, lam):
    if bits == 1:
        out = [fit_binary(x[r]) for r in range(x.shape[0])]
        return np.array([o[0] for o in out], F32), np.array([o[1] for o in out], F32)
    return sqc_fit(x, udiag, bits, lam) if use_sqc else minmax_fit(x, bits)


def damped_upper_factor(h0, w):
    """Dead inputs (H_jj = 0: H_jj = 1, W[:, j] = 0), damping, U with H^-1 = U^T U (float64)."""
    h = h0.copy()
    dead = np.diag(h) == 0
    h[dead, dead] = 1
    w[:, dead] = 0
    h[np.arange(COLS), np.arange(COLS)] += DAMP * np.mean(np.diag(h))
    l = np.linalg.cholesky(h)
    linv = np.linalg.inv(l)
    return np.linalg.cholesky(linv.T @ linv).T, dead


def group_salience(w0, h0):
    w = w0.astype(np.float64).copy()
    u, dead = damped_upper_factor(h0, w)
    d = np.diag(u)
    s = w ** 2 / d[None, :] ** 2
    s[:, dead] = 0
    return s.reshape(ROWS, COLS // GS, GS).sum(axis=(0, 2)), d


def allocate(sal, n_bits, k):
    order = np.argsort(sal, kind="stable")
    widths = np.full(sal.size, n_bits, np.uint8)
    widths[order[:k]] = n_bits - 1
    widths[order[sal.size - k:]] = n_bits + 1 if k else n_bits
    return widths


def slim_gptq(w0, h0, widths, udiag, use_sqc, lam):
    """GPTQ's column loop (lazy blocks of BLOCK) with per-group widths and the group fit above."""
    w = w0.astype(F32).copy()
    u64, _ = damped_upper_factor(h0, w)
    u = u64.astype(F32)
    ng = COLS // GS
    codes, qw = np.zeros_like(w), np.zeros_like(w)
    scales, zeros = np.zeros((ROWS, ng), F32), np.zeros((ROWS, ng), F32)
    for i1 in range(0, COLS, BLOCK):
        i2 = min(i1 + BLOCK, COLS)
        w1 = w[:, i1:i2].copy()
        err1 = np.zeros_like(w1)
        for i in range(i2 - i1):
            c = i1 + i
            g = c // GS
            if c % GS == 0:  # on the global W: the block's in-flight updates are not in it
                scales[:, g], zeros[:, g] = fit_group(w[:, c:c + GS], udiag[c:c + GS], int(widths[g]), use_sqc, lam)
            code, q = quantize(w1[:, i], scales[:, g], zeros[:, g], int(widths[g]))
            codes[:, c], qw[:, c] = code, q
            e = ((w1[:, i] - q) / u[c, c]).astype(F32)
            w1[:, i:] -= np.outer(e, u[c, c:i2]).astype(F32)
            err1[:, i] = e
        w[:, i2:] -= (err1 @ u[i1:i2, i2:]).astype(F32)
    return codes.astype(np.uint8), qw, scales, zeros


def h_err(w, q, h):
    d = w.astype(np.float64) - q.astype(np.float64)
    return float(np.einsum("ri,ij,rj->", d, h, d))


def main():
    rng = np.random.default_rng(2405_14917)
    # weights with a few heavy columns, so the groups' salience differs
    w = (rng.standard_normal((ROWS, COLS)) * np.exp(rng.uniform(-0.7, 0.7, COLS)) * 0.05).astype(F32)
    x = rng.standard_normal((N_TOKENS, COLS)) * np.exp(rng.uniform(-1.5, 1.5, COLS))
    x[:, 1:] += 0.3 * x[:, :-1]
    x[:, DEAD] = 0
    x = x.astype(F32).astype(np.float64)
    h = 2.0 / N_TOKENS * (x.T @ x)
    os.makedirs(OUT, exist_ok=True)
    w.tofile(os.path.join(OUT, "w.f32"))
    h.tofile(os.path.join(OUT, "h.f64"))
    sal, udiag = group_salience(w, h)
    sal.tofile(os.path.join(OUT, "salience.f64"))
    manifest = {"rows": ROWS, "cols": COLS, "group_size": GS, "block_size": BLOCK, "damp": DAMP, "dead_input": DEAD,
                "numpy": np.__version__, "cases": []}
    for name, n_bits, k, use_sqc, lam in CASES:
        widths = allocate(sal, n_bits, k)
        codes, q, scales, zeros = slim_gptq(w, h, widths, udiag, use_sqc, lam)
        for suffix, arr in ((".widths.u8", widths), (".codes.u8", codes), (".q.f32", q), (".scales.f32", scales),
                            (".zeros.f32", zeros)):
            arr.tofile(os.path.join(OUT, name + suffix))
        manifest["cases"].append({"name": name, "bits": n_bits, "k": k, "sqc": use_sqc, "lambda": lam,
                                  "mean_width": float(widths.mean()), "h_err": h_err(w, q, h)})
    with open(os.path.join(OUT, "cases.json"), "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
