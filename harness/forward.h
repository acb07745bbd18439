/* forward.h - running a model: full sequences, batches and incremental
 * decoding with a KV cache, all through one function.
 *
 * A session holds the KV caches of n_seq sequences that advance together,
 * and every scratch buffer, so sb_session_forward never allocates.  A
 * full-sequence pass is one call with all tokens; incremental decoding is
 * the same call with one token at a time: both go through the same code. */
#ifndef SB_FORWARD_H
#define SB_FORWARD_H

#include "model.h"
#include "thread_pool.h"

typedef struct sb_session sb_session;

/* max_ctx: positions each sequence may reach; max_tokens: tokens per
 * sequence in one call. pool may be NULL (single-threaded element-wise work). */
int sb_session_new(const sb_model *m, sb_pool *pool, int n_seq, int max_ctx, int max_tokens, sb_session **out,
                   sb_err *err);
void sb_session_free(sb_session *s);
/* Forgets every cached position (starts new sequences). */
void sb_session_reset(sb_session *s);
int sb_session_n_past(const sb_session *s);
/* Forgets every position from n_past on (0 <= n_past <= current): a shared
 * prefix (a question's context) is computed once, then each continuation
 * is run after truncating back to it. */
int sb_session_truncate(sb_session *s, int n_past, sb_err *err);

/* Appends n_tok tokens to each sequence: tokens[seq * n_tok + t].  Writes
 * logits for the call's positions t >= logits_from of each sequence to
 * logits[(seq * (n_tok - logits_from) + (t - logits_from)) * n_vocab]
 * (logits may be NULL when logits_from == n_tok). */
int sb_session_forward(sb_session *s, const int32_t *tokens, int n_tok, int logits_from, float *logits,
                       sb_err *err);

/* ---- pieces of the pass (calibration runs a model block by block) ---------
 * Hidden states are laid out as the residual stream inside the session:
 * n_seq sequences x n_tok rows of d_model floats, x[(seq * n_tok + t) * d].
 * Neither call advances n_past: positions are n_past .. n_past + n_tok - 1,
 * so a calibration pass can run block after block over the same positions
 * (each block's KV cache entries there are overwritten). */

/* The token embedding (scaled, plus learned positions) of tokens[seq * n_tok + t]. */
int sb_session_embed(sb_session *s, const int32_t *tokens, int n_tok, float *x_out, sb_err *err);
/* Blocks [layer0, layer1) applied to x_in; x_out may equal x_in. */
int sb_session_forward_blocks(sb_session *s, const float *x_in, int n_tok, int layer0, int layer1, float *x_out,
                              sb_err *err);

/* The final norm and the head on n_rows hidden rows x[n_rows, d_model]
 * (n_rows <= n_seq * max_tokens): logits[n_rows, n_vocab], the same values
 * sb_session_forward gives for those positions.  Block-wise searches (SLEB)
 * score the hidden states they computed themselves. */
int sb_session_logits(sb_session *s, const float *x, int64_t n_rows, float *logits, sb_err *err);

/* Called before every linear product inside a block with the exact input
 * rows that linear receives (n_rows = n_seq * n_tok rows of w->cols
 * floats). w points into m->blocks[layer], so its address says which
 * linear it is. The observer must not keep x. */
typedef void (*sb_linear_observer)(void *user, int layer, const sb_linear *w, const float *x, int64_t n_rows);
/* fn NULL: no observer (the default). */
void sb_session_set_observer(sb_session *s, sb_linear_observer fn, void *user);

/* ---- attention capture (token reduction, analysis) ------------------------
 * Called after the softmax of every attention row: probs[k] is the weight
 * query token t (of sequence seq, head `head`, block `layer`) gives key
 * position key0 + k, for k < n_keys (masked keys are 0).  Runs on the
 * pool's workers concurrently, one call per (seq, head, t): the observer
 * may only write memory that triple owns, and must not keep probs. */
typedef void (*sb_attention_observer)(void *user, int layer, int seq, int head, int t, const float *probs, int key0,
                                      int n_keys);
/* fn NULL: no capture (the default; costs one branch per row). */
void sb_session_set_attention_observer(sb_session *s, sb_attention_observer fn, void *user);

#endif
