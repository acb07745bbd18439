/* test_slicegpt.c - SliceGPT (methods/slicegpt.c) and the sliced forward pass.
 *
 * Against the independent PyTorch implementation of
 * tests/reference/slicegpt/make_slicegpt_fixtures.py (float64, written from
 * the paper): the sliced model's logits on fixed tokens, with the same fixed
 * calibration tokens, for a Llama (RMSNorm), an OPT (LayerNorm, learned
 * positions, tied head) and a Phi (parallel blocks), and a Llama sliced to
 * half with the head sliced too; the widths it reports.  Tolerance: 1e-4 of
 * max |logit|: this side runs the calibration passes and the final model
 * in float32 (weights stored f32 after float64 rotations), the reference in
 * float64, and the PCA bases of later blocks inherit the float32 error of
 * the signals they are computed from; measured 0.5-1.8e-6, so 1e-4 leaves
 * room for another BLAS's summation order while a wrong sign, a missed
 * shortcut or a norm dividing by the sliced width is off by 1e-2 or more.
 *
 * Invariants: slicing 0% gives the dense logits (1e-4 of max |logit|, the
 * acceptance bound) for llama, opt, phi, gpt2, qwen2 (q/k/v biases),
 * mistral (sliding window), a GGUF llama and a tied-head llama;
 * a sliced model decodes token by token through the KV cache to the logits
 * of its full pass; the runner's snapshot restores the dense model bit for
 * bit; slicegpt then gptq works (GPTQ calibrates the narrower linears);
 * refusals (Gemma 3's post-branch norms, image models, no width left, an
 * earlier step compressed the weights, slicing twice, LoRC after slicing,
 * training a sliced model) are SB_EINPUT naming
 * the reason, with the model unchanged. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../methods/slicegpt.h"
#include "check.h"
#include "model_snapshot.h"
#include "plugin.h"
#include "train.h"

#define REF "tests/reference/slicegpt"
#define MODELS "tests/reference/models"
#define TASKS "tests/reference/tasks"

extern const sb_method sb_method_slicegpt;
extern const sb_method sb_method_gptq;
extern const sb_method sb_method_lorc;

static const double REF_TOL = 1e-4, DENSE_TOL = 1e-4;

/* ---- helpers -------------------------------------------------------------------- */

static char *read_text(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    if (s && fread(s, 1, (size_t)n, f) != (size_t)n) {
        free(s);
        s = NULL;
    }
    if (s) s[n] = 0;
    fclose(f);
    return s;
}

static float *read_f32(const char *path, long n) {
    FILE *f = fopen(path, "rb");
    float *x = f ? malloc(sizeof(float) * (size_t)n) : NULL;
    if (x && fread(x, sizeof(float), (size_t)n, f) != (size_t)n) {
        free(x);
        x = NULL;
    }
    if (f) fclose(f);
    return x;
}

/* Logits [n, V] of one full pass. */
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

/* Logits [n, V] decoded one token at a time through the KV cache. */
static float *decoded_logits(const sb_model *m, sb_pool *pool, const int32_t *tokens, int n) {
    sb_err err = {0};
    sb_session *s = NULL;
    float *out = malloc(sizeof(float) * (size_t)n * (size_t)m->n_vocab);
    int rc = sb_session_new(m, pool, 1, n, 1, &s, &err);
    for (int t = 0; !rc && t < n; t++) rc = sb_session_forward(s, tokens + t, 1, 0, out + (int64_t)t * m->n_vocab, &err);
    if (rc) {
        fprintf(stderr, "decode: %s\n", err.msg);
        free(out);
        out = NULL;
    }
    sb_session_free(s);
    return out;
}

static double rel_diff(const float *a, const float *b, long n) {
    double scale = test_max_abs(b, n);
    return test_max_abs_diff(a, b, n) / (scale > 0 ? scale : 1);
}

static void int_array(const cJSON *a, int32_t *out) {
    int i = 0;
    const cJSON *v;
    cJSON_ArrayForEach(v, a) out[i++] = (int32_t)v->valueint;
}

