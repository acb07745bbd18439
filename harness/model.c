#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "model.h"
#include "tokenizer.h"
#include "vision.h"

int sb_load_hf(const char *dir, sb_model *m, sb_err *err);     /* loader_hf.c */
int sb_load_gguf(const char *path, sb_model *m, sb_err *err);  /* loader_gguf.c */

int sb_model_load(const char *path, sb_model **out, sb_err *err) {
    struct stat st;
    if (stat(path, &st) != 0) return sb_err_set(err, SB_EINPUT, "%s: no such file or folder", path);
    sb_model *m = sb_calloc(err, 1, sizeof *m);
    if (!m) return SB_EINTERNAL;
    m->path = strdup(path);
    m->embed_scale = 1.0f;
    int rc = m->path ? SB_OK : sb_err_set(err, SB_EINTERNAL, "out of memory");
    if (!rc) rc = S_ISDIR(st.st_mode) ? sb_load_hf(path, m, err) : sb_load_gguf(path, m, err);
    if (!rc) rc = sb_model_validate(m, err);
    if (rc) {
        sb_model_free(m);
        return rc;
    }
    *out = m;
    return SB_OK;
}

static void free_norm(sb_norm *n) {
    free(n->weight);
    free(n->bias);
}

void sb_model_free(sb_model *m) {
    if (!m) return;
    for (int l = 0; m->blocks && l < m->n_layer; l++) {
        sb_block *b = &m->blocks[l];
        sb_norm *norms[] = {&b->attn_norm, &b->mlp_norm, &b->post_attn_norm, &b->post_mlp_norm, &b->q_norm, &b->k_norm};
        for (size_t i = 0; i < sizeof norms / sizeof norms[0]; i++) free_norm(norms[i]);
        sb_linear *lins[] = {&b->wq, &b->wk, &b->wv, &b->wo, &b->w_gate, &b->w_up, &b->w_down, &b->attn_shortcut, &b->mlp_shortcut};
        for (size_t i = 0; i < sizeof lins / sizeof lins[0]; i++) sb_linear_free(lins[i]);
    }
    free(m->blocks);
    sb_linear_free(&m->tok_embd);
    if (!m->tied_head) sb_linear_free(&m->head);
    free(m->pos_embd);
    free_norm(&m->final_norm);
    free(m->rope_tables);
    for (int i = 0; i < m->n_files; i++) sb_mapped_file_close(&m->files[i]);
    free(m->files);
    if (m->tokenizer) sb_tokenizer_free(m->tokenizer);
    sb_vision_free(m->vision);
    free(m->reducer);
    free(m->path);
    free(m);
}

int64_t sb_block_width_in(const sb_block *b) { return b->wq.cols; }
int64_t sb_block_width_mid(const sb_block *b) { return b->wo.rows; }
int64_t sb_block_width_out(const sb_block *b, bool parallel_residual) {
    return parallel_residual ? b->wo.rows : b->w_down.rows;
}
int sb_model_block_range(const sb_model *m, int layer0, int layer1, int64_t *w_in, int64_t *w_out, sb_err *err) {
    if (layer0 < 0 || layer1 > m->n_layer || layer0 > layer1)
        return sb_err_set(err, SB_EINTERNAL, "block range [%d, %d) outside the model's %d blocks", layer0, layer1,
                          m->n_layer);
    *w_in = layer0 < m->n_layer ? sb_block_width_in(&m->blocks[layer0]) : m->head.cols;
    *w_out = layer1 > layer0 ? sb_block_width_out(&m->blocks[layer1 - 1], m->parallel_residual) : *w_in;
    return SB_OK;
}

/* Image models have no token embedding: their stream starts at the patch embedding's width. */
int64_t sb_model_embed_width(const sb_model *m) { return m->vision ? m->vision->patch.rows : m->tok_embd.cols; }

