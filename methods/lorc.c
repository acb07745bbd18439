/* lorc.c - LoRC, low-rank compensation (ZeroQuant-V2, arXiv 2303.08302).
 *
 * Runs after a compressing method in a composition ("rtn+lorc"): for every
 * block linear whose weight the earlier step changed, Δ = W − W_c with W
 * the weight as loaded (the run context's reference model; the compressed
 * model no longer has it), Δ ≈ U_r Σ_r V_rᵀ by a truncated SVD in float64,
 * and W_c is wrapped by the low-rank add-on with
 *     B = U_r Σ_r^½,  A = Σ_r^½ V_rᵀ   (f32 factors),
 * so Ŵ = W_c + B·A keeps W_c in its own format.  This is EoRA's formula
 * with S = I (METHODS.md).  Linears the earlier step left unchanged (same
 * payload as the reference) have Δ = 0 and are not wrapped. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "format_lowrank.h"
#include "plugin.h"

/* The seven linears of a block, in a fixed order. */
static void block_linears(sb_block *b, sb_linear *lins[7]) {
    sb_linear *all[7] = {&b->wq, &b->wk, &b->wv, &b->wo, &b->w_gate, &b->w_up, &b->w_down};
    memcpy(lins, all, sizeof all);
}

static const char *const LINEAR_NAMES[7] = {"wq", "wk", "wv", "wo", "w_gate", "w_up", "w_down"};

/* Refuses, before any work, what LoRC cannot do: no reference, blocks
 * dropped or reshaped by the earlier step, a rank above a weight's. */
static int check_model(const sb_model *m, const sb_model *ref, int rank, sb_err *err) {
    if (!ref)
        return sb_err_set(err, SB_EINPUT,
                          "lorc needs the unmodified model as reference (the run context has none); "
                          "use it after a compressing method in a composition");
    if (ref->n_layer != m->n_layer)
        return sb_err_set(err, SB_EINPUT, "lorc: the model has %d blocks, the reference %d (an earlier step dropped blocks)",
                          m->n_layer, ref->n_layer);
    if (sb_model_is_sliced(m)) /* rotated weights: the difference to the originals is no error to compensate */
        return sb_err_set(err, SB_EINPUT, "lorc: the model is sliced (SliceGPT); its weights no longer compare with the loaded ones");
    for (int l = 0; l < m->n_layer; l++) {
        sb_linear *cur[7], *orig[7];
        block_linears(&m->blocks[l], cur);
        block_linears(&ref->blocks[l], orig);
        for (int i = 0; i < 7; i++) {
            if (!cur[i]->fmt) continue;
            if (!orig[i]->fmt || cur[i]->rows != orig[i]->rows || cur[i]->cols != orig[i]->cols)
                return sb_err_set(err, SB_EINPUT, "lorc: block %d %s changed shape since loading", l, LINEAR_NAMES[i]);
            int64_t max_rank = cur[i]->rows < cur[i]->cols ? cur[i]->rows : cur[i]->cols;
            if (rank > max_rank)
                return sb_err_set(err, SB_EINPUT, "lorc: rank=%d exceeds min(rows, cols) = %lld of block %d %s", rank,
                                  (long long)max_rank, l, LINEAR_NAMES[i]);
        }
    }
    return SB_OK;
}

/* Δ = W − W_c in float64, decoded row block by row block. */
static int weight_delta(const sb_linear *orig, const sb_linear *cur, double *delta, sb_err *err) {
    enum { CHUNK = 64 };
    float *a = sb_malloc(err, sizeof(float) * CHUNK * (size_t)orig->cols);
    float *b = sb_malloc(err, sizeof(float) * CHUNK * (size_t)orig->cols);
    int rc = a && b ? SB_OK : SB_EINTERNAL;
    for (int64_t r0 = 0; !rc && r0 < orig->rows; r0 += CHUNK) {
        int64_t n = orig->rows - r0 < CHUNK ? orig->rows - r0 : CHUNK;
        orig->fmt->decode_rows(orig, r0, n, a);
        cur->fmt->decode_rows(cur, r0, n, b);
        for (int64_t i = 0; i < n * orig->cols; i++) delta[r0 * orig->cols + i] = (double)a[i] - (double)b[i];
    }
    free(a);
    free(b);
    return rc;
}

