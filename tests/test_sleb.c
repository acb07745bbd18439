/* test_sleb.c - SLEB's greedy block elimination.
 *
 * The tiny reference Llama has 2 blocks, too few for SLEB's default rule
 * (the first and last remaining blocks stay), so the mechanics run on a
 * random 6-block Llama sharing the reference tokenizer; the tiny model is
 * used with both barriers at 0.  Checked: removing a block changes the
 * logits; each phase's choice is the argmin of summed NLLs computed here
 * independently (own loop over the same calibration windows, full-length
 * forward, own log-softmax); the block list shrinks by the removed blocks
 * and params_removed is exact; the snapshot restores the block list and
 * the logits bit for bit; bad counts are refused before work, by name. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "calibration.h"
#include "check.h"
#include "model_random.h"
#include "model_snapshot.h"
#include "plugin.h"

#define FIX "tests/reference/tasks"

extern const sb_method sb_method_sleb;

enum { N_SAMPLES = 3, SEQ_LEN = 40 };

/* The calibration every case draws (run_sleb and the replay alike); the
 * long-window case changes it. */
static struct {
    int n_samples, seq_len;
} calib = {N_SAMPLES, SEQ_LEN};

static int run_sleb(sb_model *m, sb_pool *pool, const char *const *extra, int n_extra, sb_method_report *rep,
                    sb_err *err) {
    char samples[32], seq[32];
    snprintf(samples, sizeof samples, "n_samples=%d", calib.n_samples);
    snprintf(seq, sizeof seq, "seq_len=%d", calib.seq_len);
    const char *args[16] = {"data=" FIX "/text.raw", samples, seq, "seed=0"};
    int n = 4;
    for (int i = 0; i < n_extra; i++) args[n++] = extra[i];
    sb_params p;
    memset(rep, 0, sizeof *rep);
    int rc = sb_params_from_strings(sb_method_sleb.params, sb_method_sleb.n_params, args, n, "test", &p, err);
    sb_run_ctx ctx = {.pool = pool};
    return rc ? rc : sb_method_sleb.apply(m, &p, &ctx, rep, err);
}

/* Logits [n, V] of one sequence. */
static float *logits_of(const sb_model *m, sb_pool *pool, const int32_t *tokens, int n) {
    sb_err err = {0};
    sb_session *s = NULL;
    float *out = malloc(sizeof(float) * (size_t)n * (size_t)m->n_vocab);
    if (sb_session_new(m, pool, 1, n, n, &s, &err) || sb_session_forward(s, tokens, n, 0, out, &err)) {
        fprintf(stderr, "forward: %s\n", err.msg);
        free(out);
        out = NULL;
    }
    sb_session_free(s);
    return out;
}

/* Σ −log softmax(logits_t)[token_{t+1}] over all windows, written out in full here. */
static double reference_nll(const sb_model *m, sb_pool *pool, const sb_calib_set *set) {
    double total = 0;
    for (int k = 0; k < set->n_samples; k++) {
        const int32_t *w = set->tokens + (int64_t)k * set->seq_len;
        float *lg = logits_of(m, pool, w, set->seq_len);
        if (!lg) return NAN;
        for (int t = 0; t + 1 < set->seq_len; t++) {
            const float *row = lg + (int64_t)t * m->n_vocab;
            double mx = row[0], sum = 0;
            for (int v = 1; v < m->n_vocab; v++) mx = fmax(mx, row[v]);
            for (int v = 0; v < m->n_vocab; v++) sum += exp((double)row[v] - mx);
            total += mx + log(sum) - row[w[t + 1]];
        }
        free(lg);
    }
    return total;
}

