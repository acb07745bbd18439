/* regex.c - parser, compiler and backtracking matcher for regex.h.
 *
 * The pattern is parsed into a small syntax tree, which is compiled into
 * a program for a backtracking machine (the classic "split / jump" form).
 * Two things keep tokenizer patterns fast: a repeat of a single character
 * or class (\p{L}+, \s*, \p{N}{1,3}) runs as one tight loop that leaves a
 * single "give back" entry on the backtrack stack instead of one entry per
 * character, and classes answer ASCII from a precomputed bitmap. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "regex.h"
#include "unicode.h"

/* ---- character classes ------------------------------------------------ */

typedef struct cp_range {
    uint32_t lo, hi;
} cp_range;

#define MAX_NEG_MASKS 4

/* A set of code points: the union of ranges, categories, White_Space and
 * complemented categories / White_Space, optionally negated as a whole. */
typedef struct char_class {
    uint64_t ascii[2];           /* final answer for code points < 128 */
    cp_range *ranges;
    size_t n_ranges, cap_ranges;
    uint32_t cat_mask;           /* categories in the set */
    uint32_t neg_cat[MAX_NEG_MASKS]; /* "category not in this mask" items (\P{..}, \D, \W) */
    int n_neg_cat;
    bool white_space;            /* \s */
    bool not_white_space;        /* \S */
    bool negated;                /* [^...] */
    bool icase;                  /* under (?i): also try the folded code point */
} char_class;

static bool class_contains_raw(const char_class *c, uint32_t cp, uint8_t prop) {
    uint32_t cat = prop & SB_UPROP_CAT_MASK;
    if ((c->cat_mask >> cat) & 1) return true;
    if (c->white_space && (prop & SB_UPROP_WHITE_SPACE)) return true;
    if (c->not_white_space && !(prop & SB_UPROP_WHITE_SPACE)) return true;
    for (int i = 0; i < c->n_neg_cat; i++)
        if (!((c->neg_cat[i] >> cat) & 1)) return true;
    for (size_t i = 0; i < c->n_ranges; i++)
        if (cp >= c->ranges[i].lo && cp <= c->ranges[i].hi) return true;
    return false;
}

static bool class_contains(const char_class *c, uint32_t cp, uint8_t prop) {
    bool in = class_contains_raw(c, cp, prop);
    if (!in && c->icase) {
        uint32_t f = sb_unicode_fold_case(cp);
        if (f != cp) in = class_contains_raw(c, f, sb_unicode_prop(f));
    }
    return in != c->negated;
}

static inline bool class_match(const char_class *c, uint32_t cp, uint8_t prop) {
    if (cp < 128) return (c->ascii[cp >> 6] >> (cp & 63)) & 1;
    return class_contains(c, cp, prop);
}

/* Fills the ASCII bitmap once the class is complete.  Under (?i) an ASCII
 * letter also matches when its other case is in the set. */
