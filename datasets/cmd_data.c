/* cmd_data.c - `slimbench data`: the built-in corpus, multiple-choice sets
 * and tokenizer written to disk.
 *
 *   slimbench data corpus --out DIR [--stories N] [--seed S] [--games-percent P]
 *       DIR/train.txt, valid.txt, test.txt (stories 0..N-1, split 90/5/5 by index);
 *       with P > 0 also DIR/train+games.txt, valid+games.txt: the same stories, each
 *       followed by a paragraph of copy games with probability P %
 *   slimbench data games --out DIR [--paragraphs N] [--seed S]
 *       DIR/games_train.txt, games_valid.txt: copy games alone (paragraphs 0..N-1)
 *   slimbench data mc --out DIR [--n N] [--seed S]
 *       DIR/agreement.jsonl, recall.jsonl, arithmetic.jsonl (N questions each)
 *   slimbench data bpe --input FILE --vocab N --out DIR
 *       DIR/tokenizer.json, tokenizer_config.json (byte-level BPE trained on FILE)
 *   slimbench data images PATH [--limit N] [--write DIR]
 *       loads an image set (image_set.h) and prints its counts per class;
 *       --write saves it as a class folder DIR/<class>/<index>.ppm|.pgm
 *
 * DIR is created when missing.  Prints one line per file written. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bpe_train.h"
#include "cli.h"
#include "image_set.h"
#include "mapped_file.h"
#include "results.h"
#include "story_corpus.h"
#include "story_mc.h"

#define DEFAULT_STORIES 10000
#define DEFAULT_QUESTIONS 500
#define DEFAULT_GAME_PARAGRAPHS 12000
#define DEFAULT_SEED 1

/* An integer flag in [lo, hi]; *out keeps its default when the flag is absent. */
static int int_flag(int argc, char **argv, const char *name, long long lo, long long hi, long long *out, sb_err *err) {
    const char *s = sb_flag_value(argc, argv, name);
    if (!s) return SB_OK;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return sb_err_set(err, SB_EINPUT, "%s must be an integer in %lld..%lld, not '%s'", name, lo, hi, s);
    *out = v;
    return SB_OK;
}

static int seed_flag(int argc, char **argv, uint64_t *seed, sb_err *err) {
    const char *s = sb_flag_value(argc, argv, "--seed");
    if (!s) return SB_OK;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-')
        return sb_err_set(err, SB_EINPUT, "--seed must be a non-negative integer, not '%s'", s);
    *seed = (uint64_t)v;
    return SB_OK;
}

static int write_text(const char *dir, const char *name, const char *text, size_t len, sb_err *err) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *path = malloc(n);
    if (!path) return sb_err_set(err, SB_EINTERNAL, "out of memory");
    snprintf(path, n, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    int ok = f && fwrite(text, 1, len, f) == len;
    if (f && fclose(f) != 0) ok = 0;
    int rc = ok ? SB_OK : sb_err_set(err, SB_EINPUT, "%s: cannot write: %s", path, strerror(errno));
    if (rc == SB_OK) printf("wrote %s (%zu bytes)\n", path, len);
    free(path);
    return rc;
}

/* Writes DIR/<name> for each split given a name, from one generator. */
typedef int (*split_generator)(uint64_t seed, int n, int param, int split, char **text, size_t *len, sb_err *err);

static int write_splits(const char *out, const char *const names[3], split_generator gen, uint64_t seed, int n,
                        int param, sb_err *err) {
    int rc = SB_OK;
    for (int split = 0; rc == SB_OK && split < 3; split++) {
        if (!names[split]) continue;
        char *text;
        size_t len;
        rc = gen(seed, n, param, split, &text, &len, err);
        if (rc == SB_OK) rc = write_text(out, names[split], text, len, err);
        free(text);
    }
    return rc;
}

static int stories_with_games(uint64_t seed, int n, int percent, int split, char **text, size_t *len, sb_err *err) {
    return sb_story_generate_with_games(seed, n, percent, split, text, len, err);
}

static int games_only(uint64_t seed, int n, int unused, int split, char **text, size_t *len, sb_err *err) {
    (void)unused;
    return sb_story_games_generate(seed, n, split, text, len, err);
}

