#!/bin/sh
# bench_token_reduce.sh - token reduction on a ViT/DeiT: FLOPs and measured
# latency of PyramidDrop and Zero-TPrune at several keep ratios against the
# dense model, measured in the same run (image-speed task).
#
#   tests/bench_token_reduce.sh [MODEL_DIR] [BATCH]
#
# MODEL_DIR: a Hugging Face ViT/DeiT folder (default: the tiny test fixture,
# whose latency is mostly overhead; use a real-size model, e.g. a
# ViT-Tiny/DeiT-Tiny folder, for meaningful timings). Not part of make test.
set -eu
model=${1:-tests/reference/vit/vit}
batch=${2:-1}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
run() { # method, method params...
    method=$1
    shift
    args=""
    for p in "$@"; do args="$args --method-param $p"; done
    # shellcheck disable=SC2086
    ./slimbench eval --model "$model" --task image-speed --batch "$batch" --duration 3 --warmup 3 \
        --method "$method" $args --out "$out" --quiet 2>/dev/null |
        awk -v label="$method $*" '
            $1 == "images_per_s" { ips = $2 }
            $1 == "latency_ms_p50" { p50 = $2 }
            $1 == "gflops_per_image" { gf = $2 }
            $1 == "flops_ratio" { fr = $2 }
            END { printf "%-34s %10.4f %8.3f %10.2f %10.3f\n", label, gf, fr, ips, p50 }'
}
printf "%-34s %10s %8s %10s %10s\n" "method" "GFLOP/img" "FLOPs/x" "images/s" "p50 ms"
run dense
for r in 0.7 0.5 0.3; do run pyramid-drop "lambda=$r"; done
for r in 0.7 0.5 0.3; do run zero-tprune "ratio=$r"; done