static void class_finish(char_class *c) {
    c->ascii[0] = c->ascii[1] = 0;
    for (uint32_t cp = 0; cp < 128; cp++) {
        bool in = class_contains_raw(c, cp, sb_unicode_prop(cp));
        if (!in && c->icase && ((cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z'))) {
            uint32_t other = cp ^ 0x20;
            in = class_contains_raw(c, other, sb_unicode_prop(other));
        }
        if (in != c->negated) c->ascii[cp >> 6] |= 1ull << (cp & 63);
    }
}

/* ---- syntax tree -------------------------------------------------------- */

typedef enum { N_EMPTY, N_CHAR, N_CLASS, N_ANY, N_CONCAT, N_ALT, N_REPEAT, N_LOOK, N_ASSERT } node_kind;
typedef enum { REP_GREEDY, REP_LAZY, REP_POSSESSIVE } repeat_mode;
typedef enum { AS_TEXT_START, AS_TEXT_END, AS_TEXT_END_NL, AS_WORD_B, AS_NOT_WORD_B } assert_kind;

#define REPEAT_INF (-1)
#define MAX_REPEAT 1000
#define MAX_PROGRAM 100000
#define MAX_DEPTH 200

typedef struct node {
    node_kind kind;
    uint32_t cp;      /* N_CHAR (folded when icase) */
    bool icase;       /* N_CHAR */
    int cls;          /* N_CLASS: index into classes */
    int min, max;     /* N_REPEAT */
    repeat_mode mode; /* N_REPEAT */
    bool negate;      /* N_LOOK */
    assert_kind as;   /* N_ASSERT */
    int first, last;  /* children (N_CONCAT, N_ALT, N_REPEAT, N_LOOK) */
    int next;         /* next sibling */
} node;

/* ---- program -------------------------------------------------------------- */

typedef enum {
    I_CHAR, I_CHAR_I, I_CLASS, I_ANY, I_SPLIT, I_JMP, I_MATCH, I_ASSERT, I_LOOK, I_MARK, I_PROGRESS, I_REP
} op_code;

/* I_SPLIT: try a, then b.  I_LOOK: sub-program at pc+1 (ends in I_MATCH),
 * continue at a; flag = negative.  I_REP: repeat the one-character
 * instruction at pc+1 up to c more times (UINT32_MAX: unbounded), flag =
 * possessive; continue at pc+2.  I_MARK / I_PROGRESS: register a. */
typedef struct inst {
    uint8_t op;
    uint8_t flag;
    int32_t a, b;
    uint32_t c;
} inst;

struct sb_regex {
    inst *prog;
    size_t n_prog;
    char_class *classes;
    size_t n_classes;
    int n_marks;
};

/* ---- parser ----------------------------------------------------------------- */

typedef struct parser {
    const uint32_t *p;   /* pattern as code points */
    size_t n, i;
    node *nodes;
    size_t n_nodes, cap_nodes;
    char_class *classes;
    size_t n_classes, cap_classes;
    int depth;
    sb_err *err;
} parser;

static int parse_fail(parser *ps, const char *why) {
    return sb_err_set(ps->err, SB_EINPUT, "regex: %s at character %zu", why, ps->i);
}

static int new_node(parser *ps, node_kind kind) {
    if (ps->n_nodes == ps->cap_nodes) {
        size_t cap = ps->cap_nodes ? ps->cap_nodes * 2 : 64;
        node *n = realloc(ps->nodes, cap * sizeof *n);
        if (!n) return -1;
        ps->nodes = n;
        ps->cap_nodes = cap;
    }
    node *nd = &ps->nodes[ps->n_nodes];
    memset(nd, 0, sizeof *nd);
    nd->kind = kind;
    nd->first = nd->last = nd->next = -1;
    return (int)ps->n_nodes++;
}

static void add_child(parser *ps, int parent, int child) {
    node *p = &ps->nodes[parent];
    if (p->last < 0) p->first = child;
    else ps->nodes[p->last].next = child;
    ps->nodes[parent].last = child;
}

static int new_class(parser *ps) {
    if (ps->n_classes == ps->cap_classes) {
        size_t cap = ps->cap_classes ? ps->cap_classes * 2 : 16;
        char_class *c = realloc(ps->classes, cap * sizeof *c);
        if (!c) return -1;
        ps->classes = c;
        ps->cap_classes = cap;
    }
    memset(&ps->classes[ps->n_classes], 0, sizeof ps->classes[0]);
    return (int)ps->n_classes++;
}

static bool class_add_range(char_class *c, uint32_t lo, uint32_t hi) {
    if (c->n_ranges == c->cap_ranges) {
        size_t cap = c->cap_ranges ? c->cap_ranges * 2 : 4;
        cp_range *r = realloc(c->ranges, cap * sizeof *r);
        if (!r) return false;
        c->ranges = r;
        c->cap_ranges = cap;
    }
    c->ranges[c->n_ranges++] = (cp_range){lo, hi};
    return true;
}

static bool at_end(const parser *ps) { return ps->i >= ps->n; }
static uint32_t peek(const parser *ps) { return ps->i < ps->n ? ps->p[ps->i] : 0; }

static bool ascii_ieq(const uint32_t *s, size_t n, const char *name) {
    size_t m = strlen(name);
    if (n != m) return false;
    for (size_t i = 0; i < n; i++) {
        uint32_t a = s[i], b = (uint8_t)name[i];
        if (a >= 'A' && a <= 'Z') a += 32;
        if (b >= 'A' && b <= 'Z') b += 32;
        if (a != b) return false;
    }
    return true;
}

/* Category mask for a \p{name}; 0 when the name is unknown. */
static uint32_t category_mask(const uint32_t *name, size_t n) {
    static const struct { const char *name; uint32_t mask; } groups[] = {
        {"L", SB_UMASK_L}, {"Letter", SB_UMASK_L}, {"M", SB_UMASK_M}, {"Mark", SB_UMASK_M},
        {"N", SB_UMASK_N}, {"Number", SB_UMASK_N},
        {"P", SB_UMASK(SB_UCAT_Pc) | SB_UMASK(SB_UCAT_Pd) | SB_UMASK(SB_UCAT_Ps) | SB_UMASK(SB_UCAT_Pe) |
                  SB_UMASK(SB_UCAT_Pi) | SB_UMASK(SB_UCAT_Pf) | SB_UMASK(SB_UCAT_Po)},
        {"S", SB_UMASK(SB_UCAT_Sm) | SB_UMASK(SB_UCAT_Sc) | SB_UMASK(SB_UCAT_Sk) | SB_UMASK(SB_UCAT_So)},
        {"Z", SB_UMASK(SB_UCAT_Zs) | SB_UMASK(SB_UCAT_Zl) | SB_UMASK(SB_UCAT_Zp)},
        {"C", SB_UMASK(SB_UCAT_Cc) | SB_UMASK(SB_UCAT_Cf) | SB_UMASK(SB_UCAT_Cs) | SB_UMASK(SB_UCAT_Co) |
                  SB_UMASK(SB_UCAT_Cn)},
    };
    static const char *const long_names[][2] = {
        {"Punctuation", "P"}, {"Symbol", "S"}, {"Separator", "Z"}, {"Other", "C"},
    };
    static const char two_letter[SB_UCAT_COUNT][3] = {
        "Cn", "Lu", "Ll", "Lt", "Lm", "Lo", "Mn", "Mc", "Me", "Nd", "Nl", "No", "Pc", "Pd", "Ps",
        "Pe", "Pi", "Pf", "Po", "Sm", "Sc", "Sk", "So", "Zs", "Zl", "Zp", "Cc", "Cf", "Cs", "Co",
    };
    for (size_t i = 0; i < sizeof groups / sizeof groups[0]; i++)
        if (ascii_ieq(name, n, groups[i].name)) return groups[i].mask;
    for (size_t i = 0; i < sizeof long_names / sizeof long_names[0]; i++)
        if (ascii_ieq(name, n, long_names[i][0])) {
            uint32_t one = (uint8_t)long_names[i][1][0];
            return category_mask(&one, 1);
        }
    for (int c = 0; c < SB_UCAT_COUNT; c++)
        if (ascii_ieq(name, n, two_letter[c])) return SB_UMASK(c);
    return 0;
}

#define WORD_MASK (SB_UMASK_L | SB_UMASK_M | SB_UMASK_N | SB_UMASK(SB_UCAT_Pc))
#define DIGIT_MASK SB_UMASK(SB_UCAT_Nd)

/* The kinds of class an escape can stand for. */
typedef struct class_item {
    uint32_t mask;      /* category mask (0 for White_Space items) */
    bool white_space;   /* \s / \S */
    bool negated;       /* \S \D \W \P{..} */
} class_item;

static int add_item_to_class(parser *ps, char_class *c, class_item it) {
    if (it.white_space) {
        if (it.negated) c->not_white_space = true;
        else c->white_space = true;
        return SB_OK;
    }
    if (!it.negated) {
        c->cat_mask |= it.mask;
        return SB_OK;
    }
    if (c->n_neg_cat == MAX_NEG_MASKS) return parse_fail(ps, "too many negated properties in one class");
    c->neg_cat[c->n_neg_cat++] = it.mask;
    return SB_OK;
}

/* After a backslash: is this a class escape (\s \d \w \p{..} and their
 * negations)?  Returns 1 and fills *it, 0 if not, or an error (< 0 via -code). */
static int parse_class_escape(parser *ps, class_item *it) {
    uint32_t e = peek(ps);
    *it = (class_item){0};
    switch (e) {
    case 's': case 'S': it->white_space = true; it->negated = e == 'S'; ps->i++; return 1;
    case 'd': case 'D': it->mask = DIGIT_MASK; it->negated = e == 'D'; ps->i++; return 1;
    case 'w': case 'W': it->mask = WORD_MASK; it->negated = e == 'W'; ps->i++; return 1;
    case 'p': case 'P': break;
    default: return 0;
    }
    ps->i++;
    it->negated = e == 'P';
    const uint32_t *name;
    size_t len;
    if (peek(ps) == '{') {
        size_t start = ++ps->i;
        while (!at_end(ps) && peek(ps) != '}') ps->i++;
        if (at_end(ps)) return -parse_fail(ps, "unterminated \\p{");
        name = ps->p + start;
        len = ps->i - start;
        ps->i++;
        if (len > 0 && name[0] == '^') {
            it->negated = !it->negated;
            name++;
            len--;
        }
    } else {
        if (at_end(ps)) return -parse_fail(ps, "\\p needs a property name");
        name = ps->p + ps->i++;
        len = 1;
    }
    it->mask = category_mask(name, len);
    if (!it->mask) return -parse_fail(ps, "unsupported Unicode property");
    return 1;
}

static int hex_value(uint32_t c) {
    if (c >= '0' && c <= '9') return (int)(c - '0');
    if (c >= 'a' && c <= 'f') return (int)(c - 'a' + 10);
    if (c >= 'A' && c <= 'F') return (int)(c - 'A' + 10);
    return -1;
}

static int parse_hex(parser *ps, size_t max_digits, bool braced, uint32_t *out) {
    uint32_t v = 0;
    size_t digits = 0;
    while (!at_end(ps) && digits < max_digits && hex_value(peek(ps)) >= 0) {
        v = v * 16 + (uint32_t)hex_value(peek(ps));
        ps->i++;
        digits++;
    }
    if (digits == 0 || v > 0x10ffff) return parse_fail(ps, "bad hexadecimal escape");
    if (braced) {
        if (peek(ps) != '}') return parse_fail(ps, "unterminated \\x{");
        ps->i++;
    }
    *out = v;
    return SB_OK;
}

/* A single-character escape after the backslash (the backslash consumed). */
static int parse_char_escape(parser *ps, uint32_t *out) {
    if (at_end(ps)) return parse_fail(ps, "pattern ends with a backslash");
    uint32_t e = ps->p[ps->i++];
    switch (e) {
    case 'n': *out = '\n'; return SB_OK;
    case 'r': *out = '\r'; return SB_OK;
    case 't': *out = '\t'; return SB_OK;
    case 'f': *out = '\f'; return SB_OK;
    case 'v': *out = '\v'; return SB_OK;
    case 'a': *out = 7; return SB_OK;
    case 'e': *out = 27; return SB_OK;
    case '0': *out = 0; return SB_OK;
    case 'x':
        if (peek(ps) == '{') {
            ps->i++;
            return parse_hex(ps, 8, true, out);
        }
        return parse_hex(ps, 2, false, out);
    case 'u': return parse_hex(ps, 4, false, out);
    default:
        if ((e >= 'a' && e <= 'z') || (e >= 'A' && e <= 'Z') || (e >= '1' && e <= '9')) {
            ps->i--;
            return parse_fail(ps, "unsupported escape");
        }
        *out = e;
        return SB_OK;
    }
}

/* One member of a [...] class: a character, range or class escape. */
static int parse_class_member(parser *ps, char_class *c) {
    uint32_t lo;
    if (peek(ps) == '\\') {
        ps->i++;
        class_item it;
        int r = parse_class_escape(ps, &it);
        if (r < 0) return -r;
        if (r == 1) return add_item_to_class(ps, c, it);
        if (parse_char_escape(ps, &lo) != SB_OK) return ps->err->code;
    } else if (peek(ps) == '[') {
        return parse_fail(ps, "nested character classes are not supported");
    } else {
        lo = ps->p[ps->i++];
    }
    uint32_t hi = lo;
    if (peek(ps) == '-' && ps->i + 1 < ps->n && ps->p[ps->i + 1] != ']') {
        ps->i++;
        if (peek(ps) == '\\') {
            ps->i++;
            if (parse_char_escape(ps, &hi) != SB_OK) return ps->err->code;
        } else {
            hi = ps->p[ps->i++];
        }
        if (hi < lo) return parse_fail(ps, "character class range out of order");
    }
    if (!class_add_range(c, lo, hi)) return sb_err_set(ps->err, SB_EINTERNAL, "regex: out of memory");
    return SB_OK;
}

/* [...] after the '['; returns the class index or -1 (error set). */
static int parse_class(parser *ps, bool icase) {
    int ci = new_class(ps);
    if (ci < 0) {
        sb_err_set(ps->err, SB_EINTERNAL, "regex: out of memory");
        return -1;
    }
    char_class *c = &ps->classes[ci];
    c->icase = icase;
    if (peek(ps) == '^') {
        c->negated = true;
        ps->i++;
    }
    bool first = true;
    while (!at_end(ps) && (peek(ps) != ']' || first)) {
        first = false;
        if (parse_class_member(ps, &ps->classes[ci]) != SB_OK) return -1;
    }
    if (at_end(ps)) {
        parse_fail(ps, "unterminated character class");
        return -1;
    }
    ps->i++;
    class_finish(&ps->classes[ci]);
    return ci;
}

static int class_node_from_item(parser *ps, class_item it) {
    int ci = new_class(ps);
    int nd = ci < 0 ? -1 : new_node(ps, N_CLASS);
    if (nd < 0) {
        sb_err_set(ps->err, SB_EINTERNAL, "regex: out of memory");
        return -1;
    }
    if (add_item_to_class(ps, &ps->classes[ci], it) != SB_OK) return -1;
    class_finish(&ps->classes[ci]);
    ps->nodes[nd].cls = ci;
    return nd;
}

static int char_node(parser *ps, uint32_t cp, bool icase) {
    int nd = new_node(ps, N_CHAR);
    if (nd < 0) {
        sb_err_set(ps->err, SB_EINTERNAL, "regex: out of memory");
        return -1;
    }
    uint32_t folded = icase ? sb_unicode_fold_case(cp) : cp;
    ps->nodes[nd].icase = icase;
    ps->nodes[nd].cp = folded;
    return nd;
}

static int assert_node(parser *ps, assert_kind as) {
    int nd = new_node(ps, N_ASSERT);
    if (nd < 0) {
        sb_err_set(ps->err, SB_EINTERNAL, "regex: out of memory");
        return -1;
    }
    ps->nodes[nd].as = as;
    return nd;
}

static int parse_alt(parser *ps, bool icase);

/* "(" already consumed: the group kinds (?: (?i: (?i) (?= (?! (?<name> (. */
static int parse_group(parser *ps, bool *icase) {
    bool inner_icase = *icase;
    node_kind kind = N_EMPTY;
    bool negate = false;
    if (peek(ps) == '?') {
        ps->i++;
        uint32_t c = peek(ps);
        if (c == ':') {
            ps->i++;
        } else if (c == '=' || c == '!') {
            ps->i++;
            kind = N_LOOK;
            negate = c == '!';
        } else if (c == '<' && ps->i + 1 < ps->n && ps->p[ps->i + 1] != '=' && ps->p[ps->i + 1] != '!') {
            while (!at_end(ps) && peek(ps) != '>') ps->i++;
            if (at_end(ps)) {
                parse_fail(ps, "unterminated group name");
                return -1;
            }
            ps->i++;
        } else if (c == 'i' || c == '-') {
            bool on = true;
            while (!at_end(ps) && (peek(ps) == 'i' || peek(ps) == '-')) {
                if (peek(ps) == '-') on = false;
                else inner_icase = on;
                ps->i++;
            }
            if (peek(ps) == ')') { /* (?i) switches the rest of the enclosing group */
                ps->i++;
                *icase = inner_icase;
                int nd = new_node(ps, N_EMPTY);
                if (nd < 0) sb_err_set(ps->err, SB_EINTERNAL, "regex: out of memory");
                return nd;
            }
            if (peek(ps) != ':') {
                parse_fail(ps, "unsupported group flags");
                return -1;
            }
            ps->i++;
        } else {
            parse_fail(ps, "unsupported group kind (lookbehind, atomic or conditional)");
            return -1;
        }
    }
    int inner = parse_alt(ps, inner_icase);
    if (inner < 0) return -1;
    if (peek(ps) != ')') {
        parse_fail(ps, "missing ')'");
        return -1;
    }
    ps->i++;
    if (kind != N_LOOK) return inner;
    int nd = new_node(ps, N_LOOK);
    if (nd < 0) {
        sb_err_set(ps->err, SB_EINTERNAL, "regex: out of memory");
        return -1;
    }
    ps->nodes[nd].negate = negate;
    add_child(ps, nd, inner);
    return nd;
}

/* An atom: returns its node, or -1 with the error set. */
static int parse_atom(parser *ps, bool *icase) {
    uint32_t c = ps->p[ps->i++];
    switch (c) {
    case '(': return parse_group(ps, icase);
    case '[': {
        int ci = parse_class(ps, *icase);
        if (ci < 0) return -1;
        int nd = new_node(ps, N_CLASS);
        if (nd < 0) {
            sb_err_set(ps->err, SB_EINTERNAL, "regex: out of memory");
            return -1;
        }
        ps->nodes[nd].cls = ci;
        return nd;
    }
    case '.': {
        int nd = new_node(ps, N_ANY);
        if (nd < 0) sb_err_set(ps->err, SB_EINTERNAL, "regex: out of memory");
        return nd;
    }
    case '^': return assert_node(ps, AS_TEXT_START);
    case '$': return assert_node(ps, AS_TEXT_END_NL);
    case '\\': {
        uint32_t e = peek(ps);
        if (e == 'A' || e == 'z' || e == 'Z' || e == 'b' || e == 'B') {
            ps->i++;
            return assert_node(ps, e == 'A' ? AS_TEXT_START : e == 'z' ? AS_TEXT_END : e == 'Z' ? AS_TEXT_END_NL
                                   : e == 'b' ? AS_WORD_B : AS_NOT_WORD_B);
        }
        class_item it;
        int r = parse_class_escape(ps, &it);
        if (r < 0) return -1;
        if (r == 1) {
            int nd = class_node_from_item(ps, it);
            if (nd >= 0) ps->classes[ps->nodes[nd].cls].icase = false;
            return nd;
        }
        uint32_t cp;
        if (parse_char_escape(ps, &cp) != SB_OK) return -1;
        return char_node(ps, cp, *icase);
    }
    case ')': ps->i--; parse_fail(ps, "unmatched ')'"); return -1;
    case '*': case '+': case '?': ps->i--; parse_fail(ps, "quantifier without an operand"); return -1;
    default: return char_node(ps, c, *icase);
    }
}

static bool parse_number(parser *ps, int *out) {
    size_t start = ps->i;
    long v = 0;
    while (!at_end(ps) && peek(ps) >= '0' && peek(ps) <= '9') {
        v = v * 10 + (long)(peek(ps) - '0');
        if (v > 100000) v = 100000;
        ps->i++;
    }
    *out = (int)v;
    return ps->i > start;
}

/* {m}, {m,}, {m,n} (the '{' not consumed). Returns false, position
 * unchanged, when this is not a valid counted repeat (then '{' is literal). */
static bool parse_counted(parser *ps, int *min, int *max) {
    size_t save = ps->i++;
    if (!parse_number(ps, min)) goto literal;
    *max = *min;
    if (peek(ps) == ',') {
        ps->i++;
        if (!parse_number(ps, max)) *max = REPEAT_INF;
    }
    if (peek(ps) != '}') goto literal;
    ps->i++;
    return true;
literal:
    ps->i = save;
    return false;
}

static int parse_repeat(parser *ps, int atom) {
    for (int stacked = 0;; stacked++) {
        uint32_t c = peek(ps);
        int min, max;
        if (c == '*') { min = 0; max = REPEAT_INF; ps->i++; }
        else if (c == '+') { min = 1; max = REPEAT_INF; ps->i++; }
        else if (c == '?') { min = 0; max = 1; ps->i++; }
        else if (c == '{' && parse_counted(ps, &min, &max)) { }
        else return atom;
        if (stacked == 4) {
            parse_fail(ps, "too many quantifiers in a row");
            return -1;
        }
        if (min > MAX_REPEAT || max > MAX_REPEAT || (max != REPEAT_INF && max < min)) {
            parse_fail(ps, "bad or too large repeat count");
            return -1;
        }
        repeat_mode mode = REP_GREEDY;
        if (peek(ps) == '?') { mode = REP_LAZY; ps->i++; }
        else if (peek(ps) == '+') { mode = REP_POSSESSIVE; ps->i++; }
        int nd = new_node(ps, N_REPEAT);
        if (nd < 0) {
            sb_err_set(ps->err, SB_EINTERNAL, "regex: out of memory");
            return -1;
        }
        ps->nodes[nd].min = min;
        ps->nodes[nd].max = max;
        ps->nodes[nd].mode = mode;
        add_child(ps, nd, atom);
        atom = nd;
    }
}

static int parse_concat(parser *ps, bool *icase) {
    int seq = new_node(ps, N_CONCAT);
    if (seq < 0) {
        sb_err_set(ps->err, SB_EINTERNAL, "regex: out of memory");
        return -1;
    }
    while (!at_end(ps) && peek(ps) != '|' && peek(ps) != ')') {
        int atom = parse_atom(ps, icase);
        if (atom < 0) return -1;
        atom = parse_repeat(ps, atom);
        if (atom < 0) return -1;
        add_child(ps, seq, atom);
    }
    return seq;
}

static int parse_alt(parser *ps, bool icase) {
    if (++ps->depth > MAX_DEPTH) {
        parse_fail(ps, "groups nested too deeply");
        return -1;
    }
    int alt = new_node(ps, N_ALT);
    if (alt < 0) {
        sb_err_set(ps->err, SB_EINTERNAL, "regex: out of memory");
        return -1;
    }
    for (;;) {
        int seq = parse_concat(ps, &icase);
        if (seq < 0) return -1;
        add_child(ps, alt, seq);
        if (peek(ps) != '|' || at_end(ps)) break;
        ps->i++;
    }
    ps->depth--;
    return alt;
}

/* ---- compiler ----------------------------------------------------------------- */

typedef struct compiler {
    const parser *ps;
    inst *prog;
    size_t n, cap;
    int n_marks;
    sb_err *err;
} compiler;

static int emit(compiler *cc, uint8_t op, int32_t a, int32_t b, uint32_t c) {
    if (cc->n >= MAX_PROGRAM) {
        sb_err_set(cc->err, SB_EINPUT, "regex: pattern compiles to more than %d instructions", MAX_PROGRAM);
        return -1;
    }
    if (cc->n == cc->cap) {
        size_t cap = cc->cap ? cc->cap * 2 : 256;
        inst *p = realloc(cc->prog, cap * sizeof *p);
        if (!p) {
            sb_err_set(cc->err, SB_EINTERNAL, "regex: out of memory");
            return -1;
        }
        cc->prog = p;
        cc->cap = cap;
    }
    cc->prog[cc->n] = (inst){op, 0, a, b, c};
    return (int)cc->n++;
}

static bool nullable(const parser *ps, int nd) {
    const node *n = &ps->nodes[nd];
    switch (n->kind) {
    case N_CHAR: case N_CLASS: case N_ANY: return false;
    case N_CONCAT:
        for (int k = n->first; k >= 0; k = ps->nodes[k].next)
            if (!nullable(ps, k)) return false;
        return true;
    case N_ALT:
        for (int k = n->first; k >= 0; k = ps->nodes[k].next)
            if (nullable(ps, k)) return true;
        return false;
    case N_REPEAT: return n->min == 0 || nullable(ps, n->first);
    default: return true;
    }
}

/* A node that always consumes exactly one code point: CHAR, CLASS, ANY, or
 * a concat/alt wrapper around exactly one of those. */
static int single_char_node(const parser *ps, int nd) {
    const node *n = &ps->nodes[nd];
    if (n->kind == N_CHAR || n->kind == N_CLASS || n->kind == N_ANY) return nd;
    if ((n->kind == N_CONCAT || n->kind == N_ALT) && n->first >= 0 && n->first == n->last)
        return single_char_node(ps, n->first);
    return -1;
}

static int compile_node(compiler *cc, int nd);

static int compile_alt(compiler *cc, const node *n) {
    int jumps[256];
    int n_jumps = 0;
    bool overflow = false;
    for (int k = n->first; k >= 0; k = cc->ps->nodes[k].next) {
        int split = -1;
        if (cc->ps->nodes[k].next >= 0) {
            split = emit(cc, I_SPLIT, 0, 0, 0);
            if (split < 0) return -1;
            cc->prog[split].a = (int32_t)cc->n;
        }
        if (compile_node(cc, k) < 0) return -1;
        if (cc->ps->nodes[k].next >= 0) {
            int j = emit(cc, I_JMP, 0, 0, 0);
            if (j < 0) return -1;
            if (n_jumps < 256) jumps[n_jumps++] = j;
            else overflow = true;
            cc->prog[split].b = (int32_t)cc->n;
        }
    }
    if (overflow) return sb_err_set(cc->err, SB_EINPUT, "regex: more than 256 alternatives in one group"), -1;
    for (int j = 0; j < n_jumps; j++) cc->prog[jumps[j]].a = (int32_t)cc->n;
    return 0;
}

/* e* (greedy or lazy), with a progress check when e can match empty. */
static int compile_star(compiler *cc, int body, bool lazy) {
    int loop = emit(cc, I_SPLIT, 0, 0, 0);
    if (loop < 0) return -1;
    bool check = nullable(cc->ps, body);
    int reg = check ? cc->n_marks++ : 0;
    if (check && emit(cc, I_MARK, reg, 0, 0) < 0) return -1;
    int start = loop + 1;
    if (compile_node(cc, body) < 0) return -1;
    if (check && emit(cc, I_PROGRESS, reg, 0, 0) < 0) return -1;
    if (emit(cc, I_JMP, loop, 0, 0) < 0) return -1;
    cc->prog[loop].a = lazy ? (int32_t)cc->n : start;
    cc->prog[loop].b = lazy ? start : (int32_t)cc->n;
    return 0;
}

static int compile_repeat(compiler *cc, const node *n) {
    int body = n->first;
    int single = single_char_node(cc->ps, body);
    if (n->mode == REP_POSSESSIVE && single < 0)
        return sb_err_set(cc->err, SB_EINPUT, "regex: possessive repeats are only supported on one character or class"), -1;
    for (int i = 0; i < n->min; i++)
        if (compile_node(cc, body) < 0) return -1;
    if (n->max == n->min) return 0;
    if (single >= 0 && n->mode != REP_LAZY) {
        uint32_t extra = n->max == REPEAT_INF ? UINT32_MAX : (uint32_t)(n->max - n->min);
        int rep = emit(cc, I_REP, 0, 0, extra);
        if (rep < 0) return -1;
        cc->prog[rep].flag = n->mode == REP_POSSESSIVE;
        return compile_node(cc, single);
    }
    if (n->max == REPEAT_INF) return compile_star(cc, body, n->mode == REP_LAZY);
    int splits[MAX_REPEAT];
    int n_splits = n->max - n->min;
    for (int i = 0; i < n_splits; i++) {
        splits[i] = emit(cc, I_SPLIT, 0, 0, 0);
        if (splits[i] < 0) return -1;
        if (compile_node(cc, body) < 0) return -1;
    }
    for (int i = 0; i < n_splits; i++) {
        int32_t taken = splits[i] + 1, skip = (int32_t)cc->n;
        cc->prog[splits[i]].a = n->mode == REP_LAZY ? skip : taken;
        cc->prog[splits[i]].b = n->mode == REP_LAZY ? taken : skip;
    }
    return 0;
}

static int compile_node(compiler *cc, int nd) {
    const node *n = &cc->ps->nodes[nd];
    switch (n->kind) {
    case N_EMPTY: return 0;
    case N_CHAR: return emit(cc, n->icase ? I_CHAR_I : I_CHAR, 0, 0, n->cp) < 0 ? -1 : 0;
    case N_CLASS: return emit(cc, I_CLASS, n->cls, 0, 0) < 0 ? -1 : 0;
    case N_ANY: return emit(cc, I_ANY, 0, 0, 0) < 0 ? -1 : 0;
    case N_ASSERT: return emit(cc, I_ASSERT, (int32_t)n->as, 0, 0) < 0 ? -1 : 0;
    case N_CONCAT:
        for (int k = n->first; k >= 0; k = cc->ps->nodes[k].next)
            if (compile_node(cc, k) < 0) return -1;
        return 0;
    case N_ALT: return compile_alt(cc, n);
    case N_REPEAT: return compile_repeat(cc, n);
    case N_LOOK: {
        int look = emit(cc, I_LOOK, 0, 0, 0);
        if (look < 0) return -1;
        cc->prog[look].flag = n->negate;
        if (compile_node(cc, n->first) < 0 || emit(cc, I_MATCH, 0, 0, 0) < 0) return -1;
        cc->prog[look].a = (int32_t)cc->n;
        return 0;
    }
    }
    return -1;
}

static void free_classes(char_class *classes, size_t n) {
    for (size_t i = 0; i < n; i++) free(classes[i].ranges);
    free(classes);
}

int sb_regex_compile(const char *pattern, size_t len, sb_regex **out, sb_err *err) {
    *out = NULL;
    uint32_t *cps = malloc((len + 1) * sizeof *cps);
    if (!cps) return sb_err_set(err, SB_EINTERNAL, "regex: out of memory");
    size_t n = 0;
    for (size_t i = 0; i < len;) {
        int l = sb_utf8_decode((const uint8_t *)pattern + i, len - i, &cps[n]);
        if (l == 0) {
            free(cps);
            return sb_err_set(err, SB_EINPUT, "regex: pattern is not valid UTF-8");
        }
        i += (size_t)l;
        n++;
    }
    parser ps = {.p = cps, .n = n, .err = err};
    compiler cc = {.ps = &ps, .err = err};
    int root = parse_alt(&ps, false);
    if (root >= 0 && !at_end(&ps)) {
        parse_fail(&ps, "unmatched ')'");
        root = -1;
    }
    int rc = root < 0 ? err->code : SB_OK;
    if (rc == SB_OK && (compile_node(&cc, root) < 0 || emit(&cc, I_MATCH, 0, 0, 0) < 0)) rc = err->code;
    sb_regex *re = rc == SB_OK ? calloc(1, sizeof *re) : NULL;
    if (rc == SB_OK && !re) rc = sb_err_set(err, SB_EINTERNAL, "regex: out of memory");
    free(cps);
    free(ps.nodes);
    if (rc != SB_OK) {
        free(cc.prog);
        free_classes(ps.classes, ps.n_classes);
        return rc;
    }
    re->prog = cc.prog;
    re->n_prog = cc.n;
    re->classes = ps.classes;
    re->n_classes = ps.n_classes;
    re->n_marks = cc.n_marks;
    *out = re;
    return SB_OK;
}

void sb_regex_free(sb_regex *re) {
    if (!re) return;
    free(re->prog);
    free_classes(re->classes, re->n_classes);
    free(re);
}

void sb_regex_scratch_free(sb_regex_scratch *s) {
    free(s->stack);
    free(s->marks);
    memset(s, 0, sizeof *s);
}

/* ---- matcher ----------------------------------------------------------------- */

enum { BT_BRANCH, BT_GIVE_BACK, BT_RESTORE_MARK };

/* A backtrack entry: BRANCH resumes pc at pos a; GIVE_BACK resumes pc at
 * positions b, b-1, ..., a (a greedy single-character repeat handing back
 * one character at a time); RESTORE_MARK puts register pc back to a. */
typedef struct bt_entry {
    int32_t kind, pc;
    size_t a, b;
} bt_entry;

typedef struct run_ctx {
    const sb_regex *re;
    const uint32_t *cps;
    const uint8_t *props;
    size_t n;
    sb_regex_scratch *s;
    size_t top;
    uint64_t steps, budget;
} run_ctx;

static bool push(run_ctx *rc, int32_t kind, int32_t pc, size_t a, size_t b) {
    if (rc->top == rc->s->cap) {
        size_t cap = rc->s->cap ? rc->s->cap * 2 : 256;
        bt_entry *st = realloc(rc->s->stack, cap * sizeof *st);
        if (!st) return false;
        rc->s->stack = st;
        rc->s->cap = cap;
    }
    ((bt_entry *)rc->s->stack)[rc->top++] = (bt_entry){kind, pc, a, b};
    return true;
}

static inline bool one_char_matches(const run_ctx *rc, const inst *in, size_t pos) {
    uint32_t cp = rc->cps[pos];
    switch (in->op) {
    case I_CHAR: return cp == in->c;
    case I_CHAR_I: return sb_unicode_fold_case(cp) == in->c;
    case I_CLASS: return class_match(&rc->re->classes[in->a], cp, rc->props[pos]);
    default: return cp != '\n'; /* I_ANY */
    }
}

static bool is_word_at(const run_ctx *rc, size_t pos) {
    if (pos >= rc->n) return false;
    return (WORD_MASK >> (rc->props[pos] & SB_UPROP_CAT_MASK)) & 1;
}

static bool assertion_holds(const run_ctx *rc, assert_kind as, size_t pos) {
    switch (as) {
    case AS_TEXT_START: return pos == 0;
    case AS_TEXT_END: return pos == rc->n;
    case AS_TEXT_END_NL: return pos == rc->n || (pos + 1 == rc->n && rc->cps[pos] == '\n');
    case AS_WORD_B: return (pos > 0 && is_word_at(rc, pos - 1)) != is_word_at(rc, pos);
    case AS_NOT_WORD_B: return (pos > 0 && is_word_at(rc, pos - 1)) == is_word_at(rc, pos);
    }
    return false;
}

/* Runs the program from pc at pos; returns the end of the match, or a
 * negative value: -1 no match, -2 budget exceeded, -3 out of memory.
 * Backtrack entries below `base` belong to an enclosing run. */
static long run(run_ctx *rc, int32_t pc, size_t pos) {
    const inst *prog = rc->re->prog;
    size_t base = rc->top;
    for (;;) {
        if (++rc->steps > rc->budget) return -2;
        const inst *in = &prog[pc];
        switch (in->op) {
        case I_CHAR: case I_CHAR_I: case I_CLASS: case I_ANY:
            if (pos < rc->n && one_char_matches(rc, in, pos)) {
                pos++;
                pc++;
                continue;
            }
            goto fail;
        case I_REP: {
            const inst *atom = in + 1;
            size_t k = 0, limit = rc->n - pos;
            if (in->c < limit) limit = in->c;
            while (k < limit && one_char_matches(rc, atom, pos + k)) k++;
            rc->steps += k / 8;
            if (k > 0 && !in->flag && !push(rc, BT_GIVE_BACK, pc + 2, pos, pos + k - 1)) return -3;
            pos += k;
            pc += 2;
            continue;
        }
        case I_SPLIT:
            if (!push(rc, BT_BRANCH, in->b, pos, 0)) return -3;
            pc = in->a;
            continue;
        case I_JMP: pc = in->a; continue;
        case I_MATCH: rc->top = base; return (long)pos;
        case I_ASSERT:
            if (assertion_holds(rc, (assert_kind)in->a, pos)) {
                pc++;
                continue;
            }
            goto fail;
        case I_LOOK: {
            long r = run(rc, pc + 1, pos);
            if (r < -1) return r;
            if ((r >= 0) != (bool)in->flag) {
                pc = in->a;
                continue;
            }
            goto fail;
        }
        case I_MARK:
            if (!push(rc, BT_RESTORE_MARK, in->a, (size_t)rc->s->marks[in->a], 0)) return -3;
            rc->s->marks[in->a] = (int32_t)pos;
            pc++;
            continue;
        case I_PROGRESS:
            if ((size_t)rc->s->marks[in->a] != pos) {
                pc++;
                continue;
            }
            goto fail;
        }
    fail:
        for (;;) {
            if (rc->top == base) return -1;
            bt_entry *e = &((bt_entry *)rc->s->stack)[rc->top - 1];
            if (e->kind == BT_RESTORE_MARK) {
                rc->s->marks[e->pc] = (int32_t)e->a;
                rc->top--;
                continue;
            }
            pc = e->pc;
            if (e->kind == BT_BRANCH) {
                pos = e->a;
                rc->top--;
            } else { /* BT_GIVE_BACK: hand back one more character */
                pos = e->b;
                if (e->b == e->a) rc->top--;
                else e->b--;
            }
            break;
        }
    }
}

int sb_regex_search(const sb_regex *re, const uint32_t *cps, const uint8_t *props, size_t n, size_t start,
                    size_t *mstart, size_t *mend, sb_regex_scratch *scratch) {
    if ((size_t)re->n_marks > scratch->n_marks) {
        int32_t *m = realloc(scratch->marks, (size_t)re->n_marks * sizeof *m);
        if (!m) return SB_REGEX_NOMEM;
        scratch->marks = m;
        scratch->n_marks = (size_t)re->n_marks;
    }
    run_ctx rc = {re, cps, props, n, scratch, 0, 0, 0};
    /* Generous for real patterns (a few hundred steps per character), but
     * bounded, so exponential backtracking ends in an error. */
    rc.budget = 1000000 + (uint64_t)(n - start) * 2000;
    for (size_t p = start; p <= n; p++) {
        rc.top = 0;
        long end = run(&rc, 0, p);
        if (end >= 0) {
            *mstart = p;
            *mend = (size_t)end;
            return SB_REGEX_MATCH;
        }
        if (end == -2) return SB_REGEX_TOO_COMPLEX;
        if (end == -3) return SB_REGEX_NOMEM;
    }
    return SB_REGEX_NOMATCH;
}
