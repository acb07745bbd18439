/* train.c - the training model's storage: parameters and gradients in one
 * flat buffer each (so the optimizer, the gradient norm and zeroing are
 * single loops), activation buffers, initialisation, conversion from a
 * loaded sb_model, export to a Hugging Face folder, and the Fisher
 * diagonal service.  The passes themselves are in backward.c. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "blas.h"
#include "half.h"
#include "train.h"

/* ---- parameter layout ---------------------------------------------------- */

enum { BLOCK_TENSORS = 9 };

static int n_tensors_for(const sb_train_shape *s) { return 2 + BLOCK_TENSORS * s->n_layer + (s->tied_head ? 0 : 1); }

static void set_tensor(sb_train_tensor *t, const char *name, int layer, int64_t rows, int64_t cols, bool decay) {
    if (layer >= 0)
        snprintf(t->name, sizeof t->name, "model.layers.%d.%s", layer, name);
    else
        snprintf(t->name, sizeof t->name, "%s", name);
    t->rows = rows;
    t->cols = cols;
    t->decay = decay;
    t->layer = layer;
}

/* Names and shapes, in storage order: embedding, blocks, final norm, head. */
static void describe_tensors(const sb_train_model *tm, sb_train_tensor *t) {
    const sb_train_shape *s = &tm->shape;
    int64_t d = s->d_model, qd = (int64_t)s->n_head * tm->head_dim, kvd = (int64_t)s->n_kv_head * tm->head_dim;
    int i = 0;
    set_tensor(&t[i++], "model.embed_tokens.weight", -1, s->n_vocab, d, true);
    for (int l = 0; l < s->n_layer; l++) {
        set_tensor(&t[i++], "input_layernorm.weight", l, 1, d, false);
        set_tensor(&t[i++], "self_attn.q_proj.weight", l, qd, d, true);
        set_tensor(&t[i++], "self_attn.k_proj.weight", l, kvd, d, true);
        set_tensor(&t[i++], "self_attn.v_proj.weight", l, kvd, d, true);
        set_tensor(&t[i++], "self_attn.o_proj.weight", l, d, qd, true);
        set_tensor(&t[i++], "post_attention_layernorm.weight", l, 1, d, false);
        set_tensor(&t[i++], "mlp.gate_proj.weight", l, s->ff, d, true);
        set_tensor(&t[i++], "mlp.up_proj.weight", l, s->ff, d, true);
        set_tensor(&t[i++], "mlp.down_proj.weight", l, d, s->ff, true);
    }
    set_tensor(&t[i++], "model.norm.weight", -1, 1, d, false);
    if (!s->tied_head) set_tensor(&t[i++], "lm_head.weight", -1, s->n_vocab, d, true);
}

static float *view_of(const sb_train_tensor *t, bool grads) { return grads ? t->g : t->w; }

/* Points v at the tensors' weights (or gradients), walking storage order. */
static void bind_views(sb_train_model *tm, sb_train_params *v, bool grads) {
    const sb_train_tensor *t = tm->tensors;
    v->embd = view_of(t++, grads);
    for (int l = 0; l < tm->shape.n_layer; l++) {
        sb_train_block *b = &v->blocks[l];
        float **slots[BLOCK_TENSORS] = {&b->attn_norm, &b->wq,     &b->wk,   &b->wv,    &b->wo,
                                        &b->mlp_norm,  &b->w_gate, &b->w_up, &b->w_down};
        for (int k = 0; k < BLOCK_TENSORS; k++) *slots[k] = view_of(t++, grads);
    }
    v->final_norm = view_of(t++, grads);
    v->head = tm->shape.tied_head ? v->embd : view_of(t, grads);
}

