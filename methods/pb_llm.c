/* pb_llm.c - PB-LLM (Shang et al., arXiv 2310.00034): partial binarization.
 * Most weights become one bit (mu ± alpha of their row and group); a small
 * salient fraction keeps 8 bits; GPTQ's error feedback runs over both
 * (METHODS.md, "PB-LLM"; the authors' gptq_pb/gptq.py and low_quant.py).
 *
 * Per linear, with H from the calibration service:
 *  1. the salient weights' grid: 8-bit asymmetric min-max per row on the
 *     weights as loaded (the authors' HighQuantizer, calibrated before dead
 *     inputs are zeroed);
 *  2. GPTQ's preparation: dead inputs zeroed, damping, U (methods/gptq.c);
 *  3. mask, per group of columns (the whole row by default, the authors'
 *     groupsize -1): salience s_ij = W_ij²/U_jj² (or |W_ij|) over the group's
 *     [rows, gs] slice; t = the value at index floor(n·(1 − r)) of the sorted
 *     s; salient = s > t (fixed before the feedback, as the authors');
 *  4. binarization per (row, group) on the non-salient weights:
 *     mu = mean, alpha = mean |w − mu| (both stored in f16);
 *  5. GPTQ's column loop: a salient weight takes its 8-bit grid point, any
 *     other mu + alpha when w >= mu, else mu − alpha; the error feeds the
 *     later columns (sb_gptq_quantize_elementwise);
 *  6. stored as format pbllm (harness/format_pbllm.h): about 2 + 8·r bits
 *     per weight with the sign and mask bitmaps.
 * Deviations: the authors' xnor calibration averages over the whole group
 * with salient weights zeroed (mean of W·mask over all entries, dividing
 * by the group size); here mu and alpha are over the binarized weights only,
 * the least-squares values for their signs.  sign(0) = +1 (torch: 0).
 * Pipeline as GPTQ: blocks in order on inputs from the compressed earlier
 * blocks, true-sequential stages [k, v, q] → [o] → [up, gate] → [down]. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blas.h"
#include "calibration.h"
#include "format_pbllm.h"
#include "gptq.h"
#include "half.h"
#include "pb_llm.h"
#include "plugin.h"
#include "quantizer.h"

/* ---- one layer ------------------------------------------------------------ */

typedef struct layer_job {
    const sb_pbllm_opts *o;
    int64_t rows, cols, gs, n_groups;
    sb_quantizer q8;
    sb_qparams *p8;          /* [rows] */
    double *sal;             /* [rows * gs] scratch of one group's salience */
    sb_pbllm_result *out;
} layer_job;

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Step 3 for group g: the salient mask of its [rows, gs] slice. */
static void choose_mask(layer_job *j, const float *w, const float *u, int64_t g) {
    int64_t n = j->rows * j->gs, k = 0;
    for (int64_t r = 0; r < j->rows; r++)
        for (int64_t c = g * j->gs; c < (g + 1) * j->gs; c++) {
            double x = w[r * j->cols + c], d = u[c * j->cols + c];
            j->sal[k++] = j->o->hessian_salience ? x * x / (d * d) : fabs(x);
        }
    double *sorted = j->sal + n;
    memcpy(sorted, j->sal, sizeof(double) * (size_t)n);
    qsort(sorted, (size_t)n, sizeof(double), cmp_double);
    int64_t at = (int64_t)((double)n * (1 - j->o->salient_frac));
    double t = sorted[at < n ? at : n - 1];
    k = 0;
    for (int64_t r = 0; r < j->rows; r++)
        for (int64_t c = g * j->gs; c < (g + 1) * j->gs; c++) j->out->mask[r * j->cols + c] = j->sal[k++] > t;
}

