/* calibration.c - drawing calibration windows, input statistics of
 * linears, and the block-by-block pass (see calibration.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../datasets/text_dataset.h"
#include "blas.h"
#include "calibration.h"
#include "hessian_device.h"

/* ---- Python's random: MT19937 as CPython seeds and uses it ------------- */

enum { MT_N = 624, MT_M = 397 };

static void mt_init_genrand(sb_py_random *r, uint32_t s) {
    r->mt[0] = s;
    for (int i = 1; i < MT_N; i++) r->mt[i] = 1812433253u * (r->mt[i - 1] ^ (r->mt[i - 1] >> 30)) + (uint32_t)i;
    r->index = MT_N;
}

/* CPython's init_by_array (random_seed with an int key). */
static void mt_init_by_array(sb_py_random *r, const uint32_t *key, int len) {
    mt_init_genrand(r, 19650218u);
    int i = 1, j = 0;
    for (int k = MT_N > len ? MT_N : len; k; k--) {
        r->mt[i] = (r->mt[i] ^ ((r->mt[i - 1] ^ (r->mt[i - 1] >> 30)) * 1664525u)) + key[j] + (uint32_t)j;
        i++, j++;
        if (i >= MT_N) r->mt[0] = r->mt[MT_N - 1], i = 1;
        if (j >= len) j = 0;
    }
    for (int k = MT_N - 1; k; k--) {
        r->mt[i] = (r->mt[i] ^ ((r->mt[i - 1] ^ (r->mt[i - 1] >> 30)) * 1566083941u)) - (uint32_t)i;
        i++;
        if (i >= MT_N) r->mt[0] = r->mt[MT_N - 1], i = 1;
    }
    r->mt[0] = 0x80000000u;
}

static uint32_t mt_next(sb_py_random *r) {
    if (r->index >= MT_N) {
        for (int k = 0; k < MT_N; k++) {
            uint32_t y = (r->mt[k] & 0x80000000u) | (r->mt[(k + 1) % MT_N] & 0x7fffffffu);
            r->mt[k] = r->mt[(k + MT_M) % MT_N] ^ (y >> 1) ^ ((y & 1u) ? 0x9908b0dfu : 0u);
        }
        r->index = 0;
    }
    uint32_t y = r->mt[r->index++];
    y ^= y >> 11;
    y ^= (y << 7) & 0x9d2c5680u;
    y ^= (y << 15) & 0xefc60000u;
    return y ^ (y >> 18);
}

void sb_py_random_seed(sb_py_random *r, uint64_t seed) {
    /* the key is the seed's 32-bit words, least significant first; 0 is one word */
    uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    mt_init_by_array(r, key, key[1] ? 2 : 1);
}

/* random.getrandbits(k) for 1 <= k <= 64: 32-bit words filled low word first. */
static uint64_t py_getrandbits(sb_py_random *r, int k) {
    uint64_t out = 0;
    for (int shift = 0; k > 0; shift += 32, k -= 32) {
        uint32_t w = mt_next(r);
        if (k < 32) w >>= 32 - k;
        out |= (uint64_t)w << shift;
    }
    return out;
}

int64_t sb_py_random_randint(sb_py_random *r, int64_t lo, int64_t hi) {
    uint64_t n = (uint64_t)(hi - lo) + 1; /* _randbelow(n): rejection sampling on bit_length(n) bits */
    int k = 0;
    while (k < 64 && (n >> k)) k++;
    uint64_t v;
    do v = py_getrandbits(r, k);
    while (v >= n);
    return lo + (int64_t)v;
}

/* ---- the calibration set ------------------------------------------------- */

static const char *or_default(const char *s, const char *dflt) { return s && *s ? s : dflt; }

int sb_calib_config_check(const sb_calib_config *cfg, sb_err *err) {
    const char *fmt = or_default(cfg->format, "raw"), *smp = or_default(cfg->sampling, "windows");
    if (!cfg->path || !*cfg->path) return sb_err_set(err, SB_EINPUT, "calibration needs a text file (data=PATH)");
    if (cfg->n_samples < 1 || cfg->seq_len < 2)
        return sb_err_set(err, SB_EINPUT, "calibration needs n_samples >= 1 and seq_len >= 2 (got %d and %d)",
                          cfg->n_samples, cfg->seq_len);
    if (strcmp(fmt, "raw") && strcmp(fmt, "jsonl"))
        return sb_err_set(err, SB_EINPUT, "calibration format '%s': expected raw or jsonl", fmt);
    if (strcmp(smp, "windows") && strcmp(smp, "documents"))
        return sb_err_set(err, SB_EINPUT, "calibration sampling '%s': expected windows or documents", smp);
    return SB_OK;
}

