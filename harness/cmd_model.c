/* cmd_model.c - `slimbench info` and `slimbench logits`. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "forward.h"
#include "tokenizer.h"

static const char *norm_name(sb_norm_type t) { return t == SB_NORM_RMS ? "RMSNorm" : "LayerNorm"; }

static const char *act_name(sb_activation a) {
    switch (a) {
    case SB_ACT_SILU: return "silu";
    case SB_ACT_GELU: return "gelu";
    case SB_ACT_GELU_TANH: return "gelu_tanh";
    case SB_ACT_RELU: return "relu";
    }
    return "?";
}

static const char *positions_name(sb_positions p) {
    switch (p) {
    case SB_POS_LEARNED: return "learned";
    case SB_ROPE_HALVES: return "rotary (halves)";
    case SB_ROPE_PAIRS: return "rotary (pairs)";
    }
    return "?";
}

/* Adds one linear's bytes to the per-format totals. */
typedef struct {
    const char *name;
    uint64_t bits, count;
} format_total;

static void tally(format_total *t, int *n, const sb_linear *w) {
    if (!w->fmt) return;
    for (int i = 0; i < *n; i++)
        if (strcmp(t[i].name, w->fmt->name) == 0) {
            t[i].bits += w->fmt->storage_bits(w);
            t[i].count++;
            return;
        }
    t[*n] = (format_total){w->fmt->name, w->fmt->storage_bits(w), 1};
    (*n)++;
}

static void print_info(const sb_model *m) {
    const sb_block *b0 = &m->blocks[0];
    int n_sliding = 0;
    for (int l = 0; l < m->n_layer; l++) n_sliding += m->blocks[l].sliding_window > 0;
    printf("model        %s\n", m->path);
    printf("format       %s\n", m->source);
    printf("architecture %s\n", m->arch);
    printf("layers       %d\n", m->n_layer);
    printf("d_model      %d\n", m->d_model);
    printf("heads        %d (kv %d, head dim %d)\n", b0->n_head, b0->n_kv_head, b0->head_dim);
    printf("mlp          %lld (%s%s)\n", (long long)b0->w_up.rows, m->gated_mlp ? "gated " : "", act_name(m->act));
    printf("norm         %s (eps %g)%s\n", norm_name(m->norm_type), m->norm_eps,
           m->parallel_residual ? ", parallel residual" : "");
    printf("positions    %s", positions_name(m->positions));
    if (m->positions != SB_POS_LEARNED) printf(", %d of %d dims rotated", m->rot_dim, b0->head_dim);
    printf("\n");
    for (int l = 0; l < m->n_layer && n_sliding; l++)
        if (m->blocks[l].sliding_window) {
            printf("sliding      %d of %d layers, window %d\n", n_sliding, m->n_layer, m->blocks[l].sliding_window);
            break;
        }
    printf("vocabulary   %d%s\n", m->n_vocab, m->tied_head ? " (head tied to embedding)" : "");
    printf("parameters   %llu\n", (unsigned long long)sb_model_param_count(m));
    format_total totals[8];
    int n = 0;
    tally(totals, &n, &m->tok_embd);
    if (!m->tied_head) tally(totals, &n, &m->head);
    for (int l = 0; l < m->n_layer; l++) {
        const sb_block *b = &m->blocks[l];
        const sb_linear *lins[] = {&b->wq, &b->wk, &b->wv, &b->wo, &b->w_gate, &b->w_up, &b->w_down};
        for (size_t i = 0; i < sizeof lins / sizeof lins[0]; i++) tally(totals, &n, lins[i]);
    }
    for (int i = 0; i < n; i++)
        printf("weights      %-5s %4llu tensors %12.0f bytes\n", totals[i].name, (unsigned long long)totals[i].count,
               (double)totals[i].bits / 8);
    if (m->tokenizer) printf("tokenizer    %d tokens\n", sb_tokenizer_vocab_size(m->tokenizer));
}

int sb_cmd_info(int argc, char **argv) {
    sb_err err = {0};
    static const char *const with_value[] = {"--model", NULL};
    if (sb_flags_check(argc, argv, with_value, NULL, &err)) return sb_cli_fail(&err);
    const char *path = sb_flag_value(argc, argv, "--model");
    if (!path) return sb_err_set(&err, SB_EINPUT, "info needs --model PATH"), sb_cli_fail(&err);
    sb_model *m;
    if (sb_model_load(path, &m, &err)) return sb_cli_fail(&err);
    print_info(m);
    sb_model_free(m);
    return 0;
}