static int data_corpus(int argc, char **argv, sb_err *err) {
    static const char *const with_value[] = {"--out", "--stories", "--seed", "--games-percent", NULL};
    static const char *const names[] = {"train.txt", "valid.txt", "test.txt"};
    static const char *const mixed_names[] = {"train+games.txt", "valid+games.txt", NULL};
    long long stories = DEFAULT_STORIES, games_percent = 0;
    uint64_t seed = DEFAULT_SEED;
    const char *out = sb_flag_value(argc, argv, "--out");
    int rc = sb_flags_check(argc, argv, with_value, NULL, err);
    if (rc == SB_OK && !out) rc = sb_err_set(err, SB_EINPUT, "data corpus needs --out DIR");
    if (rc == SB_OK) rc = int_flag(argc, argv, "--stories", 1, 100000000, &stories, err);
    if (rc == SB_OK) rc = int_flag(argc, argv, "--games-percent", 0, 100, &games_percent, err);
    if (rc == SB_OK) rc = seed_flag(argc, argv, &seed, err);
    if (rc == SB_OK) rc = sb_make_dirs(out, err);
    if (rc == SB_OK) rc = write_splits(out, names, stories_with_games, seed, (int)stories, 0, err);
    if (rc == SB_OK && games_percent > 0)
        rc = write_splits(out, mixed_names, stories_with_games, seed, (int)stories, (int)games_percent, err);
    return rc;
}

static int data_games(int argc, char **argv, sb_err *err) {
    static const char *const with_value[] = {"--out", "--paragraphs", "--seed", NULL};
    static const char *const names[] = {"games_train.txt", "games_valid.txt", NULL};
    long long paragraphs = DEFAULT_GAME_PARAGRAPHS;
    uint64_t seed = DEFAULT_SEED;
    const char *out = sb_flag_value(argc, argv, "--out");
    int rc = sb_flags_check(argc, argv, with_value, NULL, err);
    if (rc == SB_OK && !out) rc = sb_err_set(err, SB_EINPUT, "data games needs --out DIR");
    if (rc == SB_OK) rc = int_flag(argc, argv, "--paragraphs", 1, 100000000, &paragraphs, err);
    if (rc == SB_OK) rc = seed_flag(argc, argv, &seed, err);
    if (rc == SB_OK) rc = sb_make_dirs(out, err);
    if (rc == SB_OK) rc = write_splits(out, names, games_only, seed, (int)paragraphs, 0, err);
    return rc;
}

static int data_mc(int argc, char **argv, sb_err *err) {
    static const char *const with_value[] = {"--out", "--n", "--seed", NULL};
    long long n = DEFAULT_QUESTIONS;
    uint64_t seed = DEFAULT_SEED;
    const char *out = sb_flag_value(argc, argv, "--out");
    int rc = sb_flags_check(argc, argv, with_value, NULL, err);
    if (rc == SB_OK && !out) rc = sb_err_set(err, SB_EINPUT, "data mc needs --out DIR");
    if (rc == SB_OK) rc = int_flag(argc, argv, "--n", 1, 10000000, &n, err);
    if (rc == SB_OK) rc = seed_flag(argc, argv, &seed, err);
    if (rc == SB_OK) rc = sb_make_dirs(out, err);
    for (int kind = 0; rc == SB_OK && kind < SB_STORY_CUE_KINDS; kind++) {
        char *text, name[64];
        size_t len;
        snprintf(name, sizeof name, "%s.jsonl", sb_story_mc_name((sb_story_cue_kind)kind));
        rc = sb_story_mc_generate(seed, (sb_story_cue_kind)kind, (int)n, &text, &len, err);
        if (rc == SB_OK) rc = write_text(out, name, text, len, err);
        free(text);
    }
    return rc;
}

static double seconds_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int data_bpe(int argc, char **argv, sb_err *err) {
    static const char *const with_value[] = {"--input", "--vocab", "--out", NULL};
    const char *input = sb_flag_value(argc, argv, "--input"), *out = sb_flag_value(argc, argv, "--out");
    long long vocab = 0;
    int rc = sb_flags_check(argc, argv, with_value, NULL, err);
    if (rc == SB_OK && (!input || !out || !sb_flag_value(argc, argv, "--vocab")))
        rc = sb_err_set(err, SB_EINPUT, "data bpe needs --input FILE --vocab N --out DIR");
    if (rc == SB_OK) rc = int_flag(argc, argv, "--vocab", SB_BPE_MIN_VOCAB, 1 << 20, &vocab, err);
    char *text = NULL;
    size_t len = 0;
    if (rc == SB_OK) rc = sb_read_text_file(input, &text, &len, err);
    if (rc == SB_OK) rc = sb_make_dirs(out, err);
    sb_bpe_vocab v = {0};
    double t0 = seconds_now();
    if (rc == SB_OK) rc = sb_bpe_train(text, len, (int32_t)vocab, &v, err);
    double dt = seconds_now() - t0;
    if (rc == SB_OK) rc = sb_bpe_save(&v, out, err);
    if (rc == SB_OK)
        printf("wrote %s/tokenizer.json and tokenizer_config.json: %d tokens, %d merges, trained on %zu bytes in %.2f s\n", out,
               (int)v.n_tokens, (int)v.n_merges, len, dt);
    sb_bpe_vocab_free(&v);
    free(text);
    return rc;
}

