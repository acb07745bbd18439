/* loader_hf.c - Hugging Face folders: config.json + safetensors.
 *
 * One adapter per model_type translates the config's hyper-parameters and
 * the checkpoint's tensor names into the model IR.  Rotary checkpoints from
 * Hugging Face rotate dimension i with i + rot/2 (SB_ROPE_HALVES). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "arch.h"
#include "hf_config.h"
#include "tokenizer.h"
#include "vision.h"

typedef struct {
    sb_hf_config *cfg;
    sb_tensor_store *st;
    sb_model *m;
    sb_err *err;
} hf_ctx;

static int parse_activation(const sb_hf_config *c, const char *key, const char *dflt, sb_activation *out, sb_err *err) {
    const char *name;
    int rc = sb_hf_string(c, key, false, dflt, &name, err);
    if (rc) return rc;
    static const struct { const char *name; sb_activation act; } table[] = {
        {"silu", SB_ACT_SILU}, {"swish", SB_ACT_SILU}, {"gelu", SB_ACT_GELU},
        {"gelu_new", SB_ACT_GELU_TANH}, {"gelu_pytorch_tanh", SB_ACT_GELU_TANH}, {"gelu_fast", SB_ACT_GELU_TANH},
        {"relu", SB_ACT_RELU},
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (strcmp(name, table[i].name) == 0) {
            *out = table[i].act;
            return SB_OK;
        }
    return sb_err_set(err, SB_EINPUT, "%s: key '%s': unsupported activation '%s'", c->path, key, name);
}

/* layer_types ["sliding_attention", "full_attention", ...] when the config
 * has it; returns 1 if it did, 0 if absent. */
static int windows_from_layer_types(hf_ctx *x, int window, int *found) {
    const cJSON *types = cJSON_GetObjectItemCaseSensitive(x->cfg->obj, "layer_types");
    *found = 0;
    if (!types || cJSON_IsNull(types)) return SB_OK;
    if (!cJSON_IsArray(types) || cJSON_GetArraySize(types) != x->m->n_layer)
        return sb_err_set(x->err, SB_EINPUT, "%s: key 'layer_types' must list one type per layer", x->cfg->path);
    for (int l = 0; l < x->m->n_layer; l++) {
        const cJSON *t = cJSON_GetArrayItem(types, l);
        if (!cJSON_IsString(t)) return sb_err_set(x->err, SB_EINPUT, "%s: key 'layer_types' holds a non-string", x->cfg->path);
        x->m->blocks[l].sliding_window = strcmp(t->valuestring, "sliding_attention") == 0 ? window : 0;
    }
    *found = 1;
    return SB_OK;
}

/* Rotary settings. transformers 4 configs keep rope_theta,
 * partial_rotary_factor and a rope_scaling object at the top level;
 * transformers 5 configs gather them in rope_parameters, which for models
 * with two kinds of layers (Gemma 3) holds one object per layer type. */
typedef struct {
    double theta, partial;
    double linear;                       /* positions divided by this (1: none) */
    bool llama3;
    double factor, low, high, original;  /* llama3 parameters */
} rope_params;

static int read_rope_scaling(hf_ctx *x, const sb_hf_config *sub, rope_params *rp) {
    const char *type;
    int rc = sb_hf_string(sub, "rope_type", false, NULL, &type, x->err);
    if (!rc && !type) rc = sb_hf_string(sub, "type", false, "default", &type, x->err);
    if (rc || strcmp(type, "default") == 0) return rc;
    if (strcmp(type, "linear") == 0) return sb_hf_double(sub, "factor", true, 1, &rp->linear, x->err);
    if (strcmp(type, "llama3") != 0)
        return sb_err_set(x->err, SB_EINPUT, "%s: rope type '%s' is not supported", x->cfg->path, type);
    rp->llama3 = true;
    rc = sb_hf_double(sub, "factor", true, 1, &rp->factor, x->err);
    if (!rc) rc = sb_hf_double(sub, "low_freq_factor", true, 1, &rp->low, x->err);
    if (!rc) rc = sb_hf_double(sub, "high_freq_factor", true, 1, &rp->high, x->err);
    if (!rc) rc = sb_hf_double(sub, "original_max_position_embeddings", true, 1, &rp->original, x->err);
    if (!rc && (rp->factor <= 0 || rp->low <= 0 || rp->high <= rp->low || rp->original <= 0))
        rc = sb_err_set(x->err, SB_EINPUT, "%s: impossible llama3 rope parameters", x->cfg->path);
    return rc;
}

