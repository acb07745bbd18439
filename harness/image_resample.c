/* image_resample.c - PIL's Image.resize for 8-bit images, reproduced bit
 * for bit, because Hugging Face's slow image processors (ViTImageProcessor
 * and DeiTImageProcessor with use_fast=False; the "...Pil" processors of
 * transformers 5) resize through PIL and a model's accuracy is measured on
 * those pixels.  The fast (torchvision) processors resize differently and
 * are NOT what this reproduces.
 *
 * Algorithm (Pillow, src/libImaging/Resample.c): separable, horizontal pass
 * then vertical pass, each skipped when that size does not change.  Output
 * sample i is centred at (i + 0.5) * scale in the input; when shrinking
 * (scale > 1) the filter is stretched by the scale, which is the
 * antialiasing.  Each output's weights are normalised to sum 1, turned into
 * 22-bit fixed-point integers (rounded half away from zero), accumulated
 * with a rounding offset of 2^21, shifted down and clamped to 0..255, so
 * the intermediate image between the passes is uint8 as in PIL. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "vision.h"

enum { PRECISION_BITS = 32 - 8 - 2 };

static double filter_bilinear(double x) {
    x = fabs(x);
    return x < 1.0 ? 1.0 - x : 0.0;
}

/* Keys' cubic convolution with a = -0.5, PIL's BICUBIC. */
static double filter_bicubic(double x) {
    const double a = -0.5;
    x = fabs(x);
    if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
    if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
    return 0.0;
}

/* PIL's NEAREST is not a convolution; unused by the processors we load but
 * kept as a 0.5-support box so the code path is total. */
static double filter_box(double x) { return x > -0.5 && x <= 0.5 ? 1.0 : 0.0; }

typedef struct {
    double (*fn)(double);
    double support;
} filter_def;

static filter_def filter_for(sb_resample r) {
    switch (r) {
    case SB_RESAMPLE_BICUBIC: return (filter_def){filter_bicubic, 2.0};
    case SB_RESAMPLE_BILINEAR: return (filter_def){filter_bilinear, 1.0};
    case SB_RESAMPLE_NEAREST: break;
    }
    return (filter_def){filter_box, 0.5};
}

/* Per output sample: the first input index, the number of taps and the
 * fixed-point weights [out_size][ksize]. */
typedef struct {
    int ksize;
    int *first, *count;
    int32_t *w;
} taps;

static void taps_free(taps *t) {
    free(t->first);
    free(t->count);
    free(t->w);
}

static int taps_build(int in_size, int out_size, filter_def f, taps *t, sb_err *err) {
    double scale = (double)in_size / out_size, fscale = scale < 1.0 ? 1.0 : scale;
    double support = f.support * fscale;
    t->ksize = (int)ceil(support) * 2 + 1;
    t->first = sb_malloc(err, sizeof(int) * (size_t)out_size);
    t->count = sb_malloc(err, sizeof(int) * (size_t)out_size);
    t->w = sb_calloc(err, (size_t)out_size * (size_t)t->ksize, sizeof(int32_t));
    double *k = sb_malloc(err, sizeof(double) * (size_t)t->ksize);
    if (!t->first || !t->count || !t->w || !k) {
        free(k);
        taps_free(t);
        return SB_EINTERNAL;
    }
    for (int o = 0; o < out_size; o++) {
        double center = (o + 0.5) * scale, sum = 0;
        int lo = (int)(center - support + 0.5), hi = (int)(center + support + 0.5); /* truncation, as PIL */
        if (lo < 0) lo = 0;
        if (hi > in_size) hi = in_size;
        int n = hi - lo;
        for (int x = 0; x < n; x++) sum += k[x] = f.fn((x + lo - center + 0.5) / fscale);
        for (int x = 0; x < n; x++) {
            double v = sum != 0.0 ? k[x] / sum : k[x];
            t->w[(int64_t)o * t->ksize + x] = (int32_t)(v < 0 ? -0.5 + v * (1 << PRECISION_BITS) : 0.5 + v * (1 << PRECISION_BITS));
        }
        t->first[o] = lo;
        t->count[o] = n;
    }
    free(k);
    return SB_OK;
}

/* Fixed-point accumulator -> uint8: floor shift, then clamp (PIL's clip8). */
static uint8_t clip8(int32_t acc) {
    int32_t v = acc >> PRECISION_BITS; /* arithmetic shift: floor, as PIL's lookup table index */
    return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

/* One pass along an axis: n_lines lines, each `in_len` samples `step`
 * apart (in units of c-channel pixels), lines `line_stride` apart. */
static void resample_axis(const uint8_t *src, uint8_t *dst, int n_lines, int c, const taps *t, int out_len,
                          int64_t src_line, int64_t src_step, int64_t dst_line, int64_t dst_step) {
    for (int line = 0; line < n_lines; line++)
        for (int o = 0; o < out_len; o++) {
            const int32_t *w = t->w + (int64_t)o * t->ksize;
            for (int ch = 0; ch < c; ch++) {
                int32_t acc = 1 << (PRECISION_BITS - 1);
                const uint8_t *p = src + line * src_line + (int64_t)t->first[o] * src_step + ch;
                for (int x = 0; x < t->count[o]; x++) acc += (int32_t)p[x * src_step] * w[x];
                dst[line * dst_line + o * dst_step + ch] = clip8(acc);
            }
        }
}

int sb_resize_u8(const uint8_t *src, int h, int w, int c, uint8_t *dst, int oh, int ow, sb_resample filter,
                 sb_err *err) {
    if (h < 1 || w < 1 || oh < 1 || ow < 1 || c < 1)
        return sb_err_set(err, SB_EINPUT, "cannot resize a %dx%d image to %dx%d", w, h, ow, oh);
    filter_def f = filter_for(filter);
    taps th = {0}, tv = {0};
    uint8_t *mid = NULL;
    int rc = SB_OK;
    if (ow != w) { /* horizontal: h lines of w pixels -> ow */
        mid = sb_malloc(err, (size_t)h * (size_t)ow * (size_t)c);
        rc = mid ? taps_build(w, ow, f, &th, err) : SB_EINTERNAL;
        if (!rc) resample_axis(src, mid, h, c, &th, ow, (int64_t)w * c, c, (int64_t)ow * c, c);
    }
    const uint8_t *cur = mid ? mid : src;
    if (!rc && oh != h) { /* vertical: ow columns of h pixels -> oh */
        rc = taps_build(h, oh, f, &tv, err);
        if (!rc) resample_axis(cur, dst, ow, c, &tv, oh, c, (int64_t)ow * c, c, (int64_t)ow * c);
    } else if (!rc) {
        memcpy(dst, cur, (size_t)oh * (size_t)ow * (size_t)c);
    }
    taps_free(&th);
    taps_free(&tv);
    free(mid);
    return rc;
}
