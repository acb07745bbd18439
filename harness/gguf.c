/* gguf.c - parse a GGUF file's header, metadata and tensor table.
 * See gguf.h for the layout.  A cursor walks the mapping; every read goes
 * through cursor_take(), which refuses to move past the end of the file. */
#include <stdlib.h>
#include <string.h>

#include "gguf.h"

typedef struct {
    const char *name;
    int block_elems;
    int block_bytes;
} ggml_type_row;

/* Indexed by ggml type id; rows with a NULL name are types we do not know. */
static const ggml_type_row ggml_types[] = {
    [SB_GGML_F32] = {"F32", 1, 4},        [SB_GGML_F16] = {"F16", 1, 2},
    [SB_GGML_Q4_0] = {"Q4_0", 32, 18},    [SB_GGML_Q4_1] = {"Q4_1", 32, 20},
    [SB_GGML_Q5_0] = {"Q5_0", 32, 22},    [SB_GGML_Q5_1] = {"Q5_1", 32, 24},
    [SB_GGML_Q8_0] = {"Q8_0", 32, 34},    [SB_GGML_Q8_1] = {"Q8_1", 32, 36},
    [SB_GGML_Q2_K] = {"Q2_K", 256, 84},   [SB_GGML_Q3_K] = {"Q3_K", 256, 110},
    [SB_GGML_Q4_K] = {"Q4_K", 256, 144},  [SB_GGML_Q5_K] = {"Q5_K", 256, 176},
    [SB_GGML_Q6_K] = {"Q6_K", 256, 210},  [SB_GGML_Q8_K] = {"Q8_K", 256, 292},
    [SB_GGML_I8] = {"I8", 1, 1},          [SB_GGML_I16] = {"I16", 1, 2},
    [SB_GGML_I32] = {"I32", 1, 4},        [SB_GGML_I64] = {"I64", 1, 8},
    [SB_GGML_F64] = {"F64", 1, 8},        [SB_GGML_BF16] = {"BF16", 1, 2},
};

bool sb_ggml_type_info(uint32_t type, const char **name, int *block_elems, int *block_bytes) {
    if (type >= sizeof ggml_types / sizeof ggml_types[0] || !ggml_types[type].name) return false;
    if (name) *name = ggml_types[type].name;
    if (block_elems) *block_elems = ggml_types[type].block_elems;
    if (block_bytes) *block_bytes = ggml_types[type].block_bytes;
    return true;
}

typedef struct {
    const uint8_t *base;
    size_t size;
    size_t pos;
    const char *path;
    sb_err *err;
} cursor;

static const uint8_t *cursor_take(cursor *c, uint64_t n, const char *what) {
    if (n > c->size - c->pos) {
        sb_err_set(c->err, SB_EINPUT, "%s: truncated file: %s at byte %zu needs %llu bytes, %zu left",
                   c->path, what, c->pos, (unsigned long long)n, c->size - c->pos);
        return NULL;
    }
    const uint8_t *p = c->base + c->pos;
    c->pos += (size_t)n;
    return p;
}

static bool read_u32(cursor *c, uint32_t *v, const char *what) {
    const uint8_t *p = cursor_take(c, 4, what);
    if (p) memcpy(v, p, 4);
    return p != NULL;
}

static bool read_u64(cursor *c, uint64_t *v, const char *what) {
    const uint8_t *p = cursor_take(c, 8, what);
    if (p) memcpy(v, p, 8);
    return p != NULL;
}

/* A GGUF string: u64 length then bytes (no terminator). */
static bool read_str(cursor *c, const uint8_t **s, uint64_t *len, const char *what) {
    if (!read_u64(c, len, what)) return false;
    *s = cursor_take(c, *len, what);
    return *s != NULL;
}

static char *dup_str(const uint8_t *s, uint64_t len, sb_err *err) {
    char *out = sb_malloc(err, len + 1);
    if (out) {
        memcpy(out, s, len);
        out[len] = 0;
    }
    return out;
}

static int scalar_size(uint32_t type) {
    switch (type) {
    case SB_GGUF_U8: case SB_GGUF_I8: case SB_GGUF_BOOL: return 1;
    case SB_GGUF_U16: case SB_GGUF_I16: return 2;
    case SB_GGUF_U32: case SB_GGUF_I32: case SB_GGUF_F32: return 4;
    case SB_GGUF_U64: case SB_GGUF_I64: case SB_GGUF_F64: return 8;
    default: return 0;
    }
}

