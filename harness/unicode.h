/* unicode.h - what the tokenizer needs to know about code points: UTF-8
 * decoding/encoding, the general category and White_Space property (for
 * pre-tokenizer regexes like \p{L} or \s) and simple case folding (for
 * (?i:...) groups).  The tables live in unicode_tables.c, generated from
 * the Unicode Character Database by gen_unicode_tables.py. */
#ifndef SB_UNICODE_H
#define SB_UNICODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* General categories, in the order gen_unicode_tables.py writes them. */
enum sb_ucat {
    SB_UCAT_Cn, SB_UCAT_Lu, SB_UCAT_Ll, SB_UCAT_Lt, SB_UCAT_Lm, SB_UCAT_Lo,
    SB_UCAT_Mn, SB_UCAT_Mc, SB_UCAT_Me, SB_UCAT_Nd, SB_UCAT_Nl, SB_UCAT_No,
    SB_UCAT_Pc, SB_UCAT_Pd, SB_UCAT_Ps, SB_UCAT_Pe, SB_UCAT_Pi, SB_UCAT_Pf, SB_UCAT_Po,
    SB_UCAT_Sm, SB_UCAT_Sc, SB_UCAT_Sk, SB_UCAT_So,
    SB_UCAT_Zs, SB_UCAT_Zl, SB_UCAT_Zp, SB_UCAT_Cc, SB_UCAT_Cf, SB_UCAT_Cs, SB_UCAT_Co,
    SB_UCAT_COUNT
};

/* Category masks (bit i = category i) for the one-letter groups. */
#define SB_UMASK(c) (1u << (c))
#define SB_UMASK_L (SB_UMASK(SB_UCAT_Lu) | SB_UMASK(SB_UCAT_Ll) | SB_UMASK(SB_UCAT_Lt) | SB_UMASK(SB_UCAT_Lm) | SB_UMASK(SB_UCAT_Lo))
#define SB_UMASK_M (SB_UMASK(SB_UCAT_Mn) | SB_UMASK(SB_UCAT_Mc) | SB_UMASK(SB_UCAT_Me))
#define SB_UMASK_N (SB_UMASK(SB_UCAT_Nd) | SB_UMASK(SB_UCAT_Nl) | SB_UMASK(SB_UCAT_No))

/* A code point's property byte: category in the low 5 bits, White_Space in bit 5. */
#define SB_UPROP_CAT_MASK 0x1f
#define SB_UPROP_WHITE_SPACE 0x20

#define SB_UNICODE_BLOCK 128
extern const uint16_t sb_unicode_stage1[0x110000 / SB_UNICODE_BLOCK];
extern const uint8_t sb_unicode_stage2[];
extern const uint32_t sb_unicode_fold_count;
extern const uint32_t sb_unicode_fold[][2];

static inline uint8_t sb_unicode_prop(uint32_t cp) {
    if (cp >= 0x110000) return SB_UCAT_Cn;
    return sb_unicode_stage2[(size_t)sb_unicode_stage1[cp / SB_UNICODE_BLOCK] * SB_UNICODE_BLOCK + cp % SB_UNICODE_BLOCK];
}

/* Simple case folding (C+S of CaseFolding.txt); cp itself when none. */
uint32_t sb_unicode_fold_case(uint32_t cp);

/* Decodes one well-formed UTF-8 sequence at s[0..n) (n >= 1).  Returns its
 * length (1-4) and the code point, or 0 when the bytes there are not a
 * well-formed sequence (overlong, surrogate, beyond U+10FFFF, truncated). */
int sb_utf8_decode(const uint8_t *s, size_t n, uint32_t *cp);

/* Writes cp as UTF-8 into out (room for 4 bytes); returns the length. */
int sb_utf8_encode(uint32_t cp, char *out);

/* Length of the sequence a lead byte announces (1 for continuation or
 * invalid bytes), as llama.cpp's unicode_len_utf8. */
int sb_utf8_lead_len(uint8_t c);

/* True when all n bytes are well-formed UTF-8. */
bool sb_utf8_valid(const char *s, size_t n);

#endif