static int alloc_params(sb_train_model *tm, sb_err *err) {
    tm->n_tensors = n_tensors_for(&tm->shape);
    tm->tensors = sb_calloc(err, (size_t)tm->n_tensors, sizeof *tm->tensors);
    tm->p.blocks = sb_calloc(err, (size_t)tm->shape.n_layer, sizeof *tm->p.blocks);
    tm->g.blocks = sb_calloc(err, (size_t)tm->shape.n_layer, sizeof *tm->g.blocks);
    if (!tm->tensors || !tm->p.blocks || !tm->g.blocks) return SB_EINTERNAL;
    describe_tensors(tm, tm->tensors);
    tm->n_params = 0;
    for (int i = 0; i < tm->n_tensors; i++) tm->n_params += tm->tensors[i].rows * tm->tensors[i].cols;
    tm->param_mem = sb_malloc(err, sizeof(float) * (size_t)tm->n_params);
    tm->grad_mem = sb_calloc(err, (size_t)tm->n_params, sizeof(float));
    if (!tm->param_mem || !tm->grad_mem) return SB_EINTERNAL;
    int64_t off = 0;
    for (int i = 0; i < tm->n_tensors; i++) {
        tm->tensors[i].w = tm->param_mem + off;
        tm->tensors[i].g = tm->grad_mem + off;
        off += tm->tensors[i].rows * tm->tensors[i].cols;
    }
    bind_views(tm, &tm->p, false);
    bind_views(tm, &tm->g, true);
    return SB_OK;
}

/* ---- activation buffers -------------------------------------------------- */

static float *floats(int64_t n, sb_err *err) { return sb_malloc(err, sizeof(float) * (size_t)(n > 0 ? n : 1)); }

static int alloc_layer_acts(sb_train_model *tm, sb_train_layer_acts *a, sb_err *err) {
    const sb_train_shape *s = &tm->shape;
    int64_t R = (int64_t)tm->max_B * tm->max_T, d = s->d_model;
    int64_t qd = (int64_t)s->n_head * tm->head_dim, kvd = (int64_t)s->n_kv_head * tm->head_dim;
    int64_t probs = (int64_t)tm->max_B * s->n_head * tm->max_T * tm->max_T;
    bool ok = (a->x_mid = floats(R * d, err)) && (a->rstd_attn = floats(R, err)) && (a->rstd_mlp = floats(R, err)) &&
              (a->h_attn = floats(R * d, err)) && (a->h_mlp = floats(R * d, err)) && (a->q = floats(R * qd, err)) &&
              (a->k = floats(R * kvd, err)) && (a->v = floats(R * kvd, err)) && (a->probs = floats(probs, err)) &&
              (a->att = floats(R * qd, err)) && (a->gate = floats(R * s->ff, err)) &&
              (a->up = floats(R * s->ff, err)) && (a->act = floats(R * s->ff, err));
    return ok ? SB_OK : SB_EINTERNAL;
}

static void free_layer_acts(sb_train_layer_acts *a) {
    float *bufs[] = {a->x_mid, a->rstd_attn, a->rstd_mlp, a->h_attn, a->h_mlp, a->q,   a->k,
                     a->v,     a->probs,     a->att,      a->gate,   a->up,    a->act};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) free(bufs[i]);
}

