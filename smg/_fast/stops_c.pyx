# cython: language_level=3
"""Stop strings and stop token ids over streamed text (compiled).

Same API and semantics as :mod:`smg._fast.stops_py` (the specification; read its
docstring). Matching runs on UTF-8 bytes (``include/stops_core.h``): a dense byte DFA
(Aho-Corasick) for stop sets of up to 512 bytes, else one KMP automaton per stop string.
Compiled stop sets are cached by the stop tuple, so per-request setup is a dict lookup
and a few zeroed fields. ``StreamDecoder`` scans the bytes the
detokenizer core writes in the same call (no intermediate str); ``stream_batch`` runs
every request of an engine step without the GIL.
"""

cimport cython
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from cpython.ref cimport PyObject
from cpython.sequence cimport PySequence_Fast, PySequence_Fast_GET_SIZE, PySequence_Fast_ITEMS
from libc.string cimport memcpy, memmove, memset

from smg._fast.detok_c cimport smg_dt_flush, smg_dt_piece_len, smg_dt_step, smg_text
from smg._fast import stops_py
from smg._fast.stops_py import MAX_STOP_BYTES, MAX_STOPS, check_stops

__all__ = ["MAX_STOPS", "MAX_STOP_BYTES", "StepResult", "StopScanner", "StreamDecoder", "stream_batch"]

cdef enum:
    STACK_OUT = 4096
    NOGIL_MIN_IDS = 32

cdef extern from "Python.h":
    const char *PyUnicode_AsUTF8AndSize(object o, Py_ssize_t *size) except NULL

assert MAX_STOPS <= MAX_STOPS_C and MAX_STOP_BYTES <= MAX_STOP_BYTES_C

_sets = {}


cdef class StopSet:
    """Stop strings compiled over their UTF-8 bytes: KMP tables, and a DFA when small (shared, immutable)."""

    def __cinit__(self, tuple stops):
        self.stops = stops
        encoded = [s.encode("utf-8") for s in stops]
        cdef uint32_t n = len(encoded), j, total = 0
        for e in encoded:
            total += len(e)
        self._pat = <uint8_t *>PyMem_Malloc(total + 1)
        self._off = <uint32_t *>PyMem_Malloc((n + 1) * sizeof(uint32_t))
        self._fail = <uint16_t *>PyMem_Malloc((total + n + 1) * sizeof(uint16_t))
        if self._pat == NULL or self._off == NULL or self._fail == NULL:
            raise MemoryError()
        cdef uint32_t pos = 0
        cdef bytes b
        self.max_len = 0
        for j in range(n):
            b = encoded[j]
            self._off[j] = pos
            memcpy(self._pat + pos, <char *>b, len(b))
            pos += len(b)
            self.max_len = max(self.max_len, <uint32_t>len(b))
        self._off[n] = pos
        self.ss.n = n
        self.ss.pat = self._pat
        self.ss.off = self._off
        self.ss.fail = self._fail
        smg_stop_kmp_build(&self.ss, self._fail)
        self.ss.dfa = NULL
        if total <= SMG_DFA_MAX_BYTES and smg_stop_dfa_build(&self.ss) != 0:
            raise MemoryError()

    def __dealloc__(self):
        smg_stop_dfa_free(&self.ss)
        PyMem_Free(self._pat)
        PyMem_Free(self._off)
        PyMem_Free(self._fail)

    cdef inline uint32_t pat_len(self, int j) noexcept:
        return self._off[j + 1] - self._off[j]


cdef StopSet _stop_set(stops):
    if isinstance(stops, str):
        raise TypeError("stops must be a sequence of str, not a str")
    key = stops if type(stops) is tuple else tuple(stops)
    cdef StopSet s = _sets.get(key)
    if s is None:
        s = StopSet(check_stops(key))
        if len(_sets) >= 256:
            _sets.clear()
        _sets[key] = s
    return s


@cython.no_gc
@cython.freelist(256)
cdef class StepResult:
    """What one call produced: ``(text, finished, matched)``; unpacks like a tuple."""

    cdef readonly str text
    cdef readonly bint finished
    cdef readonly object matched

    def __init__(self, str text, bint finished, matched):
        self.text = text
        self.finished = finished
        self.matched = matched

    def __iter__(self):
        return iter((self.text, self.finished, self.matched))

    def __getitem__(self, i):
        return (self.text, self.finished, self.matched)[i]

    def __eq__(self, other):
        try:
            return tuple(self) == tuple(other)
        except TypeError:
            return NotImplemented

    def __repr__(self):
        return f"StepResult(text={self.text!r}, finished={self.finished}, matched={self.matched!r})"