/* Window k of the whole text, as gptq's get_wikitext2. */
static int draw_windows(const sb_tokenizer *tok, const sb_text_dataset *d, sb_py_random *rng, sb_calib_set *set,
                        sb_err *err) {
    int32_t *ids = NULL;
    size_t n = 0;
    int rc = sb_tokenizer_encode(tok, d->text, d->text_len, true, &ids, &n, err);
    if (rc) return rc;
    if ((int64_t)n <= set->seq_len) {
        free(ids);
        return sb_err_set(err, SB_EINPUT, "%s: %zu tokens, need more than seq_len = %d for calibration windows",
                          set->path, n, set->seq_len);
    }
    for (int k = 0; k < set->n_samples; k++) {
        int64_t start = sb_py_random_randint(rng, 0, (int64_t)n - set->seq_len - 1);
        memcpy(set->tokens + (int64_t)k * set->seq_len, ids + start, sizeof(int32_t) * (size_t)set->seq_len);
    }
    set->source_tokens = (int64_t)n;
    free(ids);
    return SB_OK;
}

enum { MAX_DRAWS_PER_SAMPLE = 10000 }; /* documents all too short: give up rather than loop forever */

/* One window from a random document long enough, as gptq's get_c4. */
static int draw_one_document(const sb_tokenizer *tok, const sb_text_dataset *d, sb_py_random *rng, sb_calib_set *set,
                             int k, sb_err *err) {
    for (int tries = 0; tries < MAX_DRAWS_PER_SAMPLE; tries++) {
        const sb_text_doc *doc = &d->docs[sb_py_random_randint(rng, 0, d->n_docs - 1)];
        int32_t *ids = NULL;
        size_t n = 0;
        int rc = sb_tokenizer_encode(tok, doc->text, doc->len, true, &ids, &n, err);
        if (rc) return rc;
        set->source_tokens++;
        if ((int64_t)n > set->seq_len) {
            int64_t start = sb_py_random_randint(rng, 0, (int64_t)n - set->seq_len - 1);
            memcpy(set->tokens + (int64_t)k * set->seq_len, ids + start, sizeof(int32_t) * (size_t)set->seq_len);
            free(ids);
            return SB_OK;
        }
        free(ids);
    }
    return sb_err_set(err, SB_EINPUT, "%s: no document of more than %d tokens in %d draws", set->path, set->seq_len,
                      MAX_DRAWS_PER_SAMPLE);
}

static int draw_documents(const sb_tokenizer *tok, sb_text_dataset *d, sb_py_random *rng, sb_calib_set *set,
                          sb_err *err) {
    int rc = d->n_docs > 0 ? SB_OK : sb_text_split_wikitext(d, err);
    if (rc) return rc;
    if (d->n_docs < 1) return sb_err_set(err, SB_EINPUT, "%s: no documents to draw from", set->path);
    for (int k = 0; !rc && k < set->n_samples; k++) rc = draw_one_document(tok, d, rng, set, k, err);
    return rc;
}

int sb_calib_draw(const sb_tokenizer *tok, const sb_calib_config *cfg, sb_calib_set *out, sb_err *err) {
    memset(out, 0, sizeof *out);
    int rc = sb_calib_config_check(cfg, err);
    if (rc) return rc;
    if (!tok) return sb_err_set(err, SB_EINPUT, "calibration needs the model's tokenizer; the checkpoint has none");
    sb_text_dataset d;
    memset(&d, 0, sizeof d);
    rc = sb_text_load(cfg->path, or_default(cfg->format, "raw"), or_default(cfg->field, "text"), &d, err);
    if (rc) return sb_err_prefix(err, "calibration data");
    out->n_samples = cfg->n_samples;
    out->seq_len = cfg->seq_len;
    out->seed = cfg->seed;
    out->data_hash = d.hash;
    snprintf(out->sampling, sizeof out->sampling, "%s", or_default(cfg->sampling, "windows"));
    out->path = strdup(cfg->path);
    out->tokens = sb_malloc(err, sizeof(int32_t) * (size_t)cfg->n_samples * (size_t)cfg->seq_len);
    if (!out->path || !out->tokens) rc = sb_err_set(err, SB_EINTERNAL, "out of memory drawing calibration samples");
    sb_py_random rng;
    sb_py_random_seed(&rng, cfg->seed);
    if (!rc && strcmp(out->sampling, "windows") == 0) rc = draw_windows(tok, &d, &rng, out, err);
    else if (!rc) rc = draw_documents(tok, &d, &rng, out, err);
    sb_text_free(&d);
    if (rc) sb_calib_set_free(out);
    return rc;
}