bool sb_model_is_sliced(const sb_model *m) {
    if (sb_model_embed_width(m) != m->d_model || m->head.cols != m->d_model) return true;
    for (int l = 0; l < m->n_layer; l++) {
        const sb_block *b = &m->blocks[l];
        if (b->attn_shortcut.fmt || b->mlp_shortcut.fmt || sb_block_width_in(b) != m->d_model ||
            sb_block_width_mid(b) != m->d_model || sb_block_width_out(b, m->parallel_residual) != m->d_model)
            return true;
    }
    return false;
}

/* A shortcut must map `from` values to `to`; absent, the widths must agree. */
static bool shortcut_fits(const sb_linear *s, int64_t from, int64_t to) {
    return s->fmt ? s->cols == from && s->rows == to : from == to;
}

/* The residual stream's widths chain from the embedding through every block to the head. */
static int validate_widths(const sb_model *m, sb_err *err) {
    int64_t w = sb_model_embed_width(m);
    for (int l = 0; l < m->n_layer; l++) {
        const sb_block *b = &m->blocks[l];
        int64_t in = sb_block_width_in(b), mid = sb_block_width_mid(b), out = sb_block_width_out(b, m->parallel_residual);
        bool inputs = b->wk.cols == in && b->wv.cols == in && b->w_up.cols == (m->parallel_residual ? in : mid) &&
                      (!m->gated_mlp || b->w_gate.cols == b->w_up.cols);
        bool residual = m->parallel_residual
                            ? b->w_down.rows == out && shortcut_fits(&b->attn_shortcut, in, out) && !b->mlp_shortcut.fmt
                            : shortcut_fits(&b->attn_shortcut, in, mid) && shortcut_fits(&b->mlp_shortcut, mid, out);
        if (in != w || in > m->d_model || mid > m->d_model || out > m->d_model || !inputs || !residual)
            return sb_err_set(err, SB_EINPUT,
                              "%s: layer %d: residual widths disagree (stream %lld enters; block takes %lld, %lld "
                              "between its branches, gives %lld; d_model %d)",
                              m->path, l, (long long)w, (long long)in, (long long)mid, (long long)out, m->d_model);
        w = out;
    }
    if (m->head.cols != w)
        return sb_err_set(err, SB_EINPUT, "%s: the head takes %lld values but the last block gives %lld", m->path,
                          (long long)m->head.cols, (long long)w);
    return SB_OK;
}

int sb_model_validate(const sb_model *m, sb_err *err) {
    if (m->n_layer < 1 || !m->blocks || (!m->tok_embd.fmt && !m->vision) || !m->head.fmt || !m->final_norm.weight)
        return sb_err_set(err, SB_EINPUT, "%s: incomplete model", m->path);
    if (m->positions != SB_POS_LEARNED && (m->rot_dim < 2 || !m->rope_tables))
        return sb_err_set(err, SB_EINPUT, "%s: rotary positions without a frequency table", m->path);
    for (int l = 0; l < m->n_layer; l++) {
        const sb_block *b = &m->blocks[l];
        if (m->positions != SB_POS_LEARNED && m->rot_dim > b->head_dim)
            return sb_err_set(err, SB_EINPUT, "%s: rotary dimension %d exceeds head dimension %d", m->path, m->rot_dim,
                              b->head_dim);
        if (b->w_up.rows != b->w_down.cols || (m->gated_mlp && b->w_gate.rows != b->w_up.rows))
            return sb_err_set(err, SB_EINPUT, "%s: layer %d: MLP shapes disagree", m->path, l);
    }
    if (m->attn_scale <= 0 || !isfinite(m->attn_scale) || !(m->norm_eps >= 0))
        return sb_err_set(err, SB_EINPUT, "%s: bad attention scale or norm epsilon", m->path);
    return validate_widths(m, err);
}

static uint64_t linear_params(const sb_linear *w) {
    return w->fmt ? (uint64_t)w->rows * (uint64_t)w->cols + (w->bias ? (uint64_t)w->rows : 0) : 0;
}

static uint64_t norm_params(const sb_norm *n, int64_t width) {
    return (n->weight ? (uint64_t)width : 0) + (n->bias ? (uint64_t)width : 0);
}

