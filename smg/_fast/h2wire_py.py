"""The receive side of an HTTP/2 connection carrying gRPC (the specification).

The specification of ``smg._fast.h2wire``. A ``FrameReader`` is fed the bytes a
connection receives (RFC 9113, cleartext, prior knowledge) and does, in one call per
read, what needs no Python object of the caller: splitting frames (across reads),
de-framing gRPC's length-prefixed messages out of each open stream's DATA (a message
may span frames, a frame may hold several), receive flow control (the WINDOW_UPDATE
frames to send once half a window is used up) and the checks RFC 9113 asks for frame
sizes, stream ids and settings values.

    FrameReader(*, max_frame, stream_window, conn_window, max_message=256 MiB,
                server=False)

``max_frame``: the largest frame payload accepted (what SETTINGS_MAX_FRAME_SIZE
announced, else 16384); ``stream_window`` / ``conn_window``: the receive windows
announced (SETTINGS_INITIAL_WINDOW_SIZE, and the connection's after our WINDOW_UPDATE);
``max_message``: the largest gRPC message accepted; ``server``: the server end, which
expects the client connection preface first and whose peer opens streams: a HEADERS
frame on a new stream (an odd id above every one seen before) opens it.

    open(sid), discard(sid), close(sid)

Only open streams have their messages de-framed. ``discard``: the stream's flow control
goes on, its messages (and the part of one already received) are dropped. ``close``:
forget the stream; its later DATA only counts against the connection window.

    feed(data) -> (events, out)

``out``: WINDOW_UPDATE frames to write (``b""`` if none). ``events``: a list of
``(kind, flags, sid, value)`` in the order of the frames they come from:

- ``(MESSAGES, flags, sid, [payload, ...])``: complete messages of an open stream.
  Within one ``feed``, consecutive DATA frames of a stream (other streams' DATA between
  them allowed) add to one event's list; any other frame ends these runs. After the
  messages (and any STREAM_ERROR) of a DATA frame with END_STREAM comes
  ``(MESSAGES, END_STREAM, sid, [])``.
- ``(HEADERS, flags, sid, block)``: a whole header block (CONTINUATIONs joined, padding
  and priority removed), any stream; ``flags`` is END_STREAM or 0.
- ``(SETTINGS, 0, 0, [(key, value), ...])`` for a SETTINGS frame without ACK.
- ``(PING, flags, 0, opaque)``: ``flags`` ACK or 0, ``opaque`` the 8 bytes.
- ``(RST_STREAM, 0, sid, error_code)``, ``(WINDOW_UPDATE, 0, sid, increment)``,
  ``(GOAWAY, 0, last_sid, error_code)``.
- ``(STREAM_ERROR, 0, sid, reason)``: an open stream sent a message with the compressed
  flag (``reason`` MESSAGE_COMPRESSED) or one over ``max_message`` (MESSAGE_TOO_LARGE);
  its messages are discarded from then on.
- ``(CONNECTION_ERROR, error_code, 0, why)``, last: the bytes broke the protocol
  (``error_code`` is HTTP/2's, for the GOAWAY). Nothing after it was read; every later
  ``feed`` answers the same.

PRIORITY frames and unknown frame types are ignored; SETTINGS ACKs give no event.
"""

from __future__ import annotations

import struct

__all__ = [
    "FrameReader", "MESSAGES", "HEADERS", "RST_STREAM", "SETTINGS", "PING", "GOAWAY",
    "WINDOW_UPDATE", "STREAM_ERROR", "CONNECTION_ERROR", "MESSAGE_COMPRESSED",
    "MESSAGE_TOO_LARGE", "MAX_HEADER_BLOCK",
]

# event kinds (frame types where there is one)
MESSAGES, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY, WINDOW_UPDATE = 0, 1, 3, 4, 6, 7, 8
STREAM_ERROR, CONNECTION_ERROR = 16, 17
# STREAM_ERROR reasons
MESSAGE_COMPRESSED, MESSAGE_TOO_LARGE = 1, 2
# a header block (CONTINUATIONs joined) larger than this breaks the connection
MAX_HEADER_BLOCK = 1 << 22

