/* mc_dataset.c - multiple-choice datasets -> lm-eval's loglikelihood requests.
 *
 * The prompt strings follow lm-eval's task definitions (PROTOCOLS.md §6)
 * character for character, including the Python string methods they use
 * (strip, capitalize, lower), so these helpers reproduce Python's
 * definitions of whitespace and case rather than C's. */
#include "mc_dataset.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hash.h"
#include "mapped_file.h"
#include "unicode.h"

/* ---- formats ------------------------------------------------------------- */

static const char *const format_names[] = {"piqa",  "arc",  "hellaswag", "winogrande", "boolq",
                                           "copa",  "lambada", "openbookqa", "jsonl"};

int sb_mc_format_parse(const char *name, sb_mc_format *out, sb_err *err) {
    for (size_t i = 0; i < sizeof format_names / sizeof format_names[0]; i++)
        if (strcmp(name, format_names[i]) == 0) {
            *out = (sb_mc_format)i;
            return SB_OK;
        }
    return sb_err_set(err, SB_EINPUT, "unknown multiple-choice format '%s' (expected %s)", name, SB_MC_FORMATS);
}

const char *sb_mc_format_name(sb_mc_format f) { return format_names[f]; }

const char *sb_mc_task_version(sb_mc_format f) { return f == SB_MC_BOOLQ ? "2.0" : "1.0"; }

bool sb_mc_has_acc_norm(sb_mc_format f) {
    return f == SB_MC_PIQA || f == SB_MC_ARC || f == SB_MC_HELLASWAG || f == SB_MC_OPENBOOKQA || f == SB_MC_JSONL;
}

/* ---- growable strings ---------------------------------------------------- */

typedef struct {
    char *s;
    size_t len, cap;
    bool oom;
} strbuf;

static void buf_put(strbuf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + n + 1) cap *= 2;
        char *p = realloc(b->s, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->s = p, b->cap = cap;
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = '\0';
}

static void buf_puts(strbuf *b, const char *s) { buf_put(b, s, strlen(s)); }

static void buf_put_cp(strbuf *b, uint32_t cp) {
    char u[4];
    buf_put(b, u, (size_t)sb_utf8_encode(cp, u));
}

/* The finished string (an empty one when nothing was written), or NULL when out of memory. */
static char *buf_take(strbuf *b) {
    buf_put(b, "", 0);
    if (!b->s && !b->oom) b->s = calloc(1, 1);
    if (b->oom || !b->s) {
        free(b->s);
        return NULL;
    }
    return b->s;
}

/* ---- Python's str methods ------------------------------------------------ */

/* str.isspace: bidirectional class WS, B or S, or category Zs. Unlike the
 * Unicode White_Space property this includes U+001C..U+001F. */
static bool py_isspace(uint32_t cp) {
    return (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x20) || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
           (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F ||
           cp == 0x3000;
}

/* The code point at s[0..n) and its length; an ill-formed byte counts as itself, length 1. */
static int next_cp(const char *s, size_t n, uint32_t *cp) {
    int len = sb_utf8_decode((const uint8_t *)s, n, cp);
    if (len > 0) return len;
    *cp = 0xFFFD;
    return 1;
}

/* Start of the last code point of s[0..n) (n > 0). */
static size_t last_cp_start(const char *s, size_t n) {
    size_t i = n - 1;
    while (i > 0 && n - i < 4 && ((uint8_t)s[i] & 0xC0) == 0x80) i--;
    uint32_t cp;
    return sb_utf8_decode((const uint8_t *)s + i, n - i, &cp) == (int)(n - i) ? i : n - 1;
}

static size_t lstrip_len(const char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        uint32_t cp;
        int len = next_cp(s + i, n - i, &cp);
        if (!py_isspace(cp)) break;
        i += (size_t)len;
    }
    return i;
}

size_t sb_mc_rstrip_len(const char *s, size_t n) {
    while (n > 0) {
        size_t start = last_cp_start(s, n);
        uint32_t cp;
        next_cp(s + start, n - start, &cp);
        if (!py_isspace(cp)) break;
        n = start;
    }
    return n;
}

/* str.strip() of s[0..n) appended to b. */
static void put_stripped(strbuf *b, const char *s, size_t n) {
    size_t lo = lstrip_len(s, n);
    buf_put(b, s + lo, sb_mc_rstrip_len(s + lo, n - lo));
}

