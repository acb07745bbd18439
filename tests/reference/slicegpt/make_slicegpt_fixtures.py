#!/usr/bin/env python3
"""SliceGPT fixtures for tests/test_slicegpt.c, from an independent PyTorch
implementation written from the paper (Ashkboos et al., arXiv 2401.15024,
Sections 3.2-3.4) and the authors' rotate.py / layernorm_fusion.py
(microsoft/TransformerCompression).  Imports nothing from slimbench.

    python3 tests/reference/slicegpt/make_slicegpt_fixtures.py   # from the repository root, a few seconds

The tiny Hugging Face models of tests/reference/models/ (llama: RMSNorm,
GQA, llama3 rotary, untied head; opt: LayerNorm with biases, learned
positions, tied head; phi: parallel attention/MLP, one LayerNorm per block,
partial rotary, head bias) are loaded with transformers and rewritten here
as plain float64 tensors run by a small functional forward, which is first
checked against the transformers model's own logits.  Then, in float64:

1. fusion: untie the head; LayerNorm models: subtract each embedding row's
   mean (token and position tables) and the output-dimension mean of the
   linears writing into the stream (o/out_proj/dense, fc2/down, with
   biases); fold every norm's (alpha, beta) into the linears it feeds
   (W <- W diag(alpha), b <- b + W beta); every norm becomes
   RMSN(x) = x / sqrt(sum x^2 / D + eps), D the original width.
   (RMSNorm models get no mean subtraction: it is no invariance of RMSNorm.)
2. PCA of each signal: C = sum x x^T over calibration tokens,
   C += 0.01 mean(diag C) I, eigenvectors by eigenvalue descending.
3. rotate and slice block by block with inputs from the sliced earlier
   blocks, shortcuts Q_a[:, :d_a]^T Q_b[:, :d_b] on the residual paths,
   as rotate_and_slice_sequential / _parallel: Q_0 from the embeddings,
   Q_mid from the stream between attention and MLP (with the attention
   shortcut Q_in^T, output unrotated), Q_out from the block outputs (MLP
   output unrotated); the last block keeps the full width for the head
   unless slice_head.

Writes tests/reference/slicegpt/cases.json (per case: model, sparsity,
width, slice_head, calibration tokens [n][T], eval tokens, the sliced
widths, the dense max |logit|) and CASE.logits.f32 [T_eval, V] (the sliced
model's logits, float32 little-endian).
"""
import json
import math
import os

import numpy as np
import torch
from transformers import AutoModelForCausalLM

HERE = os.path.dirname(os.path.abspath(__file__))
MODELS = os.path.join(HERE, "..", "models")
torch.set_num_threads(1)
F = torch.float64

N_CAL, T_CAL, T_EVAL = 4, 24, 16
CASES = [
    # name, model, sparsity, round_interval, slice_head
    ("llama_s25", "llama", 0.25, 8, False),
    ("llama_s50_head", "llama", 0.50, 8, True),
    ("opt_s25", "opt", 0.25, 8, False),
    ("phi_s25", "phi", 0.25, 8, False),
]


# ---------------------------------------------------------------------------
# the model as plain tensors
# ---------------------------------------------------------------------------

def lin(w, b=None):
    return {"w": w.detach().to(F).clone(), "b": None if b is None else b.detach().to(F).clone()}


def norm_of(w, b=None):
    return {"w": w.detach().to(F).clone(), "b": None if b is None else b.detach().to(F).clone(), "mean_dim": None}


