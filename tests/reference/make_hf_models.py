#!/usr/bin/env python3
"""Generate tiny random Hugging Face reference models + logits for slimbench.

Run from the repository root:

    python3 tests/reference/make_hf_models.py

Writes tests/reference/models/<name>/{config.json, model.safetensors,
reference.json, logits.f32} for every model below, plus
tests/reference/models/llama.gguf (+ llama_gguf.json) and
tests/reference/models/qwen2.gguf (+ qwen2_gguf.json).

Everything is deterministic (fixed seeds, CPU, float32, single thread), so a
re-run with the same package versions reproduces the files byte-for-byte.
See tests/reference/README.md for what each fixture exercises.
"""

import copy
import importlib.metadata
import json
import math
import os
import shutil
import sys

import numpy as np
import torch
import transformers
from transformers import (
    AutoModelForCausalLM,
    Gemma3ForCausalLM,
    Gemma3TextConfig,
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
    MistralConfig,
    MistralForCausalLM,
    OPTConfig,
    OPTForCausalLM,
    PhiConfig,
    PhiForCausalLM,
    Qwen2Config,
    Qwen2ForCausalLM,
)

import gguf

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "models")

torch.set_num_threads(1)  # bit-reproducible CPU reductions
torch.use_deterministic_algorithms(True)
transformers.logging.set_verbosity_error()
transformers.utils.logging.disable_progress_bar()
GGUF_VERSION = importlib.metadata.version("gguf")

LLAMA3_ROPE = {
    "rope_type": "llama3",
    "factor": 8.0,
    "low_freq_factor": 1.0,
    "high_freq_factor": 4.0,
    # 64 (not 8192) so that at head_dim 16 / theta 5e5 all three llama3 regimes
    # occur: pair 0 (wavelen 6.3 < 16) unscaled, pair 1 (wavelen 32.4) smoothed,
    # pairs 2..7 (wavelen > 64) divided by 8.  Checked in check_llama3_rope().
    "original_max_position_embeddings": 64,
}


# --------------------------------------------------------------------------
# weight initialisation: make every term numerically relevant
# --------------------------------------------------------------------------

def reinit_(model, seed, gemma_norms=False, emb_std=0.5):
    """Redraw all parameters so activations / logits are O(1)..O(10).

    * 2-D weights: N(0, 1/fan_in) (GPT-2 Conv1D stores [in, out] -> fan_in = rows)
    * token / position embeddings: N(0, emb_std)
    * norm weights: 1 + N(0, 0.2)   (Gemma: N(0, 0.2), since it uses (1 + w))
    * biases (linear and norm): N(0, 0.1)
    * untied lm_head: N(0, 2/fan_in) so logits are a few units
    """
    g = torch.Generator().manual_seed(seed)
    conv1d = isinstance(model, GPT2LMHeadModel)
    seen = set()
    for name, p in model.named_parameters(remove_duplicate=True):
        if id(p) in seen:
            continue
        seen.add(id(p))
        with torch.no_grad():
            shape = tuple(p.shape)
            if p.dim() == 2:
                if any(k in name for k in ("embed_tokens", "wte", "wpe", "embed_positions")):
                    std = emb_std
                else:
                    fan_in = shape[0] if (conv1d and "transformer.h." in name) else shape[1]
                    std = 1.0 / math.sqrt(fan_in)
                    if name.startswith("lm_head"):
                        std *= 2.0
                p.copy_(torch.randn(shape, generator=g) * std)
            elif p.dim() == 1:
                is_norm = any(k in name for k in ("norm", "ln_", "layer_norm", "layernorm"))
                if is_norm and name.endswith("weight"):
                    base = 0.0 if gemma_norms else 1.0
                    p.copy_(base + 0.2 * torch.randn(shape, generator=g))
                else:  # biases
                    p.copy_(0.1 * torch.randn(shape, generator=g))
            else:
                raise RuntimeError(f"unexpected param {name} {shape}")
    return model


