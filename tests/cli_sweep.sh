#!/usr/bin/env bash
# cli_sweep.sh - the harness core end to end: a sweep of 2 methods x 2
# parameter values x 2 tasks from an external plugin, its records and
# reports; kill -9 at several moments and resume; shards and merge; bad
# configs refused before any run; plugins with the wrong ABI refused.
set -u
sb=${SB_SLIMBENCH:-./slimbench}
plugins=${SB_PLUGIN_DIR:?}
model=tests/reference/tasks/model
text=tests/reference/tasks/text.raw
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
plugin="--plugin $plugins/example_methods.so"

pass() { echo "PASS $1"; }
fail() { echo "FAIL $1: $2"; }

cat >"$tmp/sweep.json" <<JSON
{
  "name": "core-test",
  "models": ["$model"],
  "methods": [
    {"name": "example-magnitude", "params": {"sparsity": [0.25, 0.5]}},
    {"name": "example-round", "params": {"bits": [8, 3]}}
  ],
  "tasks": [
    {"name": "perplexity", "params": {"data": "$text", "protocol": "gptq", "seq": 64, "chunks": 6}},
    {"name": "perplexity", "params": {"data": "$text", "protocol": "llamacpp", "n_ctx": 64, "chunks": 6}}
  ],
  "seeds": [0]
}
JSON

# run id and metrics object of every record, sorted: the fingerprint of a
# sweep's numbers (timings and memory, which vary, are left out)
metrics_of() {
    awk -F'"metrics":' '{ split($2, a, "\"details\":"); match($1, /"run_id":"[0-9a-f]+"/);
                          print substr($1, RSTART, RLENGTH) " " a[1] }' "$1/runs.jsonl" 2>/dev/null | sort
}

# same_metrics DIR_A DIR_B: both hold the 8 runs, with equal numbers
same_metrics() {
    local a b
    a=$(metrics_of "$1")
    b=$(metrics_of "$2")
    [ -n "$a" ] && [ "$(echo "$a" | wc -l)" -eq 8 ] && [ "$a" = "$b" ]
}

# ids_of DIR: the sorted run ids of its records
ids_of() { grep -o '"run_id":"[0-9a-f]*"' "$1/runs.jsonl" 2>/dev/null | sort; }

# --- 1. the sweep: 8 records, every schema field filled
"$sb" run "$tmp/sweep.json" $plugin --out "$tmp/full" --quiet >/dev/null 2>"$tmp/err"
rc=$?
n=$(wc -l <"$tmp/full/runs.jsonl" 2>/dev/null || echo 0)
if [ $rc -eq 0 ] && [ "$n" -eq 8 ]; then pass sweep_8_records; else fail sweep_8_records "rc=$rc, $n records: $(tail -2 "$tmp/err")"; fi
missing=""
for key in '"schema":1' '"run_id":"' '"sweep":"core-test"' '"status":"ok"' '"started":"' '"finished":"' '"harness":{"version"' \
    '"git":' '"host":{"cpu"' '"model":{"path"' '"hash":"' '"arch":"llama"' '"method":{"name"' '"paper":' '"params":' \
    '"task":{"name":"perplexity"' '"protocol":"ppl:' '"backend":"cpu"' '"seed":0' '"metrics":{"ppl":{"value"' '"stderr":' \
    '"timings":{"load_s"' '"method_s"' '"task_s"' '"memory":{"peak_rss_bytes"' '"weight_bytes"' '"bits_per_weight"' \
    '"kv_bytes"' '"device_peak_bytes"' '"quant":"'; do
    c=$(grep -cF -- "$key" "$tmp/full/runs.jsonl")
    [ "$c" -eq 8 ] || missing="$missing $key($c)"
done
if [ -z "$missing" ]; then pass sweep_record_fields; else fail sweep_record_fields "missing in some records:$missing"; fi
if grep -q '"quant":"fake"' "$tmp/full/runs.jsonl" && grep -q '"quant":"real"' "$tmp/full/runs.jsonl"; then
    pass sweep_quant_recorded
else
    fail sweep_quant_recorded "example-round must be fake and example-magnitude real"
fi

# --- 2. reports in every format
ok=1
for f in md csv html json; do
    "$sb" report "$tmp/full" --format $f --out "$tmp/report.$f" 2>"$tmp/err" || { ok=0; fail "report_$f" "$(cat "$tmp/err")"; }
    [ -s "$tmp/report.$f" ] || ok=0
done
[ $ok -eq 1 ] && pass report_all_formats

# --- 3. the runner reuses the loaded model: the same method twice gives the same numbers
"$sb" run "$tmp/sweep.json" $plugin --out "$tmp/again" --quiet >/dev/null 2>&1
if same_metrics "$tmp/full" "$tmp/again"; then pass sweep_deterministic; else fail sweep_deterministic "two runs of the sweep differ"; fi

