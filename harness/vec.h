/* vec.h - small vector kernels the forward pass runs outside CBLAS. */
#ifndef SB_VEC_H
#define SB_VEC_H

#include <stdint.h>

float sb_vec_dot(const float *a, const float *b, int64_t n);
float sb_vec_sum(const float *a, int64_t n);
/* y[rows] = W[rows, cols] · x */
void sb_vec_matvec(const float *W, int64_t rows, int64_t cols, const float *x, float *y);
/* y += a * x */
void sb_vec_axpy(float *y, float a, const float *x, int64_t n);
/* log Σ exp(x[i]), in double: the normaliser of a log-softmax row, so
 * log p(t) = x[t] - sb_vec_logsumexp(x, n) without writing the row. */
double sb_vec_logsumexp(const float *x, int64_t n);
/* Softmax in place over x[0..n); returns nothing, sums in double for accuracy. */
void sb_vec_softmax(float *x, int64_t n);

#endif
