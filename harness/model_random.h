/* model_random.h - a Llama-shaped model with random f32 weights, built in
 * memory.  The speed benchmark uses it (real weights are not needed to
 * time matrix products) and tests use it where any model will do. */
#ifndef SB_MODEL_RANDOM_H
#define SB_MODEL_RANDOM_H

#include <stdint.h>

#include "model.h"

typedef struct sb_random_shape {
    int n_vocab, d_model, n_layer, n_head, n_kv_head, ff, max_positions;
    bool tied_head;
} sb_random_shape;

int sb_model_new_random(const sb_random_shape *shape, uint64_t seed, sb_model **out, sb_err *err);
/* Rounds every f32 linear and the embedding table (a tied head follows it) to
 * bf16 (bf16 true) or f16, as a 16-bit checkpoint of the model would load. */
int sb_model_round_to_16bit(sb_model *m, bool bf16, sb_err *err);

#endif
