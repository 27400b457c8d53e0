/* Tables of the BPE encoder: character classes, the pair map, the vocabulary map and
 * the added-token trie. Built with the GIL held; read-only afterwards. */
#include "bpe.h"

static uint8_t bpe_classes[sizeof(bpe_stage2) - 1];

/* Decode the generated class table once (at module import). */
static void bpe_unicode_init(void) {
    for (size_t i = 0; i + 1 < sizeof(bpe_stage2); i++)
        bpe_classes[i] = bpe_class_values[bpe_stage2[i] - 'A'];
}

static inline int bpe_class_of(uint32_t cp) {
    if (cp >= 0x110000) return 0;
    return bpe_classes[(size_t)bpe_stage1[cp / BPE_UNICODE_BLOCK] * BPE_UNICODE_BLOCK + cp % BPE_UNICODE_BLOCK];
}

static inline uint64_t bpe_hash_bytes(const uint8_t *s, size_t n) {
    uint64_t h = 0x9E3779B97F4A7C15ull ^ (n * 0xFF51AFD7ED558CCDull);
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, s, 8);
        h = (h ^ w) * 0xC4CEB9FE1A85EC53ull;
        h ^= h >> 29;
        s += 8;
        n -= 8;
    }
    uint64_t w = 0;
    memcpy(&w, s, n);
    h = (h ^ w) * 0xC4CEB9FE1A85EC53ull;
    h ^= h >> 32;
    return h | 1; /* never 0 */
}

static inline uint64_t bpe_mix(uint64_t k) {
    k *= 0x9E3779B97F4A7C15ull;
    return k ^ (k >> 31);
}

static uint64_t bpe_pow2(uint64_t n) {
    uint64_t c = 16;
    while (c < n) c <<= 1;
    return c;
}

/* Always leaves e ready for bpe_encoder_free, even when it fails (-1). */
static int bpe_encoder_init(bpe_encoder *e, uint64_t vocab_size, uint64_t pair_hint) {
    memset(e, 0, sizeof(*e));
    pthread_mutex_init(&e->pool_lock, NULL);
    for (int b = 0; b < 256; b++) e->byte_ids[b] = UINT32_MAX;
    e->vocab_mask = bpe_pow2(vocab_size * 2) - 1;
    e->pair_mask = bpe_pow2(pair_hint * 2) - 1;
    e->vocab = calloc(e->vocab_mask + 1, sizeof(bpe_vocab_slot));
    e->pairs = calloc(e->pair_mask + 1, sizeof(bpe_pair_slot));
    e->trie_cap = 64;
    e->trie = malloc(sizeof(bpe_trie_node) * e->trie_cap);
    if (!e->vocab || !e->pairs || !e->trie) return -1;
    for (int pass = 0; pass < 2; pass++) {
        e->trie[pass] = (bpe_trie_node){-1, -1, -1, 0};
        e->trie_root[pass] = pass;
    }
    e->trie_len = 2;
    return 0;
}

static void bpe_encoder_free(bpe_encoder *e) {
    free(e->vocab);
    free(e->pairs);
    free(e->arena);
    free(e->trie);
    free(e->added);
    while (e->pool) {
        bpe_cache *c = e->pool;
        e->pool = c->next;
        free(c);
    }
    pthread_mutex_destroy(&e->pool_lock);
    memset(e, 0, sizeof(*e));
}

static void bpe_pair_insert(bpe_pair_slot *slots, uint64_t mask, bpe_pair_slot x, uint64_t *count) {
    for (uint64_t i = bpe_mix(x.key) & mask;; i = (i + 1) & mask) {
        if (slots[i].key == 0) {
            slots[i] = x;
            ++*count;
            return;
        }
        if (slots[i].key == x.key) { /* a later duplicate wins, as in HF's HashMap */
            slots[i] = x;
            return;
        }
    }
}

static int bpe_pair_put(bpe_encoder *e, uint32_t a, uint32_t b, uint32_t rank, uint32_t id) {
    if ((e->pair_count + 1) * 2 > e->pair_mask + 1) { /* keep it at most half full */
        uint64_t mask = e->pair_mask * 2 + 1, count = 0;
        bpe_pair_slot *slots = calloc(mask + 1, sizeof(bpe_pair_slot));
        if (!slots) return -1;
        for (uint64_t i = 0; i <= e->pair_mask; i++)
            if (e->pairs[i].key) bpe_pair_insert(slots, mask, e->pairs[i], &count);
        free(e->pairs);
        e->pairs = slots;
        e->pair_mask = mask;
    }
    bpe_pair_insert(e->pairs, e->pair_mask, (bpe_pair_slot){((uint64_t)a << 32 | b) + 1, rank, id}, &e->pair_count);
    return 0;
}

/* The merge of (a, b): 1 and its rank/id, or 0. */
static inline int bpe_pair_get(const bpe_encoder *e, uint32_t a, uint32_t b, uint32_t *rank, uint32_t *id) {
    uint64_t key = ((uint64_t)a << 32 | b) + 1;
    for (uint64_t i = bpe_mix(key) & e->pair_mask;; i = (i + 1) & e->pair_mask) {
        const bpe_pair_slot *s = &e->pairs[i];
        if (s->key == key) {
            *rank = s->rank;
            *id = s->id;
            return 1;
        }
        if (s->key == 0) return 0;
    }
}

