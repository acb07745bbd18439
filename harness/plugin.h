/* plugin.h - the public API a method or task plugin is written against.
 *
 * A method compresses a model in place (it may replace any sb_linear of the
 * model IR with one in another weight format, change norms, drop blocks); a
 * task measures a model and returns metrics.  Built-in plugins sit in the
 * static tables of registry.c; external ones are shared objects exporting
 *     const sb_plugin *sb_plugin_entry(void);
 * whose abi field must equal SB_PLUGIN_ABI.  Everything a plugin needs is
 * reachable from this header: the model IR (model.h), running it
 * (forward.h), its tokenizer, the thread pool, vector kernels (vec.h),
 * parameters and results.
 *
 * Methods: never free or write into the model's existing payloads, norm or
 * bias arrays (f32 weights are read-only mappings of the checkpoint):
 * replace them with new allocations. The runner restores the original
 * model between methods by freeing what differs from its snapshot.
 *
 * Bump SB_PLUGIN_ABI whenever a struct in this header or one it includes
 * changes layout, so an old .so is refused instead of misread. */
#ifndef SB_PLUGIN_H
#define SB_PLUGIN_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdint.h>

#include "backend.h"
#include "error.h"
#include "forward.h"
#include "model.h"
#include "thread_pool.h"
#include "tokenizer.h"
#include "vec.h"

#define SB_PLUGIN_ABI 4

/* ---- parameters ---------------------------------------------------------- */

typedef enum { SB_PARAM_INT, SB_PARAM_FLOAT, SB_PARAM_BOOL, SB_PARAM_STRING } sb_param_type;

typedef struct sb_param_spec {
    const char *name;
    sb_param_type type;
    const char *dflt;     /* default written as text ("4", "0.01", "true", "wikitext2"); NULL: required */
    double min, max;      /* inclusive bounds for INT/FLOAT (ignored when min > max) */
    const char *choices;  /* STRING: allowed values "a|b|c", or NULL for any text */
    const char *help;
} sb_param_spec;

enum { SB_MAX_PARAMS = 32, SB_PARAM_STR_MAX = 512 };

typedef struct sb_param_value {
    const sb_param_spec *spec;
    double num;                      /* INT, FLOAT, BOOL (0/1) */
    char str[SB_PARAM_STR_MAX];      /* STRING; and every value as normalized text */
} sb_param_value;

/* One value for every parameter of a spec list, defaults filled in. */
typedef struct sb_params {
    int n;
    sb_param_value v[SB_MAX_PARAMS];
} sb_params;

/* From a JSON object (keys = parameter names). `where` names the place for
 * errors, e.g. "sweep.json: methods[1].params". Unknown keys, wrong types,
 * values out of range and missing required parameters are SB_EINPUT errors
 * naming the key. */
int sb_params_from_json(const sb_param_spec *specs, int n_specs, const cJSON *obj, const char *where, sb_params *out,
                        sb_err *err);
/* From "name=value" strings (command-line flags). */
int sb_params_from_strings(const sb_param_spec *specs, int n_specs, const char *const *assignments, int n,
                           const char *where, sb_params *out, sb_err *err);
double sb_param_num(const sb_params *p, const char *name);   /* 0 and a stderr note if unknown */
bool sb_param_bool(const sb_params *p, const char *name);
const char *sb_param_str(const sb_params *p, const char *name); /* "" if unknown */
/* Normalized JSON object: every parameter in spec order, numbers as numbers. */
cJSON *sb_params_to_json(const sb_params *p);

/* ---- papers, metrics, results -------------------------------------------- */

typedef struct sb_paper {
    const char *title;
    const char *arxiv;   /* "2210.17323", or NULL */
    const char *year;
} sb_paper;

typedef enum { SB_LOWER_IS_BETTER = -1, SB_NO_DIRECTION = 0, SB_HIGHER_IS_BETTER = 1 } sb_direction;

enum { SB_MAX_METRICS = 64 };

typedef struct sb_metric {
    char name[48];        /* "ppl", "acc", "acc_norm", "decode_tokens_per_s", ... */
    double value;
    double stderr_value;  /* NAN when the protocol has none */
    sb_direction direction;
    char unit[16];        /* "", "%", "s", "tokens/s", "bytes" */
} sb_metric;

