# The C encoder (smg/_fast/include/bpe_*.c, one translation unit).
from libc.stdint cimport uint8_t, uint32_t


cdef extern from "bpe_encode.c":
    ctypedef struct bpe_encoder:
        uint32_t byte_ids[256]
        int nsplits
        int splits[4]
        int ignore_merges

    ctypedef struct bpe_vec:
        uint32_t *v
        size_t n
        size_t cap

    int BPE_MAX_SPLITS
    void bpe_unicode_init()
    void bpe_pretok_init()
    int bpe_encoder_init(bpe_encoder *e, unsigned long long vocab_size, unsigned long long pair_hint)
    void bpe_encoder_free(bpe_encoder *e)
    int bpe_pair_put(bpe_encoder *e, uint32_t a, uint32_t b, uint32_t rank, uint32_t id)
    int bpe_vocab_put(bpe_encoder *e, const uint8_t *s, size_t n, uint32_t id)
    int bpe_pairs_from_vocab(bpe_encoder *e)
    int bpe_added_put(bpe_encoder *e, const uint8_t *s, size_t n, uint32_t id, uint32_t flags)
    void bpe_fill_list(list out, tuple ints, const uint32_t *v, size_t n)
    int bpe_encode_text(bpe_encoder *e, const void *data, int kind, size_t n, int allow_special, int pieces,
                        bpe_vec *out) nogil


cdef class BpeCore:
    cdef bpe_encoder enc
    cdef bint ready
    cdef tuple ints
    cdef list _run(self, str text, bint allow_special, int pieces)
    cdef list _to_list(self, bpe_vec *v)
