"""HTTP/1.1 wire constants and helpers for smg's server protocol (:mod:`smg.http.h1server`)."""

from __future__ import annotations

import http
import re
from typing import Any

from starlette.types import Message

__all__ = ["CONTINUE", "DISCONNECT", "HEADERS_500", "HIGH_WATER", "NAME_RE", "NO_BODY_STATUS", "STATUS_LINE", "VALUE_RE",
           "address", "status_line"]

NAME_RE = re.compile(rb'[\x00-\x1f\x7f()<>@,;:\[\]={} \t\\"]')
VALUE_RE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")


def status_line(code: int) -> bytes:
    try:
        phrase = http.HTTPStatus(code).phrase.encode()
    except ValueError:
        phrase = b""
    return b"HTTP/1.1 %d %s\r\n" % (code, phrase)


HIGH_WATER = 65536  # request body bytes buffered before reading from the client pauses
STATUS_LINE = {code: status_line(code) for code in range(100, 600)}
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
DISCONNECT: Message = {"type": "http.disconnect"}
NO_BODY_STATUS = (204, 304)
HEADERS_500 = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", b"21"),
               (b"connection", b"close")]


def address(info: Any) -> tuple[str, int] | None:
    if isinstance(info, (tuple, list)) and len(info) >= 2:
        return str(info[0]), int(info[1])
    return None
