/* regex.h - a small compiled regex engine over code points, for the
 * pre-tokenizer patterns of tokenizer.json files and llama.cpp.
 *
 * Semantics follow Oniguruma / Perl (what Hugging Face tokenizers uses):
 * leftmost match, alternatives tried in order, greedy quantifiers give
 * back one step at a time (backtracking).  Supported syntax:
 *   literals and escapes (\r \n \t \f \v \e \xHH \x{H..} \uHHHH, \\ \. ...),
 *   .  (anything but \n), character classes [...] with ranges, negation
 *   and \p{..} \P{..} \s \S \d \D \w \W inside, the same escapes outside,
 *   general categories (\p{L} \p{Lu} \p{N} \p{Nd} \p{P} \p{S} \p{M} \p{Z}
 *   \p{C} and their two-letter forms, long names like \p{Letter}),
 *   groups ( ) (?: ) (?<name> ), flags (?i) (?i: ) (?-i: ), lookahead
 *   (?= ) (?! ), quantifiers ? * + {m} {m,} {m,n} and their lazy (?)
 *   forms, possessive (+) forms on single characters or classes,
 *   anchors ^ $ \A \z \Z (text start / end) and \b \B.
 * Case-insensitive matching uses simple case folding (CaseFolding.txt);
 * a class under (?i) matches a character or its folded form.
 *
 * Matching runs on decoded code points with their property bytes (from
 * sb_unicode_prop), so the text is decoded once per pre-tokenizer pass.
 * A backtracking budget proportional to the input stops pathological
 * patterns (nested unbounded repeats) with an error instead of hanging. */
#ifndef SB_REGEX_H
#define SB_REGEX_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

typedef struct sb_regex sb_regex;

/* Per-caller working memory of the matcher (the compiled regex stays
 * read-only, so one regex can be shared between threads). Zero-initialise
 * it, pass it to every search, release with sb_regex_scratch_free. */
typedef struct sb_regex_scratch {
    void *stack;
    size_t cap;
    int32_t *marks;
    size_t n_marks;
} sb_regex_scratch;

/* Compiles pattern[0..len) (UTF-8).  On error: SB_EINPUT with the reason and offset. */
int sb_regex_compile(const char *pattern, size_t len, sb_regex **out, sb_err *err);
void sb_regex_free(sb_regex *re);
void sb_regex_scratch_free(sb_regex_scratch *s);

enum { SB_REGEX_NOMATCH = 0, SB_REGEX_MATCH = 1, SB_REGEX_TOO_COMPLEX = -1, SB_REGEX_NOMEM = -2 };

/* Leftmost match in cps[0..n) starting at or after `start`.  Returns
 * SB_REGEX_MATCH with [*mstart, *mend), SB_REGEX_NOMATCH, or a negative
 * SB_REGEX_* on failure. */
int sb_regex_search(const sb_regex *re, const uint32_t *cps, const uint8_t *props, size_t n, size_t start,
                    size_t *mstart, size_t *mend, sb_regex_scratch *scratch);

#endif
