/* Rank-based BPE merges of one word, with a bounded per-thread word cache.
 *
 * The lowest-ranked adjacent pair merges first, the leftmost among equal ranks (HF's
 * Word::merge_all and tiktoken's byte_pair_merge agree on this). Short words use a
 * quadratic scan over a small array; long ones a binary heap over a linked list. */
#include "bpe.h"

static int bpe_vec_push(bpe_vec *v, uint32_t x) {
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 256;
        uint32_t *p = realloc(v->v, cap * sizeof(uint32_t));
        if (!p) return -1;
        v->v = p;
        v->cap = cap;
    }
    v->v[v->n++] = x;
    return 0;
}

/* A word cache for one call: one per concurrent caller, kept for reuse; past
 * BPE_MAX_CACHES concurrent callers the extra ones run without (NULL). */
static bpe_cache *bpe_cache_take(bpe_encoder *e) {
    pthread_mutex_lock(&e->pool_lock);
    bpe_cache *c = e->pool;
    if (c) {
        e->pool = c->next;
    } else if (e->caches_made < BPE_MAX_CACHES) {
        c = calloc(1, sizeof(bpe_cache));
        e->caches_made += c != NULL;
    }
    pthread_mutex_unlock(&e->pool_lock);
    return c;
}

static void bpe_cache_give(bpe_encoder *e, bpe_cache *c) {
    if (!c) return;
    pthread_mutex_lock(&e->pool_lock);
    c->next = e->pool;
    e->pool = c;
    pthread_mutex_unlock(&e->pool_lock);
}

#define BPE_SMALL 64

/* Merge ids[0..n) in place; returns the new length. */
static size_t bpe_merge_small(const bpe_encoder *e, uint32_t *ids, size_t n) {
    uint32_t rank[BPE_SMALL], merged[BPE_SMALL];
    for (size_t i = 0; i + 1 < n; i++)
        if (!bpe_pair_get(e, ids[i], ids[i + 1], &rank[i], &merged[i])) rank[i] = UINT32_MAX;
    while (n > 1) {
        size_t best = 0;
        uint32_t r = UINT32_MAX;
        for (size_t i = 0; i + 1 < n; i++)
            if (rank[i] < r) {
                r = rank[i];
                best = i;
            }
        if (r == UINT32_MAX) break;
        ids[best] = merged[best];
        n--;
        memmove(ids + best + 1, ids + best + 2, (n - best - 1) * sizeof(uint32_t));
        memmove(rank + best + 1, rank + best + 2, (n > best + 2 ? n - best - 2 : 0) * sizeof(uint32_t));
        memmove(merged + best + 1, merged + best + 2, (n > best + 2 ? n - best - 2 : 0) * sizeof(uint32_t));
        if (best + 1 < n && !bpe_pair_get(e, ids[best], ids[best + 1], &rank[best], &merged[best]))
            rank[best] = UINT32_MAX;
        if (best > 0 && !bpe_pair_get(e, ids[best - 1], ids[best], &rank[best - 1], &merged[best - 1]))
            rank[best - 1] = UINT32_MAX;
    }
    return n;
}

typedef struct { uint32_t rank; uint32_t pos; uint32_t id; } bpe_heap_item;

static inline int bpe_heap_less(const bpe_heap_item *a, const bpe_heap_item *b) {
    return a->rank < b->rank || (a->rank == b->rank && a->pos < b->pos);
}

static void bpe_heap_push(bpe_heap_item *h, size_t *n, bpe_heap_item x) {
    size_t i = (*n)++;
    while (i > 0) {
        size_t up = (i - 1) / 2;
        if (!bpe_heap_less(&x, &h[up])) break;
        h[i] = h[up];
        i = up;
    }
    h[i] = x;
}

static bpe_heap_item bpe_heap_pop(bpe_heap_item *h, size_t *n) {
    bpe_heap_item top = h[0], x = h[--(*n)];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= *n) break;
        if (c + 1 < *n && bpe_heap_less(&h[c + 1], &h[c])) c++;
        if (!bpe_heap_less(&h[c], &x)) break;
        h[i] = h[c];
        i = c;
    }
    h[i] = x;
    return top;
}

