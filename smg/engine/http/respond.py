"""Answering with a ``Run``: one JSON body, or an SSE stream, with faults and aborts.

The wire behaviour every generation endpoint shares:

- the response starts with the first engine event, so an engine error before the first
  token is a real HTTP error status with an OpenAI error body (a gateway can retry it);
- an engine error after the stream started is one SSE event ``data: {"error": {...}}``
  followed by ``data: [DONE]``;
- ``EngineDisconnect`` (the injected ``disconnect_mid_stream``) drops the connection
  without finishing the response;
- a client that goes away aborts the request's engine calls (``engine.abort(rid)``).

What the bytes look like is the ``Format``'s business (chat, completions, generate).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from smg.engine.http.asgi import DisconnectWatch, Receive, Send, send_body, start_stream
from smg.engine.http.errors import EngineFailed, HTTPError
from smg.engine.http.runner import Choice, Run
from smg.engine.types import EngineDisconnect, EngineError

__all__ = ["Format", "engine_error", "respond"]

DONE = b"data: [DONE]\n\n"

log = logging.getLogger("smg.engine.http")


class Format(Protocol):
    """Bytes of one endpoint's responses (see ``openai_format``, ``generate``)."""

    def head(self) -> bytes: ...  # sent before the first event of a stream

    def delta(self, choice: Choice, text: str) -> bytes: ...

    def finish(self, choice: Choice) -> bytes: ...

    def tail(self) -> bytes: ...  # ends the stream (usage, [DONE])

    def body(self) -> bytes: ...  # the whole non-streamed response


_ENGINE_ERROR_TYPES = {
    400: "invalid_request_error",
    404: "not_found_error",
    409: "conflict_error",
    429: "rate_limit_error",
    503: "service_unavailable",
    504: "timeout_error",
}


def engine_error(exc: EngineError) -> HTTPError:
    """The HTTP error for an engine failure: its status, the matching OpenAI type."""
    err = HTTPError(exc.message)
    err.status = exc.status_code  # type: ignore[misc]
    err.error_type = _ENGINE_ERROR_TYPES.get(exc.status_code, "internal_server_error")  # type: ignore[misc]
    return err


async def respond(
    run: Run,
    fmt: Format,
    stream: bool,
    receive: Receive,
    send: Send,
    inflight: dict[str, Run],
) -> None:
    """Serve ``run``; while it runs it is in ``inflight`` under its request id."""
    watch = DisconnectWatch(receive, run.abort)
    inflight[run.rid] = run
    try:
        if stream:
            await _stream(run, fmt, send, watch)
        else:
            await _collect(run, fmt, send, watch)
    finally:
        watch.done()
        if inflight.get(run.rid) is run:
            del inflight[run.rid]


class StreamWriter:
    """SSE bytes out, one write per event-loop turn of the producer.

    The first write of a turn goes out at once (no added latency: with a real decode
    cost every step is its own turn). Writes made later in the same turn (the other
    choices of a step, or a whole zero-cost generation that never suspends) are
    buffered and sent together when the producer next suspends, or at ``close``: one
    syscall for many events instead of one per token.
    """

    __slots__ = ("_buf", "_in_turn", "_loop", "_pump", "_send", "started", "used")

    def __init__(self, send: Send) -> None:
        self._send = send
        self._loop = asyncio.get_running_loop()
        self._buf: list[bytes] = []
        self._in_turn = False
        self._pump: asyncio.Task[None] | None = None
        self.started = False  # the response head went out
        self.used = False  # something was written (maybe still buffered)

    async def write(self, data: bytes) -> None:
        self.used = True
        if self._in_turn or self._pump is not None:
            self._buf.append(data)
            return
        self._in_turn = True
        self._loop.call_soon(self._turn_over)
        await self._out(data, True)

    def _turn_over(self) -> None:
        self._in_turn = False
        if self._buf and self._pump is None:
            self._pump = self._loop.create_task(self._drain())

    async def _drain(self) -> None:
        try:
            while self._buf:
                data = b"".join(self._buf)
                self._buf.clear()
                await self._out(data, True)
        finally:
            self._pump = None

    async def _out(self, data: bytes, more: bool) -> None:
        if not self.started:
            self.started = True
            await start_stream(self._send)
        await self._send({"type": "http.response.body", "body": data, "more_body": more})

    async def close(self, tail: bytes | None) -> None:
        """Send what is buffered and ``tail``, ending the response; ``None`` leaves the
        response unfinished (the server then drops the connection)."""
        if self._pump is not None:
            await self._pump
        data = b"".join(self._buf)
        self._buf.clear()
        if tail is None:
            await self._out(data, True)
        else:
            await self._out(data + tail, False)


async def _stream(run: Run, fmt: Format, send: Send, watch: DisconnectWatch) -> None:
    out = StreamWriter(send)
    try:
        async for choice, text, finished in run.events():
            if watch.disconnected:
                continue  # aborted; the engine winds the request down
            data = b"" if out.used else fmt.head()
            if text:
                data += fmt.delta(choice, text)
            if finished:
                data += fmt.finish(choice)
            await out.write(data)
        tail = fmt.tail()
    except EngineDisconnect:
        await out.close(None)
        return  # the server closes a response that was never finished
    except Exception as exc:
        err = _as_http_error(exc)
        if not out.used:
            await send_body(send, err.status, err.body())
            return
        tail = err.event() + DONE
    watch.done()
    await out.close(tail)


def _as_http_error(exc: Exception) -> HTTPError:
    if isinstance(exc, EngineError):
        return engine_error(exc)
    if isinstance(exc, HTTPError):
        return exc
    log.exception("generation failed", exc_info=exc)
    return EngineFailed(f"internal error: {type(exc).__name__}")


async def _collect(run: Run, fmt: Format, send: Send, watch: DisconnectWatch) -> None:
    try:
        async for _ in run.events():
            pass
    except EngineDisconnect:
        # promise a body that never comes: the connection drops mid-response
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"1000")]})
        return
    except Exception as exc:
        err = _as_http_error(exc)
        await send_body(send, err.status, err.body())
        return
    watch.done()
    if watch.disconnected:
        return
    await send_body(send, 200, fmt.body())

