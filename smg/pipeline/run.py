"""Run one prepared request against the workers: retries, streaming, whole responses.

A worker that fails before anything reached the client is replaced by another (with
backoff), up to the retry budget; for whole (non-streamed) responses that holds until
the response is sent, since the client has seen nothing. Leaving the worker's stream
early (client gone, every choice stopped locally) cancels it and sends Abort.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import orjson

from smg.clients.grpc_types import Chunk, Complete, WorkerCallError
from smg.errors import NoHealthyWorker, SmgError, UpstreamError, UpstreamTimeout
from smg.parsers.core import Delta
from smg.parsers.validation import validate_response_format, validate_tool_calls
from smg.pipeline.backend import GrpcBackend
from smg.pipeline.choice import ChoiceStream
from smg.pipeline.pd import open_pair
from smg.pipeline.prepare import Prepared
from smg.pipeline.responses import ResponseShape
from smg.router import Worker

__all__ = ["stream_events", "whole_response"]


_END = object()  # the worker's stream ended


class _Attempt:
    """One worker's stream for a request, with per-choice processing."""

    def __init__(self, prep: Prepared, worker: Worker, stream: AsyncIterator[Any]) -> None:
        self.prep = prep
        self.worker = worker
        self.stream = stream
        req = prep.req
        stop_ids = prep.stop_token_ids()
        self.choices = [
            ChoiceStream(
                i, prep.runtime.table, stop=req.stop, stop_token_ids=stop_ids, visible_stops=req.no_stop_trim,
                min_tokens=req.min_tokens, skip_special_tokens=prep.skip_special_tokens,
                prompt_tail=prep.input_ids[-8:], parser=prep.parser(),
            )
            for i in range(req.n)
        ]
        self.completed: set[int] = set()
        self.prompt_tokens = len(prep.input_ids)
        self.cached_tokens = 0
        self.completion: dict[int, int] = {}
        self.done = False

    async def items(self, first: Any) -> AsyncIterator[tuple[int, Delta, Any, bool]]:
        """(choice index, delta, logprobs, choice finished) for everything the worker sends."""
        item = first
        while True:
            for event in self.take(item):
                yield event
            if self.done or item is _END:
                return  # leaving early aborts the worker's generation
            item = await self.next()

    async def next(self) -> Any:
        """The worker's next message, or ``_END`` when its stream ended."""
        try:
            return await self.stream.__anext__()
        except StopAsyncIteration:
            return _END

    def take(self, item: Any) -> list[tuple[int, Delta, Any, bool]]:
        """What one worker message (or ``_END``) means for the client: (choice index,
        delta, logprobs, choice finished) events in order. Sets ``done`` once every
        choice is finished, completed by the worker or stopped here."""
        if isinstance(item, Chunk):
            self._counts(item)
            ch = self.choices[item.index]
            if ch.stopped:
                return []
            out = [(item.index, ch.feed(item.token_ids), item.logprobs, False)]
            if ch.stopped:  # a local stop
                out.append((item.index, ch.finish("stop", None), None, True))
                self.done = self._all_done()
            return out
        if isinstance(item, Complete):
            self._counts(item)
            ch = self.choices[item.index]
            self.completed.add(item.index)
            out = []
            if not ch.stopped:
                if item.output_ids and ch.tokens == 0:  # a worker that sends only Complete
                    out.append((item.index, ch.feed(item.output_ids), item.logprobs, False))
                if not ch.stopped:
                    out.append((item.index, ch.finish(item.finish_reason, item.matched_stop), None, True))
                else:
                    out.append((item.index, ch.finish("stop", None), None, True))
            self.done = self._all_done()
            return out
        if item is _END:  # the stream ended with choices unfinished
            return [(ch.index, ch.finish("abort", None), None, True) for ch in self.choices if not ch.stopped]
        return []

    def _all_done(self) -> bool:
        """Every choice completed by the worker or stopped here (checked only when one
        of them changes, not per token)."""
        return all(c.index in self.completed or c.stopped_by_string for c in self.choices)

    def _counts(self, item: Chunk | Complete) -> None:
        self.prompt_tokens = item.prompt_tokens or self.prompt_tokens
        self.cached_tokens = max(self.cached_tokens, item.cached_tokens)
        self.completion[item.index] = item.completion_tokens

    def completion_tokens(self) -> int:
        return sum(max(self.completion.get(c.index, 0), c.tokens) for c in self.choices)

    def finish_reason(self, ch: ChoiceStream) -> str:
        reason = ch.finish_reason or "stop"
        if reason == "stop" and ch.result()["calls"]:
            return "tool_calls"
        return reason