cdef inline StepResult _result(str text, bint finished, matched):
    cdef StepResult r = StepResult.__new__(StepResult)
    r.text = text
    r.finished = finished
    r.matched = matched
    return r


cdef class StopScanner:
    """Stop-string matcher over streamed text with minimal holdback."""

    def __init__(self, stops, bint include_stop=False):
        self._set = _stop_set(stops)
        self.include_stop = include_stop
        memset(self.st, 0, sizeof(self.st))
        self.active = 0
        self.nheld = 0
        self.held = self.held_inline
        if self._set.max_len > INLINE_HELD:
            self.held = <uint8_t *>PyMem_Malloc(self._set.max_len)
            if self.held == NULL:
                raise MemoryError()

    def __dealloc__(self):
        if self.held != self.held_inline:
            PyMem_Free(self.held)

    @property
    def stops(self):
        return self._set.stops

    @property
    def finished(self):
        return self.matched is not None

    @property
    def held_text(self):
        """Text held back because it could still become a stop."""
        return smg_text(self.held, self.nheld)

    def feed(self, str text, bint act=True):
        """Scan more text; returns the text now safe to emit and the matched stop (or None)."""
        if self.matched is not None:
            return "", None
        cdef Py_ssize_t n
        cdef const uint8_t *u = <const uint8_t *>PyUnicode_AsUTF8AndSize(text, &n)
        cdef int which = 0
        cdef ptrdiff_t e = smg_stop_scan(&self._set.ss, self.st, &self.active, u, n, act, &which)
        cdef Py_ssize_t total = self.nheld + n, cut, keep
        if e >= 0:
            self.matched = self._set.stops[which]
            cut = self.nheld + e - (0 if self.include_stop else self._set.pat_len(which))
            out = self._join(u, n, cut)
            self.nheld = 0
            return out, self.matched
        keep = smg_stop_depth(&self._set.ss, self.st)
        if keep == 0 and self.nheld == 0:
            return text, None
        cut = total - keep
        out = self._join(u, n, cut)
        # The new held text is the last `keep` bytes of held + text.
        if keep <= n:
            memcpy(self.held, u + n - keep, keep)
        else:
            memmove(self.held, self.held + self.nheld - (keep - n), keep - n)
            memcpy(self.held + keep - n, u, n)
        self.nheld = <uint32_t>keep
        return out, None

    cdef str _join(self, const uint8_t *u, Py_ssize_t n, Py_ssize_t cut):
        """The first `cut` bytes of held + text as a str."""
        cdef uint8_t stack[STACK_OUT]
        cdef uint8_t *buf = stack
        if cut <= self.nheld:
            return smg_text(self.held, cut)
        if self.nheld == 0:
            return smg_text(u, cut)
        if cut > STACK_OUT:
            buf = <uint8_t *>PyMem_Malloc(cut)
            if buf == NULL:
                raise MemoryError()
        try:
            memcpy(buf, self.held, self.nheld)
            memcpy(buf + self.nheld, u, cut - self.nheld)
            return smg_text(buf, cut)
        finally:
            if buf != stack:
                PyMem_Free(buf)

    def flush(self):
        """End of stream: the held text (it did not become a stop)."""
        out = smg_text(self.held, self.nheld)
        self.nheld = 0
        return out


cdef inline bint _is_stop_id(const _Stream *c, int64_t tid) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(c.n_stop_ids):
        if c.stop_ids[i] == tid:
            return True
    return False


