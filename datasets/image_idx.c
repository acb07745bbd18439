/* image_idx.c - MNIST / Fashion-MNIST IDX pairs.
 *
 * IDX: two zero bytes, a type byte (0x08 = unsigned byte), the number of
 * dimensions, then each dimension as a big-endian uint32, then the data.
 * Images are [n][rows][cols] (magic 0x00000803), labels [n] (0x00000801).
 * Either file of the pair may be given; the other is found by swapping
 * "images"/"labels" and "idx3"/"idx1" in the name (train-images-idx3-ubyte
 * <-> train-labels-idx1-ubyte, also t10k-images.idx3-ubyte). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "image_internal.h"
#include "mapped_file.h"

static const char *const fashion_names[10] = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                              "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};

static uint32_t be32(const uint8_t *p) { return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]; }

/* Checks the header of an unsigned-byte IDX file with ndim dimensions; dims[] gets them. */
static int idx_header(const sb_mapped_file *f, int ndim, uint32_t *dims, sb_err *err) {
    size_t head = 4 + 4 * (size_t)ndim;
    if (f->size < head) return sb_err_set(err, SB_EINPUT, "%s: truncated IDX header (%zu bytes)", f->path, f->size);
    uint32_t magic = be32(f->data), want = 0x800u + (uint32_t)ndim;
    if (magic != want)
        return sb_err_set(err, SB_EINPUT, "%s: bad IDX magic 0x%08x (want 0x%08x: unsigned bytes, %d dimensions)", f->path,
                          magic, want, ndim);
    size_t n = 1;
    for (int i = 0; i < ndim; i++) {
        dims[i] = be32(f->data + 4 + 4 * i);
        if (dims[i] > (1u << 28)) return sb_err_set(err, SB_EINPUT, "%s: IDX dimension %d is %u, too large", f->path, i, dims[i]);
        n *= dims[i];
        if (n > ((size_t)1 << 36)) return sb_err_set(err, SB_EINPUT, "%s: IDX data too large", f->path);
    }
    if (f->size - head != n)
        return sb_err_set(err, SB_EINPUT, "%s: %zu data bytes, but the IDX header's dimensions need %zu", f->path,
                          f->size - head, n);
    return SB_OK;
}

/* Replaces the first `from` in the last path component with `to` (same length). */
static int swap_word(char *path, const char *from, const char *to) {
    char *base = strrchr(path, '/');
    char *hit = strstr(base ? base : path, from);
    if (!hit) return 0;
    memcpy(hit, to, strlen(to));
    return 1;
}

static int pair_paths(const char *path, char **images, char **labels, sb_err *err) {
    *images = strdup(path), *labels = strdup(path);
    if (!*images || !*labels) return sb_err_set(err, SB_EINTERNAL, "out of memory");
    int ok = strstr(path, "idx3") ? swap_word(*labels, "images", "labels") && swap_word(*labels, "idx3", "idx1")
                                  : swap_word(*images, "labels", "images") && swap_word(*images, "idx1", "idx3");
    if (!ok)
        return sb_err_set(err, SB_EINPUT, "%s: cannot tell the IDX pair from the name (want *-images-idx3-ubyte and *-labels-idx1-ubyte)",
                          path);
    return SB_OK;
}

static int decode_all(const sb_mapped_file *im, const uint32_t *dims, const sb_mapped_file *lb, int limit,
                      sb_image_set *set, sb_err *err) {
    int rc = SB_OK;
    int max_label = 9;
    for (uint32_t i = 0; i < dims[0]; i++) max_label = lb->data[8 + i] > max_label ? lb->data[8 + i] : max_label;
    const char *const *names = strcasestr(im->path, "fashion") && max_label == 9 ? fashion_names : NULL;
    rc = sb_image_set_classes(set, max_label + 1, names, err);
    size_t px = (size_t)dims[1] * dims[2];
    for (uint32_t i = 0; rc == SB_OK && i < dims[0] && (limit <= 0 || set->n_images < limit); i++) {
        sb_image img;
        rc = sb_image_alloc(&img, (int)dims[2], (int)dims[1], 1, im->path, err);
        if (rc != SB_OK) break;
        memcpy(img.pixels, im->data + 16 + i * px, px);
        rc = sb_image_set_push(set, &img, lb->data[8 + i], err);
    }
    return rc;
}

int sb_image_load_idx(const char *path, int limit, sb_image_set *set, sb_err *err) {
    char *images_path = NULL, *labels_path = NULL;
    sb_mapped_file im = {0}, lb = {0};
    uint32_t idims[3], ldims[1];
    int rc = pair_paths(path, &images_path, &labels_path, err);
    if (rc == SB_OK) rc = sb_mapped_file_open(&im, images_path, err);
    if (rc == SB_OK) rc = sb_mapped_file_open(&lb, labels_path, err);
    if (rc == SB_OK) rc = idx_header(&im, 3, idims, err);
    if (rc == SB_OK) rc = idx_header(&lb, 1, ldims, err);
    if (rc == SB_OK && idims[0] != ldims[0])
        rc = sb_err_set(err, SB_EINPUT, "%s: %u images but %s has %u labels", images_path, idims[0], labels_path, ldims[0]);
    if (rc == SB_OK && (idims[1] == 0 || idims[2] == 0))
        rc = sb_err_set(err, SB_EINPUT, "%s: empty image size %ux%u", images_path, idims[2], idims[1]);
    if (rc == SB_OK) rc = decode_all(&im, idims, &lb, limit, set, err);
    sb_mapped_file_close(&im);
    sb_mapped_file_close(&lb);
    free(images_path);
    free(labels_path);
    return rc;
}
