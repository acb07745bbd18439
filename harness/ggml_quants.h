/* ggml_quants.h - decode ggml tensor data (as stored in GGUF files) to f32.
 *
 * Supported: F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 (32-element
 * blocks) and the K-quants Q2_K, Q3_K, Q4_K, Q5_K, Q6_K (256-element
 * super-blocks).  Type ids and block sizes are those of gguf.h.  Results
 * are bit-identical to the reference decoders (llama.cpp's dequantize_row_*
 * and the gguf Python package's quants.dequantize): each element is computed
 * with the same float operations in the same order. */
#ifndef SB_GGML_QUANTS_H
#define SB_GGML_QUANTS_H

#include <stdbool.h>
#include <stdint.h>

/* Decodes n elements (a multiple of the type's block size) of ggml type
 * `type` from src to dst.  Returns false, writing nothing, for a type it
 * cannot decode or an n that is negative or not a whole number of blocks. */
bool sb_ggml_dequantize(uint32_t type, const void *src, float *dst, int64_t n);

/* Whether sb_ggml_dequantize can decode this type. */
bool sb_ggml_can_dequantize(uint32_t type);

#endif
