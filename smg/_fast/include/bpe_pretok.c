/* Pre-tokenizer matchers on UTF-8 bytes: the C side of smg._fast.bpe_py's matchers.
 *
 * Each matcher returns the end of the match its regex finds at byte p of the piece
 * s[..end] (leftmost-first alternation, as Oniguruma and fancy-regex do), or -1. The text
 * is valid UTF-8 (the caller encoded it). */
#include "bpe.h"

#define BPE_NONE ((ptrdiff_t)-1)

static inline size_t bpe_char_len(uint8_t b) {
    return b < 0x80 ? 1 : b < 0xE0 ? 2 : b < 0xF0 ? 3 : 4;
}

static inline uint32_t bpe_decode(const uint8_t *s, size_t p, size_t *next) {
    uint8_t b = s[p];
    if (b < 0x80) {
        *next = p + 1;
        return b;
    }
    if (b < 0xE0) {
        *next = p + 2;
        return (uint32_t)(b & 0x1F) << 6 | (s[p + 1] & 0x3F);
    }
    if (b < 0xF0) {
        *next = p + 3;
        return (uint32_t)(b & 0x0F) << 12 | (uint32_t)(s[p + 1] & 0x3F) << 6 | (s[p + 2] & 0x3F);
    }
    *next = p + 4;
    return (uint32_t)(b & 0x07) << 18 | (uint32_t)(s[p + 1] & 0x3F) << 12 | (uint32_t)(s[p + 2] & 0x3F) << 6 |
           (s[p + 3] & 0x3F);
}

/* ASCII classes, filled from the Unicode table at init. */
static uint8_t bpe_ascii_class[128];

static void bpe_pretok_init(void) {
    for (int c = 0; c < 128; c++) bpe_ascii_class[c] = (uint8_t)bpe_class_of((uint32_t)c);
}

static inline int bpe_cls(const uint8_t *s, size_t p, size_t *next) {
    if (s[p] < 0x80) {
        *next = p + 1;
        return bpe_ascii_class[s[p]];
    }
    return bpe_class_of(bpe_decode(s, p, next));
}

#define BPE_IN(c, mask, neg) ((((c) & (mask)) != 0) != (neg))

static inline size_t bpe_run(const uint8_t *s, size_t p, size_t end, int mask, int neg) {
    while (p < end) {
        size_t n;
        if (s[p] < 0x80) {
            if (!BPE_IN(bpe_ascii_class[s[p]], mask, neg)) break;
            p++;
            continue;
        }
        int c = bpe_cls(s, p, &n);
        if (!BPE_IN(c, mask, neg)) break;
        p = n;
    }
    return p;
}

static inline size_t bpe_newlines(const uint8_t *s, size_t p, size_t end) {
    while (p < end && (s[p] == '\r' || s[p] == '\n')) p++;
    return p;
}

/* A letter of a contraction at p, case-folded when `fold` (U+017F folds to 's'), or 0. */
static inline int bpe_fold_at(const uint8_t *s, size_t p, size_t end, int fold, size_t *next) {
    if (p >= end) return 0;
    uint8_t b = s[p];
    if (b < 0x80) {
        *next = p + 1;
        return fold && b >= 'A' && b <= 'Z' ? b + 32 : b;
    }
    if (fold && b == 0xC5 && p + 1 < end && s[p + 1] == 0xBF) {
        *next = p + 2;
        return 's';
    }
    return 0;
}

/* 's|'t|'re|'ve|'m|'ll|'d at p (s[p] is the apostrophe). */
static inline ptrdiff_t bpe_contraction(const uint8_t *s, size_t p, size_t end, int fold) {
    size_t n1, n2;
    int a = bpe_fold_at(s, p + 1, end, fold, &n1);
    if (a == 's' || a == 't' || a == 'm' || a == 'd') return (ptrdiff_t)n1;
    if (a != 'r' && a != 'v' && a != 'l') return BPE_NONE;
    int b = bpe_fold_at(s, n1, end, fold, &n2);
    if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return (ptrdiff_t)n2;
    return BPE_NONE;
}

/* \s*[\r\n]+|\s+(?!\S)|\s+ at a whitespace character (no first alternative unless newline_alt). */
static inline ptrdiff_t bpe_spaces(const uint8_t *s, size_t p, size_t end, int newline_alt) {
    size_t q = p, last = p, nl = (size_t)-1;
    while (q < end) {
        size_t n;
        int c = bpe_cls(s, q, &n);
        if (!(c & BPE_SPACE)) break;
        if (s[q] == '\r' || s[q] == '\n') nl = q;
        last = q;
        q = n;
    }
    if (newline_alt && nl != (size_t)-1) return (ptrdiff_t)nl + 1;
    if (q == end || last == p) return (ptrdiff_t)q;
    return (ptrdiff_t)last;
}

