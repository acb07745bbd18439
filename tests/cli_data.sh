#!/usr/bin/env bash
# cli_data.sh - `slimbench data`: corpus, copy games, multiple-choice sets and BPE
# tokenizer written to disk, deterministic, loadable by the rest of
# slimbench; exit status 2 with a message for bad flags.
# Prints one line per case: PASS name | FAIL name: why.
set -u
. "$(dirname "$0")/lib_cli.sh"
cli_subcommand="data"

if "$sb" data corpus --out "$tmp/a" --stories 200 --seed 3 >/dev/null 2>"$tmp/err" &&
    "$sb" data corpus --out "$tmp/b" --stories 200 --seed 3 >/dev/null 2>&1 &&
    "$sb" data corpus --out "$tmp/c" --stories 200 --seed 4 >/dev/null 2>&1; then
    ok=1
    for f in train.txt valid.txt test.txt; do
        [ -s "$tmp/a/$f" ] || { fail data_corpus "$f is empty or missing"; ok=0; }
        cmp -s "$tmp/a/$f" "$tmp/b/$f" || { fail data_corpus "$f differs between two runs with seed 3"; ok=0; }
    done
    cmp -s "$tmp/a/train.txt" "$tmp/c/train.txt" && { fail data_corpus "seeds 3 and 4 give the same train.txt"; ok=0; }
    [ "$ok" -eq 1 ] && pass data_corpus
else
    fail data_corpus "exit status $?: $(head -c 200 "$tmp/err")"
fi

# Copy games: the games files, deterministic; --games-percent keeps train.txt and adds the mix.
if "$sb" data games --out "$tmp/g" --paragraphs 100 --seed 3 >/dev/null 2>"$tmp/err" &&
    "$sb" data games --out "$tmp/g2" --paragraphs 100 --seed 3 >/dev/null 2>&1 &&
    "$sb" data corpus --out "$tmp/m" --stories 200 --seed 3 --games-percent 50 >/dev/null 2>&1; then
    ok=1
    for f in games_train.txt games_valid.txt; do
        [ -s "$tmp/g/$f" ] || { fail data_games "$f is empty or missing"; ok=0; }
        cmp -s "$tmp/g/$f" "$tmp/g2/$f" || { fail data_games "$f differs between two runs with seed 3"; ok=0; }
    done
    grep -q " says the end: " "$tmp/g/games_train.txt" || { fail data_games "no restart echo in games_train.txt"; ok=0; }
    cmp -s "$tmp/a/train.txt" "$tmp/m/train.txt" || { fail data_games "--games-percent changed train.txt"; ok=0; }
    [ "$(wc -c <"$tmp/m/train+games.txt")" -gt "$(wc -c <"$tmp/m/train.txt")" ] &&
        grep -q " tells it again: " "$tmp/m/train+games.txt" || { fail data_games "train+games.txt has no games"; ok=0; }
    [ "$ok" -eq 1 ] && pass data_games
else
    fail data_games "exit status $?: $(head -c 200 "$tmp/err")"
fi

if "$sb" data mc --out "$tmp/mc" --n 25 --seed 2 >/dev/null 2>"$tmp/err"; then
    ok=1
    for f in agreement recall arithmetic; do
        n=$(wc -l <"$tmp/mc/$f.jsonl")
        [ "$n" -eq 25 ] || { fail data_mc "$f.jsonl has $n lines, want 25"; ok=0; }
        grep -q '"gold":' "$tmp/mc/$f.jsonl" || { fail data_mc "$f.jsonl lacks gold"; ok=0; }
    done
    [ "$ok" -eq 1 ] && pass data_mc
else
    fail data_mc "exit status $?: $(head -c 200 "$tmp/err")"
fi

# The trained tokenizer goes through the ordinary loader: `slimbench tokenize` adds BOS 0 and
# encodes text the corpus never had.
if [ -s "$tmp/a/train.txt" ] && "$sb" data bpe --input "$tmp/a/train.txt" --vocab 400 --out "$tmp/tok" >"$tmp/out" 2>"$tmp/err"; then
    ids=$("$sb" tokenize --model "$tmp/tok" --text "Tom has two apples. Zoë!" 2>"$tmp/err")
    if [ -s "$tmp/tok/tokenizer.json" ] && [ -s "$tmp/tok/tokenizer_config.json" ] && [ "${ids%% *}" = 0 ] &&
        grep -q "400 tokens" "$tmp/out"; then
        pass data_bpe
    else
        fail data_bpe "ids '$ids', output '$(cat "$tmp/out")' $(head -c 200 "$tmp/err")"
    fi
else
    fail data_bpe "exit status $?: $(head -c 200 "$tmp/err")"
fi

expect_error data_no_subcommand "corpus, games, mc, bpe"
expect_error data_bad_games_percent "--games-percent must be" corpus --out "$tmp/x" --games-percent 101
expect_error data_games_no_out "needs --out" games --paragraphs 3
expect_error data_corpus_no_out "needs --out" corpus --stories 3
expect_error data_bad_stories "--stories must be" corpus --out "$tmp/x" --stories many
expect_error data_unknown_flag "unknown argument" mc --out "$tmp/x" --frobnicate 1
expect_error data_bpe_small_vocab "--vocab must be" bpe --input "$tmp/a/train.txt" --vocab 100 --out "$tmp/x"
expect_error data_bpe_missing_input "nope" bpe --input "$tmp/nope.txt" --vocab 300 --out "$tmp/x"
exit $status