void sb_calib_set_free(sb_calib_set *set) {
    free(set->tokens);
    free(set->hidden);
    free(set->path);
    memset(set, 0, sizeof *set);
}

cJSON *sb_calib_set_describe(const sb_calib_set *set) {
    cJSON *o = cJSON_CreateObject();
    char hash[40];
    snprintf(hash, sizeof hash, "fnv1a64:%016llx", (unsigned long long)set->data_hash);
    bool ok = o && cJSON_AddStringToObject(o, "data", set->path) && cJSON_AddStringToObject(o, "data_hash", hash) &&
              cJSON_AddStringToObject(o, "sampling", set->sampling) &&
              cJSON_AddNumberToObject(o, "n_samples", set->n_samples) &&
              cJSON_AddNumberToObject(o, "seq_len", set->seq_len) &&
              cJSON_AddNumberToObject(o, "seed", (double)set->seed) &&
              cJSON_AddStringToObject(o, "rng", "python-random-mt19937");
    if (!ok) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

/* ---- statistics ---------------------------------------------------------- */

int sb_linear_stats_init(sb_linear_stats *st, const sb_linear *target, sb_err *err) {
    memset(st, 0, sizeof *st);
    int64_t c = target->cols;
    st->target = target;
    st->cols = c;
    st->h = sb_calloc(err, (size_t)(c * c), sizeof(double));
    st->mean = sb_calloc(err, (size_t)c, sizeof(double));
    st->absmax = sb_calloc(err, (size_t)c, sizeof(double));
    st->sum = sb_calloc(err, (size_t)c, sizeof(double));
    st->chunk = sb_malloc(err, sizeof(double) * (size_t)(SB_STATS_CHUNK * c));
    if (st->h && st->mean && st->absmax && st->sum && st->chunk) return SB_OK;
    sb_linear_stats_free(st);
    return SB_EINTERNAL;
}

void sb_linear_stats_free(sb_linear_stats *st) {
    free(st->h);
    free(st->mean);
    free(st->absmax);
    free(st->sum);
    free(st->chunk);
    memset(st, 0, sizeof *st);
}

/* Per-channel sums and maxima of one chunk already in float64. */
static void add_channel_stats(sb_linear_stats *st, const double *x, int64_t n_rows) {
    for (int64_t r = 0; r < n_rows; r++)
        for (int64_t c = 0; c < st->cols; c++) {
            double v = x[r * st->cols + c];
            st->sum[c] += v;
            if (fabs(v) > st->absmax[c]) st->absmax[c] = fabs(v);
        }
}

/* H += add · chunkᵀ·chunk on the upper triangle, as a fixed grid of
 * H_TILE x H_TILE tiles (one task each: dsyrk on the diagonal, dgemm
 * above it).  Every tile's sums run in the same order whichever thread
 * takes it, so H does not depend on the thread count. */
enum { H_TILE = 128 };

typedef struct syrk_job {
    sb_linear_stats *st;
    int64_t n_rows;
    double add;
    int tiles; /* per side */
} syrk_job;

static void syrk_tile(void *arg, int task, int worker) {
    (void)worker;
    const syrk_job *j = arg;
    int ti = 0, tj = task; /* task -> (ti, tj), ti <= tj, row by row of the upper triangle */
    while (tj >= j->tiles - ti) tj -= j->tiles - ti, ti++;
    tj += ti;
    int64_t c = j->st->cols, i0 = ti * (int64_t)H_TILE, j0 = tj * (int64_t)H_TILE;
    int ni = (int)(c - i0 < H_TILE ? c - i0 : H_TILE), nj = (int)(c - j0 < H_TILE ? c - j0 : H_TILE);
    const double *x = j->st->chunk;
    double *h = j->st->h + i0 * c + j0;
    if (ti == tj)
        cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, ni, (int)j->n_rows, j->add, x + i0, (int)c, 1.0, h, (int)c);
    else
        cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, ni, nj, (int)j->n_rows, j->add, x + i0, (int)c, x + j0,
                    (int)c, 1.0, h, (int)c);
}

