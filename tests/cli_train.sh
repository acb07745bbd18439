#!/usr/bin/env bash
# cli_train.sh - `slimbench train --init DIR`: a second training phase starts
# from DIR's weights (not a fresh random init), and a model whose architecture
# differs from the config's is refused with a message naming the field.
# Prints one line per case: PASS name | FAIL name: why.
set -u
. "$(dirname "$0")/lib_cli.sh"

tiny='"d_model": 32, "n_layer": 2, "n_head": 4, "n_kv_head": 2, "ff": 48, "max_positions": 64, "seq_len": 32, "batch": 2'
echo "{$tiny, \"steps\": 20, \"lr\": 0.003, \"eval_every\": 0}" >"$tmp/a.json"
# lr 1e-12 and no decay: one step moves no f32 weight, so the output is the start.
echo "{$tiny, \"steps\": 1, \"lr\": 1e-12, \"weight_decay\": 0, \"warmup\": 0, \"eval_every\": 0}" >"$tmp/still.json"
echo "{${tiny/\"d_model\": 32/\"d_model\": 16}, \"steps\": 1, \"eval_every\": 0}" >"$tmp/other.json"
echo "{$tiny, \"steps\": 1, \"eval_every\": 0, \"rope_theta\": 500000}" >"$tmp/theta.json"

train() { "$sb" train --data "$tmp/data/train.txt" --tokenizer "$tmp/tok" --threads 1 --quiet "$@"; }

if "$sb" data corpus --out "$tmp/data" --stories 60 >/dev/null 2>&1 &&
    "$sb" data bpe --input "$tmp/data/train.txt" --vocab 300 --out "$tmp/tok" >/dev/null 2>&1 &&
    train --config "$tmp/a.json" --out "$tmp/a" 2>"$tmp/err"; then
    if train --config "$tmp/still.json" --init "$tmp/a" --out "$tmp/b" 2>"$tmp/err" &&
        train --config "$tmp/still.json" --out "$tmp/c" 2>>"$tmp/err"; then
        if ! cmp -s "$tmp/a/model.safetensors" "$tmp/b/model.safetensors"; then
            fail train_init_weights "--init did not start from the given weights"
        elif cmp -s "$tmp/a/model.safetensors" "$tmp/c/model.safetensors"; then
            fail train_init_weights "without --init the same weights came out (the check cannot tell)"
        elif ! grep -q '"init"' "$tmp/b/train_log.json"; then
            fail train_init_weights "train_log.json does not record --init"
        else
            pass train_init_weights
        fi
    else
        fail train_init_weights "exit status $?: $(head -c 300 "$tmp/err")"
    fi
    train --config "$tmp/other.json" --init "$tmp/a" --out "$tmp/d" >/dev/null 2>"$tmp/err"
    rc=$?
    if [ "$rc" -ne 2 ]; then fail train_init_mismatch "exit $rc, want 2 ($(head -c 200 "$tmp/err"))"
    elif ! grep -q "d_model is 32, the config says 16" "$tmp/err"; then fail train_init_mismatch "message: $(head -c 200 "$tmp/err")"
    elif [ -e "$tmp/d/model.safetensors" ]; then fail train_init_mismatch "wrote a model anyway"
    else pass train_init_mismatch; fi
    train --config "$tmp/theta.json" --init "$tmp/a" --out "$tmp/f" >/dev/null 2>"$tmp/err"
    rc=$?
    if [ "$rc" -ne 2 ] || ! grep -q "rope_theta is 10000, the config says 500000" "$tmp/err"; then
        fail train_init_rope_theta "exit $rc: $(head -c 200 "$tmp/err")"
    else pass train_init_rope_theta; fi
    train --config "$tmp/a.json" --init "$tmp/nope" --out "$tmp/e" >/dev/null 2>"$tmp/err"
    rc=$?
    if [ "$rc" -ne 2 ] || ! grep -q "nope" "$tmp/err"; then fail train_init_missing "exit $rc: $(head -c 200 "$tmp/err")"
    else pass train_init_missing; fi
else
    fail train_init_weights "setup failed: $(head -c 300 "$tmp/err")"
fi
exit $status
