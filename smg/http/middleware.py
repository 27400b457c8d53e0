"""Pure ASGI middleware: request ids and the request body size limit."""

from __future__ import annotations

import os
from collections.abc import Mapping

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from smg.errors import PayloadTooLarge, error_body

__all__ = ["BodyLimitMiddleware", "FastRoutes", "RequestIdMiddleware", "request_id_prefix"]

_PREFIXES = {
    "/v1/chat/completions": "chatcmpl-",
    "/v1/completions": "cmpl-",
    "/generate": "gnt-",
}


def request_id_prefix(path: str) -> str:
    return _PREFIXES.get(path, "req-")


class FastRoutes:
    """Send ``POST`` requests for ``endpoints``' paths straight to them, past Starlette's
    routing and exception middleware (the endpoints render their own errors)."""

    def __init__(self, app: ASGIApp, endpoints: Mapping[str, ASGIApp]) -> None:
        self.app = app
        self.endpoints = dict(endpoints)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            endpoint = self.endpoints.get(scope["path"])
            if endpoint is not None:
                await endpoint(scope, receive, send)
                return
        await self.app(scope, receive, send)


class RequestIdMiddleware:
    """Take the request id from the first of ``header_names`` present, else make one; keep it
    in ``scope["smg.request_id"]`` and echo it as ``x-request-id``."""

    def __init__(self, app: ASGIApp, header_names: tuple[str, ...] = ("x-request-id",)) -> None:
        self.app = app
        self.header_names = tuple(h.lower().encode("latin-1") for h in header_names)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        names = self.header_names
        rid = None
        rank = len(names)
        for key, value in scope["headers"]:  # one pass: the earliest-listed name wins
            if key in names:
                i = names.index(key)
                if i < rank:
                    rid, rank = value, i
        if rid is None:
            rid = (request_id_prefix(scope["path"]) + os.urandom(12).hex()).encode()
        scope["smg.request_id"] = rid.decode("latin-1")

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                # a new list: the app's may be shared (a module-level constant)
                message["headers"] = [*message.get("headers", ()), (b"x-request-id", rid)]
            await send(message)

        await self.app(scope, receive, send_with_id)


class BodyLimitMiddleware:
    """Refuse bodies over ``max_bytes`` with 413: at once from Content-Length, or as soon
    as the streamed body passes the limit (``receive`` raises :class:`PayloadTooLarge`)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        if max_bytes <= 0:
            raise ValueError("max_bytes must be positive")
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_bytes
        for key, value in scope["headers"]:
            if key == b"content-length":
                if value.isdigit() and int(value) > limit:
                    await _send_413(send, limit)
                    return
                break
        seen = 0

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise PayloadTooLarge(f"request body exceeds {limit} bytes")
            return message

        await self.app(scope, limited_receive, send)


async def _send_413(send: Send, limit: int) -> None:
    body = error_body(413, f"request body exceeds {limit} bytes", PayloadTooLarge.error_type)
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", b"%d" % len(body)),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