size_t sb_mc_codepoints(const char *s) {
    size_t n = strlen(s), count = 0;
    for (size_t i = 0; i < n; count++) {
        uint32_t cp;
        i += (size_t)next_cp(s + i, n - i, &cp);
    }
    return count;
}

static uint8_t ucat(uint32_t cp) { return sb_unicode_prop(cp) & SB_UPROP_CAT_MASK; }

/* Lower case of one code point. Simple case folding of an upper- or
 * title-case letter is its lower-case form except for a handful of special
 * cases (Python's full mappings such as U+0130 -> "i̇" are not reproduced). */
static uint32_t py_lower_cp(uint32_t cp) {
    if (cp < 0x80) return (cp >= 'A' && cp <= 'Z') ? cp + 32 : cp;
    uint8_t c = ucat(cp);
    return (c == SB_UCAT_Lu || c == SB_UCAT_Lt) ? sb_unicode_fold_case(cp) : cp;
}

/* Title case of one code point (what str.capitalize does to the first):
 * the title-case, else upper-case letter that folds to this lower-case one. */
static uint32_t py_title_cp(uint32_t cp) {
    if (cp < 0x80) return (cp >= 'a' && cp <= 'z') ? cp - 32 : cp;
    if (ucat(cp) != SB_UCAT_Ll) return cp;
    uint32_t upper = cp;
    for (uint32_t i = 0; i < sb_unicode_fold_count; i++) {
        if (sb_unicode_fold[i][1] != cp) continue;
        uint8_t c = ucat(sb_unicode_fold[i][0]);
        if (c == SB_UCAT_Lt) return sb_unicode_fold[i][0];
        if (c == SB_UCAT_Lu && upper == cp) upper = sb_unicode_fold[i][0];
    }
    return upper;
}

/* Appends s with the first code point mapped by first (NULL: unchanged) and
 * the rest by rest (NULL: unchanged). */
static void put_mapped(strbuf *b, const char *s, uint32_t (*first)(uint32_t), uint32_t (*rest)(uint32_t)) {
    size_t n = strlen(s);
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        int len = sb_utf8_decode((const uint8_t *)s + i, n - i, &cp);
        uint32_t (*map)(uint32_t) = i == 0 ? first : rest;
        if (len <= 0 || !map) {
            len = len > 0 ? len : 1; /* ill-formed bytes are copied, never rewritten */
            buf_put(b, s + i, (size_t)len);
        } else {
            buf_put_cp(b, map(cp));
        }
        i += (size_t)len;
    }
}

/* ---- HellaSwag's preprocess ---------------------------------------------- */

/* Replaces every non-overlapping `from` in s with `to`, left to right. */
static char *replace_all(const char *s, const char *from, const char *to) {
    strbuf b = {0};
    size_t from_len = strlen(from);
    for (const char *p = s; *p;) {
        if (strncmp(p, from, from_len) == 0) {
            buf_puts(&b, to);
            p += from_len;
        } else {
            buf_put(&b, p++, 1);
        }
    }
    return buf_take(&b);
}

/* re.sub(r"\[.*?\]", "", s): a '[' opens a span only when a ']' follows
 * before the next newline ('.' never matches '\n'). */
static char *delete_bracket_spans(const char *s) {
    strbuf b = {0};
    for (const char *p = s; *p;) {
        if (*p == '[') {
            const char *q = p + 1;
            while (*q && *q != ']' && *q != '\n') q++;
            if (*q == ']') {
                p = q + 1;
                continue;
            }
        }
        buf_put(&b, p++, 1);
    }
    return buf_take(&b);
}

char *sb_mc_hellaswag_preprocess(const char *text) {
    strbuf b = {0};
    put_stripped(&b, text, strlen(text));
    char *stripped = buf_take(&b);
    char *titled = stripped ? replace_all(stripped, " [title]", ". ") : NULL;
    char *unbracketed = titled ? delete_bracket_spans(titled) : NULL;
    char *out = unbracketed ? replace_all(unbracketed, "  ", " ") : NULL;
    free(stripped);
    free(titled);
    free(unbracketed);
    return out;
}

/* ---- reading fields ------------------------------------------------------ */

/* Where a document came from, for error messages. */
typedef struct {
    const char *path;
    int line;
    sb_err *err;
} where;