/* A calibration set of fixed tokens [n][T] from a JSON array of arrays. */
static bool set_from_json(const cJSON *rows, sb_calib_set *set) {
    memset(set, 0, sizeof *set);
    set->n_samples = cJSON_GetArraySize(rows);
    set->seq_len = cJSON_GetArraySize(cJSON_GetArrayItem(rows, 0));
    set->tokens = malloc(sizeof(int32_t) * (size_t)(set->n_samples * set->seq_len));
    if (!set->tokens) return false;
    int k = 0;
    const cJSON *row;
    cJSON_ArrayForEach(row, rows) int_array(row, set->tokens + (int64_t)(k++) * set->seq_len);
    snprintf(set->sampling, sizeof set->sampling, "fixed");
    return true;
}

static int slice(sb_model *m, sb_pool *pool, const sb_calib_set *set, double sparsity, bool slice_head, cJSON *det,
                 sb_err *err) {
    sb_slicegpt_opts o = {sparsity, 8, slice_head, NULL};
    sb_run_ctx ctx = {.pool = pool};
    return sb_slicegpt_slice(m, set, &o, &ctx, det, err);
}

static int apply_method(const sb_method *meth, sb_model *m, const sb_model *ref, sb_pool *pool,
                        const char *const *args, int n, sb_method_report *rep, sb_err *err) {
    sb_params p;
    memset(rep, 0, sizeof *rep);
    int rc = sb_params_from_strings(meth->params, meth->n_params, args, n, "test", &p, err);
    sb_run_ctx ctx = {.pool = pool, .reference = ref};
    return rc ? rc : meth->apply(m, &p, &ctx, rep, err);
}

/* Methods never free what the model held before them (the runner's
 * snapshot restores it), so every test loads with a snapshot and frees
 * through a restore, as the runner does. */
static int load(const char *path, sb_model **m, sb_model_snapshot **snap, sb_err *err) {
    int rc = sb_model_load(path, m, err);
    return rc ? rc : sb_model_snapshot_take(*m, snap, err);
}

static void unload(sb_model *m, sb_model_snapshot *snap) {
    if (m && snap) sb_model_snapshot_restore(m, snap);
    sb_model_snapshot_free(snap);
    sb_model_free(m);
}

/* A later step replaces linears without freeing them (the runner's restore
 * frees what the model holds at the end); payloads of `before` that the
 * model no longer holds are the caller's. */
enum { MAX_HELD = 256 };
typedef struct held {
    void *p[MAX_HELD];
    int n;
} held;

static void hold_block_payloads(const sb_model *m, held *h) {
    h->n = 0;
    for (int l = 0; l < m->n_layer; l++)
        for (int i = 0; i < SB_BLOCK_LINEARS && h->n + 2 <= MAX_HELD; i++) {
            const sb_linear *w = sb_block_linear(&m->blocks[l], i);
            if (w->owned) h->p[h->n++] = w->owned;
            if (w->bias) h->p[h->n++] = w->bias;
        }
}

static void free_orphans(const sb_model *m, const held *before) {
    held now;
    hold_block_payloads(m, &now);
    for (int i = 0; i < before->n; i++) {
        bool kept = false;
        for (int j = 0; j < now.n; j++) kept = kept || now.p[j] == before->p[i];
        if (!kept) free(before->p[i]);
    }
}

/* ---- the reference fixtures ------------------------------------------------------ */

static void check_widths(const sb_model *m, const cJSON *widths, int width, bool slice_head) {
    test_expect(sb_model_embed_width(m) == width, "embedding width %lld, expected %d",
                (long long)sb_model_embed_width(m), width);
    for (int l = 0; l < m->n_layer; l++) {
        const cJSON *w = cJSON_GetArrayItem(widths, l);
        const sb_block *b = &m->blocks[l];
        int64_t got[3] = {sb_block_width_in(b), sb_block_width_mid(b), sb_block_width_out(b, m->parallel_residual)};
        for (int i = 0; i < 3; i++)
            test_expect(got[i] == cJSON_GetArrayItem(w, i)->valueint, "block %d width %d: %lld, reference %d", l, i,
                        (long long)got[i], cJSON_GetArrayItem(w, i)->valueint);
    }
    test_expect(m->head.cols == (slice_head ? width : m->d_model), "head width %lld", (long long)m->head.cols);
    test_expect(sb_model_is_sliced(m), "the model does not say it is sliced");
}

