#!/usr/bin/env python3
"""Reference values for the perplexity and kld tasks (tests/test_perplexity.c,
tests/test_kld.c).

Run from the repository root (CPU only, about a minute):

    python3 tests/reference/make_task_fixtures.py

Writes tests/reference/tasks/:
  text.raw          excerpts of three articles of WikiText-2 (wiki.test.raw),
                    CC BY-SA 3.0 (Merity et al. 2016, from Wikipedia), bytes as
                    they are in ../shared/data/wikitext-2-raw/wiki.test.raw
  docs.jsonl        three short documents, one JSON object per line
  model/            tiny LlamaForCausalLM (hidden 64, 2 layers, tied head,
                    float32) with a byte-level BPE tokenizer.json of 512 tokens
                    trained here on wiki.test.raw, briefly trained on it too so
                    its predictions are far from uniform
  model_rtn/        the same model with every linear weight rounded to 4 bits
                    (symmetric, per output row), stored as float16
  expected.json     every figure the C tests check, computed below with
                    PyTorch from logits of the models reloaded from disk

Each protocol is written out here from PROTOCOLS.md independently of the C
code; lm-eval's own get_rolling_token_windows, make_disjoint_window and
wikitext_detokenizer are imported when lm-eval is installed (pip install
lm-eval) and the script stops if they are not.
"""

import json
import math
import os
import re
import shutil

import numpy as np
import torch
import transformers
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import LlamaConfig, LlamaForCausalLM

from lm_eval.tasks.wikitext.preprocess_wikitext import wikitext_detokenizer
from lm_eval.utils import get_rolling_token_windows, make_disjoint_window

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "tasks")
WIKI = os.path.join(HERE, "..", "..", "..", "shared", "data", "wikitext-2-raw", "wiki.test.raw")

torch.manual_seed(0)
torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)
transformers.logging.set_verbosity_error()

VOCAB = 512


# ---- data -----------------------------------------------------------------

def article_excerpts(raw):
    """The first three articles, each cut at a line boundary after ~6 KB."""
    lines = raw.split("\n")
    starts = [i for i, l in enumerate(lines) if is_top_heading(l)]
    out = []
    for a in range(3):
        chunk, size = [], 0
        for l in lines[starts[a]:starts[a + 1]]:
            if size > 6000:
                break
            chunk.append(l)
            size += len(l.encode()) + 1
        out.append("\n".join(chunk) + "\n")
    return " \n" + "".join(out)   # the file's own preamble line, dropped by the splitter


def is_top_heading(line):
    return len(line) > 6 and line.startswith(" = ") and line[3] != "=" and line.endswith(" = ") and line[-4] != "="


def split_wikitext(text):
    """Documents the way datasets/text_dataset.c splits a raw WikiText file."""
    lines = text.split("\n")
    offs, o = [], 0
    for l in lines:
        offs.append(o)
        o += len(l) + 1
    docs, start = [], 0
    for i, l in enumerate(lines):
        if offs[i] > start and is_top_heading(l):
            if docs or text[start:offs[i]].strip():
                docs.append(text[start:offs[i]])
            start = offs[i]
    if text[start:].strip() or docs:
        docs.append(text[start:])
    return docs


JSONL_DOCS = [
    "The quick brown fox jumps over the lazy dog. It was a cold day in the city, and the river was frozen.",
    "  Tom 's house ( built in 1900 ) stands on the hill ; it has \" two floors \" and a garden .\n",
    "Numbers such as 1 @,@ 000 and 3 @.@ 5 appear in the text , as do words like re @-@ use .",
]


# ---- tokenizer and models ------------------------------------------------------

def make_tokenizer(raw):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=VOCAB, special_tokens=["<s>", "</s>", "<pad>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator([raw[i:i + 4096] for i in range(0, len(raw), 4096)], trainer)
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 0)])
    return tok


def train(model, ids, steps=300, seq=64):
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(1)
    data = torch.tensor(ids)
    for _ in range(steps):
        starts = torch.randint(0, len(ids) - seq - 1, (16,), generator=g)
        batch = torch.stack([data[s:s + seq + 1] for s in starts])
        loss = model(input_ids=batch[:, :-1], labels=batch[:, :-1]).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    return float(loss)


