# cython: boundscheck=False, wraparound=False, auto_pickle=False
"""Compiled ``FrameReader``: see :mod:`smg._fast.h2wire_py` (the specification).

Frames are read straight from the received ``bytes`` (or, when a frame spans reads,
from the reader's buffer, which nothing resizes while a feed runs); a DATA frame of an
open stream costs a dict lookup, one ``bytes`` per message and a list append.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_GET_SIZE
from cpython.dict cimport PyDict_GetItem
from cpython.list cimport PyList_Append
from cpython.ref cimport PyObject
from libc.stdint cimport int64_t, uint32_t
from libc.string cimport memcmp

__all__ = [
    "FrameReader", "MESSAGES", "HEADERS", "RST_STREAM", "SETTINGS", "PING", "GOAWAY",
    "WINDOW_UPDATE", "STREAM_ERROR", "CONNECTION_ERROR", "MESSAGE_COMPRESSED",
    "MESSAGE_TOO_LARGE", "MAX_HEADER_BLOCK",
]

MESSAGES, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY, WINDOW_UPDATE = 0, 1, 3, 4, 6, 7, 8
STREAM_ERROR, CONNECTION_ERROR = 16, 17
MESSAGE_COMPRESSED, MESSAGE_TOO_LARGE = 1, 2
MAX_HEADER_BLOCK = 1 << 22

cdef enum:
    _DATA = 0
    _HEADERS = 1
    _RST_STREAM = 3
    _SETTINGS = 4
    _PUSH_PROMISE = 5
    _PING = 6
    _GOAWAY = 7
    _WINDOW_UPDATE = 8
    _CONTINUATION = 9
    _END_STREAM = 0x1
    _ACK = 0x1
    _END_HEADERS = 0x4
    _PADDED = 0x8
    _PRIORITY_FLAG = 0x20
    _PROTOCOL_ERROR = 0x1
    _FLOW_CONTROL_ERROR = 0x3
    _FRAME_SIZE_ERROR = 0x6
    _ENHANCE_YOUR_CALM = 0xB
    _MAX_HEADER_BLOCK = 1 << 22

cdef bytes _PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


cdef inline uint32_t _u32(const unsigned char* p) noexcept nogil:
    return ((<uint32_t>p[0]) << 24) | ((<uint32_t>p[1]) << 16) | ((<uint32_t>p[2]) << 8) | p[3]


cdef class _Stream:
    cdef bint deliver
    cdef bytearray buf  # the start of a message not complete yet (None: nothing)
    cdef Py_ssize_t need
    cdef int64_t recv
    cdef list run
    cdef int64_t gen

    def __cinit__(self):
        self.deliver = True
        self.gen = -1


cdef class FrameReader:
    cdef Py_ssize_t max_frame
    cdef int64_t stream_window, conn_window, conn_recv, max_message, gen
    cdef Py_ssize_t preface_due  # how much of the preface is still to come
    cdef bint server
    cdef uint32_t last_peer_sid
    cdef dict streams
    cdef bytearray buf
    cdef bytearray frag  # a header block waiting for CONTINUATION (None: none)
    cdef uint32_t frag_sid
    cdef int frag_flags
    cdef int err_code
    cdef str err_why  # None while the connection is sound
    cdef list out

    def __init__(self, *, max_frame, stream_window, conn_window,
                 max_message=256 * 1024 * 1024, server=False):
        self.max_frame = max_frame
        self.stream_window = stream_window
        self.conn_window = conn_window
        self.max_message = max_message
        self.server = server
        self.preface_due = 24 if server else 0
        self.streams = {}
        self.buf = bytearray()

    def open(self, sid):
        self.streams[sid] = _Stream()

    def discard(self, sid):
        cdef _Stream st = self.streams.get(sid)
        if st is not None:
            st.deliver = False
            st.buf = None
            st.gen = -1

    def close(self, sid):
        self.streams.pop(sid, None)

    def feed(self, data):
        cdef list events = []
        self.gen += 1
        self.out = None
        if self.err_why is None:
            if type(data) is not bytes:
                data = bytes(data)
            if self._feed(<bytes>data, events) < 0:
                self.buf = bytearray()
        if self.err_why is not None:
            events.append((CONNECTION_ERROR, self.err_code, 0, self.err_why))
        return events, (b"" if self.out is None else b"".join(self.out))

    cdef int _fail(self, int code, str why):
        self.err_code, self.err_why = code, why
        return -1

    cdef int _feed(self, bytes data, list events) except -2:
        cdef Py_ssize_t k, pos = 0, end, length, start
        cdef const unsigned char* d
        cdef unsigned char ftype, flags
        cdef uint32_t sid
        cdef bytearray buf = self.buf
        cdef bint from_buf = False
        cdef int rc
        if self.preface_due:
            k = min(PyBytes_GET_SIZE(data), self.preface_due)
            start = 24 - self.preface_due
            if memcmp(PyBytes_AS_STRING(data), PyBytes_AS_STRING(_PREFACE) + start, k):
                return self._fail(_PROTOCOL_ERROR, "not an HTTP/2 connection preface")
            self.preface_due -= k
            data = data[k:]
        if PyByteArray_GET_SIZE(buf):
            buf += data
            end = PyByteArray_GET_SIZE(buf)
            d = <const unsigned char*>PyByteArray_AS_STRING(buf)
            if end >= 9:
                length = (d[0] << 16) | (d[1] << 8) | d[2]
                if end < 9 + length and length <= self.max_frame:
                    return 0  # still inside one large frame
            from_buf = True
        else:
            end = PyBytes_GET_SIZE(data)
            d = <const unsigned char*>PyBytes_AS_STRING(data)
        rc = 0
        while end - pos >= 9:
            length = (d[pos] << 16) | (d[pos + 1] << 8) | d[pos + 2]
            if length > self.max_frame:
                return self._fail(_FRAME_SIZE_ERROR, "frame larger than SETTINGS_MAX_FRAME_SIZE")
            if end - pos - 9 < length:
                break
            ftype, flags = d[pos + 3], d[pos + 4]
            sid = _u32(d + pos + 5) & 0x7FFFFFFF
            start = pos + 9
            pos = start + length
            if self.frag is not None and ftype != _CONTINUATION:
                return self._fail(_PROTOCOL_ERROR, "expected CONTINUATION")
            if ftype == _DATA:
                rc = self._data(flags, sid, d + start, length, events)
            else:
                self.gen += 1
                rc = self._control(ftype, flags, sid, d + start, length, events)
            if rc < 0:
                return rc
        if from_buf:
            del buf[:pos]
        elif pos < end:
            buf += data[pos:]
        return 0

    # -- DATA -------------------------------------------------------------------------
    cdef int _data(self, int flags, uint32_t sid, const unsigned char* p, Py_ssize_t size,
                   list events) except -2:
        cdef const unsigned char* m = p
        cdef Py_ssize_t n = size
        cdef PyObject* found
        cdef _Stream st = None
        cdef bint end_stream = flags & _END_STREAM
        if sid == 0:
            return self._fail(_PROTOCOL_ERROR, "DATA on stream 0")
        if flags & _PADDED:
            if size == 0 or p[0] >= size:
                return self._fail(_PROTOCOL_ERROR, "DATA padding longer than the frame")
            m = p + 1
            n = size - 1 - p[0]
        self.conn_recv += size
        if self.conn_recv > self.conn_window:
            return self._fail(_FLOW_CONTROL_ERROR, "DATA beyond the connection window")
        found = PyDict_GetItem(self.streams, sid)
        if found != NULL:
            st = <_Stream>found
            if not end_stream:
                st.recv += size
                if st.recv > self.stream_window:
                    return self._fail(_FLOW_CONTROL_ERROR, "DATA beyond the stream window")
        if self.conn_recv >= self.conn_window >> 1:
            self._window_update(0, self.conn_recv)
            self.conn_recv = 0
        if st is None:
            return 0
        if st.recv >= self.stream_window >> 1:
            self._window_update(sid, st.recv)
            st.recv = 0
        if st.deliver and n:
            self._messages(st, sid, m, n, events)
        if end_stream:
            events.append((MESSAGES, _END_STREAM, sid, []))
            st.gen = -1
        return 0

    cdef int _messages(self, _Stream st, uint32_t sid, const unsigned char* p, Py_ssize_t n,
                       list events) except -1:
        cdef bytes joined
        cdef Py_ssize_t pos = 0
        cdef uint32_t length
        if st.buf is not None:
            st.buf += p[:n]
            if PyByteArray_GET_SIZE(st.buf) < st.need:
                return 0
            joined = bytes(st.buf)
            st.buf = None
            p = <const unsigned char*>PyBytes_AS_STRING(joined)
            n = PyBytes_GET_SIZE(joined)
        while n - pos >= 5:
            if p[pos]:
                self._stream_error(st, sid, MESSAGE_COMPRESSED, events)
                return 0
            length = _u32(p + pos + 1)
            if length > self.max_message:
                self._stream_error(st, sid, MESSAGE_TOO_LARGE, events)
                return 0
            if n - pos - 5 < length:
                break
            if st.gen != self.gen:
                st.run = []
                st.gen = self.gen
                events.append((MESSAGES, 0, sid, st.run))
            PyList_Append(st.run, PyBytes_FromStringAndSize(<const char*>p + pos + 5, length))
            pos += 5 + length
        if pos < n:
            st.buf = bytearray(p[pos:n])
            st.need = 5 if n - pos < 5 else 5 + <Py_ssize_t>_u32(p + pos + 1)
        return 0

    cdef int _stream_error(self, _Stream st, uint32_t sid, int reason, list events) except -1:
        st.deliver = False
        st.buf = None
        st.gen = -1
        events.append((STREAM_ERROR, 0, sid, reason))
        return 0

    cdef int _window_update(self, uint32_t sid, int64_t increment) except -1:
        cdef unsigned char b[13]
        b[0] = 0
        b[1] = 0
        b[2] = 4
        b[3] = _WINDOW_UPDATE
        b[4] = 0
        b[5] = (sid >> 24) & 0x7F
        b[6] = (sid >> 16) & 0xFF
        b[7] = (sid >> 8) & 0xFF
        b[8] = sid & 0xFF
        b[9] = (increment >> 24) & 0xFF
        b[10] = (increment >> 16) & 0xFF
        b[11] = (increment >> 8) & 0xFF
        b[12] = increment & 0xFF
        if self.out is None:
            self.out = []
        self.out.append(PyBytes_FromStringAndSize(<const char*>b, 13))
        return 0

    # -- everything else ----------------------------------------------------------------
    cdef int _control(self, int ftype, int flags, uint32_t sid, const unsigned char* p,
                      Py_ssize_t n, list events) except -2:
        cdef Py_ssize_t a = 0, b = n, i
        cdef uint32_t key, value
        cdef list pairs
        if ftype == _HEADERS:
            if sid == 0:
                return self._fail(_PROTOCOL_ERROR, "HEADERS on stream 0")
            if self.server and sid & 1 and sid > self.last_peer_sid:
                self.last_peer_sid = sid
                self.streams[sid] = _Stream()
            if flags & _PADDED:
                if n == 0 or p[0] >= n:
                    return self._fail(_PROTOCOL_ERROR, "HEADERS padding longer than the frame")
                a = 1
                b = n - p[0]
            if flags & _PRIORITY_FLAG:
                if b - a < 5:
                    return self._fail(_PROTOCOL_ERROR, "HEADERS priority cut off")
                a += 5
            if flags & _END_HEADERS:
                events.append((HEADERS, flags & _END_STREAM, sid, p[a:b]))
            else:
                self.frag = bytearray(p[a:b])
                self.frag_sid = sid
                self.frag_flags = flags & _END_STREAM
        elif ftype == _CONTINUATION:
            if self.frag is None or self.frag_sid != sid:
                return self._fail(_PROTOCOL_ERROR, "unexpected CONTINUATION")
            self.frag += p[:n]
            if PyByteArray_GET_SIZE(self.frag) > _MAX_HEADER_BLOCK:
                return self._fail(_ENHANCE_YOUR_CALM, "header block too large")
            if flags & _END_HEADERS:
                events.append((HEADERS, self.frag_flags, sid, bytes(self.frag)))
                self.frag = None
        elif ftype == _SETTINGS:
            if sid != 0:
                return self._fail(_PROTOCOL_ERROR, "SETTINGS on a stream")
            if flags & _ACK:
                if n:
                    return self._fail(_FRAME_SIZE_ERROR, "SETTINGS ACK with a payload")
                return 0
            if n % 6:
                return self._fail(_FRAME_SIZE_ERROR, "SETTINGS length not a multiple of 6")
            pairs = []
            for i in range(0, n, 6):
                key = (p[i] << 8) | p[i + 1]
                value = _u32(p + i + 2)
                if key == 2 and value > 1:
                    return self._fail(_PROTOCOL_ERROR, "SETTINGS_ENABLE_PUSH not 0 or 1")
                if key == 4 and value > 0x7FFFFFFF:
                    return self._fail(_FLOW_CONTROL_ERROR, "SETTINGS_INITIAL_WINDOW_SIZE too large")
                if key == 5 and not 16384 <= value <= 0xFFFFFF:
                    return self._fail(_PROTOCOL_ERROR, "SETTINGS_MAX_FRAME_SIZE out of range")
                pairs.append((key, value))
            events.append((SETTINGS, 0, 0, pairs))
        elif ftype == _PING:
            if sid != 0:
                return self._fail(_PROTOCOL_ERROR, "PING on a stream")
            if n != 8:
                return self._fail(_FRAME_SIZE_ERROR, "PING length not 8")
            events.append((PING, flags & _ACK, 0, p[:8]))
        elif ftype == _RST_STREAM:
            if sid == 0:
                return self._fail(_PROTOCOL_ERROR, "RST_STREAM on stream 0")
            if n != 4:
                return self._fail(_FRAME_SIZE_ERROR, "RST_STREAM length not 4")
            events.append((RST_STREAM, 0, sid, _u32(p)))
        elif ftype == _WINDOW_UPDATE:
            if n != 4:
                return self._fail(_FRAME_SIZE_ERROR, "WINDOW_UPDATE length not 4")
            value = _u32(p) & 0x7FFFFFFF
            if value == 0:
                return self._fail(_PROTOCOL_ERROR, "WINDOW_UPDATE of 0")
            events.append((WINDOW_UPDATE, 0, sid, value))
        elif ftype == _GOAWAY:
            if sid != 0:
                return self._fail(_PROTOCOL_ERROR, "GOAWAY on a stream")
            if n < 8:
                return self._fail(_FRAME_SIZE_ERROR, "GOAWAY shorter than 8 bytes")
            events.append((GOAWAY, 0, _u32(p) & 0x7FFFFFFF, _u32(p + 4)))
        elif ftype == _PUSH_PROMISE:
            return self._fail(_PROTOCOL_ERROR, "PUSH_PROMISE (push is disabled)")
        return 0
