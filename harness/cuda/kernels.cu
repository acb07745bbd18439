/* kernels.cu - the device kernels of the forward pass, each the plain
 * counterpart of a loop in forward.c or format_qint.c, and their launchers.
 * Every launcher checks the launch (cudaGetLastError); errors inside a
 * kernel surface at the next synchronising call, which is checked too. */
#include <math.h>
#include <stdint.h>

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "cuda_internal.h"

enum { THREADS = 256, WARP = 32 };

static unsigned blocks_for(int64_t n) { return (unsigned)((n + THREADS - 1) / THREADS); }

__device__ static float warp_sum(float v) {
    for (int o = WARP / 2; o > 0; o /= 2) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ static float warp_max(float v) {
    for (int o = WARP / 2; o > 0; o /= 2) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

/* f32, bf16 or f16 values read as f32, and f32 values stored as one of them (rounded to nearest). */
__device__ static float as_float(float x) { return x; }
__device__ static float as_float(__nv_bfloat16 x) { return __bfloat162float(x); }
__device__ static float as_float(__half x) { return __half2float(x); }
__device__ static void store_as(float *p, float x) { *p = x; }
__device__ static void store_as(__nv_bfloat16 *p, float x) { *p = __float2bfloat16(x); }
__device__ static void store_as(__half *p, float x) { *p = __float2half(x); }

/* Sum over the block (THREADS threads); every thread gets the total. */
__device__ static float block_sum(float v, float *shared /* [WARP] */) {
    int lane = threadIdx.x % WARP, warp = threadIdx.x / WARP;
    v = warp_sum(v);
    __syncthreads(); /* shared may still be read by a previous call */
    if (lane == 0) shared[warp] = v;
    __syncthreads();
    float t = lane < THREADS / WARP ? shared[lane] : 0.0f;
    return warp_sum(t);
}

/* ---- norms: one block per row ---- */

template <typename OUT>
__global__ static void norm_kernel(const float *in, OUT *out, const float *w, const float *b, int width, int64_t stride,
                                   bool layer, float eps, float div) {
    __shared__ float red[WARP];
    const float *x = in + blockIdx.x * stride;
    OUT *y = out + blockIdx.x * stride;
    float mean = 0;
    if (layer) {
        float s = 0;
        for (int i = threadIdx.x; i < width; i += THREADS) s += x[i];
        mean = block_sum(s, red) / div;
    }
    float sq = 0;
    for (int i = threadIdx.x; i < width; i += THREADS) sq += (x[i] - mean) * (x[i] - mean);
    float inv = rsqrtf(block_sum(sq, red) / div + eps);
    /* every thread has read its x values before any writes y (in place is allowed): block_sum synchronised */
    for (int i = threadIdx.x; i < width; i += THREADS) store_as(y + i, (x[i] - mean) * inv * w[i] + (b ? b[i] : 0.0f));
}

int k_norm(const float *in, float *out, const float *w, const float *b, int64_t n_rows, int width, int64_t stride,
           bool layer, float eps, float div, sb_err *err) {
    if (n_rows == 0) return SB_OK;
    if (n_rows > INT32_MAX) return sb_err_set(err, SB_EINTERNAL, "norm over %lld rows", (long long)n_rows);
    norm_kernel<<<(unsigned)n_rows, THREADS>>>(in, out, w, b, width, stride, layer, eps, div);
    return cuda_launched("norm", err);
}

int k_norm_to_half(const float *in, void *out16, bool bf16, const float *w, const float *b, int64_t n_rows, int width,
                   bool layer, float eps, float div, sb_err *err) {
    if (n_rows == 0) return SB_OK;
    if (n_rows > INT32_MAX) return sb_err_set(err, SB_EINTERNAL, "norm over %lld rows", (long long)n_rows);
    if (bf16)
        norm_kernel<<<(unsigned)n_rows, THREADS>>>(in, (__nv_bfloat16 *)out16, w, b, width, width, layer, eps, div);
    else
        norm_kernel<<<(unsigned)n_rows, THREADS>>>(in, (__half *)out16, w, b, width, width, layer, eps, div);
    return cuda_launched("norm", err);
}

/* ---- rotary: one thread per (row, head, pair) ---- */

/* blockIdx.y is the row (at most 65,535 per launch: the launcher loops),
 * threads of the x blocks cover (head, pair) within it, so the index
 * arithmetic is 32-bit but for the row's position. */
__global__ static void rope_kernel(float *x, int64_t row0, int n_heads, int head_dim, int half, bool pairs,
                                   const float *inv_freq, int n_past, int n_tok) {
    int k = blockIdx.x * THREADS + threadIdx.x; /* head * half + i */
    if (k >= n_heads * half) return;
    int64_t row = row0 + blockIdx.y;
    int i = k % half;
    int64_t rh = row * n_heads + k / half;
    double pos = n_past + (int)(row % n_tok);
    float angle = (float)(pos * (double)inv_freq[i]); /* as forward.c builds its table */
    float c = cosf(angle), s = sinf(angle);
    float *h = x + rh * head_dim;
    int ia = pairs ? 2 * i : i, ib = pairs ? 2 * i + 1 : i + half;
    float a = h[ia], b = h[ib];
    h[ia] = a * c - b * s;
    h[ib] = b * c + a * s;
}

int k_rope(float *x, int64_t R, int n_heads, int head_dim, int rot_dim, bool pairs, const float *inv_freq,
           int n_past, int n_tok, sb_err *err) {
    int half = rot_dim / 2;
    if (R == 0 || half == 0) return SB_OK;
    const int64_t MAX_GRID_Y = 65535;
    for (int64_t row0 = 0; row0 < R; row0 += MAX_GRID_Y) {
        unsigned rows = (unsigned)(R - row0 < MAX_GRID_Y ? R - row0 : MAX_GRID_Y);
        rope_kernel<<<dim3(blocks_for((int64_t)n_heads * half), rows), THREADS>>>(x, row0, n_heads, head_dim, half, pairs,
                                                                                  inv_freq, n_past, n_tok);
        int rc = cuda_launched("rope", err);
        if (rc) return rc;
    }
    return SB_OK;
}

/* ---- element-wise ---- */

__device__ static float activate(int act, float x) {
    switch (act) {
    case SB_ACT_SILU: return x / (1.0f + expf(-x));
    case SB_ACT_GELU: return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f));
    case SB_ACT_GELU_TANH: return 0.5f * x * (1.0f + tanhf(0.79788456080286536f * (x + 0.044715f * x * x * x)));
    case SB_ACT_RELU: return x > 0 ? x : 0;
    }
    return x;
}

