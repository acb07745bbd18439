/* calibration.h - calibration data and block-by-block capture for methods
 * that look at activations (GPTQ and the methods built on it).
 *
 * 1. Drawing the calibration set (sb_calib_draw): n_samples windows of
 *    seq_len tokens from a text file, reproducibly.  Two samplings, both
 *    GPTQ's own (IST-DASLab/gptq datautils.py), driven by a Mersenne
 *    Twister seeded exactly like Python's random.seed(seed), so the same
 *    token ids give the same windows as the authors' code:
 *     - "windows" (get_wikitext2): the whole text (raw file, or JSONL
 *       documents joined by "\n\n") is tokenized once with the model's
 *       special tokens; sample k starts at random.randint(0, n - seq_len - 1).
 *     - "documents" (get_c4): draw a document with random.randint(0,
 *       n_docs - 1) until one tokenizes to more than seq_len tokens, then a
 *       window inside it as above.  Raw files are split into WikiText
 *       articles first.
 *    The set records the file path, its FNV-1a 64 hash, the sampling, count,
 *    length and seed (sb_calib_set_describe).
 *
 * 2. Running the model block by block (sb_calib_run): the embeddings of
 *    every sample are computed once; then for block l the caller runs
 *    the block on the current hidden states as often as it likes (each
 *    run uses the block's current weights, so a method can compress part
 *    of the block and run it again: GPTQ's "true sequential" order), with
 *    statistics of chosen linears' inputs gathered through the engine's
 *    observer hook, and finally advances: the block's outputs with its
 *    compressed weights become block l+1's inputs.  So every block sees
 *    inputs produced by the already-compressed earlier blocks.
 *
 * Memory: two hidden-state buffers of n_samples x seq_len x d_model floats
 * (inputs and outputs of the current block; 128 x 2048 x 4096 is 4 GiB
 * each), one session for a single sequence of seq_len tokens (its KV cache
 * covers every layer: n_layer x 2 x seq_len x kv_dim floats), and per
 * requested linear cols x cols doubles for H plus 2 x cols for the channel
 * statistics.  Statistics are accumulated, never the activations. */
#ifndef SB_CALIBRATION_H
#define SB_CALIBRATION_H

#include <cjson/cJSON.h>
#include <stdint.h>

#include "plugin.h"

/* ---- the calibration set ------------------------------------------------- */

typedef struct sb_calib_config {
    const char *path;       /* text file */
    const char *format;     /* "raw" or "jsonl" (NULL: raw) */
    const char *field;      /* JSONL text field (NULL: "text") */
    const char *sampling;   /* "windows" or "documents" (NULL: windows) */
    int n_samples, seq_len;
    uint64_t seed;
} sb_calib_config;

typedef struct sb_calib_set {
    int n_samples, seq_len;
    int32_t *tokens;        /* [n_samples * seq_len], or NULL when hidden is given */
    float *hidden;          /* [n_samples][seq_len][d_model] block-0 inputs given directly (images:
                             * patch-embedded hidden states, calibration_images.c), or NULL */
    char *path;
    char sampling[16];
    uint64_t data_hash;     /* FNV-1a 64 of the file */
    uint64_t seed;
    int64_t source_tokens;  /* windows: tokens of the whole text; documents: draws tried */
} sb_calib_set;

/* Checks the configuration alone (counts, names); no file access. */
int sb_calib_config_check(const sb_calib_config *cfg, sb_err *err);
int sb_calib_draw(const sb_tokenizer *tok, const sb_calib_config *cfg, sb_calib_set *out, sb_err *err);
void sb_calib_set_free(sb_calib_set *set);
/* {"data": path, "data_hash": "fnv1a64:…", "sampling", "n_samples", "seq_len", "seed"}; NULL when out of memory. */
cJSON *sb_calib_set_describe(const sb_calib_set *set);

/* Image models: n_samples images of the image set at cfg->path (all when
 * it has fewer), drawn by a partial Fisher-Yates shuffle driven by
 * sb_py_random_randint seeded with cfg->seed (the first k of the shuffle,
 * in draw order), each preprocessed as the checkpoint says and
 * patch-embedded (class tokens and positions added): every sample is one
 * image's n_prefix + n_patches tokens (cfg->seq_len is ignored).
 * calibration_images.c. */
struct sb_image_set;
int sb_calib_draw_images(const sb_model *m, const sb_calib_config *cfg, sb_calib_set *out, sb_err *err);
/* The same from images already in memory (tests; source names the set). */
int sb_calib_from_images(const sb_model *m, const struct sb_image_set *images, const sb_calib_config *cfg,
                         sb_calib_set *out, sb_err *err);

/* Python's random module, for GPTQ's sampling: MT19937 seeded as
 * random.seed(seed) and random.randint(lo, hi). Exposed for tests. */
