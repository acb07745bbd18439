/* check.h - the few functions every test program uses.
 *
 * A test program runs named cases. Each case prints exactly one line:
 *   PASS name | FAIL name: first failed expectation | SKIP name: why
 * tests/run_tests.sh counts those lines over all programs. */
#ifndef SB_CHECK_H
#define SB_CHECK_H

#include <stdbool.h>

#include "thread_pool.h"
#include "weight_format.h"

void test_begin(const char *name);
/* Records a failure (with a printf-style reason) when ok is false; returns ok. */
bool test_expect(bool ok, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void test_end(void);
void test_skip(const char *name, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Exit status for main: 1 if any case failed. */
int test_status(void);

/* Project-relative paths: tests run from the repository root. Returns the
 * directory of ../shared/data if it exists, else NULL. */
const char *test_shared_data(void);

/* The first `bytes` bytes of dir/name (malloc'd), or NULL when it is missing or shorter. */
void *test_read_file(const char *dir, const char *name, size_t bytes);
/* A JSON file, parsed (cJSON_Delete it), or NULL when it is missing or malformed. */
struct cJSON *test_read_json(const char *path);

/* max |a-b| over n floats, and max |b|. */
double test_max_abs_diff(const float *a, const float *b, long n);
double test_max_abs(const float *a, long n);

/* A weight format's product (fused for 1, 2 and 4 tokens, tiles + CBLAS for
 * 17) against a double-precision product with its own decoded rows, within
 * 1e-5 of max |y|; records failures under the current case, naming `what`. */
void test_format_products(const sb_linear *w, sb_pool *pool, const char *what);

#endif
