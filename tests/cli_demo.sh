#!/usr/bin/env bash
# cli_demo.sh - `slimbench demo --quick` end to end on the built-in model:
# every run ok, the leaderboard files written and printed, a second call
# resumes (no run redone), --fresh starts over, and no gnuplot still gives
# the tables.  --quick scores fewer windows and questions; the code path is
# the full demo's.
set -u
sb=${SB_SLIMBENCH:-./slimbench}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
out=$tmp/demo
runs=60   # 12 method variants x 5 tasks (perplexity, 3 MC sets, speed)
vit=datasets/builtin/vit-shapes
# and with the built-in ViT 7 variants x 2 tasks (image classification, image speed)
[ -f "$vit/model.safetensors" ] && runs=$((runs + 14))

pass() { echo "PASS $1"; }
fail() { echo "FAIL $1: $2"; }

if [ ! -f datasets/builtin/story-1.9m/model.safetensors ]; then
    echo "SKIP demo: datasets/builtin/story-1.9m/model.safetensors missing"
    exit 0
fi

# --- 1. a full quick run: records, tables, plots data, terminal leaderboard
"$sb" demo --quick --out "$out" --quiet >"$tmp/out" 2>"$tmp/err"
rc=$?
ok=$(grep -c '"status":"ok"' "$out/runs.jsonl" 2>/dev/null)
if [ $rc -eq 0 ] && [ "$ok" = "$runs" ] && [ "$(wc -l <"$out/runs.jsonl")" -eq $runs ]; then
    pass demo_runs_ok
else
    fail demo_runs_ok "rc=$rc ok=$ok: $(tail -3 "$tmp/err")"
fi
missing=""
for f in leaderboard.md leaderboard.csv leaderboard.html sweep.json data/test.txt data/recall.jsonl; do
    [ -s "$out/$f" ] || missing="$missing $f"
done
if [ -z "$missing" ]; then pass demo_files; else fail demo_files "missing:$missing"; fi
if grep -q '^| dense ' "$tmp/out" && grep -q '^| gptq 2b + eora r8 ' "$tmp/out" && grep -q '^| slim-llm 2b ' "$tmp/out" &&
    grep -q '^| slicegpt sparsity 0.25 ' "$tmp/out" && grep -q '^| rtn 2b ' "$tmp/out" &&
    [ "$(grep -c '^| story-1.9m | dense |' "$out/leaderboard.md")" -eq 1 ] &&
    { [ ! -f "$vit/model.safetensors" ] || { grep -q '^| pyramid-drop' "$tmp/out" && grep -q '^| zero-tprune' "$tmp/out"; }; }; then
    pass demo_leaderboard_printed
else
    fail demo_leaderboard_printed "$(head -20 "$tmp/out")"
fi

# --- 2. a second call resumes: nothing rerun, same records; without gnuplot on PATH still exit 0
mkdir "$tmp/nobin"
PATH="$tmp/nobin" "$sb" demo --quick --out "$out" >"$tmp/out2" 2>"$tmp/err2"
rc=$?
if [ $rc -eq 0 ] && grep -q "$runs already recorded, 0 ok" "$tmp/err2" && [ "$(wc -l <"$out/runs.jsonl")" -eq $runs ] &&
    grep -qi gnuplot "$tmp/out2" "$tmp/err2" && [ -s "$out/leaderboard.md" ]; then
    pass demo_resume_without_gnuplot
else
    fail demo_resume_without_gnuplot "rc=$rc: $(cat "$tmp/err2" | tail -3)"
fi

# --- 3. --fresh starts over: the same number of records, the same metrics
# run id and metrics of every record but the speed runs (timings vary)
# (image-classification's images/s is a timing too: dropped)
metrics_of() {
    grep -v '"task":{"name":"speed"' "$1" | grep -v '"task":{"name":"image-speed"' |
        sed 's/"images_per_s":{[^}]*}//' |
        awk -F'"metrics":' '{ split($2, a, "\"details\":"); match($1, /"run_id":"[0-9a-f]+"/);
                              print substr($1, RSTART, RLENGTH) " " a[1] }' | sort
}
metrics_of "$out/runs.jsonl" >"$tmp/before"
"$sb" demo --quick --out "$out" --fresh --quiet >/dev/null 2>"$tmp/err3"
rc=$?
metrics_of "$out/runs.jsonl" >"$tmp/after"
if [ $rc -eq 0 ] && [ "$(wc -l <"$out/runs.jsonl")" -eq $runs ] && cmp -s "$tmp/before" "$tmp/after"; then
    pass demo_fresh_deterministic
else
    fail demo_fresh_deterministic "rc=$rc: $(diff "$tmp/before" "$tmp/after" | head -4)"
fi

# --- 4. bad flags are refused
"$sb" demo --bogus >/dev/null 2>"$tmp/err4"
if [ $? -eq 2 ]; then pass demo_bad_flag; else fail demo_bad_flag "$(cat "$tmp/err4")"; fi
