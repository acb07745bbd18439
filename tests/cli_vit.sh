#!/usr/bin/env bash
# cli_vit.sh - image models through the command line: a sweep over dense,
# PyramidDrop and Zero-TPrune on the tiny ViT fixture with the image-speed
# task records FLOPs per image that fall with the keep ratio (ratio 1 =
# dense); a text task on an image model and an image task on a text model
# fail with exit status 2-style messages, not crashes; image-classification
# on the built-in image set with a random ViT labelled with its classes.
set -u
sb=${SB_SLIMBENCH:-./slimbench}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cat >"$tmp/sweep.json" <<JSON
{"name": "vit-tokens", "models": ["tests/reference/vit/vit"],
 "methods": [{"name": "dense"}, {"name": "pyramid-drop", "params": {"lambda": [1, 0.5], "layers": "1"}},
             {"name": "zero-tprune", "params": {"ratio": 0.25, "layers": "1"}}],
 "tasks": [{"name": "image-speed", "params": {"iterations": 3, "duration": 0}}]}
JSON
"$sb" run "$tmp/sweep.json" --out "$tmp/out" --quiet >/dev/null 2>"$tmp/err"
rc=$?
metric() { # value of metric $2 in the record whose label starts with $1
    grep -F "\"label\":\"$1" "$tmp/out/runs.jsonl" | grep -o "\"$2\":{\"value\":[-0-9.e+]*" | sed 's/.*://'
}
if [ $rc -ne 0 ]; then
    echo "FAIL vit_token_sweep_runs: exit $rc: $(tail -2 "$tmp/err")"
else
    dense=$(metric 'dense"' gflops_per_image)
    keep=$(metric 'pyramid-drop(lambda=1,' gflops_per_image)
    half=$(metric 'pyramid-drop(lambda=0.5,' gflops_per_image)
    zt=$(metric 'zero-tprune(' gflops_per_image)
    if awk -v d="$dense" -v k="$keep" -v h="$half" -v z="$zt" \
        'BEGIN { exit !(d != "" && d == k && h < d && z < h && z > 0) }'; then
        echo "PASS vit_token_sweep_flops_fall"
    else
        echo "FAIL vit_token_sweep_flops_fall: dense $dense, lambda 1 $keep, lambda 0.5 $half, zero-tprune 0.25 $zt"
    fi
fi
out=$("$sb" eval --model tests/reference/vit/vit --task speed --prompt-lengths 8 --decode-prompt 4 --new-tokens 2 \
    --out "$tmp/e1" 2>&1)
if echo "$out" | grep -q "no token embedding"; then
    echo "PASS vit_text_task_refused"
else
    echo "FAIL vit_text_task_refused: $out"
fi
out=$("$sb" eval --model tests/reference/models/gpt2 --task image-speed --out "$tmp/e2" 2>&1)
if echo "$out" | grep -q "not an image model"; then
    echo "PASS vit_image_task_on_text_model_refused"
else
    echo "FAIL vit_image_task_on_text_model_refused: $out"
fi
out=$("$sb" eval --model tests/reference/vit/vit_shapes --task image-classification --dataset builtin:shapes --limit 16 \
    --out "$tmp/e3" 2>&1)
if echo "$out" | grep -q "top1" && echo "$out" | grep -q "mean_class_acc"; then
    echo "PASS vit_image_classification_builtin"
else
    echo "FAIL vit_image_classification_builtin: $(echo "$out" | tail -3)"
fi
