/* model_hash.h - a content identifier for a checkpoint on disk, without
 * reading gigabytes: FNV-1a 64 over every small file (config, tokenizer,
 * index) in full and, for weight files, their size, first and last MiB and
 * 64 evenly spaced 64 KiB samples.  Two different checkpoints of the same
 * shapes differ in those samples; a copied or moved checkpoint keeps its
 * id, so run ids (and --resume) follow the content, not the path. */
#ifndef SB_MODEL_HASH_H
#define SB_MODEL_HASH_H

#include "error.h"

/* out: 16 hex digits and a NUL. */
int sb_model_hash(const char *path, char out[17], sb_err *err);

#endif
