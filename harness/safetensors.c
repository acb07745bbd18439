/* safetensors.c - Hugging Face safetensors files into a tensor store.
 *
 * Layout: u64 little-endian header length N, N bytes of JSON mapping each
 * tensor name to {"dtype", "shape", "data_offsets": [begin, end]} (offsets
 * relative to the byte after the header), an optional "__metadata__", then
 * the data.  Sharded checkpoints add model.safetensors.index.json whose
 * "weight_map" names the shard of every tensor. */
#include <cjson/cJSON.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"
#include "tensor_store.h"

/* safetensors dtype name -> ggml type id and element size; the dtypes the
 * engine cannot use as weights are still recognised so the error says so. */
static int dtype_to_type(const char *dtype, uint32_t *type, int *elem_bytes) {
    static const struct { const char *name; int type; int bytes; } table[] = {
        {"F32", SB_GGML_F32, 4}, {"F16", SB_GGML_F16, 2}, {"BF16", SB_GGML_BF16, 2},
        {"F64", SB_GGML_F64, 8}, {"I8", SB_GGML_I8, 1}, {"I16", SB_GGML_I16, 2},
        {"I32", SB_GGML_I32, 4}, {"I64", SB_GGML_I64, 8},
        {"U8", -1, 1}, {"BOOL", -1, 1}, {"U16", -1, 2}, {"U32", -1, 4}, {"U64", -1, 8},
        {"F8_E4M3", -1, 1}, {"F8_E5M2", -1, 1},
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (strcmp(dtype, table[i].name) == 0) {
            *type = table[i].type < 0 ? UINT32_MAX : (uint32_t)table[i].type;
            *elem_bytes = table[i].bytes;
            return 1;
        }
    return 0;
}

static int parse_entry(sb_tensor_store *st, const sb_mapped_file *f, const cJSON *item, uint64_t data_start,
                       sb_err *err) {
    const char *path = f->path, *name = item->string;
    const cJSON *dtype = cJSON_GetObjectItemCaseSensitive(item, "dtype");
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(item, "shape");
    const cJSON *offs = cJSON_GetObjectItemCaseSensitive(item, "data_offsets");
    if (!cJSON_IsString(dtype) || !cJSON_IsArray(shape) || !cJSON_IsArray(offs) || cJSON_GetArraySize(offs) != 2)
        return sb_err_set(err, SB_EINPUT, "%s: tensor '%s': header entry needs dtype, shape and data_offsets", path, name);
    sb_tensor_ref t = {.file = path};
    int elem_bytes;
    if (!dtype_to_type(dtype->valuestring, &t.type, &elem_bytes))
        return sb_err_set(err, SB_EINPUT, "%s: tensor '%s': unknown dtype '%s'", path, name, dtype->valuestring);
    t.n_dims = cJSON_GetArraySize(shape);
    if (t.n_dims > 4) return sb_err_set(err, SB_EINPUT, "%s: tensor '%s': %d dimensions (at most 4)", path, name, t.n_dims);
    uint64_t n_elems = 1;
    for (int d = 0; d < t.n_dims; d++) {
        const cJSON *v = cJSON_GetArrayItem(shape, d);
        if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > 1e12 || v->valuedouble != (double)(int64_t)v->valuedouble)
            return sb_err_set(err, SB_EINPUT, "%s: tensor '%s': bad shape", path, name);
        t.shape[d] = (int64_t)v->valuedouble;
        n_elems *= (uint64_t)t.shape[d];
        if (n_elems > (1ull << 44)) return sb_err_set(err, SB_EINPUT, "%s: tensor '%s': impossible shape", path, name);
    }
    double b = cJSON_GetArrayItem(offs, 0)->valuedouble, e = cJSON_GetArrayItem(offs, 1)->valuedouble;
    uint64_t avail = f->size - data_start;
    if (!cJSON_IsNumber(cJSON_GetArrayItem(offs, 0)) || !cJSON_IsNumber(cJSON_GetArrayItem(offs, 1)) || b < 0 ||
        e < b || e > (double)avail)
        return sb_err_set(err, SB_EINPUT, "%s: tensor '%s': data_offsets [%.0f, %.0f] lie outside the %llu data bytes",
                          path, name, b, e, (unsigned long long)avail);
    t.n_bytes = (uint64_t)e - (uint64_t)b;
    if (t.n_bytes != n_elems * (uint64_t)elem_bytes)
        return sb_err_set(err, SB_EINPUT, "%s: tensor '%s': %llu data bytes for %llu elements of %s", path, name,
                          (unsigned long long)t.n_bytes, (unsigned long long)n_elems, dtype->valuestring);
    t.data = f->data + data_start + (uint64_t)b;
    if (t.n_dims == 0) t.n_dims = 1, t.shape[0] = 1; /* a scalar is a 1-vector to the adapters */
    t.name = strdup(name);
    if (!t.name) return sb_err_set(err, SB_EINTERNAL, "out of memory");
    int rc = sb_store_add(st, &t, err);
    if (rc) free(t.name);
    return rc;
}

