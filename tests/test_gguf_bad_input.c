/* test_gguf_bad_input.c - sb_gguf_open on corrupted files.
 *
 * A small valid GGUF file is built in memory, with the position of every
 * interesting field recorded; each case patches one field (or truncates the
 * file), writes it to a fresh temp dir and expects SB_EINPUT with a message
 * naming the file and the reason - never a crash, a leak or a read past the
 * end (the suite also runs under ASan/UBSan). */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "gguf.h"

#define MAX_FILE 1024

typedef struct {
    uint8_t b[MAX_FILE];
    size_t n;
    /* Byte positions of the fields the cases patch. */
    size_t version, n_tensors, n_kv, key0_len, str_val_len, align_type, align_val, arr_type, arr_elem_type,
        arr_count, strarr_count, tensor_name_len, n_dims, ne0, ne1, ggml_type, offset, data;
} gguf_image;

static void put(gguf_image *img, const void *p, size_t n) {
    if (img->n + n <= MAX_FILE) memcpy(img->b + img->n, p, n);
    img->n += n;
}

static size_t put_u32(gguf_image *img, uint32_t v) {
    size_t at = img->n;
    put(img, &v, 4); /* the test host is little-endian, like GGUF */
    return at;
}

static size_t put_u64(gguf_image *img, uint64_t v) {
    size_t at = img->n;
    put(img, &v, 8);
    return at;
}

/* Returns the position of the string's length field. */
static size_t put_str(gguf_image *img, const char *s) {
    size_t at = put_u64(img, strlen(s));
    put(img, s, strlen(s));
    return at;
}

static void patch_u32(gguf_image *img, size_t at, uint32_t v) { memcpy(img->b + at, &v, 4); }
static void patch_u64(gguf_image *img, size_t at, uint64_t v) { memcpy(img->b + at, &v, 8); }

/* A valid v3 file: 4 metadata pairs (string, u32 alignment, i32 array,
 * string array) and one 8x2 F32 tensor. */
static void build_valid(gguf_image *img) {
    memset(img, 0, sizeof *img);
    put(img, "GGUF", 4);
    img->version = put_u32(img, 3);
    img->n_tensors = put_u64(img, 1);
    img->n_kv = put_u64(img, 4);
    img->key0_len = put_str(img, "general.architecture");
    put_u32(img, SB_GGUF_STRING);
    img->str_val_len = put_str(img, "test");
    put_str(img, "general.alignment");
    img->align_type = put_u32(img, SB_GGUF_U32);
    img->align_val = put_u32(img, 32);
    put_str(img, "test.ints");
    img->arr_type = put_u32(img, SB_GGUF_ARRAY);
    img->arr_elem_type = put_u32(img, SB_GGUF_I32);
    img->arr_count = put_u64(img, 3);
    for (int32_t i = 0; i < 3; i++) put_u32(img, (uint32_t)i);
    put_str(img, "test.strings");
    put_u32(img, SB_GGUF_ARRAY);
    put_u32(img, SB_GGUF_STRING);
    img->strarr_count = put_u64(img, 2);
    put_str(img, "a");
    put_str(img, "bc");
    img->tensor_name_len = put_str(img, "w");
    img->n_dims = put_u32(img, 2);
    img->ne0 = put_u64(img, 8);
    img->ne1 = put_u64(img, 2);
    img->ggml_type = put_u32(img, SB_GGML_F32);
    img->offset = put_u64(img, 0);
    while (img->n % 32) put(img, "", 1);
    img->data = img->n;
    for (int i = 0; i < 16; i++) {
        float f = (float)i;
        put(img, &f, 4);
    }
}

static bool write_file(const char *path, const uint8_t *b, size_t n) {
    FILE *fp = fopen(path, "wb");
    if (!fp) return false;
    bool ok = fwrite(b, 1, n, fp) == n;
    return fclose(fp) == 0 && ok;
}

/* Opens the first n bytes of img as <dir>/<name>.gguf; checks the failure
 * is SB_EINPUT with the path and `reason` in the message and a zeroed g.
 * Returns true if all of that held (recording failures in the current case). */
static bool expect_rejected_n(const char *dir, const char *name, const gguf_image *img, size_t n, const char *reason) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s.gguf", dir, name);
    if (!test_expect(write_file(path, img->b, n), "cannot write %s", path)) return false;
    sb_gguf g;
    sb_err err = {0};
    int rc = sb_gguf_open(&g, path, &err);
    bool ok = test_expect(rc == SB_EINPUT && err.code == SB_EINPUT, "%s: status %d (expected SB_EINPUT), message '%s'",
                          name, rc, err.msg);
    ok = ok && test_expect(strstr(err.msg, path) != NULL, "message does not name the file: '%s'", err.msg);
    ok = ok && test_expect(strstr(err.msg, reason) != NULL, "message lacks '%s': '%s'", reason, err.msg);
    ok = ok && test_expect(!g.kv && !g.tensors && !g.file.data, "%s: handle not cleared after failure", name);
    if (rc == SB_OK) sb_gguf_close(&g);
    unlink(path);
    return ok;
}

