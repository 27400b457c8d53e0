# cython: language_level=3
"""Incremental detokenizer over a per-tokenizer byte table (compiled).

Same API and semantics as :mod:`smg._fast.detok_py` (the specification; read its
docstring). The per-token work is ``include/detok_core.h``: a table lookup, a copy, and a
UTF-8 check of the last bytes; invalid bytes are replaced in C so every str is created from
valid UTF-8. ``step`` keeps the GIL (releasing it costs more than the work);
``detokenize_batch`` converts all ids first, then runs every request without the GIL.
"""

from cpython.mem cimport PyMem_Free, PyMem_Malloc
from cpython.ref cimport PyObject
from cpython.sequence cimport PySequence_Fast, PySequence_Fast_GET_SIZE, PySequence_Fast_ITEMS
from cpython.unicode cimport PyUnicode_DecodeUTF8
from libc.stdint cimport int64_t, uint8_t, uint32_t
from libc.string cimport memcpy

from smg._fast.detok_build import FallbackDetokenizer, spec_from_hf, spec_from_tiktoken

__all__ = ["PRIME_IDS", "DetokTable", "Detokenizer", "detokenize_batch"]

cdef enum:
    STACK_OUT = 2048
    _PRIME_IDS = 8
    NOGIL_MIN_IDS = 32

PRIME_IDS = _PRIME_IDS


cdef class DetokTable:
    """Token bytes of one tokenizer, packed into C arrays; shared by all its requests."""

    def __cinit__(self):
        self._data = NULL
        self._off = NULL
        self._fdata = NULL
        self._foff = NULL
        self._flags = NULL

    def __init__(self, spec):
        self.kind = spec.kind
        self.reason = spec.reason
        self.fallback = spec.fallback
        self.strip_first_space = spec.strip_first_space
        pieces = spec.pieces
        cdef Py_ssize_t n = len(pieces)
        self._flags = <uint8_t *>PyMem_Malloc(n + 1)
        self._off = <uint32_t *>PyMem_Malloc((n + 1) * sizeof(uint32_t))
        if self._flags == NULL or self._off == NULL:
            raise MemoryError()
        self._data = _pack(pieces, None, self._off, self._flags, &self.max_piece)
        cdef size_t fmax = 0
        if spec.first_pieces:
            self._foff = <uint32_t *>PyMem_Malloc((n + 1) * sizeof(uint32_t))
            if self._foff == NULL:
                raise MemoryError()
            self._fdata = _pack(pieces, spec.first_pieces, self._foff, NULL, &fmax)
            self.max_piece = max(self.max_piece, fmax)
        cdef Py_ssize_t i
        for i in spec.special:
            if 0 <= i < n:
                self._flags[i] |= 2
        self.t.data = self._data
        self.t.off = self._off
        self.t.fdata = self._fdata
        self.t.foff = self._foff
        self.t.flags = self._flags
        self.t.n = <uint32_t>n
        self.t.strip_first_space = self.strip_first_space

    def __dealloc__(self):
        PyMem_Free(self._data)
        PyMem_Free(self._off)
        PyMem_Free(self._fdata)
        PyMem_Free(self._foff)
        PyMem_Free(self._flags)

    @classmethod
    def from_hf(cls, tokenizer):
        """Table for a HF ``tokenizers.Tokenizer``; ``kind == "fallback"`` if its decoder isn't supported."""
        return cls(spec_from_hf(tokenizer))

    @classmethod
    def from_tiktoken(cls, encoding):
        """Table for a ``tiktoken.Encoding`` (all its special tokens are flagged special)."""
        return cls(spec_from_tiktoken(encoding))

    def __len__(self):
        return self.t.n

    def piece(self, int64_t token_id):
        """Token ``token_id``'s bytes, or None if the tokenizer has no such id."""
        if token_id < 0 or token_id >= self.t.n or not (self._flags[token_id] & 1):
            return None
        return (<char *>self._data)[self._off[token_id]:self._off[token_id + 1]]

    def is_special(self, int64_t token_id):
        return 0 <= token_id < self.t.n and (self._flags[token_id] & 2) != 0

    def __repr__(self):
        return f"<DetokTable kind={self.kind} ids={self.t.n}>"


