/* Multi-tenant compressed prefix tree for cache-aware routing (smg._fast.radix).
 *
 * Plain C, no Python objects; every function here runs without the GIL. The caller
 * (radix_c.pyx) serialises access with the tree's rwlock: readers (rx_walk without
 * RX_INSERT) share it, everything else takes it exclusively.
 *
 * Model (the Python twin radix_py.py is the specification):
 * - Edges hold bytes: UTF-8 for text trees, native uint32 for token trees. Text edges are
 *   split only at character boundaries and token edges only at page boundaries, so the
 *   tree has exactly the shape of a tree over characters / pages. Children are told apart
 *   by their first character (its UTF-8 bytes packed into a uint32) or first token (and,
 *   for pages longer than one token, the whole first page).
 * - Each node keeps a sorted array of (tenant, epoch) entries. A tenant present at a node
 *   is present at every ancestor, so one descent gives every tenant's match length.
 * - Every tenant has an intrusive doubly linked list of its leaves (nodes holding it where
 *   no child holds it), oldest first; entries count the children holding their tenant.
 *   An insert stamps every node on its path and moves only the final node to the new end,
 *   so the list stays sorted by epoch (a tenant's leaves never share an epoch). Eviction
 *   pops the front, and a parent that becomes a leaf is put back in epoch order (almost
 *   always at the front): O(evicted), with no walk over the tree.
 */
#ifndef SMG_RADIX_TREE_H
#define SMG_RADIX_TREE_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define RX_TEXT 0
#define RX_TOKENS 1

#define RX_LENS 1   /* report every tenant's match length */
#define RX_INSERT 2 /* insert the key for `tenant` during the same descent */

#define RX_ENOMEM (-1)
#define RX_ESMALL (-2) /* the caller's per-tenant buffers are too small */

typedef struct rx_node rx_node;

typedef struct {
    uint32_t tenant;
    uint32_t tkids : 31;    /* children holding this tenant */
    uint32_t listed : 1;    /* in the tenant's leaf list (exactly when tkids == 0) */
    uint64_t epoch;
    rx_node *older, *newer; /* neighbours in the tenant's leaf list */
} rx_entry;

struct rx_node {
    rx_node *parent;
    rx_node **kids; /* kcap child pointers, then kcap uint32 keys */
    rx_entry *ents; /* sorted by tenant: &inl while ecap == 1, else on the heap */
    uint32_t len;   /* edge length in bytes */
    uint32_t units; /* edge length in key units: characters or tokens */
    uint32_t key;   /* first character (packed UTF-8) or first token */
    uint32_t nkids, kcap;
    uint32_t nents, ecap;
    rx_entry inl;   /* the first entry lives in the node: most nodes hold one tenant */
    uint8_t edge[]; /* `len` bytes */
};

typedef struct {
    uint64_t size; /* units held by the tenant */
    rx_node *oldest, *newest;
} rx_tenant;

typedef struct {
    pthread_rwlock_t lock;
    rx_node *root;
    rx_tenant *tenants; /* indexed by tenant id */
    uint32_t ntenants, tcap;
    int kind;
    uint32_t page;       /* page length in bytes (1 for text, 4 * page_size for tokens) */
    uint64_t clock;      /* epoch counter, bumped by every insert */
    uint64_t nodes;      /* nodes below the root */
    uint64_t stored;     /* edge bytes held */
    uint64_t mem;        /* heap bytes, counted as glibc malloc chunks */
} rx_tree;

typedef struct {
    uint64_t matched; /* key units matched */
    int64_t best;     /* most recent tenant at the deepest matched node, -1 if none */
    uint32_t nout;    /* tenants written to out_ids / out_lens */
} rx_result;

/* ---- memory accounting -------------------------------------------------------------- */

static inline uint64_t rx_chunk(size_t n) {
    size_t c = (n + 8 + 15) & ~(size_t)15;
    return n ? (c < 32 ? 32 : c) : 0;
}

static inline void *rx_alloc(rx_tree *t, size_t n) {
    void *p = malloc(n);
    if (p) t->mem += rx_chunk(n);
    return p;
}

static inline void rx_release(rx_tree *t, void *p, size_t n) {
    if (p) {
        t->mem -= rx_chunk(n);
        free(p);
    }
}

static inline void *rx_resize(rx_tree *t, void *p, size_t old, size_t n) {
    void *q = realloc(p, n);
    if (q) t->mem += rx_chunk(n) - rx_chunk(old);
    return q;
}