/* Counts each stored parameter once (a tied head is not counted again). */
uint64_t sb_model_param_count(const sb_model *m) {
    uint64_t n = linear_params(&m->tok_embd) + (m->tied_head ? 0 : linear_params(&m->head));
    n += m->pos_embd ? (uint64_t)m->n_pos_rows * (uint64_t)sb_model_embed_width(m) : 0;
    n += norm_params(&m->final_norm, m->head.cols);
    n += sb_vision_param_count(m->vision);
    for (int l = 0; l < m->n_layer; l++) {
        const sb_block *b = &m->blocks[l];
        const sb_linear *lins[] = {&b->wq, &b->wk, &b->wv, &b->wo, &b->w_gate, &b->w_up, &b->w_down, &b->attn_shortcut, &b->mlp_shortcut};
        for (size_t i = 0; i < sizeof lins / sizeof lins[0]; i++) n += linear_params(lins[i]);
        int64_t mid = sb_block_width_mid(b), out = sb_block_width_out(b, m->parallel_residual);
        n += norm_params(&b->attn_norm, sb_block_width_in(b)) + norm_params(&b->mlp_norm, mid);
        n += norm_params(&b->post_attn_norm, mid) + norm_params(&b->post_mlp_norm, out);
        n += norm_params(&b->q_norm, b->head_dim) + norm_params(&b->k_norm, b->head_dim);
    }
    return n;
}

/* Bits of the linear weights as stored (norms and biases are f32). */
uint64_t sb_model_weight_bits(const sb_model *m) {
    uint64_t bits = sb_linear_storage_bits(&m->tok_embd) + (m->tied_head ? 0 : sb_linear_storage_bits(&m->head));
    if (m->vision) bits += sb_linear_storage_bits(&m->vision->patch);
    for (int l = 0; l < m->n_layer; l++) {
        const sb_block *b = &m->blocks[l];
        const sb_linear *lins[] = {&b->wq, &b->wk, &b->wv, &b->wo, &b->w_gate, &b->w_up, &b->w_down, &b->attn_shortcut, &b->mlp_shortcut};
        for (size_t i = 0; i < sizeof lins / sizeof lins[0]; i++) bits += sb_linear_storage_bits(lins[i]);
    }
    return bits;
}

double sb_model_bits_per_weight(const sb_model *m) {
    uint64_t n = 0, bits = 0;
    for (int l = 0; l < m->n_layer; l++) {
        const sb_block *b = &m->blocks[l];
        const sb_linear *lins[] = {&b->wq, &b->wk, &b->wv, &b->wo, &b->w_gate, &b->w_up, &b->w_down, &b->attn_shortcut, &b->mlp_shortcut};
        for (size_t i = 0; i < sizeof lins / sizeof lins[0]; i++) {
            if (!lins[i]->fmt) continue;
            n += (uint64_t)(lins[i]->rows * lins[i]->cols);
            bits += lins[i]->fmt->storage_bits(lins[i]);
        }
    }
    return n ? (double)bits / (double)n : 0;
}

void sb_rope_default_freqs(float *inv_freq, int rot_dim, double base) {
    for (int i = 0; i < rot_dim / 2; i++) inv_freq[i] = (float)(1.0 / pow(base, (double)(2 * i) / rot_dim));
}

/* Llama 3.1's scaling: long wavelengths are divided by `factor`, short ones
 * kept, and the band between is interpolated smoothly. */
void sb_rope_llama3_scale(float *inv_freq, int rot_dim, double factor, double low_freq_factor,
                          double high_freq_factor, double original_max_positions) {
    double low_wavelen = original_max_positions / low_freq_factor;
    double high_wavelen = original_max_positions / high_freq_factor;
    for (int i = 0; i < rot_dim / 2; i++) {
        double f = inv_freq[i], wavelen = 2 * M_PI / f;
        if (wavelen > low_wavelen) {
            inv_freq[i] = (float)(f / factor);
        } else if (wavelen >= high_wavelen) {
            double smooth = (original_max_positions / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor);
            inv_freq[i] = (float)((1 - smooth) * f / factor + smooth * f);
        }
    }
}
