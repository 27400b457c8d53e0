/* Stop-string matching over UTF-8 bytes.
 *
 * Small stop sets (up to SMG_DFA_MAX_BYTES pattern bytes in all) compile to a dense
 * Aho-Corasick DFA over bytes: one table load per byte; a request's state is one uint16
 * (a trie node). Larger sets use one KMP automaton per pattern: the patterns back to back
 * with their failure tables, one uint16 state per pattern, and a bitmap of first bytes
 * that lets idle scans skip most bytes. Both report the earliest-ending match (ties: the
 * longest) and the same holdback: the longest suffix of the text that is a proper prefix
 * of some pattern. Sets are built once per stop tuple and cached by the caller.
 * No Python objects; safe without the GIL.
 */
#ifndef SMG_STOPS_CORE_H
#define SMG_STOPS_CORE_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define SMG_DFA_MAX_BYTES 512

typedef struct {
    uint32_t n;             /* number of patterns */
    const uint8_t *pat;     /* patterns back to back */
    const uint32_t *off;    /* n + 1 offsets into pat */
    const uint16_t *fail;   /* pattern j's table at fail[off[j] + j], len + 1 entries */
    uint8_t first[32];      /* bitmap of the patterns' first bytes */
    /* DFA (NULL when the set is too large): states x 256 transitions, and per state the
     * length / index of the longest pattern ending there (0: none) and the holdback. */
    uint16_t *dfa;
    uint16_t *mlen;
    uint16_t *midx;
    uint16_t *hold;
} smg_stopset;

/* Fill the KMP failure tables (into `fail`, len + 1 entries per pattern) and the
 * first-byte bitmap for ss's patterns (pat, off and n already set). */
static inline void smg_stop_kmp_build(smg_stopset *ss, uint16_t *fail)
{
    memset(ss->first, 0, sizeof(ss->first));
    for (uint32_t j = 0; j < ss->n; j++) {
        const uint8_t *p = ss->pat + ss->off[j];
        uint32_t len = ss->off[j + 1] - ss->off[j], k = 0;
        uint16_t *f = fail + ss->off[j] + j;
        f[0] = 0;
        f[1] = 0;
        for (uint32_t q = 1; q < len; q++) {
            while (k && p[q] != p[k]) k = f[k];
            if (p[q] == p[k]) k++;
            f[q + 1] = (uint16_t)k;
        }
        ss->first[p[0] >> 3] |= (uint8_t)(1u << (p[0] & 7));
    }
}

/* Build the DFA for ss's patterns; returns 0, or -1 when out of memory. */
static inline int smg_stop_dfa_build(smg_stopset *ss)
{
    uint32_t total = ss->off[ss->n], nstates = 1, j, q, b;
    uint32_t cap = total + 1;
    uint16_t *g = (uint16_t *)malloc((size_t)cap * 256 * sizeof(uint16_t));
    uint16_t *ml = (uint16_t *)calloc(cap, sizeof(uint16_t));
    uint16_t *mi = (uint16_t *)calloc(cap, sizeof(uint16_t));
    uint16_t *hold = (uint16_t *)calloc(cap, sizeof(uint16_t));
    uint16_t *depth = (uint16_t *)calloc(cap, sizeof(uint16_t));
    uint16_t *fail = (uint16_t *)calloc(cap, sizeof(uint16_t));
    uint16_t *queue = (uint16_t *)malloc(cap * sizeof(uint16_t));
    uint8_t *kids = (uint8_t *)calloc(cap, 1);
    if (!g || !ml || !mi || !hold || !depth || !fail || !queue || !kids) goto oom;
    memset(g, 0xFF, (size_t)cap * 256 * sizeof(uint16_t));
    for (j = 0; j < ss->n; j++) {           /* the trie */
        uint32_t u = 0;
        for (q = ss->off[j]; q < ss->off[j + 1]; q++) {
            b = ss->pat[q];
            if (g[u * 256 + b] == 0xFFFF) {
                depth[nstates] = (uint16_t)(depth[u] + 1);
                g[u * 256 + b] = (uint16_t)nstates++;
                kids[u] = 1;
            }
            u = g[u * 256 + b];
        }
        if (!ml[u]) { ml[u] = (uint16_t)(ss->off[j + 1] - ss->off[j]); mi[u] = (uint16_t)j; }
    }
    uint32_t head = 0, tail = 0;
    for (b = 0; b < 256; b++) {             /* breadth first: failure links, full DFA */
        uint16_t v = g[b];
        if (v == 0xFFFF) g[b] = 0;
        else { fail[v] = 0; queue[tail++] = v; }
    }
    hold[0] = 0;
    while (head < tail) {
        uint16_t u = queue[head++];
        uint16_t f = fail[u];
        if (!ml[u] && ml[f]) { ml[u] = ml[f]; mi[u] = mi[f]; }
        hold[u] = kids[u] ? depth[u] : hold[f];
        for (b = 0; b < 256; b++) {
            uint16_t v = g[u * 256 + b];
            if (v == 0xFFFF) g[u * 256 + b] = g[f * 256 + b];
            else { fail[v] = g[f * 256 + b]; queue[tail++] = v; }
        }
    }
    free(depth); free(fail); free(queue); free(kids);
    ss->dfa = g; ss->mlen = ml; ss->midx = mi; ss->hold = hold;
    return 0;
oom:
    free(g); free(ml); free(mi); free(hold); free(depth); free(fail); free(queue); free(kids);
    return -1;
}

static inline void smg_stop_dfa_free(smg_stopset *ss)
{
    free(ss->dfa); free(ss->mlen); free(ss->midx); free(ss->hold);
    ss->dfa = ss->mlen = ss->midx = ss->hold = NULL;
}

/* Scan p[0..n). Returns the index just past the byte where the earliest match ends, with
 * *which the longest pattern ending there, or -1 (no match acted on). When act is 0 the
 * automata advance but matches are ignored. *active: nonzero while any state is nonzero. */
static inline ptrdiff_t smg_stop_scan(const smg_stopset *ss, uint16_t *st, uint32_t *active,
                                      const uint8_t *p, size_t n, int act, int *which)
{
    if (ss->dfa) {
        uint32_t s = st[0];
        const uint16_t *g = ss->dfa, *ml = ss->mlen;
        for (size_t i = 0; i < n; i++) {
            s = g[(s << 8) | p[i]];
            if (ml[s] && act) {
                st[0] = (uint16_t)s;
                *which = ss->midx[s];
                return (ptrdiff_t)(i + 1);
            }
        }
        st[0] = (uint16_t)s;
        return -1;
    }
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
    if (ss->dfa) return ss->hold[st[0]];
    uint32_t d = 0;
    for (uint32_t j = 0; j < ss->n; j++)
        if (st[j] > d) d = st[j];
    return d;
}

#endif