/* Reads the value of kv (its type already set) and records where it lies. */
static bool read_value(cursor *c, sb_gguf_kv *kv) {
    uint32_t type = kv->type;
    kv->n = 1;
    kv->elem_type = type;
    if (type == SB_GGUF_ARRAY) {
        if (!read_u32(c, &kv->elem_type, kv->key) || !read_u64(c, &kv->n, kv->key)) return false;
        if (kv->elem_type == SB_GGUF_ARRAY) {
            sb_err_set(c->err, SB_EINPUT, "%s: key '%s': nested arrays are not supported", c->path, kv->key);
            return false;
        }
    }
    if (kv->elem_type == SB_GGUF_STRING) {
        /* Each string takes at least its 8-byte length: bounds the count before allocating. */
        if (kv->n > (c->size - c->pos) / 8) {
            sb_err_set(c->err, SB_EINPUT, "%s: key '%s': impossible string count %llu", c->path, kv->key,
                       (unsigned long long)kv->n);
            return false;
        }
        kv->strs = sb_calloc(c->err, kv->n, sizeof *kv->strs);
        kv->str_lens = sb_calloc(c->err, kv->n, sizeof *kv->str_lens);
        if (!kv->strs || !kv->str_lens) return false;
        for (uint64_t i = 0; i < kv->n; i++)
            if (!read_str(c, &kv->strs[i], &kv->str_lens[i], kv->key)) return false;
        return true;
    }
    int sz = scalar_size(kv->elem_type);
    if (sz == 0) {
        sb_err_set(c->err, SB_EINPUT, "%s: key '%s': unknown value type %u", c->path, kv->key, kv->elem_type);
        return false;
    }
    if (kv->n > (c->size - c->pos) / (uint64_t)sz) {
        sb_err_set(c->err, SB_EINPUT, "%s: key '%s': array of %llu elements runs past the end of the file",
                   c->path, kv->key, (unsigned long long)kv->n);
        return false;
    }
    kv->value = cursor_take(c, kv->n * (uint64_t)sz, kv->key);
    return kv->value != NULL;
}

static bool read_kvs(cursor *c, sb_gguf *g) {
    /* Each pair takes at least 8 (key length) + 4 (type) + 1 bytes. */
    if (g->n_kv > (c->size - c->pos) / 13) {
        sb_err_set(c->err, SB_EINPUT, "%s: impossible metadata count %llu for a %zu-byte file", c->path,
                   (unsigned long long)g->n_kv, c->size);
        return false;
    }
    g->kv = sb_calloc(c->err, g->n_kv, sizeof *g->kv);
    if (!g->kv) return false;
    for (uint64_t i = 0; i < g->n_kv; i++) {
        sb_gguf_kv *kv = &g->kv[i];
        const uint8_t *key;
        uint64_t key_len;
        if (!read_str(c, &key, &key_len, "metadata key")) return false;
        if (!(kv->key = dup_str(key, key_len, c->err))) return false;
        for (uint64_t j = 0; j < i; j++)
            if (strcmp(g->kv[j].key, kv->key) == 0) {
                sb_err_set(c->err, SB_EINPUT, "%s: metadata key '%s' appears twice", c->path, kv->key);
                return false;
            }
        if (!read_u32(c, &kv->type, kv->key) || !read_value(c, kv)) return false;
    }
    return true;
}

static bool read_tensor_info(cursor *c, sb_gguf_tensor *t, uint64_t *offset) {
    const uint8_t *name;
    uint64_t name_len;
    if (!read_str(c, &name, &name_len, "tensor name")) return false;
    if (!(t->name = dup_str(name, name_len, c->err))) return false;
    if (!read_u32(c, &t->n_dims, t->name)) return false;
    if (t->n_dims < 1 || t->n_dims > 4) {
        sb_err_set(c->err, SB_EINPUT, "%s: tensor '%s': impossible dimension count %u", c->path, t->name, t->n_dims);
        return false;
    }
    t->n_elems = 1;
    for (uint32_t d = 0; d < 4; d++) {
        t->ne[d] = 1;
        if (d < t->n_dims && !read_u64(c, &t->ne[d], t->name)) return false;
        if (t->ne[d] == 0 || t->ne[d] > (1ull << 40) || t->n_elems > (1ull << 48) / t->ne[d]) {
            sb_err_set(c->err, SB_EINPUT, "%s: tensor '%s': impossible shape", c->path, t->name);
            return false;
        }
        t->n_elems *= t->ne[d];
    }
    if (!read_u32(c, &t->type, t->name) || !read_u64(c, offset, t->name)) return false;
    const char *tname;
    int be, bb;
    if (!sb_ggml_type_info(t->type, &tname, &be, &bb)) {
        sb_err_set(c->err, SB_EINPUT, "%s: tensor '%s': unknown ggml type %u", c->path, t->name, t->type);
        return false;
    }
    if (t->ne[0] % (uint64_t)be != 0) {
        sb_err_set(c->err, SB_EINPUT, "%s: tensor '%s': row length %llu is not a multiple of the %s block size %d",
                   c->path, t->name, (unsigned long long)t->ne[0], tname, be);
        return false;
    }
    t->n_bytes = t->n_elems / (uint64_t)be * (uint64_t)bb;
    return true;
}