def rtn4(w):
    scale = w.abs().amax(dim=1, keepdim=True) / 7
    return (torch.clamp(torch.round(w / scale), -8, 7) * scale)


def save_model(model, tok, path, dtype):
    model.to(dtype).save_pretrained(path, safe_serialization=True)
    model.to(torch.float32)
    tok.save(os.path.join(path, "tokenizer.json"))
    with open(os.path.join(path, "tokenizer_config.json"), "w") as f:
        json.dump({"bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>", "add_bos_token": True,
                   "add_eos_token": False, "model_max_length": 128}, f, indent=1)


def load(path):
    m = LlamaForCausalLM.from_pretrained(path, dtype=torch.float32, attn_implementation="eager")
    return m.eval()


def logits_of(model, ids):
    with torch.no_grad():
        return model(input_ids=torch.tensor([ids])).logits[0].double()


def nll_rows(model, inp, targets):
    """NLL of targets[k] from the logits at the last len(targets) positions of inp."""
    lp = torch.log_softmax(logits_of(model, inp), dim=-1)
    k = len(targets)
    return [-float(lp[len(inp) - k + i, t]) for i, t in enumerate(targets)]


# ---- protocols ------------------------------------------------------------------

def stats(nll):
    a = np.array(nll, dtype=np.float64)
    n = len(a)
    m = a.sum() / n
    v = (a * a).sum() / n - m * m
    se = math.sqrt(v / (n - 1))
    return m, se, n


def gptq(model, ids, seq, pad=None):
    nw = len(ids) // seq
    per_window, all_nll, keep = [], [], []
    for i in range(nw):
        w = ids[i * seq:(i + 1) * seq]
        nll = nll_rows(model, w[:-1], w[1:])
        k = [t != pad for t in w[1:]] if pad else [True] * (seq - 1)
        sel = [x for x, kk in zip(nll, k) if kk]
        per_window.append(sum(sel) / len(sel))
        all_nll += sel
    m, se, n = stats(all_nll)
    mean = m if pad is None else sum(per_window) / len(per_window)
    return {"ppl": math.exp(mean), "ppl_stderr": math.exp(mean) * se, "nll": mean, "tokens": n, "windows": nw}


def llamacpp(model, ids, n_ctx, bos):
    nc = len(ids) // n_ctx
    first = n_ctx // 2
    nll, running = [], []
    for c in range(nc):
        chunk = list(ids[c * n_ctx:(c + 1) * n_ctx])
        chunk[0] = bos
        nll += nll_rows(model, chunk[:first] + chunk[first:n_ctx - 1], chunk[first + 1:])[-(n_ctx - first - 1):]
        running.append(math.exp(sum(nll) / len(nll)))
    m, se, n = stats(nll)
    return {"ppl": math.exp(m), "ppl_stderr": math.exp(m) * se, "nll": m, "tokens": n, "chunks": nc,
            "running": running}, nll


def lm_eval_rolling(model, tok, docs, L, version, detok):
    bos, eos = tok.token_to_id("<s>"), tok.token_to_id("</s>")
    prefix = eos if version == "0.4.0-0.4.2" else bos
    add_special = version == "0.4.9.2+"
    ll_total, words, nbytes, ntok, nwin = 0.0, 0, 0, 0, 0
    for page in docs:
        text = wikitext_detokenizer({"page": page}) if detok else page
        t = tok.encode(text, add_special_tokens=add_special).ids
        for ctx, cont in map(make_disjoint_window, get_rolling_token_windows(t, prefix, L, 1)):
            inp = (ctx + cont)[-(L + 1):][:-1]
            ll_total -= sum(nll_rows(model, inp, cont))
            nwin += 1
        ntok += len(t)
        words += len(re.split(r"\s+", page))
        nbytes += len(page.encode("utf-8"))
    return {"word_perplexity": math.exp(-ll_total / words), "byte_perplexity": math.exp(-ll_total / nbytes),
            "bits_per_byte": -ll_total / (nbytes * math.log(2)), "ppl": math.exp(-ll_total / ntok),
            "tokens": ntok, "windows": nwin, "documents": len(docs), "words": words, "bytes": nbytes}


# ---- KLD the llama.cpp way (float32 where it uses float) ---------------------------

