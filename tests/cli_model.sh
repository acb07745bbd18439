#!/usr/bin/env bash
# cli_model.sh - `slimbench info` and `slimbench logits` from the outside:
# exit status 2 and a one-line message naming the file for bad input, and
# the same answer from a GGUF file and the Hugging Face folder it was made from.
set -u
sb=${SB_SLIMBENCH:-./slimbench}
models=tests/reference/models
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# expect_fail NAME WANTED_TEXT CMD...: status 2, one stderr line containing WANTED_TEXT
expect_fail() {
    local name=$1 want=$2; shift 2
    "$@" >"$tmp/out" 2>"$tmp/err"
    local rc=$? lines
    lines=$(wc -l <"$tmp/err")
    if [ "$rc" -ne 2 ]; then echo "FAIL $name: exit status $rc, expected 2"; return; fi
    if [ "$lines" -ne 1 ]; then echo "FAIL $name: $lines lines on stderr, expected 1"; return; fi
    if ! grep -qF -- "$want" "$tmp/err"; then echo "FAIL $name: message lacks '$want': $(cat "$tmp/err")"; return; fi
    echo "PASS $name"
}

expect_fail cli_missing_model "$tmp/none" "$sb" info --model "$tmp/none"
expect_fail cli_unknown_flag "unknown argument" "$sb" info --model "$models/llama" --bogus
expect_fail cli_unknown_command "unknown command" "$sb" frobnicate
printf 'GGUX\003\000\000\000' >"$tmp/bad.gguf"
expect_fail cli_gguf_bad_magic "$tmp/bad.gguf: not a GGUF file" "$sb" info --model "$tmp/bad.gguf"
head -c 100 "$models/llama.gguf" >"$tmp/short.gguf"
expect_fail cli_gguf_truncated "$tmp/short.gguf: " "$sb" info --model "$tmp/short.gguf"
mkdir "$tmp/st" && cp "$models/llama/config.json" "$tmp/st/" && head -c 300 "$models/llama/model.safetensors" >"$tmp/st/model.safetensors"
expect_fail cli_safetensors_truncated "$tmp/st/model.safetensors" "$sb" info --model "$tmp/st"
printf '{"model_type": "llama",' >"$tmp/st/config.json"
expect_fail cli_config_malformed "$tmp/st/config.json: malformed JSON" "$sb" info --model "$tmp/st"
expect_fail cli_bad_token_list "--tokens" "$sb" logits --model "$models/llama" --tokens 1,x,3
expect_fail cli_token_out_of_range "outside the vocabulary" "$sb" logits --model "$models/llama" --tokens 1,99999

# info prints the architecture and a parameter count
if "$sb" info --model "$models/gemma3" >"$tmp/info" 2>&1 && grep -q '^architecture gemma3' "$tmp/info" &&
    grep -q '^parameters' "$tmp/info"; then
    echo "PASS cli_info_gemma3"
else
    echo "FAIL cli_info_gemma3: $(cat "$tmp/info")"
fi

# The GGUF file holds the HF folder's weights with q/k permuted: same top-5 ids.
toks=225,111,36,166,249,99,189,10
"$sb" logits --model "$models/llama" --tokens $toks --top 5 >"$tmp/hf" 2>&1
"$sb" logits --model "$models/llama.gguf" --tokens $toks --top 5 >"$tmp/gguf" 2>&1
if [ "$(grep -vc '^#' "$tmp/hf")" -eq 5 ] && diff <(cut -f1 "$tmp/hf") <(cut -f1 "$tmp/gguf") >/dev/null; then
    echo "PASS cli_logits_gguf_equals_hf"
else
    echo "FAIL cli_logits_gguf_equals_hf: $(paste "$tmp/hf" "$tmp/gguf" | head -3)"
fi