/* Step 4 for row r, group g: mu and alpha of the binarized weights, in f16. */
static void fit_binary(layer_job *j, const float *w, int64_t r, int64_t g) {
    const float *x = w + r * j->cols + g * j->gs;
    const uint8_t *m = j->out->mask + r * j->cols + g * j->gs;
    double sum = 0, dev = 0;
    int64_t n = 0;
    for (int64_t k = 0; k < j->gs; k++)
        if (!m[k]) sum += x[k], n++;
    float mu = n ? sb_f16_to_f32(sb_f32_to_f16((float)(sum / (double)n))) : 0;
    for (int64_t k = 0; k < j->gs; k++)
        if (!m[k]) dev += fabs((double)x[k] - mu);
    j->out->mu[r * j->n_groups + g] = mu;
    j->out->alpha[r * j->n_groups + g] = n ? sb_f16_to_f32(sb_f32_to_f16((float)(dev / (double)n))) : 0;
}

static int prepare(void *user, const float *w, const float *u, int64_t rows, int64_t cols, sb_err *err) {
    (void)rows, (void)cols, (void)err;
    layer_job *j = user;
    for (int64_t g = 0; g < j->n_groups; g++) {
        choose_mask(j, w, u, g);
        for (int64_t r = 0; r < j->rows; r++) fit_binary(j, w, r, g);
    }
    return SB_OK;
}

/* Step 5: the stored value of W[r][c] given its current value. */
static float quantize_weight(void *user, int64_t r, int64_t c, float w) {
    layer_job *j = user;
    int64_t i = r * j->cols + c, g = r * j->n_groups + c / j->gs;
    if (j->out->mask[i]) {
        uint8_t code = sb_quantizer_code(&j->q8, j->p8[r], w);
        j->out->codes[i] = code;
        return sb_qparams_dequant(j->p8[r], code);
    }
    float mu = j->out->mu[g], alpha = j->out->alpha[g];
    j->out->signs[i] = w >= mu;
    return w >= mu ? mu + alpha : mu - alpha; /* the same f32 sums the format decodes */
}

int sb_pbllm_quantize_layer(const float *w, int64_t rows, int64_t cols, double *h, const sb_pbllm_opts *o,
                            sb_pool *pool, sb_pbllm_result *out, sb_err *err) {
    int64_t gs = o->group_size > 0 ? o->group_size : cols;
    if (cols % gs) return sb_err_set(err, SB_EINPUT, "pb-llm: group size %lld does not divide %lld columns",
                                     (long long)gs, (long long)cols);
    layer_job j = {.o = o, .rows = rows, .cols = cols, .gs = gs, .n_groups = cols / gs,
                   .q8 = sb_quantizer_make(8, false), .out = out};
    j.p8 = sb_malloc(err, sizeof(sb_qparams) * (size_t)rows);
    j.sal = sb_malloc(err, sizeof(double) * (size_t)(2 * rows * gs));
    int rc = j.p8 && j.sal ? SB_OK : SB_EINTERNAL;
    for (int64_t r = 0; !rc && r < rows; r++) {
        j.p8[r] = sb_qparams_storable(sb_quantizer_fit(&j.q8, w + r * cols, cols));
        out->scale8[r] = j.p8[r].scale, out->zero8[r] = j.p8[r].zero;
    }
    memset(out->codes, 0, (size_t)(rows * cols));
    memset(out->signs, 0, (size_t)(rows * cols));
    sb_gptq_elementwise e = {prepare, quantize_weight, &j};
    if (!rc) rc = sb_gptq_quantize_elementwise(w, rows, cols, h, o->damp, o->block_size, &e, pool, out->q, &out->loss, err);
    free(j.p8), free(j.sal);
    return rc;
}

/* ---- the method: every block of the model -------------------------------- */

enum { ERR_ROWS = 64 };

typedef struct pb_run {
    sb_model *m;
    const sb_run_ctx *ctx;
    sb_pbllm_opts opts;
    cJSON *layers;           /* per-linear details */
    sb_calib_run *calib;
} pb_run;

typedef struct layer_bufs {
    float *w, *scale8, *zero8, *alpha, *mu, *q;
    uint8_t *mask, *signs, *codes;
    double *h, *scratch;
} layer_bufs;

static void free_bufs(layer_bufs *b) {
    void *all[] = {b->w, b->scale8, b->zero8, b->alpha, b->mu, b->q, b->mask, b->signs, b->codes, b->h, b->scratch};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) free(all[i]);
}

