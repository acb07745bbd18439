/* dense.c - the uncompressed model: the reference every method is compared
 * with. It changes nothing and reports the model's exact storage bits. */
#include "plugin.h"

static int dense_apply(sb_model *m, const sb_params *p, const sb_run_ctx *ctx, sb_method_report *report, sb_err *err) {
    (void)p;
    (void)ctx;
    (void)err;
    uint64_t n = 0;
    for (int l = 0; l < m->n_layer; l++) {
        const sb_block *b = &m->blocks[l];
        const sb_linear *lins[] = {&b->wq, &b->wk, &b->wv, &b->wo, &b->w_gate, &b->w_up, &b->w_down};
        for (size_t i = 0; i < sizeof lins / sizeof lins[0]; i++)
            if (lins[i]->fmt) n += (uint64_t)(lins[i]->rows * lins[i]->cols);
    }
    uint64_t bits = sb_model_weight_bits(m) - sb_linear_storage_bits(&m->tok_embd) -
                    (m->tied_head ? 0 : sb_linear_storage_bits(&m->head));
    report->bits_per_weight = n ? (double)bits / (double)n : 0;
    report->real_quant = true;
    return SB_OK;
}

const sb_method sb_method_dense = {
    .abi = SB_PLUGIN_ABI,
    .name = "dense",
    .family = "baseline",
    .summary = "the model as loaded, unchanged",
    .apply = dense_apply,
};
