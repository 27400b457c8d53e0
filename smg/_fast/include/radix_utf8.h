/* UTF-8 encoding of CPython's str storage (PEP 393: 1, 2 or 4 bytes per code point) for
 * smg._fast.radix: no Python objects, no GIL needed, nothing cached in the str.
 * Lone surrogates are encoded as three bytes each (like "surrogatepass").
 * Runs of ASCII go 8 or 16 code points at a time with SSE2 where available: routing text
 * is mostly ASCII even when a single emoji or CJK character widens the whole str. */
#ifndef SMG_RADIX_UTF8_H
#define SMG_RADIX_UTF8_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

/* Bytes that n code points of this kind can take at most. */
static inline size_t rx_utf8_bound(int kind, size_t n) { return n * (kind == 1 ? 2 : kind == 2 ? 3 : 4); }

static inline uint8_t *rx_utf8_put(uint8_t *o, uint32_t c) {
    if (c < 0x80) {
        *o++ = (uint8_t)c;
    } else if (c < 0x800) {
        *o++ = (uint8_t)(0xC0 | (c >> 6));
        *o++ = (uint8_t)(0x80 | (c & 0x3F));
    } else if (c < 0x10000) {
        *o++ = (uint8_t)(0xE0 | (c >> 12));
        *o++ = (uint8_t)(0x80 | ((c >> 6) & 0x3F));
        *o++ = (uint8_t)(0x80 | (c & 0x3F));
    } else {
        *o++ = (uint8_t)(0xF0 | (c >> 18));
        *o++ = (uint8_t)(0x80 | ((c >> 12) & 0x3F));
        *o++ = (uint8_t)(0x80 | ((c >> 6) & 0x3F));
        *o++ = (uint8_t)(0x80 | (c & 0x3F));
    }
    return o;
}

static size_t rx_utf8_ucs1(const uint8_t *s, size_t n, uint8_t *out) {
    uint8_t *o = out;
    size_t i = 0;
    while (i < n) {
#if defined(__SSE2__)
        while (i + 16 <= n) {
            __m128i v = _mm_loadu_si128((const __m128i *)(s + i));
            if (_mm_movemask_epi8(v)) break;
            _mm_storeu_si128((__m128i *)o, v);
            o += 16;
            i += 16;
        }
#endif
        for (size_t end = i + 16 < n ? i + 16 : n; i < end; i++) o = rx_utf8_put(o, s[i]);
    }
    return (size_t)(o - out);
}

static size_t rx_utf8_ucs2(const uint16_t *s, size_t n, uint8_t *out) {
    uint8_t *o = out;
    size_t i = 0;
    while (i < n) {
#if defined(__SSE2__)
        const __m128i high = _mm_set1_epi16((short)0xFF80);
        while (i + 8 <= n) {
            __m128i v = _mm_loadu_si128((const __m128i *)(s + i));
            __m128i z = _mm_cmpeq_epi16(_mm_and_si128(v, high), _mm_setzero_si128());
            if (_mm_movemask_epi8(z) != 0xFFFF) break;
            _mm_storel_epi64((__m128i *)o, _mm_packus_epi16(v, v));
            o += 8;
            i += 8;
        }
#endif
        for (size_t end = i + 8 < n ? i + 8 : n; i < end; i++) o = rx_utf8_put(o, s[i]);
    }
    return (size_t)(o - out);
}

static size_t rx_utf8_ucs4(const uint32_t *s, size_t n, uint8_t *out) {
    uint8_t *o = out;
    size_t i = 0;
    while (i < n) {
#if defined(__SSE2__)
        const __m128i high = _mm_set1_epi32((int)0xFFFFFF80);
        while (i + 8 <= n) {
            __m128i a = _mm_loadu_si128((const __m128i *)(s + i));
            __m128i b = _mm_loadu_si128((const __m128i *)(s + i + 4));
            __m128i z = _mm_cmpeq_epi32(_mm_and_si128(_mm_or_si128(a, b), high), _mm_setzero_si128());
            if (_mm_movemask_epi8(z) != 0xFFFF) break;
            __m128i w = _mm_packs_epi32(a, b);
            _mm_storel_epi64((__m128i *)o, _mm_packus_epi16(w, w));
            o += 8;
            i += 8;
        }
#endif
        for (size_t end = i + 8 < n ? i + 8 : n; i < end; i++) o = rx_utf8_put(o, s[i]);
    }
    return (size_t)(o - out);
}

static size_t rx_utf8(int kind, const void *data, size_t n, uint8_t *out) {
    if (kind == 1) return rx_utf8_ucs1((const uint8_t *)data, n, out);
    if (kind == 2) return rx_utf8_ucs2((const uint16_t *)data, n, out);
    return rx_utf8_ucs4((const uint32_t *)data, n, out);
}

#endif /* SMG_RADIX_UTF8_H */
