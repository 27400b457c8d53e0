/* Byte-table detokenizer core (no Python objects; safe to call without the GIL).
 *
 * The table holds every token's bytes; a request's state is at most 3 pending bytes of an
 * incomplete UTF-8 character plus two start-of-sequence flags. smg_dt_push() appends a
 * token's bytes and writes the longest complete prefix as *valid* UTF-8: each maximal
 * invalid subpart becomes U+FFFD (EF BF BD), the rule of Python's errors="replace".
 * Output needs at most 3 bytes per input byte (pending bytes included).
 */
#ifndef SMG_DETOK_CORE_H
#define SMG_DETOK_CORE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define SMG_DT_PRESENT 1
#define SMG_DT_SPECIAL 2

typedef struct {
    const uint8_t *data;   /* all pieces back to back */
    const uint32_t *off;   /* n + 1 offsets into data */
    const uint8_t *fdata;  /* first-token variants (Metaspace), or NULL */
    const uint32_t *foff;
    const uint8_t *flags;  /* SMG_DT_* per id */
    uint32_t n;
    int strip_first_space;
} smg_dt_table;

typedef struct {
    uint8_t pend[4];
    uint8_t npend;
    uint8_t at_start;     /* no token seen yet: use first-token variants */
    uint8_t strip;        /* no output byte yet: drop a leading space */
    uint8_t skip_special;
} smg_dt_state;

/* The bytes token `id` adds (NULL when dropped); updates at_start. */
static inline const uint8_t *smg_dt_piece(const smg_dt_table *t, smg_dt_state *s, int64_t id, size_t *len)
{
    if (id < 0 || (uint64_t)id >= t->n) return NULL;
    uint8_t f = t->flags[id];
    if (!(f & SMG_DT_PRESENT) || ((f & SMG_DT_SPECIAL) && s->skip_special)) return NULL;
    if (s->at_start) {
        s->at_start = 0;
        if (t->fdata) {
            *len = t->foff[id + 1] - t->foff[id];
            return t->fdata + t->foff[id];
        }
    }
    *len = t->off[id + 1] - t->off[id];
    return t->data + t->off[id];
}

static inline size_t smg_dt_piece_len(const smg_dt_table *t, int64_t id)
{
    if (id < 0 || (uint64_t)id >= t->n) return 0;
    size_t a = t->off[id + 1] - t->off[id];
    if (t->fdata) {
        size_t b = t->foff[id + 1] - t->foff[id];
        if (b > a) a = b;
    }
    return a;
}

/* The UTF-8 sequence at p[0..n): returns the bytes it spans; *kind = 1 a valid char,
 * 0 invalid (one U+FFFD: the maximal subpart), 2 a valid prefix cut off by n. */
static inline size_t smg_utf8_seq(const uint8_t *p, size_t n, int *kind)
{
    uint8_t b = p[0], lo = 0x80, hi = 0xBF;
    size_t need;
    if (b < 0x80) { *kind = 1; return 1; }
    if (b >= 0xC2 && b <= 0xDF) need = 1;
    else if (b >= 0xE0 && b <= 0xEF) { need = 2; if (b == 0xE0) lo = 0xA0; else if (b == 0xED) hi = 0x9F; }
    else if (b >= 0xF0 && b <= 0xF4) { need = 3; if (b == 0xF0) lo = 0x90; else if (b == 0xF4) hi = 0x8F; }
    else { *kind = 0; return 1; }
    size_t j = 1;
    while (j <= need) {
        if (j >= n) { *kind = 2; return j; }
        uint8_t c = p[j];
        if (j == 1 ? (c < lo || c > hi) : (c < 0x80 || c > 0xBF)) { *kind = 0; return j; }
        j++;
    }
    *kind = 1;
    return j;
}

static inline size_t smg_dt_fffd(uint8_t *out)
{
    out[0] = 0xEF; out[1] = 0xBF; out[2] = 0xBD;
    return 3;
}

/* Append p[0..len) after the pending bytes; write complete text to out; keep the tail. */
static inline size_t smg_dt_push(smg_dt_state *s, const uint8_t *p, size_t len, uint8_t *out)
{
    size_t o = 0, i = 0;
    int kind;
    if (len == 0) return 0;
    if (s->strip) {
        s->strip = 0;
        if (p[0] == ' ') { p++; len--; if (len == 0) return 0; }
    }
    if (s->npend) {
        uint8_t tmp[8];
        size_t m = s->npend, extra = len < 4 ? len : 4;
        memcpy(tmp, s->pend, m);
        memcpy(tmp + m, p, extra);
        size_t l = smg_utf8_seq(tmp, m + extra, &kind);
        if (kind == 2) {
            memcpy(s->pend, tmp, l);
            s->npend = (uint8_t)l;
            return 0;
        }
        if (kind == 1) { memcpy(out, tmp, l); o = l; }
        else o = smg_dt_fffd(out);
        s->npend = 0;
        i = l - m;
    }
    while (i < len) {
        uint8_t b = p[i];
        if (b < 0x80) { out[o++] = b; i++; continue; }
        size_t l = smg_utf8_seq(p + i, len - i, &kind);
        if (kind == 1) { memcpy(out + o, p + i, l); o += l; }
        else if (kind == 0) o += smg_dt_fffd(out + o);
        else { memcpy(s->pend, p + i, l); s->npend = (uint8_t)l; break; }
        i += l;
    }
    return o;
}

/* End of stream: an incomplete character becomes one U+FFFD. */
static inline size_t smg_dt_flush(smg_dt_state *s, uint8_t *out)
{
    if (!s->npend) return 0;
    s->npend = 0;
    return smg_dt_fffd(out);
}

/* Feed one token id; returns the bytes written to out. */
static inline size_t smg_dt_step(const smg_dt_table *t, smg_dt_state *s, int64_t id, uint8_t *out)
{
    size_t len = 0;
    const uint8_t *p = smg_dt_piece(t, s, id, &len);
    return p ? smg_dt_push(s, p, len, out) : 0;
}

#endif
