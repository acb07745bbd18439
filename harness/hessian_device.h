/* hessian_device.h - the Hessian of a linear's inputs accumulated on a CUDA
 * device (harness/cuda/hessian.cu; a build without CUDA links
 * harness/cuda_stub.c, whose functions say so).
 *
 * Calibration (harness/calibration.c) uses it for the runs of a method
 * that computes on CUDA: the forward passes stay on the host, each
 * sequence's rows go up once, and H = keep·H + add·XᵀX is one float64
 * DSYRK on the device (the running mean of gptq's add_batch, the same
 * arithmetic as the CPU's up to the order of the sums); H comes down once,
 * when the pass over the calibration samples is over. */
#ifndef SB_HESSIAN_DEVICE_H
#define SB_HESSIAN_DEVICE_H

#include <stdint.h>

#include "backend_cuda.h"
#include "error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sb_hessian_device sb_hessian_device;

/* A zero H [cols, cols] on c's device; out of device memory is SB_EINPUT. */
int sb_hessian_device_new(sb_cuda_ctx *c, int64_t cols, sb_hessian_device **out, sb_err *err);
void sb_hessian_device_free(sb_hessian_device *h);
/* H = keep·H + add·Σ_r x_r x_rᵀ for the rows x[n_rows, cols] (host, float32),
 * products and sums in float64. */
int sb_hessian_device_add(sb_hessian_device *h, const float *x, int64_t n_rows, double keep, double add, sb_err *err);
/* H, both triangles, row-major into out [cols, cols] (host). */
int sb_hessian_device_get(sb_hessian_device *h, double *out, sb_err *err);

#ifdef __cplusplus
}
#endif

#endif