cdef uint8_t *_pack(pieces, dict first, uint32_t *off, uint8_t *flags, size_t *maxlen) except NULL:
    cdef size_t total = 0, pos = 0, ln
    cdef Py_ssize_t i, n = len(pieces)
    cdef bytes b
    for p in pieces:
        if p is not None:
            total += len(p)
    if first:
        for p in first.values():
            total += len(p)
    if total >= 0xFFFFFFFF:
        raise ValueError("detok table too large")
    cdef uint8_t *data = <uint8_t *>PyMem_Malloc(total + 1)
    if data == NULL:
        raise MemoryError()
    maxlen[0] = 0
    for i in range(n):
        off[i] = <uint32_t>pos
        p = pieces[i]
        if first is not None:
            p = first.get(i, p)
        if flags != NULL:
            flags[i] = 0 if p is None else 1
        if p is None:
            continue
        b = p
        ln = len(b)
        memcpy(data + pos, <char *>b, ln)
        pos += ln
        if ln > maxlen[0]:
            maxlen[0] = ln
    off[n] = <uint32_t>pos
    return data




cdef class Detokenizer:
    """Per-request incremental detokenizer state: a few pending bytes and two flags."""

    def __init__(self, DetokTable table not None, bint skip_special_tokens=True, prompt_tail=()):
        self.table = table
        self.skip_special_tokens = skip_special_tokens
        self.s.npend = 0
        self.s.at_start = 1
        self.s.strip = 1 if table.strip_first_space else 0
        self.s.skip_special = 1 if skip_special_tokens else 0
        tail = [int(t) for t in prompt_tail[-_PRIME_IDS:]] if prompt_tail else []
        if table.fallback is not None:
            self._fallback = FallbackDetokenizer(table.fallback, skip_special_tokens, tail)
            return
        if tail:
            self._prime(tail)

    cdef int _prime(self, list tail) except -1:
        # Only the last 4 bytes decide the pending tail; push them through a scratch state.
        cdef uint8_t last[4]
        cdef uint8_t scratch[16]
        cdef size_t have = 0, plen, k
        cdef const uint8_t *p
        cdef smg_dt_state tmp
        self.s.at_start = 0
        self.s.strip = 0
        cdef Py_ssize_t i = len(tail) - 1
        while i >= 0 and have < 4:
            plen = 0
            p = smg_dt_piece(&self.table.t, &self.s, tail[i], &plen)
            if p != NULL:
                k = plen if plen < 4 - have else 4 - have
                memcpy(scratch, last, have)
                memcpy(last, p + plen - k, k)
                memcpy(last + k, scratch, have)
                have += k
            i -= 1
        tmp = self.s
        tmp.npend = 0
        smg_dt_push(&tmp, last, have, scratch)
        self.s.npend = tmp.npend
        memcpy(self.s.pend, tmp.pend, tmp.npend)
        return 0

    @property
    def pending(self):
        """Bytes of an incomplete character held back (at most 3)."""
        return (<char *>self.s.pend)[:self.s.npend]

    def step(self, int64_t token_id):
        """Feed one generated token; returns the text it completes."""
        if self._fallback is not None:
            return self._fallback.step_many((token_id,))
        cdef uint8_t buf[STACK_OUT]
        cdef size_t plen = 0
        cdef const uint8_t *p = smg_dt_piece(&self.table.t, &self.s, token_id, &plen)
        if p == NULL or plen == 0:
            return ""
        if 3 * (plen + 4) <= STACK_OUT:
            return smg_text(buf, smg_dt_push(&self.s, p, plen, buf))
        cdef uint8_t *heap = <uint8_t *>PyMem_Malloc(3 * (plen + 4))
        if heap == NULL:
            raise MemoryError()
        try:
            return smg_text(heap, smg_dt_push(&self.s, p, plen, heap))
        finally:
            PyMem_Free(heap)

    def step_many(self, token_ids):
        """Feed several tokens; returns their text as one str."""
        if self._fallback is not None:
            return self._fallback.step_many(token_ids)
        seq = PySequence_Fast(token_ids, "token_ids must be a sequence of ints")
        cdef Py_ssize_t i, n = PySequence_Fast_GET_SIZE(seq)
        cdef PyObject **items = PySequence_Fast_ITEMS(seq)
        cdef uint8_t stack[STACK_OUT]
        cdef uint8_t *out = stack
        cdef uint8_t *grown
        cdef size_t cap = STACK_OUT, o = 0, plen
        cdef const uint8_t *p
        cdef int64_t tid
        try:
            for i in range(n):
                tid = <int64_t>(<object>items[i])
                plen = 0
                p = smg_dt_piece(&self.table.t, &self.s, tid, &plen)
                if p == NULL or plen == 0:
                    continue
                if o + 3 * (plen + 4) > cap:
                    cap = 2 * cap + 3 * (plen + 4)
                    grown = <uint8_t *>PyMem_Malloc(cap)
                    if grown == NULL:
                        raise MemoryError()
                    memcpy(grown, out, o)
                    if out != stack:
                        PyMem_Free(out)
                    out = grown
                o += smg_dt_push(&self.s, p, plen, out + o)
            return smg_text(out, o)
        finally:
            if out != stack:
                PyMem_Free(out)

    def flush(self):
        """End of stream: emit held bytes (an incomplete character becomes U+FFFD)."""
        if self._fallback is not None:
            return self._fallback.flush()
        cdef uint8_t buf[4]
        return smg_text(buf, smg_dt_flush(&self.s, buf))


