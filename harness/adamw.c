/* adamw.c - AdamW, gradient-norm clipping and the learning-rate schedule.
 *
 * The update is torch.optim.AdamW's (foreach=False) step by step, so the
 * PyTorch fixture can check one step:
 *   p -= lr * wd * p                       (matrices only: decoupled decay)
 *   m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g²
 *   p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
 * beta2 is 0.95 (the usual choice for small language models, as GPT-3 and
 * llm.c use; 0.999 adapts too slowly to the loss's fast early drop). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "train.h"

enum { ADAM_CHUNK = 32768 };

int sb_adamw_init(sb_adamw *o, const sb_train_model *tm, double weight_decay, sb_err *err) {
    memset(o, 0, sizeof *o);
    o->beta1 = 0.9;
    o->beta2 = 0.95;
    o->eps = 1e-8;
    o->weight_decay = weight_decay;
    o->m = sb_calloc(err, (size_t)tm->n_params, sizeof(float));
    o->v = sb_calloc(err, (size_t)tm->n_params, sizeof(float));
    if (o->m && o->v) return SB_OK;
    sb_adamw_free(o);
    return sb_err_prefix(err, "AdamW state for %lld parameters", (long long)tm->n_params);
}

void sb_adamw_free(sb_adamw *o) {
    free(o->m);
    free(o->v);
    o->m = o->v = NULL;
}

typedef struct {
    float *w, *m, *v;
    const float *g;
    int64_t n;
    float decay_mul, b1, b2, step_size, bc2_sqrt, eps;
} adam_job;

static void adam_task(void *arg, int task, int worker) {
    (void)worker;
    const adam_job *j = arg;
    int64_t i0 = (int64_t)task * ADAM_CHUNK, i1 = i0 + ADAM_CHUNK < j->n ? i0 + ADAM_CHUNK : j->n;
    for (int64_t i = i0; i < i1; i++) {
        float g = j->g[i];
        j->w[i] *= j->decay_mul;
        j->m[i] = j->b1 * j->m[i] + (1.0f - j->b1) * g;
        j->v[i] = j->b2 * j->v[i] + (1.0f - j->b2) * g * g;
        j->w[i] -= j->step_size * j->m[i] / (sqrtf(j->v[i]) / j->bc2_sqrt + j->eps);
    }
}

void sb_adamw_step(sb_adamw *o, sb_train_model *tm, double lr) {
    o->step++;
    double bc1 = 1.0 - pow(o->beta1, (double)o->step), bc2 = 1.0 - pow(o->beta2, (double)o->step);
    for (int i = 0; i < tm->n_tensors; i++) {
        const sb_train_tensor *t = &tm->tensors[i];
        int64_t off = t->w - tm->param_mem, n = t->rows * t->cols;
        adam_job j = {t->w, o->m + off, o->v + off, t->g, n,
                      t->decay ? (float)(1.0 - lr * o->weight_decay) : 1.0f,
                      (float)o->beta1, (float)o->beta2, (float)(lr / bc1), (float)sqrt(bc2), (float)o->eps};
        sb_pool_run(tm->pool, adam_task, &j, (int)((n + ADAM_CHUNK - 1) / ADAM_CHUNK));
    }
}

/* Sums in double in storage order, so the norm does not depend on threads. */
double sb_train_clip_grad_norm(sb_train_model *tm, double max_norm) {
    double sq = 0;
    for (int64_t i = 0; i < tm->n_params; i++) sq += (double)tm->grad_mem[i] * tm->grad_mem[i];
    double norm = sqrt(sq);
    if (max_norm > 0 && norm > max_norm) {
        float c = (float)(max_norm / (norm + 1e-6));
        for (int64_t i = 0; i < tm->n_params; i++) tm->grad_mem[i] *= c;
    }
    return norm;
}

double sb_lr_schedule(int step, int steps, int warmup, double lr_max, double min_frac) {
    if (step < warmup) return lr_max * (double)(step + 1) / (double)warmup;
    int span = steps - warmup - 1;
    double progress = span > 0 ? (double)(step - warmup) / (double)span : 1.0;
    if (progress > 1) progress = 1;
    double cosine = 0.5 * (1.0 + cos(3.141592653589793 * progress));
    return lr_max * (min_frac + (1.0 - min_frac) * cosine);
}