typedef struct sb_task_result {
    char protocol[256];   /* pins every choice that changes the number, e.g. "ppl:llamacpp:n_ctx=512:bos=1" */
    int n_metrics;
    sb_metric metrics[SB_MAX_METRICS];
    cJSON *details;       /* task-specific extras (counts, percentiles, dataset hash); owned by the result */
} sb_task_result;

/* Appends a metric; returns SB_EINTERNAL when the table is full. */
int sb_result_add(sb_task_result *r, const char *name, double value, double stderr_value, sb_direction dir,
                  const char *unit, sb_err *err);
const sb_metric *sb_result_find(const sb_task_result *r, const char *name);
void sb_result_clear(sb_task_result *r);

/* ---- what the runner gives a plugin -------------------------------------- */

typedef struct sb_run_ctx {
    sb_pool *pool;             /* the run's one thread pool */
    uint64_t seed;             /* recorded in the run */
    const char *cache_dir;     /* where a task may cache across runs (e.g. dense log-probs for KLD) */
    bool model_is_reference;   /* the model is the unmodified one this sweep compares against */
    const char *model_id;      /* content hash of the loaded checkpoint, for cache keys */
    /* The model as loaded, before any step of this run changed it (its
     * blocks are the snapshot's copies), for methods that compensate an
     * earlier step's error (LoRC, EoRA). May be NULL. Read-only. */
    const sb_model *reference;
    /* Progress of long work: done out of total units (tokens, questions). May be NULL. */
    void (*progress)(void *user, double done, double total, const char *unit);
    void *progress_user;
    /* Where this step computes. A task: the run's backend (on CUDA the
     * model's device copy is m->device). A method: the run's backend when
     * the method sets per_backend, else the CPU, whose result every
     * backend's runs then share. Zero (a context built as {.pool = ...}) is
     * the CPU. */
    sb_backend_choice backend;
    /* The device opened for backend when it is CUDA (backend_cuda.h), else NULL. */
    struct sb_cuda_ctx *cuda;
} sb_run_ctx;

void sb_run_progress(const sb_run_ctx *ctx, double done, double total, const char *unit);

/* ---- methods and tasks --------------------------------------------------- */

typedef struct sb_method_report {
    double bits_per_weight;    /* exact, over the linear layers, scales/zeros/masks/factors included */
    uint64_t params_removed;
    bool real_quant;           /* weights are stored and multiplied in the compressed form */
    cJSON *details;            /* method-specific extras; owned */
} sb_method_report;

typedef struct sb_method {
    int abi;
    const char *name;          /* as written in configs: "gptq" */
    const char *family;        /* "quantization", "pruning", "low-rank", "slicing", ... */
    const char *summary;
    sb_paper paper;
    const sb_param_spec *params;
    int n_params;
    /* Compresses m in place. Parameters are already validated against `params`. */
    int (*apply)(sb_model *m, const sb_params *p, const sb_run_ctx *ctx, sb_method_report *report, sb_err *err);
    /* The method computes on the run's backend (ctx->backend, ctx->cuda), so
     * its result may differ between backends within rounding: the runner
     * applies it once per backend instead of once for all. */
    bool per_backend;
} sb_method;

typedef struct sb_task {
    int abi;
    const char *name;          /* "perplexity", "mc", "speed", ... */
    const char *summary;
    sb_paper paper;            /* the benchmark's paper, when there is one */
    const sb_param_spec *params;
    int n_params;
    int (*run)(const sb_model *m, const sb_params *p, const sb_run_ctx *ctx, sb_task_result *out, sb_err *err);
} sb_task;

typedef struct sb_plugin {
    int abi;                   /* SB_PLUGIN_ABI of the headers it was built with */
    const sb_method *const *methods;
    int n_methods;
    const sb_task *const *tasks;
    int n_tasks;
} sb_plugin;

typedef const sb_plugin *(*sb_plugin_entry_fn)(void);
#define SB_PLUGIN_ENTRY "sb_plugin_entry"

#endif
