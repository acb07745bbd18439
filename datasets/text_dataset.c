/* text_dataset.c - raw and JSONL text for the perplexity tasks, WikiText
 * article splitting and lm-eval's WikiText detokenizer. */
#include "text_dataset.h"

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "hash.h"
#include "mapped_file.h"

/* ---- Python's Unicode whitespace (str.isspace, re's \s) ---------------- */

/* Byte length of the whitespace character at s[i], or 0 when there is none. */
static size_t ws_len(const char *s, size_t n, size_t i) {
    const unsigned char *u = (const unsigned char *)s + i;
    size_t left = n - i;
    if ((u[0] >= 0x09 && u[0] <= 0x0d) || (u[0] >= 0x1c && u[0] <= 0x20)) return 1;
    if (left >= 2 && u[0] == 0xc2 && (u[1] == 0x85 || u[1] == 0xa0)) return 2;
    if (left < 3) return 0;
    if (u[0] == 0xe1 && u[1] == 0x9a && u[2] == 0x80) return 3;                   /* U+1680 */
    if (u[0] == 0xe2 && u[1] == 0x80 && (u[2] <= 0x8a || u[2] == 0xa8 || u[2] == 0xa9 || u[2] == 0xaf))
        return u[2] >= 0x80 ? 3 : 0;                                              /* U+2000-200A, 2028, 2029, 202F */
    if (u[0] == 0xe2 && u[1] == 0x81 && u[2] == 0x9f) return 3;                   /* U+205F */
    if (u[0] == 0xe3 && u[1] == 0x80 && u[2] == 0x80) return 3;                   /* U+3000 */
    return 0;
}

size_t sb_text_count_words(const char *s, size_t n) {
    size_t runs = 0;
    bool in_ws = false;
    for (size_t i = 0; i < n;) {
        size_t w = ws_len(s, n, i);
        if (w && !in_ws) runs++;
        in_ws = w != 0;
        i += w ? w : 1;
    }
    return runs + 1;
}

/* ---- loading ------------------------------------------------------------ */

static int read_whole_file(const char *path, sb_text_dataset *d, sb_err *err) {
    sb_mapped_file mf;
    int rc = sb_mapped_file_open(&mf, path, err);
    if (rc) return rc;
    d->n_bytes = mf.size;
    d->bytes = sb_malloc(err, mf.size + 1);
    if (d->bytes) {
        if (mf.size) memcpy(d->bytes, mf.data, mf.size);
        d->bytes[mf.size] = 0;
    }
    sb_mapped_file_close(&mf);
    if (!d->bytes) return SB_EINTERNAL;
    if (d->n_bytes == 0) return sb_err_set(err, SB_EINPUT, "%s:1: empty file", path);
    d->hash = sb_fnv1a64(d->bytes, d->n_bytes, SB_FNV_OFFSET);
    return SB_OK;
}

static bool blank(const char *s, size_t n) {
    for (size_t i = 0; i < n;) {
        size_t w = ws_len(s, n, i);
        if (!w) return false;
        i += w;
    }
    return true;
}

/* One JSONL line: parse, take the field, append it to storage at *used. */
static int jsonl_line(const sb_text_dataset *d, const char *line, size_t len, int line_no, const char *field,
                      size_t *used, sb_text_doc *doc, sb_err *err) {
    cJSON *obj = cJSON_ParseWithLength(line, len);
    if (!obj || !cJSON_IsObject(obj)) {
        cJSON_Delete(obj);
        return sb_err_set(err, SB_EINPUT, "%s:%d: invalid JSON (one object per line expected)", d->path, line_no);
    }
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, field);
    if (!cJSON_IsString(v)) {
        cJSON_Delete(obj);
        return sb_err_set(err, SB_EINPUT, "%s:%d: missing string field '%s'", d->path, line_no, field);
    }
    size_t n = strlen(v->valuestring); /* decoded text is never longer than its JSON spelling */
    memcpy(d->doc_storage + *used, v->valuestring, n);
    doc->line = line_no;
    doc->len = n;
    doc->text = NULL; /* set once storage stops moving */
    *used += n;
    cJSON_Delete(obj);
    return SB_OK;
}

static int parse_jsonl(sb_text_dataset *d, const char *field, sb_err *err) {
    int n_lines = 1;
    for (size_t i = 0; i < d->n_bytes; i++) n_lines += d->bytes[i] == '\n';
    d->docs = sb_calloc(err, (size_t)n_lines, sizeof *d->docs);
    d->doc_storage = sb_malloc(err, d->n_bytes + 1);
    if (!d->docs || !d->doc_storage) return SB_EINTERNAL;
    size_t used = 0;
    int line_no = 0;
    for (size_t start = 0; start < d->n_bytes;) {
        const char *nl = memchr(d->bytes + start, '\n', d->n_bytes - start);
        size_t end = nl ? (size_t)(nl - d->bytes) : d->n_bytes;
        line_no++;
        if (!blank(d->bytes + start, end - start)) {
            int rc = jsonl_line(d, d->bytes + start, end - start, line_no, field, &used, &d->docs[d->n_docs], err);
            if (rc) return rc;
            d->n_docs++;
        }
        start = end + 1;
    }
    if (d->n_docs == 0) return sb_err_set(err, SB_EINPUT, "%s:%d: no JSON lines (empty file)", d->path, line_no);
    size_t off = 0;
    for (int i = 0; i < d->n_docs; i++) d->docs[i].text = d->doc_storage + off, off += d->docs[i].len;
    return SB_OK;
}

