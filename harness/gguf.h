/* gguf.h - reader for GGUF files (versions 2 and 3), as written by llama.cpp.
 *
 * Layout (little-endian): "GGUF", u32 version, u64 n_tensors, u64 n_kv,
 * then n_kv key/value pairs, then n_tensors tensor infos (name, n_dims,
 * dims[], ggml type, offset), then padding to general.alignment (default
 * 32) and the tensor data.  The file is mmapped; every count, length and
 * offset is checked against the file size before it is used, so a
 * truncated or hostile file gives an error, never a read out of bounds. */
#ifndef SB_GGUF_H
#define SB_GGUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "mapped_file.h"

/* Metadata value types. */
enum {
    SB_GGUF_U8 = 0, SB_GGUF_I8 = 1, SB_GGUF_U16 = 2, SB_GGUF_I16 = 3,
    SB_GGUF_U32 = 4, SB_GGUF_I32 = 5, SB_GGUF_F32 = 6, SB_GGUF_BOOL = 7,
    SB_GGUF_STRING = 8, SB_GGUF_ARRAY = 9, SB_GGUF_U64 = 10, SB_GGUF_I64 = 11,
    SB_GGUF_F64 = 12,
};

/* ggml tensor types that slimbench knows the block layout of. */
enum {
    SB_GGML_F32 = 0, SB_GGML_F16 = 1, SB_GGML_Q4_0 = 2, SB_GGML_Q4_1 = 3,
    SB_GGML_Q5_0 = 6, SB_GGML_Q5_1 = 7, SB_GGML_Q8_0 = 8, SB_GGML_Q8_1 = 9,
    SB_GGML_Q2_K = 10, SB_GGML_Q3_K = 11, SB_GGML_Q4_K = 12, SB_GGML_Q5_K = 13,
    SB_GGML_Q6_K = 14, SB_GGML_Q8_K = 15, SB_GGML_I8 = 24, SB_GGML_I16 = 25,
    SB_GGML_I32 = 26, SB_GGML_I64 = 27, SB_GGML_F64 = 28, SB_GGML_BF16 = 30,
};

/* Name, elements per block and bytes per block of a ggml type; returns
 * false for a type id this table does not know. */
bool sb_ggml_type_info(uint32_t type, const char **name, int *block_elems, int *block_bytes);

typedef struct sb_gguf_kv {
    char *key;              /* owned, NUL-terminated */
    uint32_t type;          /* SB_GGUF_* */
    uint32_t elem_type;     /* for arrays: type of the elements */
    uint64_t n;             /* for arrays: element count; 1 otherwise */
    const uint8_t *value;   /* scalars and numeric arrays: first byte of the value */
    const uint8_t **strs;   /* string values/arrays: pointer to each string's bytes (owned array) */
    uint64_t *str_lens;     /* their lengths (owned array) */
} sb_gguf_kv;

typedef struct sb_gguf_tensor {
    char *name;             /* owned */
    uint32_t n_dims;
    uint64_t ne[4];         /* ne[0] is the fastest-varying (row length) */
    uint32_t type;          /* SB_GGML_* */
    uint64_t n_elems;
    uint64_t n_bytes;
    const uint8_t *data;    /* into the mapping */
} sb_gguf_tensor;

typedef struct sb_gguf {
    sb_mapped_file file;
    uint32_t version;
    uint64_t n_kv;
    sb_gguf_kv *kv;
    uint64_t n_tensors;
    sb_gguf_tensor *tensors;
    uint64_t alignment;
} sb_gguf;

int sb_gguf_open(sb_gguf *g, const char *path, sb_err *err);
void sb_gguf_close(sb_gguf *g);

const sb_gguf_kv *sb_gguf_find(const sb_gguf *g, const char *key);
const sb_gguf_tensor *sb_gguf_find_tensor(const sb_gguf *g, const char *name);

/* Typed getters. Each returns SB_OK, or SB_EINPUT naming the file and key
 * when the key is missing (unless `optional`, which leaves *out untouched
 * and returns SB_OK) or has a type that cannot be read as asked. Integer
 * getters accept any integer type whose value fits. */
int sb_gguf_get_i64(const sb_gguf *g, const char *key, bool optional, int64_t *out, sb_err *err);
int sb_gguf_get_f64(const sb_gguf *g, const char *key, bool optional, double *out, sb_err *err);
int sb_gguf_get_bool(const sb_gguf *g, const char *key, bool optional, bool *out, sb_err *err);
/* Returns a malloc'ed NUL-terminated copy (NULL if optional and absent). */
int sb_gguf_get_str(const sb_gguf *g, const char *key, bool optional, char **out, sb_err *err);

/* Element i of a numeric array value, converted; false if not numeric. */
bool sb_gguf_arr_f64(const sb_gguf_kv *kv, uint64_t i, double *out);
bool sb_gguf_arr_i64(const sb_gguf_kv *kv, uint64_t i, int64_t *out);

#endif
