/* Encode UTF-8 text: added tokens, then the nested pre-tokenizer Splits, then BPE.
 * Runs without the GIL; the encoder is read-only and the word cache is the caller's. */
#include "bpe.h"
#include "bpe_tables.c"
#include "bpe_pretok.c"
#include "bpe_merge.c"

typedef struct {
    const bpe_encoder *e;
    bpe_cache *cache;
    const uint8_t *s;
    int allow_special;
    bpe_vec *out;
    int pieces; /* record each word's byte span in out instead of encoding it */
} bpe_job;

/* The first position from p where the Split's regex can start a match: the digit and CJK
 * Splits skip text that cannot start one without calling the matcher at each byte. */
static inline size_t bpe_skip(int split, const uint8_t *s, size_t p, size_t end) {
    if (split == BPE_SPLIT_DIGITS3) {
        while (p < end) {
            if (s[p] < 0x80) {
                if ((unsigned)(s[p] - '0') < 10u) break;
                p++;
                continue;
            }
            size_t n;
            if (bpe_cls(s, p, &n) & BPE_NUM) break;
            p = n;
        }
    } else if (split == BPE_SPLIT_CJK) {
        while (p < end && (s[p] < 0xE3 || s[p] > 0xE9)) p++; /* lead bytes of U+3040..U+9FFF */
    }
    return p;
}

static int bpe_pretokenize(const bpe_job *j, size_t start, size_t end, int level) {
    if (level == j->e->nsplits) {
        if (j->pieces) return bpe_vec_push(j->out, (uint32_t)start) || bpe_vec_push(j->out, (uint32_t)end);
        return bpe_word(j->e, j->cache, j->s + start, end - start, j->out);
    }
    int split = j->e->splits[level];
    size_t gap = start, p = start;
    while (p < end) {
        p = bpe_skip(split, j->s, p, end);
        if (p == end) break;
        ptrdiff_t m = bpe_match(split, j->s, p, end);
        if (m < 0) {
            p += bpe_char_len(j->s[p]);
            continue;
        }
        if (gap < p && bpe_pretokenize(j, gap, p, level + 1)) return -1;
        if (bpe_pretokenize(j, p, (size_t)m, level + 1)) return -1;
        gap = p = (size_t)m;
    }
    if (gap < end) return bpe_pretokenize(j, gap, end, level + 1);
    return 0;
}

/* The start of the whitespace run that ends at p, not before `floor`. */
static size_t bpe_space_before(const uint8_t *s, size_t p, size_t floor) {
    while (p > floor) {
        size_t q = p - 1, n;
        while (q > floor && (s[q] & 0xC0) == 0x80) q--;
        if (!(bpe_cls(s, q, &n) & BPE_SPACE)) break;
        p = q;
    }
    return p;
}

static int bpe_added_pass(const bpe_job *j, size_t start, size_t end, int pass) {
    if (pass == 2) return bpe_pretokenize(j, start, end, 0);
    size_t gap = start, p = start, a, b;
    for (;;) {
        int32_t t = bpe_added_find(j->e, pass, j->s, p, end, &a, &b);
        if (t < 0) break;
        p = b;
        const bpe_added *tok = &j->e->added[t];
        if (!j->allow_special && (tok->flags & BPE_ADDED_SPECIAL)) continue;
        if (tok->flags & BPE_ADDED_LSTRIP) a = bpe_space_before(j->s, a, gap);
        if (tok->flags & BPE_ADDED_RSTRIP) b = bpe_run(j->s, b, end, BPE_SPACE, 0);
        if (a < gap) continue; /* an earlier rstrip swallowed its start */
        if (gap < a && bpe_added_pass(j, gap, a, pass + 1)) return -1;
        if (!j->pieces && bpe_vec_push(j->out, tok->id)) return -1;
        gap = b; /* the search goes on from the token's own end, as HF's does */
    }
    if (gap < end) return bpe_added_pass(j, gap, end, pass + 1);
    return 0;
}

/* Fill the new list `list` with the ids: the int objects come from the tuple `ints` (one per
 * id; prefetched a few ahead since each refcount touch is a cache miss otherwise). */