__global__ static void act_kernel(float *a, const float *mul, int64_t n, int act) {
    int64_t i = (int64_t)blockIdx.x * THREADS + threadIdx.x;
    if (i >= n) return;
    float v = activate(act, a[i]);
    a[i] = mul ? v * mul[i] : v;
}

__global__ static void act_half_kernel(const float *a, const float *mul, int64_t n, int act, void *out, bool bf16) {
    int64_t i = (int64_t)blockIdx.x * THREADS + threadIdx.x;
    if (i >= n) return;
    float v = activate(act, a[i]);
    if (mul) v *= mul[i];
    if (bf16) ((__nv_bfloat16 *)out)[i] = __float2bfloat16(v);
    else ((__half *)out)[i] = __float2half(v);
}

int k_activate_to_half(const float *a, const float *mul, int64_t n, int act, void *out16, bool bf16, sb_err *err) {
    if (n == 0) return SB_OK;
    act_half_kernel<<<blocks_for(n), THREADS>>>(a, mul, n, act, out16, bf16);
    return cuda_launched("activation to 16-bit", err);
}

int k_activate(float *a, const float *mul, int64_t n, int act, sb_err *err) {
    if (n == 0) return SB_OK;
    act_kernel<<<blocks_for(n), THREADS>>>(a, mul, n, act);
    return cuda_launched("activation", err);
}

__global__ static void add_kernel(float *x, const float *y, int64_t n) {
    int64_t i = (int64_t)blockIdx.x * THREADS + threadIdx.x;
    if (i < n) x[i] += y[i];
}

int k_add(float *x, const float *y, int64_t n, sb_err *err) {
    if (n == 0) return SB_OK;
    add_kernel<<<blocks_for(n), THREADS>>>(x, y, n);
    return cuda_launched("add", err);
}

__global__ static void bias_kernel(float *y, const float *bias, int64_t n, int64_t rows) {
    int64_t i = (int64_t)blockIdx.x * THREADS + threadIdx.x;
    if (i < n) y[i] += bias[i % rows];
}

int k_add_bias(float *y, const float *bias, int64_t R, int64_t rows, sb_err *err) {
    int64_t n = R * rows;
    if (n == 0) return SB_OK;
    bias_kernel<<<blocks_for(n), THREADS>>>(y, bias, n, rows);
    return cuda_launched("bias", err);
}

__global__ static void softcap_kernel(float *x, int64_t n, float cap) {
    int64_t i = (int64_t)blockIdx.x * THREADS + threadIdx.x;
    if (i < n) x[i] = cap * tanhf(x[i] / cap);
}

