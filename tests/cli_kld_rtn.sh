#!/usr/bin/env bash
# cli_kld_rtn.sh - KL divergence to the dense model through a sweep: the
# dense run writes the reference log-probs, each RTN run compares with
# them. KLD of the model with itself is 0 with 100% top-1 agreement; the
# quantized models' KLD is positive and grows from 8 to 4 to 3 bits.
set -u
sb=${SB_SLIMBENCH:-./slimbench}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cat >"$tmp/sweep.json" <<JSON
{"name": "kld-rtn", "models": ["tests/reference/tasks/model"],
 "methods": [{"name": "dense"}, {"name": "rtn", "params": {"bits": [8, 4, 3], "group_size": 32}}],
 "tasks": [{"name": "kld", "params": {"data": "tests/reference/tasks/text.raw", "n_ctx": 64, "chunks": 8}}]}
JSON
"$sb" run "$tmp/sweep.json" --out "$tmp/out" --quiet >/dev/null 2>"$tmp/err"
rc=$?
# value of metric $2 in the record of method label $1
metric() {
    grep -F "\"label\":\"$1" "$tmp/out/runs.jsonl" | grep -o "\"$2\":{\"value\":[-0-9.e+]*" | sed 's/.*://'
}
if [ $rc -ne 0 ]; then
    echo "FAIL kld_sweep_runs: exit $rc: $(tail -2 "$tmp/err")"
    exit 0
fi
self=$(metric 'dense"' kld)
top1=$(metric 'dense"' top1_agree)
k8=$(metric "rtn(bits=8," kld)
k4=$(metric "rtn(bits=4," kld)
k3=$(metric "rtn(bits=3," kld)
if awk -v s="$self" -v t="$top1" 'BEGIN { exit !(s != "" && s < 1e-5 && s > -1e-5 && t == 100) }'; then
    echo "PASS kld_self_zero_top1_100"
else
    echo "FAIL kld_self_zero_top1_100: kld=$self top1=$top1"
fi
if awk -v a="$k8" -v b="$k4" -v c="$k3" 'BEGIN { exit !(a != "" && b != "" && c != "" && a > 0 && a < b && b < c) }'; then
    echo "PASS kld_grows_8_4_3_bits"
else
    echo "FAIL kld_grows_8_4_3_bits: 8-bit $k8, 4-bit $k4, 3-bit $k3"
fi
