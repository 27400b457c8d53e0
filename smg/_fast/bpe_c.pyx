# cython: boundscheck=False, wraparound=False
"""Byte-level BPE encoding in C without the GIL; the twin of ``smg._fast.bpe_py``.

The tables are built here from Python objects (with the GIL); ``encode`` turns the text
into UTF-8 and runs the whole of added-token splitting, pre-tokenization and merging in
``bpe_encode`` with the GIL released.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.unicode cimport PyUnicode_AsUTF8String
from libc.stdint cimport uint8_t, uint32_t
from cpython.list cimport PyList_New
from cpython.mem cimport PyMem_Calloc, PyMem_Free
from libc.stdlib cimport free

from smg._fast.bpe_py import ADDED_LSTRIP, ADDED_NORMALIZED, ADDED_RSTRIP, ADDED_SPECIAL, SPLITS

cdef extern from "Python.h":
    bint PyUnicode_IS_ASCII(object s)
    int PyUnicode_KIND(object s)
    const void *PyUnicode_DATA(object s)
    Py_ssize_t PyUnicode_GET_LENGTH(object s)

__all__ = ["ADDED_LSTRIP", "ADDED_NORMALIZED", "ADDED_RSTRIP", "ADDED_SPECIAL", "SPLITS", "BpeCore"]

bpe_unicode_init()
bpe_pretok_init()

_SPLIT_NUMBERS = {name: i for i, name in enumerate(SPLITS)}


cdef object _utf8(str text):
    """UTF-8 bytes of text; lone surrogates become U+FFFD (as tiktoken does)."""
    try:
        return PyUnicode_AsUTF8String(text)
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace").encode("utf-8")


cdef int _check(int rc) except -1:
    if rc == -1:
        raise MemoryError()
    if rc:
        raise ValueError("BPE table overflow (more entries than announced)")
    return 0


cdef class BpeCore:
    """See ``smg._fast.bpe_py.BpeCore`` (same constructor, same results)."""

    def __cinit__(self, dict vocab, merges, added, splits, bint ignore_merges):
        self.ready = False
        cdef list pairs = None if merges is None else list(merges)
        cdef unsigned long long hint = len(vocab) if pairs is None else len(pairs) + 1  # the pair table grows
        rc = bpe_encoder_init(&self.enc, len(vocab) + 1, hint)
        self.ready = True  # bpe_encoder_free undoes even a failed init
        if rc:
            raise MemoryError()
        unknown = [name for name in splits if name not in _SPLIT_NUMBERS]
        if unknown or not splits or len(splits) > BPE_MAX_SPLITS:
            raise ValueError(f"unknown pre-tokenizer splits {unknown or splits!r}")
        for i, name in enumerate(splits):
            self.enc.splits[i] = _SPLIT_NUMBERS[name]
        self.enc.nsplits = len(splits)
        self.enc.ignore_merges = ignore_merges
        cdef bytes token
        for token, tid in vocab.items():
            _check(bpe_vocab_put(&self.enc, <const uint8_t *>PyBytes_AS_STRING(token),
                                      PyBytes_GET_SIZE(token), tid))
        for b in range(256):
            if self.enc.byte_ids[b] == 0xFFFFFFFF:
                raise ValueError(f"vocabulary lacks the single byte {bytes([b])!r}")
        if pairs is None:
            _check(bpe_pairs_from_vocab(&self.enc))
        else:
            for rank, (a, b, m) in enumerate(pairs):
                _check(bpe_pair_put(&self.enc, a, b, rank, m))
        top = max(max(vocab.values(), default=0), max((a[1] for a in added), default=0))
        self.ints = tuple(range(top + 1))  # the result lists share these int objects
        cdef bytes content
        for text, tid, flags in added:
            content = text.encode("utf-8")
            _check(bpe_added_put(&self.enc, <const uint8_t *>PyBytes_AS_STRING(content),
                                      PyBytes_GET_SIZE(content), tid, flags))

    def __dealloc__(self):
        if self.ready:
            bpe_encoder_free(&self.enc)

    def encode(self, str text, bint allow_special=True):
        return self._run(text, allow_special, 0)

    def pretokenize(self, str text, bint allow_special=True):
        """The words BPE sees, in order (added tokens left out)."""
        cdef list spans = self._run(text, allow_special, 1)
        cdef bytes raw = _utf8(text)
        return [raw[spans[i]:spans[i + 1]].decode("utf-8") for i in range(0, len(spans), 2)]

    cdef list _run(self, str text, bint allow_special, int pieces):
        cdef const void *data = PyUnicode_DATA(text)
        cdef int kind = 0 if PyUnicode_IS_ASCII(text) else PyUnicode_KIND(text)
        cdef size_t n = <size_t>PyUnicode_GET_LENGTH(text)
        cdef bpe_vec out
        out.v = NULL
        out.n = out.cap = 0
        cdef int rc
        with nogil:
            rc = bpe_encode_text(&self.enc, data, kind, n, allow_special, pieces, &out)
        try:
            if rc:
                raise MemoryError()
            return self._to_list(&out)
        finally:
            free(out.v)

    cdef list _to_list(self, bpe_vec *v):
        cdef list out = PyList_New(v.n)
        bpe_fill_list(out, self.ints, v.v, v.n)
        return out

    def encode_batch(self, list texts, bint allow_special=True):
        cdef Py_ssize_t count = len(texts), i
        cdef const void **data = <const void **>PyMem_Calloc(count + 1, sizeof(void *))
        cdef int *kinds = <int *>PyMem_Calloc(count + 1, sizeof(int))
        cdef size_t *sizes = <size_t *>PyMem_Calloc(count + 1, sizeof(size_t))
        cdef bpe_vec *outs = <bpe_vec *>PyMem_Calloc(count + 1, sizeof(bpe_vec))
        cdef int rc = 0
        cdef str text
        try:
            if not data or not kinds or not sizes or not outs:
                raise MemoryError()
            for i in range(count):
                text = texts[i]
                data[i] = PyUnicode_DATA(text)
                kinds[i] = 0 if PyUnicode_IS_ASCII(text) else PyUnicode_KIND(text)
                sizes[i] = <size_t>PyUnicode_GET_LENGTH(text)
            with nogil:
                for i in range(count):
                    rc = bpe_encode_text(&self.enc, data[i], kinds[i], sizes[i], allow_special, 0, &outs[i])
                    if rc:
                        break
            if rc:
                raise MemoryError()
            return [self._to_list(&outs[i]) for i in range(count)]
        finally:
            if outs:
                for i in range(count):
                    free(outs[i].v)
            PyMem_Free(data)
            PyMem_Free(kinds)
            PyMem_Free(sizes)
            PyMem_Free(outs)