def tokens_for(seed, vocab, T):
    g = torch.Generator().manual_seed(10_000 + seed)
    t = torch.randint(0, vocab, (T,), generator=g).tolist()
    t[T // 2] = t[1]  # a repeated token: identical embedding, different position
    return t


@torch.no_grad()
def run_logits(model, tokens):
    model.eval()
    ids = torch.tensor([tokens], dtype=torch.long)
    out = model(input_ids=ids, use_cache=False)
    return out.logits[0].float().contiguous()


def sanity(name, logits, T, V):
    assert logits.shape == (T, V), (name, logits.shape)
    assert torch.isfinite(logits).all(), name
    # logits must vary across positions (no collapsed / constant rows)
    d = (logits[1:] - logits[:-1]).abs().amax(dim=1)
    assert (d > 1e-3).all(), f"{name}: rows do not vary across positions"
    assert logits.std() > 0.3, f"{name}: logits too small ({logits.std()})"
    m = logits.abs().max().item()
    print(f"  {name:12s} T={T} V={V} max|logit|={m:.4f} std={logits.std().item():.4f}")
    return m


def load_back(d):
    return AutoModelForCausalLM.from_pretrained(
        d, dtype=torch.float32, attn_implementation="eager"
    )


def save_model(name, model, tokens, save_dtype=torch.float32, notes="",
               legacy_config=None):
    """Save HF folder, compute reference logits from the *saved* weights."""
    d = os.path.join(OUT, name)
    if os.path.exists(d):
        shutil.rmtree(d)
    os.makedirs(d)
    # round the f32 parameters through the storage dtype in place; buffers such
    # as rotary inv_freq stay f32 (casting them would perturb the reference)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.to(save_dtype).float())
    copy.deepcopy(model).to(save_dtype).save_pretrained(d, safe_serialization=True)
    if legacy_config is not None:
        # Rewrite config.json in the pre-v5 layout that most Hub checkpoints use.
        with open(os.path.join(d, "config.json")) as f:
            cfg = json.load(f)
        cfg = legacy_config(cfg)
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(cfg, f, indent=2, sort_keys=True)
            f.write("\n")
    # reference = saved weights, upcast to f32, run in f32 eager
    ref = load_back(d)
    in_mem = model
    in_mem.config._attn_implementation = "eager"
    logits = run_logits(ref, tokens)
    logits_mem = run_logits(in_mem, tokens)
    assert torch.equal(logits, logits_mem), f"{name}: reload changed logits " \
        f"({(logits - logits_mem).abs().max()})"
    T, V = logits.shape
    m = sanity(name, logits, T, V)
    logits.numpy().astype("<f4").tofile(os.path.join(d, "logits.f32"))
    dtype_s = {torch.float32: "float32", torch.bfloat16: "bfloat16",
               torch.float16: "float16"}[save_dtype]
    refj = {
        "arch": ref.config.model_type,
        "tokens": tokens,
        "logits_file": "logits.f32",
        "shape": [T, V],
        "dtype": dtype_s,
        "transformers_version": transformers.__version__,
        "torch_version": torch.__version__,
        "max_abs_logit": round(m, 6),
        "notes": notes,
    }
    with open(os.path.join(d, "reference.json"), "w") as f:
        json.dump(refj, f, indent=2)
        f.write("\n")
    return ref, logits


# --------------------------------------------------------------------------
# architecture-specific checks
# --------------------------------------------------------------------------

def check_llama3_rope(model):
    cfg = model.config
    hd = cfg.head_dim
    base = cfg.rope_parameters["rope_theta"]
    plain = 1.0 / (base ** (torch.arange(0, hd, 2, dtype=torch.int64).float() / hd))
    scaled = model.model.rotary_emb.inv_freq
    ratio = (plain / scaled).tolist()
    print("  llama3 rope: plain/scaled inv_freq =", [round(r, 4) for r in ratio])
    assert abs(ratio[0] - 1) < 1e-6, "pair 0 should be unscaled"
    assert 1.01 < ratio[1] < 7.99, "pair 1 should be in the smoothed band"
    assert all(abs(r - 8) < 1e-4 for r in ratio[2:]), "pairs 2.. should be /8"
    return ratio


def window_check(name, cls, cfg_kwargs, seed, tokens, W, ref_logits):
    """Re-run the same weights with the window disabled: positions < W must be
    identical, later ones must differ -> the window really is applied."""
    gemma = cls is Gemma3ForCausalLM
    m = cls(cls.config_class(**cfg_kwargs))
    reinit_(m, seed, gemma_norms=gemma, emb_std=emb_std_for(m.config, gemma))
    m.config._attn_implementation = "eager"
    full = run_logits(m, tokens)
    diff = (full - ref_logits).abs().amax(dim=1)
    print(f"  {name}: max|Δ| per position without window:",
          " ".join(f"{x:.2g}" for x in diff.tolist()))
    assert (diff[:W] == 0).all(), f"{name}: positions < W changed"
    assert (diff[W:] > 1e-4).all(), f"{name}: sliding window had no effect"


# --------------------------------------------------------------------------
# GGUF writers (mirroring llama.cpp convert_hf_to_gguf.py)
# --------------------------------------------------------------------------

def permute_qk(w, n_head, n_head_kv=None):
    """convert_hf_to_gguf.py LlamaModel.permute: HF rotate-half -> GGML pairs."""
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return (w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:])
             .swapaxes(1, 2)
             .reshape(w.shape))