int k_softcap(float *x, int64_t n, float cap, sb_err *err) {
    if (n == 0) return SB_OK;
    softcap_kernel<<<blocks_for(n), THREADS>>>(x, n, cap);
    return cuda_launched("softcap", err);
}

__global__ static void to_half_kernel(const float *x, void *out, int64_t n, bool bf16) {
    int64_t i = (int64_t)blockIdx.x * THREADS + threadIdx.x;
    if (i >= n) return;
    if (bf16) ((__nv_bfloat16 *)out)[i] = __float2bfloat16(x[i]);
    else ((__half *)out)[i] = __float2half(x[i]);
}

int k_to_half(const float *x, void *out, int64_t n, bool bf16, sb_err *err) {
    if (n == 0) return SB_OK;
    to_half_kernel<<<blocks_for(n), THREADS>>>(x, out, n, bf16);
    return cuda_launched("convert to 16-bit", err);
}

/* ---- embedding lookup: one thread per output value ---- */

__device__ static float dense_at(const void *w, int kind, int64_t i) {
    if (kind == DW_BF16) return __bfloat162float(((const __nv_bfloat16 *)w)[i]);
    if (kind == DW_F16) return __half2float(((const __half *)w)[i]);
    return ((const float *)w)[i];
}

__global__ static void embed_kernel(const void *E, int kind, const int32_t *tokens, int64_t n, int d, float scale,
                                    const float *pos, int pos_offset, int n_past, int n_tok, float *x) {
    int64_t i = (int64_t)blockIdx.x * THREADS + threadIdx.x;
    if (i >= n) return;
    int64_t r = i / d;
    int c = (int)(i % d);
    float v = dense_at(E, kind, (int64_t)tokens[r] * d + c);
    if (scale != 1.0f) v *= scale;
    if (pos) v += pos[(int64_t)(n_past + (int)(r % n_tok) + pos_offset) * d + c];
    x[i] = v;
}

int k_embed(const dev_linear *E, const int32_t *tokens, int64_t R, int d, float scale, const float *pos,
            int pos_offset, int n_past, int n_tok, float *x, sb_err *err) {
    int64_t n = R * d;
    if (n == 0) return SB_OK;
    embed_kernel<<<blocks_for(n), THREADS>>>(E->w, E->kind, tokens, n, d, scale, pos, pos_offset, n_past, n_tok, x);
    return cuda_launched("embedding", err);
}

/* ---- the KV cache ----
 * Its dtype is the attention's precision (attn_args.precision): f32 for f32
 * and compressed models, bf16 or f16 for 16-bit ones. The tensor-core kernel
 * rounds keys and values to 16 bits anyway, so storing them rounded gives the
 * same numbers at half the traffic; the f32 kernels below read either. */

/* Row r = seq * n_tok + t of k and v [R, kvd] to position n_past + t of sequence seq. */
template <typename KV>
__global__ static void store_kv_kernel(const float *k, const float *v, KV *k_cache, KV *v_cache, int64_t n, int n_tok,
                                       int n_past, int max_ctx, int kvd) {
    int64_t i = (int64_t)blockIdx.x * THREADS + threadIdx.x;
    if (i >= n) return;
    int64_t r = i / kvd;
    int seq = (int)(r / n_tok), t = (int)(r % n_tok);
    int64_t at = ((int64_t)seq * max_ctx + n_past + t) * kvd + i % kvd;
    store_as(k_cache + at, k[i]);
    store_as(v_cache + at, v[i]);
}

int k_store_kv(const float *k, const float *v, void *k_cache, void *v_cache, int precision, int n_seq, int n_tok,
               int n_past, int max_ctx, int kvd, sb_err *err) {
    int64_t n = (int64_t)n_seq * n_tok * kvd;
    if (n == 0) return SB_OK;
    if (precision == ATTN_BF16)
        store_kv_kernel<<<blocks_for(n), THREADS>>>(k, v, (__nv_bfloat16 *)k_cache, (__nv_bfloat16 *)v_cache, n, n_tok,
                                                    n_past, max_ctx, kvd);
    else if (precision == ATTN_F16)
        store_kv_kernel<<<blocks_for(n), THREADS>>>(k, v, (__half *)k_cache, (__half *)v_cache, n, n_tok, n_past,
                                                    max_ctx, kvd);
    else
        store_kv_kernel<<<blocks_for(n), THREADS>>>(k, v, (float *)k_cache, (float *)v_cache, n, n_tok, n_past, max_ctx,
                                                    kvd);
    return cuda_launched("KV-cache store", err);
}

size_t k_kv_element_bytes(int precision) { return precision == ATTN_F32 ? sizeof(float) : 2; }

