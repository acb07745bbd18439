#!/usr/bin/env python3
"""Writes tests/reference/gguf/quant_types.gguf, the fixture of tests/test_ggml_quants.c.

For every ggml type slimbench decodes, the file holds tensors of 2 rows x 512
values (2 x 1024 for the K-quants, so that they have 8 super-blocks):
  <type>.random            random but valid raw blocks (every f16 scale finite)
  <type>.quantized         (types gguf-py can quantize) normal random data
                           quantized by gguf-py, so blocks look like real weights
  <name>.expected          F32: gguf.quants.dequantize of <name>, the reference
  <type>.quantized.source  (F16, BF16) the F32 data before quantization, to
                           check slimbench's own f32 -> f16/bf16 rounding
Run from the repository root:  python3 tests/reference/make_gguf_quant_fixtures.py
"""
import os

import numpy as np
import gguf
from gguf import GGMLQuantizationType as T
from gguf.quants import dequantize, quantize, quant_shape_to_byte_shape

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "gguf", "quant_types.gguf")
ROWS, COLS = 2, 512
SEED = 20240611

# Byte offsets of the f16 fields in each block, and the range their values are
# drawn from: signed scales for symmetric types, [0, 1] for the super-scales
# of types whose q and scale are unsigned (x = d*q - dmin*m), [-1, 0] for the
# additive mins of Q4_1/Q5_1.
F16_FIELDS = {
    T.Q4_0: [(0, -2.0, 2.0)],
    T.Q4_1: [(0, 0.0, 1.0), (2, -1.0, 0.0)],
    T.Q5_0: [(0, -2.0, 2.0)],
    T.Q5_1: [(0, 0.0, 1.0), (2, -1.0, 0.0)],
    T.Q8_0: [(0, -0.05, 0.05)],
    T.Q2_K: [(80, 0.0, 1.0), (82, 0.0, 1.0)],
    T.Q3_K: [(108, -1.0, 1.0)],
    T.Q4_K: [(0, 0.0, 1.0), (2, 0.0, 1.0)],
    T.Q5_K: [(0, 0.0, 1.0), (2, 0.0, 1.0)],
    T.Q6_K: [(208, -0.1, 0.1)],
}

# Corner-case f16 scale values forced into the first quarter of the blocks
# (most interesting first, since K-quant tensors have only 8 blocks): the
# largest subnormal, the largest finite value, the smallest subnormal, the
# smallest normal, negative zero, zero, the most negative finite value, 1.
# They exercise the f16 decoder inside the block decoders.
SPECIAL_F16 = [0x03FF, 0x7BFF, 0x0001, 0x0400, 0x8000, 0x0000, 0xFBFF, 0x3C00]

QUANTIZABLE = [T.F16, T.BF16, T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0]


def cols_of(qtype):
    return 2 * COLS if gguf.GGML_QUANT_SIZES[qtype][0] == 256 else COLS


def random_blocks(rng, qtype):
    """Random raw bytes of a (ROWS, cols_of(qtype)) tensor with sane f16 fields."""
    shape = quant_shape_to_byte_shape((ROWS, cols_of(qtype)), qtype)
    raw = rng.integers(0, 256, size=shape, dtype=np.uint8)
    type_size = gguf.GGML_QUANT_SIZES[qtype][1]
    blocks = raw.reshape(-1, type_size)
    for field, (off, lo, hi) in enumerate(F16_FIELDS[qtype]):
        vals = rng.uniform(lo, hi, size=blocks.shape[0]).astype(np.float16).view(np.uint16)
        n_special = min(len(SPECIAL_F16), len(vals) // 4)
        specials = SPECIAL_F16 if field == 0 else SPECIAL_F16[::-1]  # vary the (d, dmin) pairs
        vals[:n_special] = specials[:n_special]
        blocks[:, off:off + 2] = vals.reshape(-1, 1).view(np.uint8).reshape(-1, 2)
    return raw


def random_f16_bits(rng):
    """Every kind of f16 including +-inf; NaN is left out (NaN never equals NaN)."""
    bits = rng.integers(0, 1 << 16, size=ROWS * COLS, dtype=np.uint32).astype(np.uint16)
    bits = np.where((bits & 0x7C00) == 0x7C00, bits & 0xFC00, bits).astype(np.uint16)  # NaN -> inf
    special = [0x0000, 0x8000, 0x0001, 0x8001, 0x03FF, 0x0400, 0x7BFF, 0xFBFF, 0x7C00, 0xFC00, 0x3C00]
    bits[:len(special)] = special
    return bits.reshape(ROWS, COLS)


def random_bf16_bits(rng):
    bits = rng.integers(0, 1 << 16, size=ROWS * COLS, dtype=np.uint32).astype(np.uint16)
    bits = np.where((bits & 0x7F80) == 0x7F80, bits & 0xFF80, bits).astype(np.uint16)  # NaN -> inf
    special = [0x0000, 0x8000, 0x0001, 0x007F, 0x0080, 0x7F7F, 0xFF7F, 0x7F80, 0xFF80, 0x3F80]
    bits[:len(special)] = special
    return bits.reshape(ROWS, COLS)


def add_random(w, rng, qtype):
    name = f"{qtype.name.lower()}.random"
    if qtype == T.F32:
        data = rng.standard_normal((ROWS, COLS)).astype(np.float32)
        data[0, :6] = [0.0, -0.0, np.inf, -np.inf, 1e-45, 3.4e38]
        w.add_tensor(name, data)
        expected = data
    elif qtype == T.F16:
        data = random_f16_bits(rng).view(np.float16)
        w.add_tensor(name, data)
        expected = dequantize(data.view(np.uint8), qtype)
    else:
        if qtype == T.BF16:
            raw = random_bf16_bits(rng).view(np.uint8)
        else:
            raw = random_blocks(rng, qtype)
        w.add_tensor(name, raw, raw_shape=raw.shape, raw_dtype=qtype)
        expected = dequantize(raw, qtype)
    add_expected(w, name, expected)


def add_quantized(w, rng, qtype):
    name = f"{qtype.name.lower()}.quantized"
    source = (rng.standard_normal((ROWS, COLS)) * 0.02).astype(np.float32)
    q = quantize(source, qtype)
    if qtype == T.F16:
        w.add_tensor(name, q)
        expected = dequantize(q.view(np.uint8), qtype)
    else:
        w.add_tensor(name, q, raw_shape=q.shape, raw_dtype=qtype)
        expected = dequantize(q, qtype)
    add_expected(w, name, expected)
    if qtype in (T.F16, T.BF16):
        w.add_tensor(name + ".source", source)


def add_expected(w, name, expected):
    expected = np.ascontiguousarray(expected, dtype=np.float32).reshape(ROWS, -1)
    assert not np.isnan(expected).any(), name
    w.add_tensor(name + ".expected", expected)


def main():
    rng = np.random.default_rng(SEED)
    w = gguf.GGUFWriter(OUT, arch="slimbench-fixture")
    w.add_string("slimbench.fixture", "ggml quant types, see tests/reference/make_gguf_quant_fixtures.py")
    for qtype in [T.F32, T.F16, T.BF16, T.Q8_0, T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1,
                  T.Q2_K, T.Q3_K, T.Q4_K, T.Q5_K, T.Q6_K]:
        add_random(w, rng, qtype)
        if qtype in QUANTIZABLE:
            add_quantized(w, rng, qtype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    print(f"wrote {OUT} ({os.path.getsize(OUT)} bytes)")


if __name__ == "__main__":
    main()