static int bad(const where *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int bad(const where *w, const char *fmt, ...) {
    char reason[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    return sb_err_set(w->err, SB_EINPUT, "%s:%d: %s", w->path, w->line, reason);
}

static int oom(const where *w) { return sb_err_set(w->err, SB_EINTERNAL, "%s:%d: out of memory", w->path, w->line); }

static const cJSON *field(const cJSON *o, const char *key, const where *w) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v) bad(w, "missing field \"%s\"", key);
    return v;
}

static const char *get_str(const cJSON *o, const char *key, const where *w) {
    const cJSON *v = field(o, key, w);
    if (v && !cJSON_IsString(v)) bad(w, "field \"%s\" is not a string", key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* An integer written as a JSON number or as a string of digits (HF stores
 * HellaSwag's label and WinoGrande's answer as strings). */
static int get_int(const cJSON *o, const char *key, const where *w, long *out) {
    const cJSON *v = field(o, key, w);
    if (!v) return w->err->code;
    if (cJSON_IsNumber(v) && v->valuedouble == floor(v->valuedouble) && fabs(v->valuedouble) < 1e9) {
        *out = (long)v->valuedouble;
        return SB_OK;
    }
    if (cJSON_IsString(v) && v->valuestring[0]) {
        char *end;
        *out = strtol(v->valuestring, &end, 10);
        if (*end == '\0') return SB_OK;
    }
    return bad(w, "field \"%s\" is not an integer", key);
}

/* A non-empty array of strings: field `key` of o (or o itself when key is NULL). */
static const cJSON *get_str_array(const cJSON *o, const char *key, const char *name, const where *w) {
    const cJSON *a = key ? field(o, key, w) : o;
    if (!a) return NULL;
    if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) == 0) {
        bad(w, "\"%s\" must be a non-empty array of strings", name);
        return NULL;
    }
    for (const cJSON *e = a->child; e; e = e->next)
        if (!cJSON_IsString(e)) {
            bad(w, "\"%s\" must be a non-empty array of strings", name);
            return NULL;
        }
    return a;
}

static int check_gold(long gold, int n, const where *w) {
    if (gold < 0 || gold >= n) return bad(w, "gold index %ld out of range (%d choices)", gold, n);
    return SB_OK;
}

/* ---- building documents -------------------------------------------------- */

/* Concatenation of the NULL-terminated list of strings, malloc'ed. */
static char *concat(const char *first, ...) {
    strbuf b = {0};
    va_list ap;
    va_start(ap, first);
    for (const char *s = first; s; s = va_arg(ap, const char *)) buf_puts(&b, s);
    va_end(ap);
    return buf_take(&b);
}

static int doc_alloc(sb_mc_doc *d, int n, const where *w) {
    d->n_choices = n;
    d->req = calloc((size_t)n, sizeof *d->req);
    d->choice = calloc((size_t)n, sizeof *d->choice);
    return d->req && d->choice ? SB_OK : oom(w);
}

/* Choice k: request (context, delimiter + choice), normalised by choice. */
static int doc_set(sb_mc_doc *d, int k, const char *context, const char *delimiter, const char *choice,
                   const where *w) {
    d->req[k].context = concat(context, NULL);
    d->req[k].continuation = concat(delimiter, choice, NULL);
    d->choice[k] = concat(choice, NULL);
    return d->req[k].context && d->req[k].continuation && d->choice[k] ? SB_OK : oom(w);
}

/* Every choice after the same context, with lm-eval's target delimiter " ". */
static int doc_shared_context(sb_mc_doc *d, const char *context, const char *const *choices, int n, long gold,
                              const where *w) {
    int rc = check_gold(gold, n, w);
    if (!rc) rc = doc_alloc(d, n, w);
    for (int k = 0; k < n && !rc; k++) rc = doc_set(d, k, context, " ", choices[k], w);
    d->gold = (int)gold;
    return rc;
}

/* Same, with the choices an array of JSON strings. */
static int doc_shared_context_json(sb_mc_doc *d, const char *context, const cJSON *choices, long gold,
                                   const where *w) {
    int n = cJSON_GetArraySize(choices);
    const char **texts = calloc((size_t)n, sizeof *texts);
    if (!texts) return oom(w);
    int k = 0;
    for (const cJSON *e = choices->child; e; e = e->next) texts[k++] = e->valuestring;
    int rc = doc_shared_context(d, context, texts, n, gold, w);
    free(texts);
    return rc;
}