/* ---- causal attention ----
 * One warp per (row, head), row = seq * n_tok + t at position n_past + t.
 * Keys are taken 32 at a time, one per lane: each lane's dot product with
 * the query (held in shared memory), then an online softmax over the chunk
 * (running max m and sum l, as in FlashAttention), then every lane adds the
 * chunk's probability-weighted values into its slice of the output
 * (dimensions lane, lane + 32, ...). Nothing of size T x T exists. */
enum { ATTN_WARPS = 4, ATTN_SLICE = ATTN_MAX_HEAD_DIM / WARP };

template <typename KV> __global__ static void attention_kernel(attn_args a) {
    __shared__ float qs[ATTN_WARPS][ATTN_MAX_HEAD_DIM];
    int warp = threadIdx.x / WARP, lane = threadIdx.x % WARP;
    int64_t task = (int64_t)blockIdx.x * ATTN_WARPS + warp; /* row * n_head + h */
    int64_t R = (int64_t)a.n_seq * a.n_tok;
    if (task >= R * a.n_head) return; /* the whole warp leaves together */
    int h = (int)(task % a.n_head);
    int64_t row = task / a.n_head;
    int seq = (int)(row / a.n_tok), t = (int)(row % a.n_tok);
    int hd = a.head_dim, kvd = a.n_kv_head * hd;
    int kvh = h / (a.n_head / a.n_kv_head);
    int p = a.n_past + t;
    int lo = a.window > 0 && p - a.window + 1 > 0 ? p - a.window + 1 : 0;
    int hi = a.bidirectional ? a.n_past + a.n_tok - 1 : p; /* visible keys: [lo, hi] */
    const float *q = a.q + row * a.n_head * hd + (int64_t)h * hd;
    for (int i = lane; i < hd; i += WARP) qs[warp][i] = q[i];
    __syncwarp();
    const KV *K = (const KV *)a.k_cache + (int64_t)seq * a.max_ctx * kvd + kvh * hd;
    const KV *V = (const KV *)a.v_cache + (int64_t)seq * a.max_ctx * kvd + kvh * hd;
    float acc[ATTN_SLICE];
    for (int j = 0; j < ATTN_SLICE; j++) acc[j] = 0;
    float m = -INFINITY, l = 0;
    for (int k0 = lo; k0 <= hi; k0 += WARP) {
        int k = k0 + lane;
        float s = -INFINITY;
        if (k <= hi) {
            const KV *kr = K + (int64_t)k * kvd;
            float dot = 0;
            for (int i = 0; i < hd; i++) dot += qs[warp][i] * as_float(kr[i]);
            s = dot * a.scale;
            if (a.softcap > 0) s = a.softcap * tanhf(s / a.softcap);
        }
        float m_new = fmaxf(m, warp_max(s)); /* finite: key k0 <= hi is in every chunk */
        float corr = expf(m - m_new);        /* 0 on the first chunk (m = -inf) */
        float pk = k <= hi ? expf(s - m_new) : 0.0f;
        l = l * corr + warp_sum(pk);
        for (int j = 0; j < ATTN_SLICE; j++) acc[j] *= corr;
        int n_keys = hi - k0 + 1 < WARP ? hi - k0 + 1 : WARP;
        for (int kk = 0; kk < n_keys; kk++) {
            float pkk = __shfl_sync(0xffffffffu, pk, kk);
            const KV *vr = V + (int64_t)(k0 + kk) * kvd;
            for (int j = 0; j < ATTN_SLICE; j++) {
                int i = lane + j * WARP;
                if (i < hd) acc[j] += pkk * as_float(vr[i]);
            }
        }
        m = m_new;
    }
    float *out = a.out + row * a.n_head * hd + (int64_t)h * hd;
    for (int j = 0; j < ATTN_SLICE; j++) {
        int i = lane + j * WARP;
        if (i < hd) out[i] = acc[j] / l;
    }
}

/* Many queries: one block per (sequence, head, tile of TILE_Q consecutive
 * queries), one warp per query. The block loads each tile of TILE_K keys and
 * values into shared memory once (coalesced) for all its queries, so the
 * cache is read TILE_Q times less than with a warp of its own per query;
 * each warp then does what attention_kernel does for its query, over the
 * keys of the tile it may see. Keys are stored with a stride of hd + 1
 * floats so the lanes (one key each) read different banks. */
enum { TILE_Q = 16, TILE_K = WARP };

static size_t tiled_shared_bytes(int hd) {
    return sizeof(float) * ((size_t)TILE_K * (hd + 1) + (size_t)TILE_K * hd + (size_t)TILE_Q * hd);
}

__device__ static int first_visible(int p, int window) { return window > 0 && p - window + 1 > 0 ? p - window + 1 : 0; }

