/* slicegpt.h - SliceGPT's rotate-and-slice (methods/slicegpt.c) on a given
 * calibration set, exposed so tests can run it on fixed calibration tokens
 * (the tiny reference models have no tokenizer) and compare with the
 * PyTorch reference in tests/reference/slicegpt/. */
#ifndef SB_SLICEGPT_H
#define SB_SLICEGPT_H

#include <cjson/cJSON.h>
#include <stdbool.h>

#include "calibration.h"

typedef struct sb_slicegpt_opts {
    double sparsity;     /* share of the embedding dimension to remove, [0, 1) */
    int round_interval;  /* the kept width is rounded down to a multiple of this */
    bool slice_head;     /* slice the last block's output and the head too */
    const char *dtype;   /* storage of the new weights: "f32", "f16", "bf16", or "auto"/NULL: the
                            block linears' own f16/bf16 when all share it (the authors keep the
                            model's dtype), else f32 */
} sb_slicegpt_opts;

/* The kept width: floor((1 - sparsity) * d_model) rounded down to a
 * multiple of round_interval (the authors' run_slicegpt.py). */
int sb_slicegpt_width(int d_model, const sb_slicegpt_opts *o);

/* Fuses the norms, rotates every residual-stream signal into its PCA basis
 * (computed from `set` passed through the already-sliced earlier blocks)
 * and slices it.  Adds widths and PCA statistics to details (may be NULL).
 * SB_EINPUT, before changing anything, for models it cannot slice. */
int sb_slicegpt_slice(sb_model *m, const sb_calib_set *set, const sb_slicegpt_opts *o, const sb_run_ctx *ctx,
                      cJSON *details, sb_err *err);

#endif
