/* cmd_train.c - `slimbench train`: trains a Llama-architecture model
 * described by a small JSON config on a text file and writes a Hugging
 * Face folder the normal loader reads.
 *
 *   slimbench train --config train.json --data FILE --tokenizer DIR_OR_JSON --out DIR
 *                   [--valid FILE] [--dtype f32|bf16] [--threads N] [--init DIR] [--quiet]
 *
 * --init DIR starts from the weights of a model folder instead of a random
 * initialisation (a second training phase, or fine-tuning); its architecture
 * and vocabulary must equal the config's and the tokenizer's, and the
 * optimizer state starts fresh.
 * Config keys (all optional; defaults in train_defaults): d_model, n_layer,
 * n_head, n_kv_head, ff, max_positions, tied_head, seq_len, batch, steps,
 * lr, warmup, weight_decay, seed, eval_every, plus grad_clip, min_lr_frac,
 * rope_theta, rms_norm_eps.  The vocabulary is the tokenizer's.
 *
 * Batches are windows of seq_len + 1 tokens at random offsets of the
 * tokenized file (drawn from the seed); the loss is the mean next-token
 * cross-entropy.  Writes DIR/config.json, DIR/model.safetensors,
 * DIR/tokenizer.json (+ tokenizer_config.json when the source has one)
 * and DIR/train_log.json (config, seed, threads, loss per step,
 * validation losses, wall time). */
#include <cjson/cJSON.h>
#include <libgen.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "mapped_file.h"
#include "measure.h"
#include "tokenizer.h"
#include "train.h"

typedef struct {
    sb_train_shape shape;
    int seq_len, batch, steps, warmup, eval_every;
    double lr, weight_decay, grad_clip, min_lr_frac;
    uint64_t seed;
} train_cfg;

static train_cfg train_defaults(void) {
    return (train_cfg){.shape = {.d_model = 256, .n_layer = 4, .n_head = 8, .n_kv_head = 0, .ff = 768,
                                 .max_positions = 0, .tied_head = true, .norm_eps = 1e-5, .rope_theta = 10000},
                       .seq_len = 128, .batch = 8, .steps = 1000, .warmup = -1, .eval_every = 100,
                       .lr = 3e-3, .weight_decay = 0.1, .grad_clip = 1.0, .min_lr_frac = 0.1, .seed = 1};
}

/* ---- config ---------------------------------------------------------------- */

static int get_number(const cJSON *c, const char *key, double *v, sb_err *err) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(c, key);
    if (!it) return SB_OK;
    if (!cJSON_IsNumber(it)) return sb_err_set(err, SB_EINPUT, "train config: '%s' must be a number", key);
    *v = it->valuedouble;
    return SB_OK;
}

static int get_int(const cJSON *c, const char *key, int *v, sb_err *err) {
    double d = *v;
    int rc = get_number(c, key, &d, err);
    if (!rc && (d != floor(d) || fabs(d) > 1e9)) rc = sb_err_set(err, SB_EINPUT, "train config: '%s' must be an integer", key);
    if (!rc) *v = (int)d;
    return rc;
}

static int check_keys(const cJSON *c, sb_err *err) {
    static const char *const known[] = {"d_model", "n_layer", "n_head", "n_kv_head", "ff", "max_positions",
                                        "tied_head", "seq_len", "batch", "steps", "lr", "warmup", "weight_decay",
                                        "seed", "eval_every", "grad_clip", "min_lr_frac", "rope_theta",
                                        "rms_norm_eps", NULL};
    for (const cJSON *it = c->child; it; it = it->next) {
        bool ok = false;
        for (int i = 0; known[i] && !ok; i++) ok = strcmp(it->string, known[i]) == 0;
        if (!ok) return sb_err_set(err, SB_EINPUT, "train config: unknown key '%s'", it->string);
    }
    return SB_OK;
}

