"""The thin ASGI layer every endpoint stands on: bodies in, bytes out, no framework cost.

Endpoints are plain ASGI callables (Starlette mounts a non-function endpoint as ASGI), so
a request costs one body read, one ``orjson.loads`` and two ``send`` calls: no Request
object, no Response object, no per-request header building (the header lists are
module constants; only ``content-length`` is made per response).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar

import orjson

from smg.engine.http.errors import BadRequest, HTTPError, PayloadTooLarge

__all__ = [
    "DisconnectWatch",
    "Endpoint",
    "JSON_HEADERS",
    "SSE_HEADERS",
    "TEXT_HEADERS",
    "header",
    "parse_json",
    "read_body",
    "send_body",
    "start_stream",
]

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

log = logging.getLogger("smg.engine.http")

MAX_BODY_BYTES = 64 * 1024 * 1024

JSON_HEADERS: list[tuple[bytes, bytes]] = [(b"content-type", b"application/json")]
TEXT_HEADERS: list[tuple[bytes, bytes]] = [(b"content-type", b"text/plain; charset=utf-8")]
PROMETHEUS_HEADERS: list[tuple[bytes, bytes]] = [
    (b"content-type", b"text/plain; version=0.0.4; charset=utf-8")
]
SSE_HEADERS: list[tuple[bytes, bytes]] = [
    (b"content-type", b"text/event-stream"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]


async def read_body(receive: Receive, limit: int = MAX_BODY_BYTES) -> bytes:
    """The whole request body (one ``receive`` for the usual single-message body)."""
    message = await receive()
    body = message.get("body", b"")
    if not message.get("more_body", False):
        return body
    parts = [body]
    size = len(body)
    while message.get("more_body", False):
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"request body is larger than {limit} bytes")
        parts.append(chunk)
    return b"".join(parts)


def parse_json(body: bytes) -> dict[str, Any]:
    """The body as a JSON object, or ``BadRequest``."""
    if not body:
        raise BadRequest("the request body is empty; expected a JSON object")
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"the request body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise BadRequest(f"the request body must be a JSON object, not {_json_type(data)}")
    return data


def _json_type(value: Any) -> str:
    return {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number"
    )


def header(scope: Scope, name: bytes) -> str | None:
    """The first value of one request header (``name`` lower-case), decoded."""
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None


async def send_body(
    send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]] = JSON_HEADERS
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*headers, (b"content-length", b"%d" % len(body))],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def start_stream(send: Send, headers: list[tuple[bytes, bytes]] = SSE_HEADERS) -> None:
    """Start a chunked 200 response (the server adds ``transfer-encoding: chunked``)."""
    await send({"type": "http.response.start", "status": 200, "headers": headers})


class DisconnectWatch:
    """Calls ``on_disconnect`` once if the client goes away before :meth:`done`.

    One task per request reads ``receive`` (the body must already be read): ASGI servers
    report a closed connection there, not through a failing ``send``.
    """

    __slots__ = ("_on_disconnect", "_task", "disconnected", "finished")

    def __init__(self, receive: Receive, on_disconnect: Callable[[], object]) -> None:
        self._on_disconnect = on_disconnect
        self.disconnected = False
        self.finished = False
        self._task = asyncio.get_running_loop().create_task(self._watch(receive))

    async def _watch(self, receive: Receive) -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
        if not self.finished:
            self.disconnected = True
            self._on_disconnect()

    def done(self) -> None:
        """The response is complete (or about to be): a later close is no disconnect."""
        self.finished = True
        self._task.cancel()


class Endpoint:
    """Base of the worker's endpoints: an ASGI app that maps ``HTTPError`` to its body.

    Subclasses implement :meth:`handle`, raising only before the response started
    (generation answers its own errors once streaming, see ``respond``): an
    ``HTTPError`` is answered with its status and OpenAI error body, anything else with
    a 500 of the same shape (logged here, never sent as a traceback).
    """

    methods: ClassVar[tuple[str, ...]] = ("POST",)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self.handle(scope, receive, send)
        except HTTPError as exc:
            await send_body(send, exc.status, exc.body())
        except Exception as exc:
            log.exception("%s %s failed", scope["method"], scope["path"], exc_info=exc)
            err = HTTPError(f"internal error: {type(exc).__name__}")
            await send_body(send, err.status, err.body())

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        raise NotImplementedError
