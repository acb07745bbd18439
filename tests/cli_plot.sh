#!/usr/bin/env bash
# cli_plot.sh - `slimbench plot` from the command line: from the fixture
# results (plus a dense run and a speed run added here) it writes data files
# and gnuplot scripts, and real PNG and SVG files when gnuplot is installed;
# a changed record changes the plot data and the image; without gnuplot it
# still writes the data and scripts, says so in one line and exits 0; a bad
# DIR or flag exits 2 with one line naming it.
set -u
sb=${SB_SLIMBENCH:-./slimbench}
base=tests/fixtures/results/baseline/runs.jsonl
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

pass() { echo "PASS $1"; }
fail() { echo "FAIL $1: $2"; }

# The fixture, plus a dense run of each task and a speed run of gptq 4-bit,
# all derived from fixture records so the test follows the schema.
mkdir -p "$tmp/a"
{
    cat "$base"
    sed -n '/"run_id":"1a01/{s/"run_id":"1a01000000000001"/"run_id":"0d01000000000001"/; s/"name":"gptq","family":"quantization"/"name":"dense","family":"none"/; s/"params":{"bits":3,"calib":"wikitext2 \\"raw\\""}/"params":{}/; s/"value":20.5,/"value":16.0,/; s/"bits_per_weight":3.25/"bits_per_weight":16.0/; s/"weight_bytes":66625000/"weight_bytes":328000000/; p}' "$base"
    sed -n '/"run_id":"1a02/{s/"run_id":"1a02000000000002"/"run_id":"0d02000000000002"/; s/"name":"gptq","family":"quantization"/"name":"dense","family":"none"/; s/"params":{"bits":3,"calib":"wikitext2 \\"raw\\""}/"params":{}/; s/"acc":{"value":0.55,/"acc":{"value":0.62,/; s/"acc_norm":{"value":0.57,/"acc_norm":{"value":0.64,/; s/"bits_per_weight":3.25/"bits_per_weight":16.0/; s/"weight_bytes":66625000/"weight_bytes":328000000/; p}' "$base"
    sed -n '/"run_id":"2b01/{s/"run_id":"2b01000000000003"/"run_id":"2b05000000000009"/; s/"task":{[^}]*}}/"task":{"name":"speed","protocol":"speed:test","params":{}}/; s/"metrics":{.*}},"details"/"metrics":{"decode_latency_ms_mean":{"value":12.5,"stderr":0.2,"direction":"lower","unit":"ms"},"decode_tokens_per_s":{"value":80,"stderr":1,"direction":"higher","unit":"tokens\/s"}},"details"/; p}' "$base"
} >"$tmp/a/runs.jsonl"
if [ "$(wc -l <"$tmp/a/runs.jsonl")" -eq 11 ] && grep -q '"name":"dense"' "$tmp/a/runs.jsonl" &&
    grep -q '"decode_latency_ms_mean"' "$tmp/a/runs.jsonl"; then pass plot_setup; else
    fail plot_setup "the fixture edits did not apply ($(wc -l <"$tmp/a/runs.jsonl") records)"; fi

# A copy with one perplexity changed (gptq 4-bit: 17.25 -> 19.75).
mkdir -p "$tmp/b"
sed 's/"ppl":{"value":17.25,/"ppl":{"value":19.75,/' "$tmp/a/runs.jsonl" >"$tmp/b/runs.jsonl"
cmp -s "$tmp/a/runs.jsonl" "$tmp/b/runs.jsonl" && fail plot_setup_change "sed changed nothing"

have_gnuplot=0
command -v gnuplot >/dev/null 2>&1 && have_gnuplot=1
ppl=quality_llama-160m_perplexity_ppl

# plot DIR OUT [flags...]: runs slimbench plot, keeps status, stdout, stderr
plot() {
    local dir=$1 out=$2; shift 2
    "$sb" plot "$dir" --out "$out" "$@" >"$tmp/out" 2>"$tmp/err"
    rc=$?
}

