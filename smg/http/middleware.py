"""The gateway's outermost ASGI app: request ids, the body size limit and the fast routes
in one pass, in front of the Starlette app.

:class:`Front` is what the server calls. For every HTTP request it

- runs the auth guard first when one is configured (:mod:`smg.security.guard`: 401/403
  before anything else, the accepted credential taken out of the headers);
- takes the request id from the first configured header present, or makes one, keeps it
  in ``scope["smg.request_id"]`` and echoes it as ``x-request-id``;
- answers 413 at once when Content-Length passes the limit, and otherwise, when the
  length is not known up front, makes ``receive`` raise :class:`PayloadTooLarge` as soon as
  the streamed body passes it;
- with admission control configured (:mod:`smg.http.admission`), reads an inference
  request's body, then admits it or answers 429/408/503, and frees its slot once the app
  call returns;
- sends ``POST`` requests for the hot paths straight to their endpoints, past Starlette's
  middleware and router; an error they do not render themselves still becomes an
  OpenAI-style JSON answer (500 for an unexpected exception, never a traceback).

Everything else (lifespan, GETs, admin, /parse, 404/405) goes to the Starlette app.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from smg.errors import PayloadTooLarge, SmgError, error_body, error_handler, send_error

if TYPE_CHECKING:
    from smg.http.admission import Admission
    from smg.security.guard import Guard

__all__ = ["Front", "random_hex", "request_endpoint", "request_id_prefix"]

log = logging.getLogger(__name__)

_PREFIXES = {
    "/v1/chat/completions": "chatcmpl-",
    "/v1/completions": "cmpl-",
    "/generate": "gnt-",
}

_CONTENT_LENGTH = -1  # its rank in Front.ranks, beside the request id headers'
_TRUSTED_LENGTH = ("1.1", "1.0")  # HTTP versions whose server stops the body at Content-Length
_X_REQUEST_ID = b"x-request-id"


def request_id_prefix(path: str) -> str:
    return _PREFIXES.get(path, "req-")


class _IdPool:
    """Random 24-hex-digit ids (12 bytes from ``os.urandom`` each), drawn from the OS in
    blocks: one system call per ``block`` ids instead of one per request. ``next(pool.ids,
    None) or pool.refill()`` takes one."""

    __slots__ = ("block", "ids")

    def __init__(self, block: int = 256) -> None:
        self.block = block
        self.ids: Iterator[str] = iter(())
        # a forked process must not hand out the ids its parent has drawn
        os.register_at_fork(after_in_child=self.reset)

    def reset(self) -> None:
        self.ids = iter(())

    def refill(self) -> str:
        data = os.urandom(12 * self.block).hex()
        self.ids = iter([data[i : i + 24] for i in range(0, len(data), 24)])
        return next(self.ids)


_ids = _IdPool()


def random_hex() -> str:
    """24 random hex digits (a made-up request id without its prefix)."""
    return next(_ids.ids, None) or _ids.refill()


class Front:
    """The outermost ASGI app (see the module docstring). ``fast`` maps the hot ``POST``
    paths to ASGI endpoints; each is called with ``scope["app"]`` set to ``app``, as
    Starlette would."""

    def __init__(self, app: ASGIApp, *, fast: Mapping[str, ASGIApp] | None = None,
                 header_names: tuple[str, ...] = ("x-request-id",), max_bytes: int,
                 guard: Guard | None = None, admission: Admission | None = None) -> None:
        if max_bytes <= 0:
            raise ValueError("max_bytes must be positive")
        self.app = app
        self.fast = {path: (endpoint, request_id_prefix(path)) for path, endpoint in (fast or {}).items()}
        self.max_bytes = max_bytes
        self.guard = guard  # smg.security.guard: None when no credential is configured
        self.admission = admission  # smg.http.admission: None when every limit is off
        # one dict lookup per request header finds both the id headers and Content-Length
        self.ranks: dict[bytes, int] = {}
        for rank, name in enumerate(header_names):
            self.ranks.setdefault(name.lower().encode("latin-1"), rank)
        self.ranks[b"content-length"] = _CONTENT_LENGTH

    @property
    def state(self) -> Any:
        """The Starlette app's ``state`` (``state.smg`` once the lifespan has started)."""
        return self.app.state  # type: ignore[attr-defined]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "websocket" and self.guard is not None and not await self.guard.admit(scope, send):
                return  # closed before the handshake: no route behind the guard is reachable unchecked
            await self.app(scope, receive, send)
            return
        ranked = self.ranks.get
        rid: bytes | None = None
        rank = len(self.ranks)
        length: bytes | None = None
        for key, value in scope["headers"]:  # one pass: the earliest-listed id header wins
            r = ranked(key)
            if r is not None:
                if r == _CONTENT_LENGTH:
                    if length is None:
                        length = value
                elif r < rank:
                    rid, rank = value, r
        entry = self.fast.get(scope["path"]) if scope["method"] == "POST" else None
        if rid is None:
            prefix = entry[1] if entry is not None else request_id_prefix(scope["path"])
            rid_str = prefix + (next(_ids.ids, None) or _ids.refill())
            rid = rid_str.encode("latin-1")
            scope["smg.request_id_made"] = True  # unique: may name the worker request as is
        else:
            rid_str = rid.decode("latin-1")
        scope["smg.request_id"] = rid_str
        started = False

        def send_with_id(message: Message) -> Awaitable[None]:
            # a plain function handing back send's awaitable: no extra coroutine per message
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                # a new list: the app's may be shared (a module-level constant)
                message["headers"] = [*message.get("headers", ()), (_X_REQUEST_ID, rid)]
            return send(message)

        if self.guard is not None and not await self.guard.admit(scope, send_with_id):
            return  # answered 401/403
        limit = self.max_bytes
        known = length is not None and length.isdigit()
        if known and int(length) > limit:  # type: ignore[arg-type]
            await _send_413(send_with_id, limit)
            return
        if not known or scope.get("http_version") not in _TRUSTED_LENGTH:
            receive = _limited(receive, limit)  # count the body as it streams in
        admission = self.admission  # issue 15: admission control (429/408/503 before any work)
        if admission is not None:
            if not admission.applies(scope):
                admission = None
            else:
                receive = await admission.buffered(receive, send_with_id)  # a slow body holds no slot
                if receive is None or not await admission.enter(scope, send_with_id):
                    return
        try:
            if entry is None:
                await self.app(scope, receive, send_with_id)
                return
            scope["app"] = self.app
            try:
                await entry[0](scope, receive, send_with_id)
            except Exception as exc:
                if started:
                    raise  # the server cuts the connection: the client sees the answer incomplete
                if not isinstance(exc, SmgError):
                    log.exception("unexpected error on %s", scope["path"])
                    exc = SmgError("internal error")
                await send_error(send_with_id, exc)
        finally:
            if admission is not None:
                admission.leave()  # the body is sent or the client is gone: the slot is free


def _limited(receive: Receive, limit: int) -> Receive:
    seen = 0

    async def limited_receive() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise PayloadTooLarge(f"request body exceeds {limit} bytes")
        return message

    return limited_receive


async def _send_413(send: Send, limit: int) -> None:
    body = error_body(413, f"request body exceeds {limit} bytes", PayloadTooLarge.error_type)
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body)),
               (b"connection", b"close")]  # the unread body is not worth reading
    await send({"type": "http.response.start", "status": 413, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def request_endpoint(func: Callable[[Request], Awaitable[Response]]) -> ASGIApp:
    """A Starlette-style endpoint (``async def f(request) -> Response``) as a bare ASGI app
    for :class:`Front`'s fast routes: what its Route would do, minus the routing. Errors
    raised before the response starts render as Starlette's exception handlers would."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive, send)
        try:
            response = await func(request)
        except (SmgError, HTTPException) as exc:
            response = await error_handler(request, exc)
        await response(scope, receive, send)

    return app
