#!/usr/bin/env python3
"""recall_reference.py - is associative recall learnable at the built-in model's size?

Not a fixture and not part of `make test`: the runs behind the "synthetic recall"
paragraph of datasets/builtin/README.md, kept so the figures can be rerun.

  python3 tests/reference/recall/recall_reference.py data OUT
      writes OUT/train.txt and OUT/valid.txt: paragraphs of three "memory games"
      whose second list repeats the first in a shuffled order, key before value
      ("Tom says: cup red, kite blue. Mia says: kite blue, cup red."), seed 1.
  python3 tests/reference/recall/recall_reference.py torch OUT TOKENIZER_JSON STEPS
      trains the built-in model's shape (datasets/builtin/train.json: d 192, 4 layers,
      6 heads over 2 KV heads, ff 512, tied head) with slimbench's recipe (normal 0.02
      init, 0.02/sqrt(8) for o_proj and down_proj, AdamW betas 0.9/0.95, lr 3e-3, 100
      warmup steps then cosine to 10 %, decay 0.1 on matrices, clip 1.0, batch 8 x 256)
      in PyTorch + transformers and prints the validation loss every 250 steps.
  python3 tests/reference/recall/recall_reference.py measure OUT MODEL_DIR TOKENIZER_JSON
      the same validation measure (16 windows of 256 tokens) for a model folder, e.g.
      one from `slimbench train --config CFG --data OUT/train.txt --valid OUT/valid.txt
      --tokenizer DIR --out MODEL_DIR --threads 2` with CFG = train.json, "steps": 3000.
"""
import math
import os
import random
import sys

NAMES = "Tom Sam Ben Leo Jack Dan Paul Tim Ned Finn Hugo Owen Mia Anna Lily Emma Sara Kate Lucy Rosa Nora Eva Ruby Zoe".split()
THINGS = "dog cat bird rabbit horse duck frog goat kite ball hat cup book box bike scarf".split()
COLOURS = "red blue green yellow brown black white pink orange grey".split()


def game(r):
    a, b = r.sample(NAMES, 2)
    things = r.sample(THINGS, r.randint(4, 7))
    colour = {t: r.choice(COLOURS) for t in things}
    again = things[:]
    r.shuffle(again)
    first = ", ".join(f"{t} {colour[t]}" for t in things)
    second = ", ".join(f"{t} {colour[t]}" for t in again)
    return f"{a} and {b} play a memory game. {a} says: {first}. {b} says: {second}."


def write_data(out):
    r = random.Random(1)
    paras = [" ".join(game(r) for _ in range(3)) for _ in range(12000)]
    os.makedirs(out, exist_ok=True)
    open(os.path.join(out, "train.txt"), "w").write("\n\n".join(paras[:11000]) + "\n")
    open(os.path.join(out, "valid.txt"), "w").write("\n\n".join(paras[11000:]) + "\n")


def valid_loss(model, ids, T=256, windows=16):
    import torch
    model.eval()
    total = 0.0
    with torch.no_grad():
        for w in range(windows):
            x = ids[w * T:(w + 1) * T + 1]
            total += torch.nn.functional.cross_entropy(model(x[None, :-1]).logits[0], x[1:]).item()
    model.train()
    return total / windows


def encode(tok_json, path):
    import torch
    from tokenizers import Tokenizer
    tok = Tokenizer.from_file(tok_json)
    return tok, torch.tensor(tok.encode(open(path).read()).ids)


def train_torch(out, tok_json, steps):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM
    torch.manual_seed(1)
    torch.set_num_threads(2)
    tok, tr = encode(tok_json, os.path.join(out, "train.txt"))
    _, va = encode(tok_json, os.path.join(out, "valid.txt"))
    cfg = LlamaConfig(vocab_size=tok.get_vocab_size(), hidden_size=192, intermediate_size=512, num_hidden_layers=4,
                      num_attention_heads=6, num_key_value_heads=2, head_dim=32, max_position_embeddings=256,
                      rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=True)
    model = LlamaForCausalLM(cfg)
    for name, p in model.named_parameters():
        if p.dim() == 1:
            torch.nn.init.ones_(p)
        else:
            torch.nn.init.normal_(p, std=0.02 / math.sqrt(8) if ("o_proj" in name or "down_proj" in name) else 0.02)
    decay = [p for p in model.parameters() if p.dim() > 1]
    no_decay = [p for p in model.parameters() if p.dim() == 1]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=3e-3, betas=(0.9, 0.95), eps=1e-8)
    B, T, warmup, lr = 8, 256, 100, 3e-3
    for s in range(steps):
        if s < warmup:
            rate = lr * (s + 1) / warmup
        else:
            f = min(1.0, (s - warmup) / max(1, steps - warmup - 1))
            rate = lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * f)))
        for g in opt.param_groups:
            g["lr"] = rate
        off = torch.randint(0, len(tr) - T - 1, (B,))
        x = torch.stack([tr[o:o + T + 1] for o in off])
        loss = torch.nn.functional.cross_entropy(model(x[:, :-1]).logits.reshape(-1, cfg.vocab_size), x[:, 1:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if (s + 1) % 250 == 0:
            print(f"step {s + 1} valid {valid_loss(model, va):.4f}", flush=True)


def measure(out, model_dir, tok_json):
    import torch
    from transformers import LlamaForCausalLM
    torch.set_num_threads(2)
    _, va = encode(tok_json, os.path.join(out, "valid.txt"))
    model = LlamaForCausalLM.from_pretrained(model_dir, torch_dtype=torch.float32)
    print(f"{model_dir}: valid {valid_loss(model, va):.4f}")


if __name__ == "__main__":
    cmd = sys.argv[1] if len(sys.argv) > 1 else ""
    if cmd == "data":
        write_data(sys.argv[2])
    elif cmd == "torch":
        train_torch(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    elif cmd == "measure":
        measure(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        sys.exit(__doc__)
