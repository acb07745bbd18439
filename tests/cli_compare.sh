#!/usr/bin/env bash
# cli_compare.sh - `slimbench compare` as CI uses it: exit 1 when a perplexity
# rises or an accuracy falls beyond tolerance, when a run is missing or failed;
# 0 when metrics improve or stay within tolerance; 2 on bad input, with one
# stderr line naming the file.  The JUnit file is well-formed XML.  Also a
# smoke test of `report` and `merge` from the command line.
set -u
sb=${SB_SLIMBENCH:-./slimbench}
base=tests/fixtures/results/baseline/runs.jsonl
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# variant NAME SED_EXPR: a copy of the baseline edited by sed, as a results dir
variant() {
    mkdir -p "$tmp/$1"
    sed -e "$2" "$base" >"$tmp/$1/runs.jsonl"
    if cmp -s "$base" "$tmp/$1/runs.jsonl" && [ -n "$2" ]; then echo "FAIL compare_setup: sed '$2' changed nothing"; fi
}

# expect NAME STATUS WANTED_TEXT CMD...: exit status and a line of stdout containing the text
expect() {
    local name=$1 want_rc=$2 want=$3; shift 3
    "$@" >"$tmp/out" 2>"$tmp/err"
    local rc=$?
    if [ "$rc" -ne "$want_rc" ]; then echo "FAIL $name: exit status $rc, expected $want_rc: $(tail -3 "$tmp/out") $(cat "$tmp/err")"; return; fi
    if [ -n "$want" ] && ! grep -qF -- "$want" "$tmp/out"; then echo "FAIL $name: output lacks '$want'"; return; fi
    echo "PASS $name"
}

# expect_fail NAME WANTED_TEXT CMD...: status 2, one stderr line containing WANTED_TEXT
expect_fail() {
    local name=$1 want=$2; shift 2
    "$@" >"$tmp/out" 2>"$tmp/err"
    local rc=$? lines
    lines=$(wc -l <"$tmp/err")
    if [ "$rc" -ne 2 ]; then echo "FAIL $name: exit status $rc, expected 2"; return; fi
    if [ "$lines" -ne 1 ]; then echo "FAIL $name: $lines lines on stderr, expected 1: $(cat "$tmp/err")"; return; fi
    if ! grep -qF -- "$want" "$tmp/err"; then echo "FAIL $name: message lacks '$want': $(cat "$tmp/err")"; return; fi
    echo "PASS $name"
}

variant same ''
variant ppl_up 's/"ppl":{"value":20.5,/"ppl":{"value":21.5,/'           # +4.9 %
variant acc_down 's/"acc":{"value":0.6,/"acc":{"value":0.57,/'          # -5 %
variant better 's/"ppl":{"value":17.25,/"ppl":{"value":17.0,/; s/"acc":{"value":0.55,/"acc":{"value":0.56,/'
variant ppl_slightly_up 's/"ppl":{"value":20.5,/"ppl":{"value":20.6,/'  # +0.49 %
variant missing '/"run_id":"3c01/d'
variant failed '/"run_id":"4d02/s/"status":"ok"/"status":"failed","error":"out of <memory> \& more"/'
variant slower 's/"task_s":10.0,/"task_s":20.0,/'
variant bigger 's/"bits_per_weight":4.5,/"bits_per_weight":4.75,/'
variant acc_missing '/"run_id":"1a02/s/"acc":{/"accuracy":{/'

expect compare_identical 0 "0 regressions" "$sb" compare "$tmp/same" "$base"
expect compare_ppl_rise 1 "REGRESSION" "$sb" compare "$tmp/ppl_up" "$base"
grep -q '^1a01000000000001 .*perplexity:ppl .*REGRESSION' "$tmp/out" && echo "PASS compare_ppl_rise_line" ||
    echo "FAIL compare_ppl_rise_line: $(grep REGRESSION "$tmp/out")"
expect compare_acc_fall 1 "mc:acc " "$sb" compare "$tmp/acc_down" "$base"
expect compare_improved 0 "improved" "$sb" compare "$tmp/better" "$base"
expect compare_default_tolerance 1 "REGRESSION" "$sb" compare "$tmp/ppl_slightly_up" "$base"
expect compare_within_tolerance 0 "within tolerance" "$sb" compare "$tmp/ppl_slightly_up" "$base" --tolerance ppl=0.01
expect compare_qualified_tolerance 0 "" "$sb" compare "$tmp/ppl_up" "$base" --tolerance perplexity:ppl=5%
expect compare_qualified_beats_bare 1 "" "$sb" compare "$tmp/ppl_up" "$base" --tolerance ppl=10%,perplexity:ppl=1%
expect compare_default_tolerance_flag 0 "" "$sb" compare "$tmp/ppl_up" "$base" --default-tolerance 0.05
expect compare_ignore 0 "" "$sb" compare "$tmp/ppl_up" "$base" --ignore ppl
expect compare_missing_run 1 "run missing from current" "$sb" compare "$tmp/missing" "$base"
expect compare_failed_run 1 "run failed in current" "$sb" compare "$tmp/failed" "$base"
expect compare_missing_metric 1 "missing in current" "$sb" compare "$tmp/acc_missing" "$base"
expect compare_new_run_ok 0 "new run (not in baseline)" "$sb" compare "$base" "$tmp/missing"
expect compare_timings_not_gated 0 "info (not gated)" "$sb" compare "$tmp/slower" "$base"
expect compare_timings_explicit 1 "timings:task_s" "$sb" compare "$tmp/slower" "$base" --tolerance task_s=0.5
expect compare_timings_ignored 0 "" "$sb" compare "$tmp/slower" "$base" --ignore timings --tolerance task_s=0.5
expect compare_bits_per_weight 1 "memory:bits_per_weight" "$sb" compare "$tmp/bigger" "$base"

