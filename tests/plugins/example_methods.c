/* example_methods.c - an external method plugin, built as a shared object
 * and loaded with --plugin.  It shows the whole contract: include
 * plugin.h, export sb_plugin_entry, replace linears with new ones (never
 * write into the model's own payloads), fill the report.
 *
 * Two simple methods, so a test sweep has 2 methods x 2 parameter values:
 *   example-magnitude  zero the smallest |w| fraction of every row
 *   example-round      round every row to a symmetric grid of 2^bits - 1 levels
 *                      (fake quantization: the result is still stored as f32) */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "plugin.h"

typedef void (*row_fn)(float *row, int64_t n, const sb_params *p);

static int by_abs(const void *a, const void *b) {
    float x = fabsf(*(const float *)a), y = fabsf(*(const float *)b);
    return (x > y) - (x < y);
}

static void magnitude_row(float *row, int64_t n, const sb_params *p) {
    int64_t k = (int64_t)(sb_param_num(p, "sparsity") * (double)n);
    if (k == 0) return;
    float *sorted = malloc(sizeof(float) * (size_t)n);
    if (!sorted) return;
    memcpy(sorted, row, sizeof(float) * (size_t)n);
    qsort(sorted, (size_t)n, sizeof(float), by_abs);
    float threshold = fabsf(sorted[k - 1]);
    int64_t zeroed = 0; /* ties at the threshold: zero only k in all */
    for (int64_t i = 0; i < n && zeroed < k; i++)
        if (fabsf(row[i]) <= threshold) row[i] = 0, zeroed++;
    free(sorted);
}

static void round_row(float *row, int64_t n, const sb_params *p) {
    int levels = (1 << ((int)sb_param_num(p, "bits") - 1)) - 1;
    float max = 0;
    for (int64_t i = 0; i < n; i++) max = fabsf(row[i]) > max ? fabsf(row[i]) : max;
    if (max == 0) return;
    float step = max / (float)levels;
    for (int64_t i = 0; i < n; i++) row[i] = step * roundf(row[i] / step);
}

/* A new f32 linear holding fn applied to every row of w. */
static int transform_linear(sb_linear *w, row_fn fn, const sb_params *p, sb_err *err) {
    if (!w->fmt) return SB_OK;
    float *data = malloc(sizeof(float) * (size_t)(w->rows * w->cols));
    float *bias = w->bias ? malloc(sizeof(float) * (size_t)w->rows) : NULL;
    if (!data || (w->bias && !bias)) {
        free(data);
        free(bias);
        return sb_err_set(err, SB_EINTERNAL, "out of memory");
    }
    w->fmt->decode_rows(w, 0, w->rows, data);
    for (int64_t r = 0; r < w->rows; r++) fn(data + r * w->cols, w->cols, p);
    if (bias) memcpy(bias, w->bias, sizeof(float) * (size_t)w->rows);
    *w = (sb_linear){.fmt = &sb_format_f32, .rows = w->rows, .cols = w->cols, .data = data, .owned = data, .bias = bias};
    return SB_OK;
}

static int apply_rows(sb_model *m, row_fn fn, const sb_params *p, sb_err *err) {
    for (int l = 0; l < m->n_layer; l++) {
        sb_block *b = &m->blocks[l];
        sb_linear *lins[] = {&b->wq, &b->wk, &b->wv, &b->wo, &b->w_gate, &b->w_up, &b->w_down};
        for (size_t i = 0; i < sizeof lins / sizeof lins[0]; i++) {
            int rc = transform_linear(lins[i], fn, p, err);
            if (rc) return rc;
        }
    }
    return SB_OK;
}

static int magnitude_apply(sb_model *m, const sb_params *p, const sb_run_ctx *ctx, sb_method_report *rep, sb_err *err) {
    (void)ctx;
    rep->real_quant = true;
    rep->bits_per_weight = 32;
    return apply_rows(m, magnitude_row, p, err);
}

static int round_apply(sb_model *m, const sb_params *p, const sb_run_ctx *ctx, sb_method_report *rep, sb_err *err) {
    (void)ctx;
    rep->real_quant = false; /* the rounded values are stored as f32 */
    rep->bits_per_weight = sb_param_num(p, "bits");
    return apply_rows(m, round_row, p, err);
}

static const sb_param_spec magnitude_params[] = {
    {"sparsity", SB_PARAM_FLOAT, "0.5", 0, 0.99, NULL, "fraction of each row set to zero"},
};
static const sb_param_spec round_params[] = {
    {"bits", SB_PARAM_INT, "8", 2, 8, NULL, "bits of the symmetric grid"},
};

static const sb_method magnitude = {
    .abi = SB_PLUGIN_ABI, .name = "example-magnitude", .family = "pruning",
    .summary = "example plugin: zero the smallest-magnitude weights of each row",
    .paper = {"Example plugin (not a paper)", NULL, NULL}, .params = magnitude_params, .n_params = 1,
    .apply = magnitude_apply,
};
static const sb_method rounding = {
    .abi = SB_PLUGIN_ABI, .name = "example-round", .family = "quantization",
    .summary = "example plugin: symmetric per-row rounding, kept in f32 (fake quantization)",
    .paper = {"Example plugin (not a paper)", NULL, NULL}, .params = round_params, .n_params = 1,
    .apply = round_apply,
};

static const sb_method *const methods[] = {&magnitude, &rounding};
static const sb_plugin plugin = {.abi = SB_PLUGIN_ABI, .methods = methods, .n_methods = 2};

const sb_plugin *sb_plugin_entry(void) { return &plugin; }