/*  ?[class]+ at p. */
static inline ptrdiff_t bpe_class_alt(const uint8_t *s, size_t p, size_t end, int mask, int neg) {
    size_t q = s[p] == ' ' ? p + 1 : p, n;
    if (q < end && BPE_IN(bpe_cls(s, q, &n), mask, neg)) return (ptrdiff_t)bpe_run(s, n, end, mask, neg);
    return BPE_NONE;
}

static ptrdiff_t bpe_match_cl100k(const uint8_t *s, size_t p, size_t end, int letters, int digits) {
    if (s[p] == '\'') {
        ptrdiff_t e = bpe_contraction(s, p, end, 1);
        if (e >= 0) return e;
    }
    size_t n, n2;
    int c = bpe_cls(s, p, &n);
    if (!(c & (BPE_LETTER | BPE_NUM)) && s[p] != '\r' && s[p] != '\n' && n < end &&
        (bpe_cls(s, n, &n2) & letters))
        return (ptrdiff_t)bpe_run(s, n2, end, letters, 0);
    if (c & letters) return (ptrdiff_t)bpe_run(s, n, end, letters, 0);
    if (c & BPE_NUM) {
        size_t e = n;
        for (int k = 1; k < digits && e < end && (bpe_cls(s, e, &n2) & BPE_NUM); k++) e = n2;
        return (ptrdiff_t)e;
    }
    ptrdiff_t e = bpe_class_alt(s, p, end, BPE_SPACE | letters | BPE_NUM, 1);
    if (e >= 0) return (ptrdiff_t)bpe_newlines(s, (size_t)e, end);
    return (c & BPE_SPACE) ? bpe_spaces(s, p, end, 1) : BPE_NONE;
}

static ptrdiff_t bpe_match_gpt2(const uint8_t *s, size_t p, size_t end) {
    if (s[p] == '\'') {
        ptrdiff_t e = bpe_contraction(s, p, end, 0);
        if (e >= 0) return e;
    }
    ptrdiff_t e = bpe_class_alt(s, p, end, BPE_LETTER, 0);
    if (e < 0) e = bpe_class_alt(s, p, end, BPE_NUM, 0);
    if (e < 0) e = bpe_class_alt(s, p, end, BPE_SPACE | BPE_LETTER | BPE_NUM, 1);
    if (e >= 0) return e;
    size_t n;
    return (bpe_cls(s, p, &n) & BPE_SPACE) ? bpe_spaces(s, p, end, 0) : BPE_NONE;
}

static inline int bpe_ascii_alpha(uint8_t b) { return (b | 32) >= 'a' && (b | 32) <= 'z'; }

static inline int bpe_ascii_punct(uint8_t b) {
    return (b >= '!' && b <= '/') || (b >= ':' && b <= '@') || (b >= '[' && b <= '`') || (b >= '{' && b <= '~');
}

static ptrdiff_t bpe_match_deepseek(const uint8_t *s, size_t p, size_t end) {
    if (bpe_ascii_punct(s[p]) && p + 1 < end && bpe_ascii_alpha(s[p + 1])) {
        size_t e = p + 2;
        while (e < end && bpe_ascii_alpha(s[e])) e++;
        return (ptrdiff_t)e;
    }
    const int lm = BPE_LETTER | BPE_MARK;
    size_t n, n2;
    int c = bpe_cls(s, p, &n);
    if (!(c & (BPE_LETTER | BPE_PUNCT | BPE_SYM)) && s[p] != '\r' && s[p] != '\n' && n < end &&
        (bpe_cls(s, n, &n2) & lm))
        return (ptrdiff_t)bpe_run(s, n2, end, lm, 0);
    if (c & lm) return (ptrdiff_t)bpe_run(s, n, end, lm, 0);
    ptrdiff_t e = bpe_class_alt(s, p, end, BPE_PUNCT | BPE_SYM, 0);
    if (e >= 0) return (ptrdiff_t)bpe_newlines(s, (size_t)e, end);
    return (c & BPE_SPACE) ? bpe_spaces(s, p, end, 1) : BPE_NONE;
}

