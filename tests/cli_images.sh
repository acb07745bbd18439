#!/usr/bin/env bash
# cli_images.sh - `slimbench data images PATH`: loads every supported source
# and prints counts per class; bad files exit 2 with a message naming the file.
# Prints one line per case: PASS name | FAIL name: why.
set -u
. "$(dirname "$0")/lib_cli.sh"
ref=tests/reference/images
cli_subcommand="data images"

# expect_ok NAME PATTERN ARGS...: exit 0 and stdout matching PATTERN
expect_ok() {
    local name=$1 pattern=$2; shift 2
    if ! "$sb" data images "$@" >"$tmp/out" 2>"$tmp/err"; then fail "$name" "exit $? ($(head -c 200 "$tmp/err"))"
    elif ! grep -qE -- "$pattern" "$tmp/out"; then fail "$name" "output '$(head -c 200 "$tmp/out")' lacks /$pattern/"
    else pass "$name"; fi
}
expect_ok images_folder "5 images, 2 classes" "$ref/folder"
expect_ok images_cifar10 "3 images, 10 classes, 32x32, 3 channels" "$ref/cifar10/data_batch_1.bin"
expect_ok images_mnist "3 images, 10 classes, 4x5, 1 channel" "$ref/mnist/train-images-idx3-ubyte"
expect_ok images_builtin "250 images, 10 classes, 32x32" builtin:shapes:train --limit 250
expect_error images_truncated_png "cut.png: bad or truncated PNG" "$ref/bad/truncated"
expect_error images_cifar_size "data_batch_9.bin: .*not a whole number" "$ref/bad/data_batch_9.bin"
expect_error images_idx_magic "magic-images-idx3-ubyte: bad IDX magic" "$ref/bad/magic-images-idx3-ubyte"
expect_error images_idx_counts "2 images but .*3 labels" "$ref/bad/count-images-idx3-ubyte"
# a CIFAR batch cut short on the fly: not a whole record
head -c 5000 "$ref/cifar10/data_batch_1.bin" >"$tmp/test_batch.bin"
expect_error images_cifar_cut "test_batch.bin: 5000 bytes" "$tmp/test_batch.bin"
expect_error images_no_path "needs a PATH"
expect_error images_bad_limit "--limit must be" builtin:shapes --limit -3
exit $status