static int alloc_bufs(layer_bufs *b, int64_t rows, int64_t cols, int64_t n_groups, sb_err *err) {
    size_t n = (size_t)(rows * cols), rg = (size_t)(rows * n_groups);
    b->w = sb_malloc(err, sizeof(float) * n), b->q = sb_malloc(err, sizeof(float) * n);
    b->scale8 = sb_malloc(err, sizeof(float) * (size_t)rows), b->zero8 = sb_malloc(err, sizeof(float) * (size_t)rows);
    b->alpha = sb_malloc(err, sizeof(float) * rg), b->mu = sb_malloc(err, sizeof(float) * rg);
    b->mask = sb_malloc(err, n), b->signs = sb_malloc(err, n), b->codes = sb_malloc(err, n);
    b->h = sb_malloc(err, sizeof(double) * (size_t)(cols * cols));
    b->scratch = sb_malloc(err, sizeof(double) * (size_t)(2 * ERR_ROWS * cols));
    bool ok = b->w && b->q && b->scale8 && b->zero8 && b->alpha && b->mu && b->mask && b->signs && b->codes && b->h &&
              b->scratch;
    return ok ? SB_OK : SB_EINTERNAL;
}

/* tr(D·H·Dᵀ), D = W − Ŵ (Ŵ NULL: W itself): ‖(W − Ŵ)X‖² up to H's scale. */
static double h_error(const float *w, const float *wq, int64_t rows, int64_t cols, const double *h, double *scratch) {
    double total = 0, *d = scratch, *dh = scratch + ERR_ROWS * cols;
    for (int64_t r0 = 0; r0 < rows; r0 += ERR_ROWS) {
        int64_t n = rows - r0 < ERR_ROWS ? rows - r0 : ERR_ROWS;
        for (int64_t i = 0; i < n * cols; i++) d[i] = wq ? (double)w[r0 * cols + i] - wq[r0 * cols + i] : w[r0 * cols + i];
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)cols, (int)cols, 1.0, d, (int)cols, h,
                    (int)cols, 0.0, dh, (int)cols);
        for (int64_t i = 0; i < n * cols; i++) total += d[i] * dh[i];
    }
    return total;
}

static void add_detail(pb_run *s, int layer, int which, const sb_linear_stats *st, const layer_bufs *b, int64_t rows,
                       double loss) {
    cJSON *o = cJSON_CreateObject();
    if (!o) return;
    int64_t cols = st->cols, salient = 0;
    for (int64_t i = 0; i < rows * cols; i++) salient += b->mask[i];
    double err = h_error(b->w, b->q, rows, cols, st->h, b->scratch), ref = h_error(b->w, NULL, rows, cols, st->h, b->scratch);
    char name[48];
    snprintf(name, sizeof name, "blocks.%d.%s", layer, sb_block_linear_names[which]);
    cJSON_AddStringToObject(o, "layer", name);
    cJSON_AddNumberToObject(o, "salient_frac", (double)salient / (double)(rows * cols));
    cJSON_AddNumberToObject(o, "gptq_loss", loss);
    cJSON_AddNumberToObject(o, "sq_err", err * (double)st->n_seqs / 2);
    cJSON_AddNumberToObject(o, "rel_err", ref > 0 ? err / ref : 0);
    cJSON_AddItemToArray(s->layers, o);
}

/* Packs as format pbllm and replaces *lin. */
static int replace_linear(sb_linear *lin, const layer_bufs *b, int gs, sb_err *err) {
    sb_pbllm_parts parts = {lin->rows, lin->cols, gs, b->mask, b->signs, b->codes, b->scale8, b->zero8, b->alpha, b->mu};
    sb_linear out = {0};
    int rc = sb_pbllm_pack(&parts, &out, err);
    return rc ? rc : sb_linear_replace(lin, &out, err);
}

