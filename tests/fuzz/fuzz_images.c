/* fuzz_images.c - libFuzzer harness for the image loaders.
 *
 * The first input byte picks how the rest is read:
 *   0    a PNG / PPM / PGM file (sb_image_read sniffs the signature);
 *   1    a CIFAR-10 batch (data_batch_1.bin);
 *   2    a CIFAR-100 batch (train.bin);
 *   3    an MNIST pair: the rest split at its middle into the images and
 *        labels files (train-images-idx3-ubyte, train-labels-idx1-ubyte);
 *   4    a class folder holding the rest as one .png and one .pgm.
 * Files go to a private temporary folder; every accepted set is walked so
 * out-of-range pixels or labels show up under AddressSanitizer. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "image_set.h"

static char dir[64];

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    snprintf(dir, sizeof dir, "/tmp/fuzz_images_%d", (int)getpid());
    mkdir(dir, 0700);
    return 0;
}

static void write_file(const char *path, const uint8_t *data, size_t size) {
    FILE *f = fopen(path, "wb");
    if (!f) abort();
    if (size && fwrite(data, 1, size, f) != size) abort();
    fclose(f);
}

static void walk(const sb_image_set *set) {
    unsigned sum = 0;
    for (int i = 0; i < set->n_images; i++) {
        const sb_image *im = &set->images[i];
        size_t n = (size_t)im->width * im->height * im->channels;
        for (size_t k = 0; k < n; k++) sum += im->pixels[k];
        if (set->labels[i] >= set->n_classes) abort();
    }
    for (int c = 0; c < set->n_classes; c++) sum += (unsigned)strlen(set->class_names[c]);
    if (sum == 0xdeadbeef) fprintf(stderr, "!");
}

static void load(const char *path) {
    sb_err err = {0};
    sb_image_set *set = NULL;
    if (sb_image_set_load(path, 0, &set, &err) == 0) walk(set);
    else if (!err.msg[0]) abort();   /* every failure must say why */
    sb_image_set_free(set);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    char a[128], b[128];
    const uint8_t *rest = data + 1;
    size_t n = size - 1;
    switch (data[0] % 5) {
    case 0: {
        snprintf(a, sizeof a, "%s/one.img", dir);
        write_file(a, rest, n);
        sb_image img;
        sb_err err = {0};
        if (sb_image_read(a, &img, &err) == 0) sb_image_release(&img);
        break;
    }
    case 1:
    case 2:
        snprintf(a, sizeof a, "%s/%s", dir, data[0] % 5 == 1 ? "data_batch_1.bin" : "train.bin");
        write_file(a, rest, n);
        load(a);
        break;
    case 3:
        snprintf(a, sizeof a, "%s/train-images-idx3-ubyte", dir);
        snprintf(b, sizeof b, "%s/train-labels-idx1-ubyte", dir);
        write_file(a, rest, n / 2);
        write_file(b, rest + n / 2, n - n / 2);
        load(a);
        break;
    default:
        snprintf(a, sizeof a, "%s/set", dir);
        mkdir(a, 0700);
        snprintf(a, sizeof a, "%s/set/c", dir);
        mkdir(a, 0700);
        snprintf(a, sizeof a, "%s/set/c/x.png", dir);
        write_file(a, rest, n);
        snprintf(a, sizeof a, "%s/set/c/y.pgm", dir);
        write_file(a, rest, n);
        snprintf(a, sizeof a, "%s/set", dir);
        load(a);
    }
    return 0;
}