static void bpe_fill_list(PyObject *list, PyObject *ints, const uint32_t *v, size_t n) {
    size_t top = (size_t)PyTuple_GET_SIZE(ints);
    for (size_t i = 0; i < n; i++) {
        if (i + 8 < n && v[i + 8] < top) __builtin_prefetch(PyTuple_GET_ITEM(ints, v[i + 8]), 1);
        PyObject *x = v[i] < top ? PyTuple_GET_ITEM(ints, v[i]) : PyLong_FromUnsignedLong(v[i]);
        if (v[i] < top) Py_INCREF(x);
        PyList_SET_ITEM(list, (Py_ssize_t)i, x);
    }
}

/* Encode s[0..n) into out (appending), or with `pieces` write the byte spans of the words
 * the pre-tokenizer cuts (start, end pairs; added tokens left out). Returns 0, or -1 when
 * out of memory. */
static int bpe_encode(bpe_encoder *e, const char *s, size_t n, int allow_special, int pieces, bpe_vec *out) {
    bpe_job j = {e, bpe_cache_take(e), (const uint8_t *)s, allow_special, out, pieces};
    int rc = bpe_added_pass(&j, 0, n, 0);
    bpe_cache_give(e, j.cache);
    return rc;
}

/* The UTF-8 of a PEP 393 string buffer of `len` code units of `kind` (1, 2 or 4 bytes).
 * A surrogate pair becomes its character and a lone surrogate U+FFFD, as
 * text.encode("utf-16", "surrogatepass").decode("utf-16", "replace") does. Returns a
 * malloc'ed buffer (its length in *n), or NULL when out of memory. No GIL needed: the
 * caller holds a reference to the immutable string. */
static uint8_t *bpe_to_utf8(const void *data, int kind, size_t len, size_t *n) {
    uint8_t *out = malloc(len * (kind == 1 ? 2 : kind == 2 ? 3 : 4) + 1), *o = out;
    if (!out) return NULL;
    for (size_t i = 0; i < len; i++) {
        uint32_t c = kind == 1 ? ((const uint8_t *)data)[i]
                   : kind == 2 ? ((const uint16_t *)data)[i] : ((const uint32_t *)data)[i];
        if (c < 0x80) {
            *o++ = (uint8_t)c;
            continue;
        }
        if (c >= 0xD800 && c <= 0xDFFF) {
            uint32_t d = 0;
            if (c <= 0xDBFF && i + 1 < len)
                d = kind == 2 ? ((const uint16_t *)data)[i + 1] : kind == 4 ? ((const uint32_t *)data)[i + 1] : 0;
            if (d >= 0xDC00 && d <= 0xDFFF) {
                c = 0x10000 + ((c - 0xD800) << 10) + (d - 0xDC00);
                i++;
            } else {
                c = 0xFFFD;
            }
        }
        if (c < 0x800) {
            *o++ = (uint8_t)(0xC0 | c >> 6);
        } else if (c < 0x10000) {
            *o++ = (uint8_t)(0xE0 | c >> 12);
            *o++ = (uint8_t)(0x80 | (c >> 6 & 0x3F));
        } else {
            *o++ = (uint8_t)(0xF0 | c >> 18);
            *o++ = (uint8_t)(0x80 | (c >> 12 & 0x3F));
            *o++ = (uint8_t)(0x80 | (c >> 6 & 0x3F));
        }
        *o++ = (uint8_t)(0x80 | (c & 0x3F));
    }
    *n = (size_t)(o - out);
    return out;
}

/* bpe_encode on a Python str's buffer (kind 0 = ASCII: data is already UTF-8). */
static int bpe_encode_text(bpe_encoder *e, const void *data, int kind, size_t len, int allow_special,
                           int pieces, bpe_vec *out) {
    if (kind == 0) return bpe_encode(e, (const char *)data, len, allow_special, pieces, out);
    size_t n;
    uint8_t *utf8 = bpe_to_utf8(data, kind, len, &n);
    if (!utf8) return -1;
    int rc = bpe_encode(e, (const char *)utf8, n, allow_special, pieces, out);
    free(utf8);
    return rc;
}