static int alloc_acts(sb_train_model *tm, sb_err *err) {
    const sb_train_shape *s = &tm->shape;
    int64_t R = (int64_t)tm->max_B * tm->max_T, d = s->d_model, V = s->n_vocab;
    int64_t qd = (int64_t)s->n_head * tm->head_dim, kvd = (int64_t)s->n_kv_head * tm->head_dim;
    int threads = tm->pool ? sb_pool_threads(tm->pool) : 1;
    tm->acts = sb_calloc(err, (size_t)s->n_layer, sizeof *tm->acts);
    bool ok = tm->acts != NULL;
    for (int l = 0; ok && l < s->n_layer; l++) ok = alloc_layer_acts(tm, &tm->acts[l], err) == SB_OK;
    ok = ok && (tm->resid = floats((s->n_layer + 1) * R * d, err)) && (tm->rstd_final = floats(R, err)) &&
         (tm->h_final = floats(R * d, err)) && (tm->logits = floats(R * V, err)) &&
         (tm->probs_out = floats(R * V, err)) &&
         (tm->row_nll = sb_malloc(err, sizeof(double) * (size_t)R)) && (tm->branch = floats(R * d, err)) &&
         (tm->dres = floats(R * d, err)) && (tm->dh = floats(R * d, err)) && (tm->dq = floats(R * qd, err)) &&
         (tm->datt = floats(R * qd, err)) && (tm->dk = floats(R * kvd, err)) && (tm->dv = floats(R * kvd, err)) &&
         (tm->dgate = floats(R * s->ff, err)) && (tm->dup = floats(R * s->ff, err)) &&
         (tm->dact = floats(R * s->ff, err)) &&
         (tm->dscores = floats((int64_t)threads * tm->max_T * tm->max_T, err)) &&
         (tm->rope_cos = floats((int64_t)tm->max_T * (tm->head_dim / 2), err)) &&
         (tm->rope_sin = floats((int64_t)tm->max_T * (tm->head_dim / 2), err));
    return ok ? SB_OK : SB_EINTERNAL;
}

void sb_train_model_free(sb_train_model *tm) {
    if (!tm) return;
    for (int l = 0; tm->acts && l < tm->shape.n_layer; l++) free_layer_acts(&tm->acts[l]);
    free(tm->acts);
    float *bufs[] = {tm->inv_freq, tm->param_mem, tm->grad_mem, tm->resid, tm->rstd_final, tm->h_final,
                     tm->logits,   tm->probs_out, tm->branch,   tm->dres,  tm->dh,         tm->dq,
                     tm->datt,     tm->dk,        tm->dv,       tm->dgate, tm->dup,        tm->dact,
                     tm->dscores,  tm->rope_cos,  tm->rope_sin};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) free(bufs[i]);
    free(tm->row_nll);
    free(tm->tensors);
    free(tm->p.blocks);
    free(tm->g.blocks);
    free(tm);
}

static int check_shape(const sb_train_shape *s, int max_B, int max_T, sb_err *err) {
    if (s->n_vocab < 1 || s->d_model < 2 || s->n_layer < 1 || s->n_head < 1 || s->n_kv_head < 1 || s->ff < 1 ||
        s->max_positions < 1)
        return sb_err_set(err, SB_EINPUT, "training shape needs positive vocab, d_model, layers, heads, ff, positions");
    if (s->d_model % s->n_head || s->n_head % s->n_kv_head || (s->d_model / s->n_head) % 2)
        return sb_err_set(err, SB_EINPUT,
                          "d_model %d must split into %d heads of even size, and n_head into %d key-value groups",
                          s->d_model, s->n_head, s->n_kv_head);
    if (max_B < 1 || max_T < 1 || max_T > s->max_positions)
        return sb_err_set(err, SB_EINPUT, "batch %d x %d tokens: need >= 1 and T <= max_positions %d", max_B, max_T,
                          s->max_positions);
    if (s->norm_eps <= 0 || s->rope_theta <= 0)
        return sb_err_set(err, SB_EINPUT, "norm_eps and rope_theta must be positive");
    return SB_OK;
}

/* Everything but the parameter values. */
static int model_alloc(const sb_train_shape *shape, int head_dim, int max_B, int max_T, sb_pool *pool,
                       sb_train_model **out, sb_err *err) {
    sb_train_model *tm = sb_calloc(err, 1, sizeof *tm);
    if (!tm) return SB_EINTERNAL;
    tm->shape = *shape;
    tm->head_dim = head_dim;
    tm->attn_scale = (float)(1.0 / sqrt((double)head_dim));
    tm->pool = pool;
    tm->max_B = max_B;
    tm->max_T = max_T;
    int rc = (tm->inv_freq = floats(head_dim / 2, err)) ? SB_OK : SB_EINTERNAL;
    if (!rc) rc = alloc_params(tm, err);
    if (!rc) rc = alloc_acts(tm, err);
    if (rc) {
        sb_train_model_free(tm);
        return sb_err_prefix(err, "allocating a training model for %d x %d tokens", max_B, max_T);
    }
    /* CBLAS runs single-threaded inside the pool's tasks (see blas.h) */
    if (pool && sb_pool_threads(pool) > 1) sb_blas_set_threads(1);
    *out = tm;
    return SB_OK;
}

