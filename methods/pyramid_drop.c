/* pyramid_drop.c - PyramidDrop (Xing et al., "PyramidDrop: Accelerating
 * Your Large Vision-Language Models via Pyramid Visual Redundancy
 * Reduction", arXiv 2410.17247), training-free, for ViT classifiers.
 *
 * The forward pass is split into stages at blocks `layers` (default: a
 * quarter, half and three quarters of the depth, as [8, 16, 24] of 32 in
 * the paper).  At each boundary, before the block runs, the image tokens
 * are ranked by the attention the query gives them, computed with that
 * block's own LayerNorm and q/k projections and averaged over heads (the
 * authors' code does this with the last instruction token; for a plain
 * ViT classifier the natural query is the class token), and only the top
 * int(lambda x current) image tokens go on, so stage s keeps about
 * lambda^s of them.  Class (and DeiT distillation) tokens always stay.
 * The probe's cost (keys of every token, one query) is counted in FLOPs.
 * lambda = 1 keeps everything and gives exactly the dense logits. */
#include <stdlib.h>
#include <string.h>

#include "token_select.h"

static int pd_count(const sb_token_reducer *r, int layer, int n_tok, int n_prefix, int n_patches0) {
    (void)n_patches0;
    if (!sb_token_is_stage(r, layer) || r->ratio >= 1.0) return n_tok;
    return n_prefix + sb_token_keep(n_tok - n_prefix, r->ratio);
}

static int pd_select(const sb_token_reducer *r, const sb_token_view *v, int32_t *keep, int *n_keep, sb_err *err) {
    if (!v->cls_attn) return sb_err_set(err, SB_EINTERNAL, "%s: no class-token attention before block %d", r->name, v->layer);
    sb_token_top(v->cls_attn, NULL, v->n_tok, v->n_prefix, *n_keep, keep);
    return SB_OK;
}

static int pd_apply(sb_model *m, const sb_params *p, const sb_run_ctx *ctx, sb_method_report *report, sb_err *err) {
    (void)ctx;
    sb_token_reducer *r;
    int rc = sb_token_reducer_new(m, "pyramid-drop", &r, err);
    if (rc) return rc;
    r->ratio = sb_param_num(p, "lambda");
    r->count = pd_count;
    r->select = pd_select;
    r->wants_cls_probe = true;
    return sb_token_reducer_install(m, r, sb_param_str(p, "layers"), report, err);
}

static const sb_param_spec pd_params[] = {
    {"lambda", SB_PARAM_FLOAT, "0.5", 0.001, 1, NULL, "fraction of the image tokens kept at each stage boundary"},
    {"layers", SB_PARAM_STRING, "auto", 0, -1, NULL,
     "blocks before which tokens drop: 'auto' (depth/4, depth/2, 3*depth/4) or a comma list"},
};

const sb_method sb_method_pyramid_drop = {
    .abi = SB_PLUGIN_ABI,
    .name = "pyramid-drop",
    .family = "token-reduction",
    .summary = "PyramidDrop: staged dropping of image tokens ranked by the class token's attention (training-free)",
    .paper = {"PyramidDrop: Accelerating Your Large Vision-Language Models via Pyramid Visual Redundancy Reduction",
              "2410.17247", "2024"},
    .params = pd_params,
    .n_params = sizeof pd_params / sizeof pd_params[0],
    .apply = pd_apply,
};
