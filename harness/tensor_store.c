#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ggml_quants.h"
#include "gguf.h"
#include "tensor_store.h"

void sb_store_free(sb_tensor_store *st) {
    for (int i = 0; i < st->n; i++) free(st->tensors[i].name);
    free(st->tensors);
    for (int i = 0; i < st->n_files; i++) sb_mapped_file_close(&st->files[i]);
    free(st->files);
    memset(st, 0, sizeof *st);
}

int sb_store_add(sb_tensor_store *st, const sb_tensor_ref *t, sb_err *err) {
    if (sb_store_find(st, t->name))
        return sb_err_set(err, SB_EINPUT, "%s: tensor '%s' appears twice", t->file, t->name);
    if (st->n == st->cap) {
        int cap = st->cap ? st->cap * 2 : 64;
        sb_tensor_ref *bigger = realloc(st->tensors, sizeof *bigger * (size_t)cap);
        if (!bigger) return sb_err_set(err, SB_EINTERNAL, "out of memory");
        st->tensors = bigger;
        st->cap = cap;
    }
    st->tensors[st->n++] = *t;
    return SB_OK;
}

int sb_store_keep_file(sb_tensor_store *st, sb_mapped_file *f, sb_err *err) {
    sb_mapped_file *bigger = realloc(st->files, sizeof *bigger * (size_t)(st->n_files + 1));
    if (!bigger) return sb_err_set(err, SB_EINTERNAL, "out of memory");
    st->files = bigger;
    st->files[st->n_files++] = *f;
    memset(f, 0, sizeof *f);
    return SB_OK;
}

void sb_store_give_files(sb_tensor_store *st, sb_mapped_file **files, int *n_files) {
    *files = st->files;
    *n_files = st->n_files;
    st->files = NULL;
    st->n_files = 0;
}

const sb_tensor_ref *sb_store_find(const sb_tensor_store *st, const char *name) {
    for (int i = 0; i < st->n; i++)
        if (strcmp(st->tensors[i].name, name) == 0) return &st->tensors[i];
    return NULL;
}

bool sb_store_has(const sb_tensor_store *st, const char *name) { return sb_store_find(st, name) != NULL; }

void sb_store_mark_used(sb_tensor_store *st, const char *name) {
    for (int i = 0; i < st->n; i++)
        if (strcmp(st->tensors[i].name, name) == 0) st->tensors[i].used = true;
}

int64_t sb_tensor_elems(const sb_tensor_ref *t) {
    int64_t n = 1;
    for (int d = 0; d < t->n_dims; d++) n *= t->shape[d];
    return n;
}

static bool ends_with_any(const char *name, const char *const *suffixes) {
    size_t n = strlen(name);
    for (; suffixes && *suffixes; suffixes++) {
        size_t k = strlen(*suffixes);
        if (n >= k && strcmp(name + n - k, *suffixes) == 0) return true;
    }
    return false;
}

int sb_store_check_all_used(const sb_tensor_store *st, const char *arch, const char *const *ignorable_suffixes,
                            sb_err *err) {
    for (int i = 0; i < st->n; i++)
        if (!st->tensors[i].used && !ends_with_any(st->tensors[i].name, ignorable_suffixes))
            return sb_err_set(err, SB_EINPUT, "%s: tensor '%s' has no place in the %s layout (unsupported variant?)",
                              st->tensors[i].file, st->tensors[i].name, arch);
    return SB_OK;
}

static sb_tensor_ref *find_mutable(sb_tensor_store *st, const char *name, sb_err *err) {
    for (int i = 0; i < st->n; i++)
        if (strcmp(st->tensors[i].name, name) == 0) {
            st->tensors[i].used = true;
            return &st->tensors[i];
        }
    sb_err_set(err, SB_EINPUT, "%s: missing tensor '%s'", st->what, name);
    return NULL;
}

static void shape_text(const sb_tensor_ref *t, char *buf, size_t n) {
    size_t used = (size_t)snprintf(buf, n, "[");
    for (int d = 0; d < t->n_dims && used < n; d++)
        used += (size_t)snprintf(buf + used, n - used, d ? ", %lld" : "%lld", (long long)t->shape[d]);
    if (used < n) snprintf(buf + used, n - used, "]");
}

/* Checks that t holds exactly `n_dims` dims equal to dims[] (trailing 1s of
 * a 1-D GGUF vector are not an issue: GGUF vectors have n_dims 1). */