/* layer_type: "full_attention" or "sliding_attention", for configs that
 * set rotary per layer type; theta_key: the old top-level key of the base. */
static int read_rope(hf_ctx *x, const char *layer_type, const char *theta_key, double dflt_theta, rope_params *rp) {
    memset(rp, 0, sizeof *rp);
    rp->linear = 1;
    rp->partial = 1;
    int rc = sb_hf_double(x->cfg, theta_key, false, dflt_theta, &rp->theta, x->err);
    if (!rc) rc = sb_hf_double(x->cfg, "partial_rotary_factor", false, rp->partial, &rp->partial, x->err);
    const cJSON *scaling = sb_hf_object(x->cfg, "rope_scaling");
    sb_hf_config sub = {.obj = scaling, .path = x->cfg->path};
    if (!rc && scaling) rc = read_rope_scaling(x, &sub, rp);
    const cJSON *params = sb_hf_object(x->cfg, "rope_parameters");
    if (rc || !params) return rc;
    const cJSON *per_type = layer_type ? cJSON_GetObjectItemCaseSensitive(params, layer_type) : NULL;
    sub.obj = cJSON_IsObject(per_type) ? per_type : params;
    rc = sb_hf_double(&sub, "rope_theta", false, rp->theta, &rp->theta, x->err);
    if (!rc) rc = sb_hf_double(&sub, "partial_rotary_factor", false, rp->partial, &rp->partial, x->err);
    if (!rc) rc = read_rope_scaling(x, &sub, rp);
    if (!rc && (rp->theta <= 0 || rp->partial <= 0 || rp->partial > 1 || rp->linear <= 0))
        rc = sb_err_set(x->err, SB_EINPUT, "%s: impossible rotary parameters", x->cfg->path);
    return rc;
}

/* Builds the frequency tables: `global` for full-attention layers, `local`
 * (if non-NULL) for sliding-window ones. */
static int finish_rope(hf_ctx *x, const rope_params *global, const rope_params *local) {
    int rc = sb_arch_rope_tables(x->m, global->theta, local ? local->theta : 0, global->linear, NULL, x->err);
    if (!rc && global->llama3)
        sb_rope_llama3_scale(x->m->rope_tables, x->m->rot_dim, global->factor, global->low, global->high, global->original);
    return rc;
}

/* Hyper-parameters shared by the llama-style configs (llama, mistral, qwen2, phi, gemma3). */
static int read_common(hf_ctx *x, sb_arch_shape *sh) {
    sb_hf_config *c = x->cfg;
    sb_model *m = x->m;
    int rc = sb_hf_int(c, "vocab_size", true, 0, &m->n_vocab, x->err);
    if (!rc) rc = sb_hf_int(c, "hidden_size", true, 0, &m->d_model, x->err);
    if (!rc) rc = sb_hf_int(c, "num_hidden_layers", true, 0, &m->n_layer, x->err);
    if (!rc) rc = sb_hf_int(c, "num_attention_heads", true, 0, &sh->n_head, x->err);
    if (!rc) rc = sb_hf_int(c, "num_key_value_heads", false, sh->n_head, &sh->n_kv_head, x->err);
    if (!rc) rc = sb_hf_int(c, "head_dim", false, sh->n_head > 0 ? m->d_model / sh->n_head : 0, &sh->head_dim, x->err);
    if (!rc) rc = sb_hf_int(c, "intermediate_size", true, 0, &sh->ff, x->err);
    if (!rc) rc = sb_hf_int(c, "max_position_embeddings", false, 2048, &m->max_positions, x->err);
    if (!rc) rc = sb_arch_alloc_blocks(m, sh, x->err);
    if (rc) return rc;
    m->attn_scale = (float)(1.0 / sqrt((double)sh->head_dim));
    m->rot_dim = sh->head_dim;
    m->positions = SB_ROPE_HALVES;
    return SB_OK;
}