/* Replaces *cur by cur + B·A, the rank-r SVD of W − W_c. */
static int compensate(sb_linear *cur, const sb_linear *orig, int rank, sb_err *err) {
    int64_t rows = cur->rows, cols = cur->cols;
    double *delta = sb_malloc(err, sizeof(double) * (size_t)(rows * cols));
    float *B = sb_malloc(err, sizeof(float) * (size_t)(rows * rank));
    float *A = sb_malloc(err, sizeof(float) * (size_t)(rank * cols));
    int rc = delta && B && A ? SB_OK : SB_EINTERNAL;
    if (!rc) rc = weight_delta(orig, cur, delta, err);
    if (!rc) rc = sb_lowrank_factorize(delta, rows, cols, rank, B, A, err);
    if (!rc) rc = sb_lowrank_wrap(cur, rank, B, A, cur, err);
    free(delta);
    free(B);
    free(A);
    return rc;
}

/* The earlier step left this linear as loaded: Δ = 0, and its payload
 * belongs to the runner's snapshot, so it must not be wrapped. */
static bool unchanged(const sb_linear *cur, const sb_linear *orig) {
    return cur->data == orig->data || (cur->owned && cur->owned == orig->owned);
}

static int lorc_apply(sb_model *m, const sb_params *p, const sb_run_ctx *ctx, sb_method_report *report,
                      sb_err *err) {
    int rank = (int)sb_param_num(p, "rank");
    const sb_model *ref = ctx ? ctx->reference : NULL;
    int rc = check_model(m, ref, rank, err);
    int wrapped = 0, kept = 0, total = m->n_layer * 7;
    for (int l = 0; !rc && l < m->n_layer; l++) {
        sb_linear *cur[7], *orig[7];
        block_linears(&m->blocks[l], cur);
        block_linears(&ref->blocks[l], orig);
        for (int i = 0; !rc && i < 7; i++) {
            if (!cur[i]->fmt) continue;
            if (unchanged(cur[i], orig[i])) {
                kept++;
                continue;
            }
            rc = compensate(cur[i], orig[i], rank, err);
            if (rc) sb_err_prefix(err, "lorc: block %d %s", l, LINEAR_NAMES[i]);
            wrapped++;
        }
        sb_run_progress(ctx, (double)(l + 1) * 7, total, "linears");
    }
    if (rc) return rc;
    report->bits_per_weight = sb_model_bits_per_weight(m);
    report->real_quant = true; /* factors are stored and multiplied as such; W_c keeps its own format */
    report->details = cJSON_CreateObject();
    if (!report->details || !cJSON_AddNumberToObject(report->details, "rank", rank) ||
        !cJSON_AddNumberToObject(report->details, "linears_compensated", wrapped) ||
        !cJSON_AddNumberToObject(report->details, "linears_unchanged", kept) ||
        !cJSON_AddStringToObject(report->details, "factor_format", "f32"))
        return sb_err_set(err, SB_EINTERNAL, "out of memory (lorc report)");
    return SB_OK;
}

static const sb_param_spec lorc_params[] = {
    {"rank", SB_PARAM_INT, "8", 1, 65536, NULL, "rank r of the compensation B·A (at most min(rows, cols) of every weight)"},
};

const sb_method sb_method_lorc = {
    .abi = SB_PLUGIN_ABI,
    .name = "lorc",
    .family = "low-rank",
    .summary = "low-rank compensation of the previous step's error: W_c + B·A from the SVD of W - W_c",
    .paper = {"ZeroQuant-V2: Exploring Post-training Quantization in LLMs from Comprehensive Study to Low Rank "
              "Compensation",
              "2303.08302", "2023"},
    .params = lorc_params,
    .n_params = 1,
    .apply = lorc_apply,
};
