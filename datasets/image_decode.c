/* image_decode.c - one PNG, PPM (P6) or PGM (P5) file in memory to an
 * 8-bit sb_image.
 *
 * PNG goes through libpng's simplified API, which converts every colour
 * type and bit depth to 8-bit grey or RGB (alpha composited on black, 16-bit
 * samples reduced) and reports corrupt or truncated data as a message
 * instead of a longjmp into our code. */
#include <png.h>
#include <stdio.h>
#include <string.h>

#include "image_internal.h"

int sb_image_decode_png(const uint8_t *data, size_t size, const char *where, sb_image *out, sb_err *err) {
    memset(out, 0, sizeof *out);
    png_image png;
    memset(&png, 0, sizeof png);
    png.version = PNG_IMAGE_VERSION;
    if (!png_image_begin_read_from_memory(&png, data, size))
        return sb_err_set(err, SB_EINPUT, "%s: bad PNG: %s", where, png.message);
    int channels = (png.format & PNG_FORMAT_FLAG_COLOR) ? 3 : 1;
    png.format = channels == 3 ? PNG_FORMAT_RGB : PNG_FORMAT_GRAY;
    /* the header's sizes are checked before anything is allocated for them */
    int rc = sb_image_alloc(out, (int)(png.width > SB_IMAGE_MAX_SIDE ? 0 : png.width),
                            (int)(png.height > SB_IMAGE_MAX_SIDE ? 0 : png.height), channels, where, err);
    if (rc != SB_OK) {
        png_image_free(&png);
        return rc;
    }
    if (!png_image_finish_read(&png, NULL, out->pixels, 0, NULL)) {
        sb_image_release(out);
        return sb_err_set(err, SB_EINPUT, "%s: bad or truncated PNG: %s", where, png.message);
    }
    return SB_OK;
}

/* Netpbm header fields: whitespace and '#' comments to the end of line
 * separate decimal numbers. Returns -1 when no number is there. */
static long pnm_number(const uint8_t *data, size_t size, size_t *pos) {
    size_t i = *pos;
    for (;;) {
        while (i < size && (data[i] == ' ' || data[i] == '\t' || data[i] == '\n' || data[i] == '\r')) i++;
        if (i < size && data[i] == '#') {
            while (i < size && data[i] != '\n') i++;
            continue;
        }
        break;
    }
    long v = 0;
    size_t start = i;
    while (i < size && data[i] >= '0' && data[i] <= '9' && v <= 100000) v = v * 10 + (data[i++] - '0');
    if (i == start || v > 100000) return -1;
    *pos = i;
    return v;
}

int sb_image_decode_pnm(const uint8_t *data, size_t size, const char *where, sb_image *out, sb_err *err) {
    memset(out, 0, sizeof *out);
    if (size < 2 || data[0] != 'P' || (data[1] != '5' && data[1] != '6'))
        return sb_err_set(err, SB_EINPUT, "%s: not a binary PGM (P5) or PPM (P6) file", where);
    int channels = data[1] == '6' ? 3 : 1;
    size_t pos = 2;
    long w = pnm_number(data, size, &pos), h = pnm_number(data, size, &pos), maxval = pnm_number(data, size, &pos);
    if (w < 0 || h < 0 || maxval < 0) return sb_err_set(err, SB_EINPUT, "%s: bad PNM header (width height maxval)", where);
    if (maxval < 1 || maxval > 255)
        return sb_err_set(err, SB_EINPUT, "%s: maxval %ld (only 8-bit files, maxval 1..255, are supported)", where, maxval);
    /* exactly one whitespace byte ends the header; the samples follow */
    if (pos >= size) return sb_err_set(err, SB_EINPUT, "%s: truncated PNM header", where);
    pos++;
    int rc = sb_image_alloc(out, (int)w, (int)h, channels, where, err);
    if (rc != SB_OK) return rc;
    size_t n = (size_t)w * (size_t)h * (size_t)channels;
    if (size - pos < n) {
        sb_image_release(out);
        return sb_err_set(err, SB_EINPUT, "%s: truncated: %zu sample bytes for a %ldx%ld image that needs %zu", where,
                          size - pos, w, h, n);
    }
    for (size_t i = 0; i < n; i++) {
        unsigned v = data[pos + i];
        if (v > (unsigned)maxval) {
            sb_image_release(out);
            return sb_err_set(err, SB_EINPUT, "%s: sample %u above maxval %ld at byte %zu", where, v, maxval, pos + i);
        }
        /* rescale to 0..255, rounding, so every source shares one range */
        out->pixels[i] = (uint8_t)((v * 255u + (unsigned)maxval / 2) / (unsigned)maxval);
    }
    return SB_OK;
}
