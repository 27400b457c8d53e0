"""Response header blocks of a gRPC call: HPACK decoding (memoized) and the gRPC status
they, an HTTP status or an RST_STREAM code stand for (as grpc's own clients map them)."""

from __future__ import annotations

import hpack

from smg.h2 import frames as f

__all__ = ["HeaderDecoder", "http_error", "rst_status", "trailer_status"]

# gRPC status codes used by the transport
OK, CANCELLED, UNKNOWN, DEADLINE_EXCEEDED, UNIMPLEMENTED = 0, 1, 2, 4, 12
RESOURCE_EXHAUSTED, PERMISSION_DENIED, INTERNAL, UNAVAILABLE, UNAUTHENTICATED = 8, 7, 13, 14, 16

_HTTP_TO_GRPC = {400: INTERNAL, 401: UNAUTHENTICATED, 403: PERMISSION_DENIED, 404: UNIMPLEMENTED,
                 429: UNAVAILABLE, 502: UNAVAILABLE, 503: UNAVAILABLE, 504: UNAVAILABLE}
_RST_TO_GRPC = {f.REFUSED_STREAM: UNAVAILABLE, f.CANCEL: CANCELLED,
                f.ENHANCE_YOUR_CALM: RESOURCE_EXHAUSTED, f.INADEQUATE_SECURITY: PERMISSION_DENIED}
_NO_STATUS = "trailers without grpc-status"


class HeaderDecoder:
    """``hpack.Decoder`` plus a memo: a block that left the peer's dynamic table as it
    was decodes the same way until the table changes. grpc servers index their few
    headers, so after the first call each block is a few bytes of table references (and
    smg's lean server sends stateless literals), and nearly every block is a memo hit."""

    def __init__(self, max_header_list_size: int = 1 << 20) -> None:
        self.decoder = hpack.Decoder(max_header_list_size=max_header_list_size)
        self._memo: dict[bytes, list[tuple[str, str]]] = {}
        self._state = self._table_state()

    def _table_state(self) -> tuple:
        t = self.decoder.header_table
        entries = t.dynamic_entries
        return (len(entries), id(entries[0]) if entries else 0, t._current_size, t.maxsize)

    def decode(self, block: bytes) -> list[tuple[str, str]]:
        """Headers of ``block``; any error (hpack's) breaks the connection's HPACK state."""
        headers = self._memo.get(block)
        if headers is not None:
            return headers
        headers = self.decoder.decode(block)
        state = self._table_state()
        if state == self._state:
            if len(self._memo) < 256:
                self._memo[bytes(block)] = headers
        else:
            self._state = state
            self._memo.clear()
        return headers


def http_error(headers: list[tuple[str, str]]) -> tuple[int, str] | None:
    """The status a first header block without ``:status: 200`` and without
    ``grpc-status`` ends the call with; None when the block is a normal start."""
    status = None
    for name, value in headers:
        if name == "grpc-status":
            return None
        if name == ":status":
            status = value
    if status == "200":
        return None
    code = _HTTP_TO_GRPC.get(int(status) if status and status.isdigit() else 0, UNKNOWN)
    return code, f"worker answered HTTP status {status}"


def trailer_status(headers: list[tuple[str, str]]) -> tuple[int, str]:
    code, details = UNKNOWN, _NO_STATUS
    for name, value in headers:
        if name == "grpc-status":
            code = int(value) if value.isdigit() else UNKNOWN
            if details == _NO_STATUS:
                details = ""
        elif name == "grpc-message":
            details = f.percent_decode(value)
    return code, details


def rst_status(error_code: int) -> tuple[int, str]:
    return (_RST_TO_GRPC.get(error_code, INTERNAL),
            f"stream reset by the worker (HTTP/2 error code {error_code})")
