/* image_classification.h - the image-classification task's core, on an
 * image set already in memory (tests build one; the task loads one with
 * datasets/image_set.h). */
#ifndef SB_IMAGE_CLASSIFICATION_H
#define SB_IMAGE_CLASSIFICATION_H

#include "../datasets/image_set.h"
#include "plugin.h"

typedef struct sb_imgcls_opts {
    int batch;     /* images per forward pass */
    int top_k;     /* the second accuracy reported (5: top-5) */
} sb_imgcls_opts;

/* Classifies every labelled image of set with model m and adds metrics
 * top1 / topK accuracy (%), mean per-class accuracy (%), each with its
 * standard error, images_per_s and gflops_per_image (counted from the
 * tokens each block actually ran with), and per-class details. Dataset
 * classes are matched to the model's id2label by name when every name is
 * found, else by index when the counts agree; otherwise SB_EINPUT. */
int sb_imgcls_run_set(const sb_model *m, const sb_image_set *set, const sb_imgcls_opts *o, const sb_run_ctx *ctx,
                      sb_task_result *out, sb_err *err);

#endif