cdef size_t _run(_Stream *c, const int64_t *ids, size_t n, uint8_t *out) noexcept nogil:
    """Feed n tokens; writes held + new text to out and returns how many bytes to emit."""
    cdef size_t i, o = c.nheld, start, end, keep
    cdef ptrdiff_t e
    cdef int which = 0
    cdef bint armed
    if c.status:
        return 0
    memcpy(out, c.held, c.nheld)
    for i in range(n):
        c.num_tokens += 1
        armed = c.num_tokens > c.min_tokens
        if armed and c.n_stop_ids and _is_stop_id(c, ids[i]):
            if c.include_stop:
                o += smg_dt_step(c.table, c.ds, ids[i], out + o)
            o += smg_dt_flush(c.ds, out + o)
            c.nheld = 0
            c.status = 2
            c.stop_id = ids[i]
            return o
        start = o
        o += smg_dt_step(c.table, c.ds, ids[i], out + o)
        if c.ss != NULL and o > start:
            e = smg_stop_scan(c.ss, c.st, &c.active, out + start, o - start, armed, &which)
            if e >= 0:
                end = start + e
                c.nheld = 0
                c.status = 1
                c.which = which
                return end if c.include_stop else end - (c.ss.off[which + 1] - c.ss.off[which])
    keep = smg_stop_depth(c.ss, c.st) if c.ss != NULL else 0
    memcpy(c.held, out + o - keep, keep)
    c.nheld = <uint32_t>keep
    return o - keep


cdef class StreamDecoder:
    """Per-request detokenizer fused with stop strings, stop token ids and min_tokens."""

    def __init__(self, table, stops=(), stop_token_ids=(), bint include_stop=False, Py_ssize_t min_tokens=0,
                 bint skip_special_tokens=True, prompt_tail=()):
        self._detok = Detokenizer(table, skip_special_tokens, prompt_tail)
        memset(&self.c, 0, sizeof(_Stream))
        self.c.table = &self._detok.table.t
        self.c.ds = &self._detok.s
        self.c.min_tokens = min_tokens
        self.c.include_stop = include_stop
        self.c.held = self.held_inline
        if stops:
            self._set = _stop_set(stops)
            self.c.ss = &self._set.ss
            if self._set.max_len > INLINE_HELD:
                self.c.held = <uint8_t *>PyMem_Malloc(self._set.max_len)
                if self.c.held == NULL:
                    raise MemoryError()
        stop_token_ids = list(stop_token_ids)
        cdef Py_ssize_t k = len(stop_token_ids), i
        cdef int64_t *ids = self.ids_inline
        if k > INLINE_IDS:
            ids = <int64_t *>PyMem_Malloc(k * sizeof(int64_t))
            if ids == NULL:
                raise MemoryError()
        for i in range(k):
            ids[i] = stop_token_ids[i]
        self.c.stop_ids = ids
        self.c.n_stop_ids = k
        if table.fallback is not None:
            self._py = stops_py.StreamDecoder(table, stops, stop_token_ids, include_stop, min_tokens,
                                              skip_special_tokens, prompt_tail)

    def __dealloc__(self):
        if self.c.held != self.held_inline:
            PyMem_Free(self.c.held)
        if self.c.stop_ids != self.ids_inline:
            PyMem_Free(<void *>self.c.stop_ids)

    @property
    def include_stop(self):
        return self.c.include_stop != 0

    @property
    def min_tokens(self):
        return self.c.min_tokens

    @property
    def num_tokens(self):
        return self._py.num_tokens if self._py is not None else self.c.num_tokens

    @property
    def finished(self):
        return self._py.finished if self._py is not None else self.c.status != 0

    @property
    def matched(self):
        if self._py is not None:
            return self._py.matched
        if self.c.status == 1:
            return self._set.stops[self.c.which]
        if self.c.status == 2:
            return self.c.stop_id
        return None

    def step(self, token_id):
        return self.step_many((token_id,))

    def step_many(self, token_ids):
        """Feed this step's tokens; returns the text to emit and whether the stream stopped."""
        if self._py is not None:
            return self._py.step_many(token_ids)
        if self.c.status:
            return _result("", True, self.matched)
        seq = PySequence_Fast(token_ids, "token_ids must be a sequence of ints")
        cdef Py_ssize_t i, n = PySequence_Fast_GET_SIZE(seq)
        cdef PyObject **items = PySequence_Fast_ITEMS(seq)
        cdef int64_t ids_stack[256]
        cdef uint8_t out_stack[STACK_OUT]
        cdef int64_t *ids = ids_stack
        cdef uint8_t *out = out_stack
        cdef size_t cap = self.c.nheld + 12
        try:
            if n > 256:
                ids = <int64_t *>PyMem_Malloc(n * sizeof(int64_t))
                if ids == NULL:
                    raise MemoryError()
            for i in range(n):
                ids[i] = <int64_t>(<object>items[i])
                cap += 3 * smg_dt_piece_len(self.c.table, ids[i])
            if cap > STACK_OUT:
                out = <uint8_t *>PyMem_Malloc(cap)
                if out == NULL:
                    raise MemoryError()
            text = smg_text(out, _run(&self.c, ids, n, out))
            return _result(text, self.c.status != 0, self.matched if self.c.status else None)
        finally:
            if ids != ids_stack:
                PyMem_Free(ids)
            if out != out_stack:
                PyMem_Free(out)

    def flush(self):
        """End of stream (EOS handled by the worker, max_tokens): emit everything held."""
        if self._py is not None:
            return self._py.flush()
        if self.c.status:
            return _result("", True, self.matched)
        cdef uint8_t out[MAX_STOP_BYTES_C + 8]  # held text is shorter than the longest stop
        memcpy(out, self.c.held, self.c.nheld)
        cdef size_t o = self.c.nheld + smg_dt_flush(self.c.ds, out + self.c.nheld)
        self.c.nheld = 0
        self.c.status = 3
        return _result(smg_text(out, o), True, None)


