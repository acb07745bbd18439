/* sweep.h - sweep configs: models × methods(parameter grids) × tasks ×
 * backends × seeds, read from JSON and expanded into a run matrix.
 *
 *   {
 *     "name": "demo",
 *     "models": ["path/to/model", ...],
 *     "methods": [ {"name": "dense"},
 *                  {"name": "rtn", "params": {"bits": [4, 3], "group_size": 128}},
 *                  {"steps": [{"name": "gptq", "params": {"bits": 3}},
 *                             {"name": "eora", "params": {"rank": [16, 32]}}]} ],
 *     "tasks":   [ {"name": "perplexity", "params": {"data": "wiki.test.raw", "protocol": "llamacpp"}} ],
 *     "backends": ["cpu"],     (optional, default ["cpu"])
 *     "seeds": [0],            (optional, default [0])
 *     "threads": 0             (optional, 0 = one per core)
 *   }
 *
 * A parameter whose value is an array is a grid: every combination of
 * every gridded parameter is one variant.  Everything is validated before
 * any run starts; errors name the file and the key's place in it. */
#ifndef SB_SWEEP_H
#define SB_SWEEP_H

#include <stdint.h>

#include "plugin.h"

enum { SB_MAX_STEPS = 8 };

typedef struct sb_method_step {
    const sb_method *method;
    sb_params params;
} sb_method_step;

typedef struct sb_method_variant {
    int n_steps;
    sb_method_step steps[SB_MAX_STEPS];
    char label[256];   /* "rtn(bits=4,group_size=128)+eora(rank=16)" */
} sb_method_variant;

typedef struct sb_task_variant {
    const sb_task *task;
    sb_params params;
    char label[256];
} sb_task_variant;

typedef struct sb_sweep {
    char name[64];
    char *path;
    char **models;
    int n_models;
    sb_method_variant *methods;
    int n_methods;
    sb_task_variant *tasks;
    int n_tasks;
    char **backends;
    int n_backends;
    uint64_t *seeds;
    int n_seeds;
    int threads;
} sb_sweep;

/* One run of the matrix: indices into the sweep's lists. */
typedef struct sb_run_spec {
    int model, method, task, backend, seed;
} sb_run_spec;

int sb_sweep_load(const char *path, sb_sweep *out, sb_err *err);
/* A sweep of one model, one method variant and one task variant (from flags). */
int sb_sweep_single(const char *model, const sb_method_variant *method, const sb_task_variant *task, uint64_t seed,
                    sb_sweep *out, sb_err *err);
void sb_sweep_free(sb_sweep *s);

/* Expands methods × tasks over a parsed JSON entry (exposed for `eval`). */
/* Replaces the sweep's backends with the one named (the --backend flag); SB_EINPUT if unknown. */
int sb_sweep_set_backend(sb_sweep *s, const char *name, sb_err *err);
int sb_method_variant_label(sb_method_variant *v);
int sb_task_variant_label(sb_task_variant *v);

/* The run matrix in its fixed order: model, seed, method, task, backend.
 * Keeping a model's methods together lets the runner apply each method
 * once for all of its tasks. shard_k in [0, shard_n): every shard_n-th run
 * starting at shard_k (shard_n = 1: all). */
int sb_sweep_matrix(const sb_sweep *s, int shard_k, int shard_n, sb_run_spec **runs, int *n_runs, sb_err *err);

/* Normalized JSON of a method variant / task variant, as recorded and hashed. */
cJSON *sb_method_variant_json(const sb_method_variant *v);
cJSON *sb_task_variant_json(const sb_task_variant *v);

#endif
