/* test_vec.c - the vector kernels against plain double-precision loops. */
#include <math.h>
#include <stdlib.h>

#include "check.h"
#include "vec.h"

static void softmax_matches_double(void) {
    test_begin("vec_softmax_matches_double");
    enum { N = 1003 };
    float x[N];
    double ref[N], max = -INFINITY, sum = 0;
    for (int i = 0; i < N; i++) {
        x[i] = (float)(((i * 7919) % 2001) - 1000) * 0.05f; /* spans [-50, 50] */
        if (x[i] > max) max = x[i];
    }
    /* x - max is rounded to float as in any f32 softmax (PyTorch's too);
     * the kernel is judged on what follows that subtraction */
    for (int i = 0; i < N; i++) sum += ref[i] = exp((double)(x[i] - (float)max));
    sb_vec_softmax(x, N);
    double worst = 0;
    for (int i = 0; i < N; i++) {
        double r = ref[i] / sum, e = fabs(x[i] - r) / (r > 1e-30 ? r : 1e-30);
        if (r > 1e-30 && e > worst) worst = e;
    }
    test_expect(worst < 4e-7, "worst relative error %.3g", worst);
    test_end();
}

static void softmax_extremes(void) {
    test_begin("vec_softmax_extremes");
    float x[10] = {-1e30f, 0, -200, 88, 87.9f, -87.5f, -100, 3, -INFINITY, 88};
    sb_vec_softmax(x, 10);
    double sum = 0;
    for (int i = 0; i < 10; i++) {
        test_expect(isfinite(x[i]) && x[i] >= 0, "x[%d] = %g", i, x[i]);
        sum += x[i];
    }
    test_expect(fabs(sum - 1) < 1e-6, "sum %.9f", sum);
    test_expect(x[8] == 0 && x[0] == 0, "masked entries must be exactly 0");
    test_end();
}

static void dot_and_sum(void) {
    test_begin("vec_dot_and_sum");
    for (int n = 0; n < 70; n++) {
        float a[70], b[70];
        double d = 0, s = 0;
        for (int i = 0; i < n; i++) {
            a[i] = (float)((i * 13) % 17 - 8) / 8;
            b[i] = (float)((i * 5) % 11 - 5) / 4;
            d += (double)a[i] * b[i];
            s += a[i];
        }
        test_expect(fabs(sb_vec_dot(a, b, n) - d) < 1e-5, "dot n=%d", n);
        test_expect(fabs(sb_vec_sum(a, n) - s) < 1e-5, "sum n=%d", n);
    }
    test_end();
}

static void logsumexp_matches_double(void) {
    test_begin("vec_logsumexp_matches_double");
    enum { N = 50257 };
    static float x[N];
    double max = -INFINITY, sum = 0;
    for (int i = 0; i < N; i++) {
        x[i] = (float)((i * 7919) % 4001 - 2000) * 0.01f;
        if (x[i] > max) max = x[i];
    }
    for (int i = 0; i < N; i++) sum += exp((double)(x[i] - (float)max));
    double ref = max + log(sum), got = sb_vec_logsumexp(x, N);
    test_expect(fabs(got - ref) < 1e-6, "logsumexp %.9f, reference %.9f", got, ref);
    test_end();
}

int main(void) {
    logsumexp_matches_double();
    softmax_matches_double();
    softmax_extremes();
    dot_and_sum();
    return test_status();
}