static int quantize_one(pb_run *s, int layer, int which, const sb_linear_stats *st, sb_err *err) {
    sb_linear *lin = sb_block_linear(&s->m->blocks[layer], which);
    int64_t rows = lin->rows, cols = lin->cols, gs = s->opts.group_size > 0 ? s->opts.group_size : cols;
    layer_bufs b = {0};
    int rc = alloc_bufs(&b, rows, cols, cols / gs, err);
    sb_pbllm_result res = {b.mask, b.signs, b.codes, b.scale8, b.zero8, b.alpha, b.mu, b.q, 0};
    if (!rc) {
        lin->fmt->decode_rows(lin, 0, rows, b.w);
        memcpy(b.h, st->h, sizeof(double) * (size_t)(cols * cols));
        rc = sb_pbllm_quantize_layer(b.w, rows, cols, b.h, &s->opts, s->ctx ? s->ctx->pool : NULL, &res, err);
    }
    if (!rc) {
        add_detail(s, layer, which, st, &b, rows, res.loss);
        rc = replace_linear(lin, &b, (int)gs, err);
    }
    free_bufs(&b);
    if (rc) sb_err_prefix(err, "pb-llm: blocks.%d.%s", layer, sb_block_linear_names[which]);
    return rc;
}

static int quantize_linear(void *user, int layer, int which, const sb_linear_stats *st, sb_err *err) {
    return quantize_one(user, layer, which, st, err);
}

/* ---- parameters ---------------------------------------------------------- */

/* Every refusal happens here, before the model changes. */
static int check_params(const sb_model *m, const sb_pbllm_opts *o, int seq_len, sb_err *err) {
    if (!(o->salient_frac >= 0 && o->salient_frac < 1))
        return sb_err_set(err, SB_EINPUT, "pb-llm: salient_frac: %g is not in [0, 1)", o->salient_frac);
    if (o->group_size < 0) return sb_err_set(err, SB_EINPUT, "pb-llm: group_size: %d is negative", o->group_size);
    if (!(o->damp >= 0)) return sb_err_set(err, SB_EINPUT, "pb-llm: damp: %g is negative", o->damp);
    if (o->block_size < 1) return sb_err_set(err, SB_EINPUT, "pb-llm: block_size: %d is not positive", o->block_size);
    if (m->pos_embd && seq_len > m->max_positions)
        return sb_err_set(err, SB_EINPUT, "pb-llm: seq_len %d exceeds the model's %d positions", seq_len,
                          m->max_positions);
    for (int l = 0; l < m->n_layer && o->group_size > 0; l++)
        for (int i = 0; i < SB_BLOCK_LINEARS; i++) {
            const sb_linear *lin = sb_block_linear(&m->blocks[l], i);
            if (sb_linear_present(lin) && lin->cols % o->group_size)
                return sb_err_set(err, SB_EINPUT, "pb-llm: group_size: %d does not divide the width %lld of blocks.%d.%s",
                                  o->group_size, (long long)lin->cols, l, sb_block_linear_names[i]);
        }
    return SB_OK;
}

static sb_pbllm_opts opts_from(const sb_params *p) {
    return (sb_pbllm_opts){.salient_frac = sb_param_num(p, "salient_frac"),
                           .hessian_salience = strcmp(sb_param_str(p, "salience"), "hessian") == 0,
                           .group_size = (int)sb_param_num(p, "group_size"), .damp = sb_param_num(p, "damp"),
                           .block_size = (int)sb_param_num(p, "block_size")};
}

static sb_calib_config calib_from(const sb_params *p) {
    return (sb_calib_config){.path = sb_param_str(p, "data"), .format = sb_param_str(p, "data_format"),
                             .field = sb_param_str(p, "data_field"), .sampling = sb_param_str(p, "sampling"),
                             .n_samples = (int)sb_param_num(p, "n_samples"), .seq_len = (int)sb_param_num(p, "seq_len"),
                             .seed = (uint64_t)sb_param_num(p, "seed")};
}