_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
_PRIORITY, _PUSH_PROMISE, _CONTINUATION = 2, 5, 9
_END_STREAM = _ACK = 0x1
_END_HEADERS, _PADDED, _PRIORITY_FLAG = 0x4, 0x8, 0x20
_PROTOCOL_ERROR, _FLOW_CONTROL_ERROR, _FRAME_SIZE_ERROR = 0x1, 0x3, 0x6
_ENHANCE_YOUR_CALM = 0xB
_WINDOW_UPDATE = struct.Struct(">BHBBII")


class _ConnectionError(Exception):
    def __init__(self, code: int, why: str) -> None:
        super().__init__(why)
        self.code, self.why = code, why


class _Stream:
    __slots__ = ("deliver", "buf", "need", "recv", "run", "gen")

    def __init__(self) -> None:
        self.deliver = True  # de-frame messages (False once discarded or broken)
        self.buf = bytearray()  # the start of a message not complete yet
        self.need = 0  # bytes buf must hold before a message can complete
        self.recv = 0  # received since our last WINDOW_UPDATE for the stream
        self.run: list[bytes] = []  # the MESSAGES list that later DATA extends ...
        self.gen = -1  # ... while the reader's generation is this one


class FrameReader:
    def __init__(self, *, max_frame: int, stream_window: int, conn_window: int,
                 max_message: int = 256 * 1024 * 1024, server: bool = False) -> None:
        self.max_frame = max_frame
        self.stream_window = stream_window
        self.conn_window = conn_window
        self.max_message = max_message
        self.server = server
        self.preface = _PREFACE if server else b""  # what of the preface is still due
        self.last_peer_sid = 0  # the highest stream id the peer opened
        self.streams: dict[int, _Stream] = {}
        self.buf = bytearray()  # an incomplete frame
        self.conn_recv = 0  # received since our last connection WINDOW_UPDATE
        self.fragment: tuple[int, int, bytearray] | None = None  # sid, flags, block
        self.error: tuple[int, str] | None = None
        self.gen = 0  # a new feed and every frame but DATA end the streams' runs

    def open(self, sid: int) -> None:
        self.streams[sid] = _Stream()

    def discard(self, sid: int) -> None:
        st = self.streams.get(sid)
        if st is not None:
            st.deliver, st.buf, st.gen = False, bytearray(), -1

    def close(self, sid: int) -> None:
        self.streams.pop(sid, None)

    def feed(self, data: bytes) -> tuple[list, bytes]:
        events: list = []
        out = bytearray()
        self.gen += 1
        if self.error is None:
            try:
                self._feed(bytes(data), events, out)
            except _ConnectionError as exc:
                self.error = (exc.code, exc.why)
                self.buf.clear()
        if self.error is not None:
            events.append((CONNECTION_ERROR, self.error[0], 0, self.error[1]))
        return events, bytes(out)

    def _feed(self, data: bytes, events: list, out: bytearray) -> None:
        if self.preface:
            n = min(len(data), len(self.preface))
            if data[:n] != self.preface[:n]:
                raise _ConnectionError(_PROTOCOL_ERROR, "not an HTTP/2 connection preface")
            self.preface, data = self.preface[n:], data[n:]
        if self.buf:  # the rest of an incomplete frame first
            self.buf += data
            data = bytes(self.buf)
            self.buf.clear()
        pos, end = 0, len(data)
        while end - pos >= 9:
            length = (data[pos] << 16) | (data[pos + 1] << 8) | data[pos + 2]
            if length > self.max_frame:
                raise _ConnectionError(_FRAME_SIZE_ERROR, "frame larger than SETTINGS_MAX_FRAME_SIZE")
            if end - pos - 9 < length:
                break
            ftype, flags = data[pos + 3], data[pos + 4]
            sid = int.from_bytes(data[pos + 5 : pos + 9], "big") & 0x7FFFFFFF
            payload = data[pos + 9 : pos + 9 + length]
            pos += 9 + length
            if self.fragment is not None and ftype != _CONTINUATION:
                raise _ConnectionError(_PROTOCOL_ERROR, "expected CONTINUATION")
            if ftype == 0:
                self._data(flags, sid, payload, events, out)
            else:
                self.gen += 1
                self._control(ftype, flags, sid, payload, events)
        self.buf += data[pos:]

    # -- DATA -------------------------------------------------------------------------
    def _data(self, flags: int, sid: int, payload: bytes, events: list, out: bytearray) -> None:
        if sid == 0:
            raise _ConnectionError(_PROTOCOL_ERROR, "DATA on stream 0")
        size = len(payload)
        if flags & _PADDED:
            if size == 0 or payload[0] >= size:
                raise _ConnectionError(_PROTOCOL_ERROR, "DATA padding longer than the frame")
            payload = payload[1 : size - payload[0]]
        self.conn_recv += size
        if self.conn_recv > self.conn_window:
            raise _ConnectionError(_FLOW_CONTROL_ERROR, "DATA beyond the connection window")
        st = self.streams.get(sid)
        if st is not None and not flags & _END_STREAM:
            st.recv += size
            if st.recv > self.stream_window:
                raise _ConnectionError(_FLOW_CONTROL_ERROR, "DATA beyond the stream window")
        if self.conn_recv >= self.conn_window >> 1:
            out += _WINDOW_UPDATE.pack(0, 4, 8, 0, 0, self.conn_recv)
            self.conn_recv = 0
        if st is None:
            return
        if st.recv >= self.stream_window >> 1:
            out += _WINDOW_UPDATE.pack(0, 4, 8, 0, sid, st.recv)
            st.recv = 0
        if st.deliver and payload:
            self._messages(st, sid, payload, events)
        if flags & _END_STREAM:
            events.append((MESSAGES, _END_STREAM, sid, []))
            st.gen = -1

    def _messages(self, st: _Stream, sid: int, payload: bytes, events: list) -> None:
        if st.buf:
            st.buf += payload
            if len(st.buf) < st.need:
                return
            payload = bytes(st.buf)
            st.buf = bytearray()
        pos, end = 0, len(payload)
        while end - pos >= 5:
            if payload[pos]:
                self._stream_error(st, sid, MESSAGE_COMPRESSED, events)
                return
            length = int.from_bytes(payload[pos + 1 : pos + 5], "big")
            if length > self.max_message:
                self._stream_error(st, sid, MESSAGE_TOO_LARGE, events)
                return
            if end - pos - 5 < length:
                break
            if st.gen != self.gen:
                st.run, st.gen = [], self.gen
                events.append((MESSAGES, 0, sid, st.run))
            st.run.append(payload[pos + 5 : pos + 5 + length])
            pos += 5 + length
        if pos < end:
            st.buf = bytearray(payload[pos:])
            st.need = 5 if end - pos < 5 else 5 + int.from_bytes(payload[pos + 1 : pos + 5], "big")

    def _stream_error(self, st: _Stream, sid: int, reason: int, events: list) -> None:
        st.deliver, st.buf, st.gen = False, bytearray(), -1
        events.append((STREAM_ERROR, 0, sid, reason))

    # -- everything else ----------------------------------------------------------------
    def _control(self, ftype: int, flags: int, sid: int, payload: bytes, events: list) -> None:
        n = len(payload)
        if ftype == 1:  # HEADERS
            if sid == 0:
                raise _ConnectionError(_PROTOCOL_ERROR, "HEADERS on stream 0")
            if self.server and sid & 1 and sid > self.last_peer_sid:
                self.last_peer_sid = sid
                self.streams[sid] = _Stream()
            if flags & _PADDED:
                if n == 0 or payload[0] >= n:
                    raise _ConnectionError(_PROTOCOL_ERROR, "HEADERS padding longer than the frame")
                payload = payload[1 : n - payload[0]]
            if flags & _PRIORITY_FLAG:
                if len(payload) < 5:
                    raise _ConnectionError(_PROTOCOL_ERROR, "HEADERS priority cut off")
                payload = payload[5:]
            if flags & _END_HEADERS:
                events.append((HEADERS, flags & _END_STREAM, sid, payload))
            else:
                self.fragment = (sid, flags & _END_STREAM, bytearray(payload))
        elif ftype == _CONTINUATION:
            if self.fragment is None or self.fragment[0] != sid:
                raise _ConnectionError(_PROTOCOL_ERROR, "unexpected CONTINUATION")
            block = self.fragment[2]
            block += payload
            if len(block) > MAX_HEADER_BLOCK:
                raise _ConnectionError(_ENHANCE_YOUR_CALM, "header block too large")
            if flags & _END_HEADERS:
                events.append((HEADERS, self.fragment[1], sid, bytes(block)))
                self.fragment = None
        elif ftype == SETTINGS:
            if sid != 0:
                raise _ConnectionError(_PROTOCOL_ERROR, "SETTINGS on a stream")
            if flags & _ACK:
                if n:
                    raise _ConnectionError(_FRAME_SIZE_ERROR, "SETTINGS ACK with a payload")
                return
            if n % 6:
                raise _ConnectionError(_FRAME_SIZE_ERROR, "SETTINGS length not a multiple of 6")
            pairs = []
            for i in range(0, n, 6):
                key = int.from_bytes(payload[i : i + 2], "big")
                value = int.from_bytes(payload[i + 2 : i + 6], "big")
                if key == 2 and value > 1:
                    raise _ConnectionError(_PROTOCOL_ERROR, "SETTINGS_ENABLE_PUSH not 0 or 1")
                if key == 4 and value > 0x7FFFFFFF:
                    raise _ConnectionError(_FLOW_CONTROL_ERROR, "SETTINGS_INITIAL_WINDOW_SIZE too large")
                if key == 5 and not 16384 <= value <= 0xFFFFFF:
                    raise _ConnectionError(_PROTOCOL_ERROR, "SETTINGS_MAX_FRAME_SIZE out of range")
                pairs.append((key, value))
            events.append((SETTINGS, 0, 0, pairs))
        elif ftype == PING:
            if sid != 0:
                raise _ConnectionError(_PROTOCOL_ERROR, "PING on a stream")
            if n != 8:
                raise _ConnectionError(_FRAME_SIZE_ERROR, "PING length not 8")
            events.append((PING, flags & _ACK, 0, payload))
        elif ftype == RST_STREAM:
            if sid == 0:
                raise _ConnectionError(_PROTOCOL_ERROR, "RST_STREAM on stream 0")
            if n != 4:
                raise _ConnectionError(_FRAME_SIZE_ERROR, "RST_STREAM length not 4")
            events.append((RST_STREAM, 0, sid, int.from_bytes(payload, "big")))
        elif ftype == WINDOW_UPDATE:
            if n != 4:
                raise _ConnectionError(_FRAME_SIZE_ERROR, "WINDOW_UPDATE length not 4")
            inc = int.from_bytes(payload, "big") & 0x7FFFFFFF
            if inc == 0:
                raise _ConnectionError(_PROTOCOL_ERROR, "WINDOW_UPDATE of 0")
            events.append((WINDOW_UPDATE, 0, sid, inc))
        elif ftype == GOAWAY:
            if sid != 0:
                raise _ConnectionError(_PROTOCOL_ERROR, "GOAWAY on a stream")
            if n < 8:
                raise _ConnectionError(_FRAME_SIZE_ERROR, "GOAWAY shorter than 8 bytes")
            last = int.from_bytes(payload[:4], "big") & 0x7FFFFFFF
            events.append((GOAWAY, 0, last, int.from_bytes(payload[4:8], "big")))
        elif ftype == _PUSH_PROMISE:
            raise _ConnectionError(_PROTOCOL_ERROR, "PUSH_PROMISE (push is disabled)")
        # PRIORITY and unknown frame types are ignored
