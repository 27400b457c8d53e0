# cython: boundscheck=False, wraparound=False
"""Compiled ``decode_chunk``: see :mod:`smg._fast.grpcwire_py` (the specification)."""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.list cimport PyList_Append
from libc.stdint cimport uint64_t

__all__ = ["decode_chunk"]


cdef inline Py_ssize_t _varint(const unsigned char* d, Py_ssize_t pos, Py_ssize_t end,
                               uint64_t* out) noexcept nogil:
    """Next position after the varint at ``pos`` (value in ``out``); -1 if malformed."""
    cdef uint64_t value = 0
    cdef unsigned int shift = 0
    cdef unsigned char b
    while pos < end:
        b = d[pos]
        pos += 1
        if shift < 64:
            value |= (<uint64_t>(b & 0x7F)) << shift
        if not (b & 0x80):
            out[0] = value
            return pos
        shift += 7
        if shift >= 70:
            return -1
    return -1


cdef inline Py_ssize_t _skip(const unsigned char* d, Py_ssize_t pos, Py_ssize_t end,
                             unsigned int wire) noexcept nogil:
    cdef uint64_t n
    if wire == 0:
        return _varint(d, pos, end, &n)
    if wire == 1:
        return pos + 8 if pos + 8 <= end else -1
    if wire == 2:
        pos = _varint(d, pos, end, &n)
        if pos < 0 or n > <uint64_t>(end - pos):
            return -1
        return pos + <Py_ssize_t>n
    if wire == 5:
        return pos + 4 if pos + 4 <= end else -1
    return -1


cdef object _chunk(const unsigned char* d, Py_ssize_t pos, Py_ssize_t end, uint64_t index_field):
    cdef list ids = []
    cdef uint64_t key, v, n, field
    cdef unsigned int wire
    cdef unsigned int prompt = 0, completion = 0, cached = 0, index = 0
    cdef Py_ssize_t stop
    while pos < end:
        pos = _varint(d, pos, end, &key)
        if pos < 0:
            return None
        field = key >> 3
        wire = key & 7
        if field == 0:
            return None
        if field == 1 and wire == 2:
            pos = _varint(d, pos, end, &n)
            if pos < 0 or n > <uint64_t>(end - pos):
                return None
            stop = pos + <Py_ssize_t>n
            while pos < stop:
                pos = _varint(d, pos, stop, &v)
                if pos < 0:
                    return None
                PyList_Append(ids, <unsigned int>(v & 0xFFFFFFFF))
        elif field == 1 and wire == 0:
            pos = _varint(d, pos, end, &v)
            if pos < 0:
                return None
            PyList_Append(ids, <unsigned int>(v & 0xFFFFFFFF))
        elif field == 5:
            return None
        elif wire == 0 and (field == 2 or field == 3 or field == 4 or field == index_field):
            pos = _varint(d, pos, end, &v)
            if pos < 0:
                return None
            if field == index_field:
                index = <unsigned int>(v & 0xFFFFFFFF)
            elif field == 2:
                prompt = <unsigned int>(v & 0xFFFFFFFF)
            elif field == 3:
                completion = <unsigned int>(v & 0xFFFFFFFF)
            else:
                cached = <unsigned int>(v & 0xFFFFFFFF)
        else:
            pos = _skip(d, pos, end, wire)
            if pos < 0:
                return None
    return (index, ids, prompt, completion, cached)


def decode_chunk(bytes raw, int chunk_field, int complete_field, int index_field):
    cdef const unsigned char* d = <const unsigned char*>PyBytes_AS_STRING(raw)
    cdef Py_ssize_t pos = 0, end = PyBytes_GET_SIZE(raw), start = -1, stop = -1
    cdef uint64_t key, n, field
    cdef unsigned int wire
    while pos < end:
        pos = _varint(d, pos, end, &key)
        if pos < 0:
            return None
        field = key >> 3
        wire = key & 7
        if field == 0 or field == <uint64_t>complete_field:
            return None
        if field == <uint64_t>chunk_field:
            if wire != 2 or start >= 0:
                return None
            pos = _varint(d, pos, end, &n)
            if pos < 0 or n > <uint64_t>(end - pos):
                return None
            start = pos
            stop = pos + <Py_ssize_t>n
            pos = stop
        else:
            pos = _skip(d, pos, end, wire)
            if pos < 0:
                return None
    if start < 0:
        return None
    return _chunk(d, start, stop, <uint64_t>index_field)
