from libc.stdint cimport int64_t, uint8_t, uint16_t, uint32_t

from smg._fast.detok_c cimport Detokenizer, smg_dt_state, smg_dt_table


cdef extern from "stops_core.h":
    ctypedef struct smg_stopset:
        uint32_t n
        const uint8_t *pat
        const uint32_t *off
        const uint16_t *fail
        uint8_t first[32]
        uint16_t *dfa

    int SMG_DFA_MAX_BYTES
    void smg_stop_kmp_build(smg_stopset *ss, uint16_t *fail) noexcept nogil
    int smg_stop_dfa_build(smg_stopset *ss) noexcept nogil
    void smg_stop_dfa_free(smg_stopset *ss) noexcept nogil

    ptrdiff_t smg_stop_scan(const smg_stopset *ss, uint16_t *st, uint32_t *active,
                            const uint8_t *p, size_t n, int act, int *which) noexcept nogil
    uint32_t smg_stop_depth(const smg_stopset *ss, const uint16_t *st) noexcept nogil


cdef enum:
    MAX_STOPS_C = 64
    MAX_STOP_BYTES_C = 1024
    INLINE_HELD = 64
    INLINE_IDS = 8


cdef class StopSet:
    cdef smg_stopset ss
    cdef uint8_t *_pat
    cdef uint32_t *_off
    cdef uint16_t *_fail
    cdef readonly tuple stops
    cdef readonly uint32_t max_len

    cdef inline uint32_t pat_len(self, int j) noexcept


cdef struct _Stream:
    const smg_dt_table *table
    smg_dt_state *ds
    const smg_stopset *ss
    uint16_t st[MAX_STOPS_C]
    uint32_t active
    uint8_t *held
    uint32_t nheld
    const int64_t *stop_ids
    Py_ssize_t n_stop_ids
    int64_t num_tokens
    int64_t min_tokens
    int include_stop
    int status      # 0 running, 1 stop string, 2 stop token id, 3 flushed
    int which
    int64_t stop_id


cdef class StopScanner:
    cdef StopSet _set
    cdef uint16_t st[MAX_STOPS_C]
    cdef uint32_t active
    cdef uint8_t *held
    cdef uint8_t held_inline[INLINE_HELD]
    cdef uint32_t nheld
    cdef readonly bint include_stop
    cdef readonly object matched

    cdef str _join(self, const uint8_t *u, Py_ssize_t n, Py_ssize_t cut)


cdef class StreamDecoder:
    cdef _Stream c
    cdef Detokenizer _detok
    cdef StopSet _set
    cdef uint8_t held_inline[INLINE_HELD]
    cdef int64_t ids_inline[INLINE_IDS]
    cdef object _py