static const sb_arch_names llama_names = {
    .tok_embd = "model.embed_tokens.weight", .final_norm = "model.norm.weight", .head = "lm_head.weight",
    .attn_norm = "model.layers.%d.input_layernorm.weight",
    .mlp_norm = "model.layers.%d.post_attention_layernorm.weight",
    .wq = "model.layers.%d.self_attn.q_proj.weight", .bq = "model.layers.%d.self_attn.q_proj.bias",
    .wk = "model.layers.%d.self_attn.k_proj.weight", .bk = "model.layers.%d.self_attn.k_proj.bias",
    .wv = "model.layers.%d.self_attn.v_proj.weight", .bv = "model.layers.%d.self_attn.v_proj.bias",
    .wo = "model.layers.%d.self_attn.o_proj.weight", .bo = "model.layers.%d.self_attn.o_proj.bias",
    .gate = "model.layers.%d.mlp.gate_proj.weight", .up = "model.layers.%d.mlp.up_proj.weight",
    .down = "model.layers.%d.mlp.down_proj.weight",
};

/* Llama 2/3, Mistral, TinyLlama, SmolLM and Qwen2 share one layout. */
static int hf_llama(hf_ctx *x) {
    sb_model *m = x->m;
    sb_arch_shape sh = {0};
    double eps;
    rope_params rope;
    int rc = read_common(x, &sh);
    if (!rc) rc = sb_hf_double(x->cfg, "rms_norm_eps", false, 1e-6, &eps, x->err);
    if (!rc) rc = read_rope(x, NULL, "rope_theta", 10000, &rope);
    if (!rc) rc = parse_activation(x->cfg, "hidden_act", "silu", &m->act, x->err);
    if (!rc) rc = sb_hf_bool(x->cfg, "tie_word_embeddings", false, &m->tied_head, x->err);
    if (rc) return rc;
    m->norm_type = SB_NORM_RMS;
    m->norm_eps = (float)eps;
    m->gated_mlp = true;
    /* Sliding windows: layer_types, else Mistral's sliding_window for all
     * layers, else Qwen2's use_sliding_window from max_window_layers on. */
    int window, found, qwen_sliding = 0, max_window_layers;
    bool use_sliding;
    rc = sb_hf_int(x->cfg, "sliding_window", false, 0, &window, x->err);
    if (!rc) rc = windows_from_layer_types(x, window, &found);
    if (!rc) rc = sb_hf_bool(x->cfg, "use_sliding_window", strcmp(m->arch, "qwen2") != 0, &use_sliding, x->err);
    if (!rc) rc = sb_hf_int(x->cfg, "max_window_layers", false, 0, &max_window_layers, x->err);
    if (rc) return rc;
    qwen_sliding = strcmp(m->arch, "qwen2") == 0;
    for (int l = 0; !found && l < m->n_layer; l++)
        m->blocks[l].sliding_window = use_sliding && (!qwen_sliding || l >= max_window_layers) ? window : 0;
    rc = finish_rope(x, &rope, NULL);
    return rc ? rc : sb_arch_build(m, x->st, &llama_names, &sh, x->err);
}

