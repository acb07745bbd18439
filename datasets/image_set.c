/* image_set.c - the in-memory image set and the dispatch from a path to
 * the loader of its format (see image_set.h for the formats). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "image_internal.h"
#include "mapped_file.h"

sb_image_set *sb_image_set_new(const char *source, sb_err *err) {
    sb_image_set *set = sb_calloc(err, 1, sizeof *set);
    if (!set) return NULL;
    set->source = strdup(source);
    if (!set->source) {
        free(set);
        sb_err_set(err, SB_EINTERNAL, "out of memory");
        return NULL;
    }
    return set;
}

int sb_image_set_push(sb_image_set *set, sb_image *img, int32_t label, sb_err *err) {
    int n = set->n_images;
    /* grow by doubling: capacity is the next power of two at or above n+1 */
    if ((n & (n - 1)) == 0) {
        size_t cap = n ? (size_t)n * 2 : 1;
        sb_image *im = realloc(set->images, cap * sizeof *im);
        if (im) set->images = im;
        int32_t *lb = realloc(set->labels, cap * sizeof *lb);
        if (lb) set->labels = lb;
        if (!im || !lb) {
            sb_image_release(img);
            return sb_err_set(err, SB_EINTERNAL, "out of memory (%d images)", n + 1);
        }
    }
    set->images[n] = *img;
    set->labels[n] = label;
    set->n_images = n + 1;
    memset(img, 0, sizeof *img);
    return SB_OK;
}

int sb_image_alloc(sb_image *img, int width, int height, int channels, const char *where, sb_err *err) {
    memset(img, 0, sizeof *img);
    if (width < 1 || height < 1 || width > SB_IMAGE_MAX_SIDE || height > SB_IMAGE_MAX_SIDE)
        return sb_err_set(err, SB_EINPUT, "%s: image size %dx%d is outside 1..%d", where, width, height, SB_IMAGE_MAX_SIDE);
    if (channels != 1 && channels != 3)
        return sb_err_set(err, SB_EINPUT, "%s: %d channels (1 or 3 supported)", where, channels);
    size_t n = (size_t)width * (size_t)height * (size_t)channels;
    if (n > SB_IMAGE_MAX_BYTES) return sb_err_set(err, SB_EINPUT, "%s: image of %zu bytes is too large", where, n);
    img->pixels = sb_malloc(err, n);
    if (!img->pixels) return SB_EINTERNAL;
    img->width = width, img->height = height, img->channels = channels;
    return SB_OK;
}

int sb_image_set_classes(sb_image_set *set, int n_classes, const char *const *names, sb_err *err) {
    set->class_names = sb_calloc(err, n_classes > 0 ? (size_t)n_classes : 1, sizeof(char *));
    if (!set->class_names) return SB_EINTERNAL;
    set->n_classes = n_classes;
    for (int i = 0; i < n_classes; i++) {
        char num[16];
        snprintf(num, sizeof num, "%d", i);
        set->class_names[i] = strdup(names && names[i] ? names[i] : num);
        if (!set->class_names[i]) return sb_err_set(err, SB_EINTERNAL, "out of memory");
    }
    return SB_OK;
}

void sb_image_release(sb_image *img) {
    if (!img) return;
    free(img->pixels);
    memset(img, 0, sizeof *img);
}

void sb_image_set_free(sb_image_set *set) {
    if (!set) return;
    for (int i = 0; i < set->n_images; i++) free(set->images[i].pixels);
    free(set->images);
    free(set->labels);
    for (int i = 0; i < set->n_classes && set->class_names; i++) free(set->class_names[i]);
    free(set->class_names);
    free(set->source);
    free(set);
}

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcasecmp(s + n - m, suffix) == 0;
}

int sb_image_read(const char *path, sb_image *out, sb_err *err) {
    memset(out, 0, sizeof *out);
    sb_mapped_file f;
    int rc = sb_mapped_file_open(&f, path, err);
    if (rc != SB_OK) return rc;
    static const uint8_t png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    /* the bytes decide, not the extension: a mislabelled file still gets the right decoder */
    if (f.size >= 8 && memcmp(f.data, png_sig, 8) == 0) rc = sb_image_decode_png(f.data, f.size, path, out, err);
    else if (f.size >= 2 && f.data[0] == 'P' && (f.data[1] == '5' || f.data[1] == '6'))
        rc = sb_image_decode_pnm(f.data, f.size, path, out, err);
    else rc = sb_err_set(err, SB_EINPUT, "%s: not a PNG or binary PPM/PGM file (unknown signature)", path);
    sb_mapped_file_close(&f);
    return rc;
}

/* Which loader a path goes to: builtin:, a folder, an IDX file, else a CIFAR batch. */
static int load_any(const char *path, int limit, sb_image_set *set, sb_err *err) {
    if (strncmp(path, "builtin:", 8) == 0) return sb_image_load_synth(path + 8, limit, set, err);
    struct stat st;
    if (stat(path, &st) != 0) return sb_err_set(err, SB_EINPUT, "%s: no such file or folder", path);
    if (S_ISDIR(st.st_mode)) return sb_image_load_folder(path, limit, set, err);
    if (strstr(path, "idx3-ubyte") || strstr(path, "idx1-ubyte")) return sb_image_load_idx(path, limit, set, err);
    if (ends_with(path, ".bin")) return sb_image_load_cifar(path, limit, set, err);
    return sb_err_set(err, SB_EINPUT,
                      "%s: not an image source (want a folder of class folders, a CIFAR *.bin batch, "
                      "an MNIST *-images-idx3-ubyte file or builtin:shapes)", path);
}

int sb_image_set_load(const char *path, int limit, sb_image_set **out, sb_err *err) {
    *out = NULL;
    sb_image_set *set = sb_image_set_new(path, err);
    if (!set) return SB_EINTERNAL;
    int rc = load_any(path, limit, set, err);
    if (rc == SB_OK && set->n_images == 0) rc = sb_err_set(err, SB_EINPUT, "%s: no images", path);
    if (rc != SB_OK) {
        sb_image_set_free(set);
        return rc;
    }
    *out = set;
    return SB_OK;
}