cdef struct _Req:
    _Stream *c
    size_t first_id
    size_t n_ids
    size_t out_at
    size_t out_len


cdef void _run_batch(_Req *reqs, Py_ssize_t nreq, const int64_t *ids, uint8_t *out) noexcept nogil:
    cdef Py_ssize_t r
    for r in range(nreq):
        if reqs[r].c != NULL:
            reqs[r].out_len = _run(reqs[r].c, ids + reqs[r].first_id, reqs[r].n_ids, out + reqs[r].out_at)


def stream_batch(decoders, token_ids_per_request):
    """One engine step for many requests: ``decoders[i].step_many(token_ids_per_request[i])``.

    All ids are converted first; detokenizing and scanning then run without the GIL.
    """
    dseq = PySequence_Fast(decoders, "decoders must be a sequence")
    iseq = PySequence_Fast(token_ids_per_request, "token_ids_per_request must be a sequence")
    cdef Py_ssize_t nreq = PySequence_Fast_GET_SIZE(dseq), r, total = 0, k = 0
    if nreq != PySequence_Fast_GET_SIZE(iseq):
        raise ValueError("stream_batch: one list of token ids per decoder")
    cdef PyObject **decs = PySequence_Fast_ITEMS(dseq)
    cdef PyObject **idls = PySequence_Fast_ITEMS(iseq)
    cdef StreamDecoder d
    cdef PyObject **items
    cdef size_t j, cap = 0
    id_lists = []
    for r in range(nreq):
        d = <StreamDecoder?>(<object>decs[r])
        s = PySequence_Fast(<object>idls[r], "token ids must be a sequence of ints")
        id_lists.append(s)
        total += PySequence_Fast_GET_SIZE(s)
    cdef _Req *reqs = <_Req *>PyMem_Malloc((nreq + 1) * sizeof(_Req))
    cdef int64_t *ids = <int64_t *>PyMem_Malloc((total + 1) * sizeof(int64_t))
    cdef uint8_t *out = NULL
    try:
        if reqs == NULL or ids == NULL:
            raise MemoryError()
        for r in range(nreq):
            d = <StreamDecoder>decs[r]
            s = id_lists[r]
            items = PySequence_Fast_ITEMS(s)
            reqs[r].c = NULL if d._py is not None or d.c.status else &d.c
            reqs[r].first_id = k
            reqs[r].n_ids = PySequence_Fast_GET_SIZE(s)
            reqs[r].out_at = cap
            reqs[r].out_len = 0
            for j in range(reqs[r].n_ids):
                ids[k] = <int64_t>(<object>items[j])
                if reqs[r].c != NULL:
                    cap += 3 * smg_dt_piece_len(d.c.table, ids[k])
                k += 1
            cap += 12 + (d._set.max_len if d._set is not None else 0)
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
            d = <StreamDecoder>decs[r]
            if d._py is not None:
                result.append(d._py.step_many(id_lists[r]))
            else:
                result.append(_result(smg_text(out + reqs[r].out_at, reqs[r].out_len), d.c.status != 0,
                                      d.matched if d.c.status else None))
        return result
    finally:
        PyMem_Free(reqs)
        PyMem_Free(ids)
        PyMem_Free(out)