/* The whole-corpus text of a JSONL file: documents joined by "\n\n". */
static int join_docs(sb_text_dataset *d, sb_err *err) {
    size_t n = 0;
    for (int i = 0; i < d->n_docs; i++) n += d->docs[i].len + (i ? 2 : 0);
    d->text = sb_malloc(err, n + 1);
    if (!d->text) return SB_EINTERNAL;
    size_t off = 0;
    for (int i = 0; i < d->n_docs; i++) {
        if (i) memcpy(d->text + off, "\n\n", 2), off += 2;
        memcpy(d->text + off, d->docs[i].text, d->docs[i].len);
        off += d->docs[i].len;
    }
    d->text[off] = 0;
    d->text_len = off;
    return SB_OK;
}

static int load_into(const char *path, const char *format, const char *field, sb_text_dataset *out, sb_err *err) {
    out->path = strdup(path);
    if (!out->path) return sb_err_set(err, SB_EINTERNAL, "out of memory");
    int rc = read_whole_file(path, out, err);
    if (rc) return rc;
    if (strcmp(format, "jsonl") == 0) {
        if ((rc = parse_jsonl(out, field, err))) return rc;
        return join_docs(out, err);
    }
    if (strcmp(format, "raw") != 0) return sb_err_set(err, SB_EINPUT, "%s: unknown text format '%s'", path, format);
    out->text = out->bytes;
    out->text_len = out->n_bytes;
    return SB_OK;
}

/* On failure nothing stays allocated: callers only free what loaded. */
int sb_text_load(const char *path, const char *format, const char *field, sb_text_dataset *out, sb_err *err) {
    memset(out, 0, sizeof *out);
    int rc = load_into(path, format, field, out, err);
    if (rc) sb_text_free(out);
    return rc;
}

void sb_text_free(sb_text_dataset *d) {
    if (d->text != d->bytes) free(d->text);
    free(d->bytes);
    free(d->docs);
    free(d->doc_storage);
    free(d->path);
    memset(d, 0, sizeof *d);
}

/* ---- WikiText articles --------------------------------------------------- */

/* " = Title = " with exactly one '=' on each side (sections are " = = X = = "). */
static bool top_level_heading(const char *s, size_t n) {
    return n > 6 && memcmp(s, " = ", 3) == 0 && s[3] != '=' && memcmp(s + n - 3, " = ", 3) == 0 && s[n - 4] != '=';
}

int sb_text_split_wikitext(sb_text_dataset *d, sb_err *err) {
    free(d->docs);
    d->n_docs = 0;
    int n_lines = 1;
    for (size_t i = 0; i < d->n_bytes; i++) n_lines += d->bytes[i] == '\n';
    d->docs = sb_calloc(err, (size_t)n_lines + 1, sizeof *d->docs);
    if (!d->docs) return SB_EINTERNAL;
    size_t doc_start = 0;
    int doc_line = 1, line_no = 0;
    for (size_t start = 0; start < d->n_bytes;) {
        const char *nl = memchr(d->bytes + start, '\n', d->n_bytes - start);
        size_t end = nl ? (size_t)(nl - d->bytes) : d->n_bytes;
        line_no++;
        if (start > doc_start && top_level_heading(d->bytes + start, end - start)) {
            /* close the document before this heading (a whitespace-only preamble is dropped) */
            if (d->n_docs > 0 || !blank(d->bytes + doc_start, start - doc_start))
                d->docs[d->n_docs++] = (sb_text_doc){d->bytes + doc_start, start - doc_start, doc_line};
            doc_start = start;
            doc_line = line_no;
        }
        start = end + 1;
    }
    if (!blank(d->bytes + doc_start, d->n_bytes - doc_start) || d->n_docs > 0)
        d->docs[d->n_docs++] = (sb_text_doc){d->bytes + doc_start, d->n_bytes - doc_start, doc_line};
    if (d->n_docs == 0) return sb_err_set(err, SB_EINPUT, "%s: no documents (only whitespace)", d->path);
    return SB_OK;
}

/* ---- lm-eval's wikitext_detokenizer ---------------------------------------- */

typedef struct {
    char *s;
    size_t n;
} str_buf;

