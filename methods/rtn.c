/* rtn.c - round-to-nearest weight quantization: every weight of the
 * blocks' linear layers is rounded to its group's min-max integer grid
 * (methods/quantizer.h), with no calibration data.  This is the RTN
 * baseline of the GPTQ paper (Frantar et al., arXiv 2210.17323, Tables 2-4,
 * e.g. LLaMA-7B 4-bit RTN 6.29 vs GPTQ 6.09 WikiText2 ppl in METHODS.md),
 * which ZeroQuant and LLM.int8() used before it; we follow GPTQ's code for
 * the quantizer so RTN and GPTQ differ only in the error feedback.
 *
 * Layers: q, k, v, o, gate, up and down of every block.  The token
 * embedding and the head stay as loaded, as in GPTQ's evaluation, unless
 * head=true (for speed and memory studies) also quantizes an untied head.  The
 * result is stored in format qint (bit-packed codes, f16 scales and
 * zeros), so bits_per_weight is the exact storage over those layers and
 * the product runs on the packed weights. */
#include <stdlib.h>
#include <string.h>

#include "format_qint.h"
#include "plugin.h"
#include "quantizer.h"

enum { ROWS_PER_TASK = 16, N_BLOCK_LINEARS = 7 };

static const char *const linear_names[N_BLOCK_LINEARS] = {"wq", "wk", "wv", "wo", "w_gate", "w_up", "w_down"};

static void block_linears(sb_block *b, sb_linear *out[N_BLOCK_LINEARS]) {
    sb_linear *lins[N_BLOCK_LINEARS] = {&b->wq, &b->wk, &b->wv, &b->wo, &b->w_gate, &b->w_up, &b->w_down};
    memcpy(out, lins, sizeof lins);
}

/* Refuses before anything changes: every quantized layer's width must be
 * a multiple of the group size; a tied head cannot be quantized alone. */
static int check_params(sb_model *m, int bits, int group_size, bool head, sb_err *err) {
    if (bits < 2 || bits > 8) return sb_err_set(err, SB_EINPUT, "rtn: bits: %d is not in 2..8", bits);
    if (group_size < 0) return sb_err_set(err, SB_EINPUT, "rtn: group_size: %d is negative", group_size);
    if (head && m->tied_head)
        return sb_err_set(err, SB_EINPUT, "rtn: head: the head is tied to the embedding; quantizing it would untie them");
    if (head && group_size > 0 && m->head.cols % group_size)
        return sb_err_set(err, SB_EINPUT, "rtn: group_size: %d does not divide the head's width %lld", group_size,
                          (long long)m->head.cols);
    for (int l = 0; l < m->n_layer && group_size > 0; l++) {
        sb_linear *lins[N_BLOCK_LINEARS];
        block_linears(&m->blocks[l], lins);
        for (int i = 0; i < N_BLOCK_LINEARS; i++)
            if (lins[i]->fmt && lins[i]->cols % group_size)
                return sb_err_set(err, SB_EINPUT,
                                  "rtn: group_size: %d does not divide the width %lld of blocks.%d.%s (use a divisor, "
                                  "or 0 for per-channel)",
                                  group_size, (long long)lins[i]->cols, l, linear_names[i]);
    }
    return SB_OK;
}

typedef struct rtn_job {
    const float *w;        /* [rows, cols] decoded weights */
    int64_t rows, cols;
    int group_size;
    sb_quantizer q;
    uint8_t *codes;        /* [rows, cols] */
    float *scales, *zeros; /* [rows, n_groups] */
} rtn_job;

static void quantize_group(const rtn_job *j, int64_t r, int64_t g) {
    int64_t n_groups = j->cols / j->group_size, c0 = g * j->group_size;
    const float *x = j->w + r * j->cols + c0;
    sb_qparams p = sb_qparams_storable(sb_quantizer_fit(&j->q, x, j->group_size));
    j->scales[r * n_groups + g] = p.scale;
    j->zeros[r * n_groups + g] = p.zero;
    uint8_t *codes = j->codes + r * j->cols + c0;
    for (int64_t k = 0; k < j->group_size; k++) codes[k] = sb_quantizer_code(&j->q, p, x[k]);
}

static void rtn_rows(void *arg, int task, int worker) {
    (void)worker;
    const rtn_job *j = arg;
    int64_t r0 = (int64_t)task * ROWS_PER_TASK, r1 = r0 + ROWS_PER_TASK < j->rows ? r0 + ROWS_PER_TASK : j->rows;
    for (int64_t r = r0; r < r1; r++)
        for (int64_t g = 0; g < j->cols / j->group_size; g++) quantize_group(j, r, g);
}

