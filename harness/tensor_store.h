/* tensor_store.h - the tensors of a checkpoint, whatever file they came
 * from, and the functions adapters use to turn them into model parts.
 *
 * Shapes are stored outermost-first as PyTorch writes them ([rows, cols]
 * for a linear weight); the GGUF reader reverses ggml's ne[] order so both
 * sources look the same.  Types are ggml type ids (F32, F16, BF16 and the
 * quantized blocks), which also covers safetensors' F32/F16/BF16. */
#ifndef SB_TENSOR_STORE_H
#define SB_TENSOR_STORE_H

#include <stdbool.h>
#include <stdint.h>

#include "error.h"
#include "mapped_file.h"
#include "weight_format.h"

typedef struct sb_tensor_ref {
    char *name;            /* owned */
    uint32_t type;         /* SB_GGML_* */
    int n_dims;
    int64_t shape[4];      /* outermost first */
    const uint8_t *data;   /* into a mapping */
    uint64_t n_bytes;
    const char *file;      /* path of the file it lives in, for messages */
    bool used;             /* taken by the adapter */
} sb_tensor_ref;

typedef struct sb_tensor_store {
    sb_tensor_ref *tensors;
    int n, cap;
    sb_mapped_file *files; /* ownership passes to the model on success */
    int n_files;
    const char *what;      /* "model.safetensors" / GGUF path: the source named in errors */
} sb_tensor_store;

void sb_store_free(sb_tensor_store *st);
int sb_store_add(sb_tensor_store *st, const sb_tensor_ref *t, sb_err *err); /* copies t, takes name */
/* Keeps a mapping alive for as long as the store (then the model) lives. */
int sb_store_keep_file(sb_tensor_store *st, sb_mapped_file *f, sb_err *err);
/* Moves the kept mappings out to *files / *n_files (the model's, whose weights
 * point into them); the store no longer unmaps them. */
void sb_store_give_files(sb_tensor_store *st, sb_mapped_file **files, int *n_files);

const sb_tensor_ref *sb_store_find(const sb_tensor_store *st, const char *name);
bool sb_store_has(const sb_tensor_store *st, const char *name);
/* Marks a tensor as accounted for without taking it (if present). */
void sb_store_mark_used(sb_tensor_store *st, const char *name);
/* Fails naming the first tensor no adapter took (unless its name ends in
 * one of the NULL-terminated ignorable suffixes): an unknown tensor means
 * a variant the adapter does not know, and refusing it beats silently
 * computing a different model. */
int sb_store_check_all_used(const sb_tensor_store *st, const char *arch, const char *const *ignorable_suffixes,
                            sb_err *err);

/* A linear layer [rows, cols] from tensor `name`: f32, f16 and bf16 are
 * used in place from the mapping; other types are decoded to f32. The
 * bias, if bias_name is non-NULL and present, is decoded to f32. */
int sb_store_take_linear(sb_tensor_store *st, const char *name, const char *bias_name, int64_t rows, int64_t cols,
                         sb_linear *out, sb_err *err);
/* A vector of n values decoded to f32 (malloc'ed), plus `offset` added to
 * each (Gemma stores norm weights as w with the norm multiplying by 1 + w). */
int sb_store_take_vector(sb_tensor_store *st, const char *name, int64_t n, float offset, float **out, sb_err *err);
/* A [rows, cols] matrix decoded to a malloc'ed f32 copy; transposed = the
 * tensor is stored [cols, rows] (GPT-2's Conv1D) and is transposed here. */
int sb_store_take_matrix_f32(sb_tensor_store *st, const char *name, int64_t rows, int64_t cols, bool transposed,
                             float **out, sb_err *err);

/* Decodes a whole tensor to f32 (n_elems values) into dst. */
int sb_tensor_decode_f32(const sb_tensor_ref *t, float *dst, sb_err *err);
int64_t sb_tensor_elems(const sb_tensor_ref *t);

/* Reads a Hugging Face safetensors file (or every shard listed in an
 * index.json) into the store. */
int sb_safetensors_load(sb_tensor_store *st, const char *path, sb_err *err);

#endif
