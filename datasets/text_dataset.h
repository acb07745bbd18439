/* text_dataset.h - the text a perplexity protocol scores, read from disk.
 *
 * Two formats:
 *  - raw: the file's bytes exactly as they are (for WikiText-2 the shared
 *    wiki.test.raw already is HF's "\n\n".join(rows), PROTOCOLS.md §1.1);
 *  - jsonl: one JSON object per line with a string field; every line is a
 *    document, and the single text of the whole-corpus protocols is the
 *    documents joined by "\n\n" (as gptq joins dataset rows).  Lines with
 *    only whitespace are skipped.
 *
 * lm-eval's rolling protocol scores documents.  A raw WikiText file is
 * split into articles with sb_text_split_wikitext (one document per
 * top-level heading " = Title = "), a JSONL file already has them.
 *
 * The dataset hash is FNV-1a 64 of the file's bytes, so it pins the input
 * whatever the format. */
#ifndef SB_TEXT_DATASET_H
#define SB_TEXT_DATASET_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

typedef struct sb_text_doc {
    const char *text;   /* points into the dataset's storage; not NUL-terminated */
    size_t len;
    int line;           /* 1-based line of the file where the document starts */
} sb_text_doc;

typedef struct sb_text_dataset {
    char *path;
    char *bytes;         /* the file, NUL-terminated */
    size_t n_bytes;
    uint64_t hash;       /* FNV-1a 64 of bytes[0..n_bytes) */
    char *text;          /* the one text of whole-corpus protocols (== bytes for raw) */
    size_t text_len;
    sb_text_doc *docs;   /* documents (jsonl: one per line; raw: after sb_text_split_wikitext) */
    int n_docs;
    char *doc_storage;   /* jsonl: the decoded field values, back to back */
} sb_text_dataset;

/* format: "raw" or "jsonl"; field: the JSONL text field.  Errors are
 * SB_EINPUT "FILE[:LINE]: reason" (missing file, empty file, invalid JSON,
 * missing or non-string field). */
int sb_text_load(const char *path, const char *format, const char *field, sb_text_dataset *out, sb_err *err);
void sb_text_free(sb_text_dataset *d);

/* Splits a raw WikiText file into articles: a line " = Title = " (one '='
 * each side, i.e. not " = = Section = = ") starts a new document, which
 * runs up to the next such line.  Text before the first heading becomes a
 * document of its own only when it has non-whitespace characters. */
int sb_text_split_wikitext(sb_text_dataset *d, sb_err *err);

/* lm-eval's wikitext_detokenizer (PROTOCOLS.md §4.2); *out is malloc'ed. */
int sb_wikitext_detokenize(const char *s, size_t n, char **out, size_t *out_len, sb_err *err);

/* len(re.split(r"\s+", s)) with Python's Unicode whitespace: the number of
 * whitespace runs plus one. */
size_t sb_text_count_words(const char *s, size_t n);

#endif
