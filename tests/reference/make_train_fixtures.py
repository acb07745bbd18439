#!/usr/bin/env python3
"""PyTorch reference for slimbench's training code (tests/test_train.c).

Run from the repository root:

    python3 tests/reference/make_train_fixtures.py

For each tiny LlamaForCausalLM below (fixed weights, f32) writes
tests/reference/train/<name>/:
  config.json, model.safetensors   save_pretrained: the folder the C test loads
  grads.safetensors                d(loss)/d(param) for the fixed tokens
  step1.safetensors                the weights after one torch.optim.AdamW step
  fixture.json                     tokens, loss, and the optimizer settings

loss = mean over the B*T positions of cross_entropy(logits[b, t], tokens[b, t + 1])
on inputs tokens[:, :T] (B = 2, T = 8; B = 4, T = 200 for llama_long).  AdamW: betas (0.9, 0.95), eps 1e-8, weight decay
on matrices only (two parameter groups), no gradient clipping.  Weights are
drawn wider than a fresh init (std 0.2, norm weights in [0.5, 1.5]) so every
gradient is well away from zero.  Deterministic: CPU, one thread.
"""

import json
import os

import torch
import transformers
from safetensors.torch import save_file
from transformers import LlamaConfig, LlamaForCausalLM

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "train")
torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)
transformers.logging.set_verbosity_error()

LR, WD, BETAS, EPS = 1e-2, 0.1, (0.9, 0.95), 1e-8
B_DEFAULT, T_DEFAULT = 2, 8

MODELS = {
    # GQA (2 query heads share 1 key-value head), separate head
    "llama_gqa": dict(tie_word_embeddings=False, num_attention_heads=2, num_key_value_heads=1),
    # multi-head attention, head tied to the embedding
    "llama_tied": dict(tie_word_embeddings=True, num_attention_heads=4, num_key_value_heads=4),
    # the built-in model's head layout (6 query heads over 2 key-value heads, tied head) over a
    # long sequence: attention and rotary gradients at distances up to 199 positions
    "llama_long": dict(tie_word_embeddings=True, hidden_size=48, num_attention_heads=6, num_key_value_heads=2,
                       head_dim=8, max_position_embeddings=256, T=200, B=4),
}


def build(name, extra, seed):
    shape = dict(vocab_size=40, hidden_size=16, intermediate_size=24, num_hidden_layers=2, max_position_embeddings=32)
    shape.update({k: v for k, v in extra.items() if k not in ("T", "B")})
    cfg = LlamaConfig(rms_norm_eps=1e-5, rope_theta=10000.0, hidden_act="silu", attention_bias=False, mlp_bias=False,
                      **shape)
    cfg._attn_implementation = "eager"
    torch.manual_seed(seed)
    model = LlamaForCausalLM(cfg).float().eval()
    with torch.no_grad():
        for pname, p in model.named_parameters():
            if p.dim() == 1:
                p.uniform_(0.5, 1.5)
            else:
                p.normal_(0.0, 0.2)
    return model


def loss_of(model, tokens):
    T = tokens.shape[1] - 1
    logits = model(input_ids=tokens[:, :T]).logits.float()
    return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), tokens[:, 1:].reshape(-1))


def main():
    for i, (name, extra) in enumerate(MODELS.items()):
        d = os.path.join(OUT, name)
        os.makedirs(d, exist_ok=True)
        model = build(name, extra, seed=100 + i)
        model.save_pretrained(d, safe_serialization=True)
        g = torch.Generator().manual_seed(7 + i)
        T, B = extra.get("T", T_DEFAULT), extra.get("B", B_DEFAULT)
        tokens = torch.randint(0, 40, (B, T + 1), generator=g)
        loss = loss_of(model, tokens)
        loss.backward()
        named = dict(model.named_parameters())  # tied: lm_head.weight is not listed twice
        save_file({n: p.grad.detach().clone().contiguous() for n, p in named.items()},
                  os.path.join(d, "grads.safetensors"))
        decay = [p for p in named.values() if p.dim() >= 2]
        no_decay = [p for p in named.values() if p.dim() < 2]
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": WD}, {"params": no_decay, "weight_decay": 0.0}],
                                lr=LR, betas=BETAS, eps=EPS, foreach=False)
        opt.step()
        save_file({n: p.detach().clone().contiguous() for n, p in named.items()},
                  os.path.join(d, "step1.safetensors"))
        with open(os.path.join(d, "fixture.json"), "w") as f:
            json.dump({"tokens": tokens.tolist(), "B": B, "T": T, "loss": loss.item(), "lr": LR,
                       "weight_decay": WD, "betas": list(BETAS), "eps": EPS,
                       "torch": torch.__version__, "transformers": transformers.__version__}, f, indent=1)
        for fn in ("generation_config.json",):
            p = os.path.join(d, fn)
            if os.path.exists(p):
                os.remove(p)
        print(name, "loss", loss.item())


if __name__ == "__main__":
    main()
