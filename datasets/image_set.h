/* image_set.h - labelled images read from the formats users already have.
 *
 * One in-memory shape for every source, so tasks never ask where images
 * came from: 8-bit pixels, height x width x channels (HWC, the order PNG,
 * PPM and CIFAR's row bytes decode to), a label per image.
 *
 * Sources (sb_image_set_load picks by what the path is):
 *   - a folder with one sub-folder per class (class names sorted bytewise
 *     give labels 0..n-1), files *.png (libpng), *.ppm / *.pgm (binary P6/P5,
 *     maxval <= 255);
 *   - CIFAR-10 / CIFAR-100 binary batches (data_batch_*.bin, test_batch.bin,
 *     train.bin / test.bin) with batches.meta.txt / fine_label_names.txt when present;
 *   - MNIST / Fashion-MNIST IDX pairs (*-images-idx3-ubyte + *-labels-idx1-ubyte);
 *   - "builtin:shapes[:split]" - the deterministic synthetic set (datasets/image_synth.c).
 * Bad input (truncated PNG, a CIFAR file whose size is not a whole number of
 * records, an IDX file with a bad magic, mismatched counts) is SB_EINPUT with
 * a message that names the file and the reason. */
#ifndef SB_IMAGE_SET_H
#define SB_IMAGE_SET_H

#include <stdint.h>

#include "error.h"

typedef struct sb_image {
    int width, height, channels;   /* channels: 1 (grey) or 3 (RGB) */
    uint8_t *pixels;               /* [height][width][channels] */
} sb_image;

typedef struct sb_image_set {
    int n_images;
    sb_image *images;
    int32_t *labels;               /* [n_images]; -1 when the source has no labels */
    int n_classes;
    char **class_names;            /* [n_classes]; never NULL entries (numbers as text when unnamed) */
    char *source;                  /* the path or builtin: name it was read from */
} sb_image_set;

/* Reads every image of path. limit > 0 keeps the first `limit` images (in
 * the source's order: classes then sorted file names for folders). */
int sb_image_set_load(const char *path, int limit, sb_image_set **out, sb_err *err);
void sb_image_set_free(sb_image_set *set);

/* One image file (PNG, PPM or PGM), for tools and tests. */
int sb_image_read(const char *path, sb_image *out, sb_err *err);
void sb_image_release(sb_image *img);

#endif