def from_hf(name):
    hf = AutoModelForCausalLM.from_pretrained(os.path.join(MODELS, name), dtype=torch.float32,
                                              attn_implementation="eager")
    hf.eval()
    c = hf.config
    m = {"arch": name, "hf": hf, "blocks": [], "D": c.hidden_size}
    if name == "llama":
        mm = hf.model
        m.update(kind="rms", eps=c.rms_norm_eps, parallel=False, act="silu", gated=True,
                 n_head=c.num_attention_heads, n_kv=c.num_key_value_heads, hd=c.head_dim,
                 inv_freq=mm.rotary_emb.inv_freq.to(F), rot=c.head_dim,
                 emb=mm.embed_tokens.weight.detach().to(F).clone(), pos=None, pos_offset=0,
                 final=norm_of(mm.norm.weight), head=lin(hf.lm_head.weight))
        for L in mm.layers:
            a, f = L.self_attn, L.mlp
            m["blocks"].append({"n1": norm_of(L.input_layernorm.weight), "n2": norm_of(L.post_attention_layernorm.weight),
                                "q": lin(a.q_proj.weight), "k": lin(a.k_proj.weight), "v": lin(a.v_proj.weight),
                                "o": lin(a.o_proj.weight), "gate": lin(f.gate_proj.weight), "up": lin(f.up_proj.weight),
                                "down": lin(f.down_proj.weight), "s_attn": None, "s_mlp": None})
    elif name == "opt":
        dec = hf.model.decoder
        m.update(kind="ln", eps=1e-5, parallel=False, act="relu", gated=False,
                 n_head=c.num_attention_heads, n_kv=c.num_attention_heads, hd=c.hidden_size // c.num_attention_heads,
                 inv_freq=None, rot=0, emb=dec.embed_tokens.weight.detach().to(F).clone(),
                 pos=dec.embed_positions.weight.detach().to(F).clone(), pos_offset=2,
                 final=norm_of(dec.final_layer_norm.weight, dec.final_layer_norm.bias),
                 head=lin(hf.lm_head.weight))
        for L in dec.layers:
            a = L.self_attn
            m["blocks"].append({"n1": norm_of(L.self_attn_layer_norm.weight, L.self_attn_layer_norm.bias),
                                "n2": norm_of(L.final_layer_norm.weight, L.final_layer_norm.bias),
                                "q": lin(a.q_proj.weight, a.q_proj.bias), "k": lin(a.k_proj.weight, a.k_proj.bias),
                                "v": lin(a.v_proj.weight, a.v_proj.bias), "o": lin(a.out_proj.weight, a.out_proj.bias),
                                "gate": None, "up": lin(L.fc1.weight, L.fc1.bias), "down": lin(L.fc2.weight, L.fc2.bias),
                                "s_attn": None, "s_mlp": None})
    elif name == "phi":
        mm = hf.model
        hd = c.hidden_size // c.num_attention_heads
        m.update(kind="ln", eps=c.layer_norm_eps, parallel=True, act="gelu_tanh", gated=False,
                 n_head=c.num_attention_heads, n_kv=c.num_key_value_heads, hd=hd,
                 inv_freq=mm.rotary_emb.inv_freq.to(F), rot=2 * len(mm.rotary_emb.inv_freq),
                 emb=mm.embed_tokens.weight.detach().to(F).clone(), pos=None, pos_offset=0,
                 final=norm_of(mm.final_layernorm.weight, mm.final_layernorm.bias),
                 head=lin(hf.lm_head.weight, hf.lm_head.bias))
        for L in mm.layers:
            a, f = L.self_attn, L.mlp
            m["blocks"].append({"n1": norm_of(L.input_layernorm.weight, L.input_layernorm.bias), "n2": None,
                                "q": lin(a.q_proj.weight, a.q_proj.bias), "k": lin(a.k_proj.weight, a.k_proj.bias),
                                "v": lin(a.v_proj.weight, a.v_proj.bias), "o": lin(a.dense.weight, a.dense.bias),
                                "gate": None, "up": lin(f.fc1.weight, f.fc1.bias), "down": lin(f.fc2.weight, f.fc2.bias),
                                "s_attn": None, "s_mlp": None})
    return m


# ---------------------------------------------------------------------------
# the functional forward (float64)
# ---------------------------------------------------------------------------

def apply_lin(p, x):
    y = x @ p["w"].T
    return y if p["b"] is None else y + p["b"]


def apply_norm(m, n, x):
    if m["kind"] == "ln":
        mu = x.mean(-1, keepdim=True)
        xc = x - mu
        y = xc / torch.sqrt((xc * xc).mean(-1, keepdim=True) + m["eps"])
    else:
        div = n["mean_dim"] or x.shape[-1]
        y = x / torch.sqrt((x * x).sum(-1, keepdim=True) / div + m["eps"])
    if n["w"] is not None:
        y = y * n["w"][: x.shape[-1]]
    return y if n["b"] is None else y + n["b"][: x.shape[-1]]


def rope(m, x, T):
    """x [T, heads, hd]: rotate the first `rot` dims of each head, pairs (i, i + rot/2)."""
    if m["inv_freq"] is None:
        return x
    rot = m["rot"]
    ang = torch.arange(T, dtype=F)[:, None] * m["inv_freq"][None, :].to(F)  # [T, rot/2]
    cos, sin = torch.cos(ang)[:, None, :], torch.sin(ang)[:, None, :]
    a, b, rest = x[..., : rot // 2], x[..., rot // 2: rot], x[..., rot:]
    return torch.cat([a * cos - b * sin, b * cos + a * sin, rest], dim=-1)


def act(m, x):
    if m["act"] == "silu":
        return x * torch.sigmoid(x)
    if m["act"] == "relu":
        return torch.relu(x)
    return 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))