static int build_piqa(const cJSON *o, const where *w, sb_mc_doc *d) {
    const char *goal = get_str(o, "goal", w), *sol1 = get_str(o, "sol1", w), *sol2 = get_str(o, "sol2", w);
    long label;
    if (!goal || !sol1 || !sol2 || get_int(o, "label", w, &label)) return w->err->code;
    char *ctx = concat("Question: ", goal, "\nAnswer:", NULL);
    const char *choices[2] = {sol1, sol2};
    int rc = ctx ? doc_shared_context(d, ctx, choices, 2, label, w) : oom(w);
    free(ctx);
    return rc;
}

/* Index of key in labels (after Python's lstrip when strip_key), or -1. */
static long label_index(const cJSON *labels, const char *key, bool strip_key) {
    if (strip_key) key += lstrip_len(key, strlen(key));
    long i = 0;
    for (const cJSON *e = labels->child; e; e = e->next, i++)
        if (strcmp(e->valuestring, key) == 0) return i;
    return -1;
}

/* ARC and OpenBookQA: choices{text,label} and an answerKey among the labels. */
static int build_lettered(const cJSON *o, const char *context, bool strip_key, const where *w, sb_mc_doc *d) {
    const cJSON *choices = field(o, "choices", w);
    const char *key = get_str(o, "answerKey", w);
    if (!choices || !key) return w->err->code;
    const cJSON *text = get_str_array(choices, "text", "choices.text", w);
    const cJSON *labels = text ? get_str_array(choices, "label", "choices.label", w) : NULL;
    if (!labels) return w->err->code;
    long gold = label_index(labels, key, strip_key);
    if (gold < 0) return bad(w, "answerKey \"%s\" is not among choices.label", key);
    return doc_shared_context_json(d, context, text, gold, w);
}

static int build_arc(const cJSON *o, const where *w, sb_mc_doc *d) {
    const char *question = get_str(o, "question", w);
    if (!question) return w->err->code;
    char *ctx = concat("Question: ", question, "\nAnswer:", NULL);
    int rc = ctx ? build_lettered(o, ctx, false, w, d) : oom(w);
    free(ctx);
    return rc;
}

static int build_openbookqa(const cJSON *o, const where *w, sb_mc_doc *d) {
    const char *stem = get_str(o, "question_stem", w);
    return stem ? build_lettered(o, stem, true, w, d) : w->err->code;
}

/* query = pre(activity_label + ": " + ctx_a + " " + ctx_b.capitalize()). */
static char *hellaswag_query(const char *activity, const char *ctx_a, const char *ctx_b) {
    strbuf b = {0};
    buf_puts(&b, activity);
    buf_puts(&b, ": ");
    buf_puts(&b, ctx_a);
    buf_puts(&b, " ");
    put_mapped(&b, ctx_b, py_title_cp, py_lower_cp);
    char *raw = buf_take(&b);
    char *query = raw ? sb_mc_hellaswag_preprocess(raw) : NULL;
    free(raw);
    return query;
}

static int build_hellaswag(const cJSON *o, const where *w, sb_mc_doc *d) {
    const char *activity = get_str(o, "activity_label", w), *ctx_a = get_str(o, "ctx_a", w);
    const char *ctx_b = get_str(o, "ctx_b", w);
    const cJSON *endings = activity && ctx_a && ctx_b ? get_str_array(o, "endings", "endings", w) : NULL;
    long label;
    if (!endings || get_int(o, "label", w, &label)) return w->err->code;
    int n = cJSON_GetArraySize(endings), rc = check_gold(label, n, w);
    char *query = rc ? NULL : hellaswag_query(activity, ctx_a, ctx_b);
    if (!rc && !query) rc = oom(w);
    if (!rc) rc = doc_alloc(d, n, w);
    int k = 0;
    for (const cJSON *e = endings->child; e && !rc; e = e->next, k++) {
        char *choice = sb_mc_hellaswag_preprocess(e->valuestring);
        rc = choice ? doc_set(d, k, query, " ", choice, w) : oom(w);
        free(choice);
    }
    d->gold = (int)label;
    free(query);
    return rc;
}

/* Partial evaluation: the options go into the contexts, the text after the
 * blank is the one shared continuation; doc_to_choice is the contexts. */