/* gptq's running mean over sequences: H *= n / (n + 1); n += 1; H += (2 / n) · Σ x xᵀ.
 * Counts the sequence and returns the factor H keeps; *add is the new rows' weight. */
static double next_sequence(sb_linear_stats *st, double *add) {
    double keep = (double)st->n_seqs / (double)(st->n_seqs + 1);
    st->n_seqs++;
    *add = 2.0 / (double)st->n_seqs;
    return keep;
}

/* The channel statistics of rows x, a chunk at a time through st->chunk
 * (float64); each chunk also goes into H on the host when job is given. */
static void add_rows(sb_linear_stats *st, const float *x, int64_t n_rows, syrk_job *job, sb_pool *pool) {
    int64_t c = st->cols;
    for (int64_t r0 = 0; r0 < n_rows; r0 += SB_STATS_CHUNK) {
        int64_t nr = n_rows - r0 < SB_STATS_CHUNK ? n_rows - r0 : SB_STATS_CHUNK;
        for (int64_t i = 0; i < nr * c; i++) st->chunk[i] = (double)x[r0 * c + i];
        add_channel_stats(st, st->chunk, nr);
        if (!job) continue;
        job->n_rows = nr;
        sb_pool_run(pool, syrk_tile, job, job->tiles * (job->tiles + 1) / 2);
    }
    st->n_rows += n_rows;
    for (int64_t i = 0; i < c; i++) st->mean[i] = st->sum[i] / (double)st->n_rows;
}

void sb_linear_stats_add_pool(sb_linear_stats *st, const float *x, int64_t n_rows, sb_pool *pool) {
    int64_t c = st->cols;
    double add, keep = next_sequence(st, &add);
    for (int64_t i = 0; i < c * c; i++) st->h[i] *= keep;
    syrk_job job = {st, 0, add, (int)((c + H_TILE - 1) / H_TILE)};
    add_rows(st, x, n_rows, &job, pool);
    for (int64_t i = 0; i < c; i++)
        for (int64_t j = i + 1; j < c; j++) st->h[j * c + i] = st->h[i * c + j];
}

void sb_linear_stats_add(sb_linear_stats *st, const float *x, int64_t n_rows) { sb_linear_stats_add_pool(st, x, n_rows, NULL); }

/* sb_linear_stats_add with H accumulated in dev instead of st->h (which
 * gets it with sb_hessian_device_get); the channel statistics as on the CPU. */
static int stats_add_device(sb_linear_stats *st, sb_hessian_device *dev, const float *x, int64_t n_rows, sb_err *err) {
    double add, keep = next_sequence(st, &add);
    int rc = sb_hessian_device_add(dev, x, n_rows, keep, add, err);
    add_rows(st, x, n_rows, NULL, NULL);
    return rc;
}

/* ---- block-by-block capture --------------------------------------------- */

struct sb_calib_run {
    const sb_model *m;
    const sb_calib_set *set;
    const sb_run_ctx *ctx;
    sb_session *session;    /* one sequence of seq_len tokens */
    float *in, *out;        /* [n_samples][seq_len][d] */
    int layer;
    sb_linear_stats *stats; /* while a block runs with statistics */
    int n_stats;
    /* Linears fed the very same rows (q, k, v; gate, up) share one
     * accumulation: mirror[i] = j when stats i received exactly what j did
     * in every pass (-1: its own, -2: not seen yet); last_x holds the rows
     * of the latest accumulated call, for the comparison. */
    int *mirror;
    float *last_x;
    int64_t last_floats, last_cap;
    int last;              /* stats index that accumulated last_x, or -1 */
    bool share, mixed;     /* sharing on; a linear mirrored in some passes only */
    /* A method computing on CUDA: each linear's H accumulates on the device
     * during a pass ([n_stats], else NULL) and comes down at its end; the
     * observer cannot return an error, so the first one waits in dev_err. */
    sb_hessian_device **dev_h;
    int dev_rc;
    sb_err dev_err;
};

