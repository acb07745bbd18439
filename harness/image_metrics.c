/* image_metrics.c - MSE, PSNR and Gaussian-window SSIM (see image_metrics.h).
 *
 * SSIM is computed only where scikit-image keeps it: skimage filters the
 * whole image (reflecting at the borders) and then crops (win-1)/2 pixels
 * from every side before averaging, so every surviving window lies inside
 * the image and the border mode never matters. We filter just those
 * positions, separably: rows first (all rows, valid columns), then columns. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "image_metrics.h"

enum { RADIUS = (SB_SSIM_WIN - 1) / 2 };

double sb_image_mse(const sb_image *a, const sb_image *b) {
    size_t n = (size_t)a->width * a->height * a->channels;
    double sum = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a->pixels[i] - (double)b->pixels[i];
        sum += d * d;
    }
    return n ? sum / (double)n : 0.0;
}

double sb_psnr_from_mse(double mse, double data_range) {
    return mse > 0 ? 10.0 * log10(data_range * data_range / mse) : INFINITY;
}

/* scipy.ndimage's Gaussian: exp(-x^2 / 2 sigma^2) for |x| <= radius, normalised to sum 1. */
static void gaussian_taps(double sigma, double *w) {
    double sum = 0;
    for (int i = -RADIUS; i <= RADIUS; i++) sum += w[i + RADIUS] = exp(-0.5 * i * i / (sigma * sigma));
    for (int i = 0; i < SB_SSIM_WIN; i++) w[i] /= sum;
}

/* The five local moments of channel c: x, y, x^2, y^2, xy. */
enum { N_MOM = 5 };

static double moment(const sb_image *a, const sb_image *b, int k, size_t at) {
    double x = a->pixels[at], y = b->pixels[at];
    switch (k) {
    case 0: return x;
    case 1: return y;
    case 2: return x * x;
    case 3: return y * y;
    default: return x * y;
    }
}

/* Mean SSIM of one channel. rows: [N_MOM][h][ow] scratch, ow = w - 2*RADIUS. */
static double ssim_channel(const sb_image *a, const sb_image *b, int c, const double *w, double c1, double c2, double *rows) {
    int h = a->height, wd = a->width, ch = a->channels, ow = wd - 2 * RADIUS, oh = h - 2 * RADIUS;
    for (int k = 0; k < N_MOM; k++)          /* horizontal pass: rows[k][y][x] for valid x */
        for (int y = 0; y < h; y++)
            for (int x = 0; x < ow; x++) {
                double s = 0;
                for (int t = 0; t < SB_SSIM_WIN; t++) s += w[t] * moment(a, b, k, ((size_t)y * wd + x + t) * ch + c);
                rows[((size_t)k * h + y) * ow + x] = s;
            }
    double total = 0;
    for (int y = 0; y < oh; y++)             /* vertical pass and the SSIM formula */
        for (int x = 0; x < ow; x++) {
            double m[N_MOM];
            for (int k = 0; k < N_MOM; k++) {
                double s = 0;
                for (int t = 0; t < SB_SSIM_WIN; t++) s += w[t] * rows[((size_t)k * h + y + t) * ow + x];
                m[k] = s;
            }
            double vx = m[2] - m[0] * m[0], vy = m[3] - m[1] * m[1], vxy = m[4] - m[0] * m[1];
            total += (2 * m[0] * m[1] + c1) * (2 * vxy + c2) / ((m[0] * m[0] + m[1] * m[1] + c1) * (vx + vy + c2));
        }
    return total / ((double)oh * ow);
}

int sb_image_ssim(const sb_image *a, const sb_image *b, double data_range, double *out, const char *where, sb_err *err) {
    if (a->width != b->width || a->height != b->height || a->channels != b->channels)
        return sb_err_set(err, SB_EINPUT, "%s: sizes differ (%dx%dx%d vs %dx%dx%d)", where, a->width, a->height, a->channels,
                          b->width, b->height, b->channels);
    if (a->width < SB_SSIM_WIN || a->height < SB_SSIM_WIN)
        return sb_err_set(err, SB_EINPUT, "%s: %dx%d is smaller than SSIM's %dx%d window", where, a->width, a->height,
                          SB_SSIM_WIN, SB_SSIM_WIN);
    double w[SB_SSIM_WIN];
    gaussian_taps(1.5, w);
    double *rows = sb_malloc(err, (size_t)N_MOM * a->height * (a->width - 2 * RADIUS) * sizeof *rows);
    if (!rows) return SB_EINTERNAL;
    double c1 = (0.01 * data_range) * (0.01 * data_range), c2 = (0.03 * data_range) * (0.03 * data_range), sum = 0;
    for (int c = 0; c < a->channels; c++) sum += ssim_channel(a, b, c, w, c1, c2, rows);
    free(rows);
    *out = sum / a->channels;
    return SB_OK;
}
