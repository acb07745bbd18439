# lib_cli.sh - what the shell tests share; each tests/cli_*.sh sources it first.
# (Named lib_ so that run_tests.sh, which runs every cli_*.sh, does not run it.)
#
# Sets: sb, the binary under test; tmp, a scratch folder removed on exit;
# status, 1 once any case has failed (the script ends with `exit $status`).
# pass NAME / fail NAME WHY print the runner's one line per case.
# expect_error NAME PATTERN ARGS...: `$sb $cli_subcommand ARGS` exits 2 with a
# message on stderr matching PATTERN (grep -E); a script sets cli_subcommand
# ("data", "train-vit", ...) before calling it.
sb=${SB_SLIMBENCH:-./slimbench}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
status=0
pass() { echo "PASS $1"; }
fail() { echo "FAIL $1: $2"; status=1; }

expect_error() {
    local name=$1 pattern=$2; shift 2
    # cli_subcommand is split on spaces on purpose: "data images" is two words.
    # shellcheck disable=SC2086
    "$sb" ${cli_subcommand-} "$@" >/dev/null 2>"$tmp/err"
    local rc=$?
    if [ "$rc" -ne 2 ]; then fail "$name" "exit $rc, want 2 ($(head -c 200 "$tmp/err"))"
    elif ! grep -qE -- "$pattern" "$tmp/err"; then fail "$name" "message '$(head -c 200 "$tmp/err")' lacks /$pattern/"
    else pass "$name"; fi
}