static inline size_t rx_node_bytes(uint32_t len) { return sizeof(rx_node) + len; }
static inline size_t rx_kids_bytes(uint32_t cap) {
    return (size_t)cap * (sizeof(rx_node *) + sizeof(uint32_t));
}
static inline uint32_t *rx_kid_keys(const rx_node *n) { return (uint32_t *)(n->kids + n->kcap); }

/* ---- bytes and units ------------------------------------------------------------------ */

/* Index of the first differing byte of a and b (n if none). */
static inline size_t rx_common(const uint8_t *a, const uint8_t *b, size_t n) {
    if (memcmp(a, b, n) == 0) return n;
    size_t i = 0;
#if defined(__GNUC__) && defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    for (; i + 8 <= n; i += 8) {
        uint64_t x, y;
        memcpy(&x, a + i, 8);
        memcpy(&y, b + i, 8);
        if (x != y) return i + ((size_t)__builtin_ctzll(x ^ y) >> 3);
    }
#endif
    while (i < n && a[i] == b[i]) i++;
    return i;
}

/* Characters in n bytes of UTF-8 (bytes that are not continuation bytes). */
static inline uint32_t rx_nchars(const uint8_t *p, size_t n) {
    uint32_t c = 0;
    for (size_t i = 0; i < n; i++) c += (p[i] & 0xC0) != 0x80;
    return c;
}

static inline uint32_t rx_units(const rx_tree *t, const uint8_t *p, size_t n) {
    return t->kind == RX_TEXT ? rx_nchars(p, n) : (uint32_t)(n / 4);
}

/* Child key of an edge or key starting at p (n bytes available, n > 0). */
static inline uint32_t rx_key_at(const rx_tree *t, const uint8_t *p, size_t n) {
    if (t->kind == RX_TOKENS) {
        uint32_t v;
        memcpy(&v, p, 4);
        return v;
    }
    uint8_t b = p[0];
    size_t len = b < 0x80 ? 1 : b < 0xE0 ? 2 : b < 0xF0 ? 3 : 4;
    if (len > n) len = n;
    uint32_t v = 0;
    for (size_t i = 0; i < len; i++) v = (v << 8) | p[i];
    return v;
}

/* Round a common-prefix length m (m < lim means a mismatch at m) down to a boundary. */
static inline size_t rx_align(const rx_tree *t, const uint8_t *key, size_t m, size_t lim) {
    if (t->kind == RX_TOKENS) return m - m % t->page;
    if (m < lim)
        while (m > 0 && (key[m] & 0xC0) == 0x80) m--;
    return m;
}

/* ---- nodes, children, entries ---------------------------------------------------------- */

static rx_node *rx_node_new(rx_tree *t, const uint8_t *edge, uint32_t len, uint32_t units) {
    rx_node *n = (rx_node *)rx_alloc(t, rx_node_bytes(len));
    if (!n) return NULL;
    memset(n, 0, sizeof(rx_node));
    memcpy(n->edge, edge, len);
    n->len = len;
    n->units = units;
    n->key = len ? rx_key_at(t, edge, len) : 0;
    t->nodes++;
    t->stored += len;
    return n;
}

static void rx_node_free(rx_tree *t, rx_node *n) {
    rx_release(t, n->kids, rx_kids_bytes(n->kcap));
    if (n->ents != &n->inl) rx_release(t, n->ents, n->ecap * sizeof(rx_entry));
    t->nodes--;
    t->stored -= n->len;
    rx_release(t, n, rx_node_bytes(n->len));
}

static rx_node *rx_child(const rx_tree *t, const rx_node *n, const uint8_t *key, size_t avail) {
    uint32_t k = rx_key_at(t, key, avail);
    const uint32_t *keys = rx_kid_keys(n);
    for (uint32_t i = 0; i < n->nkids; i++) {
        if (keys[i] != k) continue;
        rx_node *c = n->kids[i];
        if (t->page <= 4 || memcmp(c->edge, key, t->page) == 0) return c;
    }
    return NULL;
}

static int rx_kid_add(rx_tree *t, rx_node *n, rx_node *c) {
    if (n->nkids == n->kcap) {
        uint32_t cap = n->kcap ? n->kcap * 2 : 2;
        rx_node **kids = (rx_node **)rx_alloc(t, rx_kids_bytes(cap));
        if (!kids) return RX_ENOMEM;
        if (n->nkids) {
            memcpy(kids, n->kids, n->nkids * sizeof(rx_node *));
            memcpy(kids + cap, rx_kid_keys(n), n->nkids * sizeof(uint32_t));
        }
        rx_release(t, n->kids, rx_kids_bytes(n->kcap));
        n->kids = kids;
        n->kcap = cap;
    }
    n->kids[n->nkids] = c;
    rx_kid_keys(n)[n->nkids] = c->key;
    n->nkids++;
    c->parent = n;
    return 0;
}