/* One fixture case: slice with its calibration tokens, compare logits and widths. */
static void reference_case(const cJSON *c, sb_pool *pool) {
    const char *name = cJSON_GetObjectItem(c, "name")->valuestring;
    char tname[96], path[256];
    snprintf(tname, sizeof tname, "reference_%s", name);
    test_begin(tname);
    snprintf(path, sizeof path, MODELS "/%s", cJSON_GetObjectItem(c, "model")->valuestring);
    sb_err err = {0};
    sb_model *m = NULL;
    sb_model_snapshot *snap = NULL;
    sb_calib_set set;
    int n_eval = cJSON_GetArraySize(cJSON_GetObjectItem(c, "eval_tokens"));
    int32_t *ev = malloc(sizeof(int32_t) * (size_t)n_eval);
    bool ok = test_expect(load(path, &m, &snap, &err) == SB_OK, "load: %s", err.msg) && ev &&
              test_expect(set_from_json(cJSON_GetObjectItem(c, "calibration_tokens"), &set), "calibration tokens");
    bool slice_head = cJSON_IsTrue(cJSON_GetObjectItem(c, "slice_head"));
    if (ok) {
        int_array(cJSON_GetObjectItem(c, "eval_tokens"), ev);
        ok = test_expect(slice(m, pool, &set, cJSON_GetObjectItem(c, "sparsity")->valuedouble, slice_head, NULL, &err) ==
                             SB_OK,
                         "slice: %s", err.msg);
        sb_calib_set_free(&set);
    }
    if (ok) {
        check_widths(m, cJSON_GetObjectItem(c, "widths"), cJSON_GetObjectItem(c, "width")->valueint, slice_head);
        long n = (long)n_eval * m->n_vocab;
        snprintf(path, sizeof path, REF "/%s", cJSON_GetObjectItem(c, "logits_file")->valuestring);
        float *want = read_f32(path, n), *got = logits_of(m, pool, ev, n_eval);
        double rel = want && got ? rel_diff(got, want, n) : INFINITY;
        printf("  %-16s max|C - reference| / max|reference| = %.2e\n", name, rel);
        test_expect(rel <= REF_TOL, "logits differ from the reference by %.3g of max |logit| (tolerance %g)", rel,
                    REF_TOL);
        free(want);
        free(got);
    }
    free(ev);
    unload(m, snap);
    test_end();
}

static void test_reference(sb_pool *pool) {
    char *text = read_text(REF "/cases.json");
    cJSON *root = text ? cJSON_Parse(text) : NULL;
    const cJSON *c;
    if (!root) {
        test_begin("reference_fixtures");
        test_expect(false, "cannot read " REF "/cases.json");
        test_end();
    }
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(root, "cases")) reference_case(c, pool);
    cJSON_Delete(root);
    free(text);
}

/* ---- invariants ------------------------------------------------------------------------ */

enum { N_CAL = 3, T_CAL = 20, T_EVAL = 24 };

/* Deterministic tokens below V. */
static void some_tokens(int32_t *t, int n, int V, uint32_t seed) {
    for (int i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        t[i] = (int32_t)((seed >> 8) % (uint32_t)V);
    }
}

static bool fixed_set(const sb_model *m, sb_calib_set *set) {
    memset(set, 0, sizeof *set);
    set->n_samples = N_CAL;
    set->seq_len = T_CAL;
    set->tokens = malloc(sizeof(int32_t) * N_CAL * T_CAL);
    if (set->tokens) some_tokens(set->tokens, N_CAL * T_CAL, m->n_vocab, 5);
    return set->tokens != NULL;
}

/* Slicing 0% rotates everything and keeps every dimension: the dense logits. */
static void test_zero_is_dense(const char *dir, sb_pool *pool) {
    char name[96], path[256];
    snprintf(name, sizeof name, "zero_sparsity_is_dense_%s", strrchr(dir, '/') ? strrchr(dir, '/') + 1 : dir);
    snprintf(path, sizeof path, "%s", dir);
    test_begin(name);
    sb_err err = {0};
    sb_model *m = NULL;
    sb_model_snapshot *snap = NULL;
    sb_calib_set set = {0};
    int32_t ev[T_EVAL];
    float *dense = NULL, *sliced = NULL;
    if (test_expect(load(path, &m, &snap, &err) == SB_OK, "load: %s", err.msg) && fixed_set(m, &set)) {
        some_tokens(ev, T_EVAL, m->n_vocab, 9);
        dense = logits_of(m, pool, ev, T_EVAL);
        if (test_expect(slice(m, pool, &set, 0.0, false, NULL, &err) == SB_OK, "slice: %s", err.msg)) {
            sliced = logits_of(m, pool, ev, T_EVAL);
            double rel = dense && sliced ? rel_diff(sliced, dense, (long)T_EVAL * m->n_vocab) : INFINITY;
            test_expect(rel <= DENSE_TOL, "0%% slicing moved the logits by %.3g of max |logit|", rel);
            test_expect(m->blocks[0].attn_shortcut.fmt != NULL && !m->tied_head, "no rotation happened");
        }
    }
    free(dense);
    free(sliced);
    sb_calib_set_free(&set);
    unload(m, snap);
    test_end();
}