static void expect_rejected(const char *dir, const char *name, const gguf_image *img, const char *reason) {
    test_begin(name);
    expect_rejected_n(dir, name, img, img->n, reason);
    test_end();
}

static void test_valid_file_opens(const char *dir) {
    test_begin("gguf_bad_input_baseline_valid");
    gguf_image img;
    build_valid(&img);
    char path[512];
    snprintf(path, sizeof path, "%s/valid.gguf", dir);
    sb_gguf g;
    sb_err err = {0};
    if (test_expect(write_file(path, img.b, img.n), "cannot write %s", path) &&
        test_expect(sb_gguf_open(&g, path, &err) == SB_OK, "%s", err.msg)) {
        const sb_gguf_tensor *t = sb_gguf_find_tensor(&g, "w");
        float last = 0;
        if (t) memcpy(&last, t->data + 60, 4);
        test_expect(t && t->n_elems == 16 && t->data == g.file.data + img.data && last == 15.0f,
                    "tensor w not where it was written");
        const sb_gguf_kv *s = sb_gguf_find(&g, "test.strings");
        test_expect(s && s->n == 2 && s->str_lens[1] == 2 && memcmp(s->strs[1], "bc", 2) == 0, "string array");
        sb_gguf_close(&g);
    }
    unlink(path);
    test_end();
}

/* Every proper prefix of the valid file - header, metadata, tensor infos,
 * padding, data - must be rejected. */
static void test_every_truncation(const char *dir) {
    test_begin("gguf_bad_input_every_truncation");
    gguf_image img;
    build_valid(&img);
    for (size_t n = 0; n < img.n; n++)
        if (!expect_rejected_n(dir, "prefix", &img, n, ": ")) {
            test_expect(false, "prefix of %zu of %zu bytes", n, img.n);
            break;
        }
    test_end();
}

/* One field of the valid file overwritten with a bad value. */
typedef struct {
    const char *name;
    size_t field; /* offsetof(gguf_image, <field>): whose recorded position to patch */
    int width;    /* 4 or 8 bytes */
    uint64_t value;
    const char *reason; /* expected in the message */
} patch_case;

static const patch_case patch_cases[] = {
    {"gguf_bad_version_1", offsetof(gguf_image, version), 4, 1, "unsupported GGUF version 1"},
    {"gguf_bad_version_4", offsetof(gguf_image, version), 4, 4, "unsupported GGUF version 4"},
    {"gguf_bad_tensor_count_2e60", offsetof(gguf_image, n_tensors), 8, 1ull << 60, "impossible tensor count"},
    {"gguf_bad_tensor_count_max", offsetof(gguf_image, n_tensors), 8, UINT64_MAX, "impossible tensor count"},
    /* A second tensor info is read from the zero padding: name "", 0 dimensions. */
    {"gguf_bad_tensor_count_2", offsetof(gguf_image, n_tensors), 8, 2, "impossible dimension count 0"},
    {"gguf_bad_kv_count_2e60", offsetof(gguf_image, n_kv), 8, 1ull << 60, "impossible metadata count"},
    {"gguf_bad_kv_count_max", offsetof(gguf_image, n_kv), 8, UINT64_MAX, "impossible metadata count"},
    {"gguf_bad_key_length_2e63", offsetof(gguf_image, key0_len), 8, 1ull << 63, "truncated"},
    {"gguf_bad_key_length_max", offsetof(gguf_image, key0_len), 8, UINT64_MAX, "truncated"},
    {"gguf_bad_string_value_past_eof", offsetof(gguf_image, str_val_len), 8, 100000, "truncated"},
    {"gguf_bad_string_value_length_max", offsetof(gguf_image, str_val_len), 8, UINT64_MAX, "truncated"},
    {"gguf_bad_value_type", offsetof(gguf_image, align_type), 4, 13, "unknown value type 13"},
    {"gguf_bad_alignment_not_pow2", offsetof(gguf_image, align_val), 4, 24, "not a power of two"},
    {"gguf_bad_alignment_zero", offsetof(gguf_image, align_val), 4, 0, "not a power of two"},
    {"gguf_bad_nested_array", offsetof(gguf_image, arr_elem_type), 4, SB_GGUF_ARRAY, "nested arrays"},
    {"gguf_bad_array_elem_type", offsetof(gguf_image, arr_elem_type), 4, 99, "unknown value type 99"},
    {"gguf_bad_array_count_2e62", offsetof(gguf_image, arr_count), 8, 1ull << 62, "runs past the end"},
    {"gguf_bad_array_count_max", offsetof(gguf_image, arr_count), 8, UINT64_MAX, "runs past the end"},
    {"gguf_bad_string_array_count", offsetof(gguf_image, strarr_count), 8, 1ull << 61, "impossible string count"},
    {"gguf_bad_tensor_name_length", offsetof(gguf_image, tensor_name_len), 8, UINT64_MAX, "truncated"},
    {"gguf_bad_n_dims_7", offsetof(gguf_image, n_dims), 4, 7, "impossible dimension count 7"},
    {"gguf_bad_n_dims_0", offsetof(gguf_image, n_dims), 4, 0, "impossible dimension count 0"},
    {"gguf_bad_n_dims_max", offsetof(gguf_image, n_dims), 4, UINT32_MAX, "impossible dimension count"},
    {"gguf_bad_dim_zero", offsetof(gguf_image, ne0), 8, 0, "impossible shape"},
    {"gguf_bad_dim_2e63", offsetof(gguf_image, ne1), 8, 1ull << 63, "impossible shape"},
    {"gguf_bad_ggml_type_99", offsetof(gguf_image, ggml_type), 4, 99, "unknown ggml type 99"},
    {"gguf_bad_ggml_type_4", offsetof(gguf_image, ggml_type), 4, 4, "unknown ggml type 4"},
    {"gguf_bad_ggml_type_max", offsetof(gguf_image, ggml_type), 4, UINT32_MAX, "unknown ggml type"},
    {"gguf_bad_row_not_whole_blocks", offsetof(gguf_image, ggml_type), 4, SB_GGML_Q4_0, "not a multiple"},
    {"gguf_bad_data_offset_past_eof", offsetof(gguf_image, offset), 8, 1u << 20, "outside"},
    {"gguf_bad_data_offset_wraps", offsetof(gguf_image, offset), 8, UINT64_MAX - 31, "outside"},
    {"gguf_bad_data_offset_misaligned", offsetof(gguf_image, offset), 8, 4, "misaligned"},
    {"gguf_bad_data_past_eof", offsetof(gguf_image, ne1), 8, 3, "outside"},
};

