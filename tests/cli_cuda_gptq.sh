#!/usr/bin/env bash
# cli_cuda_gptq.sh - GPTQ in a sweep over both backends. The CUDA run
# applies the method on the device (calibration Hessians and the column
# loop there), the CPU run on the CPU: the runner applies a per-backend
# method once per backend. Built without CUDA, or with no device: one SKIP
# line. With a device: both runs ok, the CUDA record says where the column
# loop ran, and the two perplexities agree within 0.1% (the weights are
# the same up to ties).
set -u
. "$(dirname "$0")/lib_cli.sh"
model=tests/reference/tasks/model
text=tests/reference/tasks/text.raw

if "$sb" list backends | grep -q "not in this build"; then
    echo "SKIP cuda_gptq_sweep: built without CUDA (make CUDA=1)"
    exit 0
fi
cat >"$tmp/sweep.json" <<JSON
{"name": "cuda-gptq", "models": ["$model"],
 "methods": [{"name": "gptq", "params": {"bits": 4, "group_size": 32, "data": "$text", "n_samples": 8, "seq_len": 64}}],
 "tasks": [{"name": "perplexity", "params": {"data": "$text", "n_ctx": 64, "chunks": 8}}],
 "backends": ["cpu", "cuda"]}
JSON
"$sb" run "$tmp/sweep.json" --out "$tmp/out" --quiet >/dev/null 2>"$tmp/err"
runs=$tmp/out/runs.jsonl
if grep '"backend":"cuda"' "$runs" 2>/dev/null | grep -q 'no CUDA device'; then
    echo "SKIP cuda_gptq_sweep: no CUDA device ($(grep -o 'no CUDA device[^"]*' "$runs" | head -1))"
    exit 0
fi
ppl() { grep "\"backend\":\"$1\"" "$runs" | grep -o '"ppl":{"value":[-0-9.e+]*' | sed 's/.*://'; }
n_ok=$(grep -c '"status":"ok"' "$runs" 2>/dev/null)
if [ "$n_ok" = 2 ]; then pass cuda_gptq_sweep_runs_ok
else fail cuda_gptq_sweep_runs_ok "$n_ok of 2 runs ok: $(grep -o '"error":"[^"]*' "$runs" | head -2) $(tail -2 "$tmp/err")"; fi
if grep '"backend":"cuda"' "$runs" | grep -q '"computed_on":"cuda:0"' &&
   ! grep '"backend":"cpu"' "$runs" | grep -q '"computed_on"'; then
    pass cuda_gptq_record_says_where
else
    fail cuda_gptq_record_says_where "no details.method.computed_on = cuda:0 in the CUDA record (or one in the CPU's)"
fi
a=$(ppl cpu) b=$(ppl cuda)
if awk -v a="$a" -v b="$b" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(a != "" && b != "" && d <= 1e-3 * a) }'; then
    pass cuda_gptq_sweep_parity
else
    fail cuda_gptq_sweep_parity "perplexity CPU $a, CUDA $b"
fi
exit $status
