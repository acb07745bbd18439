#!/usr/bin/env bash
# cli_slicegpt.sh - SliceGPT through a sweep on the tiny tokenized Llama:
# slicing 0% gives the dense perplexity; 25% records its widths (64 -> 48)
# and runs; slicegpt+gptq composes (GPTQ calibrates the sliced linears);
# impossible parameters fail the run with a message naming the parameter.
set -u
sb=${SB_SLIMBENCH:-./slimbench}
tmp=${SG_TMP:-$(mktemp -d)}
trap 'rm -rf "$tmp"' EXIT
data=tests/reference/tasks/text.raw
cal="\"data\": \"$data\", \"n_samples\": 4, \"seq_len\": 32"
cat >"$tmp/sweep.json" <<JSON
{"name": "slicegpt", "models": ["tests/reference/tasks/model"],
 "methods": [{"name": "dense"},
             {"name": "slicegpt", "params": {"sparsity": [0, 0.25], $cal}},
             {"steps": [{"name": "slicegpt", "params": {"sparsity": 0.25, $cal}},
                        {"name": "gptq", "params": {"bits": 4, "group_size": 16, $cal}}]}],
 "tasks": [{"name": "perplexity", "params": {"data": "$data", "protocol": "gptq", "seq": 64}}]}
JSON
"$sb" run "$tmp/sweep.json" --out "$tmp/out" --quiet >/dev/null 2>"$tmp/err"
rc=$?
if [ $rc -ne 0 ]; then
    echo "FAIL slicegpt_sweep_runs: exit $rc: $(tail -2 "$tmp/err")"
    exit 0
fi
ppl() { grep -F "\"label\":\"$1" "$tmp/out/runs.jsonl" | grep -o '"ppl":{"value":[-0-9.e+]*' | sed 's/.*://'; }
dense=$(ppl 'dense"')
zero=$(ppl "slicegpt(sparsity=0,")
s25=$(grep -F '"label":"slicegpt(sparsity=0.25,' "$tmp/out/runs.jsonl" | grep -vF ')+gptq(' |
    grep -o '"ppl":{"value":[-0-9.e+]*' | sed 's/.*://')
both=$(grep -F ')+gptq(' "$tmp/out/runs.jsonl" | grep -o '"ppl":{"value":[-0-9.e+]*' | sed 's/.*://')
if awk -v d="$dense" -v z="$zero" 'BEGIN { exit !(d != "" && z != "" && (z - d) / d < 1e-4 && (d - z) / d < 1e-4) }'; then
    echo "PASS slicegpt_zero_is_dense_ppl"
else
    echo "FAIL slicegpt_zero_is_dense_ppl: dense $dense, slicegpt 0% $zero"
fi
if grep -F '"label":"slicegpt(sparsity=0.25,' "$tmp/out/runs.jsonl" | grep -vF ')+gptq(' | grep -q '"width":48' &&
    awk -v s="$s25" 'BEGIN { exit !(s != "" && s > 0) }'; then
    echo "PASS slicegpt_25_records_width"
else
    echo "FAIL slicegpt_25_records_width: ppl $s25"
fi
if [ -n "$both" ]; then
    echo "PASS slicegpt_then_gptq_runs"
else
    echo "FAIL slicegpt_then_gptq_runs: no ppl for the composition ($(grep -c . "$tmp/out/runs.jsonl") records)"
fi
"$sb" eval --model tests/reference/tasks/model --task perplexity --data "$data" --seq 64 --protocol gptq \
    --method slicegpt --method-param sparsity=0.95 --method-param round_interval=16 --method-param "data=$data" \
    --out "$tmp/bad" >/dev/null 2>"$tmp/bad.err"
rc=$?
# a method's refusal is a failed run (the runner exits 1 and records why), not a crash
if [ $rc -eq 1 ] && grep -q "sparsity=0.95 leaves no dimension of d_model 64" "$tmp/bad.err" &&
    grep -q '"status":"failed"' "$tmp/bad/runs.jsonl"; then
    echo "PASS slicegpt_no_width_left_refused"
else
    echo "FAIL slicegpt_no_width_left_refused: exit $rc: $(tail -1 "$tmp/bad.err")"
fi
# the CUDA forward runs the sliced model (narrow stream, shortcut matrices): the
# 25% model's perplexity there matches the CPU's within 0.1%
if "$sb" list backends | grep -q "not in this build"; then
    echo "SKIP slicegpt_cuda_matches_cpu: built without CUDA"
else
    "$sb" eval --model tests/reference/tasks/model --task perplexity --data "$data" --seq 64 --protocol gptq \
        --backend cuda --method slicegpt --method-param sparsity=0.25 --method-param "data=$data" \
        --method-param n_samples=4 --method-param seq_len=32 --out "$tmp/cuda" >/dev/null 2>"$tmp/cuda.err"
    cuda=$(grep -o '"ppl":{"value":[-0-9.e+]*' "$tmp/cuda/runs.jsonl" 2>/dev/null | sed 's/.*://')
    if grep -q "no CUDA device" "$tmp/cuda.err"; then
        echo "SKIP slicegpt_cuda_matches_cpu: no CUDA device"
    elif awk -v a="$s25" -v b="$cuda" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(a != "" && b != "" && d <= 1e-3 * a) }'; then
        echo "PASS slicegpt_cuda_matches_cpu"
    else
        echo "FAIL slicegpt_cuda_matches_cpu: CPU $s25, CUDA $cuda: $(tail -1 "$tmp/cuda.err")"
    fi
fi
