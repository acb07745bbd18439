#!/usr/bin/env bash
# bench_tokenizer.sh - tokenizer throughput: slimbench against Hugging Face
# `tokenizers` (single-threaded), same file, same run.
#   tests/bench_tokenizer.sh [FILE] [RUNS]
# FILE defaults to the WikiText-2 test text in ../shared/data.  Prints, per
# GGUF test vocabulary, both MB/s figures and ours / theirs.
set -eu
file=${1:-../shared/data/wikitext-2-raw/wiki.test.raw}
runs=${2:-5}
sb=${SB_SLIMBENCH:-./slimbench}
[ -f "$file" ] || { echo "bench_tokenizer: no text file $file" >&2; exit 2; }
for vocab in gpt-2 llama-spm; do
    model=tests/fixtures/vocab/ggml-vocab-$vocab.gguf
    ours=$("$sb" tokenize --bench --runs "$runs" --model "$model" --file "$file")
    theirs=$(python3 tests/reference/bench_tokenizers.py "$model" "$file" "$runs")
    echo "$vocab slimbench:     $ours"
    echo "$vocab $theirs"
    a=$(echo "$ours" | sed -E 's/.* ([0-9.]+) MB\/s/\1/')
    b=$(echo "$theirs" | sed -E 's/.* ([0-9.]+) MB\/s/\1/')
    awk -v a="$a" -v b="$b" -v v="$vocab" 'BEGIN { printf "%s ratio slimbench / tokenizers: %.2fx\n", v, a / b }'
done