static const sb_arch_names gemma3_names = {
    .tok_embd = "model.embed_tokens.weight", .final_norm = "model.norm.weight", .head = "lm_head.weight",
    .attn_norm = "model.layers.%d.input_layernorm.weight",
    .post_attn_norm = "model.layers.%d.post_attention_layernorm.weight",
    .mlp_norm = "model.layers.%d.pre_feedforward_layernorm.weight",
    .post_mlp_norm = "model.layers.%d.post_feedforward_layernorm.weight",
    .q_norm = "model.layers.%d.self_attn.q_norm.weight", .k_norm = "model.layers.%d.self_attn.k_norm.weight",
    .wq = "model.layers.%d.self_attn.q_proj.weight", .wk = "model.layers.%d.self_attn.k_proj.weight",
    .wv = "model.layers.%d.self_attn.v_proj.weight", .wo = "model.layers.%d.self_attn.o_proj.weight",
    .gate = "model.layers.%d.mlp.gate_proj.weight", .up = "model.layers.%d.mlp.up_proj.weight",
    .down = "model.layers.%d.mlp.down_proj.weight",
};

/* Gemma 3 (text): norms multiply by 1 + w, q/k norms, sandwich norms, every
 * pattern-th layer global and the rest sliding with their own rope base,
 * embeddings scaled by sqrt(d), scores scaled by query_pre_attn_scalar. */
static int hf_gemma3(hf_ctx *x) {
    sb_model *m = x->m;
    sb_arch_shape sh = {.norm_offset = 1.0f};
    double eps, qscale, softcap_attn, softcap_final;
    rope_params global, local;
    int window, pattern, found;
    int rc = read_common(x, &sh);
    if (!rc) rc = sb_hf_double(x->cfg, "rms_norm_eps", false, 1e-6, &eps, x->err);
    if (!rc) rc = read_rope(x, "full_attention", "rope_theta", 1e6, &global);
    if (!rc) rc = read_rope(x, "sliding_attention", "rope_local_base_freq", 10000, &local);
    if (!rc) rc = sb_hf_double(x->cfg, "query_pre_attn_scalar", false, sh.head_dim, &qscale, x->err);
    if (!rc) rc = sb_hf_double(x->cfg, "attn_logit_softcapping", false, 0, &softcap_attn, x->err);
    if (!rc) rc = sb_hf_double(x->cfg, "final_logit_softcapping", false, 0, &softcap_final, x->err);
    if (!rc) rc = parse_activation(x->cfg, "hidden_activation", "gelu_pytorch_tanh", &m->act, x->err);
    if (!rc) rc = sb_hf_bool(x->cfg, "tie_word_embeddings", true, &m->tied_head, x->err);
    if (!rc) rc = sb_hf_int(x->cfg, "sliding_window", false, 4096, &window, x->err);
    if (!rc) rc = sb_hf_int(x->cfg, "sliding_window_pattern", false, 6, &pattern, x->err);
    if (!rc) rc = windows_from_layer_types(x, window, &found);
    if (rc) return rc;
    if (qscale <= 0 || pattern < 1) return sb_err_set(x->err, SB_EINPUT, "%s: bad query_pre_attn_scalar or sliding_window_pattern", x->cfg->path);
    for (int l = 0; !found && l < m->n_layer; l++) m->blocks[l].sliding_window = (l + 1) % pattern ? window : 0;
    m->norm_type = SB_NORM_RMS;
    m->norm_eps = (float)eps;
    m->gated_mlp = true;
    m->attn_scale = (float)(1.0 / sqrt(qscale));
    m->embed_scale = (float)sqrt((double)m->d_model);
    m->attn_softcap = (float)softcap_attn;
    m->final_softcap = (float)softcap_final;
    rc = finish_rope(x, &global, &local);
    return rc ? rc : sb_arch_build(m, x->st, &gemma3_names, &sh, x->err);
}