/* "1,2,3" -> ids */
static int parse_ids(const char *s, int32_t **ids, int *n, sb_err *err) {
    int cap = 16;
    *n = 0;
    *ids = malloc(sizeof(int32_t) * (size_t)cap);
    while (*ids) {
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s || v < 0 || v > INT32_MAX) {
            free(*ids);
            *ids = NULL;
            return sb_err_set(err, SB_EINPUT, "--tokens: '%s' is not a comma-separated list of token ids", s);
        }
        if (*n == cap) {
            int32_t *bigger = realloc(*ids, sizeof(int32_t) * (size_t)(cap *= 2));
            if (!bigger) break;
            *ids = bigger;
        }
        (*ids)[(*n)++] = (int32_t)v;
        if (*end == 0) return SB_OK;
        if (*end != ',') return free(*ids), *ids = NULL, sb_err_set(err, SB_EINPUT, "--tokens: unexpected '%c'", *end);
        s = end + 1;
    }
    free(*ids);
    return sb_err_set(err, SB_EINTERNAL, "out of memory");
}

static void print_top(const float *logits, int n_vocab, int k) {
    int *best = calloc((size_t)k, sizeof *best);
    if (!best) return;
    int have = 0;
    for (int v = 0; v < n_vocab; v++) {
        int pos = have < k ? have++ : k;
        while (pos > 0 && logits[v] > logits[best[pos - 1]]) {
            if (pos < k) best[pos] = best[pos - 1];
            pos--;
        }
        if (pos < k) best[pos] = v;
    }
    for (int i = 0; i < have; i++) printf("%d\t%.6f\n", best[i], logits[best[i]]);
    free(best);
}

static int get_tokens(int argc, char **argv, const sb_model *m, int32_t **ids, int *n, sb_err *err) {
    const char *tokens = sb_flag_value(argc, argv, "--tokens"), *text = sb_flag_value(argc, argv, "--text");
    if (!tokens == !text) return sb_err_set(err, SB_EINPUT, "logits needs exactly one of --tokens and --text");
    if (tokens) return parse_ids(tokens, ids, n, err);
    if (!m->tokenizer) return sb_err_set(err, SB_EINPUT, "%s: the model has no tokenizer; use --tokens", m->path);
    size_t count;
    int rc = sb_tokenizer_encode(m->tokenizer, text, strlen(text), !sb_flag_present(argc, argv, "--no-bos"), ids, &count, err);
    *n = (int)count;
    if (!rc && count == 0) rc = sb_err_set(err, SB_EINPUT, "--text gives no tokens");
    return rc;
}

int sb_cmd_logits(int argc, char **argv) {
    sb_err err = {0};
    static const char *const with_value[] = {"--model", "--tokens", "--text", "--top", "--threads", NULL};
    static const char *const switches[] = {"--no-bos", NULL};
    if (sb_flags_check(argc, argv, with_value, switches, &err)) return sb_cli_fail(&err);
    const char *path = sb_flag_value(argc, argv, "--model"), *top = sb_flag_value(argc, argv, "--top");
    const char *threads = sb_flag_value(argc, argv, "--threads");
    int k = top ? atoi(top) : 5;
    if (!path) return sb_err_set(&err, SB_EINPUT, "logits needs --model PATH"), sb_cli_fail(&err);
    if (k < 1) return sb_err_set(&err, SB_EINPUT, "--top must be a positive integer"), sb_cli_fail(&err);
    sb_model *m = NULL;
    sb_pool *pool = NULL;
    sb_session *s = NULL;
    int32_t *ids = NULL;
    float *logits = NULL;
    int n = 0;
    int rc = sb_model_load(path, &m, &err);
    if (!rc) rc = get_tokens(argc, argv, m, &ids, &n, &err);
    if (!rc) rc = sb_pool_new(threads ? atoi(threads) : 0, &pool, &err);
    if (!rc) rc = sb_session_new(m, pool, 1, n, n, &s, &err);
    if (!rc && !(logits = sb_malloc(&err, sizeof(float) * (size_t)m->n_vocab))) rc = SB_EINTERNAL;
    if (!rc) rc = sb_session_forward(s, ids, n, n - 1, logits, &err);
    if (!rc) {
        printf("# %d tokens; top %d next-token logits at the last position\n", n, k);
        print_top(logits, m->n_vocab, k);
    }
    free(logits);
    free(ids);
    sb_session_free(s);
    sb_pool_free(pool);
    sb_model_free(m);
    return rc ? sb_cli_fail(&err) : 0;
}