static cJSON *make_details(const sb_calib_set *set) {
    cJSON *d = cJSON_CreateObject();
    if (!d) return NULL;
    cJSON *cal = sb_calib_set_describe(set);
    if (cal) cJSON_AddItemToObject(d, "calibration", cal);
    cJSON_AddStringToObject(d, "format", "pbllm: sign and mask bitmaps, f16 alpha/mu per (row, group), 8-bit salient "
                                         "codes with an f16 scale and zero per row");
    cJSON_AddStringToObject(d, "binarization", "mu = mean, alpha = mean |w - mu| over the binarized weights of a (row, "
                                               "group) (the authors average over the whole group with salient weights "
                                               "zeroed)");
    cJSON_AddStringToObject(d, "error_note", "sq_err = sum over calibration tokens of |(W - Wq)x|^2; rel_err = sq_err / "
                                             "|Wx|^2");
    return d;
}

static int pb_apply(sb_model *m, const sb_params *p, const sb_run_ctx *ctx, sb_method_report *report, sb_err *err) {
    pb_run s = {.m = m, .ctx = ctx, .opts = opts_from(p)};
    sb_calib_config cc = calib_from(p);
    sb_calib_set set;
    memset(&set, 0, sizeof set);
    int rc = check_params(m, &s.opts, cc.seq_len, err);
    if (!rc) rc = sb_calib_config_check(&cc, err);
    if (!rc) rc = sb_calib_draw(m->tokenizer, &cc, &set, err);
    if (!rc) rc = sb_calib_run_new(m, &set, ctx, &s.calib, err);
    if (!rc && !(s.layers = cJSON_CreateArray())) rc = sb_err_set(err, SB_EINTERNAL, "out of memory");
    if (!rc) rc = sb_calib_sequential(s.calib, m, true, quantize_linear, &s, err);
    if (!rc) {
        report->bits_per_weight = sb_model_bits_per_weight(m);
        report->real_quant = true;
        report->details = make_details(&set);
        if (report->details) cJSON_AddItemToObject(report->details, "layers", s.layers), s.layers = NULL;
    }
    cJSON_Delete(s.layers);
    sb_calib_run_free(s.calib);
    sb_calib_set_free(&set);
    return rc;
}

static const sb_param_spec pb_params[] = {
    {"salient_frac", SB_PARAM_FLOAT, "0.1", 0, 1, NULL,
     "fraction of each group's weights kept in 8 bits (the paper's PB-LLM 10%); the rest binarized"},
    {"salience", SB_PARAM_STRING, "hessian", 0, -1, "hessian|magnitude", "salience: W^2/U_jj^2 (hessian) or |W|"},
    {"group_size", SB_PARAM_INT, "0", 0, 1 << 20, NULL,
     "columns per binarization group and mask selection; 0: the whole row (the authors' default)"},
    {"damp", SB_PARAM_FLOAT, "0.01", 0, 1e9, NULL, "percdamp: fraction of mean(diag H) added to H's diagonal (>= 0)"},
    {"block_size", SB_PARAM_INT, "128", 1, 1 << 20, NULL, "columns per lazy-update block of GPTQ"},
    {"data", SB_PARAM_STRING, "", 0, -1, NULL, "calibration text file (raw text, or JSONL with data_format=jsonl)"},
    {"data_format", SB_PARAM_STRING, "raw", 0, -1, "raw|jsonl", "calibration file format"},
    {"data_field", SB_PARAM_STRING, "text", 0, -1, NULL, "JSONL field holding the text"},
    {"sampling", SB_PARAM_STRING, "windows", 0, -1, "windows|documents", "calibration sampling, as gptq's"},
    {"n_samples", SB_PARAM_INT, "128", 1, 1 << 20, NULL, "calibration sequences"},
    {"seq_len", SB_PARAM_INT, "2048", 2, 1 << 20, NULL, "tokens per calibration sequence"},
    {"seed", SB_PARAM_INT, "0", 0, 4294967295.0, NULL, "seed of the calibration windows"},
};

const sb_method sb_method_pb_llm = {
    .abi = SB_PLUGIN_ABI,
    .name = "pb-llm",
    .family = "quantization",
    .summary = "PB-LLM: partial binarization (salient weights in 8 bits) with GPTQ compensation; stored as format pbllm",
    .paper = {"PB-LLM: Partially Binarized Large Language Models", "2310.00034", "2023"},
    .params = pb_params,
    .n_params = sizeof pb_params / sizeof pb_params[0],
    .apply = pb_apply,
};