/* ---- random initialisation ----------------------------------------------- */

static uint64_t splitmix64(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Standard normal by Box-Muller from two uniforms in (0, 1]. */
static double normal(uint64_t *s) {
    double u1 = ((double)(splitmix64(s) >> 11) + 1.0) / 9007199254740992.0;
    double u2 = (double)(splitmix64(s) >> 11) / 9007199254740992.0;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

static bool is_output_projection(const sb_train_tensor *t) {
    return strstr(t->name, "o_proj") != NULL || strstr(t->name, "down_proj") != NULL;
}

int sb_train_model_new(const sb_train_shape *shape, uint64_t seed, int max_B, int max_T, sb_pool *pool,
                       sb_train_model **out, sb_err *err) {
    int rc = check_shape(shape, max_B, max_T, err);
    if (rc) return rc;
    sb_train_model *tm;
    rc = model_alloc(shape, shape->d_model / shape->n_head, max_B, max_T, pool, &tm, err);
    if (rc) return rc;
    sb_rope_default_freqs(tm->inv_freq, tm->head_dim, shape->rope_theta);
    uint64_t state = seed;
    double out_std = 0.02 / sqrt(2.0 * shape->n_layer);
    for (int i = 0; i < tm->n_tensors; i++) {
        sb_train_tensor *t = &tm->tensors[i];
        int64_t n = t->rows * t->cols;
        if (!t->decay) { /* a norm weight */
            for (int64_t k = 0; k < n; k++) t->w[k] = 1.0f;
            continue;
        }
        double std = is_output_projection(t) ? out_std : 0.02;
        for (int64_t k = 0; k < n; k++) t->w[k] = (float)(std * normal(&state));
    }
    *out = tm;
    return SB_OK;
}

/* ---- from a loaded model -------------------------------------------------- */

static int check_llama_shaped(const sb_model *m, sb_err *err) {
    if (m->norm_type != SB_NORM_RMS || m->act != SB_ACT_SILU || !m->gated_mlp || m->parallel_residual ||
        m->positions != SB_ROPE_HALVES || m->embed_scale != 1.0f || m->attn_softcap != 0 || m->final_softcap != 0 ||
        m->pos_embd || m->n_layer < 1 || m->final_norm.bias || m->head.bias)
        return sb_err_set(err, SB_EINPUT, "%s: training needs a Llama-shaped model (RMSNorm, SwiGLU, halves rotary)",
                          m->arch);
    if (sb_model_is_sliced(m))
        return sb_err_set(err, SB_EINPUT, "%s: training needs full-width blocks; this model is sliced (SliceGPT)",
                          m->arch);
    const sb_block *b0 = &m->blocks[0];
    for (int l = 0; l < m->n_layer; l++) {
        const sb_block *b = &m->blocks[l];
        bool same = b->n_head == b0->n_head && b->n_kv_head == b0->n_kv_head && b->head_dim == b0->head_dim &&
                    b->w_up.rows == b0->w_up.rows &&
                    memcmp(b->rope_inv_freq, b0->rope_inv_freq, sizeof(float) * (size_t)(b0->head_dim / 2)) == 0;
        bool plain = !b->sliding_window && !b->post_attn_norm.weight && !b->post_mlp_norm.weight &&
                     !b->q_norm.weight && !b->k_norm.weight && !b->attn_norm.bias && !b->mlp_norm.bias &&
                     !b->wq.bias && !b->wk.bias && !b->wv.bias && !b->wo.bias && !b->w_gate.bias && !b->w_up.bias &&
                     !b->w_down.bias;
        if (!same || !plain)
            return sb_err_set(err, SB_EINPUT, "%s: block %d has biases, extra norms, a window or a different shape",
                              m->arch, l);
    }
    if (m->rot_dim != b0->head_dim || fabsf(m->attn_scale * sqrtf((float)b0->head_dim) - 1.0f) > 1e-6f)
        return sb_err_set(err, SB_EINPUT, "%s: partial rotary or a non-standard attention scale", m->arch);
    return SB_OK;
}

static void decode_linear(const sb_linear *w, float *dst) { w->fmt->decode_rows(w, 0, w->rows, dst); }

/* inv_freq[1] = theta^(-2/hd), so theta = inv_freq[1]^(-hd/2) (only for config.json). */
static double theta_of(const float *inv_freq, int hd) {
    return hd >= 4 ? pow((double)inv_freq[1], -(double)hd / 2.0) : 10000.0;
}

int sb_train_model_from_model(const sb_model *m, int max_B, int max_T, sb_pool *pool, sb_train_model **out,
                              sb_err *err) {
    int rc = check_llama_shaped(m, err);
    if (rc) return rc;
    const sb_block *b0 = &m->blocks[0];
    sb_train_shape s = {m->n_vocab, m->d_model, m->n_layer, b0->n_head, b0->n_kv_head, (int)b0->w_up.rows,
                        m->max_positions, m->tied_head, m->norm_eps, theta_of(b0->rope_inv_freq, b0->head_dim)};
    if (max_B < 1 || max_T < 1 || max_T > s.max_positions)
        return sb_err_set(err, SB_EINPUT, "batch %d x %d tokens: need T <= max_positions %d", max_B, max_T,
                          s.max_positions);
    sb_train_model *tm;
    rc = model_alloc(&s, b0->head_dim, max_B, max_T, pool, &tm, err);
    if (rc) return rc;
    memcpy(tm->inv_freq, b0->rope_inv_freq, sizeof(float) * (size_t)(b0->head_dim / 2));
    size_t dbytes = sizeof(float) * (size_t)m->d_model;
    decode_linear(&m->tok_embd, tm->p.embd);
    for (int l = 0; l < m->n_layer; l++) {
        const sb_block *b = &m->blocks[l];
        sb_train_block *t = &tm->p.blocks[l];
        memcpy(t->attn_norm, b->attn_norm.weight, dbytes);
        memcpy(t->mlp_norm, b->mlp_norm.weight, dbytes);
        decode_linear(&b->wq, t->wq);
        decode_linear(&b->wk, t->wk);
        decode_linear(&b->wv, t->wv);
        decode_linear(&b->wo, t->wo);
        decode_linear(&b->w_gate, t->w_gate);
        decode_linear(&b->w_up, t->w_up);
        decode_linear(&b->w_down, t->w_down);
    }
    memcpy(tm->p.final_norm, m->final_norm.weight, dbytes);
    if (!m->tied_head) decode_linear(&m->head, tm->p.head);
    *out = tm;
    return SB_OK;
}

/* ---- export to a Hugging Face folder --------------------------------------- */

static cJSON *config_json(const sb_train_model *tm, bool bf16) {
    const sb_train_shape *s = &tm->shape;
    cJSON *c = cJSON_CreateObject();
    cJSON *archs = cJSON_AddArrayToObject(c, "architectures");
    cJSON_AddItemToArray(archs, cJSON_CreateString("LlamaForCausalLM"));
    cJSON_AddStringToObject(c, "model_type", "llama");
    cJSON_AddNumberToObject(c, "vocab_size", s->n_vocab);
    cJSON_AddNumberToObject(c, "hidden_size", s->d_model);
    cJSON_AddNumberToObject(c, "intermediate_size", s->ff);
    cJSON_AddNumberToObject(c, "num_hidden_layers", s->n_layer);
    cJSON_AddNumberToObject(c, "num_attention_heads", s->n_head);
    cJSON_AddNumberToObject(c, "num_key_value_heads", s->n_kv_head);
    cJSON_AddNumberToObject(c, "head_dim", tm->head_dim);
    cJSON_AddNumberToObject(c, "max_position_embeddings", s->max_positions);
    cJSON_AddNumberToObject(c, "rms_norm_eps", s->norm_eps);
    cJSON_AddNumberToObject(c, "rope_theta", s->rope_theta);
    cJSON_AddStringToObject(c, "hidden_act", "silu");
    cJSON_AddBoolToObject(c, "tie_word_embeddings", s->tied_head);
    cJSON_AddBoolToObject(c, "attention_bias", false);
    cJSON_AddBoolToObject(c, "mlp_bias", false);
    cJSON_AddStringToObject(c, "torch_dtype", bf16 ? "bfloat16" : "float32");
    return c;
}

/* The safetensors header: tensors in storage order, data packed. */
static char *safetensors_header(const sb_train_model *tm, int elem_bytes, size_t *len) {
    cJSON *h = cJSON_CreateObject();
    uint64_t off = 0;
    for (int i = 0; i < tm->n_tensors; i++) {
        const sb_train_tensor *t = &tm->tensors[i];
        cJSON *e = cJSON_AddObjectToObject(h, t->name);
        cJSON_AddStringToObject(e, "dtype", elem_bytes == 2 ? "BF16" : "F32");
        cJSON *shape = cJSON_AddArrayToObject(e, "shape");
        if (t->rows > 1) cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)t->rows));
        cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)t->cols));
        uint64_t n = (uint64_t)(t->rows * t->cols) * (uint64_t)elem_bytes;
        cJSON *offs = cJSON_AddArrayToObject(e, "data_offsets");
        cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)off));
        cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)(off + n)));
        off += n;
    }
    char *text = cJSON_PrintUnformatted(h);
    cJSON_Delete(h);
    if (text) *len = strlen(text);
    return text;
}

