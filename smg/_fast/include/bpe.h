/* Byte-level BPE encoder for smg._fast.bpe_c: types shared by the bpe_*.c parts.
 *
 * The encoder is built once (with the GIL held) and then only read, so any number of
 * threads may encode with it at once without the GIL. The only shared mutable state is
 * the pool of word caches, taken and returned under a mutex once per call.
 *
 * One translation unit: bpe_c.pyx includes bpe_encode.c, which includes the other parts.
 */
#ifndef SMG_BPE_H
#define SMG_BPE_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bpe_unicode.h"

/* Character classes (same bits as smg._fast.bpe_py). */
enum {
    BPE_LU = 1, BPE_LL = 2, BPE_LO = 4, BPE_MARK = 8,
    BPE_NUM = 16, BPE_PUNCT = 32, BPE_SYM = 64, BPE_SPACE = 128,
    BPE_LETTER = 7,
};

/* Pre-tokenizer matchers, numbered as smg._fast.bpe_py.SPLITS. */
enum {
    BPE_SPLIT_GPT2, BPE_SPLIT_CL100K, BPE_SPLIT_QWEN, BPE_SPLIT_QWEN35,
    BPE_SPLIT_DIGITS3, BPE_SPLIT_CJK, BPE_SPLIT_DEEPSEEK, BPE_SPLIT_O200K, BPE_SPLIT_COUNT,
};
#define BPE_MAX_SPLITS 4

/* Added-token flags (as in bpe_py). */
enum { BPE_ADDED_SPECIAL = 1, BPE_ADDED_NORMALIZED = 2, BPE_ADDED_LSTRIP = 4, BPE_ADDED_RSTRIP = 8 };

/* (left, right) -> (rank, merged id); open addressing, key 0 = empty. */
typedef struct { uint64_t key; uint32_t rank; uint32_t id; } bpe_pair_slot;

/* token bytes -> id; open addressing over an arena of token bytes. */
typedef struct { uint64_t hash; uint32_t off; uint32_t len; uint32_t id; uint32_t used; } bpe_vocab_slot;

/* Added-token trie: children as sibling lists (a few hundred tokens, searched rarely). */
typedef struct { int32_t child; int32_t sibling; int32_t token; uint8_t byte; } bpe_trie_node;
typedef struct { uint32_t id; uint32_t flags; } bpe_added;

/* A word cache entry (128 bytes): words of up to 62 bytes that merge into at most 14 ids. */
#define BPE_CACHE_KEY 62
#define BPE_CACHE_IDS 14
#define BPE_CACHE_SLOTS 16384 /* 2 MB per cache */
#define BPE_MAX_CACHES 16
typedef struct {
    uint64_t hash;
    uint8_t len, n;
    uint8_t key[BPE_CACHE_KEY];
    uint32_t ids[BPE_CACHE_IDS];
} bpe_cache_entry;
typedef struct bpe_cache { struct bpe_cache *next; bpe_cache_entry slots[BPE_CACHE_SLOTS]; } bpe_cache;

typedef struct {
    uint32_t byte_ids[256];
    bpe_pair_slot *pairs;
    uint64_t pair_mask;
    uint64_t pair_count;
    bpe_vocab_slot *vocab;
    uint64_t vocab_mask;
    uint64_t vocab_count;
    uint8_t *arena;
    size_t arena_len, arena_cap;
    bpe_trie_node *trie;
    int32_t trie_len, trie_cap;
    int32_t trie_root[2];      /* pass 0: non-normalized tokens, pass 1: normalized */
    uint8_t trie_first[2][256]; /* bytes that can start a token of each pass */
    bpe_added *added;
    int32_t added_len, added_cap;
    int nsplits;
    int splits[BPE_MAX_SPLITS];
    int ignore_merges;
    pthread_mutex_t pool_lock;
    bpe_cache *pool;
    int caches_made;
} bpe_encoder;

typedef struct { uint32_t *v; size_t n, cap; } bpe_vec;

#endif