# bad input: exit 2 and one line naming the file or flag
expect_fail compare_no_such_dir "$tmp/nope" "$sb" compare "$tmp/nope" "$base"
mkdir -p "$tmp/broken"
{ head -2 "$base"; echo '{"schema":1,"run_id":'; tail -2 "$base"; } >"$tmp/broken/runs.jsonl"
expect_fail compare_malformed_middle "$tmp/broken/runs.jsonl:3: invalid JSON" "$sb" compare "$tmp/broken" "$base"
expect_fail compare_bad_tolerance "--tolerance ppl=abc" "$sb" compare "$tmp/same" "$base" --tolerance ppl=abc
expect_fail compare_tolerance_no_metric "expected METRIC=REL" "$sb" compare "$tmp/same" "$base" --tolerance 0.1
expect_fail compare_one_path "CURRENT and BASELINE" "$sb" compare "$base"
expect_fail compare_unknown_flag "unknown argument" "$sb" compare "$tmp/same" "$base" --bogus
expect_fail compare_junit_unwritable "$tmp/nodir/j.xml" "$sb" compare "$tmp/same" "$base" --junit "$tmp/nodir/j.xml"

# JUnit: one testcase per run, a failure for each regressed run, well-formed XML
variant two_bad 's/"ppl":{"value":20.5,/"ppl":{"value":21.5,/; /"run_id":"4d02/s/"status":"ok"/"status":"failed","error":"<\/testcase> \& \\"quoted\\"\\n]]>"/'
"$sb" compare "$tmp/two_bad" "$base" --junit "$tmp/junit.xml" >/dev/null 2>&1
cases=$(grep -c '<testcase ' "$tmp/junit.xml"); failures=$(grep -c '<failure ' "$tmp/junit.xml")
if [ "$cases" -eq 8 ] && [ "$failures" -eq 2 ]; then echo "PASS compare_junit_cases"; else
    echo "FAIL compare_junit_cases: $cases testcases, $failures failures"; fi
if command -v xmllint >/dev/null 2>&1; then
    if xmllint --noout "$tmp/junit.xml" 2>"$tmp/xmlerr"; then echo "PASS compare_junit_xmllint"; else
        echo "FAIL compare_junit_xmllint: $(head -3 "$tmp/xmlerr")"; fi
else
    echo "SKIP compare_junit_xmllint: xmllint not installed (test_report checks well-formedness itself)"
fi

# report and merge from the command line
expect report_md 0 "| llama-160m | rtn(bits=4,group=64) |" "$sb" report "$tmp/same"
expect report_csv 0 '"model","method"' "$sb" report "$tmp/same" --format csv --relative-to gptq
expect_fail report_bad_format "--format xml" "$sb" report "$tmp/same" --format xml
expect_fail report_no_dir "$tmp/nope" "$sb" report "$tmp/nope"
expect_fail report_unknown_metric "no metric 'bleu'" "$sb" report "$tmp/same" --metrics bleu
mkdir -p "$tmp/shard1" "$tmp/shard2"
head -5 "$base" >"$tmp/shard1/runs.jsonl"
tail -5 "$base" >"$tmp/shard2/runs.jsonl"
expect merge_shards 0 "-> 8 runs" "$sb" merge "$tmp/merged" "$tmp/shard1" "$tmp/shard2"
ids() { grep -o '"run_id":"[0-9a-f]*"' "$1"; }
if [ "$(ids "$tmp/merged/runs.jsonl")" = "$(ids "$base" | sort)" ]; then echo "PASS merge_shards_sorted_dedup"; else
    echo "FAIL merge_shards_sorted_dedup: run ids $(ids "$tmp/merged/runs.jsonl" | tr '\n' ' ')"; fi
expect merge_compare_clean 0 "0 regressions" "$sb" compare "$tmp/merged" "$base"
expect_fail merge_bad_input "$tmp/broken/runs.jsonl:3" "$sb" merge "$tmp/merged2" "$tmp/shard1" "$tmp/broken"
