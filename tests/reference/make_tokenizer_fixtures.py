#!/usr/bin/env python3
"""Builds the tokenizer reference fixtures under tests/reference/tokenizers/.

    python3 tests/reference/make_tokenizer_fixtures.py [--shared ../shared/data]

Offline: every tokenizer.json is constructed from the two llama.cpp test
vocabularies (GGUF, MIT) in tests/fixtures/vocab/ and the expected ids come
from Hugging Face `tokenizers` (and, for the WikiText-2 check of the
SentencePiece vocabulary, from llama.cpp itself through llama-cpp-python).

  gpt2/         byte-level BPE, ByteLevel pre-tokenizer (GPT-2 regex)
  llama3/       byte-level BPE, Split(Llama 3 regex) + ByteLevel, ignore_merges,
                TemplateProcessing BOS
  qwen2/        byte-level BPE, NFC + Split(Qwen2 regex) + ByteLevel
  llama2/       SentencePiece BPE: Prepend/Replace normalizer, byte fallback,
                merges generated from scores as transformers' LlamaConverter does
  llama2_meta/  the same with the Metaspace pre-tokenizer (prepend_scheme first)
                and a tokenizer_config.json asking for BOS and EOS
  wikitext.json WikiText-2 test ids for both full vocabularies: count, FNV-1a-64
                of the ids (int32 little-endian) and the first 2000 ids

The byte-level vocabularies are the GPT-2 one cut to its first merges (the
ids of GPT-2 count merges, so the cut keeps a consistent BPE); the
SentencePiece ones keep the first pieces of Llama 2's.
"""
import argparse
import json
import os
import struct
import sys

import gguf
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
VOCAB_DIR = os.path.join(ROOT, "tests", "fixtures", "vocab")
OUT = os.path.join(HERE, "tokenizers")

GPT2_KEEP_MERGES = 6000
SPM_KEEP_PIECES = 8000

LLAMA3_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                r"|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
               r"|\s*[\r\n]+|\s+(?!\S)|\s+")

TEXTS = [
    "",
    " ",
    "Hello world",
    " Hello world!",
    "Hello, World! HELLO WORLD... hello   world",
    "I'm sure you're right, it's what they've said: we'll see, I'd go.",
    "I'M SURE YOU'RE RIGHT, IT'S WHAT THEY'VE SAID: WE'LL SEE, I'D GO.",
    "don't DON'T Don'T 's 'S 're 'RE",
    "Numbers: 1 12 123 1234 12345 3.14159 1,000,000 ٣٤٥ ⅷ ²",
    "Tabs\tand\t\tnewlines\n\nand\r\nCRLF\n \n  \n   end",
    "lots of spaces:          between          words          ",
    "     leading and trailing     ",
    "\n\n\n",
    "\t",
    "中文测试：你好，世界！这是一个分词器的测试。",
    "日本語のテキストとカタカナ、ひらがな。",
    "한국어 텍스트 테스트입니다.",
    "العربية: مرحبا بالعالم، كيف حالك؟",
    "हिन्दी पाठ: नमस्ते दुनिया। क्या हाल है?",
    "Ελληνικά και Русский текст вместе.",
    "Emoji: 😀 😃 👍🏽 🇫🇷 👨‍👩‍👧‍👦 ❤️ 🏳️‍🌈 done",
    "Mixed: naïve café résumé Œuvre straße ǅ ﬁ",
    "Code: def f(x):\n    return x**2 + 1  # comment\n\tif (a&&b||c) { y[i] = z->w; }",
    "URLs like https://example.com/path?q=1&r=2#frag and email@example.org",
    "Punctuation!!! ??? ... --- ___ *** ### $$$ %%% ^^^ ~~~ ``` ''' \"\"\"",
    "Special inside: <|endoftext|> and <s> and </s> and <unk> text",
    "<|endoftext|><|endoftext|>x<|endoftext|> y",
    "<s>start</s>",
    "ied 4 ½ months",
    "Äpfel Ölung Übermut",
    " this is 🦙.cpp",
    "w048 7tuijk dsdfhu",
    "нещо на Български",
    "ប្រសិនបើអ្នកមានសំណួរ",
    "🚀 (normal) 😶‍🌫️ (multiple emojis concatenated) ✅ (only emoji that has its own token)",
    "3333333333 33333 3 33",
    "   Hello\n    Hello",
    "(  \"  \"  ) ' ''  ''' \"\"\" \n\t",
    "A" * 300,
    "The quick brown fox jumps over the lazy dog. " * 5,
]


