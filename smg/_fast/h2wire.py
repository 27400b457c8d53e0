"""The receive side of an HTTP/2 gRPC connection (frames in; messages, events and
WINDOW_UPDATEs out): the implementation in use.

API and semantics: :mod:`smg._fast.h2wire_py` (the specification). ``IMPLEMENTATION``
is "cython" or "python" (``SMG_NO_EXTENSIONS=1``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from smg._fast import load

if TYPE_CHECKING:
    from smg._fast.h2wire_py import (CONNECTION_ERROR, GOAWAY, HEADERS, MAX_HEADER_BLOCK,
                                     MESSAGE_COMPRESSED, MESSAGE_TOO_LARGE, MESSAGES, PING,
                                     RST_STREAM, SETTINGS, STREAM_ERROR, WINDOW_UPDATE,
                                     FrameReader)
else:
    _impl = load("h2wire")
    FrameReader = _impl.FrameReader
    MESSAGES, HEADERS, RST_STREAM, SETTINGS = _impl.MESSAGES, _impl.HEADERS, _impl.RST_STREAM, _impl.SETTINGS
    PING, GOAWAY, WINDOW_UPDATE = _impl.PING, _impl.GOAWAY, _impl.WINDOW_UPDATE
    STREAM_ERROR, CONNECTION_ERROR = _impl.STREAM_ERROR, _impl.CONNECTION_ERROR
    MESSAGE_COMPRESSED, MESSAGE_TOO_LARGE = _impl.MESSAGE_COMPRESSED, _impl.MESSAGE_TOO_LARGE
    MAX_HEADER_BLOCK = _impl.MAX_HEADER_BLOCK

IMPLEMENTATION = "python" if load("h2wire").__name__.endswith("_py") else "cython"

__all__ = ["IMPLEMENTATION", "FrameReader", "MESSAGES", "HEADERS", "RST_STREAM", "SETTINGS",
           "PING", "GOAWAY", "WINDOW_UPDATE", "STREAM_ERROR", "CONNECTION_ERROR",
           "MESSAGE_COMPRESSED", "MESSAGE_TOO_LARGE", "MAX_HEADER_BLOCK"]