/* SLICES = ceil(hd / 32) rounded up to 1, 2, 4 or 8: the output dimensions
 * each lane holds, a compile-time count so the accumulators stay in
 * registers without idle iterations for small heads. */
template <typename KV, int SLICES> __global__ static void attention_tiled_kernel(attn_args a) {
    extern __shared__ float smem[];
    int hd = a.head_dim, kvd = a.n_kv_head * hd, ks_stride = hd + 1;
    float *ks = smem, *vs = ks + TILE_K * ks_stride, *qs = vs + TILE_K * hd; /* [TILE_K][hd+1], [TILE_K][hd], [TILE_Q][hd] */
    int warp = threadIdx.x / WARP, lane = threadIdx.x % WARP;
    int n_qtiles = (a.n_tok + TILE_Q - 1) / TILE_Q;
    int qtile = blockIdx.x % n_qtiles, h = (blockIdx.x / n_qtiles) % a.n_head, seq = blockIdx.x / (n_qtiles * a.n_head);
    int kvh = h / (a.n_head / a.n_kv_head);
    int t0 = qtile * TILE_Q, t = t0 + warp;
    bool active = t < a.n_tok;
    int t_last = (t0 + TILE_Q < a.n_tok ? t0 + TILE_Q : a.n_tok) - 1;
    /* keys any query of the block sees: the same for every thread, so the loop below is block-uniform */
    int blk_lo = first_visible(a.n_past + t0, a.window);
    int blk_hi = a.bidirectional ? a.n_past + a.n_tok - 1 : a.n_past + t_last;
    int p = a.n_past + t, lo = first_visible(p, a.window);
    int hi = a.bidirectional ? a.n_past + a.n_tok - 1 : p; /* this query's visible keys: [lo, hi] */
    int64_t row = (int64_t)seq * a.n_tok + t;
    if (active)
        for (int i = lane; i < hd; i += WARP) qs[warp * hd + i] = a.q[row * a.n_head * hd + (int64_t)h * hd + i];
    const KV *K = (const KV *)a.k_cache + (int64_t)seq * a.max_ctx * kvd + kvh * hd;
    const KV *V = (const KV *)a.v_cache + (int64_t)seq * a.max_ctx * kvd + kvh * hd;
    float acc[SLICES];
    for (int j = 0; j < SLICES; j++) acc[j] = 0;
    float m = -INFINITY, l = 0;
    for (int k0 = blk_lo; k0 <= blk_hi; k0 += TILE_K) {
        int nk = blk_hi - k0 + 1 < TILE_K ? blk_hi - k0 + 1 : TILE_K;
        __syncthreads(); /* every warp is done with the previous tile (and qs is written) */
        for (int idx = threadIdx.x; idx < nk * hd; idx += blockDim.x) {
            int kk = idx / hd, i = idx % hd;
            ks[kk * ks_stride + i] = as_float(K[(int64_t)(k0 + kk) * kvd + i]);
            vs[kk * hd + i] = as_float(V[(int64_t)(k0 + kk) * kvd + i]);
        }
        __syncthreads();
        /* this query's visible keys in the tile: [first, last], the same for the whole warp */
        int first = k0 > lo ? k0 : lo, last = k0 + nk - 1 < hi ? k0 + nk - 1 : hi;
        if (!active || first > last) continue; /* no key here: nothing to add (and m stays finite once set) */
        int k = k0 + lane;
        bool vis = k >= first && k <= last;
        float s = -INFINITY;
        if (vis) {
            const float *kr = ks + lane * ks_stride, *qr = qs + warp * hd;
            float dot = 0;
            for (int i = 0; i < hd; i++) dot += qr[i] * kr[i];
            s = dot * a.scale;
            if (a.softcap > 0) s = a.softcap * tanhf(s / a.softcap);
        }
        float m_new = fmaxf(m, warp_max(s)); /* finite: at least one key is visible */
        float corr = expf(m - m_new);
        float pk = vis ? expf(s - m_new) : 0.0f;
        l = l * corr + warp_sum(pk);
        for (int j = 0; j < SLICES; j++) acc[j] *= corr;
        for (int kk = first - k0; kk <= last - k0; kk++) {
            float pkk = __shfl_sync(0xffffffffu, pk, kk);
            const float *vr = vs + kk * hd;
            for (int j = 0; j < SLICES; j++) {
                int i = lane + j * WARP;
                if (i < hd) acc[j] += pkk * vr[i];
            }
        }
        m = m_new;
    }
    if (!active) return;
    float *out = a.out + row * a.n_head * hd + (int64_t)h * hd;
    for (int j = 0; j < SLICES; j++) {
        int i = lane + j * WARP;
        if (i < hd) out[i] = acc[j] / l;
    }
}