static const sb_arch_names phi_names = {
    .tok_embd = "model.embed_tokens.weight", .final_norm = "model.final_layernorm.weight",
    .final_norm_bias = "model.final_layernorm.bias", .head = "lm_head.weight", .head_bias = "lm_head.bias",
    .attn_norm = "model.layers.%d.input_layernorm.weight", .attn_norm_bias = "model.layers.%d.input_layernorm.bias",
    .wq = "model.layers.%d.self_attn.q_proj.weight", .bq = "model.layers.%d.self_attn.q_proj.bias",
    .wk = "model.layers.%d.self_attn.k_proj.weight", .bk = "model.layers.%d.self_attn.k_proj.bias",
    .wv = "model.layers.%d.self_attn.v_proj.weight", .bv = "model.layers.%d.self_attn.v_proj.bias",
    .wo = "model.layers.%d.self_attn.dense.weight", .bo = "model.layers.%d.self_attn.dense.bias",
    .up = "model.layers.%d.mlp.fc1.weight", .up_bias = "model.layers.%d.mlp.fc1.bias",
    .down = "model.layers.%d.mlp.fc2.weight", .down_bias = "model.layers.%d.mlp.fc2.bias",
};

/* Phi-2: one LayerNorm feeds attention and MLP in parallel; rotary on the
 * first partial_rotary_factor of each head. */
static int hf_phi(hf_ctx *x) {
    sb_model *m = x->m;
    sb_arch_shape sh = {0};
    double eps;
    rope_params rope;
    bool qk_norm;
    int rc = read_common(x, &sh);
    if (!rc) rc = sb_hf_double(x->cfg, "layer_norm_eps", false, 1e-5, &eps, x->err);
    if (!rc) rc = read_rope(x, NULL, "rope_theta", 10000, &rope);
    if (!rc) rc = sb_hf_bool(x->cfg, "qk_layernorm", false, &qk_norm, x->err);
    if (!rc) rc = parse_activation(x->cfg, "hidden_act", "gelu_new", &m->act, x->err);
    if (!rc) rc = sb_hf_bool(x->cfg, "tie_word_embeddings", false, &m->tied_head, x->err);
    if (rc) return rc;
    if (qk_norm) return sb_err_set(x->err, SB_EINPUT, "%s: phi with qk_layernorm is not supported", x->cfg->path);
    m->norm_type = SB_NORM_LAYER;
    m->norm_eps = (float)eps;
    m->parallel_residual = true;
    m->rot_dim = (int)(sh.head_dim * rope.partial);
    rc = finish_rope(x, &rope, NULL);
    return rc ? rc : sb_arch_build(m, x->st, &phi_names, &sh, x->err);
}

static const sb_arch_names opt_names = {
    .tok_embd = "model.decoder.embed_tokens.weight", .pos_embd = "model.decoder.embed_positions.weight",
    .final_norm = "model.decoder.final_layer_norm.weight", .final_norm_bias = "model.decoder.final_layer_norm.bias",
    .head = "lm_head.weight",
    .attn_norm = "model.decoder.layers.%d.self_attn_layer_norm.weight",
    .attn_norm_bias = "model.decoder.layers.%d.self_attn_layer_norm.bias",
    .mlp_norm = "model.decoder.layers.%d.final_layer_norm.weight",
    .mlp_norm_bias = "model.decoder.layers.%d.final_layer_norm.bias",
    .wq = "model.decoder.layers.%d.self_attn.q_proj.weight", .bq = "model.decoder.layers.%d.self_attn.q_proj.bias",
    .wk = "model.decoder.layers.%d.self_attn.k_proj.weight", .bk = "model.decoder.layers.%d.self_attn.k_proj.bias",
    .wv = "model.decoder.layers.%d.self_attn.v_proj.weight", .bv = "model.decoder.layers.%d.self_attn.v_proj.bias",
    .wo = "model.decoder.layers.%d.self_attn.out_proj.weight", .bo = "model.decoder.layers.%d.self_attn.out_proj.bias",
    .up = "model.decoder.layers.%d.fc1.weight", .up_bias = "model.decoder.layers.%d.fc1.bias",
    .down = "model.decoder.layers.%d.fc2.weight", .down_bias = "model.decoder.layers.%d.fc2.bias",
};

