# cython: boundscheck=False, wraparound=False
"""Compiled ``decode_chunk``, ``decode_chunks``, ``encode_tokenized``: see :mod:`smg._fast.grpcwire_py` (the specification)."""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.list cimport PyList_Append, PyList_GET_SIZE
from cpython.long cimport PyLong_AsUnsignedLongLong, PyLong_CheckExact
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from libc.stdint cimport uint64_t
from libc.string cimport memcpy

__all__ = ["decode_chunk", "decode_chunks", "encode_tokenized"]


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


cdef struct _Counts:
    unsigned int index, prompt, completion, cached


cdef int _chunk(const unsigned char* d, Py_ssize_t pos, Py_ssize_t end, uint64_t index_field,
                list ids, _Counts* c) except -1:
    """Decode a GenerateStreamChunk: ids appended to ``ids``, counts into ``c``; 1 when
    done, 0 when the general path must decide (ids appended by then are left to the caller)."""
    cdef uint64_t key, v, n, field
    cdef unsigned int wire
    cdef Py_ssize_t stop
    c.index = c.prompt = c.completion = c.cached = 0
    while pos < end:
        pos = _varint(d, pos, end, &key)
        if pos < 0:
            return 0
        field = key >> 3
        wire = key & 7
        if field == 0:
            return 0
        if field == 1 and wire == 2:
            pos = _varint(d, pos, end, &n)
            if pos < 0 or n > <uint64_t>(end - pos):
                return 0
            stop = pos + <Py_ssize_t>n
            while pos < stop:
                pos = _varint(d, pos, stop, &v)
                if pos < 0:
                    return 0
                PyList_Append(ids, <unsigned int>(v & 0xFFFFFFFF))
        elif field == 1 and wire == 0:
            pos = _varint(d, pos, end, &v)
            if pos < 0:
                return 0
            PyList_Append(ids, <unsigned int>(v & 0xFFFFFFFF))
        elif field == 5:
            return 0
        elif wire == 0 and (field == 2 or field == 3 or field == 4 or field == index_field):
            pos = _varint(d, pos, end, &v)
            if pos < 0:
                return 0
            if field == index_field:
                c.index = <unsigned int>(v & 0xFFFFFFFF)
            elif field == 2:
                c.prompt = <unsigned int>(v & 0xFFFFFFFF)
            elif field == 3:
                c.completion = <unsigned int>(v & 0xFFFFFFFF)
            else:
                c.cached = <unsigned int>(v & 0xFFFFFFFF)
        else:
            pos = _skip(d, pos, end, wire)
            if pos < 0:
                return 0
    return 1


cdef bint _locate(const unsigned char* d, Py_ssize_t end, uint64_t chunk_field, uint64_t complete_field,
                  Py_ssize_t* start, Py_ssize_t* stop) noexcept nogil:
    """Where the only chunk field of a GenerateResponse is; False: not a lone chunk."""
    cdef Py_ssize_t pos = 0
    cdef uint64_t key, n, field
    cdef unsigned int wire
    start[0] = -1
    while pos < end:
        pos = _varint(d, pos, end, &key)
        if pos < 0:
            return False
        field = key >> 3
        wire = key & 7
        if field == 0 or field == complete_field:
            return False
        if field == chunk_field:
            if wire != 2 or start[0] >= 0:
                return False
            pos = _varint(d, pos, end, &n)
            if pos < 0 or n > <uint64_t>(end - pos):
                return False
            start[0] = pos
            stop[0] = pos + <Py_ssize_t>n
            pos = stop[0]
        else:
            pos = _skip(d, pos, end, wire)
            if pos < 0:
                return False
    return start[0] >= 0


def decode_chunk(bytes raw, int chunk_field, int complete_field, int index_field):
    cdef const unsigned char* d = <const unsigned char*>PyBytes_AS_STRING(raw)
    cdef Py_ssize_t start, stop
    cdef _Counts c
    cdef list ids
    if not _locate(d, PyBytes_GET_SIZE(raw), <uint64_t>chunk_field, <uint64_t>complete_field, &start, &stop):
        return None
    ids = []
    if not _chunk(d, start, stop, <uint64_t>index_field, ids, &c):
        return None
    return (c.index, ids, c.prompt, c.completion, c.cached)


