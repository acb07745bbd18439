/* profile.cu - device time of a forward pass by kind of operation.
 *
 * Each operation of the session starts with profile_mark(kind), which records
 * a CUDA event on the stream without waiting; the time between one mark and
 * the next is that operation's. profile_flush, at the end of a call, records
 * the closing event, waits for it and adds the intervals to the sums. The
 * events are on the one stream the session uses, so the intervals tile the
 * call's device time with no gaps and no overlap. */
#include <stdlib.h>

#include "cuda_internal.h"

enum { PROFILE_EVENTS = 4096 };

struct cuda_profile {
    cudaEvent_t ev[PROFILE_EVENTS];
    int op[PROFILE_EVENTS];
    int n_created, n; /* events created; marks recorded in this call */
    double seconds[SB_CUDA_OP_N];
};

extern "C" const char *const sb_cuda_op_names[SB_CUDA_OP_N] = {"linear", "attention", "norm", "head", "other"};

/* Adds intervals [i, i+1) for i < n - 1 to the sums (the events are complete). */
static int add_intervals(cuda_profile *p, sb_err *err) {
    for (int i = 0; i + 1 < p->n; i++) {
        float ms = 0;
        int rc = CUDA_OK(cudaEventElapsedTime(&ms, p->ev[i], p->ev[i + 1]), err);
        if (rc) return rc;
        p->seconds[p->op[i]] += 1e-3 * ms;
    }
    return SB_OK;
}

/* A call with more marks than events: account for what is recorded, keep the
 * last mark as the start of what follows. */
static int make_room(cuda_profile *p, sb_err *err) {
    int rc = CUDA_OK(cudaEventSynchronize(p->ev[p->n - 1]), err);
    if (!rc) rc = add_intervals(p, err);
    if (rc) return rc;
    cudaEvent_t last = p->ev[p->n - 1];
    p->ev[p->n - 1] = p->ev[0];
    p->ev[0] = last;
    p->op[0] = p->op[p->n - 1];
    p->n = 1;
    return SB_OK;
}

int profile_mark(sb_cuda_ctx *c, int op, sb_err *err) {
    cuda_profile *p = c->profile;
    if (!p) return SB_OK;
    if (p->n == PROFILE_EVENTS) {
        int rc = make_room(p, err);
        if (rc) return rc;
    }
    if (p->n == p->n_created) {
        int rc = CUDA_OK(cudaEventCreate(&p->ev[p->n]), err);
        if (rc) return rc;
        p->n_created++;
    }
    p->op[p->n] = op;
    return CUDA_OK(cudaEventRecord(p->ev[p->n++], 0), err);
}

int profile_flush(sb_cuda_ctx *c, sb_err *err) {
    cuda_profile *p = c->profile;
    if (!p || p->n == 0) return SB_OK;
    int rc = profile_mark(c, SB_CUDA_OP_OTHER, err); /* the closing event; its own interval is never counted */
    if (!rc) rc = CUDA_OK(cudaEventSynchronize(p->ev[p->n - 1]), err);
    if (!rc) rc = add_intervals(p, err);
    p->n = 0;
    return rc;
}

void profile_free(sb_cuda_ctx *c) {
    cuda_profile *p = c->profile;
    if (!p) return;
    for (int i = 0; i < p->n_created; i++) cudaEventDestroy(p->ev[i]);
    free(p);
    c->profile = NULL;
}

extern "C" int sb_cuda_profile(sb_cuda_ctx *c, bool on, sb_err *err) {
    profile_free(c);
    if (!on) return SB_OK;
    c->profile = (cuda_profile *)sb_calloc(err, 1, sizeof *c->profile);
    return c->profile ? SB_OK : SB_EINTERNAL;
}

extern "C" void sb_cuda_profile_get(const sb_cuda_ctx *c, double seconds[SB_CUDA_OP_N]) {
    for (int i = 0; i < SB_CUDA_OP_N; i++) seconds[i] = c->profile ? c->profile->seconds[i] : 0;
}