static int read_config(const char *path, train_cfg *cfg, sb_err *err) {
    char *text;
    int rc = sb_read_text_file(path, &text, NULL, err);
    if (rc) return rc;
    cJSON *c = cJSON_Parse(text);
    free(text);
    if (!cJSON_IsObject(c)) {
        cJSON_Delete(c);
        return sb_err_set(err, SB_EINPUT, "%s: not a JSON object", path);
    }
    sb_train_shape *s = &cfg->shape;
    double seed = (double)cfg->seed;
    rc = check_keys(c, err);
    const char *ikeys[] = {"d_model", "n_layer", "n_head", "n_kv_head", "ff", "max_positions",
                           "seq_len", "batch", "steps", "warmup", "eval_every"};
    int *ivals[] = {&s->d_model, &s->n_layer, &s->n_head, &s->n_kv_head, &s->ff, &s->max_positions,
                    &cfg->seq_len, &cfg->batch, &cfg->steps, &cfg->warmup, &cfg->eval_every};
    for (size_t i = 0; !rc && i < sizeof ikeys / sizeof ikeys[0]; i++) rc = get_int(c, ikeys[i], ivals[i], err);
    const char *dkeys[] = {"lr", "weight_decay", "grad_clip", "min_lr_frac", "rope_theta", "rms_norm_eps", "seed"};
    double *dvals[] = {&cfg->lr, &cfg->weight_decay, &cfg->grad_clip, &cfg->min_lr_frac, &s->rope_theta,
                       &s->norm_eps, &seed};
    for (size_t i = 0; !rc && i < sizeof dkeys / sizeof dkeys[0]; i++) rc = get_number(c, dkeys[i], dvals[i], err);
    const cJSON *tied = cJSON_GetObjectItemCaseSensitive(c, "tied_head");
    if (!rc && tied && !cJSON_IsBool(tied)) rc = sb_err_set(err, SB_EINPUT, "train config: 'tied_head' must be true or false");
    if (!rc && tied) s->tied_head = cJSON_IsTrue(tied);
    cJSON_Delete(c);
    if (rc) return sb_err_prefix(err, "%s", path);
    cfg->seed = (uint64_t)seed;
    if (s->n_kv_head == 0) s->n_kv_head = s->n_head;
    if (s->max_positions == 0) s->max_positions = cfg->seq_len;
    if (cfg->warmup < 0) cfg->warmup = cfg->steps / 10;
    if (cfg->steps < 1 || cfg->seq_len < 1 || cfg->batch < 1 || cfg->lr <= 0 || cfg->eval_every < 0)
        return sb_err_set(err, SB_EINPUT, "%s: steps, seq_len, batch and lr must be positive", path);
    return SB_OK;
}

static cJSON *config_record(const train_cfg *cfg) {
    const sb_train_shape *s = &cfg->shape;
    cJSON *c = cJSON_CreateObject();
    const char *ik[] = {"n_vocab", "d_model", "n_layer", "n_head", "n_kv_head", "ff", "max_positions",
                        "seq_len", "batch", "steps", "warmup", "eval_every"};
    int iv[] = {s->n_vocab, s->d_model, s->n_layer, s->n_head, s->n_kv_head, s->ff, s->max_positions,
                cfg->seq_len, cfg->batch, cfg->steps, cfg->warmup, cfg->eval_every};
    for (size_t i = 0; i < sizeof ik / sizeof ik[0]; i++) cJSON_AddNumberToObject(c, ik[i], iv[i]);
    cJSON_AddBoolToObject(c, "tied_head", s->tied_head);
    cJSON_AddNumberToObject(c, "lr", cfg->lr);
    cJSON_AddNumberToObject(c, "min_lr_frac", cfg->min_lr_frac);
    cJSON_AddNumberToObject(c, "weight_decay", cfg->weight_decay);
    cJSON_AddNumberToObject(c, "grad_clip", cfg->grad_clip);
    cJSON_AddNumberToObject(c, "rope_theta", s->rope_theta);
    cJSON_AddNumberToObject(c, "rms_norm_eps", s->norm_eps);
    cJSON_AddStringToObject(c, "optimizer", "AdamW beta1 0.9 beta2 0.95 eps 1e-8, decay on matrices");
    cJSON_AddStringToObject(c, "schedule", "linear warmup, cosine to min_lr_frac * lr");
    return c;
}