# --- 4. crash safety: SIGKILL right after the k-th record (fault injection
# in the runner) and at a random moment, each followed by a torn half
# record as a kill inside write(2) leaves it; then resume until done
for point in 1 3 5 7 random; do
    out="$tmp/kill_$point"
    if [ "$point" = random ]; then
        "$sb" run "$tmp/sweep.json" $plugin --out "$out" --quiet >/dev/null 2>&1 &
        pid=$!
        sleep 0.0$((RANDOM % 9 + 1))
        kill -9 "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    else
        # in a subshell, so the shell's own "Killed" notice goes to /dev/null too
        (SB_FAULT_KILL_AFTER_RECORDS=$point "$sb" run "$tmp/sweep.json" $plugin --out "$out" --quiet; true) >/dev/null 2>&1
        [ "$(wc -l <"$out/runs.jsonl")" -eq "$point" ] || fail "crash_kill9_after_record_$point" "kill point missed"
    fi
    delay=$point
    # a torn write: half of a record with no newline, as a kill inside write(2) would leave
    if [ -f "$out/runs.jsonl" ]; then head -c 150 "$tmp/full/runs.jsonl" | tr -d '\n' >>"$out/runs.jsonl"; fi
    "$sb" run "$tmp/sweep.json" $plugin --out "$out" --resume --quiet >/dev/null 2>"$tmp/err_$delay"
    ids=$(ids_of "$out")
    if [ "$(echo "$ids" | sort -u | wc -l)" -eq 8 ] && [ "$ids" = "$(echo "$ids" | sort -u)" ] && same_metrics "$out" "$tmp/full"; then
        pass "crash_kill9_after_record_${delay}"
    else
        fail "crash_kill9_after_record_${delay}" "$(echo "$ids" | wc -l) records; $(cat "$tmp/err_$delay" | head -2)"
    fi
done

# --- 5. shards are disjoint, cover the matrix, and merge to the full sweep
for k in 1 2 3; do
    "$sb" run "$tmp/sweep.json" $plugin --out "$tmp/shard$k" --shard $k/3 --quiet >/dev/null 2>&1
done
all=$(cat "$tmp"/shard*/runs.jsonl 2>/dev/null | grep -o '"run_id":"[0-9a-f]*"' | sort)
if [ -n "$all" ] && [ "$all" = "$(ids_of "$tmp/full")" ] && [ "$(echo "$all" | sort -u | wc -l)" -eq 8 ]; then pass shard_disjoint_cover; else fail shard_disjoint_cover "shards do not partition the runs"; fi
"$sb" merge "$tmp/merged" "$tmp/shard1" "$tmp/shard2" "$tmp/shard3" >/dev/null 2>"$tmp/err"
if same_metrics "$tmp/merged" "$tmp/full"; then pass merge_equals_full; else fail merge_equals_full "$(cat "$tmp/err")"; fi
SLURM_ARRAY_TASK_ID=1 SLURM_ARRAY_TASK_COUNT=3 SLURM_ARRAY_TASK_MIN=0 \
    "$sb" run "$tmp/sweep.json" $plugin --out "$tmp/slurm" --quiet >/dev/null 2>&1
if [ -n "$(ids_of "$tmp/slurm")" ] && [ "$(ids_of "$tmp/slurm")" = "$(ids_of "$tmp/shard2")" ]; then
    pass shard_from_slurm_array
else
    fail shard_from_slurm_array "SLURM_ARRAY_TASK_ID=1 of 3 should equal --shard 2/3"
fi