/* Each sample's slot holds seq_len rows of up to d_model floats: a sliced
 * stream (SliceGPT) is narrower and fills only the slot's start. */
static int64_t sample_floats(const sb_calib_run *r) { return (int64_t)r->set->seq_len * r->m->d_model; }

/* Observer: inputs of the current block's requested linears go to their statistics. */
/* The stats index whose accumulation stats i's rows x[floats] repeat, or
 * -1: the rows of the latest accumulated call, compared in full (a copy and a
 * memcmp cost O(rows·cols), H costs O(rows·cols²)). */
static int same_rows_as(const sb_calib_run *r, int i, const float *x, int64_t floats) {
    if (r->last < 0 || floats != r->last_floats || r->stats[r->last].cols != r->stats[i].cols ||
        memcmp(x, r->last_x, sizeof(float) * (size_t)floats))
        return -1;
    return r->mirror[r->last] >= 0 ? r->mirror[r->last] : r->last;
}

static void remember_rows(sb_calib_run *r, int i, const float *x, int64_t floats) {
    if (floats > r->last_cap) {
        float *grown = realloc(r->last_x, sizeof(float) * (size_t)floats);
        if (!grown) { /* no comparison possible: the next linear accumulates its own */
            r->last = -1;
            return;
        }
        r->last_x = grown, r->last_cap = floats;
    }
    memcpy(r->last_x, x, sizeof(float) * (size_t)floats);
    r->last_floats = floats, r->last = i;
}

/* Observer: inputs of the current block's requested linears go to their statistics. */
static void observe(void *user, int layer, const sb_linear *w, const float *x, int64_t n_rows) {
    sb_calib_run *r = user;
    if (layer != r->layer) return;
    for (int i = 0; i < r->n_stats; i++) {
        if (r->stats[i].target != w) continue;
        int64_t floats = n_rows * r->stats[i].cols;
        int twin = r->share ? same_rows_as(r, i, x, floats) : -1;
        if (r->mirror[i] == -2) r->mirror[i] = twin;
        if (r->mirror[i] != twin) r->mixed = true; /* sharing in some passes only: redone without it */
        if (r->mirror[i] >= 0) continue;
        if (!r->dev_h) sb_linear_stats_add_pool(&r->stats[i], x, n_rows, r->ctx ? r->ctx->pool : NULL);
        else if (!r->dev_rc) r->dev_rc = stats_add_device(&r->stats[i], r->dev_h[i], x, n_rows, &r->dev_err);
        if (r->share) remember_rows(r, i, x, floats);
    }
}

static int embed_all(sb_calib_run *r, sb_err *err) {
    if (r->set->hidden) { /* image samples arrive already embedded */
        memcpy(r->in, r->set->hidden, sizeof(float) * (size_t)(r->set->n_samples * sample_floats(r)));
        return SB_OK;
    }
    for (int k = 0; k < r->set->n_samples; k++) {
        const int32_t *tokens = r->set->tokens + (int64_t)k * r->set->seq_len;
        int rc = sb_session_embed(r->session, tokens, r->set->seq_len, r->in + k * sample_floats(r), err);
        if (rc) return rc;
    }
    return SB_OK;
}

int sb_calib_run_new(const sb_model *m, const sb_calib_set *set, const sb_run_ctx *ctx, sb_calib_run **out,
                     sb_err *err) {
    sb_calib_run *r = sb_calloc(err, 1, sizeof *r);
    if (!r) return SB_EINTERNAL;
    r->m = m;
    r->set = set;
    r->ctx = ctx;
    size_t bytes = sizeof(float) * (size_t)set->n_samples * (size_t)set->seq_len * (size_t)m->d_model;
    int rc = sb_session_new(m, ctx ? ctx->pool : NULL, 1, set->seq_len, set->seq_len, &r->session, err);
    if (!rc && (!(r->in = sb_malloc(err, bytes)) || !(r->out = sb_malloc(err, bytes)))) rc = SB_EINTERNAL;
    if (!rc) rc = embed_all(r, err);
    if (rc) {
        sb_calib_run_free(r);
        return sb_err_prefix(err, "calibration (%d x %d tokens)", set->n_samples, set->seq_len);
    }
    sb_session_set_observer(r->session, observe, r);
    *out = r;
    return SB_OK;
}

