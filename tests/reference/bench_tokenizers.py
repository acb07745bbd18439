#!/usr/bin/env python3
"""Hugging Face `tokenizers` throughput on one file, single-threaded, for
comparison with `slimbench tokenize --bench` (tests/bench_tokenizer.sh).

    python3 tests/reference/bench_tokenizers.py VOCAB.gguf FILE [RUNS]

The tokenizer.json equivalent of the GGUF vocabulary is built in memory the
way make_tokenizer_fixtures.py builds the fixtures (full vocabulary): GPT-2
byte-level BPE for a gpt2 vocabulary, Llama 2 SentencePiece BPE for a llama
one.  Like our command, the whole file is encoded as one string with the
model's special tokens (BOS), and the best of RUNS is reported in MB/s.
"""
import os
import sys
import time

os.environ["RAYON_NUM_THREADS"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_tokenizer_fixtures as fx  # noqa: E402


def main():
    vocab_path, text_path = sys.argv[1], sys.argv[2]
    runs = int(sys.argv[3]) if len(sys.argv) > 3 else 5
    v = fx.read_gguf_vocab(vocab_path)
    if "merges" in v:
        tok, _ = fx.make_gpt2(v, keep=None)
    else:
        tok, _ = fx.make_llama2(v, keep=None)
    data = open(text_path, "rb").read()
    text = data.decode("utf-8")
    best, n = None, 0
    for _ in range(runs):
        t0 = time.perf_counter()
        n = len(tok.encode(text, add_special_tokens=True).ids)
        dt = time.perf_counter() - t0
        best = dt if best is None else min(best, dt)
    print("hf-tokenizers: %d bytes, %d tokens, best of %d runs %.4f s, %.2f MB/s" % (len(data), n, runs, best, len(data) / best / 1e6))


if __name__ == "__main__":
    main()