enum { FEW_QUERIES = 4 }; /* up to this many tokens per call (decoding): a warp per query, no tiles */

template <typename KV, int SLICES> static int launch_tiled(const attn_args *a, sb_err *err) {
    size_t shared = tiled_shared_bytes(a->head_dim);
    cudaError_t e = cudaFuncSetAttribute(attention_tiled_kernel<KV, SLICES>,
                                         cudaFuncAttributeMaxDynamicSharedMemorySize, (int)shared);
    if (e != cudaSuccess) {
        cudaGetLastError();
        return sb_err_set(err, SB_EINTERNAL, "attention: %zu bytes of shared memory per block refused: %s", shared,
                          cudaGetErrorString(e));
    }
    int64_t blocks = (int64_t)a->n_seq * a->n_head * ((a->n_tok + TILE_Q - 1) / TILE_Q);
    attention_tiled_kernel<KV, SLICES><<<(unsigned)blocks, TILE_Q * WARP, shared>>>(*a);
    return cuda_launched("tiled attention", err);
}

bool k_attention_uses_mma(const attn_args *a) {
    size_t shared = k_attention_mma_shared_bytes(a->head_dim);
    return a->precision != ATTN_F32 && a->n_tok > FEW_QUERIES && shared > 0 && shared <= (size_t)a->max_shared;
}

/* The f32 kernels for a cache of type KV: a warp per query for decoding, tiles otherwise. */
template <typename KV> static int attention_f32(const attn_args *a, int64_t tasks, sb_err *err) {
    if (a->n_tok <= FEW_QUERIES) {
        unsigned grid = (unsigned)((tasks + ATTN_WARPS - 1) / ATTN_WARPS);
        attention_kernel<KV><<<grid, ATTN_WARPS * WARP>>>(*a);
        return cuda_launched("attention", err);
    }
    int slices = (a->head_dim + WARP - 1) / WARP;
    if (slices <= 1) return launch_tiled<KV, 1>(a, err);
    if (slices <= 2) return launch_tiled<KV, 2>(a, err);
    if (slices <= 4) return launch_tiled<KV, 4>(a, err);
    return launch_tiled<KV, ATTN_SLICE>(a, err);
}

int k_attention(const attn_args *a, sb_err *err) {
    if (a->head_dim > ATTN_MAX_HEAD_DIM)
        return sb_err_set(err, SB_EINPUT, "head_dim %d: the CUDA attention kernel takes up to %d", a->head_dim,
                          ATTN_MAX_HEAD_DIM);
    int64_t tasks = (int64_t)a->n_seq * a->n_tok * a->n_head;
    if (tasks == 0) return SB_OK;
    if (k_attention_uses_mma(a)) return k_attention_mma(a, err);
    if (a->precision == ATTN_BF16) return attention_f32<__nv_bfloat16>(a, tasks, err);
    if (a->precision == ATTN_F16) return attention_f32<__half>(a, tasks, err);
    return attention_f32<float>(a, tasks, err);
}

/* ---- qint (layout in format_qint.h) ---- */

/* The payload's arrays, as device pointers. */
typedef struct qint_dev {
    const uint8_t *base;
    sb_qint_layout L;
} qint_dev;

__device__ static const uint8_t *qint_row(const qint_dev &q, int64_t r) {
    const uint64_t *words = (const uint64_t *)(q.base + q.L.codes_off);
    if (q.L.bits) return (const uint8_t *)(words + r * q.L.row_words);
    const uint64_t *row_off = (const uint64_t *)(q.base + q.L.row_off_off);
    return (const uint8_t *)(words + row_off[r]);
}

__device__ static int qint_width(const qint_dev &q, int64_t r, int g) {
    if (q.L.bits) return q.L.bits;
    int64_t i = r * q.L.n_groups + g;
    uint8_t byte = (q.base + q.L.group_bits_off)[i / 2];
    return i % 2 ? byte >> 4 : byte & 0xf;
}

__device__ static float qint_scale(const qint_dev &q, int64_t r, int g) {
    return __half2float(((const __half *)(q.base + q.L.scales_off))[r * q.L.n_groups + g]);
}

__device__ static float qint_zero(const qint_dev &q, int64_t r, int g, int b) {
    if (q.L.symmetric) return (float)(1 << (b - 1));
    return __half2float(((const __half *)(q.base + q.L.zeros_off))[r * q.L.n_groups + g]);
}

/* The b-bit code at bit pos of a row: two bytes always hold it (pos % 8 + b <= 15);
 * the guard word after the last row keeps the second byte inside the payload. */