void sb_calib_run_free(sb_calib_run *r) {
    if (!r) return;
    sb_session_free(r->session);
    free(r->in);
    free(r->out);
    free(r->mirror);
    free(r->last_x);
    free(r);
}

int sb_calib_run_layer(const sb_calib_run *r) { return r->layer; }
const float *sb_calib_inputs(const sb_calib_run *r) { return r->in; }
const float *sb_calib_outputs(const sb_calib_run *r) { return r->out; }

/* Statistics back to zero, as sb_linear_stats_init left them. */
static void stats_clear(sb_linear_stats *st) {
    size_t c = (size_t)st->cols;
    memset(st->h, 0, sizeof(double) * c * c);
    memset(st->mean, 0, sizeof(double) * c);
    memset(st->absmax, 0, sizeof(double) * c);
    memset(st->sum, 0, sizeof(double) * c);
    st->n_seqs = st->n_rows = 0;
}

/* A mirrored linear gets a copy of its twin's statistics: the same bits it
 * would have accumulated itself. */
static void copy_stats(sb_linear_stats *dst, const sb_linear_stats *src) {
    size_t c = (size_t)src->cols;
    memcpy(dst->h, src->h, sizeof(double) * c * c);
    memcpy(dst->mean, src->mean, sizeof(double) * c);
    memcpy(dst->absmax, src->absmax, sizeof(double) * c);
    memcpy(dst->sum, src->sum, sizeof(double) * c);
    dst->n_seqs = src->n_seqs, dst->n_rows = src->n_rows;
}

/* True when the statistics accumulate on the run's CUDA device. */
static bool on_device(const sb_calib_run *r) {
    return r->ctx && r->ctx->backend.kind == SB_BACKEND_CUDA && r->ctx->cuda;
}

static void free_device_stats(sb_calib_run *r) {
    for (int i = 0; r->dev_h && i < r->n_stats; i++) sb_hessian_device_free(r->dev_h[i]);
    free(r->dev_h);
    r->dev_h = NULL;
}

/* A zero H on the device for each of r->stats (a CUDA method's pass). */
static int alloc_device_stats(sb_calib_run *r, sb_err *err) {
    r->dev_rc = SB_OK;
    memset(&r->dev_err, 0, sizeof r->dev_err);
    if (!on_device(r) || r->n_stats == 0) return SB_OK;
    r->dev_h = sb_calloc(err, (size_t)r->n_stats, sizeof *r->dev_h);
    int rc = r->dev_h ? SB_OK : SB_EINTERNAL;
    for (int i = 0; !rc && i < r->n_stats; i++) rc = sb_hessian_device_new(r->ctx->cuda, r->stats[i].cols, &r->dev_h[i], err);
    return rc;
}

/* The pass is over: each H accumulated on the device comes down (mirrored
 * linears get theirs from their twin afterwards, as on the CPU). */
static int fetch_device_stats(sb_calib_run *r, sb_err *err) {
    if (r->dev_rc) return sb_err_set(err, r->dev_rc, "%s", r->dev_err.msg);
    int rc = SB_OK;
    for (int i = 0; !rc && r->dev_h && i < r->n_stats; i++)
        if (r->mirror[i] < 0) rc = sb_hessian_device_get(r->dev_h[i], r->stats[i].h, err);
    return rc;
}

static int run_samples(sb_calib_run *r, sb_linear_stats *stats, int n_stats, bool share, sb_err *err) {
    r->stats = stats, r->n_stats = n_stats, r->share = share, r->mixed = false, r->last = -1;
    for (int i = 0; i < n_stats; i++) r->mirror[i] = -2;
    int rc = alloc_device_stats(r, err);
    for (int k = 0; !rc && k < r->set->n_samples; k++) {
        int64_t off = k * sample_floats(r);
        r->last = -1; /* never share across samples */
        rc = sb_session_forward_blocks(r->session, r->in + off, r->set->seq_len, r->layer, r->layer + 1, r->out + off,
                                       err);
    }
    if (!rc) rc = fetch_device_stats(r, err);
    free_device_stats(r);
    r->stats = NULL, r->n_stats = 0;
    return rc;
}

