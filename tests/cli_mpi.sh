#!/usr/bin/env bash
# cli_mpi.sh - one sweep shared by MPI ranks gives the same records as the
# serial runner. Needs mpirun and the MPI build (make test-mpi does both);
# skipped otherwise.
set -u
sb=${SB_SLIMBENCH:-./slimbench}
mpi_sb=${SB_MPI_SLIMBENCH:-}
plugins=${SB_PLUGIN_DIR:?}
if ! command -v mpirun >/dev/null || [ -z "$mpi_sb" ] || [ ! -x "$mpi_sb" ]; then
    echo "SKIP mpi_sweep: needs mpirun (openmpi-bin) and the MPI build: run make test-mpi"
    exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
model=tests/reference/tasks/model
text=tests/reference/tasks/text.raw
cat >"$tmp/sweep.json" <<JSON
{"name": "mpi-test", "models": ["$model"],
 "methods": [{"name": "dense"}, {"name": "example-round", "params": {"bits": [8, 4, 3]}}],
 "tasks": [{"name": "perplexity", "params": {"data": "$text", "protocol": "gptq", "seq": 64, "chunks": 4}}]}
JSON
fingerprint() {
    awk -F'"metrics":' '{ split($2, a, "\"details\":"); match($1, /"run_id":"[0-9a-f]+"/);
                          print substr($1, RSTART, RLENGTH) " " a[1] }' "$1/runs.jsonl" 2>/dev/null | sort
}
"$sb" run "$tmp/sweep.json" --plugin "$plugins/example_methods.so" --out "$tmp/serial" --quiet >/dev/null 2>&1
mpirun --allow-run-as-root --oversubscribe -np 3 "$mpi_sb" run "$tmp/sweep.json" --plugin "$plugins/example_methods.so" \
    --out "$tmp/mpi" --quiet >/dev/null 2>"$tmp/err"
rc=$?
a=$(fingerprint "$tmp/serial")
b=$(fingerprint "$tmp/mpi")
if [ $rc -eq 0 ] && [ -n "$a" ] && [ "$(echo "$a" | wc -l)" -eq 4 ] && [ "$a" = "$b" ]; then
    echo "PASS mpi_sweep_equals_serial"
else
    echo "FAIL mpi_sweep_equals_serial: rc=$rc $(tail -2 "$tmp/err")"
fi