def read_gguf_vocab(path):
    r = gguf.GGUFReader(path)

    def strings(key):
        f = r.fields[key]
        return [bytes(f.parts[i]).decode("utf-8") for i in f.data]

    def numbers(key):
        f = r.fields[key]
        return [f.parts[i][0].item() for i in f.data]

    tokens = strings("tokenizer.ggml.tokens")
    out = {"tokens": tokens}
    if "tokenizer.ggml.merges" in r.fields:
        out["merges"] = strings("tokenizer.ggml.merges")
    if "tokenizer.ggml.scores" in r.fields:
        out["scores"] = numbers("tokenizer.ggml.scores")
    out["types"] = numbers("tokenizer.ggml.token_type")
    return out


# ---- byte-level tokenizers ---------------------------------------------------------------------

def gpt2_vocab(v, keep_merges=None):
    """(vocab, merges, eot_id): the GPT-2 vocabulary, optionally cut to its first merges."""
    merges = [tuple(m.split(" ", 1)) for m in v["merges"]]
    tokens = v["tokens"]
    if keep_merges is None:
        return {t: i for i, t in enumerate(tokens)}, merges, tokens.index("<|endoftext|>")
    merges = merges[:keep_merges]
    vocab = {t: i for i, t in enumerate(tokens[:256])}
    for a, b in merges:
        if a + b not in vocab:
            vocab[a + b] = len(vocab)
    eot = len(vocab)
    vocab["<|endoftext|>"] = eot
    return vocab, merges, eot


def byte_level_tokenizer(vocab, merges, split_regex=None, ignore_merges=False, nfc=False):
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, ignore_merges=ignore_merges))
    if nfc:
        tok.normalizer = normalizers.NFC()
    if split_regex is None:
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    else:
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(split_regex), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ])
    tok.decoder = decoders.ByteLevel()
    return tok


def make_gpt2(v, keep=GPT2_KEEP_MERGES):
    vocab, merges, eot = gpt2_vocab(v, keep)
    tok = byte_level_tokenizer(vocab, merges)
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    tok.add_special_tokens([AddedToken("<|endoftext|>", special=True, normalized=False)])
    return tok, None


def make_llama3(v):
    vocab, merges, _ = gpt2_vocab(v, GPT2_KEEP_MERGES)
    del vocab["<|endoftext|>"]
    tok = byte_level_tokenizer(vocab, merges, LLAMA3_REGEX, ignore_merges=True)
    specials = ["<|begin_of_text|>", "<|end_of_text|>"] + ["<|reserved_special_token_%d|>" % i for i in range(4)]
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in specials])
    bos = tok.token_to_id("<|begin_of_text|>")
    tok.post_processor = processors.TemplateProcessing(single="<|begin_of_text|> $A", special_tokens=[("<|begin_of_text|>", bos)])
    return tok, None


def make_qwen2(v):
    vocab, merges, _ = gpt2_vocab(v, GPT2_KEEP_MERGES)
    tok = byte_level_tokenizer(vocab, merges, QWEN2_REGEX, nfc=True)
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]])
    tok.add_tokens([AddedToken("<tool_call>", special=False, normalized=False)])
    config = {"add_bos_token": False, "bos_token": None, "eos_token": "<|endoftext|>"}
    return tok, config


# ---- SentencePiece BPE ---------------------------------------------------------------------------