static int write_tensor(FILE *f, const sb_train_tensor *t, bool bf16) {
    int64_t n = t->rows * t->cols;
    if (!bf16) return fwrite(t->w, sizeof(float), (size_t)n, f) == (size_t)n ? 0 : -1;
    for (int64_t i = 0; i < n; i++) {
        uint16_t h = sb_f32_to_bf16(t->w[i]);
        if (fwrite(&h, 2, 1, f) != 1) return -1;
    }
    return 0;
}

static int write_safetensors(const sb_train_model *tm, const char *path, bool bf16, sb_err *err) {
    size_t len = 0;
    char *header = safetensors_header(tm, bf16 ? 2 : 4, &len);
    if (!header) return sb_err_set(err, SB_EINTERNAL, "out of memory");
    size_t padded = (len + 7) / 8 * 8; /* data starts 8-aligned; spaces pad the JSON */
    uint64_t hlen = padded;
    /* Written beside the target and renamed over it: a reader that has the
     * old file mapped (a running evaluation) keeps a whole file, and a
     * crash never leaves a half-written checkpoint under the real name. */
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    int bad = !f;
    if (f) {
        bad |= fwrite(&hlen, 8, 1, f) != 1 || fwrite(header, 1, len, f) != len;
        for (size_t i = len; i < padded; i++) bad |= fputc(' ', f) == EOF;
        for (int i = 0; i < tm->n_tensors && !bad; i++) bad |= write_tensor(f, &tm->tensors[i], bf16);
        bad |= fflush(f) != 0 || fsync(fileno(f)) != 0;
        bad |= fclose(f) != 0;
    }
    if (!bad) bad = rename(tmp, path) != 0;
    else if (f) unlink(tmp);
    free(header);
    return bad ? sb_err_set(err, SB_EINTERNAL, "%s: cannot write: %s", path, strerror(errno)) : SB_OK;
}

