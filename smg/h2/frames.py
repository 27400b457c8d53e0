"""HTTP/2 frames (RFC 9113) and the stateless HPACK encodings (RFC 7541) gRPC needs.

Frames are built as ``bytes`` ready for one ``transport.write``. Header blocks are
encoded without touching any HPACK dynamic table ("literal without indexing" fields,
or static-table indices), so a block can be built once and reused for every call;
decoding a peer's blocks needs the peer's dynamic table and is left to ``hpack``.
"""

from __future__ import annotations

import struct

__all__ = [
    "PREFACE", "DATA", "HEADERS", "PRIORITY", "RST_STREAM", "SETTINGS", "PUSH_PROMISE",
    "PING", "GOAWAY", "WINDOW_UPDATE", "CONTINUATION", "END_STREAM", "ACK", "END_HEADERS",
    "PADDED", "PRIORITY_FLAG", "frame", "settings", "window_update", "rst_stream", "goaway",
    "header_block", "grpc_message", "percent_encode", "percent_decode",
]

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

# frame types
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY = range(8)
WINDOW_UPDATE, CONTINUATION = 8, 9

# flags
END_STREAM = 0x1
ACK = 0x1
END_HEADERS = 0x4
PADDED = 0x8
PRIORITY_FLAG = 0x20

# settings
SETTINGS_HEADER_TABLE_SIZE = 0x1
SETTINGS_ENABLE_PUSH = 0x2
SETTINGS_MAX_CONCURRENT_STREAMS = 0x3
SETTINGS_INITIAL_WINDOW_SIZE = 0x4
SETTINGS_MAX_FRAME_SIZE = 0x5
SETTINGS_MAX_HEADER_LIST_SIZE = 0x6
DEFAULT_WINDOW = 65535
DEFAULT_MAX_FRAME = 16384

# error codes
NO_ERROR, PROTOCOL_ERROR, INTERNAL_ERROR, FLOW_CONTROL_ERROR = 0x0, 0x1, 0x2, 0x3
SETTINGS_TIMEOUT, STREAM_CLOSED, FRAME_SIZE_ERROR, REFUSED_STREAM = 0x4, 0x5, 0x6, 0x7
CANCEL, COMPRESSION_ERROR, CONNECT_ERROR, ENHANCE_YOUR_CALM = 0x8, 0x9, 0xA, 0xB
INADEQUATE_SECURITY, HTTP_1_1_REQUIRED = 0xC, 0xD

_U32 = struct.Struct(">I")
_HEAD = struct.Struct(">BHBBI")  # length split as 8 + 16 bits, type, flags, stream id
_GRPC_PREFIX = struct.Struct(">BI")


def frame(ftype: int, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    n = len(payload)
    return _HEAD.pack(n >> 16, n & 0xFFFF, ftype, flags, stream_id & 0x7FFFFFFF) + payload


def settings(pairs: dict[int, int]) -> bytes:
    return frame(SETTINGS, 0, 0, b"".join(struct.pack(">HI", k, v) for k, v in pairs.items()))


def window_update(stream_id: int, increment: int) -> bytes:
    return frame(WINDOW_UPDATE, 0, stream_id, _U32.pack(increment & 0x7FFFFFFF))


def rst_stream(stream_id: int, code: int) -> bytes:
    return frame(RST_STREAM, 0, stream_id, _U32.pack(code))


def goaway(last_stream_id: int, code: int, debug: bytes = b"") -> bytes:
    return frame(GOAWAY, 0, 0, struct.pack(">II", last_stream_id & 0x7FFFFFFF, code) + debug)


def hpack_int(value: int, prefix_bits: int, first: int = 0) -> bytes:
    """RFC 7541 5.1 integer with an N-bit prefix; ``first`` holds the pattern bits."""
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes((first | value,))
    out = bytearray((first | limit,))
    value -= limit
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


# static table entries (RFC 7541 appendix A) usable as whole fields or as names
_STATIC_FIELDS = {(":method", "GET"): 2, (":method", "POST"): 3, (":path", "/"): 4,
                  (":scheme", "http"): 6, (":scheme", "https"): 7, (":status", "200"): 8}
_STATIC_NAMES = {":authority": 1, ":method": 2, ":path": 4, ":scheme": 6, ":status": 8,
                 "content-type": 31, "user-agent": 58}


def header_block(headers: list[tuple[str, str]]) -> bytes:
    """One HPACK block that neither reads nor changes a dynamic table: static indices
    where a whole field is in the static table, else literals without indexing (with a
    static name index where there is one), no Huffman coding."""
    out = []
    for name, value in headers:
        index = _STATIC_FIELDS.get((name, value))
        if index is not None:
            out.append(bytes((0x80 | index,)))
            continue
        raw = value.encode("utf-8")
        name_index = _STATIC_NAMES.get(name)
        if name_index is not None:
            out.append(hpack_int(name_index, 4))
        else:
            key = name.encode("ascii")
            out.append(b"\x00" + hpack_int(len(key), 7) + key)
        out.append(hpack_int(len(raw), 7) + raw)
    return b"".join(out)


def grpc_message(payload: bytes) -> bytes:
    """A gRPC length-prefixed message (uncompressed)."""
    return _GRPC_PREFIX.pack(0, len(payload)) + payload


_SAFE = frozenset(range(0x20, 0x7F)) - {ord("%")}


def percent_encode(text: str) -> str:
    """gRPC's encoding of ``grpc-message``: printable ASCII except '%' as is, else %XX."""
    data = text.encode("utf-8")
    if all(b in _SAFE for b in data):
        return text
    return "".join(chr(b) if b in _SAFE else f"%{b:02X}" for b in data)


def percent_decode(text: str) -> str:
    """The inverse of ``percent_encode``; a malformed escape is kept as it is."""
    if "%" not in text:
        return text
    out = bytearray()
    raw = text.encode("utf-8", "surrogateescape")
    i, n = 0, len(raw)
    while i < n:
        b = raw[i]
        if b == 0x25 and i + 2 < n and _is_hex(raw[i + 1 : i + 3]):
            out.append(int(raw[i + 1 : i + 3], 16))
            i += 3
        else:
            out.append(b)
            i += 1
    return out.decode("utf-8", "replace")


def _is_hex(pair: bytes) -> bool:
    return len(pair) == 2 and all(c in b"0123456789abcdefABCDEF" for c in pair)
