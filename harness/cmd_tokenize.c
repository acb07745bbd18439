/* cmd_tokenize.c - `slimbench tokenize`: text to token ids, with the
 * model's own BOS rule, and a throughput benchmark.
 *
 *   slimbench tokenize --model PATH (--text S | --file F) [--no-bos]
 *   slimbench tokenize --bench --model PATH --file F [--runs N]
 *
 * PATH is a Hugging Face folder (or its tokenizer.json) or a GGUF file.
 * The benchmark encodes the whole file as one string, single-threaded,
 * and prints the best of N runs in MB/s (10^6 bytes per second). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cli.h"
#include "gguf.h"
#include "mapped_file.h"
#include "tokenizer.h"

static bool is_hf_path(const char *path) {
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) return true;
    size_t n = strlen(path);
    return n >= 5 && strcmp(path + n - 5, ".json") == 0;
}

static int load_tokenizer(const char *path, sb_tokenizer **t, sb_err *err) {
    if (is_hf_path(path)) return sb_tokenizer_load_hf(path, t, err);
    sb_gguf g;
    int rc = sb_gguf_open(&g, path, err);
    if (rc != SB_OK) return rc;
    rc = sb_tokenizer_load_gguf(&g, t, err);
    sb_gguf_close(&g);
    return rc;
}

static int print_ids(const int32_t *ids, size_t n) {
    for (size_t i = 0; i < n; i++) printf(i ? " %d" : "%d", (int)ids[i]);
    printf("\n");
    return fflush(stdout) == 0 ? 0 : 1;
}

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int bench(const sb_tokenizer *t, const char *text, size_t len, bool add_special, int runs, sb_err *err) {
    double best = 0;
    size_t n_ids = 0;
    for (int r = 0; r < runs; r++) {
        int32_t *ids;
        double t0 = now_seconds();
        int rc = sb_tokenizer_encode(t, text, len, add_special, &ids, &n_ids, err);
        double dt = now_seconds() - t0;
        free(ids);
        if (rc != SB_OK) return rc;
        if (r == 0 || dt < best) best = dt;
    }
    double mbs = best > 0 ? (double)len / best / 1e6 : 0;
    printf("tokenize: %zu bytes, %zu tokens, best of %d runs %.4f s, %.2f MB/s\n", len, n_ids, runs, best, mbs);
    return SB_OK;
}

int sb_cmd_tokenize(int argc, char **argv) {
    static const char *const with_value[] = {"--model", "--text", "--file", "--runs", NULL};
    static const char *const switches[] = {"--no-bos", "--bench", NULL};
    sb_err err = {0};
    if (sb_flags_check(argc, argv, with_value, switches, &err) != SB_OK) return sb_cli_fail(&err);
    const char *model = sb_flag_value(argc, argv, "--model");
    const char *text = sb_flag_value(argc, argv, "--text");
    const char *file = sb_flag_value(argc, argv, "--file");
    const char *runs_s = sb_flag_value(argc, argv, "--runs");
    bool add_special = !sb_flag_present(argc, argv, "--no-bos");
    bool do_bench = sb_flag_present(argc, argv, "--bench");
    if (!model) sb_err_set(&err, SB_EINPUT, "tokenize needs --model PATH");
    else if ((text != NULL) == (file != NULL)) sb_err_set(&err, SB_EINPUT, "tokenize needs exactly one of --text S or --file F");
    else if (do_bench && !file) sb_err_set(&err, SB_EINPUT, "tokenize --bench needs --file F");
    int runs = runs_s ? atoi(runs_s) : 5;
    if (!err.code && (runs < 1 || runs > 1000)) sb_err_set(&err, SB_EINPUT, "--runs must be 1..1000");
    if (err.code) return sb_cli_fail(&err);

    sb_tokenizer *t = NULL;
    if (load_tokenizer(model, &t, &err) != SB_OK) return sb_cli_fail(&err);
    char *buf = NULL;
    size_t len = text ? strlen(text) : 0;
    int rc = SB_OK;
    if (file) rc = sb_read_text_file(file, &buf, &len, &err);
    const char *input = file ? buf : text;
    if (rc == SB_OK && do_bench) {
        rc = bench(t, input, len, add_special, runs, &err);
    } else if (rc == SB_OK) {
        int32_t *ids = NULL;
        size_t n = 0;
        rc = sb_tokenizer_encode(t, input, len, add_special, &ids, &n, &err);
        if (rc == SB_OK && print_ids(ids, n) != 0) rc = sb_err_set(&err, SB_EINTERNAL, "cannot write to stdout");
        free(ids);
    }
    free(buf);
    sb_tokenizer_free(t);
    return rc == SB_OK ? 0 : sb_cli_fail(&err);
}