static int write_json(const cJSON *j, const char *path, sb_err *err) {
    char *text = cJSON_Print(j);
    if (!text) return sb_err_set(err, SB_EINTERNAL, "out of memory");
    FILE *f = fopen(path, "w");
    int bad = !f || fputs(text, f) == EOF || fputc('\n', f) == EOF;
    if (f) bad |= fclose(f) != 0;
    free(text);
    return bad ? sb_err_set(err, SB_EINTERNAL, "%s: cannot write: %s", path, strerror(errno)) : SB_OK;
}

int sb_train_export_hf(const sb_train_model *tm, const char *dir, bool bf16, sb_err *err) {
    if (mkdir(dir, 0777) != 0 && errno != EEXIST)
        return sb_err_set(err, SB_EINPUT, "%s: cannot create: %s", dir, strerror(errno));
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    cJSON *c = config_json(tm, bf16);
    int rc = c ? write_json(c, path, err) : sb_err_set(err, SB_EINTERNAL, "out of memory");
    cJSON_Delete(c);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    if (!rc) rc = write_safetensors(tm, path, bf16, err);
    return rc;
}

/* ---- Fisher diagonal ------------------------------------------------------- */

/* Block l's linear j (wq, wk, wv, wo, w_gate, w_up, w_down): in storage
 * order a block is attn_norm, wq, wk, wv, wo, mlp_norm, gate, up, down. */