/* Merge ids[0..n) of a long word in place; returns the new length or (size_t)-1. */
static size_t bpe_merge_large(const bpe_encoder *e, uint32_t *ids, size_t n) {
    int32_t *next = malloc(n * sizeof(int32_t)), *prev = malloc(n * sizeof(int32_t));
    bpe_heap_item *heap = malloc(3 * n * sizeof(bpe_heap_item));
    size_t hn = 0;
    if (!next || !prev || !heap) {
        free(next), free(prev), free(heap);
        return (size_t)-1;
    }
    for (size_t i = 0; i < n; i++) {
        next[i] = i + 1 < n ? (int32_t)(i + 1) : -1;
        prev[i] = (int32_t)i - 1;
    }
    uint32_t r, m;
    for (size_t i = 0; i + 1 < n; i++)
        if (bpe_pair_get(e, ids[i], ids[i + 1], &r, &m)) bpe_heap_push(heap, &hn, (bpe_heap_item){r, (uint32_t)i, m});
    while (hn) {
        bpe_heap_item top = bpe_heap_pop(heap, &hn);
        int32_t p = (int32_t)top.pos, q = next[p];
        if (ids[p] == UINT32_MAX || q < 0) continue;
        if (!bpe_pair_get(e, ids[p], ids[q], &r, &m) || m != top.id || r != top.rank) continue; /* stale */
        ids[p] = m;
        ids[q] = UINT32_MAX;
        next[p] = next[q];
        if (next[q] >= 0) prev[next[q]] = p;
        if (prev[p] >= 0 && bpe_pair_get(e, ids[prev[p]], ids[p], &r, &m))
            bpe_heap_push(heap, &hn, (bpe_heap_item){r, (uint32_t)prev[p], m});
        if (next[p] >= 0 && bpe_pair_get(e, ids[p], ids[next[p]], &r, &m))
            bpe_heap_push(heap, &hn, (bpe_heap_item){r, (uint32_t)p, m});
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (ids[i] != UINT32_MAX) ids[k++] = ids[i];
    free(next), free(prev), free(heap);
    return k;
}

/* The cache is 2-way set associative: a word may sit in either slot of its set; a new word
 * goes into the first slot and moves the previous occupant to the second. */
static bpe_cache_entry *bpe_cache_find(bpe_cache *cache, uint64_t h, const uint8_t *s, size_t n) {
    bpe_cache_entry *set = &cache->slots[h & (BPE_CACHE_SLOTS - 2)];
    for (int k = 0; k < 2; k++)
        if (set[k].hash == h && set[k].len == n && memcmp(set[k].key, s, n) == 0) return &set[k];
    return NULL;
}

static void bpe_cache_put(bpe_cache *cache, uint64_t h, const uint8_t *s, size_t n, const uint32_t *ids, size_t k) {
    bpe_cache_entry *set = &cache->slots[h & (BPE_CACHE_SLOTS - 2)];
    if (set[0].hash) set[1] = set[0];
    set[0].hash = h, set[0].len = (uint8_t)n, set[0].n = (uint8_t)k;
    memcpy(set[0].key, s, n);
    memcpy(set[0].ids, ids, k * sizeof(uint32_t));
}

/* Append the ids of the word s[0..n) to out. */
static int bpe_word(const bpe_encoder *e, bpe_cache *cache, const uint8_t *s, size_t n, bpe_vec *out) {
    if (n == 1) return bpe_vec_push(out, e->byte_ids[s[0]]);
    int cached = cache && n <= BPE_CACHE_KEY;
    uint64_t h = 0;
    if (cached) {
        h = bpe_hash_bytes(s, n);
        const bpe_cache_entry *hit = bpe_cache_find(cache, h, s, n);
        if (hit) {
            for (int i = 0; i < hit->n; i++)
                if (bpe_vec_push(out, hit->ids[i])) return -1;
            return 0;
        }
    }
    if (e->ignore_merges) {
        uint32_t id = bpe_vocab_get(e, s, n);
        if (id != UINT32_MAX) {
            if (cached) bpe_cache_put(cache, h, s, n, &id, 1);
            return bpe_vec_push(out, id);
        }
    }
    size_t start = out->n;
    for (size_t i = 0; i < n; i++)
        if (bpe_vec_push(out, e->byte_ids[s[i]])) return -1;
    size_t k = n <= BPE_SMALL ? bpe_merge_small(e, out->v + start, n) : bpe_merge_large(e, out->v + start, n);
    if (k == (size_t)-1) return -1;
    out->n = start + k;
    if (cached && k <= BPE_CACHE_IDS) bpe_cache_put(cache, h, s, n, out->v + start, k);
    return 0;
}