/* Parses one safetensors file; the mapping is handed to the store. */
static int load_one(sb_tensor_store *st, const char *path, sb_err *err) {
    sb_mapped_file f;
    int rc = sb_mapped_file_open(&f, path, err);
    if (rc) return rc;
    uint64_t hlen = 0;
    if (f.size < 8) {
        sb_mapped_file_close(&f);
        return sb_err_set(err, SB_EINPUT, "%s: truncated safetensors file (%zu bytes)", path, f.size);
    }
    memcpy(&hlen, f.data, 8);
    if (hlen > f.size - 8) {
        sb_mapped_file_close(&f);
        return sb_err_set(err, SB_EINPUT, "%s: header length %llu runs past the end of the %zu-byte file", path,
                          (unsigned long long)hlen, f.size);
    }
    cJSON *header = cJSON_ParseWithLength((const char *)f.data + 8, (size_t)hlen);
    if (!cJSON_IsObject(header)) {
        cJSON_Delete(header);
        sb_mapped_file_close(&f);
        return sb_err_set(err, SB_EINPUT, "%s: header is not a valid JSON object", path);
    }
    rc = sb_store_keep_file(st, &f, err);
    const sb_mapped_file *kept = rc ? NULL : &st->files[st->n_files - 1];
    for (const cJSON *item = header->child; !rc && item; item = item->next) {
        if (strcmp(item->string, "__metadata__") == 0) continue;
        if (!cJSON_IsObject(item)) {
            rc = sb_err_set(err, SB_EINPUT, "%s: header entry '%s' is not an object", path, item->string);
            break;
        }
        rc = parse_entry(st, kept, item, 8 + hlen, err);
    }
    cJSON_Delete(header);
    if (f.data) sb_mapped_file_close(&f);
    return rc;
}

static int load_index(sb_tensor_store *st, const char *index_path, sb_err *err) {
    char *text;
    int rc = sb_read_text_file(index_path, &text, NULL, err);
    if (rc) return rc;
    cJSON *index = cJSON_Parse(text);
    free(text);
    const cJSON *map = cJSON_GetObjectItemCaseSensitive(index, "weight_map");
    if (!cJSON_IsObject(map)) {
        cJSON_Delete(index);
        return sb_err_set(err, SB_EINPUT, "%s: not valid JSON with a \"weight_map\" object", index_path);
    }
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", index_path);
    char *d = dirname(dir);
    /* Load each distinct shard once. */
    for (const cJSON *e = map->child; !rc && e; e = e->next) {
        if (!cJSON_IsString(e) || strchr(e->valuestring, '/')) {
            rc = sb_err_set(err, SB_EINPUT, "%s: weight_map entry '%s' is not a shard file name", index_path, e->string);
            break;
        }
        bool seen = false;
        for (const cJSON *p = map->child; p != e && !seen; p = p->next) seen = strcmp(p->valuestring, e->valuestring) == 0;
        if (seen) continue;
        char shard[8192];
        snprintf(shard, sizeof shard, "%s/%s", d, e->valuestring);
        rc = load_one(st, shard, err);
    }
    for (const cJSON *e = map->child; !rc && e; e = e->next)
        if (!sb_store_has(st, e->string))
            rc = sb_err_set(err, SB_EINPUT, "%s: tensor '%s' is listed but not found in %s", index_path, e->string,
                            e->valuestring);
    cJSON_Delete(index);
    return rc;
}

int sb_safetensors_load(sb_tensor_store *st, const char *path, sb_err *err) {
    size_t n = strlen(path);
    if (n > 5 && strcmp(path + n - 5, ".json") == 0) return load_index(st, path, err);
    return load_one(st, path, err);
}