def encode_base_row(l):
    l = l.astype(np.float32)
    mx, mn = np.float32(l.max()), np.float32(l.min())
    mn = np.float32(max(mn, mx - np.float32(16)))
    s = np.exp(l - mx).astype(np.float64).sum()
    lse = np.float32(math.log(s))
    minlp = np.float32(mn - mx - lse)
    scale = np.float32((mx - mn) / np.float32(65535))
    inv = np.float32(1) / scale
    codes = np.where(l > mn, np.rint(np.float32(inv) * (l - mn)), 0).astype(np.uint16)
    return scale, minlp, codes


def compare_row(l, scale, minlp, codes, tok):
    l = l.astype(np.float32)
    mx = np.float32(l.max())
    imax = int(np.argmax(l))
    lse = np.float32(math.log(np.exp(l - mx).astype(np.float64).sum()))
    nll = np.float32(mx + lse - l[tok])
    lpb = (scale * codes.astype(np.float32) + minlp).astype(np.float32)
    nll_base = np.float32(-lpb[tok])
    norm = np.float32(mx + lse)
    sel = lpb > np.float32(-16)
    kld = float((np.exp(lpb[sel]).astype(np.float64) * (lpb[sel] - l[sel] + norm).astype(np.float64)).sum())
    dp = np.float32(np.exp(-nll) - np.exp(-nll_base))
    return float(nll), float(nll_base), kld, float(dp), imax == int(np.argmax(lpb))


def percentile(v, f):
    f = np.float32(f)
    if f <= 0:
        return float(v[0])
    if f >= 1:
        return float(v[-1])
    p = np.float32(f * np.float32(len(v) - 1))
    ip = int(p)
    p = np.float32(p - np.float32(ip))
    return float((np.float32(1) - p) * v[ip] + p * v[min(ip + 1, len(v) - 1)])