/* OPT: learned positions looked up at position + 2, LayerNorm, ReLU MLP. */
static int hf_opt(hf_ctx *x) {
    sb_model *m = x->m;
    sb_arch_shape sh = {0};
    bool pre_norm;
    int proj_dim;
    int rc = sb_hf_int(x->cfg, "vocab_size", true, 0, &m->n_vocab, x->err);
    if (!rc) rc = sb_hf_int(x->cfg, "hidden_size", true, 0, &m->d_model, x->err);
    if (!rc) rc = sb_hf_int(x->cfg, "num_hidden_layers", true, 0, &m->n_layer, x->err);
    if (!rc) rc = sb_hf_int(x->cfg, "num_attention_heads", true, 0, &sh.n_head, x->err);
    if (!rc) rc = sb_hf_int(x->cfg, "ffn_dim", true, 0, &sh.ff, x->err);
    if (!rc) rc = sb_hf_int(x->cfg, "max_position_embeddings", true, 0, &m->max_positions, x->err);
    if (!rc) rc = sb_hf_int(x->cfg, "word_embed_proj_dim", false, m->d_model, &proj_dim, x->err);
    if (!rc) rc = sb_hf_bool(x->cfg, "do_layer_norm_before", true, &pre_norm, x->err);
    if (!rc) rc = sb_hf_bool(x->cfg, "tie_word_embeddings", true, &m->tied_head, x->err);
    if (!rc) rc = parse_activation(x->cfg, "activation_function", "relu", &m->act, x->err);
    if (rc) return rc;
    if (!pre_norm || proj_dim != m->d_model)
        return sb_err_set(x->err, SB_EINPUT, "%s: OPT with post-norm or word_embed_proj_dim != hidden_size (OPT-350m) is not supported",
                          x->cfg->path);
    sh.n_kv_head = sh.n_head;
    sh.head_dim = sh.n_head > 0 ? m->d_model / sh.n_head : 0;
    sh.pos_rows = m->max_positions + 2;
    if ((rc = sb_arch_alloc_blocks(m, &sh, x->err))) return rc;
    m->norm_type = SB_NORM_LAYER;
    m->norm_eps = 1e-5f;
    m->positions = SB_POS_LEARNED;
    m->pos_offset = 2;
    m->attn_scale = (float)(1.0 / sqrt((double)sh.head_dim));
    return sb_arch_build(m, x->st, &opt_names, &sh, x->err);
}

/* GPT-2 stores Conv1D weights as [in, out]: each is transposed into an
 * f32 [out, in] copy at load, and the fused c_attn is split into q, k, v. */
static int gpt2_conv(hf_ctx *x, const char *prefix, const char *name, int64_t rows, int64_t cols, sb_linear *out) {
    char w[256], b[256];
    snprintf(w, sizeof w, "%s%s.weight", prefix, name);
    snprintf(b, sizeof b, "%s%s.bias", prefix, name);
    float *data;
    int rc = sb_store_take_matrix_f32(x->st, w, rows, cols, true, &data, x->err);
    if (rc) return rc;
    *out = (sb_linear){.fmt = &sb_format_f32, .rows = rows, .cols = cols, .data = data, .owned = data};
    if (sb_store_has(x->st, b)) rc = sb_store_take_vector(x->st, b, rows, 0, &out->bias, x->err);
    return rc;
}

static int split_linear(const sb_linear *qkv, int64_t part_rows, int part, sb_linear *out, sb_err *err) {
    float *data = sb_malloc(err, sizeof(float) * (size_t)(part_rows * qkv->cols));
    float *bias = qkv->bias ? sb_malloc(err, sizeof(float) * (size_t)part_rows) : NULL;
    if (!data || (qkv->bias && !bias)) {
        free(data);
        free(bias);
        return SB_EINTERNAL;
    }
    memcpy(data, (const float *)qkv->data + part * part_rows * qkv->cols, sizeof(float) * (size_t)(part_rows * qkv->cols));
    if (bias) memcpy(bias, qkv->bias + part * part_rows, sizeof(float) * (size_t)part_rows);
    *out = (sb_linear){.fmt = &sb_format_f32, .rows = part_rows, .cols = qkv->cols, .data = data, .owned = data, .bias = bias};
    return SB_OK;
}

