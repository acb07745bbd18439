/* image_preprocess.c - preprocessor_config.json applied to one image, as
 * Hugging Face's slow (PIL) image processors do it: convert to RGB,
 * resize (PIL resampling, image_resample.c), center crop, rescale by
 * rescale_factor, normalize by mean and std, channels first. */
#include <stdlib.h>
#include <string.h>

#include "vision.h"

/* HF's get_resize_output_image_size for {"shortest_edge": s}: the short
 * side becomes s and the long side int(s * long / short). */
static void target_size(const sb_preprocess *pre, int h, int w, int *oh, int *ow) {
    if (pre->shortest_edge <= 0) {
        *oh = pre->resize_h;
        *ow = pre->resize_w;
        return;
    }
    int s = pre->shortest_edge;
    if (h <= w) {
        *oh = s;
        *ow = (int)((double)s * w / h);
    } else {
        *ow = s;
        *oh = (int)((double)s * h / w);
    }
}

/* Grey images become RGB by repetition (PIL's convert("RGB")). */
static uint8_t *to_rgb(const uint8_t *px, int h, int w, int channels, sb_err *err) {
    uint8_t *rgb = sb_malloc(err, (size_t)h * (size_t)w * 3);
    if (!rgb) return NULL;
    for (int64_t i = 0; i < (int64_t)h * w; i++)
        for (int c = 0; c < 3; c++) rgb[i * 3 + c] = px[i * channels + (channels == 3 ? c : 0)];
    return rgb;
}

int sb_preprocess_image(const sb_preprocess *pre, int model_channels, int model_size, const uint8_t *pixels,
                        int height, int width, int channels, float *out, sb_err *err) {
    if ((channels != 1 && channels != 3) || height < 1 || width < 1 || model_channels != 3)
        return sb_err_set(err, SB_EINPUT, "image of %dx%d with %d channels: need 1 or 3 channels for a %d-channel model",
                          width, height, channels, model_channels);
    uint8_t *img = to_rgb(pixels, height, width, channels, err), *resized = NULL;
    if (!img) return SB_EINTERNAL;
    int h = height, w = width, rc = SB_OK;
    if (pre->do_resize) {
        int oh, ow;
        target_size(pre, h, w, &oh, &ow);
        resized = sb_malloc(err, (size_t)oh * (size_t)ow * 3);
        rc = resized ? sb_resize_u8(img, h, w, 3, resized, oh, ow, pre->resample, err) : SB_EINTERNAL;
        free(img);
        img = resized;
        h = oh;
        w = ow;
    }
    int top = 0, left = 0, ch = h, cw = w;
    if (!rc && pre->do_center_crop) {
        ch = pre->crop_h;
        cw = pre->crop_w;
        if (ch > h || cw > w)
            rc = sb_err_set(err, SB_EINPUT, "center crop %dx%d is larger than the resized %dx%d image", cw, ch, w, h);
        top = (h - ch) / 2; /* HF's center_crop: floor of half the excess */
        left = (w - cw) / 2;
    }
    if (!rc && (ch != model_size || cw != model_size))
        rc = sb_err_set(err, SB_EINPUT, "preprocessing gives %dx%d images; the model takes %dx%d", cw, ch, model_size,
                        model_size);
    for (int c = 0; !rc && c < 3; c++)
        for (int y = 0; y < ch; y++)
            for (int x = 0; x < cw; x++) {
                float v = img[((int64_t)(y + top) * w + x + left) * 3 + c];
                if (pre->do_rescale) v = (float)(v * pre->rescale_factor);
                if (pre->do_normalize) v = (v - pre->mean[c]) / pre->std[c];
                out[((int64_t)c * ch + y) * cw + x] = v;
            }
    free(img);
    return rc;
}