__device__ static unsigned qint_code(const uint8_t *row, uint64_t pos, int b) {
    unsigned v = row[pos / 8] | (unsigned)row[pos / 8 + 1] << 8;
    return (v >> (pos % 8)) & ((1u << b) - 1);
}

/* One block per row: the bit offsets where the row's groups start go to
 * shared memory (a running sum of widths, by thread 0), then the threads
 * decode the row's values in order, coalesced. */
__global__ static void qint_decode_kernel(qint_dev q, int64_t row0, float *tile) {
    extern __shared__ uint64_t goff[]; /* [n_groups] */
    int64_t r = row0 + blockIdx.x;
    int gs = q.L.group_size, ng = q.L.n_groups;
    if (threadIdx.x == 0) {
        uint64_t off = 0;
        for (int g = 0; g < ng; g++) {
            goff[g] = off;
            off += (uint64_t)qint_width(q, r, g) * gs;
        }
    }
    __syncthreads();
    const uint8_t *row = qint_row(q, r);
    float *out = tile + (int64_t)blockIdx.x * q.L.cols;
    for (int64_t c = threadIdx.x; c < q.L.cols; c += THREADS) {
        int g = (int)(c / gs);
        int b = qint_width(q, r, g);
        unsigned code = qint_code(row, goff[g] + (uint64_t)(c - (int64_t)g * gs) * b, b);
        out[c] = qint_scale(q, r, g) * ((float)code - qint_zero(q, r, g, b));
    }
}

int k_qint_decode(const dev_linear *w, int64_t row0, int64_t n_rows, float *tile, sb_err *err) {
    if (n_rows == 0) return SB_OK;
    qint_dev q = {(const uint8_t *)w->w, w->q};
    size_t shared = sizeof(uint64_t) * (size_t)w->q.n_groups;
    if (shared > 48 * 1024)
        return sb_err_set(err, SB_EINPUT, "qint layer with %d groups per row: the CUDA decoder takes up to %d",
                          w->q.n_groups, 48 * 1024 / 8);
    qint_decode_kernel<<<(unsigned)n_rows, THREADS, shared>>>(q, row0, tile);
    return cuda_launched("qint decode", err);
}

/* One warp per output row: the groups in order, the lanes over a group's
 * codes; per group the lanes sum (q - zero)·x, then one multiply by the
 * group's scale, as the CPU's fused kernel does. */
enum { GEMV_WARPS = 4 };

__global__ static void qint_gemv_kernel(qint_dev q, const float *x, int R, float *y) {
    int warp = threadIdx.x / WARP, lane = threadIdx.x % WARP;
    int64_t r = (int64_t)blockIdx.x * GEMV_WARPS + warp;
    if (r >= q.L.rows) return;
    const uint8_t *row = qint_row(q, r);
    int gs = q.L.group_size;
    int64_t cols = q.L.cols;
    float acc[QINT_GEMV_MAX_ROWS] = {0, 0, 0, 0};
    uint64_t off = 0;
    for (int g = 0; g < q.L.n_groups; g++) {
        int b = qint_width(q, r, g);
        float zero = qint_zero(q, r, g, b), scale = qint_scale(q, r, g);
        float part[QINT_GEMV_MAX_ROWS] = {0, 0, 0, 0};
        for (int i = lane; i < gs; i += WARP) {
            float v = (float)qint_code(row, off + (uint64_t)i * b, b) - zero;
            int64_t c = (int64_t)g * gs + i;
            for (int t = 0; t < R; t++) part[t] += v * x[t * cols + c];
        }
        for (int t = 0; t < R; t++) acc[t] += scale * part[t];
        off += (uint64_t)b * gs;
    }
    for (int t = 0; t < R; t++) {
        float s = warp_sum(acc[t]);
        if (lane == 0) y[(int64_t)t * q.L.rows + r] = s;
    }
}

int k_qint_gemv(const dev_linear *w, const float *x, int R, float *y, sb_err *err) {
    if (R < 1 || R > QINT_GEMV_MAX_ROWS)
        return sb_err_set(err, SB_EINTERNAL, "qint GEMV on %d rows (1 to %d)", R, QINT_GEMV_MAX_ROWS);
    qint_dev q = {(const uint8_t *)w->w, w->q};
    unsigned grid = (unsigned)((w->rows + GEMV_WARPS - 1) / GEMV_WARPS);
    qint_gemv_kernel<<<grid, GEMV_WARPS * WARP>>>(q, x, R, y);
    return cuda_launched("qint GEMV", err);
}

/* ---- sparse: csr and n:m (layout in format_sparse.h) ---- */

typedef struct sparse_dev {
    const uint8_t *base;
    sb_sparse_layout L;
    int64_t rows, cols;
} sparse_dev;

