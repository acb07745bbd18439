/* image_metrics.h - full-reference image quality: MSE, PSNR and SSIM.
 *
 * Definitions follow scikit-image (skimage.metrics) so numbers can be
 * compared with papers and scripts that use it:
 *   MSE  = mean over every pixel and channel of (a - b)^2 (8-bit values);
 *   PSNR = 10 log10(data_range^2 / MSE), +inf for identical images;
 *   SSIM = Wang et al. 2004 with an 11x11 Gaussian window (sigma 1.5,
 *          truncated at 3.5 sigma), population covariances, K1 0.01,
 *          K2 0.03, the mean of the SSIM map over positions whose window
 *          lies inside the image, averaged over channels - i.e.
 *          structural_similarity(gaussian_weights=True, sigma=1.5,
 *          use_sample_covariance=False, data_range=..., channel_axis=2). */
#ifndef SB_IMAGE_METRICS_H
#define SB_IMAGE_METRICS_H

#include "../datasets/image_set.h"

enum { SB_SSIM_WIN = 11 };   /* the smallest side SSIM accepts */

/* a and b must have the same width, height and channels (checked by the callers). */
double sb_image_mse(const sb_image *a, const sb_image *b);
double sb_psnr_from_mse(double mse, double data_range);
/* SB_EINPUT when the sizes differ or a side is under SB_SSIM_WIN; `where` names the pair. */
int sb_image_ssim(const sb_image *a, const sb_image *b, double data_range, double *out, const char *where, sb_err *err);

#endif