async def _open(prep: Prepared, state: Any, backend: GrpcBackend, tried: list[str], attempt: int) -> tuple[_Attempt, Any]:
    pd = getattr(state, "pd", None)
    if pd is not None:  # prefill/decode disaggregation: a pair, the decode stream drives
        worker, pair_stream, first = await open_pair(prep, pd, backend, tried, state.pd_metrics)
        return _Attempt(prep, worker, pair_stream), first
    worker = state.router.select(prep.info, exclude=tried)
    if worker is None:
        raise NoHealthyWorker(f"no healthy worker serves model {prep.runtime.model!r}")
    tried.append(worker.id)
    client = backend.client(worker.url)
    worker.begin()
    stream = client.generate(_params(prep))
    try:
        first = await stream.__anext__()
    except BaseException:
        worker.end(False)
        await stream.aclose()
        raise
    return _Attempt(prep, worker, stream), first


def _params(prep: Prepared) -> Any:
    """The worker request. A whole response without stop strings or logprobs asks the
    worker for one final message instead of a chunk per token (nothing could stop it
    early, and per-token chunks cost the gateway a decode and a feed each)."""
    params = prep.params()
    req = prep.req
    if not req.stream and not req.stop and not req.logprobs:
        params.stream = False
    return params


async def _with_retries(prep: Prepared, state: Any, backend: GrpcBackend, body):
    """Run ``body(attempt, first)`` on a worker, retrying on retryable worker failures."""
    tried: list[str] = []
    attempts = max(1, state.retry.max_retries)
    for n in range(attempts):
        try:
            attempt, first = await _open(prep, state, backend, tried, n)
        except WorkerCallError as exc:
            if not exc.retryable or n == attempts - 1:
                raise _http_error(exc) from None
            await asyncio.sleep(state.retry.delay(n))
            continue
        try:
            return await body(attempt, first)
        except WorkerCallError as exc:
            attempt.worker.end(False)
            if not exc.retryable or n == attempts - 1 or prep.req.stream:
                raise _http_error(exc) from None
            await asyncio.sleep(state.retry.delay(n))
        finally:
            await attempt.stream.aclose()
    raise UpstreamError("all workers failed")


def _completed(state: Any, attempt: _Attempt, prep: Prepared, ok: bool) -> None:
    """Tell the policy the request finished (policies that learn from completions)."""
    on_complete = getattr(state.router, "on_complete", None)
    if on_complete is not None:
        on_complete(attempt.worker, prep.info, ok)


def _http_error(exc: WorkerCallError) -> SmgError:
    return UpstreamTimeout(exc.message) if exc.status == 504 else UpstreamError(exc.message)


async def whole_response(prep: Prepared, state: Any, backend: GrpcBackend) -> dict[str, Any]:
    shape = ResponseShape(prep.kind, prep.rid, prep.runtime.model)

    async def body(attempt: _Attempt, first: Any) -> dict[str, Any]:
        lps: dict[int, list] = {i: [] for i in range(prep.req.n)}
        async for index, _delta, lp, _finished in attempt.items(first):
            if lp is not None and prep.req.logprobs:
                lps[index].append(lp)
        attempt.worker.end(True)
        _completed(state, attempt, prep, True)
        choices = []
        for ch in attempt.choices:
            r = ch.result()
            if prep.kind == "chat":
                problem = None
                if prep.tools and r["calls"]:
                    problem = validate_tool_calls(r["calls"], prep.req.tools, prep.req.tool_choice)
                elif prep.tools and prep.req.tool_choice not in (None, "auto", "none"):
                    problem = validate_tool_calls([], prep.req.tools, prep.req.tool_choice)
                elif prep.req.response_format:
                    problem = validate_response_format(r["content"], prep.req.response_format)
                if problem:
                    raise UpstreamError(f"choice {ch.index}: {problem}")
            content = r["content"]
            if prep.kind == "text" and prep.req.echo:
                content = prep.prompt_text + content
            choices.append({
                "index": ch.index, "content": content, "reasoning": r["reasoning"], "calls": r["calls"],
                "finish_reason": attempt.finish_reason(ch), "matched_stop": ch.matched_stop,
                "logprobs": _logprobs(prep, lps[ch.index]) if prep.req.logprobs else None,
            })
        return shape.whole(choices, attempt.prompt_tokens, attempt.completion_tokens(), attempt.cached_tokens)

    return await _with_retries(prep, state, backend, body)


