#!/usr/bin/env bash
# Runs every test program (C binaries in $SB_TEST_BIN, shell tests tests/cli_*.sh)
# from the repository root and ends with the line "N passed, N failed, N skipped".
# A program that exits non-zero without printing a FAIL line (a crash, a sanitizer
# report) counts as one failure of its own.
set -u
bin_dir=${SB_TEST_BIN:?}
export SB_SLIMBENCH=${SB_SLIMBENCH:-./slimbench}
pass=0 fail=0 skip=0
log=$(mktemp)
trap 'rm -f "$log"' EXIT
run_one() {
    local name=$1; shift
    "$@" >"$log" 2>&1
    local rc=$?
    cat "$log"
    local p f s
    p=$(grep -c '^PASS ' "$log"); f=$(grep -c '^FAIL ' "$log"); s=$(grep -c '^SKIP ' "$log")
    pass=$((pass + p)); fail=$((fail + f)); skip=$((skip + s))
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        echo "FAIL $name: exited with status $rc"
        fail=$((fail + 1))
    fi
}
for t in "$bin_dir"/test_*; do
    [ -x "$t" ] || continue
    run_one "$(basename "$t")" "$t"
done
for t in tests/cli_*.sh; do
    [ -f "$t" ] || continue
    run_one "$(basename "$t")" bash "$t"
done
echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]