plot "$tmp/a" "$tmp/out_a"
cp "$tmp/out" "$tmp/out_a.stdout"
if [ "$rc" -eq 0 ]; then pass plot_exit_0; else fail plot_exit_0 "status $rc: $(cat "$tmp/err")"; fi
missing=""
for n in $ppl quality_llama-160m_mc_acc retention_llama-160m latency_llama-160m throughput_llama-160m memory_llama-160m; do
    for ext in dat gp; do [ -s "$tmp/out_a/$n.$ext" ] || missing="$missing $n.$ext"; done
done
if [ -z "$missing" ]; then pass plot_data_and_scripts; else fail plot_data_and_scripts "missing:$missing"; fi

# The data: the Pareto front, the dense reference, retention and MiB values.
dat=$tmp/out_a/$ppl.dat
if grep -q '^# runs: 0d01000000000001 1a01000000000001 2b01000000000003 3c01000000000005 4d01000000000007$' "$dat" &&
    grep -q '^# dense reference: 16$' "$dat" && grep -q '^4.5 18 1.3 0 "rtn(group=64)"$' "$dat" &&
    [ "$(sed -n '/^# index 1/,$p' "$dat" | grep -vc '^#')" -eq 2 ]; then pass plot_quality_data; else
    fail plot_quality_data "$(cat "$dat")"; fi
if grep -q '^"method" "mc:acc" "mc:acc_norm" "perplexity:ppl"$' "$tmp/out_a/retention_llama-160m.dat" &&
    grep -q '^"gptq(bits=4)" 96.77419355 96.875 92.75362319$' "$tmp/out_a/retention_llama-160m.dat"; then
    pass plot_retention_data; else fail plot_retention_data "$(cat "$tmp/out_a/retention_llama-160m.dat")"; fi
if grep -q '^"dense" 312.8051758 858.3068848$' "$tmp/out_a/memory_llama-160m.dat" &&
    grep -q '^"gptq(bits=4)" 12.5$' "$tmp/out_a/latency_llama-160m.dat"; then
    pass plot_bar_data; else fail plot_bar_data "$(cat "$tmp/out_a/memory_llama-160m.dat" "$tmp/out_a/latency_llama-160m.dat")"; fi
if grep -q "^set ylabel 'accuracy (%)'$" "$tmp/out_a/quality_llama-160m_mc_acc.gp" &&
    grep -q "^set xlabel 'bits per weight'$" "$tmp/out_a/$ppl.gp" && grep -q '^dense = 16$' "$tmp/out_a/$ppl.gp"; then
    pass plot_script_labels; else fail plot_script_labels "$(grep '^set [xy]label\|^dense' "$tmp/out_a/"*.gp)"; fi

# Data depend on the records only: the same records elsewhere give the same data.
mkdir -p "$tmp/a2"
tac "$tmp/a/runs.jsonl" >"$tmp/a2/runs.jsonl"
plot "$tmp/a2" "$tmp/out_a2"
data() { grep -v '^#' "$1"; }
if [ "$(data "$tmp/out_a/$ppl.dat")" = "$(data "$tmp/out_a2/$ppl.dat")" ]; then pass plot_deterministic; else
    fail plot_deterministic "record order changed the data"; fi

# A changed record changes the data file (and the image).
plot "$tmp/b" "$tmp/out_b"
if [ "$(data "$tmp/out_a/$ppl.dat")" != "$(data "$tmp/out_b/$ppl.dat")" ] &&
    grep -q '^4.25 19.75 1.25 ' "$tmp/out_b/$ppl.dat"; then pass plot_data_follows_records; else
    fail plot_data_follows_records "$(data "$tmp/out_b/$ppl.dat")"; fi