/* A sliced model decodes through its KV cache to the logits of its full pass. */
static void test_decode(const char *dir, bool slice_head, sb_pool *pool) {
    char name[96];
    snprintf(name, sizeof name, "decode_equals_full_pass_%s%s", strrchr(dir, '/') + 1, slice_head ? "_head" : "");
    test_begin(name);
    sb_err err = {0};
    sb_model *m = NULL;
    sb_model_snapshot *snap = NULL;
    sb_calib_set set = {0};
    int32_t ev[T_EVAL];
    if (test_expect(load(dir, &m, &snap, &err) == SB_OK, "load: %s", err.msg) && fixed_set(m, &set) &&
        test_expect(slice(m, pool, &set, 0.3, slice_head, NULL, &err) == SB_OK, "slice: %s", err.msg)) {
        some_tokens(ev, T_EVAL, m->n_vocab, 3);
        float *full = logits_of(m, pool, ev, T_EVAL), *dec = decoded_logits(m, pool, ev, T_EVAL);
        double rel = full && dec ? rel_diff(dec, full, (long)T_EVAL * m->n_vocab) : INFINITY;
        test_expect(rel <= 1e-5, "decoding differs from the full pass by %.3g of max |logit|", rel);
        test_expect(sb_model_embed_width(m) == 40 && m->blocks[0].wq.cols == 40, "embedding width %lld, expected 40",
                    (long long)sb_model_embed_width(m));
        free(full);
        free(dec);
    }
    sb_calib_set_free(&set);
    unload(m, snap);
    test_end();
}