/* The model without blocks alive[skip] (alive: original indices still in). */
static double nll_without(const sb_model *m, sb_pool *pool, const sb_calib_set *set, const int *alive, int n_alive,
                          int skip) {
    sb_model view = *m;
    view.blocks = malloc(sizeof(sb_block) * (size_t)n_alive);
    view.n_layer = 0;
    for (int i = 0; i < n_alive; i++)
        if (i != skip) view.blocks[view.n_layer++] = m->blocks[alive[i]];
    double nll = reference_nll(&view, pool, set);
    free(view.blocks);
    return nll;
}

static int draw_set(const sb_model *m, sb_calib_set *set) {
    sb_err err = {0};
    sb_calib_config cfg = {.path = FIX "/text.raw", .n_samples = calib.n_samples, .seq_len = calib.seq_len, .seed = 0};
    int rc = sb_calib_draw(m->tokenizer, &cfg, set, &err);
    if (rc) fprintf(stderr, "calibration: %s\n", err.msg);
    return rc;
}

static int json_int_at(const cJSON *arr, int i) {
    const cJSON *v = cJSON_GetArrayItem(arr, i);
    return cJSON_IsNumber(v) ? v->valueint : -1;
}

/* Replays the greedy search with reference_nll and compares every phase. */
static void check_phases(const sb_model *m, sb_pool *pool, const cJSON *details, int early, int latter, int n_remove) {
    sb_calib_set set;
    memset(&set, 0, sizeof set);
    if (!test_expect(draw_set(m, &set) == 0, "calibration draw")) return;
    int alive[64], n_alive = m->n_layer;
    for (int i = 0; i < n_alive; i++) alive[i] = i;
    const cJSON *phases = cJSON_GetObjectItem(details, "phases"), *removed = cJSON_GetObjectItem(details, "removed_blocks");
    test_expect(cJSON_GetArraySize(phases) == n_remove && cJSON_GetArraySize(removed) == n_remove, "phase count");
    for (int ph = 0; ph < n_remove; ph++) {
        const cJSON *cands = cJSON_GetObjectItem(cJSON_GetArrayItem(phases, ph), "candidates");
        int best = -1, c = 0;
        double best_nll = INFINITY;
        for (int j = early; j < n_alive - latter; j++, c++) {
            double nll = nll_without(m, pool, &set, alive, n_alive, j);
            const cJSON *cand = cJSON_GetArrayItem(cands, c);
            double got = cJSON_GetObjectItem(cand, "nll") ? cJSON_GetObjectItem(cand, "nll")->valuedouble : NAN;
            test_expect(cand && cJSON_GetObjectItem(cand, "block")->valueint == alive[j] &&
                            fabs(got - nll) <= 1e-5 * fabs(nll),
                        "phase %d block %d: nll %.9g, independent %.9g", ph, alive[j], got, nll);
            if (nll < best_nll) best_nll = nll, best = j;
        }
        test_expect(c == cJSON_GetArraySize(cands), "phase %d: %d candidates, expected %d", ph, cJSON_GetArraySize(cands), c);
        test_expect(json_int_at(removed, ph) == alive[best], "phase %d removed block %d, the argmin is %d", ph,
                    json_int_at(removed, ph), alive[best]);
        memmove(alive + best, alive + best + 1, sizeof(int) * (size_t)(n_alive - best - 1));
        n_alive--;
    }
    sb_calib_set_free(&set);
}

static uint64_t block_params(const sb_model *m, int l) {
    sb_model one = *m;
    one.blocks = &m->blocks[l];
    one.n_layer = 1;
    sb_model none = *m;
    none.n_layer = 0;
    return sb_model_param_count(&one) - sb_model_param_count(&none);
}

static int random_model(sb_model **out, sb_err *err) {
    sb_random_shape shape = {.n_vocab = 512, .d_model = 32, .n_layer = 6, .n_head = 4, .n_kv_head = 2, .ff = 64,
                             .max_positions = 640};
    int rc = sb_model_new_random(&shape, 11, out, err);
    if (!rc) rc = sb_tokenizer_load_hf(FIX "/model", &(*out)->tokenizer, err);
    return rc;
}