static void run_patch_case(const char *dir, const patch_case *c) {
    gguf_image img;
    build_valid(&img);
    size_t at;
    memcpy(&at, (const char *)&img + c->field, sizeof at);
    if (c->width == 4) patch_u32(&img, at, (uint32_t)c->value);
    else patch_u64(&img, at, c->value);
    expect_rejected(dir, c->name, &img, c->reason);
}

static void test_bad_magic(const char *dir) {
    gguf_image img;
    build_valid(&img);
    memcpy(img.b, "GGUX", 4);
    expect_rejected(dir, "gguf_bad_magic", &img, "bad magic");
    memcpy(img.b, "FUGG", 4); /* a byte-swapped (big-endian) file */
    expect_rejected(dir, "gguf_bad_magic_big_endian", &img, "bad magic");
}

static void test_truncations(const char *dir) {
    gguf_image img;
    build_valid(&img);
    img.n = 0;
    expect_rejected(dir, "gguf_bad_empty_file", &img, "truncated");
    img.n = 10; /* magic, version and 2 bytes of the tensor count */
    expect_rejected(dir, "gguf_bad_truncated_header", &img, "truncated");
    build_valid(&img);
    img.n = img.key0_len + 8 + 5; /* inside the first key */
    expect_rejected(dir, "gguf_bad_truncated_in_key", &img, "truncated");
    img.n = img.arr_count + 8 + 6; /* inside the i32 array */
    expect_rejected(dir, "gguf_bad_truncated_in_array", &img, "truncated");
    img.n = img.ne1 + 3; /* inside the tensor info */
    expect_rejected(dir, "gguf_bad_truncated_in_tensor_info", &img, "truncated");
    img.n = img.data + 63; /* one byte of tensor data missing */
    expect_rejected(dir, "gguf_bad_truncated_in_data", &img, "outside");
}

static void test_not_a_file(const char *dir) {
    test_begin("gguf_bad_path");
    char path[512];
    snprintf(path, sizeof path, "%s/missing.gguf", dir);
    sb_gguf g;
    sb_err err = {0};
    test_expect(sb_gguf_open(&g, path, &err) == SB_EINPUT && strstr(err.msg, path), "missing file: '%s'", err.msg);
    sb_err err2 = {0};
    test_expect(sb_gguf_open(&g, dir, &err2) == SB_EINPUT && strstr(err2.msg, dir) && strstr(err2.msg, "regular"),
                "directory: '%s'", err2.msg);
    test_end();
}

int main(void) {
    char dir[] = "/tmp/sb_gguf_bad_XXXXXX";
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_valid_file_opens(dir);
    test_bad_magic(dir);
    test_truncations(dir);
    test_every_truncation(dir);
    for (size_t i = 0; i < sizeof patch_cases / sizeof patch_cases[0]; i++) run_patch_case(dir, &patch_cases[i]);
    test_not_a_file(dir);
    rmdir(dir);
    return test_status();
}
