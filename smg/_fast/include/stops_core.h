/* Stop-string matching over UTF-8 bytes: one KMP automaton per stop string.
 *
 * A compiled set holds the patterns back to back with their failure tables; a request's
 * state is one uint16 per pattern (the length of the longest suffix of the text that is a
 * prefix of the pattern). A bitmap of first bytes lets idle scans skip most bytes.
 * No Python objects; safe without the GIL.
 */
#ifndef SMG_STOPS_CORE_H
#define SMG_STOPS_CORE_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint32_t n;             /* number of patterns */
    const uint8_t *pat;     /* patterns back to back */
    const uint32_t *off;    /* n + 1 offsets into pat */
    const uint16_t *fail;   /* pattern j's table at fail[off[j] + j], len + 1 entries */
    uint8_t first[32];      /* bitmap of the patterns' first bytes */
} smg_stopset;

/* Scan p[0..n). Returns the index just past the byte where the earliest match ends, with
 * *which the longest pattern ending there, or -1 (no match acted on). When act is 0 the
 * automata advance but matches are ignored. *active: nonzero while any state is nonzero. */
static inline ptrdiff_t smg_stop_scan(const smg_stopset *ss, uint16_t *st, uint32_t *active,
                                      const uint8_t *p, size_t n, int act, int *which)
{
    uint32_t k = ss->n, any = *active;
    for (size_t i = 0; i < n; i++) {
        uint8_t b = p[i];
        if (!any && !(ss->first[b >> 3] & (1u << (b & 7)))) continue;
        int best = -1;
        uint32_t bestlen = 0;
        any = 0;
        for (uint32_t j = 0; j < k; j++) {
            const uint8_t *pat = ss->pat + ss->off[j];
            const uint16_t *fail = ss->fail + ss->off[j] + j;
            uint32_t len = ss->off[j + 1] - ss->off[j];
            uint32_t q = st[j];
            while (q && pat[q] != b) q = fail[q];
            if (pat[q] == b) q++;
            if (q == len) {
                if (len > bestlen) { best = (int)j; bestlen = len; }
                q = fail[q];
            }
            st[j] = (uint16_t)q;
            any |= q;
        }
        if (best >= 0 && act) {
            *active = any;
            *which = best;
            return (ptrdiff_t)(i + 1);
        }
    }
    *active = any;
    return -1;
}

/* Bytes to hold back: the longest suffix that is a proper prefix of some pattern. */
static inline uint32_t smg_stop_depth(const smg_stopset *ss, const uint16_t *st)
{
    uint32_t d = 0;
    for (uint32_t j = 0; j < ss->n; j++)
        if (st[j] > d) d = st[j];
    return d;
}

#endif
