"""Limits smg's HTTP/1.1 server (:mod:`smg.http.h1server`) puts on what a client sends,
so that a slow or oversize request cannot hold a connection or memory without bound:

- the whole request head is at most ``MAX_HEAD`` bytes (431), however many reads it came
  in (:func:`head_too_large` measures a complete head);
- a request body must have come in whole within ``--body-read-timeout-secs`` of the first
  time the app had to wait for it (408, and the connection closes): a client that sends
  the head and then the body a byte a second is cut off. A body that arrives with its
  head (the usual small request) never waits and arms no timer. The head itself is due
  within the keep-alive time of its first byte (h1server's idle timer).
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["BODY_READ_TIMEOUT", "head_too_large"]

BODY_READ_TIMEOUT = 60.0  # seconds, when the server config does not say (0: no limit)
_LINE = len(b"CONNECT  HTTP/1.1\r\n\r\n")  # the request line and the blank line, but the URL


def head_too_large(url: bytes, headers: Sequence[tuple[bytes, bytes]], limit: int) -> bool:
    """True when a head of ``url`` and ``headers`` takes more than ``limit`` bytes on the
    wire (each header line counted as ``name: value`` and its CRLF)."""
    size = len(url) + _LINE
    for name, value in headers:
        size += len(name) + len(value) + 4
    return size > limit