static int build_winogrande(const cJSON *o, const where *w, sb_mc_doc *d) {
    const char *sentence = get_str(o, "sentence", w);
    const char *options[2] = {get_str(o, "option1", w), get_str(o, "option2", w)};
    long answer;
    if (!sentence || !options[0] || !options[1] || get_int(o, "answer", w, &answer)) return w->err->code;
    const char *blank = strchr(sentence, '_');
    if (!blank) return bad(w, "sentence has no \"_\" blank");
    if (answer != 1 && answer != 2) return bad(w, "answer %ld is neither \"1\" nor \"2\"", answer);
    strbuf tail = {0};
    buf_puts(&tail, " ");
    put_stripped(&tail, blank + 1, strlen(blank + 1));
    char *cont = buf_take(&tail);
    int rc = cont ? doc_alloc(d, 2, w) : oom(w);
    for (int k = 0; k < 2 && !rc; k++) {
        strbuf ctx = {0};
        buf_put(&ctx, sentence, (size_t)(blank - sentence));
        buf_puts(&ctx, options[k]);
        d->req[k].context = buf_take(&ctx);
        d->req[k].continuation = concat(cont, NULL);
        d->choice[k] = concat(d->req[k].context ? d->req[k].context : "", NULL);
        if (!d->req[k].context || !d->req[k].continuation || !d->choice[k]) rc = oom(w);
    }
    d->gold = (int)answer - 1;
    free(cont);
    return rc;
}

static int build_boolq(const cJSON *o, const where *w, sb_mc_doc *d) {
    const char *passage = get_str(o, "passage", w), *question = get_str(o, "question", w);
    long label;
    if (!passage || !question || get_int(o, "label", w, &label)) return w->err->code;
    char *ctx = concat(passage, "\nQuestion: ", question, "?\nAnswer:", NULL);
    static const char *const choices[2] = {"no", "yes"};
    int rc = ctx ? doc_shared_context(d, ctx, choices, 2, label, w) : oom(w);
    free(ctx);
    return rc;
}

/* premise.strip()[:-1] + " because"/" therefore": the final period dropped. */
static char *copa_context(const char *premise, const char *connector) {
    strbuf b = {0};
    put_stripped(&b, premise, strlen(premise));
    if (b.len > 0) b.len = last_cp_start(b.s, b.len);
    buf_puts(&b, connector);
    return buf_take(&b);
}

/* " " + c[0].lower() + c[1:]; the delimiter adds a second space in front. */
static char *copa_choice(const char *c) {
    strbuf b = {0};
    buf_puts(&b, " ");
    put_mapped(&b, c, py_lower_cp, NULL);
    return buf_take(&b);
}

static int build_copa(const cJSON *o, const where *w, sb_mc_doc *d) {
    const char *premise = get_str(o, "premise", w), *question = get_str(o, "question", w);
    const char *c1 = get_str(o, "choice1", w), *c2 = get_str(o, "choice2", w);
    long label;
    if (!premise || !question || !c1 || !c2 || get_int(o, "label", w, &label)) return w->err->code;
    const char *connector = strcmp(question, "cause") == 0    ? " because"
                            : strcmp(question, "effect") == 0 ? " therefore"
                                                              : NULL;
    if (!connector) return bad(w, "question \"%s\" is neither \"cause\" nor \"effect\"", question);
    char *ctx = copa_context(premise, connector), *choice1 = copa_choice(c1), *choice2 = copa_choice(c2);
    const char *choices[2] = {choice1, choice2};
    int rc = ctx && choice1 && choice2 ? doc_shared_context(d, ctx, choices, 2, label, w) : oom(w);
    free(ctx);
    free(choice1);
    free(choice2);
    return rc;
}

/* text.split(" "): everything before the last space is the context, the
 * last word (with its space, no extra delimiter) the continuation. */
static int build_lambada(const cJSON *o, const where *w, sb_mc_doc *d) {
    const char *text = get_str(o, "text", w);
    if (!text) return w->err->code;
    const char *space = strrchr(text, ' ');
    const char *word = space ? space + 1 : text;
    int rc = doc_alloc(d, 1, w);
    if (!rc) {
        strbuf ctx = {0};
        buf_put(&ctx, text, space ? (size_t)(space - text) : 0);
        d->req[0].context = buf_take(&ctx);
        d->req[0].continuation = concat(" ", word, NULL);
        d->choice[0] = concat(word, NULL);
        if (!d->req[0].context || !d->req[0].continuation || !d->choice[0]) rc = oom(w);
    }
    d->gold = 0;
    return rc;
}

