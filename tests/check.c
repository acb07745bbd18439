#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "check.h"
#include "mapped_file.h"

static char current[256];
static char reason[1024];
static int failed_in_case;
static int failed_cases;

void test_begin(const char *name) {
    snprintf(current, sizeof current, "%s", name);
    reason[0] = 0;
    failed_in_case = 0;
}

bool test_expect(bool ok, const char *fmt, ...) {
    if (ok) return true;
    if (!failed_in_case) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(reason, sizeof reason, fmt, ap);
        va_end(ap);
    }
    failed_in_case++;
    return false;
}

void test_end(void) {
    if (failed_in_case) {
        printf("FAIL %s: %s", current, reason);
        if (failed_in_case > 1) printf(" (and %d more)", failed_in_case - 1);
        printf("\n");
        failed_cases++;
    } else {
        printf("PASS %s\n", current);
    }
    fflush(stdout);
}

void test_skip(const char *name, const char *fmt, ...) {
    char why[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    printf("SKIP %s: %s\n", name, why);
    fflush(stdout);
}

int test_status(void) { return failed_cases ? 1 : 0; }

const char *test_shared_data(void) {
    static const char *dir = "../shared/data";
    struct stat st;
    return stat(dir, &st) == 0 && S_ISDIR(st.st_mode) ? dir : NULL;
}

double test_max_abs_diff(const float *a, const float *b, long n) {
    double m = 0;
    for (long i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= m)) m = d; /* NaN propagates as a failure */
    }
    return m;
}

double test_max_abs(const float *a, long n) {
    double m = 0;
    for (long i = 0; i < n; i++)
        if (fabs(a[i]) > m) m = fabs(a[i]);
    return m;
}

/* y[t][r] in double from decoded weights W [rows, cols]. */
static void reference_product(const float *W, int64_t rows, int64_t cols, const float *x, int n_tok, double *y) {
    for (int t = 0; t < n_tok; t++)
        for (int64_t r = 0; r < rows; r++) {
            double s = 0;
            for (int64_t c = 0; c < cols; c++) s += (double)W[r * cols + c] * x[t * cols + c];
            y[t * rows + r] = s;
        }
}

void test_format_products(const sb_linear *w, sb_pool *pool, const char *what) {
    enum { MAX_TOK = 17 };
    int64_t rows = w->rows, cols = w->cols;
    float *W = malloc(sizeof(float) * (size_t)(rows * cols)), *x = malloc(sizeof(float) * MAX_TOK * (size_t)cols);
    float *y = malloc(sizeof(float) * MAX_TOK * (size_t)rows);
    double *ref = malloc(sizeof(double) * MAX_TOK * (size_t)rows);
    sb_matmul_ctx ctx = {pool, NULL, sb_matmul_scratch_floats(cols, sb_pool_threads(pool))};
    ctx.scratch = malloc(sizeof(float) * (size_t)ctx.scratch_floats);
    if (test_expect(W && x && y && ref && ctx.scratch, "out of memory")) {
        uint64_t state = 99;
        for (int64_t i = 0; i < MAX_TOK * cols; i++) {
            state = state * 6364136223846793005ull + 1442695040888963407ull;
            x[i] = (float)((double)(state >> 11) / 9007199254740992.0) * 2 - 1;
        }
        w->fmt->decode_rows(w, 0, rows, W);
        const int n_toks[] = {1, 2, 4, MAX_TOK};
        for (int k = 0; k < 4; k++) {
            int n = n_toks[k];
            sb_linear_forward(w, x, n, y, &ctx);
            reference_product(W, rows, cols, x, n, ref);
            double worst = 0, scale = 0;
            for (int64_t i = 0; i < n * rows; i++) {
                worst = fmax(worst, fabs(y[i] - ref[i]));
                scale = fmax(scale, fabs(ref[i]));
            }
            test_expect(worst <= 1e-5 * scale, "%s, %d tokens: max |diff| %g vs max |y| %g", what, n, worst, scale);
        }
    }
    free(ctx.scratch);
    free(W);
    free(x);
    free(y);
    free(ref);
}

void *test_read_file(const char *dir, const char *name, size_t bytes) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    void *p = f ? malloc(bytes) : NULL;
    if (p && fread(p, 1, bytes, f) != bytes) {
        free(p);
        p = NULL;
    }
    if (f) fclose(f);
    return p;
}

cJSON *test_read_json(const char *path) {
    char *text = NULL;
    sb_err err = {0};
    if (sb_read_text_file(path, &text, NULL, &err)) return NULL;
    cJSON *j = cJSON_Parse(text);
    free(text);
    return j;
}
