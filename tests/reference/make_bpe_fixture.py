#!/usr/bin/env python3
"""make_bpe_fixture.py - reference merges for slimbench's BPE trainer (datasets/bpe_train.c).

Writes tests/reference/bpe/:
  corpus.txt           train split of `slimbench data corpus --stories 20 --seed 7` (a few KB)
  heldout.txt          valid + test splits of the same, plus non-ASCII / digits / whitespace lines
  hf_vN.json           Hugging Face tokenizers' BpeTrainer result on corpus.txt for vocab_size N
                       (N = 400: stops at the size; N = 1000: stops when no pair is left):
                       {"vocab": {token: id}, "merges": ["a b", ...], "heldout_ids": [...]}
                       heldout_ids: heldout.txt encoded by that tokenizer without special tokens.

The trainer settings are those bpe_train.h documents: BPE model, ByteLevel
pre-tokenizer (add_prefix_space=False, GPT-2 regex), special token
"<|endoftext|>", the 256-character ByteLevel alphabet, min_frequency 0,
tokenizer.train([file]) (lines with their newline).

Then, when ./slimbench exists, it trains slimbench on the same corpus and checks
that `tokenizers` loading slimbench's tokenizer.json encodes heldout.txt exactly
as the reference does (so the file is a correct HF tokenizer, not only equal merges).

Run from the repository root after `make`:  python3 tests/reference/make_bpe_fixture.py
Versions used for the committed files: tokenizers 0.23.3.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

from tokenizers import Tokenizer, models, pre_tokenizers, trainers

OUT = "tests/reference/bpe"
SPECIAL = "<|endoftext|>"
SIZES = (400, 1000)
EXTRA = "Zoë's café costs 12 345 €.\n\tTabs  and   spaces  \n\nEmoji 🙂 and 中文.\r\n'll 've 're\n"


def hf_train(corpus, vocab_size):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[SPECIAL], min_frequency=0,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train([corpus], trainer)
    return tok


def merges_of(tok):
    merges = json.loads(tok.to_str())["model"]["merges"]
    return [m if isinstance(m, str) else " ".join(m) for m in merges]


def main():
    slimbench = os.environ.get("SB_SLIMBENCH", "./slimbench")
    if not os.path.exists(slimbench):
        sys.exit("build ./slimbench first (make): it generates the corpus")
    os.makedirs(OUT, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([slimbench, "data", "corpus", "--stories", "20", "--seed", "7", "--out", tmp], check=True,
                       stdout=subprocess.DEVNULL)
        shutil.copy(os.path.join(tmp, "train.txt"), os.path.join(OUT, "corpus.txt"))
        with open(os.path.join(OUT, "heldout.txt"), "w", encoding="utf-8", newline="") as f:
            for name in ("valid.txt", "test.txt"):
                with open(os.path.join(tmp, name), encoding="utf-8") as g:
                    f.write(g.read())
            f.write(EXTRA)
    corpus = os.path.join(OUT, "corpus.txt")
    with open(os.path.join(OUT, "heldout.txt"), encoding="utf-8", newline="") as f:
        heldout = f.read()  # newline="": keep the "\r\n" as it is
    for size in SIZES:
        tok = hf_train(corpus, size)
        ids = tok.encode(heldout, add_special_tokens=False).ids
        record = {"vocab": tok.get_vocab(), "merges": merges_of(tok), "heldout_ids": ids}
        record["vocab"] = dict(sorted(record["vocab"].items(), key=lambda kv: kv[1]))
        with open(os.path.join(OUT, f"hf_v{size}.json"), "w", encoding="utf-8") as f:
            json.dump(record, f, ensure_ascii=False, indent=0)
            f.write("\n")
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run([slimbench, "data", "bpe", "--input", corpus, "--vocab", str(size), "--out", tmp],
                           check=True, stdout=subprocess.DEVNULL)
            ours = Tokenizer.from_file(os.path.join(tmp, "tokenizer.json"))
            same_merges = merges_of(ours) == record["merges"]
            same_ids = ours.encode(heldout, add_special_tokens=False).ids == ids
            bos = ours.encode("Tom runs.").ids[0] == 0
            print(f"vocab {size}: {len(record['merges'])} merges; slimbench merges equal: {same_merges}, "
                  f"HF encoding with slimbench's tokenizer.json equal: {same_ids}, BOS first: {bos}")
            if not (same_merges and same_ids and bos):
                sys.exit("slimbench's trainer disagrees with tokenizers")


if __name__ == "__main__":
    main()