def decode_chunks(messages, int chunk_field, int complete_field, int index_field):
    cdef list out = [], ids = None, marks = None
    cdef const unsigned char* d
    cdef Py_ssize_t start, stop, before
    cdef _Counts c, run
    cdef bint have = False
    cdef bytes raw
    run.index = run.prompt = run.completion = run.cached = 0
    for obj in messages:
        raw = <bytes?>obj
        d = <const unsigned char*>PyBytes_AS_STRING(raw)
        if _locate(d, PyBytes_GET_SIZE(raw), <uint64_t>chunk_field, <uint64_t>complete_field, &start, &stop):
            if have:
                before = PyList_GET_SIZE(ids)
                if _chunk(d, start, stop, <uint64_t>index_field, ids, &c):
                    if c.index == run.index:  # the run goes on
                        if c.prompt:
                            run.prompt = c.prompt
                        run.completion = c.completion
                        if c.cached > run.cached:
                            run.cached = c.cached
                        marks.append(PyList_GET_SIZE(ids))
                        marks.append(c.completion)
                        continue
                    # another choice: its ids start a run of their own
                    new_ids = ids[before:]
                    del ids[before:]
                    out.append((run.index, ids, run.prompt, run.completion, run.cached, marks))
                    ids, run = new_ids, c
                    marks = [PyList_GET_SIZE(ids), c.completion]
                    continue
                del ids[before:]
            else:
                ids = []
                if _chunk(d, start, stop, <uint64_t>index_field, ids, &c):
                    run = c
                    have = True
                    marks = [PyList_GET_SIZE(ids), c.completion]
                    continue
        if have:
            out.append((run.index, ids, run.prompt, run.completion, run.cached, marks))
            have = False
        out.append(raw)
    if have:
        out.append((run.index, ids, run.prompt, run.completion, run.cached, marks))
    return out


cdef inline Py_ssize_t _put(unsigned char* out, Py_ssize_t pos, uint64_t v) noexcept nogil:
    while v >= 0x80:
        out[pos] = <unsigned char>((v & 0x7F) | 0x80)
        v >>= 7
        pos += 1
    out[pos] = <unsigned char>v
    return pos + 1


cdef inline Py_ssize_t _varint_len(uint64_t v) noexcept nogil:
    cdef Py_ssize_t n = 1
    while v >= 0x80:
        v >>= 7
        n += 1
    return n


def encode_tokenized(int field, str original_text, input_ids):
    cdef list ids = input_ids if type(input_ids) is list else list(input_ids)
    cdef Py_ssize_t n = len(ids), i, pos, packed_len, inner_len, head
    cdef bytes text = original_text.encode("utf-8") if original_text else b""
    cdef Py_ssize_t tlen = len(text)
    cdef object item
    cdef uint64_t v
    # worst case: 5 bytes per id, plus the keys and lengths
    cdef unsigned char* buf = <unsigned char*>PyMem_Malloc(5 * n + tlen + 50)
    if buf == NULL:
        raise MemoryError()
    try:
        # the packed ids go at offset 40 + tlen, leaving room for the heads before them
        pos = 40 + tlen
        for i in range(n):
            item = ids[i]
            if not PyLong_CheckExact(item):
                item = int(item)
            if item < 0 or item > 0xFFFFFFFF:
                raise ValueError(f"Value out of range: {item}")
            v = PyLong_AsUnsignedLongLong(item)
            pos = _put(buf, pos, v)
        packed_len = pos - 40 - tlen
        inner_len = 0
        if tlen:
            inner_len += 1 + _varint_len(tlen) + tlen
        if n:
            inner_len += 1 + _varint_len(packed_len) + packed_len
        head = _varint_len(<uint64_t>field << 3 | 2) + _varint_len(inner_len)
        # the heads and the text end right where the packed ids start
        i = 40 + tlen - (inner_len - packed_len) - head
        pos = _put(buf, i, <uint64_t>field << 3 | 2)
        pos = _put(buf, pos, inner_len)
        if tlen:
            buf[pos] = 0x0A
            pos = _put(buf, pos + 1, tlen)
            memcpy(buf + pos, PyBytes_AS_STRING(text), tlen)
            pos += tlen
        if n:
            buf[pos] = 0x12
            pos = _put(buf, pos + 1, packed_len)
        return PyBytes_FromStringAndSize(<char*>buf + i, head + inner_len)
    finally:
        PyMem_Free(buf)