int sb_calib_run_block(sb_calib_run *r, sb_linear_stats *stats, int n_stats, sb_err *err) {
    if (r->layer >= r->m->n_layer) return sb_err_set(err, SB_EINTERNAL, "calibration ran past the last block");
    free(r->mirror);
    r->mirror = sb_malloc(err, sizeof(int) * (size_t)(n_stats > 0 ? n_stats : 1));
    if (!r->mirror) return SB_EINTERNAL;
    int rc = run_samples(r, stats, n_stats, true, err);
    if (!rc && r->mixed) { /* never seen in practice; correct either way */
        for (int i = 0; i < n_stats; i++) stats_clear(&stats[i]);
        rc = run_samples(r, stats, n_stats, false, err);
    }
    for (int i = 0; !rc && i < n_stats; i++)
        if (r->mirror[i] >= 0) copy_stats(&stats[i], &stats[r->mirror[i]]);
    return rc;
}

int sb_calib_advance(sb_calib_run *r, sb_err *err) {
    int rc = sb_calib_run_block(r, NULL, 0, err);
    if (rc) return rc;
    float *t = r->in;
    r->in = r->out;
    r->out = t;
    r->layer++;
    sb_run_progress(r->ctx, r->layer, r->m->n_layer, "blocks");
    return SB_OK;
}

/* ---- GPTQ's sequential pipeline ------------------------------------------ */

const char *const sb_block_linear_names[SB_BLOCK_LINEARS] = {"wq", "wk", "wv", "wo", "w_gate", "w_up", "w_down"};

sb_linear *sb_block_linear(sb_block *b, int which) {
    sb_linear *lins[SB_BLOCK_LINEARS] = {&b->wq, &b->wk, &b->wv, &b->wo, &b->w_gate, &b->w_up, &b->w_down};
    return lins[which];
}

enum { LQ, LK, LV, LO, LGATE, LUP, LDOWN, LEND = -1, MAX_STAGES = 4 };

/* The stages of one block, each a list of linear indices ending with LEND. */
typedef struct stage_plan {
    int n;
    int8_t lin[MAX_STAGES][SB_BLOCK_LINEARS + 1];
} stage_plan;

static stage_plan plan_stages(const sb_model *m, bool true_sequential) {
    static const stage_plan sequential = {4, {{LK, LV, LQ, LEND}, {LO, LEND}, {LUP, LGATE, LEND}, {LDOWN, LEND}}};
    static const stage_plan parallel = {2, {{LK, LV, LQ, LUP, LGATE, LEND}, {LO, LDOWN, LEND}}};
    static const stage_plan all_at_once = {1, {{LK, LV, LQ, LO, LUP, LGATE, LDOWN, LEND}}};
    if (!true_sequential) return all_at_once;
    return m->parallel_residual ? parallel : sequential;
}

/* One stage: statistics of its linears from a pass of the block, then fn on each. */
static int run_stage(sb_calib_run *r, sb_model *m, int layer, const int8_t *stage, sb_calib_linear_fn fn, void *user,
                     sb_err *err) {
    sb_linear_stats st[SB_BLOCK_LINEARS];
    int which[SB_BLOCK_LINEARS], n = 0, rc = SB_OK;
    for (int i = 0; !rc && stage[i] != LEND; i++) {
        const sb_linear *lin = sb_block_linear(&m->blocks[layer], stage[i]);
        if (!sb_linear_present(lin)) continue;
        rc = sb_linear_stats_init(&st[n], lin, err);
        if (!rc) which[n++] = stage[i];
    }
    if (!rc) rc = sb_calib_run_block(r, st, n, err);
    for (int i = 0; !rc && i < n; i++) rc = fn(user, layer, which[i], &st[i], err);
    for (int i = 0; i < n; i++) sb_linear_stats_free(&st[i]);
    return rc;
}

int sb_calib_sequential(sb_calib_run *r, sb_model *m, bool true_sequential, sb_calib_linear_fn fn, void *user,
                        sb_err *err) {
    stage_plan plan = plan_stages(m, true_sequential);
    int rc = SB_OK;
    for (int l = 0; !rc && l < m->n_layer; l++) {
        for (int s = 0; !rc && s < plan.n; s++) rc = run_stage(r, m, l, plan.lin[s], fn, user, err);
        if (!rc) rc = sb_calib_advance(r, err); /* next block's inputs from this compressed block */
    }
    return rc;
}