static int build_jsonl(const cJSON *o, const where *w, sb_mc_doc *d) {
    const char *context = get_str(o, "context", w);
    const cJSON *choices = context ? get_str_array(o, "choices", "choices", w) : NULL;
    long gold;
    if (!choices || get_int(o, "gold", w, &gold)) return w->err->code;
    return doc_shared_context_json(d, context, choices, gold, w);
}

typedef int (*doc_builder)(const cJSON *o, const where *w, sb_mc_doc *d);

static doc_builder builder_for(sb_mc_format f) {
    static const doc_builder builders[] = {
        [SB_MC_PIQA] = build_piqa,       [SB_MC_ARC] = build_arc,       [SB_MC_HELLASWAG] = build_hellaswag,
        [SB_MC_WINOGRANDE] = build_winogrande, [SB_MC_BOOLQ] = build_boolq, [SB_MC_COPA] = build_copa,
        [SB_MC_LAMBADA] = build_lambada, [SB_MC_OPENBOOKQA] = build_openbookqa, [SB_MC_JSONL] = build_jsonl,
    };
    return builders[f];
}

/* ---- the file ------------------------------------------------------------ */

static void doc_free(sb_mc_doc *d) {
    for (int k = 0; k < d->n_choices; k++) {
        if (d->req) free(d->req[k].context), free(d->req[k].continuation);
        if (d->choice) free(d->choice[k]);
    }
    free(d->req);
    free(d->choice);
}

void sb_mc_free(sb_mc_dataset *d) {
    if (!d) return;
    for (int i = 0; i < d->n_docs; i++) doc_free(&d->docs[i]);
    free(d->docs);
    free(d);
}

static bool blank_line(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r') return false;
    return true;
}

static int append_doc(sb_mc_dataset *d, int *cap, const where *w, sb_mc_doc **out) {
    if (d->n_docs == *cap) {
        int grown = *cap ? *cap * 2 : 64;
        sb_mc_doc *docs = realloc(d->docs, sizeof *docs * (size_t)grown);
        if (!docs) return oom(w);
        d->docs = docs, *cap = grown;
    }
    *out = &d->docs[d->n_docs++];
    memset(*out, 0, sizeof **out);
    (*out)->line = w->line;
    return SB_OK;
}

/* Parses one JSON line into a new document. */
static int parse_line(sb_mc_dataset *d, int *cap, const char *s, size_t n, const where *w) {
    cJSON *o = cJSON_ParseWithLength(s, n);
    if (!o) return bad(w, "invalid JSON");
    int rc = cJSON_IsObject(o) ? SB_OK : bad(w, "expected a JSON object");
    sb_mc_doc *doc = NULL;
    if (!rc) rc = append_doc(d, cap, w, &doc);
    if (!rc) rc = builder_for(d->format)(o, w, doc);
    cJSON_Delete(o);
    return rc;
}

static int parse_lines(sb_mc_dataset *d, const char *path, const char *text, size_t len, int limit, sb_err *err) {
    where w = {path, 0, err};
    int cap = 0;
    for (size_t pos = 0; pos < len && (limit <= 0 || d->n_docs < limit);) {
        const char *nl = memchr(text + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - text) : len;
        w.line++;
        if (!blank_line(text + pos, end - pos)) {
            int rc = parse_line(d, &cap, text + pos, end - pos, &w);
            if (rc) return rc;
        }
        pos = end + 1;
    }
    if (d->n_docs == 0) return sb_err_set(err, SB_EINPUT, "%s:1: no documents (empty file)", path);
    return SB_OK;
}

int sb_mc_load(const char *path, sb_mc_format f, int limit, sb_mc_dataset **out, sb_err *err) {
    *out = NULL;
    char *text;
    size_t len;
    if (sb_read_text_file(path, &text, &len, err)) return err->code;
    sb_mc_dataset *d = calloc(1, sizeof *d);
    if (!d) {
        free(text);
        return sb_err_set(err, SB_EINTERNAL, "out of memory");
    }
    d->format = f;
    d->hash = sb_fnv1a64(text, len, SB_FNV_OFFSET);
    int rc = parse_lines(d, path, text, len, limit, err);
    free(text);
    if (rc) {
        sb_mc_free(d);
        return rc;
    }
    *out = d;
    return SB_OK;
}