cdef struct _Req:
    const smg_dt_table *table
    smg_dt_state *state
    size_t first_id
    size_t n_ids
    size_t out_at
    size_t out_len


cdef void _run_batch(_Req *reqs, Py_ssize_t nreq, const int64_t *ids, uint8_t *out) noexcept nogil:
    cdef Py_ssize_t r
    cdef size_t j, o
    for r in range(nreq):
        if reqs[r].table == NULL:
            continue
        o = reqs[r].out_at
        for j in range(reqs[r].first_id, reqs[r].first_id + reqs[r].n_ids):
            o += smg_dt_step(reqs[r].table, reqs[r].state, ids[j], out + o)
        reqs[r].out_len = o - reqs[r].out_at


def detokenize_batch(detokenizers, token_ids_per_request):
    """One engine step for many requests: ``detokenizers[i].step_many(token_ids_per_request[i])``.

    All ids are converted first; the byte work for every request then runs without the GIL.
    """
    dseq = PySequence_Fast(detokenizers, "detokenizers must be a sequence")
    iseq = PySequence_Fast(token_ids_per_request, "token_ids_per_request must be a sequence")
    cdef Py_ssize_t nreq = PySequence_Fast_GET_SIZE(dseq)
    if nreq != PySequence_Fast_GET_SIZE(iseq):
        raise ValueError("detokenize_batch: one list of token ids per detokenizer")
    cdef PyObject **dets = PySequence_Fast_ITEMS(dseq)
    cdef PyObject **idls = PySequence_Fast_ITEMS(iseq)
    cdef Py_ssize_t r, total = 0, k
    cdef size_t j
    cdef size_t cap = 0
    cdef Detokenizer d
    cdef PyObject **items
    id_lists = []
    for r in range(nreq):
        d = <Detokenizer?>(<object>dets[r])
        s = PySequence_Fast(<object>idls[r], "token ids must be a sequence of ints")
        id_lists.append(s)
        total += PySequence_Fast_GET_SIZE(s)
    cdef _Req *reqs = <_Req *>PyMem_Malloc((nreq + 1) * sizeof(_Req))
    cdef int64_t *ids = <int64_t *>PyMem_Malloc((total + 1) * sizeof(int64_t))
    cdef uint8_t *out = NULL
    try:
        if reqs == NULL or ids == NULL:
            raise MemoryError()
        k = 0
        for r in range(nreq):
            d = <Detokenizer>dets[r]
            s = id_lists[r]
            items = PySequence_Fast_ITEMS(s)
            reqs[r].table = NULL if d._fallback is not None else &d.table.t
            reqs[r].state = &d.s
            reqs[r].first_id = k
            reqs[r].n_ids = PySequence_Fast_GET_SIZE(s)
            reqs[r].out_at = cap
            reqs[r].out_len = 0
            for j in range(reqs[r].n_ids):
                ids[k] = <int64_t>(<object>items[j])
                if reqs[r].table != NULL:
                    cap += 3 * smg_dt_piece_len(reqs[r].table, ids[k])
                k += 1
            cap += 12
        out = <uint8_t *>PyMem_Malloc(cap + 1)
        if out == NULL:
            raise MemoryError()
        if total >= NOGIL_MIN_IDS:
            with nogil:
                _run_batch(reqs, nreq, ids, out)
        else:
            _run_batch(reqs, nreq, ids, out)
        result = []
        for r in range(nreq):
            if reqs[r].table == NULL:
                result.append((<Detokenizer>dets[r])._fallback.step_many(id_lists[r]))
            else:
                result.append(smg_text(out + reqs[r].out_at, reqs[r].out_len))
        return result
    finally:
        PyMem_Free(reqs)
        PyMem_Free(ids)
        PyMem_Free(out)
