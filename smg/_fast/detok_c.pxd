# Declarations shared with stops_c (the fused detok + stop scanner).
from cpython.unicode cimport PyUnicode_DecodeUTF8
from libc.stdint cimport int64_t, uint8_t, uint32_t
from libc.string cimport memcpy


cdef extern from "detok_core.h":
    ctypedef struct smg_dt_table:
        const uint8_t *data
        const uint32_t *off
        const uint8_t *fdata
        const uint32_t *foff
        const uint8_t *flags
        uint32_t n
        int strip_first_space

    ctypedef struct smg_dt_state:
        uint8_t pend[4]
        uint8_t npend
        uint8_t at_start
        uint8_t strip
        uint8_t skip_special

    const uint8_t *smg_dt_piece(const smg_dt_table *t, smg_dt_state *s, int64_t id, size_t *len) noexcept nogil
    size_t smg_dt_piece_len(const smg_dt_table *t, int64_t id) noexcept nogil
    size_t smg_dt_push(smg_dt_state *s, const uint8_t *p, size_t len, uint8_t *out) noexcept nogil
    size_t smg_dt_flush(smg_dt_state *s, uint8_t *out) noexcept nogil
    size_t smg_dt_step(const smg_dt_table *t, smg_dt_state *s, int64_t id, uint8_t *out) noexcept nogil


cdef extern from "Python.h":
    object PyUnicode_New(Py_ssize_t size, Py_UCS4 maxchar)
    void *PyUnicode_DATA(object o)


cdef inline str smg_text(const uint8_t *p, size_t n):
    # Valid UTF-8 in; an ASCII run skips the decoder's own scan.
    cdef size_t i
    if n == 0:
        return ""
    for i in range(n):
        if p[i] >= 0x80:
            return PyUnicode_DecodeUTF8(<const char *>p, n, NULL)
    if n == 1:
        return PyUnicode_DecodeUTF8(<const char *>p, n, NULL)  # cached 1-char strs
    s = PyUnicode_New(n, 127)
    memcpy(PyUnicode_DATA(s), p, n)
    return s


cdef class DetokTable:
    cdef smg_dt_table t
    cdef uint8_t *_data
    cdef uint32_t *_off
    cdef uint8_t *_fdata
    cdef uint32_t *_foff
    cdef uint8_t *_flags
    cdef readonly size_t max_piece
    cdef readonly str kind
    cdef readonly str reason
    cdef readonly object fallback
    cdef readonly bint strip_first_space


cdef class Detokenizer:
    cdef readonly DetokTable table
    cdef smg_dt_state s
    cdef object _fallback
    cdef readonly bint skip_special_tokens

    cdef int _prime(self, list tail) except -1