static int gpt2_norm(hf_ctx *x, const char *prefix, const char *name, sb_norm *out) {
    char w[256], b[256];
    snprintf(w, sizeof w, "%s%s.weight", prefix, name);
    snprintf(b, sizeof b, "%s%s.bias", prefix, name);
    int rc = sb_store_take_vector(x->st, w, x->m->d_model, 0, &out->weight, x->err);
    return rc ? rc : sb_store_take_vector(x->st, b, x->m->d_model, 0, &out->bias, x->err);
}

static int gpt2_block(hf_ctx *x, const char *root, int l, int ff) {
    sb_model *m = x->m;
    sb_block *b = &m->blocks[l];
    int64_t d = m->d_model;
    char p[128];
    snprintf(p, sizeof p, "%sh.%d.", root, l);
    sb_linear qkv = {0};
    int rc = gpt2_norm(x, p, "ln_1", &b->attn_norm);
    if (!rc) rc = gpt2_norm(x, p, "ln_2", &b->mlp_norm);
    if (!rc) rc = gpt2_conv(x, p, "attn.c_attn", 3 * d, d, &qkv);
    if (!rc) rc = split_linear(&qkv, d, 0, &b->wq, x->err);
    if (!rc) rc = split_linear(&qkv, d, 1, &b->wk, x->err);
    if (!rc) rc = split_linear(&qkv, d, 2, &b->wv, x->err);
    sb_linear_free(&qkv);
    if (!rc) rc = gpt2_conv(x, p, "attn.c_proj", d, d, &b->wo);
    if (!rc) rc = gpt2_conv(x, p, "mlp.c_fc", ff, d, &b->w_up);
    if (!rc) rc = gpt2_conv(x, p, "mlp.c_proj", d, ff, &b->w_down);
    return rc;
}

static int hf_gpt2(hf_ctx *x) {
    sb_model *m = x->m;
    sb_arch_shape sh = {0};
    double eps;
    int rc = sb_hf_int(x->cfg, "vocab_size", true, 0, &m->n_vocab, x->err);
    if (!rc) rc = sb_hf_int(x->cfg, "n_embd", true, 0, &m->d_model, x->err);
    if (!rc) rc = sb_hf_int(x->cfg, "n_layer", true, 0, &m->n_layer, x->err);
    if (!rc) rc = sb_hf_int(x->cfg, "n_head", true, 0, &sh.n_head, x->err);
    if (!rc) rc = sb_hf_int(x->cfg, "n_positions", true, 0, &m->max_positions, x->err);
    if (!rc) rc = sb_hf_int(x->cfg, "n_inner", false, 4 * m->d_model, &sh.ff, x->err);
    if (!rc) rc = sb_hf_double(x->cfg, "layer_norm_epsilon", false, 1e-5, &eps, x->err);
    if (!rc) rc = parse_activation(x->cfg, "activation_function", "gelu_new", &m->act, x->err);
    if (!rc) rc = sb_hf_bool(x->cfg, "tie_word_embeddings", true, &m->tied_head, x->err);
    if (rc) return rc;
    sh.n_kv_head = sh.n_head;
    sh.head_dim = sh.n_head > 0 ? m->d_model / sh.n_head : 0;
    if ((rc = sb_arch_alloc_blocks(m, &sh, x->err))) return rc;
    m->norm_type = SB_NORM_LAYER;
    m->norm_eps = (float)eps;
    m->positions = SB_POS_LEARNED;
    m->n_pos_rows = m->max_positions;
    m->attn_scale = (float)(1.0 / sqrt((double)sh.head_dim));
    /* The original gpt2 checkpoints name tensors without "transformer.". */
    const char *root = sb_store_has(x->st, "transformer.wte.weight") ? "transformer." : "";
    char name[128];
    snprintf(name, sizeof name, "%swte.weight", root);
    rc = sb_store_take_linear(x->st, name, NULL, m->n_vocab, m->d_model, &m->tok_embd, x->err);
    snprintf(name, sizeof name, "%swpe.weight", root);
    if (!rc) rc = sb_store_take_matrix_f32(x->st, name, m->max_positions, m->d_model, false, &m->pos_embd, x->err);
    for (int l = 0; !rc && l < m->n_layer; l++) rc = gpt2_block(x, root, l, sh.ff);
    if (!rc) rc = gpt2_norm(x, root, "ln_f", &m->final_norm);
    if (rc) return rc;
    if (!m->tied_head) return sb_store_take_linear(x->st, "lm_head.weight", NULL, m->n_vocab, m->d_model, &m->head, x->err);
    m->head = m->tok_embd;
    m->head.owned = NULL;
    return SB_OK;
}