/* Through the plugin as the runner calls it: report, snapshot restore, GPTQ after. */
static void test_plugin_and_restore(sb_pool *pool) {
    test_begin("plugin_report_restore_then_gptq");
    sb_err err = {0};
    sb_model *m = NULL;
    sb_model_snapshot *snap = NULL;
    int32_t ev[T_EVAL];
    float *before = NULL;
    const char *args[] = {"sparsity=0.25", "data=" TASKS "/text.raw", "n_samples=4", "seq_len=32"};
    sb_method_report rep;
    bool ok = test_expect(sb_model_load(TASKS "/model", &m, &err) == SB_OK, "load: %s", err.msg) &&
              test_expect(sb_model_snapshot_take(m, &snap, &err) == SB_OK, "snapshot: %s", err.msg);
    if (ok) {
        some_tokens(ev, T_EVAL, m->n_vocab, 4);
        before = logits_of(m, pool, ev, T_EVAL);
        uint64_t params = sb_model_param_count(m);
        const sb_model *ref = sb_model_snapshot_reference(snap);
        ok = test_expect(apply_method(&sb_method_slicegpt, m, ref, pool, args, 4, &rep, &err) == SB_OK, "slicegpt: %s",
                         err.msg);
        if (ok) {
            const cJSON *w = cJSON_GetObjectItem(rep.details, "width");
            test_expect(w && w->valueint == 48 && sb_model_embed_width(m) == 48, "width in the report");
            /* the untied head and the shortcuts outweigh what 25% of a 64-wide model removes */
            const cJSON *pb = cJSON_GetObjectItem(rep.details, "params_before"), *pa = cJSON_GetObjectItem(rep.details, "params_after");
            test_expect(pb && pa && pb->valuedouble == (double)params && pa->valuedouble == (double)sb_model_param_count(m) &&
                            rep.params_removed == (params > sb_model_param_count(m) ? params - sb_model_param_count(m) : 0),
                        "params before/after/removed do not add up");
            test_expect(rep.bits_per_weight == 32 && rep.real_quant, "bits %g", rep.bits_per_weight);
            cJSON_Delete(rep.details);
            /* LoRC compensates the difference to the loaded weights: meaningless once rotated */
            const char *largs[] = {"rank=4"};
            err = (sb_err){0};
            test_expect(apply_method(&sb_method_lorc, m, ref, pool, largs, 1, &rep, &err) == SB_EINPUT &&
                            strstr(err.msg, "sliced"),
                        "lorc after slicegpt: %s", err.msg);
            cJSON_Delete(rep.details);
            const char *gargs[] = {"bits=4", "group_size=16", "data=" TASKS "/text.raw", "n_samples=4", "seq_len=32"};
            held sliced;
            hold_block_payloads(m, &sliced);
            ok = test_expect(apply_method(&sb_method_gptq, m, ref, pool, gargs, 5, &rep, &err) == SB_OK, "gptq after: %s",
                             err.msg);
            cJSON_Delete(rep.details);
            free_orphans(m, &sliced);
            float *q = ok ? logits_of(m, pool, ev, T_EVAL) : NULL;
            test_expect(!ok || (q && isfinite(test_max_abs(q, (long)T_EVAL * m->n_vocab))), "slicegpt+gptq logits");
            test_expect(!ok || (m->blocks[1].wq.cols == 48 && m->blocks[0].w_down.rows == 48 &&
                                strcmp(m->blocks[1].wq.fmt->name, "f32") != 0),
                        "gptq did not quantize the sliced linears (%s)", m->blocks[1].wq.fmt->name);
            free(q);
            /* slicing twice: refused, the model left as it was */
            err = (sb_err){0};
            uint64_t n = sb_model_param_count(m);
            test_expect(apply_method(&sb_method_slicegpt, m, ref, pool, args, 4, &rep, &err) == SB_EINPUT &&
                            strstr(err.msg, "sliced"),
                        "slicing twice: %s", err.msg);
            test_expect(sb_model_param_count(m) == n, "a refusal changed the model");
            cJSON_Delete(rep.details);
        }
        sb_model_snapshot_restore(m, snap);
        float *after = logits_of(m, pool, ev, T_EVAL);
        test_expect(before && after && memcmp(before, after, sizeof(float) * (size_t)T_EVAL * m->n_vocab) == 0,
                    "restore did not give back the dense logits bit for bit");
        test_expect(!sb_model_is_sliced(m) && m->tied_head, "restore left the model sliced or untied");
        /* gptq first, then slicegpt: refused by name */
        const char *gargs[] = {"bits=4", "group_size=16", "data=" TASKS "/text.raw", "n_samples=4", "seq_len=32"};
        if (apply_method(&sb_method_gptq, m, ref, pool, gargs, 5, &rep, &err) == SB_OK) {
            cJSON_Delete(rep.details);
            err = (sb_err){0};
            test_expect(apply_method(&sb_method_slicegpt, m, ref, pool, args, 4, &rep, &err) == SB_EINPUT &&
                            strstr(err.msg, "slice first"),
                        "gptq then slicegpt: %s", err.msg);
            cJSON_Delete(rep.details);
        }
        sb_model_snapshot_restore(m, snap);
        free(after);
    }
    free(before);
    sb_model_snapshot_free(snap);
    sb_model_free(m);
    test_end();
}

/* A bf16 checkpoint keeps bf16 storage (dtype auto): 16 bits per weight,
 * and 0% slicing moves the logits by no more than the bf16 rounding of the
 * rotated weights; dtype=f32 keeps them to float32 precision. */
