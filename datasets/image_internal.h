/* image_internal.h - what the image loaders share (not part of the public API).
 *
 * Each source appends decoded images to one growing sb_image_set; the set
 * owns every pixel buffer, so a loader that fails half-way is cleaned up
 * by sb_image_set_free alone. */
#ifndef SB_IMAGE_INTERNAL_H
#define SB_IMAGE_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "image_set.h"

/* Largest side and pixel count a loader accepts: a header asking for more
 * is treated as corrupt rather than allocated. */
enum { SB_IMAGE_MAX_SIDE = 1 << 14 };
#define SB_IMAGE_MAX_BYTES ((size_t)1 << 30)

sb_image_set *sb_image_set_new(const char *source, sb_err *err);
/* Appends img (the set takes its pixels) with label. */
int sb_image_set_push(sb_image_set *set, sb_image *img, int32_t label, sb_err *err);
/* Allocates n pixel bytes for a width x height x channels image, checking the limits. */
int sb_image_alloc(sb_image *img, int width, int height, int channels, const char *where, sb_err *err);
/* class_names[i] = names[i], or the number i as text when names is NULL or names[i] is. */
int sb_image_set_classes(sb_image_set *set, int n_classes, const char *const *names, sb_err *err);

/* Decoders of one file held in memory; `where` names it in errors. */
int sb_image_decode_png(const uint8_t *data, size_t size, const char *where, sb_image *out, sb_err *err);
int sb_image_decode_pnm(const uint8_t *data, size_t size, const char *where, sb_image *out, sb_err *err);

/* The sources. limit > 0 stops after that many images. */
int sb_image_load_folder(const char *dir, int limit, sb_image_set *set, sb_err *err);
int sb_image_load_cifar(const char *path, int limit, sb_image_set *set, sb_err *err);
int sb_image_load_idx(const char *path, int limit, sb_image_set *set, sb_err *err);
int sb_image_load_synth(const char *spec, int limit, sb_image_set *set, sb_err *err);

#endif
