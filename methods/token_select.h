/* token_select.h - what the token-reduction methods (pyramid_drop.c,
 * zero_tprune.c) share: stage boundaries and top-k selection of patch
 * tokens by a score, prefix (class) tokens always kept. */
#ifndef SB_TOKEN_SELECT_H
#define SB_TOKEN_SELECT_H

#include "plugin.h"
#include "vision.h"

/* "auto" -> blocks n_layer/4, n_layer/2, 3*n_layer/4 (PyramidDrop's
 * [8, 16, 24] of 32, distinct and >= 1); else a comma list of block indices
 * in [1, n_layer), increasing. Tokens drop before each listed block. */
int sb_token_stages(const char *text, int n_layer, const char *method, sb_token_reducer *r, sb_err *err);
bool sb_token_is_stage(const sb_token_reducer *r, int layer);
/* Patch tokens kept from n_patch at one stage: int(n_patch * ratio), at least 1. */
int sb_token_keep(int n_patch, double ratio);
/* keep[0..n_prefix) = the prefix, then the n_keep - n_prefix patch tokens
 * (indices n_prefix..n_tok-1) of highest score[i] (ties: lower index), in
 * increasing index order. alive[i] false excludes token i. */
void sb_token_top(const float *score, const bool *alive, int n_tok, int n_prefix, int n_keep, int32_t *keep);
/* A new reducer (malloc'ed, zeroed, named) for m, refusing text models and a second reducer. */
int sb_token_reducer_new(const sb_model *m, const char *name, sb_token_reducer **out, sb_err *err);
/* Method report: planned token counts per block and FLOPs against dense. */
cJSON *sb_token_report(const sb_model *m);
/* The last step of both methods' apply: stage boundaries from `layers`,
 * then r becomes m's reducer (on failure r is freed) and the report says
 * what the forward pass will run. */
int sb_token_reducer_install(sb_model *m, sb_token_reducer *r, const char *layers, sb_method_report *report, sb_err *err);

#endif