def attention(m, b, h):
    T = h.shape[0]
    nh, nkv, hd = m["n_head"], m["n_kv"], m["hd"]
    q = rope(m, apply_lin(b["q"], h).view(T, nh, hd), T)
    k = rope(m, apply_lin(b["k"], h).view(T, nkv, hd), T)
    v = apply_lin(b["v"], h).view(T, nkv, hd)
    k = k.repeat_interleave(nh // nkv, dim=1)
    v = v.repeat_interleave(nh // nkv, dim=1)
    s = torch.einsum("qhd,khd->hqk", q, k) / math.sqrt(hd)
    s = s.masked_fill(torch.triu(torch.ones(T, T, dtype=torch.bool), 1), float("-inf"))
    o = torch.einsum("hqk,khd->qhd", torch.softmax(s, dim=-1), v).reshape(T, nh * hd)
    return apply_lin(b["o"], o)


def mlp(m, b, h):
    u = apply_lin(b["up"], h)
    a = act(m, apply_lin(b["gate"], h)) * u if m["gated"] else act(m, u)
    return apply_lin(b["down"], a)


def shortcut(s, x):
    return x if s is None else x @ s


def block_forward(m, b, x):
    """x [T, d_in] -> (signal between attention and MLP, output)."""
    h = apply_norm(m, b["n1"], x)
    if m["parallel"]:
        y = shortcut(b["s_attn"], x) + attention(m, b, h) + mlp(m, b, h)
        return y, y
    mid = shortcut(b["s_attn"], x) + attention(m, b, h)
    out = shortcut(b["s_mlp"], mid) + mlp(m, b, apply_norm(m, b["n2"], mid))
    return mid, out


def embed(m, tokens):
    x = m["emb"][tokens]
    if m["pos"] is not None:
        x = x + m["pos"][torch.arange(len(tokens)) + m["pos_offset"]]
    return x


def logits(m, tokens):
    x = embed(m, torch.tensor(tokens))
    for b in m["blocks"]:
        x = block_forward(m, b, x)[1]
    return apply_lin(m["head"], apply_norm(m, m["final"], x))


# ---------------------------------------------------------------------------
# SliceGPT
# ---------------------------------------------------------------------------

def fold(n, p):
    """W <- W diag(alpha), b <- b + W beta."""
    w = p["w"]
    b = torch.zeros(w.shape[0], dtype=F) if p["b"] is None else p["b"].clone()
    if n["b"] is not None:
        b = b + w @ n["b"]
    has_bias = p["b"] is not None or n["b"] is not None
    return {"w": w * n["w"][None, :], "b": b if has_bias else None}


def center_out(p):
    return {"w": p["w"] - p["w"].mean(0, keepdim=True), "b": None if p["b"] is None else p["b"] - p["b"].mean()}


def rmsn(D):
    return {"w": None, "b": None, "mean_dim": D}


def fuse(m):
    D, ln = m["D"], m["kind"] == "ln"
    m["head"] = {"w": m["head"]["w"].clone(), "b": m["head"]["b"]}  # untied
    if ln:
        m["emb"] = m["emb"] - m["emb"].mean(1, keepdim=True)
        if m["pos"] is not None:
            m["pos"] = m["pos"] - m["pos"].mean(1, keepdim=True)
    for b in m["blocks"]:
        n_mlp = b["n1"] if m["parallel"] else b["n2"]
        for k in ("q", "k", "v"):
            b[k] = fold(b["n1"], b[k])
        for k in ("gate", "up"):
            if b[k] is not None:
                b[k] = fold(n_mlp, b[k])
        if ln:
            b["o"], b["down"] = center_out(b["o"]), center_out(b["down"])
        b["n1"] = rmsn(D)
        b["n2"] = None if m["parallel"] else rmsn(D)
    m["head"] = fold(m["final"], m["head"])
    m["final"] = rmsn(D)
    m["kind"] = "rms"


def pca(xs):
    """xs: list of [T, D] signals -> Q [D, D], eigenvalues descending."""
    c = sum(x.T @ x for x in xs)
    c = c + 0.01 * torch.mean(torch.diag(c)) * torch.eye(c.shape[0], dtype=F)
    lam, q = torch.linalg.eigh(c)
    idx = torch.argsort(lam, descending=True)
    return q[:, idx]


def rot_in(p, q, d):
    return {"w": p["w"] @ q[:, :d], "b": p["b"]}


def rot_out(p, q, d):
    return {"w": (q[:, :d].T @ p["w"]), "b": None if p["b"] is None else q[:, :d].T @ p["b"]}


def slice_model(m, cal, d, slice_head):
    D, L = m["D"], len(m["blocks"])
    fuse(m)
    xs = [embed(m, torch.tensor(t)) for t in cal]
    q = pca(xs)
    m["emb"] = m["emb"] @ q[:, :d]
    if m["pos"] is not None:
        m["pos"] = m["pos"] @ q[:, :d]
    xs = [x @ q[:, :d] for x in xs]
    widths = []
    for li, b in enumerate(m["blocks"]):
        d_out = D if li == L - 1 and not slice_head else d
        for k in ("q", "k", "v") + (("gate", "up") if m["parallel"] else ()):
            if b[k] is not None:
                b[k] = rot_in(b[k], q, d)
        b["s_attn"] = q[:, :d].T  # back to the original basis until the next Q is known
        if m["parallel"]:
            q_out = pca([block_forward(m, b, x)[1] for x in xs])
            b["s_attn"] = b["s_attn"] @ q_out[:, :d_out]
            b["o"], b["down"] = rot_out(b["o"], q_out, d_out), rot_out(b["down"], q_out, d_out)
            widths.append([d, d_out, d_out])
        else:
            q_mid = pca([block_forward(m, b, x)[0] for x in xs])
            b["s_attn"] = b["s_attn"] @ q_mid[:, :d]
            b["o"] = rot_out(b["o"], q_mid, d)
            for k in ("gate", "up"):
                if b[k] is not None:
                    b[k] = rot_in(b[k], q_mid, d)
            b["s_mlp"] = q_mid[:, :d].T
            q_out = pca([block_forward(m, b, x)[1] for x in xs])
            b["s_mlp"] = b["s_mlp"] @ q_out[:, :d_out]
            b["down"] = rot_out(b["down"], q_out, d_out)
            widths.append([d, d, d_out])
        xs = [block_forward(m, b, x)[1] for x in xs]
        q = q_out
    d_head = d if slice_head else D
    m["head"] = rot_in(m["head"], q, d_head)
    return widths


# ---------------------------------------------------------------------------

def tokens(seed, V, n, T):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, V, (n, T), generator=g).tolist()


def main():
    cases = []
    for name, model, sparsity, rnd, slice_head in CASES:
        m = from_hf(model)
        V, D = m["emb"].shape
        ev = tokens(7, V, 1, T_EVAL)[0]
        with torch.no_grad():
            ref = m["hf"](input_ids=torch.tensor([ev]), use_cache=False).logits[0].to(F)
            dense = logits(m, ev)
            err = (dense - ref).abs().max().item() / ref.abs().max().item()
            assert err < 1e-5, f"{name}: functional forward disagrees with transformers ({err})"
            cal = tokens(11, V, N_CAL, T_CAL)
            fused = {**m, "blocks": [dict(b) for b in m["blocks"]]}
            fuse(fused)
            ferr = (logits(fused, ev) - dense).abs().max().item() / dense.abs().max().item()
            assert ferr < 1e-10, f"{name}: fusion changed the logits ({ferr})"
            d = int(math.floor((1 - sparsity) * D + 1e-9))
            d -= d % rnd
            widths = slice_model(m, cal, d, slice_head)
            out = logits(m, ev)
        out.to(torch.float32).numpy().astype("<f4").tofile(os.path.join(HERE, name + ".logits.f32"))
        rel = (out - dense).abs().max().item() / dense.abs().max().item()
        print(f"  {name:16s} D={D} d={d} max|sliced - dense| / max|dense| = {rel:.4f}")
        cases.append({"name": name, "model": model, "sparsity": sparsity, "round_interval": rnd,
                      "slice_head": slice_head, "width": d, "widths": widths,
                      "calibration_tokens": cal, "eval_tokens": ev, "logits_file": name + ".logits.f32",
                      "shape": [T_EVAL, V], "max_abs_dense_logit": dense.abs().max().item(),
                      "torch_version": torch.__version__})
    with open(os.path.join(HERE, "cases.json"), "w") as f:
        json.dump({"cases": cases}, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