# --- 6. bad configs: refused before any run, the key named
bad() { # NAME EXPECTED_TEXT JSON
    printf '%s' "$3" >"$tmp/bad.json"
    rm -rf "$tmp/badout"
    "$sb" run "$tmp/bad.json" $plugin --out "$tmp/badout" --quiet >/dev/null 2>"$tmp/err"
    rc=$?
    if [ $rc -ne 2 ]; then fail "$1" "exit $rc, expected 2"; return; fi
    if [ -e "$tmp/badout/runs.jsonl" ] && [ -s "$tmp/badout/runs.jsonl" ]; then fail "$1" "a run started"; return; fi
    if grep -qF -- "$2" "$tmp/err"; then pass "$1"; else fail "$1" "message lacks '$2': $(cat "$tmp/err")"; fi
}
m="\"models\": [\"$model\"]"
t="\"tasks\": [{\"name\": \"perplexity\", \"params\": {\"data\": \"$text\"}}]"
bad config_unknown_key "unknown key 'modles'" "{\"modles\": [], $t}"
bad config_unknown_method "methods[0]: unknown method 'gptqq'" "{$m, \"methods\": [{\"name\": \"gptqq\"}], $t}"
bad config_unknown_param "methods[0].params: unknown parameter 'sparsty'" "{$m, \"methods\": [{\"name\": \"example-magnitude\", \"params\": {\"sparsty\": 0.5}}], $t}"
bad config_wrong_type "methods[1].params: 'sparsity' must be a number" "{$m, \"methods\": [{\"name\": \"dense\"}, {\"name\": \"example-magnitude\", \"params\": {\"sparsity\": \"half\"}}], $t}"
bad config_out_of_range "methods[0].params: 'bits' = 9 is out of range" "{$m, \"methods\": [{\"name\": \"example-round\", \"params\": {\"bits\": [4, 9]}}], $t}"
bad config_task_param "tasks[0].params: 'protocol' must be one of" "{$m, \"methods\": [{\"name\": \"dense\"}], \"tasks\": [{\"name\": \"perplexity\", \"params\": {\"protocol\": \"gptx\"}}]}"
bad config_missing_model "models[0]: '$tmp/nope' does not exist" "{\"models\": [\"$tmp/nope\"], \"methods\": [{\"name\": \"dense\"}], $t}"
bad config_bad_seed "seeds[0]: must be a non-negative integer" "{$m, \"methods\": [{\"name\": \"dense\"}], $t, \"seeds\": [-1]}"
bad config_malformed_json "malformed JSON" "{$m, \"methods\": [}"
bad config_unknown_step_method "methods[0].steps[1]: unknown method 'no-such-method'" "{$m, \"methods\": [{\"steps\": [{\"name\": \"dense\"}, {\"name\": \"no-such-method\"}]}], $t}"

# --- 7. plugins: listed, run above; a wrong ABI is refused
if "$sb" list methods --plugin "$plugins/example_methods.so" | grep -q "example-magnitude"; then pass plugin_listed; else fail plugin_listed "example-magnitude not listed"; fi
"$sb" list --plugin "$plugins/wrong_abi.so" >/dev/null 2>"$tmp/err"
rc=$?
if [ $rc -eq 2 ] && grep -qE "plugin ABI version [0-9]+, this slimbench needs [0-9]+ \(rebuild it" "$tmp/err"; then pass plugin_wrong_abi_refused; else fail plugin_wrong_abi_refused "rc=$rc: $(cat "$tmp/err")"; fi
"$sb" list --plugin "$tmp/none.so" >/dev/null 2>"$tmp/err"
if [ $? -eq 2 ] && grep -q "cannot load plugin" "$tmp/err"; then pass plugin_missing_file; else fail plugin_missing_file "$(cat "$tmp/err")"; fi

# --- 8. eval from flags prints the metric and writes the record
"$sb" eval --model "$model" --task perplexity --protocol llamacpp --n-ctx 64 --data "$text" --out "$tmp/eval" --quiet >"$tmp/out" 2>"$tmp/err"
if [ $? -eq 0 ] && grep -q "ppl" "$tmp/out" && [ "$(wc -l <"$tmp/eval/runs.jsonl")" -eq 1 ]; then pass eval_single_run; else fail eval_single_run "$(cat "$tmp/err")"; fi
"$sb" eval --model "$model" --task perplexity --n-cxt 64 --data "$text" --out "$tmp/eval2" >/dev/null 2>"$tmp/err"
if [ $? -eq 2 ] && grep -q "unknown flag '--n-cxt'" "$tmp/err"; then pass eval_unknown_flag; else fail eval_unknown_flag "$(cat "$tmp/err")"; fi

# --- 9. a failing run is recorded as failed with its error, and the sweep goes on
cat >"$tmp/failing.json" <<JSON
{"models": ["$model"], "methods": [{"name": "dense"}],
 "tasks": [{"name": "perplexity", "params": {"data": "$tmp/missing.txt", "protocol": "gptq", "seq": 64}},
           {"name": "perplexity", "params": {"data": "$text", "protocol": "gptq", "seq": 64, "chunks": 2}}]}
JSON
"$sb" run "$tmp/failing.json" --out "$tmp/failing" --quiet >/dev/null 2>&1
rc=$?
if [ $rc -eq 1 ] && grep -q '"status":"failed","error":"perplexity: .*missing.txt' "$tmp/failing/runs.jsonl" &&
    [ "$(grep -c '"status":"ok"' "$tmp/failing/runs.jsonl")" -eq 1 ]; then
    pass failed_run_recorded
else
    fail failed_run_recorded "rc=$rc: $(cut -c1-200 "$tmp/failing/runs.jsonl" 2>/dev/null)"
fi
