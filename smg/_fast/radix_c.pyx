# cython: language_level=3, embedsignature=True
"""Multi-tenant prefix tree for cache-aware routing: the compiled implementation.

Semantics: :mod:`smg._fast.radix_py` (the specification); the tree itself is C in
``include/radix_tree.h``, ``radix_walk.h``, ``radix_maint.h`` and ``radix_utf8.h``.

Locking. The tree has its own pthread rwlock: matches share it, everything else takes it
alone. The lock is always taken while holding the GIL and, for long keys and for
eviction, the GIL is then released for the work and the lock is released *before* the GIL
is taken back. Nobody ever waits for the GIL while holding the tree lock, so the two
cannot deadlock, and no other Python code runs between a tenant name being interned and
the tree lock being taken. Tenant ids are never reused (until ``clear()``), so an id read
under the lock names the same tenant afterwards.
"""

from cpython.buffer cimport PyBUF_C_CONTIGUOUS, PyBUF_FORMAT, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from cpython.ref cimport Py_DECREF, Py_INCREF, PyObject
from libc.stdint cimport int64_t, uint8_t, uint32_t, uint64_t
from libc.stdlib cimport free, malloc

cdef extern from "Python.h":
    int PyUnicode_READY(object) except -1
    Py_ssize_t PyUnicode_GET_LENGTH(object)
    bint PyUnicode_IS_ASCII(object)
    int PyUnicode_KIND(object)
    void *PyUnicode_DATA(object)
    bint PyObject_CheckBuffer(object)
    object PySequence_Fast(object, const char *)
    Py_ssize_t PySequence_Fast_GET_SIZE(object)
    PyObject **PySequence_Fast_ITEMS(object)
    bint PyLong_CheckExact(object)
    unsigned long PyLong_AsUnsignedLong(object) except? <unsigned long>-1
    object PyNumber_Index(object)
    dict _PyDict_NewPresized(Py_ssize_t)
    int PyDict_SetItem(object, object, object) except -1
    PyObject *PyList_GET_ITEM(object, Py_ssize_t)

cdef extern from "radix_utf8.h" nogil:
    size_t rx_utf8_bound(int kind, size_t n)
    size_t rx_utf8(int kind, const void *data, size_t n, uint8_t *out)

cdef extern from "radix_maint.h" nogil:
    ctypedef struct pthread_rwlock_t:
        pass
    ctypedef struct rx_tenant:
        uint64_t size
    ctypedef struct rx_tree:
        pthread_rwlock_t lock
        rx_tenant *tenants
        uint32_t ntenants
        uint64_t nodes
        uint64_t stored
        uint64_t mem
    ctypedef struct rx_result:
        uint64_t matched
        int64_t best
        uint32_t nout
    enum:
        RX_TEXT
        RX_TOKENS
        RX_LENS
        RX_INSERT
        RX_ENOMEM
        RX_ESMALL
    int rx_init(rx_tree *t, int kind, uint32_t page)
    void rx_destroy(rx_tree *t)
    int rx_walk(rx_tree *t, const uint8_t *key, size_t n, uint64_t key_units, int flags,
                uint32_t tenant, uint32_t cap, uint32_t *lens, uint32_t *out_ids,
                uint32_t *out_lens, rx_result *res)
    uint64_t rx_evict(rx_tree *t, uint64_t budget)
    uint64_t rx_remove_tenant(rx_tree *t, uint32_t id)
    void rx_clear(rx_tree *t)
    int rx_check(rx_tree *t)
    int pthread_rwlock_rdlock(pthread_rwlock_t *)
    int pthread_rwlock_wrlock(pthread_rwlock_t *)
    int pthread_rwlock_unlock(pthread_rwlock_t *)

#: Keys of at least this many bytes are matched and inserted without the GIL.
NOGIL_BYTES = 1024
cdef size_t _NOGIL_BYTES = NOGIL_BYTES
cdef size_t _SMALL = 128

cdef dict _lens_dict(list names, const uint32_t *ids, const uint32_t *lens, uint32_t n):
    """{name: length}; equal lengths (common: many workers hold the same system prompt)
    share one int object."""
    cdef dict out = _PyDict_NewPresized(n)
    cdef uint32_t i, last = 0
    cdef object value = None
    for i in range(n):
        if value is None or lens[i] != last:
            last = lens[i]
            value = last
        PyDict_SetItem(out, <object>PyList_GET_ITEM(names, ids[i]), value)
    return out


