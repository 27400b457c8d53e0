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

from typing import Protocol

from smg.engine.http.asgi import DisconnectWatch, Receive, Send, send_body, start_stream
from smg.engine.http.errors import (
    BadRequest,
    EngineFailed,
    HTTPError,
    NotFound,
    Unavailable,
)
from smg.engine.http.runner import Choice, Run
from smg.engine.types import EngineDisconnect, EngineError

__all__ = ["Format", "engine_error", "respond"]

DONE = b"data: [DONE]\n\n"


class Format(Protocol):
    """Bytes of one endpoint's responses (see ``openai_format``, ``generate``)."""

    def head(self) -> bytes: ...  # sent before the first event of a stream

    def delta(self, choice: Choice, text: str) -> bytes: ...

    def finish(self, choice: Choice) -> bytes: ...

    def tail(self) -> bytes: ...  # ends the stream (usage, [DONE])

    def body(self) -> bytes: ...  # the whole non-streamed response


def engine_error(exc: EngineError) -> HTTPError:
    cls = {400: BadRequest, 404: NotFound, 503: Unavailable}.get(exc.status_code, EngineFailed)
    err = cls(exc.message)
    if cls is EngineFailed and exc.status_code != 500:
        err.status = exc.status_code  # type: ignore[misc]
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


async def _stream(run: Run, fmt: Format, send: Send, watch: DisconnectWatch) -> None:
    started = False
    try:
        async for choice, text in run.events():
            if watch.disconnected:
                continue  # aborted; the engine winds the request down
            out = b""
            if not started:
                out = fmt.head()
            if text:
                out += fmt.delta(choice, text)
            if choice.finish_reason is not None:
                out += fmt.finish(choice)
            if not started:
                await start_stream(send)
                started = True
            await send({"type": "http.response.body", "body": out, "more_body": True})
        tail = fmt.tail()
    except EngineDisconnect:
        if not started:
            await start_stream(send)
        return  # the server closes a response that was never finished
    except EngineError as exc:
        err = engine_error(exc)
        if not started:
            await send_body(send, err.status, err.body())
            return
        tail = err.event() + DONE
    watch.done()
    if not started:
        await start_stream(send)
    await send({"type": "http.response.body", "body": tail})


async def _collect(run: Run, fmt: Format, send: Send, watch: DisconnectWatch) -> None:
    try:
        async for _ in run.events():
            pass
    except EngineDisconnect:
        # promise a body that never comes: the connection drops mid-response
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"1000")]})
        return
    except EngineError as exc:
        err = engine_error(exc)
        await send_body(send, err.status, err.body())
        return
    watch.done()
    if watch.disconnected:
        return
    await send_body(send, 200, fmt.body())