def median(v):
    n = len(v)
    return float(np.float32(0.5) * (v[n // 2] + v[n // 2 - 1])) if n % 2 == 0 else float(v[n // 2])


def kld_stats(base_model, model, ids, n_ctx, bos):
    nc, first = len(ids) // n_ctx, n_ctx // 2
    rows = []
    for c in range(nc):
        chunk = list(ids[c * n_ctx:(c + 1) * n_ctx])
        chunk[0] = bos
        lb = logits_of(base_model, chunk[:-1]).float().numpy()
        lq = logits_of(model, chunk[:-1]).float().numpy()
        for pos in range(first, n_ctx - 1):
            s, m, codes = encode_base_row(lb[pos])
            rows.append(compare_row(lq[pos], s, m, codes, chunk[pos + 1]))
    a = np.array([r[:4] for r in rows], dtype=np.float64)
    n = len(rows)

    def mu(x, x2):
        f = x.sum() / n
        d = x2.sum() / n - f * f
        return f, (math.sqrt(d / (n - 1)) if d > 0 and n > 10 else 0.0)

    nll, nllb, kld, dp = a[:, 0], a[:, 1], a[:, 2], a[:, 3]
    q, b = mu(nll, nll * nll), mu(nllb, nllb * nllb)
    cov = ((nll * nllb).sum() / n - (nll.sum() / n) * (nllb.sum() / n)) / (n - 1)
    k = mu(kld, kld * kld)
    d = mu(dp, dp * dp)
    mse = mu(dp * dp, dp ** 4)
    kv = np.sort(kld.astype(np.float32))
    dv = np.sort(dp.astype(np.float32))
    same = sum(r[4] for r in rows) / n
    rms = math.sqrt(mse[0])
    lr = q[0] - b[0]
    lr_unc = math.sqrt(q[1] ** 2 + b[1] ** 2 - 2 * cov)
    return {
        "tokens": n, "chunks": nc,
        "kld": k[0], "kld_stderr": k[1], "kld_max": float(kv[-1]), "kld_p99": percentile(kv, 0.99),
        "kld_p90": percentile(kv, 0.9), "kld_median": median(kv), "kld_p10": percentile(kv, 0.1),
        "dp_mean": 100 * d[0], "dp_mean_stderr": 100 * d[1], "dp_p99": 100 * percentile(dv, 0.99),
        "dp_p1": 100 * percentile(dv, 0.01), "dp_median": 100 * median(dv), "dp_max": 100 * float(dv[-1]),
        "dp_min": 100 * float(dv[0]), "dp_rms": 100 * rms, "dp_rms_stderr": 100 * 0.5 / rms * mse[1] if rms else 0.0,
        "top1_agree": 100 * same, "top1_agree_stderr": 100 * math.sqrt(same * (1 - same) / (n - 1)),
        "ppl": math.exp(q[0]), "ppl_stderr": math.exp(q[0]) * q[1], "ppl_base": math.exp(b[0]),
        "ppl_ratio": math.exp(lr), "ppl_ratio_stderr": math.exp(lr) * lr_unc,
    }


# ---- main ------------------------------------------------------------------------------

def main():
    raw = open(WIKI, encoding="utf-8").read()
    if os.path.isdir(OUT):
        shutil.rmtree(OUT)
    os.makedirs(OUT)
    text = article_excerpts(raw)
    with open(os.path.join(OUT, "text.raw"), "w", encoding="utf-8", newline="") as f:
        f.write(text)
    with open(os.path.join(OUT, "docs.jsonl"), "w", encoding="utf-8") as f:
        for d in JSONL_DOCS:
            f.write(json.dumps({"text": d, "id": len(d)}) + "\n")

    tok = make_tokenizer(raw)
    cfg = LlamaConfig(vocab_size=tok.get_vocab_size(), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                      tie_word_embeddings=True, bos_token_id=0, eos_token_id=1, pad_token_id=2, rope_theta=10000.0)
    model = LlamaForCausalLM(cfg)
    loss = train(model, tok.encode(raw[len(text):len(text) + 400000]).ids)
    save_model(model, tok, os.path.join(OUT, "model"), torch.float32)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 2 and "embed" not in name:
                p.copy_(rtn4(p))
    save_model(model, tok, os.path.join(OUT, "model_rtn"), torch.float16)
    a, q = load(os.path.join(OUT, "model")), load(os.path.join(OUT, "model_rtn"))

    tok_file = Tokenizer.from_file(os.path.join(OUT, "model", "tokenizer.json"))
    bos = tok_file.token_to_id("<s>")
    ids = tok_file.encode(text).ids                      # BOS first (tokenizer default)
    ids_lcpp = tok_file.encode(text[:-1] if text.endswith("\n") else text).ids
    the = tok_file.token_to_id("Ġthe")
    docs = split_wikitext(text)
    jdocs = JSONL_DOCS
    exp = {
        "train_loss": loss,
        "n_tokens": len(ids),
        "first_tokens": ids[:16],
        "gptq_seq128": gptq(a, ids, 128),
        "slicegpt_seq128_pad_the": dict(gptq(a, ids, 128, pad=the), pad_id=the),
        "llamacpp_nctx128": llamacpp(a, ids_lcpp, 128, bos)[0],
        "wikitext_docs": len(docs),
        "wikitext_doc_bytes": [len(d.encode()) for d in docs],
        "detok_sample": wikitext_detokenizer({"page": JSONL_DOCS[1]}),
    }
    for v in ["0.4.0-0.4.2", "0.4.3-0.4.9.1", "0.4.9.2+"]:
        exp["lm_eval_L128_" + v] = lm_eval_rolling(a, tok_file, docs, 128, v, True)
    exp["lm_eval_jsonl_L64"] = lm_eval_rolling(a, tok_file, jdocs, 64, "0.4.9.2+", False)
    exp["kld_rtn_nctx128"] = kld_stats(a, q, ids_lcpp, 128, bos)
    exp["kld_self_nctx128"] = kld_stats(a, a, ids_lcpp, 128, bos)
    exp["versions"] = {"torch": torch.__version__, "transformers": transformers.__version__,
                       "tokenizers": __import__("tokenizers").__version__, "numpy": np.__version__,
                       "lm_eval": __import__("lm_eval").__version__}
    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump(exp, f, indent=1)
    print(json.dumps({k: v for k, v in exp.items() if k.startswith(("gptq", "llamacpp", "lm_eval_L128_0.4.9", "kld_rtn"))},
                     indent=1))


if __name__ == "__main__":
    main()
