/* image_synth.c - "builtin:shapes[:train|valid|test]": a synthetic labelled
 * image set that needs no download, for tests, the demo and the built-in ViT.
 *
 * Ten classes of 32x32 RGB images (labels 0-9): circle, square, triangle,
 * ring, dots, hstripes, vstripes, checkerboard, cross, gradient.
 * Each image has a random background (a colour with a faint gradient), a
 * random contrasting colour, random size, position and rotation, and
 * Gaussian pixel noise, so telling the classes apart takes more than one
 * pixel. Image i of a split depends only on (split, i): the generator is
 * seeded per image, so a limit gives a prefix of the full split and the
 * set is identical on every machine. Splits: train 50,000, valid 1,000,
 * test 1,000 images (balanced: image i has class i mod 10). The default
 * split is test. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "image_internal.h"

enum { SIDE = 32, N_CLASSES = 10 };
static const char *const class_names[N_CLASSES] = {"circle", "square", "triangle", "ring", "dots",
                                                   "hstripes", "vstripes", "checkerboard", "cross", "gradient"};
static const char *const split_names[3] = {"train", "valid", "test"};
static const int split_sizes[3] = {50000, 1000, 1000};
#define SYNTH_SEED 0x5eed5a9e5ULL

typedef struct rng { uint64_t s; } rng;

/* splitmix64: a full-period generator whose every seed gives a good stream */
static uint64_t rng_next(rng *r) {
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}
static double uniform(rng *r, double lo, double hi) { return lo + (hi - lo) * (double)(rng_next(r) >> 11) * 0x1p-53; }
static double gauss(rng *r) {
    double u = uniform(r, 1e-12, 1.0), v = uniform(r, 0.0, 1.0);
    return sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v);
}

/* A shape: class, centre, size, angle, and per-class extras. */
typedef struct shape {
    int cls;
    double cx, cy, r, angle, thick, period, phase;
    int n_dots;
    double dots[12][3];   /* x, y, radius */
} shape;

static void draw_params(rng *r, int cls, shape *s) {
    memset(s, 0, sizeof *s);
    s->cls = cls;
    s->cx = uniform(r, 11, 21), s->cy = uniform(r, 11, 21);
    s->r = uniform(r, 5.5, 10.5);
    s->angle = uniform(r, 0, 6.283185307179586);
    s->thick = uniform(r, 1.2, 2.4);
    s->period = uniform(r, 4.0, 8.0);
    s->phase = uniform(r, 0, 6.283185307179586);
    s->n_dots = 5 + (int)(rng_next(r) % 7);
    for (int i = 0; i < s->n_dots; i++) {
        s->dots[i][0] = uniform(r, 3, 29), s->dots[i][1] = uniform(r, 3, 29);
        s->dots[i][2] = uniform(r, 1.3, 2.3);
    }
}

/* Foreground weight in [0,1] of point (x, y) (pixel centres). */
static double coverage(const shape *s, double x, double y) {
    double dx = x - s->cx, dy = y - s->cy, d = sqrt(dx * dx + dy * dy);
    double c = cos(s->angle), sn = sin(s->angle);
    double u = c * dx + sn * dy, v = -sn * dx + c * dy;   /* rotated frame */
    switch (s->cls) {
    case 0: return d <= s->r;
    case 1: return fabs(u) <= s->r * 0.8 && fabs(v) <= s->r * 0.8;
    case 2: {   /* equilateral triangle: inside all three edge half-planes */
        for (int k = 0; k < 3; k++) {
            double a = s->angle + k * 2.0943951023931953;
            if (cos(a) * dx + sin(a) * dy > s->r * 0.5) return 0;
        }
        return 1;
    }
    case 3: return d <= s->r && d >= s->r - 1.5 * s->thick;
    case 4:
        for (int i = 0; i < s->n_dots; i++) {
            double ex = x - s->dots[i][0], ey = y - s->dots[i][1];
            if (ex * ex + ey * ey <= s->dots[i][2] * s->dots[i][2]) return 1;
        }
        return 0;
    case 5: return sin(y * 6.283185307179586 / s->period + s->phase) > 0;
    case 6: return sin(x * 6.283185307179586 / s->period + s->phase) > 0;
    case 7: {
        double cell = s->period * 0.75;
        long a = (long)floor((x + s->phase) / cell), b = (long)floor((y + s->phase) / cell);
        return ((a + b) & 1) != 0;
    }
    case 8: return (fabs(u) <= s->thick && fabs(v) <= s->r) || (fabs(v) <= s->thick && fabs(u) <= s->r);
    default: return 0.5 + 0.5 * (c * (x - 15.5) + sn * (y - 15.5)) / 16.0;   /* 9: gradient across the image */
    }
}

/* Two colours whose channels differ by at least 140 in total, so every class stays visible. */
static void draw_colours(rng *r, double bg[3], double fg[3]) {
    double diff;
    do {
        diff = 0;
        for (int c = 0; c < 3; c++) {
            bg[c] = uniform(r, 0, 255), fg[c] = uniform(r, 0, 255);
            diff += fabs(bg[c] - fg[c]);
        }
    } while (diff < 140);
}

static void render(rng *r, int cls, uint8_t *px) {
    shape s;
    double bg[3], fg[3];
    draw_params(r, cls, &s);
    draw_colours(r, bg, fg);
    double tilt = uniform(r, 0, 6.283185307179586), faint = uniform(r, 0, 25), noise = uniform(r, 4, 18);
    for (int y = 0; y < SIDE; y++)
        for (int x = 0; x < SIDE; x++) {
            double w = coverage(&s, x + 0.5, y + 0.5);
            w = w < 0 ? 0 : w > 1 ? 1 : w;
            double shade = faint * ((x - 15.5) * cos(tilt) + (y - 15.5) * sin(tilt)) / 16.0;
            for (int c = 0; c < 3; c++) {
                double v = (1 - w) * bg[c] + w * fg[c] + shade + noise * gauss(r);
                px[(y * SIDE + x) * 3 + c] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : lround(v));
            }
        }
}

/* Image i of split: class i mod 10 (balanced), everything else from its own seed. */
static int synth_one(int split, int i, sb_image_set *set, sb_err *err) {
    rng r = {SYNTH_SEED ^ ((uint64_t)split << 40) ^ (uint64_t)i * 0x9e3779b97f4a7c15ULL};
    rng_next(&r);
    sb_image img;
    int rc = sb_image_alloc(&img, SIDE, SIDE, 3, "builtin:shapes", err);
    if (rc != SB_OK) return rc;
    int cls = i % N_CLASSES;
    render(&r, cls, img.pixels);
    return sb_image_set_push(set, &img, cls, err);
}

int sb_image_load_synth(const char *spec, int limit, sb_image_set *set, sb_err *err) {
    int split = 2;
    if (strcmp(spec, "shapes") != 0) {
        split = -1;
        for (int k = 0; k < 3; k++) {
            char full[32];
            snprintf(full, sizeof full, "shapes:%s", split_names[k]);
            if (strcmp(spec, full) == 0) split = k;
        }
        if (split < 0)
            return sb_err_set(err, SB_EINPUT, "builtin:%s: unknown built-in image set (want builtin:shapes[:train|valid|test])",
                              spec);
    }
    int rc = sb_image_set_classes(set, N_CLASSES, class_names, err);
    int n = limit > 0 && limit < split_sizes[split] ? limit : split_sizes[split];
    for (int i = 0; rc == SB_OK && i < n; i++) rc = synth_one(split, i, set, err);
    return rc;
}


