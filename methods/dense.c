/* dense.c - the uncompressed model: the reference every method is compared
 * with. It changes nothing and reports the model's exact storage bits. */
#include "plugin.h"

static int dense_apply(sb_model *m, const sb_params *p, const sb_run_ctx *ctx, sb_method_report *report, sb_err *err) {
    (void)p;
    (void)ctx;
    (void)err;
    report->bits_per_weight = sb_model_bits_per_weight(m);
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