/* Python's str.replace: one left-to-right pass, no overlapping matches.
 * The result is never longer than the input for the replacements used here
 * except " N " -> " 1 " (same length), so it is written into a new buffer of
 * the same capacity. */
static int replace_all(str_buf *b, const char *from, const char *to, sb_err *err) {
    size_t nf = strlen(from), nt = strlen(to);
    char *out = sb_malloc(err, b->n + 1);
    if (!out) return SB_EINTERNAL;
    size_t o = 0;
    for (size_t i = 0; i < b->n;) {
        if (i + nf <= b->n && memcmp(b->s + i, from, nf) == 0) {
            memcpy(out + o, to, nt);
            o += nt;
            i += nf;
        } else {
            out[o++] = b->s[i++];
        }
    }
    out[o] = 0;
    free(b->s);
    b->s = out;
    b->n = o;
    return SB_OK;
}

/* re.sub(r"/' [0-9]/", r"/'[0-9]/", s): the pattern is a regex, the
 * replacement the literal text "/'[0-9]/". */
static int replace_slash_digit(str_buf *b, sb_err *err) {
    char *out = sb_malloc(err, 2 * b->n + 1);
    if (!out) return SB_EINTERNAL;
    size_t o = 0;
    for (size_t i = 0; i < b->n;) {
        if (i + 5 <= b->n && memcmp(b->s + i, "/' ", 3) == 0 && b->s[i + 3] >= '0' && b->s[i + 3] <= '9' &&
            b->s[i + 4] == '/') {
            memcpy(out + o, "/'[0-9]/", 8);
            o += 8;
            i += 5;
        } else {
            out[o++] = b->s[i++];
        }
    }
    out[o] = 0;
    free(b->s);
    b->s = out;
    b->n = o;
    return SB_OK;
}

/* re.sub(r"O\s*([^C]*?)\s*C", r"O\1C"): from an opening character to the
 * next closing one, drop the whitespace just inside both ends. */
static int tighten_pairs(str_buf *b, char open, char close, sb_err *err) {
    char *out = sb_malloc(err, b->n + 1);
    if (!out) return SB_EINTERNAL;
    size_t o = 0;
    for (size_t i = 0; i < b->n;) {
        const char *c = b->s[i] == open ? memchr(b->s + i + 1, close, b->n - i - 1) : NULL;
        if (!c) {
            out[o++] = b->s[i++];
            continue;
        }
        size_t j = (size_t)(c - b->s), a = i + 1, z = a;
        while (a < j && ws_len(b->s, j, a)) a += ws_len(b->s, j, a);
        for (size_t k = a; k < j;) { /* z: end of the last non-whitespace character */
            size_t w = ws_len(b->s, j, k);
            k += w ? w : 1;
            if (!w) z = k;
        }
        if (z < a) z = a;
        out[o++] = open;
        memcpy(out + o, b->s + a, z - a);
        o += z - a;
        out[o++] = close;
        i = j + 1;
    }
    out[o] = 0;
    free(b->s);
    b->s = out;
    b->n = o;
    return SB_OK;
}

int sb_wikitext_detokenize(const char *s, size_t n, char **out, size_t *out_len, sb_err *err) {
    static const char *const before[][2] = {
        {"s '", "s'"},
    };
    static const char *const middle[][2] = {
        {" @-@ ", "-"}, {" @,@ ", ","}, {" @.@ ", "."}, {" : ", ": "}, {" ; ", "; "},
        {" . ", ". "},  {" ! ", "! "},  {" ? ", "? "},  {" , ", ", "},
    };
    static const char pairs[][2] = {{'(', ')'}, {'[', ']'}, {'{', '}'}, {'"', '"'}, {'\'', '\''}};
    static const char *const after[][2] = {
        {"= = = =", "===="}, {"= = =", "==="}, {"= =", "=="}, {" \xc2\xb0 ", "\xc2\xb0"},
        {" \n", "\n"},       {"\n ", "\n"},    {" N ", " 1 "}, {" 's", "'s"},
    };
    str_buf b = {sb_malloc(err, n + 1), n};
    if (!b.s) return SB_EINTERNAL;
    memcpy(b.s, s, n);
    b.s[n] = 0;
    int rc = replace_all(&b, before[0][0], before[0][1], err);
    if (!rc) rc = replace_slash_digit(&b, err);
    for (size_t i = 0; !rc && i < sizeof middle / sizeof middle[0]; i++) rc = replace_all(&b, middle[i][0], middle[i][1], err);
    for (size_t i = 0; !rc && i < sizeof pairs / sizeof pairs[0]; i++) rc = tighten_pairs(&b, pairs[i][0], pairs[i][1], err);
    for (size_t i = 0; !rc && i < sizeof after / sizeof after[0]; i++) rc = replace_all(&b, after[i][0], after[i][1], err);
    if (rc) {
        free(b.s);
        return rc;
    }
    *out = b.s;
    *out_len = b.n;
    return SB_OK;
}