/* Stored entries [*k0, *k1) of row r; entry k's column and value. */
__device__ static void sparse_row_range(const sparse_dev &s, int64_t r, int64_t *k0, int64_t *k1) {
    if (s.L.nm) {
        int64_t per_row = s.cols / s.L.m * s.L.n;
        *k0 = r * per_row;
        *k1 = *k0 + per_row;
        return;
    }
    const uint32_t *row_ptr = (const uint32_t *)(s.base + s.L.row_ptr_off);
    *k0 = row_ptr[r];
    *k1 = row_ptr[r + 1];
}

/* n:m: entry e of a row's position stream, pb <= 8 bits, never past the row's bytes. */
__device__ static unsigned nm_pos(const uint8_t *stream, uint64_t row_bytes, int64_t e, int pb) {
    uint64_t bit = (uint64_t)e * (uint64_t)pb, byte = bit / 8;
    unsigned word = stream[byte] | (byte + 1 < row_bytes ? (unsigned)stream[byte + 1] << 8 : 0u);
    return (word >> (bit % 8)) & ((1u << pb) - 1);
}

__device__ static int64_t sparse_col(const sparse_dev &s, int64_t r, int64_t k) {
    if (s.L.nm) {
        int64_t e = k - r * (s.cols / s.L.m * s.L.n); /* entry within the row */
        const uint8_t *stream = s.base + s.L.index_off + (uint64_t)r * s.L.pos_row_bytes;
        return e / s.L.n * s.L.m + nm_pos(stream, s.L.pos_row_bytes, e, s.L.pos_bits);
    }
    const uint8_t *idx = s.base + s.L.index_off;
    return s.L.index_bytes == 2 ? ((const uint16_t *)idx)[k] : ((const uint32_t *)idx)[k];
}

__device__ static float sparse_value(const sparse_dev &s, int64_t k) { return ((const float *)(s.base + s.L.values_off))[k]; }

/* One block per row: zeros, then the stored values at their columns (distinct within a row). */
__global__ static void sparse_decode_kernel(sparse_dev s, int64_t row0, float *tile) {
    int64_t r = row0 + blockIdx.x;
    float *out = tile + (int64_t)blockIdx.x * s.cols;
    for (int64_t c = threadIdx.x; c < s.cols; c += THREADS) out[c] = 0;
    __syncthreads();
    int64_t k0, k1;
    sparse_row_range(s, r, &k0, &k1);
    for (int64_t k = k0 + threadIdx.x; k < k1; k += THREADS) out[sparse_col(s, r, k)] = sparse_value(s, k);
}

static sparse_dev sparse_of(const dev_linear *w) { return (sparse_dev){(const uint8_t *)w->w, w->sp, w->rows, w->cols}; }

int k_sparse_decode(const dev_linear *w, int64_t row0, int64_t n_rows, float *tile, sb_err *err) {
    if (n_rows == 0) return SB_OK;
    sparse_decode_kernel<<<(unsigned)n_rows, THREADS>>>(sparse_of(w), row0, tile);
    return cuda_launched("sparse decode", err);
}

/* One warp per output row, the lanes over its stored entries. */
__global__ static void sparse_gemv_kernel(sparse_dev s, const float *x, int R, float *y) {
    int warp = threadIdx.x / WARP, lane = threadIdx.x % WARP;
    int64_t r = (int64_t)blockIdx.x * GEMV_WARPS + warp;
    if (r >= s.rows) return;
    int64_t k0, k1;
    sparse_row_range(s, r, &k0, &k1);
    float acc[QINT_GEMV_MAX_ROWS] = {0, 0, 0, 0};
    for (int64_t k = k0 + lane; k < k1; k += WARP) {
        float v = sparse_value(s, k);
        int64_t c = sparse_col(s, r, k);
        for (int t = 0; t < R; t++) acc[t] += v * x[t * s.cols + c];
    }
    for (int t = 0; t < R; t++) {
        float sum = warp_sum(acc[t]);
        if (lane == 0) y[(int64_t)t * s.rows + r] = sum;
    }
}

int k_sparse_gemv(const dev_linear *w, const float *x, int R, float *y, sb_err *err) {
    if (R < 1 || R > QINT_GEMV_MAX_ROWS)
        return sb_err_set(err, SB_EINTERNAL, "sparse GEMV on %d rows (1 to %d)", R, QINT_GEMV_MAX_ROWS);
    unsigned grid = (unsigned)((w->rows + GEMV_WARPS - 1) / GEMV_WARPS);
    sparse_gemv_kernel<<<grid, GEMV_WARPS * WARP>>>(sparse_of(w), x, R, y);
    return cuda_launched("sparse GEMV", err);
}
