/* image_cifar.c - CIFAR-10 and CIFAR-100 binary batches.
 *
 * CIFAR-10 (data_batch_1..5.bin, test_batch.bin): records of 1 label byte
 * + 3072 pixel bytes. CIFAR-100 (train.bin, test.bin): 1 coarse + 1 fine
 * label byte + 3072 pixel bytes; the fine label (100 classes) is used.
 * Pixels are planar (1024 red, 1024 green, 1024 blue, rows of 32) and are
 * interleaved to HWC here. Class names come from batches.meta.txt
 * (CIFAR-10) or fine_label_names.txt (CIFAR-100) beside the batch. */
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "image_internal.h"
#include "mapped_file.h"

enum { SIDE = 32, PLANE = SIDE * SIDE, PIXELS = 3 * PLANE };

/* 1 label byte (CIFAR-10) or 2 (CIFAR-100), from the file name, else from which record size divides the file. */
static int label_bytes(const char *path, size_t size) {
    char *copy = strdup(path);
    const char *base = copy ? basename(copy) : "";
    int n = 0;
    if (strncmp(base, "data_batch", 10) == 0 || strncmp(base, "test_batch", 10) == 0) n = 1;
    else if (strcmp(base, "train.bin") == 0 || strcmp(base, "test.bin") == 0) n = 2;
    else if (size % (PIXELS + 1) == 0) n = 1;
    else if (size % (PIXELS + 2) == 0) n = 2;
    else n = 1;
    free(copy);
    return n;
}

/* Names from a text file beside the batch, one per line, blank lines skipped. Missing file: numbers. */
static int read_names(const char *path, const char *file, int n_classes, sb_image_set *set, sb_err *err) {
    char *copy = strdup(path);
    if (!copy) return sb_err_set(err, SB_EINTERNAL, "out of memory");
    const char *dir = dirname(copy);
    size_t len = strlen(dir) + strlen(file) + 2;
    char *meta = malloc(len);
    char *text = NULL;
    const char **names = calloc((size_t)n_classes, sizeof *names);
    int rc = meta && names ? SB_OK : sb_err_set(err, SB_EINTERNAL, "out of memory");
    if (rc == SB_OK) snprintf(meta, len, "%s/%s", dir, file);
    sb_err ignored = {0};
    if (rc == SB_OK && sb_read_text_file(meta, &text, NULL, &ignored) == SB_OK) {
        int k = 0;
        for (char *save = NULL, *line = strtok_r(text, "\r\n", &save); line && k < n_classes;
             line = strtok_r(NULL, "\r\n", &save))
            if (line[strspn(line, " \t")]) names[k++] = line;
    }
    if (rc == SB_OK) rc = sb_image_set_classes(set, n_classes, names, err);
    free(names);
    free(text);
    free(meta);
    free(copy);
    return rc;
}

static int decode_record(const uint8_t *rec, int n_label, int n_classes, const char *path, long index,
                         sb_image_set *set, sb_err *err) {
    int label = rec[n_label - 1];
    if (label >= n_classes)
        return sb_err_set(err, SB_EINPUT, "%s: record %ld has label %d, beyond the %d classes of CIFAR-%d", path, index,
                          label, n_classes, n_classes);
    sb_image img;
    int rc = sb_image_alloc(&img, SIDE, SIDE, 3, path, err);
    if (rc != SB_OK) return rc;
    const uint8_t *px = rec + n_label;
    for (int i = 0; i < PLANE; i++)   /* planar CHW -> interleaved HWC */
        for (int c = 0; c < 3; c++) img.pixels[i * 3 + c] = px[c * PLANE + i];
    return sb_image_set_push(set, &img, label, err);
}

int sb_image_load_cifar(const char *path, int limit, sb_image_set *set, sb_err *err) {
    sb_mapped_file f;
    int rc = sb_mapped_file_open(&f, path, err);
    if (rc != SB_OK) return rc;
    int n_label = label_bytes(path, f.size);
    size_t record = (size_t)PIXELS + (size_t)n_label;
    int n_classes = n_label == 1 ? 10 : 100;
    if (f.size == 0 || f.size % record != 0)
        rc = sb_err_set(err, SB_EINPUT,
                        "%s: %zu bytes is not a whole number of CIFAR-%d records of %zu bytes (truncated or not a CIFAR batch)",
                        path, f.size, n_classes, record);
    if (rc == SB_OK) rc = read_names(path, n_label == 1 ? "batches.meta.txt" : "fine_label_names.txt", n_classes, set, err);
    long n = (long)(f.size / record);
    for (long i = 0; rc == SB_OK && i < n && (limit <= 0 || set->n_images < limit); i++)
        rc = decode_record(f.data + (size_t)i * record, n_label, n_classes, path, i, set, err);
    sb_mapped_file_close(&f);
    return rc;
}
