"""A streamed request, advanced one worker read at a time.

The HTTP side drives a ``StreamRun``: ``run.step()`` turns everything the worker sent
since the last step into the client's events (SSE bytes, or chunk dicts), ``await
run.wait()`` waits for the worker's next read, ``await run.close()`` ends it (before
the end: aborts the request on the worker). No async generator sits between the
worker's socket and the client's: one wake-up, one synchronous step and one write per
worker read, however many tokens and messages it carried.

From the lean client a step's consecutive plain chunks of one choice come merged
(``grpcwire.decode_chunks``): their token ids go through the choice's fused
detokenizer + stop scanner in one call and leave as one content delta. A choice without a reasoning/tool parser is encoded
straight to SSE bytes (``ResponseShape.content_sse``); everything else (logprobs,
parsers, finishes, errors) takes the general per-event path. The text the client
receives is the same however the worker's messages were split or batched.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson

from smg.clients.grpc_types import Chunk, WorkerCallError
from smg.parsers.core import Delta
from smg.pipeline.backend import GrpcBackend
from smg.pipeline.prepare import Prepared
from smg.pipeline.responses import ResponseShape
from smg.pipeline.run import END, Attempt, logprobs_of, open_attempt

__all__ = ["StreamRun", "stream_events", "stream_sse"]

DONE = b"data: [DONE]\n\n"

log = logging.getLogger(__name__)


class StreamRun:
    """One streamed request on its worker. ``step()`` returns SSE bytes (``sse``) or a
    list of chunk dicts; ``finished`` is set by the step that produced the last of them
    (``[DONE]`` included); ``ok`` says it ended without a worker error, ``failed`` that
    the worker failed (neither: the client left early)."""

    def __init__(self, prep: Prepared, attempt: Attempt, state: Any = None, *, sse: bool = True) -> None:
        self.prep = prep
        self.attempt = attempt
        self.state = state
        self.sse = sse
        self.shape = ResponseShape(prep.kind, prep.rid, prep.runtime.model)
        self.finished = False
        self.ok = False
        self.failed = False
        self.wait = attempt.source.wait  # -> awaitable: the worker sent more (or ended)
        self._chat = prep.kind == "chat"
        self._want_lp = bool(prep.req.logprobs)
        self._role_sent = [not self._chat] * len(attempt.choices)
        self._echo = prep.kind == "text" and bool(prep.req.echo)
        self._closed = False
        self._write: Callable[[bytes], bool] | None = None
        self._held: bytes | None = None  # SSE bytes a read produced that the task sends

    def step(self) -> Any:
        held = self._held
        if held is not None:
            self._held = None
            if self.finished:
                return held
            out: list = [held]
        else:
            out = []
        att = self.attempt
        if att._deadlines is not None:  # a timeout watches it: the worker's silence ends here
            att.touch()
        try:
            if self._echo:
                self._echo = False
                for i in range(self.prep.req.n):
                    out.append(self._enc(self.shape.delta_chunk(i, Delta(content=self.prep.prompt_text))))
            source = att.source
            items = source.take()
            if len(items) == 1 and type(items[0]) is tuple:  # the usual read: one run of one choice
                self._run(*items[0], out)
            else:
                self._take(items, out)
            if source.ended or att.done:
                if not att.done:  # the stream ended with choices unfinished
                    self._events(att.take(END), out)
                if self.prep.req.include_usage:
                    out.append(self._enc(self.shape.usage_chunk(att.prompt_tokens, att.completion_tokens(),
                                                                att.cached_tokens)))
                self.ok = self.finished = True
        except WorkerCallError as exc:
            out.append(self._enc({"error": {"message": exc.client_message(), "type": "upstream_error", "code": exc.status}}))
            self.failed = self.finished = True
        if not self.sse:
            return out
        if self.finished:
            out.append(DONE)
        return b"".join(out)

    def push(self, write: Callable[[bytes], bool]) -> bool:
        """From now on, while the driver awaits ``wait()``, step inside the worker
        connection's reads and hand the SSE bytes to ``write`` (a synchronous chunk writer
        that returns False, writing nothing, when it cannot write now): no task wake-up
        per read. The driver is woken for what it must do itself: the end (its last bytes
        and ``[DONE]``, a worker error, a local stop, a bug in a step: an error event), and
        back-pressure (the held bytes come first in its next ``step()``, which it sends).
        False when the source cannot (not the lean client): nothing changes."""
        listen = getattr(self.attempt.source, "listen", None)
        if listen is None or not self.sse:
            return False
        self._write = write
        listen(self._on_read)
        return True

    def _on_read(self) -> bool:
        """The source's listener: True when this read's bytes went out (or there were none)."""
        if self.finished:
            return False
        try:
            body = self.step()
        except Exception:  # noqa: BLE001 - must not reach the connection's data_received
            log.exception("streamed request %s: step failed", self.prep.rid)
            self._held = self._enc({"error": {"message": "internal error while streaming",
                                              "type": "internal_error", "code": 500}}) + DONE
            self.finished = True  # not ``failed``: the worker is not to blame (close aborts there)
            return False
        if self.finished or (body and not self._write(body)):
            self._held = body
            return False
        return True

    async def close(self) -> None:
        """Release the worker (and tell the policy); before the end, abort the request."""
        if self._closed:
            return
        self._closed = True
        if self._write is not None:
            self._write = None
            self.attempt.source.listen(None)
        att = self.attempt
        att.release(self.state, True if self.ok else False if self.failed else None)
        try:
            await att.source.aclose()
        except Exception:  # noqa: BLE001 - leaving a stream never fails the response
            pass

    # -- one read's messages ---------------------------------------------------------------
    def _take(self, items: list, out: list) -> None:
        att = self.attempt
        want_lp = self._want_lp
        for item in items:
            if type(item) is tuple:  # a run of plain chunks of one choice (lean client)
                self._run(*item, out)
            elif type(item) is Chunk and (item.logprobs is None or not want_lp):
                self._run(item.index, item.token_ids, item.prompt_tokens, item.completion_tokens,
                          item.cached_tokens, None, out)
            else:
                self._events(att.take(item), out)
            if att.done:
                return

    def _run(self, index: int, ids: list[int], prompt: int, completion: int, cached: int,
             marks: list[int] | None, out: list) -> None:
        """New tokens of one choice: a plain choice straight to content SSE bytes."""
        att = self.attempt
        ch = att.choices[index]
        if not ch.plain:
            self._events(att.take_run(index, ids, prompt, completion, cached, marks), out)
            return
        if ch.stopped:
            return
        # Attempt.counts, inlined (the per-read path)
        if prompt:
            att.prompt_tokens = prompt
        if cached > att.cached_tokens:
            att.cached_tokens = cached
        att.completion[index] = completion
        if not self._role_sent[index]:
            self._role_sent[index] = True
            out.append(self._enc(self.shape.role_chunk(index)))
        text = ch.feed_text(ids)
        if text:
            out.append(self.shape.content_sse(index, text) if self.sse
                       else self.shape.delta_chunk(index, Delta(content=text)))
        if ch.stopped:  # a local stop
            if marks is not None:
                att.recount(index, len(ids), marks)
            self._events([(index, ch.finish("stop", None), None, True)], out)
            att.done = att.all_done()

    def _events(self, events: list, out: list) -> None:
        """The general path: (choice index, delta, logprobs, finished) events to chunks."""
        shape, enc = self.shape, self._enc
        for index, delta, lp, finished in events:
            if not self._role_sent[index]:
                self._role_sent[index] = True
                out.append(enc(shape.role_chunk(index)))
            lp = logprobs_of(self.prep, [lp]) if lp is not None and self._want_lp else None
            if self.sse and lp is None and not delta.reasoning and not delta.tool_calls:
                if delta.content:
                    out.append(shape.content_sse(index, delta.content))
            else:
                chunk = shape.delta_chunk(index, delta, lp)
                if chunk is not None:
                    out.append(enc(chunk))
            if finished:
                ch = self.attempt.choices[index]
                out.append(enc(shape.finish_chunk(index, self.attempt.finish_reason(ch), ch.matched_stop)))

    def _enc(self, event: dict[str, Any]) -> Any:
        return b"data: " + orjson.dumps(event) + b"\n\n" if self.sse else event


async def stream_sse(prep: Prepared, state: Any, backend: GrpcBackend) -> StreamRun:
    """A streamed request's run, producing SSE bytes. Errors before the worker's first
    message raise (the endpoint answers with a status; retryable ones were retried);
    later ones become one error event."""
    return StreamRun(prep, await open_attempt(prep, state, backend), state, sse=True)


async def stream_events(prep: Prepared, state: Any, backend: GrpcBackend) -> AsyncIterator[dict[str, Any]]:
    """The same as OpenAI chunk dicts, for callers that reshape them (SGLang /generate)."""
    run = StreamRun(prep, await open_attempt(prep, state, backend), state, sse=False)
    return _iterate(run)


async def _iterate(run: StreamRun) -> AsyncIterator[dict[str, Any]]:
    try:
        while True:
            for event in run.step():
                yield event
            if run.finished:
                return
            await run.wait()
    finally:
        await run.close()
