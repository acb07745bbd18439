#!/usr/bin/env python3
"""RTN reference fixtures for tests/test_qint.c, written from the GPTQ
paper's quantizer (IST-DASLab/gptq quant.py: INTQuantizer.find_params with
mse=False, and _quantize), in float32 NumPy.

One 16 x 256 float32 layer (seed 0) with a few rows that exercise the edge
cases: an all-zero row (the degenerate xmin = xmax = 0 group), an
all-positive row (the symmetric rule keeps xmin = 0 there), one all-negative
row, one row with a large outlier.  For each setting (bits, group, sym):

  <name>.codes.u8   uint8  [16, 256] codes
  <name>.deq.f32    float32 [16, 256] dequantized weights

slimbench stores scales in f16, so this script does what the C quantizer
does (methods/quantizer.h): fit scale and zero in float32 exactly as
quant.py, round the scale to the nearest float16 (ties to even), then code
with that rounded scale, q = clip(round(x / s16) + zero, 0, maxq), and
dequantize s16 * (q - zero) in float32.  np.round rounds half to even, as
torch.round.  The C test expects both files to match bit for bit.

Usage (from the repository root): python3 tests/reference/make_quant_fixtures.py
Written with numpy 2.4.6; the output is deterministic.
"""
import json
import os

import numpy as np

F32 = np.float32
ROWS, COLS = 16, 256
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "quant")
SETTINGS = [  # (bits, group_size (0 = per channel), symmetric)
    (4, 128, False),
    (4, 128, True),
    (3, 32, False),
    (3, 0, True),
    (8, 0, False),
    (2, 64, False),
    (5, 32, True),
    (8, 64, True),
]


def make_weights():
    rng = np.random.default_rng(0)
    w = (rng.standard_normal((ROWS, COLS)) * 0.05).astype(F32)
    w[3] = 0
    w[5] = np.abs(w[5])
    w[6] = -np.abs(w[6])
    w[9, 17] = 1.5
    return w


def fit(x, bits, sym):
    """quant.py find_params for each row of x (one row = one group)."""
    maxq = F32(2**bits - 1)
    xmin = np.minimum(x.min(1), F32(0))
    xmax = np.maximum(x.max(1), F32(0))
    if sym:
        xmax = np.maximum(np.abs(xmin), xmax)
        neg = xmin < 0
        xmin[neg] = -xmax[neg]
    deg = (xmin == 0) & (xmax == 0)
    xmin[deg] = F32(-1)
    xmax[deg] = F32(1)
    scale = ((xmax - xmin) / maxq).astype(F32)
    if sym:
        zero = np.full_like(scale, (maxq + F32(1)) / F32(2))
    else:
        zero = np.round(-xmin / scale).astype(F32)
    return scale, zero


def storable(scale):
    """The scale as format qint stores it: nearest f16, kept away from 0 and inf."""
    a = np.minimum(np.abs(scale), F32(65504)).astype(np.float16).astype(F32)
    a[a == 0] = F32(2.0**-24)
    return np.copysign(a, scale).astype(F32)


def rtn(w, bits, group, sym):
    gs = group or w.shape[1]
    maxq = F32(2**bits - 1)
    codes = np.zeros(w.shape, np.uint8)
    deq = np.zeros(w.shape, F32)
    for c0 in range(0, w.shape[1], gs):
        x = w[:, c0:c0 + gs]
        scale, zero = fit(x.copy(), bits, sym)
        s16 = storable(scale)[:, None]
        q = np.clip(np.round(x / s16) + zero[:, None], F32(0), maxq).astype(F32)
        codes[:, c0:c0 + gs] = q.astype(np.uint8)
        deq[:, c0:c0 + gs] = s16 * (q - zero[:, None])
    return codes, deq


def main():
    os.makedirs(OUT, exist_ok=True)
    w = make_weights()
    w.tofile(os.path.join(OUT, "weights.f32"))
    cases = []
    for bits, group, sym in SETTINGS:
        name = f"b{bits}_g{group}_{'sym' if sym else 'asym'}"
        codes, deq = rtn(w, bits, group, sym)
        codes.tofile(os.path.join(OUT, name + ".codes.u8"))
        deq.tofile(os.path.join(OUT, name + ".deq.f32"))
        cases.append({"name": name, "bits": bits, "group_size": group, "symmetric": sym})
    manifest = {"rows": ROWS, "cols": COLS, "weights": "weights.f32", "cases": cases,
                "numpy": np.__version__, "generator": "tests/reference/make_quant_fixtures.py"}
    with open(os.path.join(OUT, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
