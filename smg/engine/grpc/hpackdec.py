"""A small HPACK decoder (RFC 7541) for the lean gRPC server's request headers.

The ``hpack`` package's Decoder is correct but spends tens of µs per header block on
logging, tuple subclasses and conversions; a gRPC call's headers are mostly indexed
fields, so this decoder does the table lookups directly and decodes Huffman strings
with ``hpack``'s table-driven decoder, memoizing repeated strings. Errors raise
``HpackError`` (a connection error: COMPRESSION_ERROR).
"""

from __future__ import annotations

import collections

from hpack.huffman_table import decode_huffman
from hpack.table import HeaderTable

__all__ = ["HpackDecoder", "HpackError"]

_STATIC = tuple(
    (n.decode("latin-1"), v.decode("latin-1"), len(n) + len(v) + 32)
    for n, v in HeaderTable.STATIC_TABLE
)
_N_STATIC = len(_STATIC)
_MEMO_LIMIT = 4096


class HpackError(ValueError):
    pass


def _int(data: bytes, pos: int, bits: int) -> tuple[int, int]:
    mask = (1 << bits) - 1
    value = data[pos] & mask
    pos += 1
    if value < mask:
        return value, pos
    shift = 0
    while True:
        if pos >= len(data) or shift > 28:
            raise HpackError("bad HPACK integer")
        b = data[pos]
        pos += 1
        value += (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return value, pos


class HpackDecoder:
    """One connection's decoding context (its dynamic table)."""

    def __init__(self, max_table_size: int = 4096) -> None:
        self.limit = max_table_size  # what we allow (SETTINGS_HEADER_TABLE_SIZE default)
        self.max_size = max_table_size
        self.size = 0
        self.dynamic: collections.deque[tuple[str, str, int]] = collections.deque()
        self._memo: dict[bytes, str] = {}

    def _entry(self, index: int) -> tuple[str, str, int]:
        if 0 < index <= _N_STATIC:
            return _STATIC[index - 1]
        try:
            return self.dynamic[index - _N_STATIC - 1]
        except IndexError:
            raise HpackError(f"HPACK index {index} out of range") from None

    def _add(self, name: str, value: str, size: int) -> None:
        if size > self.max_size:
            self.dynamic.clear()
            self.size = 0
            return
        self.size += size
        self.dynamic.appendleft((name, value, size))
        self._evict()

    def _evict(self) -> None:
        while self.size > self.max_size and self.dynamic:
            self.size -= self.dynamic.pop()[2]

    def _string(self, data: bytes, pos: int) -> tuple[str, int, int]:
        if pos >= len(data):
            raise HpackError("truncated HPACK string")
        huffman = data[pos] & 0x80
        length, pos = _int(data, pos, 7)
        end = pos + length
        if end > len(data):
            raise HpackError("truncated HPACK string")
        raw = data[pos:end]
        if huffman:
            text = self._memo.get(raw)
            if text is None:
                try:
                    decoded = decode_huffman(raw)
                except Exception as exc:
                    raise HpackError(f"bad Huffman string: {exc}") from None
                text = decoded.decode("latin-1")
                if len(self._memo) >= _MEMO_LIMIT:
                    self._memo.clear()
                self._memo[raw] = text
            return text, len(text), end
        return raw.decode("latin-1"), length, end

    def decode(self, data: bytes) -> list[tuple[str, str]]:
        """The header list of one complete header block (latin-1 strings)."""
        out: list[tuple[str, str]] = []
        pos, n = 0, len(data)
        while pos < n:
            b = data[pos]
            if b & 0x80:  # indexed field
                index, pos = _int(data, pos, 7)
                name, value, _ = self._entry(index)
                out.append((name, value))
                continue
            if b & 0xE0 == 0x20:  # dynamic table size update
                size, pos = _int(data, pos, 5)
                if size > self.limit:
                    raise HpackError("HPACK table size above the limit")
                self.max_size = size
                self._evict()
                continue
            indexing = b & 0x40
            index, pos = _int(data, pos, 6 if indexing else 4)
            if index:
                name, _, _ = self._entry(index)
                nlen = len(name)
            else:
                name, nlen, pos = self._string(data, pos)
            value, vlen, pos = self._string(data, pos)
            if indexing:
                self._add(name, value, nlen + vlen + 32)
            out.append((name, value))
        return out
