#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "check.h"

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