static ptrdiff_t bpe_match_digits3(const uint8_t *s, size_t p, size_t end) {
    size_t e = p, n;
    for (int k = 0; k < 3 && e < end && (bpe_cls(s, e, &n) & BPE_NUM); k++) e = n;
    return e > p ? (ptrdiff_t)e : BPE_NONE;
}

static inline int bpe_is_cjk(uint32_t cp) { return (cp >= 0x4E00 && cp <= 0x9FA5) || (cp >= 0x3040 && cp <= 0x30FF); }

static ptrdiff_t bpe_match_cjk(const uint8_t *s, size_t p, size_t end) {
    size_t e = p, n;
    while (e < end && s[e] >= 0xE3 && s[e] <= 0xE9 && bpe_is_cjk(bpe_decode(s, e, &n))) e = n;
    return e > p ? (ptrdiff_t)e : BPE_NONE;
}

#define BPE_UPPER (BPE_LU | BPE_LO | BPE_MARK) /* [\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}] */
#define BPE_LOWER (BPE_LL | BPE_LO | BPE_MARK) /* [\p{Ll}\p{Lm}\p{Lo}\p{M}] */

/* UPPER* LOWER+ (lower_needed) or UPPER+ LOWER* at q, then an optional contraction. */
static ptrdiff_t bpe_o200k_word(const uint8_t *s, size_t q, size_t end, int lower_needed) {
    size_t u = q, n, last_lower_end = (size_t)-1, e;
    int c = 0;
    while (u < end) {
        c = bpe_cls(s, u, &n);
        if (!(c & BPE_UPPER)) break;
        if (c & BPE_LOWER) last_lower_end = n;
        u = n;
    }
    if (lower_needed) {
        if (u < end && (c & BPE_LOWER))
            e = bpe_run(s, n, end, BPE_LOWER, 0);
        else if (last_lower_end != (size_t)-1) /* backtracking UPPER* hands its last LOWER letter over */
            e = last_lower_end;
        else
            return BPE_NONE;
    } else if (u == q) {
        return BPE_NONE;
    } else {
        e = bpe_run(s, u, end, BPE_LOWER, 0);
    }
    if (e < end && s[e] == '\'') {
        ptrdiff_t k = bpe_contraction(s, e, end, 1);
        if (k >= 0) return k;
    }
    return (ptrdiff_t)e;
}

static ptrdiff_t bpe_match_o200k(const uint8_t *s, size_t p, size_t end) {
    size_t n;
    int c = bpe_cls(s, p, &n);
    int prefix = !(c & (BPE_LETTER | BPE_NUM)) && s[p] != '\r' && s[p] != '\n' && n < end;
    for (int lower_needed = 1; lower_needed >= 0; lower_needed--) {
        ptrdiff_t e;
        if (prefix && (e = bpe_o200k_word(s, n, end, lower_needed)) >= 0) return e;
        if ((e = bpe_o200k_word(s, p, end, lower_needed)) >= 0) return e;
    }
    if (c & BPE_NUM) return bpe_match_digits3(s, p, end);
    ptrdiff_t e = bpe_class_alt(s, p, end, BPE_SPACE | BPE_LETTER | BPE_NUM, 1);
    if (e >= 0) {
        size_t k = (size_t)e;
        while (k < end && (s[k] == '\r' || s[k] == '\n' || s[k] == '/')) k++;
        return (ptrdiff_t)k;
    }
    return (c & BPE_SPACE) ? bpe_spaces(s, p, end, 1) : BPE_NONE;
}

static inline ptrdiff_t bpe_match(int split, const uint8_t *s, size_t p, size_t end) {
    switch (split) {
    case BPE_SPLIT_GPT2: return bpe_match_gpt2(s, p, end);
    case BPE_SPLIT_CL100K: return bpe_match_cl100k(s, p, end, BPE_LETTER, 3);
    case BPE_SPLIT_QWEN: return bpe_match_cl100k(s, p, end, BPE_LETTER, 1);
    case BPE_SPLIT_QWEN35: return bpe_match_cl100k(s, p, end, BPE_LETTER | BPE_MARK, 1);
    case BPE_SPLIT_DIGITS3: return bpe_match_digits3(s, p, end);
    case BPE_SPLIT_CJK: return bpe_match_cjk(s, p, end);
    case BPE_SPLIT_DEEPSEEK: return bpe_match_deepseek(s, p, end);
    case BPE_SPLIT_O200K: return bpe_match_o200k(s, p, end);
    }
    return BPE_NONE;
}