static bool read_tensors(cursor *c, sb_gguf *g) {
    /* Each info takes at least 8 + 4 + 8 + 4 + 8 bytes. */
    if (g->n_tensors > (c->size - c->pos) / 32) {
        sb_err_set(c->err, SB_EINPUT, "%s: impossible tensor count %llu for a %zu-byte file", c->path,
                   (unsigned long long)g->n_tensors, c->size);
        return false;
    }
    g->tensors = sb_calloc(c->err, g->n_tensors, sizeof *g->tensors);
    uint64_t *offsets = sb_calloc(c->err, g->n_tensors, sizeof *offsets);
    bool ok = g->tensors && offsets;
    for (uint64_t i = 0; ok && i < g->n_tensors; i++) ok = read_tensor_info(c, &g->tensors[i], &offsets[i]);
    if (ok) {
        uint64_t data_start = (c->pos + g->alignment - 1) / g->alignment * g->alignment;
        for (uint64_t i = 0; ok && i < g->n_tensors; i++) {
            sb_gguf_tensor *t = &g->tensors[i];
            if (offsets[i] % g->alignment != 0 || data_start > c->size || offsets[i] > c->size - data_start ||
                t->n_bytes > c->size - data_start - offsets[i]) {
                sb_err_set(c->err, SB_EINPUT,
                           "%s: tensor '%s': data at offset %llu (%llu bytes) lies outside the %zu-byte file or is misaligned",
                           c->path, t->name, (unsigned long long)offsets[i], (unsigned long long)t->n_bytes, c->size);
                ok = false;
                break;
            }
            t->data = c->base + data_start + offsets[i];
        }
    }
    free(offsets);
    return ok;
}

int sb_gguf_open(sb_gguf *g, const char *path, sb_err *err) {
    memset(g, 0, sizeof *g);
    int rc = sb_mapped_file_open(&g->file, path, err);
    if (rc) return rc;
    cursor c = {g->file.data, g->file.size, 0, path, err};
    uint32_t magic;
    if (!read_u32(&c, &magic, "magic")) goto fail;
    if (memcmp(g->file.data, "GGUF", 4) != 0) {
        sb_err_set(err, SB_EINPUT, "%s: not a GGUF file (bad magic)", path);
        goto fail;
    }
    if (!read_u32(&c, &g->version, "version")) goto fail;
    if (g->version != 2 && g->version != 3) {
        sb_err_set(err, SB_EINPUT, "%s: unsupported GGUF version %u (2 and 3 are supported)", path, g->version);
        goto fail;
    }
    if (!read_u64(&c, &g->n_tensors, "tensor count") || !read_u64(&c, &g->n_kv, "metadata count")) goto fail;
    if (!read_kvs(&c, g)) goto fail;
    g->alignment = 32;
    int64_t align = 32;
    if (sb_gguf_get_i64(g, "general.alignment", true, &align, err)) goto fail;
    if (align <= 0 || (align & (align - 1)) != 0) {
        sb_err_set(err, SB_EINPUT, "%s: general.alignment %lld is not a power of two", path, (long long)align);
        goto fail;
    }
    g->alignment = (uint64_t)align;
    if (!read_tensors(&c, g)) goto fail;
    return SB_OK;
fail:
    sb_gguf_close(g);
    return err->code ? err->code : SB_EINPUT;
}

void sb_gguf_close(sb_gguf *g) {
    for (uint64_t i = 0; g->kv && i < g->n_kv; i++) {
        free(g->kv[i].key);
        free(g->kv[i].strs);
        free(g->kv[i].str_lens);
    }
    for (uint64_t i = 0; g->tensors && i < g->n_tensors; i++) free(g->tensors[i].name);
    free(g->kv);
    free(g->tensors);
    sb_mapped_file_close(&g->file);
    memset(g, 0, sizeof *g);
}

const sb_gguf_kv *sb_gguf_find(const sb_gguf *g, const char *key) {
    for (uint64_t i = 0; i < g->n_kv; i++)
        if (g->kv[i].key && strcmp(g->kv[i].key, key) == 0) return &g->kv[i];
    return NULL;
}

const sb_gguf_tensor *sb_gguf_find_tensor(const sb_gguf *g, const char *name) {
    for (uint64_t i = 0; i < g->n_tensors; i++)
        if (strcmp(g->tensors[i].name, name) == 0) return &g->tensors[i];
    return NULL;
}