def spm_vocab_and_merges(v, keep=None):
    """Vocabulary and merges the way transformers' LlamaConverter derives them
    from a SentencePiece model: every split of a piece into two pieces is a
    merge, ordered by the merged piece's score (then by the parts' ids)."""
    tokens, scores = v["tokens"], v["scores"]
    # the cut keeps the first pieces and every single character (such as
    # "▁" itself), so byte fallback stays as rare as in the full vocabulary
    kept = [i for i in range(len(tokens)) if keep is None or i < keep or len(tokens[i]) == 1]
    vocab = {tokens[i]: n for n, i in enumerate(kept)}
    merges = []
    for i in kept:
        piece = tokens[i]
        local = []
        for k in range(1, len(piece)):
            left, right = piece[:k], piece[k:]
            if left in vocab and right in vocab:
                local.append((left, right, scores[i]))
        local.sort(key=lambda m: (vocab[m[0]], vocab[m[1]]))
        merges.extend(local)
    merges.sort(key=lambda m: m[2], reverse=True)
    return vocab, [(a, b) for a, b, _ in merges]


def spm_tokenizer(v, keep, metaspace):
    vocab, merges = spm_vocab_and_merges(v, keep)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="<unk>", fuse_unk=True, byte_fallback=True))
    if metaspace:
        tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=False)
        tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="first", split=False)
    else:
        tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
        tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                                         decoders.Strip(" ", 1, 0)])
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in ["<unk>", "<s>", "</s>"]])
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", tok.token_to_id("<s>"))])
    return tok


def make_llama2(v, keep=SPM_KEEP_PIECES):
    return spm_tokenizer(v, keep, metaspace=False), {"add_bos_token": True, "add_eos_token": False,
                                                      "bos_token": "<s>", "eos_token": "</s>"}


def make_llama2_meta(v, keep=SPM_KEEP_PIECES):
    return spm_tokenizer(v, keep, metaspace=True), {"add_bos_token": True, "add_eos_token": True,
                                                     "bos_token": {"content": "<s>"}, "eos_token": "</s>"}


# ---- outputs -------------------------------------------------------------------------------------

def expected_ids(tok, config):
    plain = [tok.encode(t, add_special_tokens=False).ids for t in TEXTS]
    special = []
    for text, ids in zip(TEXTS, plain):
        if config is not None and ("add_bos_token" in config or "add_eos_token" in config):
            # transformers rebuilds the post-processor from these flags
            pre = [tok.token_to_id(config["bos_token"] if isinstance(config["bos_token"], str)
                                   else config["bos_token"]["content"])] if config.get("add_bos_token") else []
            post = [tok.token_to_id(config["eos_token"])] if config.get("add_eos_token") else []
            special.append(pre + ids + post)
        else:
            special.append(tok.encode(text, add_special_tokens=True).ids)
    return plain, special


def write_fixture(name, tok, config):
    d = os.path.join(OUT, name)
    os.makedirs(d, exist_ok=True)
    tok.save(os.path.join(d, "tokenizer.json"), pretty=False)
    if config is not None:
        with open(os.path.join(d, "tokenizer_config.json"), "w", encoding="utf-8") as f:
            json.dump(config, f, ensure_ascii=False, indent=1)
    plain, special = expected_ids(tok, config)
    for text, ids in zip(TEXTS, plain):
        assert tok.decode(ids, skip_special_tokens=False) is not None
    with open(os.path.join(d, "expected.json"), "w", encoding="utf-8") as f:
        json.dump({"texts": TEXTS, "ids": plain, "ids_with_special": special}, f, ensure_ascii=False)
    print(name, os.path.getsize(os.path.join(d, "tokenizer.json")), "bytes")


def fnv1a64(ids):
    h = 0xcbf29ce484222325
    for b in struct.pack("<%di" % len(ids), *ids):
        h ^= b
        h = (h * 0x100000001b3) & 0xffffffffffffffff
    return "%016x" % h


