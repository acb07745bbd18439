#!/usr/bin/env bash
# cli_tokenize.sh - `slimbench tokenize`: outputs, BOS rule, and exit status 2
# with a message naming the file and the reason for malformed tokenizers.
# Prints one line per case: PASS name | FAIL name: why.
set -u
. "$(dirname "$0")/lib_cli.sh"
cli_subcommand="tokenize"
vocab=tests/fixtures/vocab

# expect_output NAME WANT ARGS...: exit 0 and stdout exactly WANT
expect_output() {
    local name=$1 want=$2; shift 2
    local got
    got=$("$sb" tokenize "$@" 2>"$tmp/err")
    local rc=$?
    if [ "$rc" -ne 0 ]; then echo "FAIL $name: exit $rc: $(head -c 200 "$tmp/err")"; status=1
    elif [ "$got" != "$want" ]; then echo "FAIL $name: got '$got', want '$want'"; status=1
    else echo "PASS $name"; fi
}

expect_output tokenize_gpt2_gguf "15496 995" --model $vocab/ggml-vocab-gpt-2.gguf --text "Hello world"
expect_output tokenize_spm_gguf_bos "1 15043 3186" --model $vocab/ggml-vocab-llama-spm.gguf --text "Hello world"
expect_output tokenize_spm_gguf_no_bos "15043 3186" --model $vocab/ggml-vocab-llama-spm.gguf --text "Hello world" --no-bos
printf 'Hello world' >"$tmp/text.txt"
expect_output tokenize_file "15496 995" --model $vocab/ggml-vocab-gpt-2.gguf --file "$tmp/text.txt"
expect_output tokenize_hf_dir_bos "$("$sb" tokenize --model tests/reference/tokenizers/llama2/tokenizer.json --text hi)" \
    --model tests/reference/tokenizers/llama2 --text hi
if "$sb" tokenize --bench --runs 1 --model $vocab/ggml-vocab-gpt-2.gguf --file "$tmp/text.txt" | grep -q "MB/s"; then
    echo "PASS tokenize_bench"
else
    echo "FAIL tokenize_bench: no MB/s line"; status=1
fi

expect_error tokenize_no_model "needs --model" --text hi
expect_error tokenize_text_and_file "exactly one of" --model $vocab/ggml-vocab-gpt-2.gguf --text a --file b
expect_error tokenize_unknown_flag "unknown argument" --model x --text a --frobnicate
expect_error tokenize_missing_path "nope" --model "$tmp/nope.gguf" --text a

# malformed tokenizer.json files: each in its own folder
hf_bad() {
    local name=$1 pattern=$2 json=$3
    mkdir -p "$tmp/$name"
    printf '%s' "$json" >"$tmp/$name/tokenizer.json"
    expect_error "tokenize_hf_$name" "$tmp/$name/tokenizer.json: .*$pattern" --model "$tmp/$name" --text hi
}
hf_bad not_json "not valid JSON" '{"model": '
hf_bad missing_model '"model" is missing' '{"normalizer": null}'
hf_bad vocab_not_object "model.vocab is missing or not an object" '{"model": {"type": "BPE", "vocab": [1, 2], "merges": []}}'
hf_bad vocab_bad_id "not a token id" '{"model": {"type": "BPE", "vocab": {"a": "zero"}, "merges": []}}'
hf_bad merges_unknown "model.merges\[0\] names a token that is not in the vocabulary" \
    '{"model": {"type": "BPE", "vocab": {"a": 0, "b": 1}, "merges": ["a c"]}}'
hf_bad merges_shape "model.merges\[1\] is not a pair of tokens" \
    '{"model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b", 7]}}'
hf_bad merges_missing "model.merges is missing" '{"model": {"type": "BPE", "vocab": {"a": 0}}}'
hf_bad bool_type "'byte_fallback' must be true or false" \
    '{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": [], "byte_fallback": "yes"}}'
hf_bad model_type "model type 'WordPiece' is not supported" '{"model": {"type": "WordPiece", "vocab": {"a": 0}}}'
hf_bad bad_regex "regex: " '{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []},
  "pre_tokenizer": {"type": "Split", "pattern": {"Regex": "(a"}, "behavior": "Isolated"}}'
hf_bad pre_tokenizer_type "pre_tokenizer 'BertPreTokenizer' is not supported" \
    '{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}, "pre_tokenizer": {"type": "BertPreTokenizer"}}'
hf_bad added_bad "added_tokens entry without a string content" \
    '{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}, "added_tokens": [{"id": 3, "content": 5}]}'

# malformed GGUF tokenizer metadata (made by tests/reference/make_tokenizer_fixtures.py)
bad=$vocab/bad
expect_error tokenize_gguf_no_tokens "no_tokens.gguf: .*tokenizer.ggml.tokens is missing" --model $bad/no_tokens.gguf --text hi
expect_error tokenize_gguf_scores_count "scores_count.gguf: .*scores has 2 entries but there are 4 tokens" \
    --model $bad/scores_count.gguf --text hi
expect_error tokenize_gguf_merge_unknown "merge_unknown.gguf: .*merges\[1\] 'a zz' names a token that is not in the vocabulary" \
    --model $bad/merge_unknown.gguf --text hi
expect_error tokenize_gguf_bad_type "bad_type.gguf: .*token_type\[2\]" --model $bad/bad_type.gguf --text hi
expect_error tokenize_gguf_bad_model "bad_model.gguf: .*'bert' is not supported" --model $bad/bad_model.gguf --text hi
printf 'GGUF\003' >"$tmp/truncated.gguf"
expect_error tokenize_gguf_truncated "truncated.gguf" --model "$tmp/truncated.gguf" --text hi
exit $status