/* ---- data ------------------------------------------------------------------ */

typedef struct {
    int32_t *ids;
    size_t n;
} tokens;

static int tokenize_file(const sb_tokenizer *tok, const char *path, tokens *out, sb_err *err) {
    char *text;
    size_t len;
    int rc = sb_read_text_file(path, &text, &len, err);
    if (rc) return rc;
    rc = sb_tokenizer_encode(tok, text, len, false, &out->ids, &out->n, err);
    free(text);
    return rc ? sb_err_prefix(err, "tokenizing %s", path) : SB_OK;
}

static uint64_t next_u64(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Windows w of T + 1 tokens: inputs w[0..T), targets w[1..T]. */
static void window(const tokens *d, size_t off, int T, int32_t *in, int32_t *tg) {
    for (int t = 0; t < T; t++) in[t] = d->ids[off + (size_t)t], tg[t] = d->ids[off + (size_t)t + 1];
}

static void sample_batch(const tokens *d, int B, int T, uint64_t *rng, int32_t *in, int32_t *tg) {
    for (int b = 0; b < B; b++) window(d, next_u64(rng) % (d->n - (size_t)T), T, in + b * T, tg + b * T);
}

enum { MAX_EVAL_WINDOWS = 64 };

/* Mean loss over up to MAX_EVAL_WINDOWS consecutive windows of the validation text. */
static int evaluate(sb_train_model *tm, const tokens *d, int B, int T, int32_t *in, int32_t *tg, double *loss,
                    sb_err *err) {
    size_t n_win = (d->n - 1) / (size_t)T;
    if (n_win > MAX_EVAL_WINDOWS) n_win = MAX_EVAL_WINDOWS;
    double sum = 0;
    for (size_t w0 = 0; w0 < n_win; w0 += (size_t)B) {
        int nb = (int)(n_win - w0 < (size_t)B ? n_win - w0 : (size_t)B);
        for (int b = 0; b < nb; b++) window(d, (w0 + (size_t)b) * (size_t)T, T, in + b * T, tg + b * T);
        double l;
        int rc = sb_train_forward(tm, in, tg, nb, T, &l, err);
        if (rc) return rc;
        sum += l * nb;
    }
    *loss = sum / (double)n_win;
    return SB_OK;
}

/* ---- progress -------------------------------------------------------------- */

static void show_progress(bool tty, int step, int steps, double loss, double tok_s, double elapsed) {
    double eta = step > 0 ? elapsed / step * (steps - step) : 0;
    if (tty)
        fprintf(stderr, "\rstep %d/%d  loss %.4f  %.0f tok/s  ETA %dm%02ds   ", step, steps, loss, tok_s,
                (int)eta / 60, (int)eta % 60);
    else
        fprintf(stderr, "step %d/%d loss %.4f %.0f tok/s eta %.0fs\n", step, steps, loss, tok_s, eta);
}

/* ---- outputs ----------------------------------------------------------------- */

static int copy_file(const char *from, const char *to, sb_err *err) {
    char *text;
    size_t len;
    int rc = sb_read_text_file(from, &text, &len, err);
    if (rc) return rc;
    FILE *f = fopen(to, "wb");
    bool bad = !f || fwrite(text, 1, len, f) != len;
    if (f) bad |= fclose(f) != 0;
    free(text);
    return bad ? sb_err_set(err, SB_EINTERNAL, "%s: cannot write", to) : SB_OK;
}

/* tokenizer.json and, when it sits beside it, tokenizer_config.json. */
static int copy_tokenizer(const char *src, const char *out, sb_err *err) {
    char json[4096], dir[4096], from[8192], to[8192];
    struct stat st;
    bool is_dir = stat(src, &st) == 0 && S_ISDIR(st.st_mode);
    if (is_dir) snprintf(json, sizeof json, "%s/tokenizer.json", src);
    else snprintf(json, sizeof json, "%s", src);
    snprintf(dir, sizeof dir, "%s", json);
    snprintf(to, sizeof to, "%s/tokenizer.json", out);
    int rc = copy_file(json, to, err);
    snprintf(from, sizeof from, "%s/tokenizer_config.json", dirname(dir));
    snprintf(to, sizeof to, "%s/tokenizer_config.json", out);
    if (!rc && stat(from, &st) == 0) rc = copy_file(from, to, err);
    return rc;
}

static int write_log(const char *out, cJSON *log, sb_err *err) {
    char path[4096];
    snprintf(path, sizeof path, "%s/train_log.json", out);
    char *text = cJSON_Print(log);
    FILE *f = text ? fopen(path, "w") : NULL;
    bool bad = !f || fputs(text, f) == EOF;
    if (f) bad |= fclose(f) != 0;
    free(text);
    return bad ? sb_err_set(err, SB_EINTERNAL, "%s: cannot write", path) : SB_OK;
}

/* ---- the loop ------------------------------------------------------------------ */

typedef struct {
    train_cfg cfg;
    tokens data, valid;
    bool have_valid, quiet;
    sb_train_model *tm;
    sb_adamw opt;
    int32_t *in, *tg;
    cJSON *losses, *valid_losses;
    const char *init;                 /* --init DIR or NULL */
} trainer;

static int maybe_eval(trainer *t, int step, sb_err *err) {
    if (!t->have_valid) return SB_OK;
    double vl;
    int rc = evaluate(t->tm, &t->valid, t->cfg.batch, t->cfg.seq_len, t->in, t->tg, &vl, err);
    if (rc) return rc;
    cJSON *e = cJSON_CreateObject();
    cJSON_AddNumberToObject(e, "step", step);
    cJSON_AddNumberToObject(e, "loss", vl);
    cJSON_AddItemToArray(t->valid_losses, e);
    if (!t->quiet) fprintf(stderr, "%sstep %d: validation loss %.4f\n", isatty(2) ? "\n" : "", step, vl);
    return SB_OK;
}

static int train_loop(trainer *t, double *wall, sb_err *err) {
    const train_cfg *c = &t->cfg;
    int B = c->batch, T = c->seq_len;
    uint64_t rng = c->seed ^ 0x5DEECE66Dull;
    bool tty = isatty(2);
    int every = c->steps / 20 > 0 ? c->steps / 20 : 1;
    double t0 = sb_wall_seconds();
    for (int s = 0; s < c->steps; s++) {
        double loss;
        sample_batch(&t->data, B, T, &rng, t->in, t->tg);
        sb_train_zero_grad(t->tm);
        int rc = sb_train_forward(t->tm, t->in, t->tg, B, T, &loss, err);
        if (rc) return rc;
        sb_train_backward(t->tm);
        sb_train_clip_grad_norm(t->tm, c->grad_clip);
        sb_adamw_step(&t->opt, t->tm, sb_lr_schedule(s, c->steps, c->warmup, c->lr, c->min_lr_frac));
        cJSON_AddItemToArray(t->losses, cJSON_CreateNumber(loss));
        double el = sb_wall_seconds() - t0;
        if (!t->quiet && (tty || (s + 1) % every == 0 || s + 1 == c->steps))
            show_progress(tty, s + 1, c->steps, loss, (double)(s + 1) * B * T / el, el);
        if (c->eval_every > 0 && (s + 1) % c->eval_every == 0 && (rc = maybe_eval(t, s + 1, err))) return rc;
    }
    if (tty && !t->quiet) fputc('\n', stderr);
    *wall = sb_wall_seconds() - t0;
    if (c->eval_every == 0 || c->steps % c->eval_every) return maybe_eval(t, c->steps, err);
    return SB_OK;
}

static cJSON *make_log(const trainer *t, int threads, double wall) {
    cJSON *log = cJSON_CreateObject();
    cJSON_AddNumberToObject(log, "seed", (double)t->cfg.seed);
    if (t->init) cJSON_AddStringToObject(log, "init", t->init);
    cJSON_AddNumberToObject(log, "steps", t->cfg.steps);
    cJSON_AddItemToObject(log, "config", config_record(&t->cfg));
    cJSON_AddNumberToObject(log, "n_params", (double)t->tm->n_params);
    cJSON_AddNumberToObject(log, "train_tokens", (double)t->data.n);
    cJSON_AddNumberToObject(log, "threads", threads);
    cJSON_AddNumberToObject(log, "wall_seconds", wall);
    cJSON_AddNumberToObject(log, "tokens_per_second", wall > 0 ? (double)t->cfg.steps * t->cfg.batch * t->cfg.seq_len / wall : 0);
    cJSON_AddItemToObject(log, "loss", t->losses);
    cJSON_AddItemToObject(log, "valid_loss", t->valid_losses);
    return log;
}

/* The architecture fields a config and an --init model must agree on. */
static int same_shape(const sb_train_shape *want, const sb_train_shape *got, const char *dir, sb_err *err) {
    if (want->n_vocab != got->n_vocab)
        return sb_err_set(err, SB_EINPUT, "--init %s: vocabulary of %d tokens, the tokenizer has %d", dir, got->n_vocab,
                          want->n_vocab);
    const char *name[] = {"d_model", "n_layer", "n_head", "n_kv_head", "ff", "max_positions"};
    int a[] = {want->d_model, want->n_layer, want->n_head, want->n_kv_head, want->ff, want->max_positions};
    int b[] = {got->d_model, got->n_layer, got->n_head, got->n_kv_head, got->ff, got->max_positions};
    for (int i = 0; i < 6; i++)
        if (a[i] != b[i])
            return sb_err_set(err, SB_EINPUT, "--init %s: %s is %d, the config says %d", dir, name[i], b[i], a[i]);
    if (want->tied_head != got->tied_head)
        return sb_err_set(err, SB_EINPUT, "--init %s: tied_head is %s, the config says %s", dir,
                          got->tied_head ? "true" : "false", want->tied_head ? "true" : "false");
    /* The model's config.json may hold these in float precision: equal to 1e-6 relative. */
    const char *real_name[] = {"rope_theta", "rms_norm_eps"};
    double x[] = {want->rope_theta, want->norm_eps}, y[] = {got->rope_theta, got->norm_eps};
    for (int i = 0; i < 2; i++)
        if (fabs(x[i] - y[i]) > 1e-6 * fabs(x[i]))
            return sb_err_set(err, SB_EINPUT, "--init %s: %s is %g, the config says %g", dir, real_name[i], y[i], x[i]);
    return SB_OK;
}

/* --init: the model in t->init, decoded to f32, as the starting weights. */
static int start_from(trainer *t, int B, int T, sb_pool *pool, sb_err *err) {
    sb_model *m = NULL;
    int rc = sb_model_load(t->init, &m, err);
    if (!rc) rc = sb_train_model_from_model(m, B, T, pool, &t->tm, err);
    sb_model_free(m);
    if (rc) return sb_err_prefix(err, "--init %s", t->init);
    return same_shape(&t->cfg.shape, &t->tm->shape, t->init, err);
}

static int run(trainer *t, const char *tok_path, const char *data, const char *valid, const char *out, bool bf16,
               int threads, sb_err *err) {
    sb_tokenizer *tok = NULL;
    sb_pool *pool = NULL;
    int rc = sb_tokenizer_load_hf(tok_path, &tok, err);
    if (!rc) rc = tokenize_file(tok, data, &t->data, err);
    if (!rc && valid) rc = tokenize_file(tok, valid, &t->valid, err);
    if (!rc) t->cfg.shape.n_vocab = sb_tokenizer_vocab_size(tok);
    sb_tokenizer_free(tok);
    t->have_valid = valid != NULL;
    int T = t->cfg.seq_len, B = t->cfg.batch;
    if (!rc && (t->data.n < (size_t)T + 2 || (valid && t->valid.n < (size_t)T + 1)))
        rc = sb_err_set(err, SB_EINPUT, "need at least seq_len + 2 = %d tokens of text (have %zu)", T + 2, t->data.n);
    if (!rc) rc = sb_pool_new(threads, &pool, err);
    if (!rc && t->init) rc = start_from(t, B, T, pool, err);
    else if (!rc) rc = sb_train_model_new(&t->cfg.shape, t->cfg.seed, B, T, pool, &t->tm, err);
    if (!rc) rc = sb_adamw_init(&t->opt, t->tm, t->cfg.weight_decay, err);
    t->in = rc ? NULL : sb_malloc(err, sizeof(int32_t) * (size_t)(B * T));
    t->tg = rc ? NULL : sb_malloc(err, sizeof(int32_t) * (size_t)(B * T));
    if (!rc && (!t->in || !t->tg)) rc = SB_EINTERNAL;
    t->losses = cJSON_CreateArray();
    t->valid_losses = cJSON_CreateArray();
    double wall = 0;
    if (!rc && !t->quiet)
        fprintf(stderr, "training %lld parameters on %zu tokens, %d threads\n", (long long)t->tm->n_params,
                t->data.n, sb_pool_threads(pool));
    if (!rc) rc = train_loop(t, &wall, err);
    if (!rc) rc = sb_train_export_hf(t->tm, out, bf16, err);
    if (!rc) rc = copy_tokenizer(tok_path, out, err);
    cJSON *log = rc ? NULL : make_log(t, sb_pool_threads(pool), wall);
    if (!rc) rc = write_log(out, log, err);
    if (log) cJSON_Delete(log);
    else {
        cJSON_Delete(t->losses);
        cJSON_Delete(t->valid_losses);
    }
    sb_pool_free(pool);
    return rc;
}

int sb_cmd_train(int argc, char **argv) {
    static const char *const with_value[] = {"--config", "--data", "--tokenizer", "--out", "--valid", "--dtype",
                                             "--threads", "--init", NULL};
    static const char *const switches[] = {"--quiet", NULL};
    sb_err err = {0};
    if (sb_flags_check(argc, argv, with_value, switches, &err)) return sb_cli_fail(&err);
    const char *config = sb_flag_value(argc, argv, "--config"), *data = sb_flag_value(argc, argv, "--data");
    const char *tok = sb_flag_value(argc, argv, "--tokenizer"), *out = sb_flag_value(argc, argv, "--out");
    const char *dtype = sb_flag_value(argc, argv, "--dtype"), *threads_s = sb_flag_value(argc, argv, "--threads");
    if (!config || !data || !tok || !out) {
        sb_err_set(&err, SB_EINPUT, "train needs --config FILE --data FILE --tokenizer DIR_OR_JSON --out DIR");
        return sb_cli_fail(&err);
    }
    if (dtype && strcmp(dtype, "f32") != 0 && strcmp(dtype, "bf16") != 0) {
        sb_err_set(&err, SB_EINPUT, "--dtype must be f32 or bf16");
        return sb_cli_fail(&err);
    }
    trainer t = {.cfg = train_defaults(), .quiet = sb_flag_present(argc, argv, "--quiet"),
                 .init = sb_flag_value(argc, argv, "--init")};
    int rc = read_config(config, &t.cfg, &err);
    if (!rc)
        rc = run(&t, tok, data, sb_flag_value(argc, argv, "--valid"), out, dtype && strcmp(dtype, "bf16") == 0,
                 threads_s ? atoi(threads_s) : 0, &err);
    sb_adamw_free(&t.opt);
    sb_train_model_free(t.tm);
    free(t.data.ids);
    free(t.valid.ids);
    free(t.in);
    free(t.tg);
    return rc ? sb_cli_fail(&err) : 0;
}
