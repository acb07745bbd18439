/* model_snapshot.h - restore a model after a method changed it, without
 * reloading it from disk.
 *
 * The runner loads each model once and applies many methods to it in
 * turn.  A method never frees or writes into the model's existing weight
 * payloads (f32 ones are read-only mappings of the file); it replaces
 * linears, norms or the block array with new allocations.  A snapshot
 * records the model's structure, every pointer it owned and copies of the
 * small arrays (norms, biases); restoring frees whatever the method
 * allocated and puts the structure and small arrays back. */
#ifndef SB_MODEL_SNAPSHOT_H
#define SB_MODEL_SNAPSHOT_H

#include "model.h"

typedef struct sb_model_snapshot sb_model_snapshot;

int sb_model_snapshot_take(const sb_model *m, sb_model_snapshot **out, sb_err *err);
void sb_model_snapshot_restore(sb_model *m, const sb_model_snapshot *s);
void sb_model_snapshot_free(sb_model_snapshot *s);
/* The model as it was when the snapshot was taken, read-only, valid while
 * the snapshot lives (the original's norm arrays are only as the snapshot
 * found them if no method wrote into them, which methods must not do). */
const sb_model *sb_model_snapshot_reference(const sb_model_snapshot *s);

#endif