typedef struct sb_py_random {
    uint32_t mt[624];
    int index;
} sb_py_random;
void sb_py_random_seed(sb_py_random *r, uint64_t seed);
int64_t sb_py_random_randint(sb_py_random *r, int64_t lo, int64_t hi);

/* ---- statistics of a linear's inputs ------------------------------------ */

/* Accumulated in float64 from the rows x a linear receives.
 * H follows gptq's add_batch exactly: a running mean over calibration
 * sequences, H = (2 / n_seqs) · Σ_tokens x xᵀ (each observer call is one
 * sequence here), so H's scale is that of the authors' code. The
 * token-normalised second moment is H · n_seqs / (2 · n_rows). */
typedef struct sb_linear_stats {
    const sb_linear *target; /* which linear (its address in the block) */
    int64_t cols;
    int64_t n_seqs;          /* observer calls (sequences) so far */
    int64_t n_rows;          /* token rows so far */
    double *h;               /* [cols * cols], symmetric */
    double *mean;            /* [cols] per-channel mean of x */
    double *absmax;          /* [cols] per-channel max |x| */
    double *sum;             /* [cols] running Σ x, behind mean */
    double *chunk;           /* [SB_STATS_CHUNK * cols] rows converted to float64 */
} sb_linear_stats;

enum { SB_STATS_CHUNK = 512 }; /* rows converted to float64 per product */

/* Zeroed statistics for a linear with target->cols inputs. */
int sb_linear_stats_init(sb_linear_stats *st, const sb_linear *target, sb_err *err);
void sb_linear_stats_free(sb_linear_stats *st);
/* Adds rows x[n_rows, cols] as one sequence (gptq's add_batch with a batch of one). */
void sb_linear_stats_add(sb_linear_stats *st, const float *x, int64_t n_rows);
/* The same, with the products for H spread over pool's threads (NULL: the
 * caller's); the result is bit for bit the same for any thread count. */
void sb_linear_stats_add_pool(sb_linear_stats *st, const float *x, int64_t n_rows, sb_pool *pool);

/* ---- block-by-block capture ------------------------------------------- */

typedef struct sb_calib_run sb_calib_run;

/* Embeds every sample (the block-0 inputs). The model must stay alive and
 * keep its shapes; methods may replace the block's linears between calls
 * (SliceGPT narrows the current block's residual widths, never above
 * d_model: the session's buffers are sized for the model as it was). */
int sb_calib_run_new(const sb_model *m, const sb_calib_set *set, const sb_run_ctx *ctx, sb_calib_run **out,
                     sb_err *err);
void sb_calib_run_free(sb_calib_run *r);
int sb_calib_run_layer(const sb_calib_run *r); /* the block whose inputs are held */

/* Runs the current block on every sample with its current weights,
 * writing the outputs (see sb_calib_outputs) and adding the inputs of
 * stats[i].target to stats[i] (n_stats may be 0).  When the run's context
 * computes on CUDA (ctx->backend CUDA, ctx->cuda open) each H accumulates
 * on the device (hessian_device.h), the forward passes staying on the
 * host, and is in stats[i].h on return: the same H up to the order of its
 * float64 sums. */
int sb_calib_run_block(sb_calib_run *r, sb_linear_stats *stats, int n_stats, sb_err *err);
/* Recomputes the current block's outputs with its current (compressed)
 * weights and makes them the next block's inputs. */
int sb_calib_advance(sb_calib_run *r, sb_err *err);

/* Hidden states [n_samples][seq_len][d_model]: the current block's
 * inputs, and its outputs from the latest sb_calib_run_block.  When the
 * stream is narrower (a sliced model), sample k still starts at
 * k * seq_len * d_model, its rows packed at the block's width. */
const float *sb_calib_inputs(const sb_calib_run *r);
const float *sb_calib_outputs(const sb_calib_run *r);

/* ---- GPTQ's sequential pipeline, shared by the GPTQ family ------------- */

/* A block's linears in a fixed order: q, k, v, o, gate, up, down. */
enum { SB_BLOCK_LINEARS = 7 };
extern const char *const sb_block_linear_names[SB_BLOCK_LINEARS];
sb_linear *sb_block_linear(sb_block *b, int which);

/* Compresses one linear given the statistics of its inputs. */
typedef int (*sb_calib_linear_fn)(void *user, int layer, int which, const sb_linear_stats *st, sb_err *err);

/* Walks every block in order: per stage, one pass of the block gathers the
 * inputs of the stage's linears (coming from the already-compressed
 * earlier stages and blocks), then fn compresses each; after the last
 * stage the block's compressed outputs become the next block's inputs.
 * Stages ("true sequential", as gptq's llama.py): [k, v, q] -> [o] ->
 * [up, gate] -> [down]; parallel-residual blocks [k, v, q, up, gate] ->
 * [o, down]; with true_sequential false, all seven in one stage. */
int sb_calib_sequential(sb_calib_run *r, sb_model *m, bool true_sequential, sb_calib_linear_fn fn, void *user,
                        sb_err *err);

#endif