static void rx_kid_del(rx_node *n, const rx_node *c) {
    uint32_t *keys = rx_kid_keys(n);
    for (uint32_t i = 0; i < n->nkids; i++) {
        if (n->kids[i] != c) continue;
        n->nkids--;
        n->kids[i] = n->kids[n->nkids];
        keys[i] = keys[n->nkids];
        return;
    }
}

/* Index of tenant's entry in n, or -(insertion point) - 1. */
static inline int64_t rx_find(const rx_node *n, uint32_t tenant) {
    int64_t lo = 0, hi = (int64_t)n->nents - 1;
    while (lo <= hi) {
        int64_t mid = (lo + hi) >> 1;
        uint32_t v = n->ents[mid].tenant;
        if (v == tenant) return mid;
        if (v < tenant) lo = mid + 1;
        else hi = mid - 1;
    }
    return -lo - 1;
}

static inline rx_entry *rx_ent(const rx_node *n, uint32_t tenant) {
    return &n->ents[rx_find(n, tenant)];
}

/* Room for one more entry at index i; returns the (uninitialised) slot or NULL. */
static rx_entry *rx_ent_insert(rx_tree *t, rx_node *n, uint32_t i) {
    if (n->nents == n->ecap) {
        if (n->ecap == 0) {
            n->ents = &n->inl;
            n->ecap = 1;
        } else if (n->ents == &n->inl) {
            rx_entry *e = (rx_entry *)rx_alloc(t, 2 * sizeof(rx_entry));
            if (!e) return NULL;
            e[0] = n->inl;
            n->ents = e;
            n->ecap = 2;
        } else {
            uint32_t cap = n->ecap * 2;
            rx_entry *e = (rx_entry *)rx_resize(t, n->ents, n->ecap * sizeof(rx_entry),
                                                cap * sizeof(rx_entry));
            if (!e) return NULL;
            n->ents = e;
            n->ecap = cap;
        }
    }
    memmove(n->ents + i + 1, n->ents + i, (n->nents - i) * sizeof(rx_entry));
    n->nents++;
    return n->ents + i;
}

static void rx_ent_remove(rx_node *n, uint32_t i) {
    n->nents--;
    memmove(n->ents + i, n->ents + i + 1, (n->nents - i) * sizeof(rx_entry));
}

/* ---- per-tenant leaf lists ------------------------------------------------------------ */

static void rx_lru_unlink(rx_tree *t, rx_entry *e) {
    rx_tenant *T = &t->tenants[e->tenant];
    if (e->older) rx_ent(e->older, e->tenant)->newer = e->newer;
    else T->oldest = e->newer;
    if (e->newer) rx_ent(e->newer, e->tenant)->older = e->older;
    else T->newest = e->older;
    e->older = e->newer = NULL;
    e->listed = 0;
}

/* Link n (entry e) just before `at` in e's tenant list; at the newest end when at == NULL. */
static void rx_lru_before(rx_tree *t, rx_node *n, rx_entry *e, rx_node *at) {
    rx_tenant *T = &t->tenants[e->tenant];
    e->listed = 1;
    if (!at) {
        e->older = T->newest;
        e->newer = NULL;
        if (T->newest) rx_ent(T->newest, e->tenant)->newer = n;
        else T->oldest = n;
        T->newest = n;
        return;
    }
    rx_entry *a = rx_ent(at, e->tenant);
    e->older = a->older;
    e->newer = at;
    if (a->older) rx_ent(a->older, e->tenant)->newer = n;
    else T->oldest = n;
    a->older = n;
}

/* Link n in epoch order, searching from the oldest end (a new leaf during eviction
 * almost always belongs at the front). */
static void rx_lru_sorted(rx_tree *t, rx_node *n, rx_entry *e) {
    rx_node *at = t->tenants[e->tenant].oldest;
    while (at && rx_ent(at, e->tenant)->epoch < e->epoch) at = rx_ent(at, e->tenant)->newer;
    rx_lru_before(t, n, e, at);
}

#include "radix_walk.h"

#endif /* SMG_RADIX_TREE_H */