/* Image size and channels when every image shares them, else "mixed". */
static void describe_sizes(const sb_image_set *set, char *buf, size_t n) {
    const sb_image *a = &set->images[0];
    for (int i = 1; i < set->n_images; i++) {
        const sb_image *b = &set->images[i];
        if (b->width != a->width || b->height != a->height || b->channels != a->channels) {
            snprintf(buf, n, "mixed sizes");
            return;
        }
    }
    snprintf(buf, n, "%dx%d, %d channel%s", a->width, a->height, a->channels, a->channels > 1 ? "s" : "");
}

/* DIR/<class>/<index>.ppm (P6) or .pgm (P5): the set as a folder any loader reads back. */
static int write_image_folder(const sb_image_set *set, const char *dir, sb_err *err) {
    int rc = sb_make_dirs(dir, err);
    for (int i = 0; rc == SB_OK && i < set->n_images; i++) {
        const sb_image *im = &set->images[i];
        char cls[256], path[4096];
        snprintf(cls, sizeof cls, "%s", set->labels[i] >= 0 ? set->class_names[set->labels[i]] : "unlabelled");
        for (char *c = cls; *c; c++) *c = *c == '/' || *c == '.' ? '_' : *c;   /* a name, never a path */
        snprintf(path, sizeof path, "%s/%s", dir, cls);
        rc = sb_make_dirs(path, err);
        if (rc) break;
        snprintf(path, sizeof path, "%s/%s/%05d.%s", dir, cls, i, im->channels == 3 ? "ppm" : "pgm");
        FILE *f = fopen(path, "wb");
        size_t n = (size_t)im->width * im->height * im->channels;
        int ok = f && fprintf(f, "P%c\n%d %d\n255\n", im->channels == 3 ? '6' : '5', im->width, im->height) > 0 &&
                 fwrite(im->pixels, 1, n, f) == n;
        if (f && fclose(f) != 0) ok = 0;
        if (!ok) rc = sb_err_set(err, SB_EINPUT, "%s: cannot write: %s", path, strerror(errno));
    }
    if (rc == SB_OK) printf("wrote %d images under %s\n", set->n_images, dir);
    return rc;
}

static int data_images(int argc, char **argv, sb_err *err) {
    static const char *const with_value[] = {"--limit", "--write", NULL};
    long long limit = 0;
    const char *path = argc > 0 && strncmp(argv[0], "--", 2) != 0 ? argv[0] : NULL;
    if (!path) return sb_err_set(err, SB_EINPUT, "data images needs a PATH (folder, CIFAR batch, IDX file or builtin:shapes)");
    int rc = sb_flags_check(argc - 1, argv + 1, with_value, NULL, err);
    if (rc == SB_OK) rc = int_flag(argc - 1, argv + 1, "--limit", 0, 1 << 30, &limit, err);
    sb_image_set *set = NULL;
    if (rc == SB_OK) rc = sb_image_set_load(path, (int)limit, &set, err);
    if (rc != SB_OK) return rc;
    char sizes[64];
    describe_sizes(set, sizes, sizeof sizes);
    printf("%s: %d images, %d classes, %s\n", set->source, set->n_images, set->n_classes, sizes);
    for (int c = 0; c < set->n_classes; c++) {
        int count = 0;
        for (int i = 0; i < set->n_images; i++) count += set->labels[i] == c;
        printf("  %3d %-24s %d\n", c, set->class_names[c], count);
    }
    const char *write = sb_flag_value(argc - 1, argv + 1, "--write");
    rc = write ? write_image_folder(set, write, err) : SB_OK;
    sb_image_set_free(set);
    return rc;
}

int sb_cmd_data(int argc, char **argv) {
    sb_err err = {0};
    int rc;
    const char *what = argc > 0 ? argv[0] : "";
    if (strcmp(what, "corpus") == 0) rc = data_corpus(argc - 1, argv + 1, &err);
    else if (strcmp(what, "games") == 0) rc = data_games(argc - 1, argv + 1, &err);
    else if (strcmp(what, "mc") == 0) rc = data_mc(argc - 1, argv + 1, &err);
    else if (strcmp(what, "bpe") == 0) rc = data_bpe(argc - 1, argv + 1, &err);
    else if (strcmp(what, "images") == 0) rc = data_images(argc - 1, argv + 1, &err);
    else rc = sb_err_set(&err, SB_EINPUT, "data needs one of: corpus, games, mc, bpe, images (not '%s')", what);
    if (rc != SB_OK) return sb_cli_fail(&err);
    return fflush(stdout) == 0 ? 0 : 1;
}