static void test_storage(sb_pool *pool) {
    test_begin("bf16_checkpoint_storage");
    const char *dtypes[] = {NULL, "f32"};
    const char *want_fmt[] = {"bf16", "f32"};
    const double tol[] = {3e-2, DENSE_TOL};
    for (int i = 0; i < 2; i++) {
        sb_err err = {0};
        sb_model *m = NULL;
        sb_model_snapshot *snap = NULL;
        sb_calib_set set = {0};
        int32_t ev[T_EVAL];
        if (test_expect(load(MODELS "/llama_bf16", &m, &snap, &err) == SB_OK, "load: %s", err.msg) &&
            fixed_set(m, &set)) {
            some_tokens(ev, T_EVAL, m->n_vocab, 9);
            float *dense = logits_of(m, pool, ev, T_EVAL);
            sb_slicegpt_opts o = {0.0, 8, false, dtypes[i]};
            sb_run_ctx ctx = {.pool = pool};
            if (test_expect(sb_slicegpt_slice(m, &set, &o, &ctx, NULL, &err) == SB_OK, "slice: %s", err.msg)) {
                float *got = logits_of(m, pool, ev, T_EVAL);
                double rel = dense && got ? rel_diff(got, dense, (long)T_EVAL * m->n_vocab) : INFINITY;
                printf("  dtype %-4s 0%% slicing: max|sliced - dense| / max|dense| = %.2e\n", want_fmt[i], rel);
                test_expect(rel <= tol[i], "dtype %s: 0%% slicing moved the logits by %.3g", want_fmt[i], rel);
                test_expect(strcmp(m->blocks[1].wq.fmt->name, want_fmt[i]) == 0 &&
                                strcmp(m->blocks[0].attn_shortcut.fmt->name, want_fmt[i]) == 0,
                            "stored as %s, expected %s", m->blocks[1].wq.fmt->name, want_fmt[i]);
                free(got);
            }
            free(dense);
        }
        sb_calib_set_free(&set);
        unload(m, snap);
    }
    test_end();
}

static void test_refusals(sb_pool *pool) {
    test_begin("refusals");
    sb_err err = {0};
    sb_model *m = NULL;
    sb_model_snapshot *snap = NULL;
    sb_calib_set set = {0};
    if (test_expect(load(MODELS "/gemma3", &m, &snap, &err) == SB_OK, "load gemma3: %s", err.msg) &&
        fixed_set(m, &set)) {
        int rc = slice(m, pool, &set, 0.25, false, NULL, &err);
        test_expect(rc == SB_EINPUT && strstr(err.msg, "norms on the branch outputs"), "gemma3: rc %d, %s", rc, err.msg);
        test_expect(!sb_model_is_sliced(m) && m->tied_head == true, "gemma3 was changed by the refusal");
    }
    sb_calib_set_free(&set);
    unload(m, snap);
    m = NULL;
    snap = NULL;
    if (test_expect(load("tests/reference/vit/vit", &m, &snap, &err) == SB_OK, "load vit: %s", err.msg)) {
        sb_calib_set one = {.n_samples = 1, .seq_len = 2, .tokens = (int32_t[]){0, 1}};
        err = (sb_err){0};
        int rc = slice(m, pool, &one, 0.25, false, NULL, &err);
        test_expect(rc == SB_EINPUT && strstr(err.msg, "image model"), "vit: rc %d, %s", rc, err.msg);
    }
    unload(m, snap);
    m = NULL;
    snap = NULL;
    if (test_expect(load(MODELS "/llama", &m, &snap, &err) == SB_OK, "load: %s", err.msg) && fixed_set(m, &set)) {
        err = (sb_err){0};
        sb_slicegpt_opts o = {0.9, 8, false, NULL};
        sb_run_ctx ctx = {.pool = pool};
        int rc = sb_slicegpt_slice(m, &set, &o, &ctx, NULL, &err);
        test_expect(rc == SB_EINPUT && strstr(err.msg, "sparsity=0.9"), "no width left: rc %d, %s", rc, err.msg);
        err = (sb_err){0};
        test_expect(slice(m, pool, &set, 0.25, false, NULL, &err) == SB_OK, "slice: %s", err.msg);
        sb_train_model *tm = NULL;
        rc = sb_train_model_from_model(m, 1, 8, pool, &tm, &err);
        test_expect(rc == SB_EINPUT && strstr(err.msg, "sliced"), "training a sliced model: rc %d, %s", rc, err.msg);
    }
    sb_calib_set_free(&set);
    unload(m, snap);
    test_end();
}

int main(void) {
    sb_err err = {0};
    sb_pool *pool = NULL;
    if (sb_pool_new(2, &pool, &err)) return 1;
    test_reference(pool);
    const char *dense[] = {MODELS "/llama", MODELS "/opt", MODELS "/phi",    TASKS "/model",
                           MODELS "/gpt2",  MODELS "/qwen2", MODELS "/mistral", MODELS "/llama.gguf"};
    for (int i = 0; i < 8; i++) test_zero_is_dense(dense[i], pool);
    test_decode(MODELS "/opt", false, pool);
    test_decode(MODELS "/phi", false, pool);
    test_decode(MODELS "/llama", true, pool);
    test_plugin_and_restore(pool);
    test_storage(pool);
    test_refusals(pool);
    sb_pool_free(pool);
    return test_status();
}