def wikitext_reference(shared, gpt2v, spm_path):
    path = os.path.join(shared, "wikitext-2-raw", "wiki.test.raw")
    text = open(path, encoding="utf-8").read()
    tok, _ = make_gpt2(gpt2v, keep=None)
    gpt2_ids = tok.encode(text, add_special_tokens=False).ids
    out = {"file": "wikitext-2-raw/wiki.test.raw", "hash": "FNV-1a-64 over the ids as int32 little-endian"}
    out["gpt-2"] = {"reference": "tokenizers " + __import__("tokenizers").__version__,
                    "count": len(gpt2_ids), "fnv1a64": fnv1a64(gpt2_ids), "first": gpt2_ids[:2000]}
    try:
        from llama_cpp import Llama
        llm = Llama(model_path=spm_path, vocab_only=True, verbose=False)
        spm_ids = llm.tokenize(text.encode("utf-8"), add_bos=False, special=False)
        out["llama-spm"] = {"reference": "llama.cpp via llama-cpp-python " + __import__("llama_cpp").__version__,
                            "count": len(spm_ids), "fnv1a64": fnv1a64(spm_ids), "first": spm_ids[:2000]}
        llm_g = Llama(model_path=os.path.join(VOCAB_DIR, "ggml-vocab-gpt-2.gguf"), vocab_only=True, verbose=False)
        g2 = llm_g.tokenize(text.encode("utf-8"), add_bos=False, special=False)
        print("gpt-2: llama.cpp agrees with tokenizers:", g2 == gpt2_ids)
    except ImportError:
        print("llama-cpp-python not installed: no llama-spm WikiText reference", file=sys.stderr)
    with open(os.path.join(OUT, "wikitext.json"), "w") as f:
        json.dump(out, f)


def write_bad_ggufs():
    """Small malformed tokenizer GGUFs for tests/cli_tokenize.sh (tests/fixtures/vocab/bad/)."""
    d = os.path.join(VOCAB_DIR, "bad")
    os.makedirs(d, exist_ok=True)
    tokens = ["a", "b", "ab", "<s>"]

    def write(name, model="gpt2", toks=tokens, merges=("a b",), scores=None, types=None):
        w = gguf.GGUFWriter(os.path.join(d, name + ".gguf"), "llama")
        w.add_string("tokenizer.ggml.model", model)
        if toks is not None:
            w.add_array("tokenizer.ggml.tokens", list(toks))
        if merges is not None:
            w.add_array("tokenizer.ggml.merges", list(merges))
        if scores is not None:
            w.add_array("tokenizer.ggml.scores", scores)
        if types is not None:
            w.add_array("tokenizer.ggml.token_type", types)
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()

    write("no_tokens", toks=None)
    write("scores_count", model="llama", merges=None, scores=[0.0, -1.0])
    write("merge_unknown", merges=["a b", "a zz"])
    write("bad_type", model="llama", merges=None, types=[1, 1, 9, 3])
    write("bad_model", model="bert")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", default=os.path.join(ROOT, "..", "shared", "data"))
    args = ap.parse_args()
    gpt2v = read_gguf_vocab(os.path.join(VOCAB_DIR, "ggml-vocab-gpt-2.gguf"))
    spm_path = os.path.join(VOCAB_DIR, "ggml-vocab-llama-spm.gguf")
    spmv = read_gguf_vocab(spm_path)
    for name, make in [("gpt2", lambda: make_gpt2(gpt2v)), ("llama3", lambda: make_llama3(gpt2v)),
                       ("qwen2", lambda: make_qwen2(gpt2v)), ("llama2", lambda: make_llama2(spmv)),
                       ("llama2_meta", lambda: make_llama2_meta(spmv))]:
        tok, config = make()
        write_fixture(name, tok, config)
    write_bad_ggufs()
    if os.path.isdir(args.shared):
        wikitext_reference(args.shared, gpt2v, spm_path)


if __name__ == "__main__":
    main()