cdef struct Key:
    const uint8_t *data
    size_t n              # bytes to walk (token keys: whole pages only)
    uint64_t units        # units in those bytes
    uint64_t full_units   # len(key) in units
    Py_buffer view
    bint has_view
    void *owned           # a buffer of ours holding `data`, or NULL
    int kind              # a str still to encode into `data` (kind 0: none)
    const void *chars
    size_t nchars
    PyObject *holder      # a bytes object holding `data`, or NULL


cdef class RadixTree:
    """Multi-tenant compressed prefix tree; see :class:`smg._fast.radix_py.RadixTree`."""

    cdef rx_tree *tree
    cdef int _kind
    cdef uint32_t _page
    cdef dict _ids      # live tenant name -> id
    cdef list _names    # id -> name, for every id handed out since the last clear()
    cdef object _last_key    # the last non-ASCII str encoded, its UTF-8 and size
    cdef bytes _last_utf8
    cdef size_t _last_size

    def __cinit__(self, kind="text", int page_size=1):
        if kind not in ("text", "tokens"):
            raise ValueError(f"kind must be 'text' or 'tokens', not {kind!r}")
        if page_size < 1:
            raise ValueError(f"page_size must be >= 1, not {page_size}")
        if kind == "text" and page_size != 1:
            raise ValueError("page_size applies to token trees only")
        self._kind = RX_TEXT if kind == "text" else RX_TOKENS
        self._page = <uint32_t>page_size
        self._ids = {}
        self._names = []
        self.tree = <rx_tree *>malloc(sizeof(rx_tree))
        if self.tree == NULL:
            raise MemoryError()
        if rx_init(self.tree, self._kind, 1 if self._kind == RX_TEXT else 4 * self._page) < 0:
            free(self.tree)
            self.tree = NULL
            raise MemoryError()

    def __dealloc__(self):
        if self.tree != NULL:
            rx_destroy(self.tree)
            free(self.tree)

    @property
    def kind(self) -> str:
        return "text" if self._kind == RX_TEXT else "tokens"

    @property
    def page_size(self) -> int:
        return self._page

    # ---- keys and tenants -----------------------------------------------------------

    cdef int _open(self, object key, Key *k) except -1:
        cdef Py_ssize_t n, i, count
        cdef unsigned long v
        cdef PyObject **items
        cdef uint32_t *ids
        k.has_view = False
        k.owned = NULL
        k.holder = NULL
        k.kind = 0
        k.nchars = 0
        if self._kind == RX_TEXT:
            if not isinstance(key, str):
                raise TypeError(f"a text tree takes str keys, not {type(key).__name__}")
            PyUnicode_READY(key)
            n = PyUnicode_GET_LENGTH(key)
            if PyUnicode_IS_ASCII(key):
                k.data = <const uint8_t *>PyUnicode_DATA(key)
                k.n = <size_t>n
            else:
                self._utf8(key, n, k)
            k.units = k.full_units = <uint64_t>n
            if k.n > 0xFFFFFFFF:
                raise ValueError("key too long (at most 4 GiB)")
            return 0
        if isinstance(key, str):
            raise TypeError(
                "a token tree takes token ids (list[int], array('I'), uint32 buffer), not str"
            )
        count = -1
        if PyObject_CheckBuffer(key):
            try:
                PyObject_GetBuffer(key, &k.view, PyBUF_FORMAT | PyBUF_C_CONTIGUOUS)
                k.has_view = True
            except BufferError:
                pass
        if k.has_view:
            fmt = (<bytes>k.view.format).lstrip(b"@=<") if k.view.format != NULL else b"B"
            if k.view.itemsize == 4 and fmt in (b"I", b"L"):
                k.data = <const uint8_t *>k.view.buf
                count = k.view.len // 4
            else:
                PyBuffer_Release(&k.view)
                k.has_view = False
        if count < 0:
            seq = PySequence_Fast(key, "token keys must be a sequence of ints or a uint32 buffer")
            count = PySequence_Fast_GET_SIZE(seq)
            items = PySequence_Fast_ITEMS(seq)
            ids = <uint32_t *>malloc(count * 4 + 4)
            if ids == NULL:
                raise MemoryError()
            k.owned = ids
            for i in range(count):
                item = <object>items[i]
                if PyLong_CheckExact(item):
                    v = PyLong_AsUnsignedLong(item)
                else:
                    v = PyLong_AsUnsignedLong(PyNumber_Index(item))
                if v > 0xFFFFFFFF:
                    raise OverflowError(f"token id {item} does not fit in uint32")
                ids[i] = <uint32_t>v
            k.data = <const uint8_t *>ids
        if count > 0x3FFFFFFF:
            raise ValueError("key too long (at most 2**30 tokens)")
        k.full_units = <uint64_t>count
        k.units = k.full_units - k.full_units % self._page
        k.n = <size_t>(k.units * 4)
        return 0

    cdef int _utf8(self, object key, Py_ssize_t n, Key *k) except -1:
        """UTF-8 of a non-ASCII str with our own encoder (nothing cached in the str). The
        last one is kept: a match followed by an insert of the same str encodes once. On a
        miss the buffer is made here and filled by _encode, in the same GIL-free stretch
        as the walk."""
        cdef bytes buf
        if key is self._last_key:
            Py_INCREF(self._last_utf8)  # held by k: another thread may replace the cache
            k.holder = <PyObject *>self._last_utf8
            k.data = <const uint8_t *>PyBytes_AS_STRING(self._last_utf8)
            k.n = self._last_size
            return 0
        k.kind = PyUnicode_KIND(key)
        k.chars = PyUnicode_DATA(key)
        k.nchars = <size_t>n
        if rx_utf8_bound(k.kind, k.nchars) > 0xFFFFFFFF:
            raise ValueError("key too long (at most 4 GiB)")
        buf = PyBytes_FromStringAndSize(NULL, rx_utf8_bound(k.kind, k.nchars) + 1)
        Py_INCREF(buf)
        k.holder = <PyObject *>buf
        k.data = <const uint8_t *>PyBytes_AS_STRING(buf)
        k.n = 0
        return 0

    cdef void _close(self, Key *k):
        if k.holder != NULL:
            Py_DECREF(<object>k.holder)
            k.holder = NULL
        if k.has_view:
            PyBuffer_Release(&k.view)
            k.has_view = False
        free(k.owned)
        k.owned = NULL

    cdef uint32_t _intern(self, object tenant) except? 0xFFFFFFFF:
        if not isinstance(tenant, str):
            raise TypeError(f"tenant must be a str, not {type(tenant).__name__}")
        tid = self._ids.get(tenant)
        if tid is None:
            tid = len(self._names)
            self._names.append(tenant)
            self._ids[tenant] = tid
        return tid

    # ---- the descent ----------------------------------------------------------------

    cdef object _walk(self, object key, int flags, object tenant_name):
        """Run rx_walk; returns (matched, best tenant, len(key), {tenant: length} or None)."""
        cdef Key k
        cdef rx_result res
        cdef int rc = 0
        cdef uint32_t small[3 * 128]
        cdef uint32_t *buf = small
        cdef uint32_t cap
        cdef list names
        cdef bint release
        cdef uint32_t tenant = 0
        k.has_view = False
        k.owned = NULL
        k.holder = NULL
        k.kind = 0
        k.nchars = 0
        try:
            self._open(key, &k)
            if flags & RX_INSERT:
                tenant = self._intern(tenant_name)
            names = self._names
            cap = <uint32_t>len(names)
            if (flags & RX_LENS) and cap > _SMALL:
                buf = <uint32_t *>malloc(3 * cap * sizeof(uint32_t))
                if buf == NULL:
                    raise MemoryError()
            if cap <= _SMALL:
                cap = <uint32_t>_SMALL
            release = k.n >= _NOGIL_BYTES or k.nchars >= _NOGIL_BYTES
            # the lock is taken with the GIL held: see the module docstring
            if flags & RX_INSERT:
                pthread_rwlock_wrlock(&self.tree.lock)
            else:
                pthread_rwlock_rdlock(&self.tree.lock)
            if release:  # one GIL-free stretch: encode (if needed), walk, unlock
                with nogil:
                    if k.kind:
                        k.n = rx_utf8(k.kind, k.chars, k.nchars, <uint8_t *>k.data)
                    rc = rx_walk(self.tree, k.data, k.n, k.units, flags, tenant, cap,
                                 buf, buf + cap, buf + 2 * cap, &res)
                    pthread_rwlock_unlock(&self.tree.lock)
            else:
                if k.kind:
                    k.n = rx_utf8(k.kind, k.chars, k.nchars, <uint8_t *>k.data)
                rc = rx_walk(self.tree, k.data, k.n, k.units, flags, tenant, cap,
                             buf, buf + cap, buf + 2 * cap, &res)
                pthread_rwlock_unlock(&self.tree.lock)
            if k.kind:  # publish the encoding for the next call with the same str
                self._last_key, self._last_utf8, self._last_size = key, <bytes>k.holder, k.n
            if rc == RX_ENOMEM:
                raise MemoryError("radix tree: out of memory")
            if rc != 0:
                raise RuntimeError(f"radix tree: internal error {rc}")
            lens = None
            if flags & RX_LENS:
                lens = _lens_dict(names, buf + cap, buf + 2 * cap, res.nout)
            best = names[res.best] if res.best >= 0 else None
            return res.matched, best, k.full_units, lens
        finally:
            self._close(&k)
            if buf != small:
                free(buf)

    def insert(self, key, tenant: str) -> None:
        """Insert key for tenant (an empty key just registers the tenant)."""
        self._walk(key, RX_INSERT, tenant)

    def match(self, key):
        """(matched length in key units, most recent tenant at the deepest matched node)."""
        matched, best, _, _ = self._walk(key, 0, None)
        return (matched, best) if matched else (0, None)

    def match_tenants(self, key):
        """(len(key) in key units, {tenant: its own matched length} for every match > 0)."""
        _, _, full, lens = self._walk(key, RX_LENS, None)
        return full, lens

    def match_insert(self, key, tenant: str):
        """Every tenant's matched length before the insert, then insert key for tenant."""
        return self._walk(key, RX_LENS | RX_INSERT, tenant)[3]

    # ---- maintenance ----------------------------------------------------------------

    def evict(self, max_size_per_tenant: int) -> int:
        """Drop each tenant's least recently used leaves while it holds more than
        ``max_size_per_tenant`` units; returns the units dropped (O(dropped))."""
        cdef uint64_t budget, out
        if max_size_per_tenant < 0:
            raise ValueError("max_size_per_tenant must be >= 0")
        budget = min(max_size_per_tenant, 0xFFFFFFFFFFFFFFFF)
        pthread_rwlock_wrlock(&self.tree.lock)
        with nogil:
            out = rx_evict(self.tree, budget)
            pthread_rwlock_unlock(&self.tree.lock)
        return out

    def remove_tenant(self, tenant: str) -> None:
        """Forget tenant everywhere (O(nodes it holds)); unknown tenants are ignored."""
        cdef uint32_t tid
        t = self._ids.pop(tenant, None)
        if t is None:
            return
        tid = t
        pthread_rwlock_wrlock(&self.tree.lock)
        with nogil:
            rx_remove_tenant(self.tree, tid)
            pthread_rwlock_unlock(&self.tree.lock)

    def tenant_size(self, tenant: str) -> int:
        """Units stored for tenant (0 if unknown)."""
        cdef uint64_t size = 0
        t = self._ids.get(tenant)
        if t is None:
            return 0
        pthread_rwlock_rdlock(&self.tree.lock)
        if <uint32_t>t < self.tree.ntenants:
            size = self.tree.tenants[<uint32_t>t].size
        pthread_rwlock_unlock(&self.tree.lock)
        return size

    def tenant_sizes(self) -> dict:
        """{tenant: units stored} for every live tenant."""
        return {name: self.tenant_size(name) for name in list(self._ids)}

    def tenants(self) -> list:
        """Live tenants, sorted by name."""
        return sorted(self._ids)

    def node_count(self) -> int:
        return self._stat(0)

    def stored_bytes(self) -> int:
        """Edge bytes held (UTF-8 for text, 4 per token)."""
        return self._stat(1)

    def memory_bytes(self) -> int:
        """Heap bytes the tree holds (malloc chunks, estimated as glibc sizes them)."""
        return self._stat(2) + sizeof(rx_tree)

    cdef uint64_t _stat(self, int which):
        cdef uint64_t v
        pthread_rwlock_rdlock(&self.tree.lock)
        v = self.tree.nodes if which == 0 else self.tree.stored if which == 1 else self.tree.mem
        pthread_rwlock_unlock(&self.tree.lock)
        return v

    def clear(self) -> None:
        """Drop every node and tenant."""
        self._ids = {}
        self._names = []
        pthread_rwlock_wrlock(&self.tree.lock)
        with nogil:
            rx_clear(self.tree)
            pthread_rwlock_unlock(&self.tree.lock)

    def check(self) -> None:
        """Verify the tree's invariants (for tests); AssertionError names a broken one."""
        cdef int err
        pthread_rwlock_wrlock(&self.tree.lock)
        err = rx_check(self.tree)
        pthread_rwlock_unlock(&self.tree.lock)
        if err:
            raise AssertionError(f"radix tree invariant {err} broken")


def _utf8(str s) -> bytes:
    """UTF-8 of s as the tree encodes keys (surrogates as 3 bytes each); for tests."""
    cdef Py_ssize_t n = PyUnicode_GET_LENGTH(s)
    cdef int kind = PyUnicode_KIND(s)
    cdef bytes out = PyBytes_FromStringAndSize(NULL, rx_utf8_bound(kind, n) + 1)
    cdef size_t size = rx_utf8(kind, PyUnicode_DATA(s), n, <uint8_t *>PyBytes_AS_STRING(out))
    return out[:size]
