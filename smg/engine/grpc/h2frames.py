"""HTTP/2 framing and the few HPACK encodings a gRPC server sends (RFC 9113, RFC 7541).

Only what ``h2server`` needs: frame headers, SETTINGS, WINDOW_UPDATE, PING ACK,
RST_STREAM, GOAWAY, and header blocks written as HPACK "literal without indexing,
new name" fields, which keep no encoder state, so every block is self-contained.
Header blocks from clients are decoded by ``hpackdec``.
"""

from __future__ import annotations

import struct

__all__ = [
    "PREFACE",
    "DATA", "HEADERS", "PRIORITY", "RST_STREAM", "SETTINGS", "PUSH_PROMISE", "PING", "GOAWAY",
    "WINDOW_UPDATE", "CONTINUATION",
    "END_STREAM", "ACK", "END_HEADERS", "PADDED", "PRIORITY_FLAG",
    "frame", "header_block", "grpc_message", "percent_encode",
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

# settings ids
SETTINGS_HEADER_TABLE_SIZE = 0x1
SETTINGS_MAX_CONCURRENT_STREAMS = 0x3
SETTINGS_INITIAL_WINDOW_SIZE = 0x4
SETTINGS_MAX_FRAME_SIZE = 0x5

# error codes
NO_ERROR, PROTOCOL_ERROR, INTERNAL_ERROR, FLOW_CONTROL_ERROR = 0x0, 0x1, 0x2, 0x3
FRAME_SIZE_ERROR, REFUSED_STREAM, CANCEL, COMPRESSION_ERROR = 0x6, 0x7, 0x8, 0x9

_HEAD = struct.Struct(">I")  # length(24) + type(8) packed below
_GRPC_PREFIX = struct.Struct(">BI")


def frame(ftype: int, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    n = len(payload)
    return bytes(((n >> 16) & 0xFF, (n >> 8) & 0xFF, n & 0xFF, ftype, flags)) + _HEAD.pack(
        stream_id & 0x7FFFFFFF
    ) + payload


def settings(pairs: dict[int, int]) -> bytes:
    return frame(SETTINGS, 0, 0, b"".join(struct.pack(">HI", k, v) for k, v in pairs.items()))


def window_update(stream_id: int, increment: int) -> bytes:
    return frame(WINDOW_UPDATE, 0, stream_id, _HEAD.pack(increment & 0x7FFFFFFF))


def rst_stream(stream_id: int, code: int) -> bytes:
    return frame(RST_STREAM, 0, stream_id, _HEAD.pack(code))


def goaway(last_stream_id: int, code: int, debug: bytes = b"") -> bytes:
    return frame(GOAWAY, 0, 0, struct.pack(">II", last_stream_id & 0x7FFFFFFF, code) + debug)


def _hpack_int(value: int, prefix_bits: int, first: int = 0) -> bytes:
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


def _literal(name: bytes, value: bytes) -> bytes:
    # "Literal Header Field without Indexing -- New Name" (0000 0000), no Huffman
    return b"\x00" + _hpack_int(len(name), 7) + name + _hpack_int(len(value), 7) + value


def header_block(headers: list[tuple[str, str]]) -> bytes:
    """An HPACK block of ``headers`` that needs no encoder state (``:status: 200`` uses
    static table entry 8)."""
    out = []
    for name, value in headers:
        if name == ":status" and value == "200":
            out.append(b"\x88")
        else:
            out.append(_literal(name.encode("ascii"), value.encode("utf-8")))
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