static int bpe_vocab_put(bpe_encoder *e, const uint8_t *s, size_t n, uint32_t id) {
    if ((e->vocab_count + 1) * 2 > e->vocab_mask + 1 || n > UINT32_MAX) return -2;
    uint64_t h = bpe_hash_bytes(s, n);
    uint64_t i = h & e->vocab_mask;
    for (;; i = (i + 1) & e->vocab_mask) {
        bpe_vocab_slot *v = &e->vocab[i];
        if (!v->used) break;
        if (v->hash == h && v->len == n && memcmp(e->arena + v->off, s, n) == 0) {
            v->id = id;
            goto byte;
        }
    }
    if (e->arena_len + n > e->arena_cap) {
        size_t cap = e->arena_cap ? e->arena_cap * 2 : 1 << 20;
        while (cap < e->arena_len + n) cap *= 2;
        uint8_t *a = realloc(e->arena, cap);
        if (!a) return -1;
        e->arena = a;
        e->arena_cap = cap;
    }
    memcpy(e->arena + e->arena_len, s, n);
    e->vocab[i] = (bpe_vocab_slot){h, (uint32_t)e->arena_len, (uint32_t)n, id, 1};
    e->arena_len += n;
    e->vocab_count++;
byte:
    if (n == 1) e->byte_ids[s[0]] = id;
    return 0;
}

/* The id of the token with these bytes, or UINT32_MAX. */
static inline uint32_t bpe_vocab_get(const bpe_encoder *e, const uint8_t *s, size_t n) {
    uint64_t h = bpe_hash_bytes(s, n);
    for (uint64_t i = h & e->vocab_mask;; i = (i + 1) & e->vocab_mask) {
        const bpe_vocab_slot *v = &e->vocab[i];
        if (!v->used) return UINT32_MAX;
        if (v->hash == h && v->len == n && memcmp(e->arena + v->off, s, n) == 0) return v->id;
    }
}

/* tiktoken ranks: every split of a token into two tokens is a merge ranked by the token. */
static int bpe_pairs_from_vocab(bpe_encoder *e) {
    for (uint64_t i = 0; i <= e->vocab_mask; i++) {
        const bpe_vocab_slot *v = &e->vocab[i];
        if (!v->used || v->len < 2) continue;
        const uint8_t *t = e->arena + v->off;
        for (uint32_t k = 1; k < v->len; k++) {
            uint32_t a = bpe_vocab_get(e, t, k);
            if (a == UINT32_MAX) continue;
            uint32_t b = bpe_vocab_get(e, t + k, v->len - k);
            if (b == UINT32_MAX) continue;
            int rc = bpe_pair_put(e, a, b, v->id, v->id);
            if (rc) return rc;
        }
    }
    return 0;
}

static int bpe_added_put(bpe_encoder *e, const uint8_t *s, size_t n, uint32_t id, uint32_t flags) {
    if (n == 0) return 0;
    int pass = (flags & BPE_ADDED_NORMALIZED) ? 1 : 0;
    int32_t node = e->trie_root[pass];
    for (size_t i = 0; i < n; i++) {
        int32_t c = e->trie[node].child;
        while (c >= 0 && e->trie[c].byte != s[i]) c = e->trie[c].sibling;
        if (c < 0) {
            if (e->trie_len == e->trie_cap) {
                bpe_trie_node *t = realloc(e->trie, sizeof(bpe_trie_node) * e->trie_cap * 2);
                if (!t) return -1;
                e->trie = t;
                e->trie_cap *= 2;
            }
            c = e->trie_len++;
            e->trie[c] = (bpe_trie_node){-1, e->trie[node].child, -1, s[i]};
            e->trie[node].child = c;
        }
        node = c;
    }
    if (e->added_len == e->added_cap) {
        int32_t cap = e->added_cap ? e->added_cap * 2 : 64;
        bpe_added *a = realloc(e->added, sizeof(bpe_added) * cap);
        if (!a) return -1;
        e->added = a;
        e->added_cap = cap;
    }
    e->added[e->added_len] = (bpe_added){id, flags};
    e->trie[node].token = e->added_len++;
    e->trie_first[pass][s[0]] = 1;
    return 0;
}

/* The leftmost-longest added token of `pass` in s[p:end]: its index (and *start, *stop), or -1. */
static int32_t bpe_added_find(const bpe_encoder *e, int pass, const uint8_t *s, size_t p, size_t end,
                              size_t *start, size_t *stop) {
    const uint8_t *first = e->trie_first[pass];
    for (; p < end; p++) {
        if (!first[s[p]]) continue;
        int32_t node = e->trie_root[pass], best = -1;
        for (size_t q = p; q < end; q++) {
            int32_t c = e->trie[node].child;
            while (c >= 0 && e->trie[c].byte != s[q]) c = e->trie[c].sibling;
            if (c < 0) break;
            node = c;
            if (e->trie[node].token >= 0) {
                best = e->trie[node].token;
                *stop = q + 1;
            }
        }
        if (best >= 0) {
            *start = p;
            return best;
        }
    }
    return -1;
}