static const sb_train_tensor *block_linear(const sb_train_model *tm, int l, int j) {
    return &tm->tensors[1 + l * BLOCK_TENSORS + 1 + j + (j >= 4 ? 1 : 0)];
}

static int alloc_sums(const sb_train_model *tm, float **sums, sb_err *err) {
    for (int l = 0; l < tm->shape.n_layer; l++)
        for (int j = 0; j < SB_FISHER_LINEARS; j++) {
            const sb_train_tensor *t = block_linear(tm, l, j);
            sums[l * SB_FISHER_LINEARS + j] = sb_calloc(err, (size_t)(t->rows * t->cols), sizeof(float));
            if (!sums[l * SB_FISHER_LINEARS + j]) return SB_EINTERNAL;
        }
    return SB_OK;
}

/* sums += g² for every block linear */
static void add_squares(const sb_train_model *tm, float **sums) {
    for (int l = 0; l < tm->shape.n_layer; l++)
        for (int j = 0; j < SB_FISHER_LINEARS; j++) {
            const sb_train_tensor *t = block_linear(tm, l, j);
            float *s = sums[l * SB_FISHER_LINEARS + j];
            for (int64_t i = 0; i < t->rows * t->cols; i++) s[i] += t->g[i] * t->g[i];
        }
}

int sb_fisher_diagonal(const sb_model *m, sb_pool *pool, const int32_t *windows, int n_windows, int n_tok,
                       float **sq_grad_sums, sb_err *err) {
    if (n_windows < 1 || n_tok < 2)
        return sb_err_set(err, SB_EINPUT, "Fisher diagonal needs windows of at least 2 tokens (got %d x %d)",
                          n_windows, n_tok);
    for (int i = 0; i < m->n_layer * SB_FISHER_LINEARS; i++) sq_grad_sums[i] = NULL;
    sb_train_model *tm = NULL;
    int rc = sb_train_model_from_model(m, 1, n_tok - 1, pool, &tm, err);
    if (!rc) rc = alloc_sums(tm, sq_grad_sums, err);
    for (int w = 0; !rc && w < n_windows; w++) {
        const int32_t *win = windows + (int64_t)w * n_tok;
        double loss;
        sb_train_zero_grad(tm);
        rc = sb_train_forward(tm, win, win + 1, 1, n_tok - 1, &loss, err);
        if (rc) break;
        sb_train_backward(tm);
        add_squares(tm, sq_grad_sums);
    }
    if (rc)
        for (int i = 0; i < m->n_layer * SB_FISHER_LINEARS; i++) {
            free(sq_grad_sums[i]);
            sq_grad_sums[i] = NULL;
        }
    sb_train_model_free(tm);
    return rc;
}