async def stream_events(prep: Prepared, state: Any, backend: GrpcBackend, *,
                        sse: bool = False) -> AsyncIterator[Any]:
    """OpenAI chunks for a streamed request. Errors before the first chunk raise (the
    endpoint answers with a status); later ones become one error event. With ``sse``
    the events come encoded (``data: ...``), ending with ``data: [DONE]``."""
    shape = ResponseShape(prep.kind, prep.rid, prep.runtime.model)
    tried: list[str] = []
    attempts = max(1, state.retry.max_retries)
    for n in range(attempts):
        try:
            attempt, first = await _open(prep, state, backend, tried, n)
            break
        except WorkerCallError as exc:
            if not exc.retryable or n == attempts - 1:
                raise _http_error(exc) from None
            await asyncio.sleep(state.retry.delay(n))
    return _events(prep, attempt, first, shape, sse, state)


async def _events(prep: Prepared, attempt: _Attempt, first: Any, shape: ResponseShape,
                  sse: bool = False, state: Any = None) -> AsyncIterator[Any]:
    started: set[int] = set()
    ok = False
    chat = prep.kind == "chat"
    want_lp = prep.req.logprobs
    encode = _sse if sse else _same
    try:
        if prep.kind == "text" and prep.req.echo:
            for i in range(prep.req.n):
                yield encode(shape.delta_chunk(i, Delta(content=prep.prompt_text)))
        item, stream = first, attempt.stream
        while True:  # the worker's messages straight from its stream: no generator in between
            for index, delta, lp, finished in attempt.take(item):
                if chat and index not in started:
                    started.add(index)
                    yield encode(shape.role_chunk(index))
                if sse and (lp is None or not want_lp) and not delta.reasoning and not delta.tool_calls:
                    if delta.content:  # the per-token case: encoded without building the chunk
                        yield shape.content_sse(index, delta.content)
                else:
                    chunk = shape.delta_chunk(index, delta, _logprobs(prep, [lp]) if lp is not None and want_lp else None)
                    if chunk is not None:
                        yield encode(chunk)
                if finished:
                    ch = attempt.choices[index]
                    yield encode(shape.finish_chunk(index, attempt.finish_reason(ch), ch.matched_stop))
            if attempt.done or item is _END:
                break  # leaving early aborts the worker's generation
            try:
                item = await stream.__anext__()
            except StopAsyncIteration:
                item = _END
        if prep.req.include_usage:
            yield encode(shape.usage_chunk(attempt.prompt_tokens, attempt.completion_tokens(), attempt.cached_tokens))
        ok = True
    except WorkerCallError as exc:
        yield encode({"error": {"message": exc.message, "type": "upstream_error", "code": exc.status}})
    finally:
        attempt.worker.end(ok)
        if state is not None:
            _completed(state, attempt, prep, ok)
        with contextlib.suppress(Exception):
            await attempt.stream.aclose()
    if sse:
        yield _DONE


_DONE = b"data: [DONE]\n\n"


def _sse(event: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(event) + b"\n\n"


def _same(event: Any) -> Any:
    return event


def _logprobs(prep: Prepared, items: list) -> Any:
    tok = prep.runtime.tokenizer
    content = []
    for lp in items:
        for k, (tid, value) in enumerate(zip(lp.token_ids, lp.token_logprobs)):
            text = tok.decode([tid], skip_special_tokens=False)
            top = []
            if k < len(lp.top):
                values, ids = lp.top[k]
                top = [{"token": tok.decode([t], skip_special_tokens=False), "logprob": v} for v, t in zip(values, ids)]
            content.append({"token": text, "logprob": value, "bytes": list(text.encode()), "top_logprobs": top})
    if prep.kind == "chat":
        return {"content": content}
    return {"tokens": [c["token"] for c in content], "token_logprobs": [c["logprob"] for c in content],
            "top_logprobs": [{t["token"]: t["logprob"] for t in c["top_logprobs"]} for c in content]}