static bool element_f64(uint32_t type, const uint8_t *p, double *out) {
    union { uint8_t u8; int8_t i8; uint16_t u16; int16_t i16; uint32_t u32; int32_t i32;
            float f32; uint64_t u64; int64_t i64; double f64; } v;
    int sz = scalar_size(type);
    if (sz == 0) return false;
    memcpy(&v, p, (size_t)sz);
    switch (type) {
    case SB_GGUF_U8: case SB_GGUF_BOOL: *out = v.u8; break;
    case SB_GGUF_I8: *out = v.i8; break;
    case SB_GGUF_U16: *out = v.u16; break;
    case SB_GGUF_I16: *out = v.i16; break;
    case SB_GGUF_U32: *out = v.u32; break;
    case SB_GGUF_I32: *out = v.i32; break;
    case SB_GGUF_F32: *out = v.f32; break;
    case SB_GGUF_U64: *out = (double)v.u64; break;
    case SB_GGUF_I64: *out = (double)v.i64; break;
    case SB_GGUF_F64: *out = v.f64; break;
    default: return false;
    }
    return true;
}

static bool is_integer_type(uint32_t t) {
    return t != SB_GGUF_F32 && t != SB_GGUF_F64 && scalar_size(t) != 0;
}

bool sb_gguf_arr_f64(const sb_gguf_kv *kv, uint64_t i, double *out) {
    if (i >= kv->n || !kv->value) return false;
    return element_f64(kv->elem_type, kv->value + i * (uint64_t)scalar_size(kv->elem_type), out);
}

bool sb_gguf_arr_i64(const sb_gguf_kv *kv, uint64_t i, int64_t *out) {
    double d;
    if (!is_integer_type(kv->elem_type) || !sb_gguf_arr_f64(kv, i, &d)) return false;
    if (kv->elem_type == SB_GGUF_U64 || kv->elem_type == SB_GGUF_I64) {
        memcpy(out, kv->value + i * 8, 8); /* exact, no trip through double */
        return kv->elem_type == SB_GGUF_I64 || *out >= 0;
    }
    *out = (int64_t)d;
    return true;
}

static const sb_gguf_kv *find_scalar(const sb_gguf *g, const char *key, bool optional, int *rc, sb_err *err) {
    *rc = SB_OK;
    const sb_gguf_kv *kv = sb_gguf_find(g, key);
    if (!kv) {
        if (!optional) *rc = sb_err_set(err, SB_EINPUT, "%s: missing metadata key '%s'", g->file.path, key);
        return NULL;
    }
    if (kv->type == SB_GGUF_ARRAY) {
        *rc = sb_err_set(err, SB_EINPUT, "%s: metadata key '%s' is an array, expected a single value", g->file.path, key);
        return NULL;
    }
    return kv;
}

int sb_gguf_get_i64(const sb_gguf *g, const char *key, bool optional, int64_t *out, sb_err *err) {
    int rc;
    const sb_gguf_kv *kv = find_scalar(g, key, optional, &rc, err);
    if (!kv) return rc;
    if (!sb_gguf_arr_i64(kv, 0, out))
        return sb_err_set(err, SB_EINPUT, "%s: metadata key '%s' is not an integer", g->file.path, key);
    return SB_OK;
}

int sb_gguf_get_f64(const sb_gguf *g, const char *key, bool optional, double *out, sb_err *err) {
    int rc;
    const sb_gguf_kv *kv = find_scalar(g, key, optional, &rc, err);
    if (!kv) return rc;
    if (!sb_gguf_arr_f64(kv, 0, out))
        return sb_err_set(err, SB_EINPUT, "%s: metadata key '%s' is not a number", g->file.path, key);
    return SB_OK;
}

int sb_gguf_get_bool(const sb_gguf *g, const char *key, bool optional, bool *out, sb_err *err) {
    int rc;
    const sb_gguf_kv *kv = find_scalar(g, key, optional, &rc, err);
    if (!kv) return rc;
    if (kv->type != SB_GGUF_BOOL)
        return sb_err_set(err, SB_EINPUT, "%s: metadata key '%s' is not a bool", g->file.path, key);
    *out = kv->value[0] != 0;
    return SB_OK;
}

int sb_gguf_get_str(const sb_gguf *g, const char *key, bool optional, char **out, sb_err *err) {
    int rc;
    *out = NULL;
    const sb_gguf_kv *kv = find_scalar(g, key, optional, &rc, err);
    if (!kv) return rc;
    if (kv->type != SB_GGUF_STRING)
        return sb_err_set(err, SB_EINPUT, "%s: metadata key '%s' is not a string", g->file.path, key);
    *out = dup_str(kv->strs[0], kv->str_lens[0], err);
    return *out ? SB_OK : SB_EINTERNAL;
}