typedef struct {
    const char *model_type;
    const char *arch;
    int (*build)(hf_ctx *x);
} hf_adapter;

static const hf_adapter adapters[] = {
    {"llama", "llama", hf_llama},   {"mistral", "llama", hf_llama}, {"qwen2", "qwen2", hf_llama},
    {"gemma3_text", "gemma3", hf_gemma3}, {"gemma3", "gemma3", hf_gemma3},
    {"phi", "phi", hf_phi},         {"opt", "opt", hf_opt},         {"gpt2", "gpt2", hf_gpt2},
};

/* Tensors an adapter does not need but Hugging Face checkpoints may carry. */
static const char *const ignorable_suffixes[] = {"rotary_emb.inv_freq", "attn.bias", "attn.masked_bias", NULL};

static int open_weights(const char *dir, sb_tensor_store *st, sb_err *err) {
    char path[4096];
    struct stat sst;
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    if (stat(path, &sst) != 0) snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    if (stat(path, &sst) != 0)
        return sb_err_set(err, SB_EINPUT, "%s: no model.safetensors or model.safetensors.index.json", dir);
    st->what = dir;
    return sb_safetensors_load(st, path, err);
}

static int load_tokenizer(const char *dir, sb_model *m, sb_err *err) {
    char path[4096];
    struct stat sst;
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    if (stat(path, &sst) != 0) return SB_OK; /* weights without a tokenizer are still a model */
    return sb_tokenizer_load_hf(dir, &m->tokenizer, err);
}

int sb_load_hf(const char *dir, sb_model *m, sb_err *err) {
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    sb_hf_config cfg;
    int rc = sb_hf_config_open(&cfg, path, err);
    if (rc) return rc;
    const char *type;
    const hf_adapter *ad = NULL;
    rc = sb_hf_string(&cfg, "model_type", true, NULL, &type, err);
    for (size_t i = 0; !rc && i < sizeof adapters / sizeof adapters[0]; i++)
        if (strcmp(type, adapters[i].model_type) == 0) ad = &adapters[i];
    if (!rc && (strcmp(type, "vit") == 0 || strcmp(type, "deit") == 0)) {
        sb_hf_config_close(&cfg); /* image classifiers: loader_vit.c */
        return sb_load_vit(dir, m, err);
    }
    if (!rc && !ad) rc = sb_err_set(err, SB_EINPUT, "%s: model_type '%s' is not supported", path, type);
    if (!rc && strcmp(type, "gemma3") == 0) {
        /* multimodal Gemma 3 folders nest the text model's config */
        const cJSON *text = sb_hf_object(&cfg, "text_config");
        if (text) cfg.obj = text;
    }
    sb_tensor_store st = {0};
    if (!rc) {
        snprintf(m->arch, sizeof m->arch, "%s", ad->arch);
        snprintf(m->source, sizeof m->source, "hf");
        rc = open_weights(dir, &st, err);
    }
    hf_ctx x = {&cfg, &st, m, err};
    if (!rc) rc = ad->build(&x);
    if (!rc) rc = sb_store_check_all_used(&st, m->arch, ignorable_suffixes, err);
    if (!rc) rc = load_tokenizer(dir, m, err);
    if (!rc) sb_store_give_files(&st, &m->files, &m->n_files);
    sb_store_free(&st);
    sb_hf_config_close(&cfg);
    return rc;
}