static int expect_shape(const sb_tensor_ref *t, int n_dims, const int64_t *dims, sb_err *err) {
    bool ok = t->n_dims == n_dims;
    for (int d = 0; ok && d < n_dims; d++) ok = t->shape[d] == dims[d];
    if (ok) return SB_OK;
    char got[96], want[96];
    sb_tensor_ref w = {.n_dims = n_dims};
    for (int d = 0; d < n_dims; d++) w.shape[d] = dims[d];
    shape_text(t, got, sizeof got);
    shape_text(&w, want, sizeof want);
    return sb_err_set(err, SB_EINPUT, "%s: tensor '%s' has shape %s, expected %s", t->file, t->name, got, want);
}

int sb_tensor_decode_f32(const sb_tensor_ref *t, float *dst, sb_err *err) {
    if (!sb_ggml_dequantize(t->type, t->data, dst, sb_tensor_elems(t))) {
        const char *name = "unknown";
        sb_ggml_type_info(t->type, &name, NULL, NULL);
        return sb_err_set(err, SB_EINPUT, "%s: tensor '%s' has type %s, which cannot be decoded", t->file, t->name, name);
    }
    return SB_OK;
}

static int decode_copy(const sb_tensor_ref *t, float **out, sb_err *err) {
    *out = sb_malloc(err, sizeof(float) * (size_t)sb_tensor_elems(t));
    if (!*out) return SB_EINTERNAL;
    int rc = sb_tensor_decode_f32(t, *out, err);
    if (rc) {
        free(*out);
        *out = NULL;
    }
    return rc;
}

int sb_store_take_vector(sb_tensor_store *st, const char *name, int64_t n, float offset, float **out, sb_err *err) {
    sb_tensor_ref *t = find_mutable(st, name, err);
    if (!t) return err->code;
    int rc = expect_shape(t, 1, &n, err);
    if (!rc) rc = decode_copy(t, out, err);
    if (!rc && offset != 0)
        for (int64_t i = 0; i < n; i++) (*out)[i] += offset;
    return rc;
}

int sb_store_take_matrix_f32(sb_tensor_store *st, const char *name, int64_t rows, int64_t cols, bool transposed,
                             float **out, sb_err *err) {
    sb_tensor_ref *t = find_mutable(st, name, err);
    if (!t) return err->code;
    int64_t dims[2] = {transposed ? cols : rows, transposed ? rows : cols};
    int rc = expect_shape(t, 2, dims, err);
    if (!rc) rc = decode_copy(t, out, err);
    if (rc || !transposed) return rc;
    float *tr = sb_malloc(err, sizeof(float) * (size_t)(rows * cols));
    if (!tr) {
        free(*out);
        *out = NULL;
        return SB_EINTERNAL;
    }
    for (int64_t c = 0; c < cols; c++)
        for (int64_t r = 0; r < rows; r++) tr[r * cols + c] = (*out)[c * rows + r];
    free(*out);
    *out = tr;
    return SB_OK;
}

int sb_store_take_linear(sb_tensor_store *st, const char *name, const char *bias_name, int64_t rows, int64_t cols,
                         sb_linear *out, sb_err *err) {
    memset(out, 0, sizeof *out);
    sb_tensor_ref *t = find_mutable(st, name, err);
    if (!t) return err->code;
    int64_t dims[2] = {rows, cols};
    int rc = expect_shape(t, 2, dims, err);
    if (rc) return rc;
    out->rows = rows;
    out->cols = cols;
    uintptr_t addr = (uintptr_t)t->data;
    if (t->type == SB_GGML_F32 && addr % 4 == 0) {
        out->fmt = &sb_format_f32;
        out->data = t->data;
    } else if ((t->type == SB_GGML_F16 || t->type == SB_GGML_BF16) && addr % 2 == 0) {
        out->fmt = t->type == SB_GGML_F16 ? &sb_format_f16 : &sb_format_bf16;
        out->data = t->data;
    } else {
        /* quantized GGUF blocks (kept packed by a later format) or misaligned data */
        float *f;
        if ((rc = decode_copy(t, &f, err))) return rc;
        out->fmt = &sb_format_f32;
        out->data = out->owned = f;
    }
    if (bias_name && sb_store_has(st, bias_name)) {
        rc = sb_store_take_vector(st, bias_name, rows, 0, &out->bias, err);
        if (rc) sb_linear_free(out);
    }
    return rc;
}