/* Replaces *lin by its RTN-quantized qint copy (new payload and bias). */
static int quantize_linear(sb_linear *lin, int bits, int group_size, bool symmetric, sb_pool *pool, sb_err *err) {
    int64_t rows = lin->rows, cols = lin->cols, gs = group_size ? group_size : cols;
    size_t n = (size_t)(rows * cols), n_scales = (size_t)(rows * (cols / gs));
    float *w = sb_malloc(err, sizeof(float) * n), *scales = sb_malloc(err, sizeof(float) * n_scales);
    float *zeros = sb_malloc(err, sizeof(float) * n_scales);
    uint8_t *codes = sb_malloc(err, n);
    int rc = w && scales && zeros && codes ? SB_OK : SB_EINTERNAL;
    sb_linear out = {0};
    if (!rc) {
        lin->fmt->decode_rows(lin, 0, rows, w);
        rtn_job j = {w, rows, cols, (int)gs, sb_quantizer_make(bits, symmetric), codes, scales, zeros};
        sb_pool_run(pool, rtn_rows, &j, (int)((rows + ROWS_PER_TASK - 1) / ROWS_PER_TASK));
        rc = sb_qint_pack(rows, cols, (int)gs, bits, NULL, codes, scales, symmetric ? NULL : zeros, &out, err);
    }
    if (!rc) rc = sb_linear_replace(lin, &out, err);
    free(w);
    free(scales);
    free(zeros);
    free(codes);
    return rc;
}

static int rtn_apply(sb_model *m, const sb_params *p, const sb_run_ctx *ctx, sb_method_report *report, sb_err *err) {
    int bits = (int)sb_param_num(p, "bits"), group_size = (int)sb_param_num(p, "group_size");
    bool symmetric = sb_param_bool(p, "symmetric"), head = sb_param_bool(p, "head");
    int rc = check_params(m, bits, group_size, head, err), n_layers = 0;
    for (int l = 0; !rc && l < m->n_layer; l++) {
        sb_linear *lins[N_BLOCK_LINEARS];
        block_linears(&m->blocks[l], lins);
        for (int i = 0; !rc && i < N_BLOCK_LINEARS; i++) {
            if (!lins[i]->fmt) continue;
            rc = quantize_linear(lins[i], bits, group_size, symmetric, ctx ? ctx->pool : NULL, err);
            if (rc) sb_err_prefix(err, "rtn: blocks.%d.%s", l, linear_names[i]);
            n_layers++;
        }
    }
    if (!rc && head) {
        rc = quantize_linear(&m->head, bits, group_size, symmetric, ctx ? ctx->pool : NULL, err);
        if (rc) sb_err_prefix(err, "rtn: head");
    }
    if (rc) return rc;
    report->bits_per_weight = sb_model_bits_per_weight(m);
    report->real_quant = true;
    report->details = cJSON_CreateObject();
    if (report->details) {
        cJSON_AddNumberToObject(report->details, "layers_quantized", n_layers);
        cJSON_AddStringToObject(report->details, "layers",
                                head ? "q,k,v,o,gate,up,down of every block and the head; embeddings kept"
                                     : "q,k,v,o,gate,up,down of every block; embeddings and head kept");
        cJSON_AddStringToObject(report->details, "format", "qint: bit-packed codes, f16 scales (and f16 zeros if asymmetric)");
    }
    return SB_OK;
}

static const sb_param_spec rtn_params[] = {
    {"bits", SB_PARAM_INT, "4", 2, 8, NULL, "bits per weight code"},
    {"group_size", SB_PARAM_INT, "128", 0, 1 << 20, NULL,
     "weights per scale along a row; 0 = one group per row (per-channel); must divide every layer's width"},
    {"symmetric", SB_PARAM_BOOL, "false", 0, 0, NULL, "zero fixed at 2^(bits-1) (no zeros stored) instead of fitted"},
    {"head", SB_PARAM_BOOL, "false", 0, 0, NULL,
     "also quantize the output head (the papers keep it in 16 bits; untied heads only)"},
};

const sb_method sb_method_rtn = {
    .abi = SB_PLUGIN_ABI,
    .name = "rtn",
    .family = "quantization",
    .summary = "round-to-nearest min-max integer quantization of the block linears (GPTQ's RTN baseline), "
               "stored bit-packed",
    .paper = {"GPTQ: Accurate Post-Training Quantization for Generative Pre-trained Transformers (RTN baseline)",
              "2210.17323", "2022"},
    .params = rtn_params,
    .n_params = sizeof rtn_params / sizeof rtn_params[0],
    .apply = rtn_apply,
};