static void test_random_model(sb_pool *pool) {
    sb_err err = {0};
    sb_model *m = NULL;
    sb_model_snapshot *snap = NULL;
    test_begin("sleb_random_model_greedy_argmin");
    int rc = random_model(&m, &err);
    if (!rc) rc = sb_model_snapshot_take(m, &snap, &err);
    if (!test_expect(rc == 0, "setup: %s", err.msg)) {
        test_end();
        sb_model_free(m);
        return;
    }
    int32_t probe[24];
    for (int i = 0; i < 24; i++) probe[i] = (i * 37 + 5) % 512;
    float *before = logits_of(m, pool, probe, 24);
    int alive[6] = {0, 1, 2, 3, 4, 5};
    sb_model without2 = *m; /* removing a block changes the logits */
    sb_block kept[5];
    for (int i = 0, n = 0; i < 6; i++)
        if (i != 2) kept[n++] = m->blocks[alive[i]];
    without2.blocks = kept;
    without2.n_layer = 5;
    float *dropped = logits_of(&without2, pool, probe, 24);
    test_expect(before && dropped && test_max_abs_diff(before, dropped, 24L * 512) > 1e-3,
                "dropping block 2 must change the logits");
    free(dropped);

    sb_block *blocks_before = m->blocks;
    uint64_t params = sb_model_param_count(m);
    const char *extra[] = {"n_blocks=2"};
    sb_method_report rep;
    rc = run_sleb(m, pool, extra, 1, &rep, &err);
    test_expect(rc == 0, "sleb: %s", err.msg);
    if (!rc) {
        /* the replay needs the full block list: check it on the snapshot's restored model below */
        const cJSON *removed = cJSON_GetObjectItem(rep.details, "removed_blocks");
        int r0 = json_int_at(removed, 0), r1 = json_int_at(removed, 1);
        test_expect(m->n_layer == 4 && m->blocks != blocks_before, "n_layer %d, a new block array", m->n_layer);
        test_expect(r0 >= 1 && r0 <= 4 && r1 >= 1 && r1 <= 4 && r0 != r1, "removed %d and %d: never the first or last", r0, r1);
        sb_model_snapshot_restore(m, snap);
        test_expect(rep.params_removed == block_params(m, r0) + block_params(m, r1) &&
                        params - rep.params_removed == params - block_params(m, r0) - block_params(m, r1),
                    "params_removed %llu", (unsigned long long)rep.params_removed);
        test_expect(m->n_layer == 6 && m->blocks == blocks_before, "restore: the original block array and count");
        float *after = logits_of(m, pool, probe, 24);
        test_expect(before && after && memcmp(before, after, sizeof(float) * 24 * 512) == 0,
                    "restored logits must be identical");
        free(after);
        check_phases(m, pool, rep.details, 1, 1, 2);
        printf("# sleb random 6-block model: removed %d then %d\n", r0, r1);
    }
    test_end();
    free(before);
    cJSON_Delete(rep.details);
    sb_model_snapshot_free(snap);
    sb_model_free(m);
}

static void test_refusals(sb_pool *pool) {
    sb_err err = {0};
    sb_model *m = NULL;
    sb_method_report rep;
    test_begin("sleb_refuses_too_many_blocks");
    int rc = random_model(&m, &err);
    const char *too_many[] = {"n_blocks=5"};
    if (!rc) rc = run_sleb(m, pool, too_many, 1, &rep, &err);
    test_expect(rc == SB_EINPUT && strstr(err.msg, "n_blocks") && m->n_layer == 6, "n_blocks=5 of 6: %s", err.msg);
    cJSON_Delete(rep.details);
    memset(&err, 0, sizeof err);
    const char *tiny_ratio[] = {"ratio=0.1"};
    rc = run_sleb(m, pool, tiny_ratio, 1, &rep, &err);
    test_expect(rc == SB_EINPUT && strstr(err.msg, "ratio"), "ratio 0.1 of 6 blocks: %s", err.msg);
    cJSON_Delete(rep.details);
    test_end();
    sb_model_free(m);
}

