#!/usr/bin/env bash
# cli_train_vit.sh - `slimbench train-vit`: a few steps on the built-in shapes
# write a Hugging Face ViT folder that --eval reads back; bad configs and
# image sets exit 2 with a message naming the problem.
# Prints one line per case: PASS name | FAIL name: why.
set -u
. "$(dirname "$0")/lib_cli.sh"
cli_subcommand="train-vit"

cat >"$tmp/tiny.json" <<'JSON'
{"patch": 8, "d_model": 16, "n_layer": 1, "n_head": 2, "ff": 32, "batch": 8, "steps": 3, "eval_every": 0}
JSON
if "$sb" train-vit --config "$tmp/tiny.json" --data builtin:shapes:valid --valid builtin:shapes:valid --test builtin:shapes:valid \
    --out "$tmp/vit" --threads 1 --quiet >"$tmp/out" 2>"$tmp/err"; then
    ok=1
    for f in config.json model.safetensors preprocessor_config.json train_log.json; do
        [ -s "$tmp/vit/$f" ] || { fail train_vit "$f missing"; ok=0; }
    done
    grep -q '"ViTForImageClassification"' "$tmp/vit/config.json" && grep -q '"checkerboard"' "$tmp/vit/config.json" ||
        { fail train_vit "config.json lacks the architecture or class names"; ok=0; }
    grep -q "test builtin:shapes:valid: loss" "$tmp/out" || { fail train_vit "no test line in '$(cat "$tmp/out")'"; ok=0; }
    [ "$ok" -eq 1 ] && pass train_vit
    if "$sb" train-vit --eval "$tmp/vit" --data builtin:shapes:valid >"$tmp/out" 2>"$tmp/err" &&
        grep -qE "accuracy 0\.[0-9]+ \(1000 images\)" "$tmp/out"; then pass train_vit_eval
    else fail train_vit_eval "$(cat "$tmp/out" "$tmp/err" | head -c 300)"; fi
else
    fail train_vit "exit $?: $(head -c 300 "$tmp/err")"
fi

echo '{"d_model": 16, "depth": 2}' >"$tmp/bad.json"
expect_error train_vit_unknown_key "unknown key 'depth'" --config "$tmp/bad.json" --out "$tmp/x"
echo '{"d_model": 10, "n_head": 3}' >"$tmp/heads.json"
expect_error train_vit_bad_heads "multiple of heads" --config "$tmp/heads.json" --out "$tmp/x" --data builtin:shapes:valid
expect_error train_vit_mixed_sizes "folder: image 1 is .* \(all must match\)|square images" --config "$tmp/tiny.json" \
    --out "$tmp/x" --data tests/reference/images/folder
expect_error train_vit_no_config "needs --config" --out "$tmp/x"
expect_error train_vit_eval_missing "config.json" --eval "$tmp/nowhere"
exit $status