def llama3_rope_factors(rope, head_dim):
    """convert_hf_to_gguf.py LlamaModel.generate_extra_tensors (llama3)."""
    base = rope.get("rope_theta", 10000.0)
    dim = head_dim
    freqs = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.float32) / dim))
    factor = rope.get("factor", 8.0)
    low_freq_factor = rope.get("low_freq_factor", 1.0)
    high_freq_factor = rope.get("high_freq_factor", 4.0)
    # NB: upstream reads hparams["original_max_position_embeddings"] (top level,
    # default 8192); HF reads it from rope_scaling/rope_parameters.  We use the
    # rope_parameters value, which is what makes the GGUF match HF's logits.
    old_context_len = rope.get("original_max_position_embeddings", 8192)
    low_freq_wavelen = old_context_len / low_freq_factor
    high_freq_wavelen = old_context_len / high_freq_factor
    out = []
    for freq in freqs:
        wavelen = 2 * math.pi / freq
        if wavelen < high_freq_wavelen:
            out.append(1)
        elif wavelen > low_freq_wavelen:
            out.append(factor)
        else:
            smooth = (old_context_len / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor)
            out.append(1 / ((1 - smooth) / factor + smooth))
    return torch.tensor(out, dtype=torch.float32)


def write_gguf(path, arch, model, permute):
    cfg = model.config
    sd = {k: v.detach().float().numpy() for k, v in model.state_dict().items()}
    H, nh, nkv = cfg.hidden_size, cfg.num_attention_heads, cfg.num_key_value_heads
    hd = getattr(cfg, "head_dim", None) or H // nh
    w = gguf.GGUFWriter(path, arch)
    w.add_name(os.path.basename(path)[:-5])
    w.add_context_length(cfg.max_position_embeddings)
    w.add_embedding_length(H)
    w.add_block_count(cfg.num_hidden_layers)
    w.add_feed_forward_length(cfg.intermediate_size)
    w.add_head_count(nh)
    w.add_head_count_kv(nkv)
    w.add_rope_freq_base(float(cfg.rope_parameters["rope_theta"]))
    w.add_layer_norm_rms_eps(float(cfg.rms_norm_eps))
    w.add_file_type(gguf.LlamaFileType.ALL_F32)
    w.add_vocab_size(cfg.vocab_size)
    w.add_rope_dimension_count(hd)

    def T(name, arr):
        w.add_tensor(name, np.ascontiguousarray(arr, dtype=np.float32))

    if cfg.rope_parameters.get("rope_type") == "llama3":
        T("rope_freqs.weight", llama3_rope_factors(cfg.rope_parameters, hd).numpy())
    T("token_embd.weight", sd["model.embed_tokens.weight"])
    for i in range(cfg.num_hidden_layers):
        p = f"model.layers.{i}."
        b = f"blk.{i}."
        q = sd[p + "self_attn.q_proj.weight"]
        k = sd[p + "self_attn.k_proj.weight"]
        if permute:
            q = permute_qk(q, nh, nh)
            k = permute_qk(k, nh, nkv)
        T(b + "attn_norm.weight", sd[p + "input_layernorm.weight"])
        T(b + "attn_q.weight", q)
        T(b + "attn_k.weight", k)
        T(b + "attn_v.weight", sd[p + "self_attn.v_proj.weight"])
        for proj, g in (("q", "attn_q"), ("k", "attn_k"), ("v", "attn_v")):
            key = p + f"self_attn.{proj}_proj.bias"
            if key in sd:
                bias = sd[key]
                if permute and proj in "qk":
                    bias = permute_qk(bias, nh, nh if proj == "q" else nkv)
                T(b + g + ".bias", bias)
        T(b + "attn_output.weight", sd[p + "self_attn.o_proj.weight"])
        T(b + "ffn_norm.weight", sd[p + "post_attention_layernorm.weight"])
        T(b + "ffn_gate.weight", sd[p + "mlp.gate_proj.weight"])
        T(b + "ffn_up.weight", sd[p + "mlp.up_proj.weight"])
        T(b + "ffn_down.weight", sd[p + "mlp.down_proj.weight"])
    T("output_norm.weight", sd["model.norm.weight"])
    if not cfg.tie_word_embeddings:
        T("output.weight", sd["lm_head.weight"])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def gguf_forward(path, tokens, rope_mode):
    """Independent numpy forward pass of a llama/qwen2 GGUF with llama.cpp
    semantics: rope_mode 'norm' = rotate consecutive pairs (2i, 2i+1),
    'neox' = rotate (i, i + d/2); theta_i = p * base^(-2i/d) / rope_freqs[i]."""
    r = gguf.GGUFReader(path)
    arch = bytes(r.fields["general.architecture"].parts[-1]).decode()

    def kv(key):
        f = r.fields[f"{arch}.{key}"]
        return f.parts[f.data[0]][0].item()

    # GGUF ne = reversed numpy shape: tensor.data is already [out, in]
    t = {x.name: np.array(x.data, dtype=np.float64).reshape([int(n) for n in reversed(x.shape)])
         for x in r.tensors}
    H, L = kv("embedding_length"), kv("block_count")
    nh, nkv, eps = kv("attention.head_count"), kv("attention.head_count_kv"), kv("attention.layer_norm_rms_epsilon")
    base = kv("rope.freq_base")
    hd = H // nh
    ff = t.get("rope_freqs.weight", np.ones(hd // 2))
    Tn = len(tokens)
    pos = np.arange(Tn)[:, None]
    theta = pos * base ** (-np.arange(0, hd, 2) / hd)[None, :] / ff[None, :]
    cos, sin = np.cos(theta), np.sin(theta)

    def rope(x):  # x [T, heads, hd]
        y = x.copy()
        if rope_mode == "norm":
            a, b = x[..., 0::2], x[..., 1::2]
            y[..., 0::2] = a * cos[:, None] - b * sin[:, None]
            y[..., 1::2] = a * sin[:, None] + b * cos[:, None]
        else:
            a, b = x[..., : hd // 2], x[..., hd // 2:]
            y[..., : hd // 2] = a * cos[:, None] - b * sin[:, None]
            y[..., hd // 2:] = a * sin[:, None] + b * cos[:, None]
        return y

    def rms(x, w):
        return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * w

    def lin(x, name):
        y = x @ t[name + ".weight"].T
        return y + t[name + ".bias"] if name + ".bias" in t else y

    x = t["token_embd.weight"][tokens]
    mask = np.triu(np.full((Tn, Tn), -np.inf), 1)
    for i in range(L):
        b = f"blk.{i}."
        h = rms(x, t[b + "attn_norm.weight"])
        q = rope(lin(h, b + "attn_q").reshape(Tn, nh, hd))
        k = rope(lin(h, b + "attn_k").reshape(Tn, nkv, hd))
        v = lin(h, b + "attn_v").reshape(Tn, nkv, hd)
        k = np.repeat(k, nh // nkv, axis=1)
        v = np.repeat(v, nh // nkv, axis=1)
        s = np.einsum("qhd,khd->hqk", q, k) / math.sqrt(hd) + mask
        s = np.exp(s - s.max(-1, keepdims=True))
        s /= s.sum(-1, keepdims=True)
        o = np.einsum("hqk,khd->qhd", s, v).reshape(Tn, H)
        x = x + lin(o, b + "attn_output")
        h = rms(x, t[b + "ffn_norm.weight"])
        gt = lin(h, b + "ffn_gate")
        x = x + lin(gt / (1 + np.exp(-gt)) * lin(h, b + "ffn_up"), b + "ffn_down")
    x = rms(x, t["output_norm.weight"])
    out = t.get("output.weight", t["token_embd.weight"])
    return x @ out.T


def gguf_fixture(name, hf_name, model, tokens, logits, arch, permute, rope_mode, notes):
    path = os.path.join(OUT, f"{hf_name}.gguf")
    write_gguf(path, arch, model, permute)
    np_logits = gguf_forward(path, tokens, rope_mode)
    err = np.abs(np_logits - logits.double().numpy()).max()
    print(f"  {name}: numpy llama.cpp-semantics forward vs HF logits max|Δ| = {err:.3g}")
    assert err < 1e-3, name
    refj = {
        "arch": arch,
        "gguf_file": f"{hf_name}.gguf",
        "tokens": tokens,
        "logits_file": f"{hf_name}/logits.f32",
        "shape": list(logits.shape),
        "dtype": "float32",
        "gguf_version": "gguf-py " + GGUF_VERSION,
        "transformers_version": transformers.__version__,
        "torch_version": torch.__version__,
        "notes": notes,
    }
    with open(os.path.join(OUT, f"{name}.json"), "w") as f:
        json.dump(refj, f, indent=2)
        f.write("\n")


# --------------------------------------------------------------------------
# model definitions
# --------------------------------------------------------------------------

def llama_kwargs():
    return dict(
        vocab_size=320, hidden_size=64, intermediate_size=160, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
        rms_norm_eps=1e-5, tie_word_embeddings=False, hidden_act="silu",
        rope_parameters=dict(LLAMA3_ROPE, rope_theta=500000.0),
        bos_token_id=1, eos_token_id=2,
    )


def emb_std_for(cfg, gemma):
    # tied heads reuse the embedding as output projection: keep it smaller so
    # logits stay in the ~1..10 range (Gemma additionally scales by sqrt(H))
    if gemma:
        return 0.2
    return 0.25 if getattr(cfg, "tie_word_embeddings", False) else 0.5


def build(cls, kwargs, seed, gemma=False):
    torch.manual_seed(seed)
    cfg = cls.config_class(**kwargs)
    cfg._attn_implementation = "eager"
    m = cls(cfg)
    reinit_(m, seed, gemma_norms=gemma, emb_std=emb_std_for(cfg, gemma))
    m.eval()
    return m


def legacy_llama_config(cfg):
    """transformers<5 layout: rope_theta + rope_scaling at top level,
    torch_dtype instead of dtype."""
    rp = dict(cfg.pop("rope_parameters"))
    cfg["rope_theta"] = rp.pop("rope_theta")
    cfg["rope_scaling"] = rp
    if "dtype" in cfg:
        cfg["torch_dtype"] = cfg.pop("dtype")
    return cfg


def main():
    os.makedirs(OUT, exist_ok=True)
    print(f"transformers {transformers.__version__}  torch {torch.__version__}  "
          f"gguf {GGUF_VERSION}  numpy {np.__version__}")
    summary = {}

    # 1. llama (f32) ---------------------------------------------------------
    kw = llama_kwargs()
    m = build(LlamaForCausalLM, kw, seed=1)
    toks = tokens_for(1, kw["vocab_size"], 20)
    check_llama3_rope(m)
    llama_ref, llama_logits = save_model(
        "llama", m, toks,
        notes="LlamaForCausalLM f32, GQA 4q/2kv heads, head_dim 16, untied lm_head, "
              "llama3 rope scaling (original_max_position_embeddings=64 so pair 0 is "
              "unscaled, pair 1 smoothed, pairs 2-7 divided by 8). HF rotate-half rope.")
    summary["llama"] = llama_logits.abs().max().item()

    # 2. llama_bf16 ----------------------------------------------------------
    m = build(LlamaForCausalLM, kw, seed=2)
    toks = tokens_for(2, kw["vocab_size"], 22)
    _, lg = save_model(
        "llama_bf16", m, toks, save_dtype=torch.bfloat16,
        notes="Same architecture as llama, seed 2, safetensors hold BF16. Logits = "
              "BF16 weights upcast to f32, model run in f32.")
    summary["llama_bf16"] = lg.abs().max().item()

    # 3. llama_f16 (also: legacy pre-v5 config.json layout) -------------------
    m = build(LlamaForCausalLM, kw, seed=3)
    toks = tokens_for(3, kw["vocab_size"], 18)
    _, lg = save_model(
        "llama_f16", m, toks, save_dtype=torch.float16, legacy_config=legacy_llama_config,
        notes="Same architecture as llama, seed 3, safetensors hold F16. Logits = F16 "
              "weights upcast to f32, run in f32. config.json deliberately rewritten in the "
              "transformers<5 layout (top-level rope_theta + rope_scaling, torch_dtype) that "
              "most Hub checkpoints use; transformers reloads it to identical logits.")
    summary["llama_f16"] = lg.abs().max().item()

    # 4. mistral (sliding window 5) ------------------------------------------
    mkw = dict(
        vocab_size=352, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
        rms_norm_eps=1e-5, sliding_window=5, tie_word_embeddings=False,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
    )
    m = build(MistralForCausalLM, mkw, seed=4)
    toks = tokens_for(4, mkw["vocab_size"], 20)
    _, lg = save_model(
        "mistral", m, toks,
        notes="MistralForCausalLM, sliding_window=5 applied in eager attention (verified: "
              "identical to the no-window model for positions 0..4, different from 5 on). "
              "Query i attends keys j with i-5 < j <= i (5 keys incl. itself).")
    window_check("mistral", MistralForCausalLM, dict(mkw, sliding_window=None), 4, toks, 5, lg)
    summary["mistral"] = lg.abs().max().item()

    # 5. qwen2 (qkv bias, tied) ----------------------------------------------
    qkw = dict(
        vocab_size=304, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
        rms_norm_eps=1e-6, tie_word_embeddings=True, use_sliding_window=False,
        rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
    )
    m = build(Qwen2ForCausalLM, qkw, seed=5)
    toks = tokens_for(5, qkw["vocab_size"], 19)
    qwen_ref, qwen_logits = save_model(
        "qwen2", m, toks,
        notes="Qwen2ForCausalLM: q/k/v biases (no o_proj bias), tied embeddings (no "
              "lm_head.weight in safetensors), GQA, rope_theta 1e6, no sliding window.")
    summary["qwen2"] = qwen_logits.abs().max().item()

    # 6. opt -------------------------------------------------------------------
    okw = dict(
        vocab_size=300, hidden_size=64, ffn_dim=128, num_hidden_layers=2,
        num_attention_heads=4, do_layer_norm_before=True, word_embed_proj_dim=64,
        max_position_embeddings=64, activation_function="relu", enable_bias=True,
        dropout=0.0, attention_dropout=0.0, pad_token_id=1, bos_token_id=2, eos_token_id=2,
    )
    m = build(OPTForCausalLM, okw, seed=6)
    toks = tokens_for(6, okw["vocab_size"], 17)
    _, lg = save_model(
        "opt", m, toks,
        notes="OPTForCausalLM pre-LN (self_attn_layer_norm before attn, per-layer final_layer_norm "
              "before fc1/fc2, decoder.final_layer_norm at the end), q scaled by head_dim^-0.5 "
              "after adding q bias, ReLU, biases everywhere, learned positions: row "
              "(position + 2) of embed_positions (shape [max_pos+2, H]); lm_head tied to "
              "embed_tokens; no project_in/out (word_embed_proj_dim == hidden_size).")
    summary["opt"] = lg.abs().max().item()

    # 7. gpt2 --------------------------------------------------------------------
    gkw = dict(
        vocab_size=320, n_embd=64, n_layer=2, n_head=4, n_positions=64,
        activation_function="gelu_new", resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
        layer_norm_epsilon=1e-5,
    )
    m = build(GPT2LMHeadModel, gkw, seed=7)
    toks = tokens_for(7, gkw["vocab_size"], 21)
    _, lg = save_model(
        "gpt2", m, toks,
        notes="GPT2LMHeadModel: Conv1D weights stored [in, out] (transpose of nn.Linear), "
              "fused c_attn [64, 192] = q|k|v, n_inner null -> 4*n_embd, gelu_new, tied "
              "lm_head (no lm_head.weight in file). Tensor names carry the 'transformer.' prefix "
              "(transformer.wte/wpe/h.N.*/ln_f); the original openai-community/gpt2 checkpoint "
              "has them WITHOUT it, so a loader should accept both.")
    summary["gpt2"] = lg.abs().max().item()

    # 8. phi ---------------------------------------------------------------------
    pkw = dict(
        vocab_size=336, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, max_position_embeddings=64, hidden_act="gelu_new",
        partial_rotary_factor=0.5, layer_norm_eps=1e-5, tie_word_embeddings=False,
        resid_pdrop=0.0, embd_pdrop=0.0, attention_dropout=0.0, qk_layernorm=False,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0,
                         "partial_rotary_factor": 0.5},
    )
    m = build(PhiForCausalLM, pkw, seed=8)
    toks = tokens_for(8, pkw["vocab_size"], 20)
    _, lg = save_model(
        "phi", m, toks,
        notes="PhiForCausalLM: parallel residual x + attn(ln(x)) + mlp(ln(x)) with one "
              "LayerNorm (input_layernorm, with bias); partial rotary: first 8 of 16 head "
              "dims rotated rotate-half style (pairs (i, i+4), i<4), dims 8..15 pass through; "
              "inv_freq uses dim=8: theta^(-2i/8). o_proj is 'dense'; mlp fc1/fc2 gelu_new; "
              "final_layernorm with bias; untied lm_head WITH bias.")
    summary["phi"] = lg.abs().max().item()

    # 9. gemma3 ------------------------------------------------------------------
    ekw = dict(
        vocab_size=288, hidden_size=64, intermediate_size=128, num_hidden_layers=3,
        num_attention_heads=4, num_key_value_heads=2, head_dim=16,
        max_position_embeddings=128, rms_norm_eps=1e-6, sliding_window=5,
        layer_types=["sliding_attention", "sliding_attention", "full_attention"],
        query_pre_attn_scalar=16, hidden_activation="gelu_pytorch_tanh",
        tie_word_embeddings=True, final_logit_softcapping=None, attn_logit_softcapping=None,
        rope_parameters={
            "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
            "full_attention": {"rope_type": "default", "rope_theta": 1000000.0},
        },
        pad_token_id=0, bos_token_id=2, eos_token_id=1,
    )
    m = build(Gemma3ForCausalLM, ekw, seed=9, gemma=True)
    toks = tokens_for(9, ekw["vocab_size"], 20)
    _, lg = save_model(
        "gemma3", m, toks,
        notes="Gemma3ForCausalLM (gemma3_text): layers 0,1 sliding (window 5, local rope "
              "theta 1e4), layer 2 full (rope theta 1e6); embeddings * sqrt(64)=8 (cast to "
              "weight dtype); RMSNorm x*(1+w) computed in f32, weights drawn around 0; q_norm "
              "and k_norm over head_dim before rope; 4 norms/block (input, post_attention, "
              "pre_feedforward, post_feedforward); attn scale query_pre_attn_scalar^-0.5; "
              "gelu_pytorch_tanh GeGLU; tied lm_head; no softcapping.")
    window_check("gemma3", Gemma3ForCausalLM, dict(ekw, sliding_window=1000), 9, toks, 5, lg)
    summary["gemma3"] = lg.abs().max().item()

    # 10. GGUF -------------------------------------------------------------------
    gguf_fixture(
        "llama_gguf", "llama", llama_ref, tokens_for(1, kw["vocab_size"], 20),
        llama_logits, "llama", permute=True, rope_mode="norm",
        notes="Same weights as models/llama, F32 GGUF as convert_hf_to_gguf.py writes it: "
              "attn_q/attn_k rows permuted (llama.cpp NORM rope on consecutive pairs); "
              "rope_freqs.weight holds llama3 per-pair divisors (theta_i = p*base^(-2i/d)/f_i).")
    gguf_fixture(
        "qwen2_gguf", "qwen2", qwen_ref, tokens_for(5, qkw["vocab_size"], 19),
        qwen_logits, "qwen2", permute=False, rope_mode="neox",
        notes="Same weights as models/qwen2, F32 GGUF arch qwen2: NO q/k permutation (NEOX "
              "rope = HF rotate-half), attn_{q,k,v}.bias present, tied -> no output.weight "
              "(use token_embd.weight).")

    print("max |logit| per model:")
    for k, v in summary.items():
        print(f"  {k:12s} {v:.4f}")
    total = 0
    print("files:")
    for root, _, files in sorted(os.walk(OUT)):
        for fn in sorted(files):
            p = os.path.join(root, fn)
            sz = os.path.getsize(p)
            total += sz
            print(f"  {os.path.relpath(p, HERE):45s} {sz:9d}")
    print(f"total {total} bytes")
    assert total < 5 * 1024 * 1024


if __name__ == "__main__":
    sys.exit(main())