/* The 2-block reference model: only with both barriers at 0. */
static void test_tiny_model(sb_pool *pool) {
    sb_err err = {0};
    sb_model *m = NULL;
    sb_model_snapshot *snap = NULL;
    sb_method_report rep = {0};
    test_begin("sleb_tiny_reference_model");
    int rc = sb_model_load(FIX "/model", &m, &err);
    if (!rc) rc = sb_model_snapshot_take(m, &snap, &err);
    test_expect(rc == 0 && m->n_layer == 2, "load: %s", err.msg);
    const char *defaults[] = {"n_blocks=1"};
    if (!rc) {
        int r = run_sleb(m, pool, defaults, 1, &rep, &err);
        test_expect(r == SB_EINPUT && strstr(err.msg, "n_blocks"), "2 blocks with barriers 1/1: %s", err.msg);
        cJSON_Delete(rep.details);
        memset(&err, 0, sizeof err);
    }
    const char *open[] = {"n_blocks=1", "early_barrier=0", "latter_barrier=0"};
    if (!rc) rc = run_sleb(m, pool, open, 3, &rep, &err);
    test_expect(rc == 0 && m->n_layer == 1, "sleb: %s", err.msg);
    if (!rc) {
        double kept_nll = cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(rep.details, "phases"), 0), "mean_nll")->valuedouble;
        sb_model_snapshot_restore(m, snap);
        sb_calib_set set;
        memset(&set, 0, sizeof set);
        double dense = draw_set(m, &set) ? NAN : reference_nll(m, pool, &set) / (N_SAMPLES * (SEQ_LEN - 1));
        sb_calib_set_free(&set);
        check_phases(m, pool, rep.details, 0, 0, 1);
        printf("# sleb tiny 2-block model: removed block %d; calibration ppl %.3f -> %.3f\n",
               json_int_at(cJSON_GetObjectItem(rep.details, "removed_blocks"), 0), exp(dense), exp(kept_nll));
    }
    test_end();
    cJSON_Delete(rep.details);
    sb_model_snapshot_free(snap);
    sb_model_free(m);
}

/* Windows longer than the head's chunk of positions (LOGIT_CHUNK = 256 in
 * sleb.c): every candidate's NLL still matches the independent full-length
 * forward, over two greedy phases. */
static void test_long_windows(sb_pool *pool) {
    sb_err err = {0};
    sb_model *m = NULL;
    sb_model_snapshot *snap = NULL;
    sb_method_report rep;
    memset(&rep, 0, sizeof rep);
    test_begin("sleb_windows_longer_than_head_chunk");
    calib.n_samples = 2, calib.seq_len = 600;
    const char *extra[] = {"n_blocks=2"};
    int rc = random_model(&m, &err);
    if (!rc) rc = sb_model_snapshot_take(m, &snap, &err);
    if (!rc) rc = run_sleb(m, pool, extra, 1, &rep, &err);
    if (test_expect(rc == 0, "%s", err.msg)) {
        sb_model_snapshot_restore(m, snap); /* the replay starts from all six blocks */
        check_phases(m, pool, rep.details, 1, 1, 2);
    }
    calib.n_samples = N_SAMPLES, calib.seq_len = SEQ_LEN;
    test_end();
    cJSON_Delete(rep.details);
    sb_model_snapshot_free(snap);
    sb_model_free(m);
}

int main(void) {
    sb_err err = {0};
    sb_pool *pool = NULL;
    if (sb_pool_new(2, &pool, &err)) return 1;
    test_random_model(pool);
    test_long_windows(pool);
    test_refusals(pool);
    test_tiny_model(pool);
    sb_pool_free(pool);
    return test_status();
}