if [ "$have_gnuplot" -eq 1 ]; then
    sig=$(head -c 8 "$tmp/out_a/$ppl.png" | od -An -tx1 | tr -d ' \n')
    if [ "$sig" = "89504e470d0a1a0a" ] && [ "$(wc -c <"$tmp/out_a/$ppl.png")" -gt 1000 ]; then pass plot_png; else
        fail plot_png "signature '$sig', $(wc -c <"$tmp/out_a/$ppl.png" 2>/dev/null) bytes"; fi
    if grep -q '<svg' "$tmp/out_a/memory_llama-160m.svg" && grep -q 'bits per weight' "$tmp/out_a/$ppl.svg"; then
        pass plot_svg; else fail plot_svg "no <svg or no axis label in the SVG files"; fi
    if [ "$(ls "$tmp/out_a"/*.png | wc -l)" -eq 7 ] && [ "$(ls "$tmp/out_a"/*.svg | wc -l)" -eq 7 ] &&
        grep -q "^$tmp/out_a/retention_llama-160m.png$" "$tmp/out_a.stdout"; then pass plot_all_drawn; else
        fail plot_all_drawn "$(ls "$tmp/out_a") / $(cat "$tmp/out_a.stdout")"; fi
    if ! cmp -s "$tmp/out_a/$ppl.png" "$tmp/out_b/$ppl.png"; then pass plot_png_follows_records; else
        fail plot_png_follows_records "the PNG did not change"; fi
    plot "$tmp/a" "$tmp/out_svg" --format svg --metric perplexity:ppl
    if [ "$rc" -eq 0 ] && [ -s "$tmp/out_svg/$ppl.svg" ] && ! ls "$tmp/out_svg"/*.png >/dev/null 2>&1 &&
        [ ! -e "$tmp/out_svg/quality_llama-160m_mc_acc.dat" ]; then pass plot_format_and_metric; else
        fail plot_format_and_metric "status $rc: $(ls "$tmp/out_svg")"; fi
else
    for t in plot_png plot_svg plot_all_drawn plot_png_follows_records plot_format_and_metric; do
        echo "SKIP $t: gnuplot not installed (apt-get install gnuplot-nox)"
    done
fi

# Without gnuplot: data and scripts anyway, one clear line, exit 0.
PATH=/nonexistent-dir "$sb" plot "$tmp/a" --out "$tmp/out_nognu" >"$tmp/out" 2>"$tmp/err"
rc=$?
if [ "$rc" -eq 0 ] && grep -q "^slimbench: gnuplot not found: wrote the data and scripts to $tmp/out_nognu; install gnuplot" "$tmp/err" &&
    [ -s "$tmp/out_nognu/$ppl.dat" ] && [ -s "$tmp/out_nognu/$ppl.gp" ] && ! ls "$tmp/out_nognu"/*.png >/dev/null 2>&1; then
    pass plot_no_gnuplot; else fail plot_no_gnuplot "status $rc: $(cat "$tmp/err")"; fi

# The default OUTDIR is DIR/plots.
PATH=/nonexistent-dir "$sb" plot "$tmp/a" >/dev/null 2>&1
if [ -s "$tmp/a/plots/$ppl.dat" ]; then pass plot_default_out; else fail plot_default_out "no $tmp/a/plots/$ppl.dat"; fi

# Bad input: exit 2, one line on stderr naming the culprit.
expect_fail() {
    local name=$1 want=$2; shift 2
    "$sb" plot "$@" >/dev/null 2>"$tmp/err"
    local rc=$? lines
    lines=$(wc -l <"$tmp/err")
    if [ "$rc" -ne 2 ]; then fail "$name" "exit status $rc, expected 2"; return; fi
    if [ "$lines" -ne 1 ]; then fail "$name" "$lines lines on stderr: $(cat "$tmp/err")"; return; fi
    if ! grep -qF -- "$want" "$tmp/err"; then fail "$name" "message lacks '$want': $(cat "$tmp/err")"; return; fi
    pass "$name"
}
expect_fail plot_no_such_dir "$tmp/nope" "$tmp/nope"
expect_fail plot_bad_format "--format gif" "$tmp/a" --format gif
expect_fail plot_unknown_metric "--metric mc:bleu" "$tmp/a" --metric mc:bleu
expect_fail plot_unknown_flag "unknown argument '--bogus'" "$tmp/a" --bogus
