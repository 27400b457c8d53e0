"""Run one prepared request against the workers: retries, streaming, whole responses.

A worker that fails before anything reached the client is replaced by another (with
backoff), up to the retry budget; for whole (non-streamed) responses that holds until
the response is sent, since the client has seen nothing. Leaving the worker's stream
early (client gone, every choice stopped locally) cancels it and sends Abort.

A worker's stream is read a batch at a time (``take`` what arrived, ``wait`` for more:
``smg.clients.grpc.ItemStream``); streamed responses are produced from it by
``smg.pipeline.stream``.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator
from typing import Any

from smg.clients.deadlines import Deadlines
from smg.clients.grpc import ItemStream
from smg.clients.grpc_types import Chunk, Complete, WorkerCallError
from smg.errors import NoHealthyWorker, SmgError, UpstreamError, UpstreamTimeout, WorkerRefused
from smg.parsers.core import Delta
from smg.parsers.validation import validate_response_format, validate_tool_calls
from smg.pipeline.backend import GrpcBackend
from smg.pipeline.choice import ChoiceStream
from smg.pipeline.pd import open_pair
from smg.pipeline.prepare import Prepared
from smg.pipeline.responses import ResponseShape
from smg.router import Worker

__all__ = ["END", "Attempt", "logprobs_of", "open_attempt", "whole_response"]


END = object()  # the worker's stream ended


class Attempt:
    """One worker's stream for a request, with per-choice processing."""

    def __init__(self, prep: Prepared, worker: Worker, source: Any) -> None:
        self.prep = prep
        self.worker = worker
        self.source = source  # ItemStream's interface: take(), ended, wait(), aclose()
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
        self._released = False
        self._deadlines: Deadlines | None = None  # while a timeout watches this attempt
        self._deadline = 0.0  # the request's own deadline
        self._idle = 0.0  # the longest silence between two reads (0: none)
        self._first = 0.0  # the first-byte limit in force, for the message
        self._clock = None  # the loop's time(), once watched

    # -- timeouts (swept by one timer: smg.clients.deadlines) -------------------------------
    def watch(self, deadlines: Deadlines, deadline: float, first_byte: float, idle: float) -> None:
        """Fail the worker's stream at ``deadline`` (the request's), and if its first
        message is not in within ``first_byte`` seconds, or (after it) a read is more than
        ``idle`` seconds after the one before. Only a source that can ``expire`` is watched."""
        if getattr(self.source, "expire", None) is None:
            return
        loop = asyncio.get_running_loop()
        self._deadlines, self._deadline, self._idle, self._first = deadlines, deadline, idle, first_byte
        self._clock = loop.time
        deadlines.add(self, min(deadline, loop.time() + first_byte) if first_byte else deadline, loop)

    def touch(self) -> None:
        """The worker sent something: the silence limit starts again (one dict store)."""
        deadlines = self._deadlines
        if deadlines is not None:
            self._first = 0.0
            idle = self._idle
            deadlines.pending[self] = min(self._deadline, self._clock() + idle) if idle else self._deadline

    def unwatch(self) -> None:
        deadlines = self._deadlines
        if deadlines is not None:
            self._deadlines = None
            deadlines.pending.pop(self, None)

    def _timed_out(self) -> None:
        """A deadline passed: the stream fails with a 504 (retryable while nothing came)
        and the worker is ejected at once (outlier ejection: its breaker opens)."""
        self.unwatch()
        first = self._first
        what = f"no first token within {first:g} s" if first else "request timed out or stalled between tokens"
        got_first = not first
        self.source.expire(WorkerCallError(f"worker {self.worker.id}: {what}", status=504,
                                           retryable=not got_first and deadlines_now() < self._deadline))
        self.worker.breaker.trip()

    async def items(self) -> AsyncIterator[tuple[int, Delta, Any, bool]]:
        """(choice index, delta, logprobs, choice finished) for everything the worker sends."""
        source = self.source
        while True:
            if self._idle:
                self.touch()
            for item in source.take():
                for event in self.take(item):
                    yield event
                if self.done:
                    return  # leaving early aborts the worker's generation
            if source.ended:
                for event in self.take(END):
                    yield event
                return
            await source.wait()

    def take(self, item: Any) -> list[tuple[int, Delta, Any, bool]]:
        """What one worker message (or ``END``) means for the client: (choice index,
        delta, logprobs, choice finished) events in order. Sets ``done`` once every
        choice is finished, completed by the worker or stopped here. Plain chunks may
        come as a run (a tuple: ``take_run``'s arguments)."""
        if type(item) is tuple:
            return self.take_run(*item)
        if isinstance(item, Chunk):
            self.counts(item.index, item.prompt_tokens, item.completion_tokens, item.cached_tokens)
            return self.feed(item.index, item.token_ids, item.logprobs)
        if isinstance(item, Complete):
            self.counts(item.index, item.prompt_tokens, item.completion_tokens, item.cached_tokens)
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
            self.done = self.all_done()
            return out
        if item is END:  # the stream ended with choices unfinished
            return [(ch.index, ch.finish("abort", None), None, True) for ch in self.choices if not ch.stopped]
        return []

    def take_run(self, index: int, token_ids: list[int], prompt: int, completion: int, cached: int,
                 marks: list[int] | None) -> list[tuple[int, Delta, Any, bool]]:
        """A run of plain chunks of one choice (``grpcwire.decode_chunks``): their ids,
        the counts they leave, per message ``marks`` (where its ids end, its completion
        count) or None for a single message."""
        self.counts(index, prompt, completion, cached)
        ch = self.choices[index]
        if ch.stopped:
            return []
        out = self.feed(index, token_ids, None)
        if ch.stopped and marks is not None:
            self.recount(index, len(token_ids), marks)
        return out

    def recount(self, index: int, n_ids: int, marks: list[int]) -> None:
        """A local stop inside a run of ``n_ids`` ids: the choice keeps the counts of the
        message that held the stopping token, as if each message had come alone."""
        ch = self.choices[index]
        before = ch.tokens - n_ids
        stop_at = ch.consumed - before  # the stopping token's place in the run's ids
        for k in range(0, len(marks), 2):
            if marks[k] >= stop_at:
                self.completion[index] = marks[k + 1]
                ch.tokens = before + marks[k]
                return

    def feed(self, index: int, token_ids: list[int], logprobs: Any) -> list[tuple[int, Delta, Any, bool]]:
        """Events of new tokens for one choice (a local stop finishes it)."""
        ch = self.choices[index]
        if ch.stopped:
            return []
        out = [(index, ch.feed(token_ids), logprobs, False)]
        if ch.stopped:  # a local stop
            out.append((index, ch.finish("stop", None), None, True))
            self.done = self.all_done()
        return out

    def all_done(self) -> bool:
        """Every choice completed by the worker or stopped here (checked only when one
        of them changes, not per token)."""
        return all(c.index in self.completed or c.stopped_by_string for c in self.choices)

    def counts(self, index: int, prompt: int, completion: int, cached: int) -> None:
        """A message's cumulative counts for choice ``index``; a choice stopped here keeps
        those of the message that stopped it."""
        if self.choices[index].stopped:
            return
        if prompt:
            self.prompt_tokens = prompt
        if cached > self.cached_tokens:
            self.cached_tokens = cached
        self.completion[index] = completion

    def release(self, state: Any, outcome: bool | None) -> None:
        """The worker is done with this request (once): ``outcome`` True when it answered,
        False when it failed, None when the gateway left early (client gone, cancelled),
        which is not the worker's fault. The policy hears of it too."""
        if self._released:
            return
        self._released = True
        self.unwatch()
        self.worker.end(outcome)
        on_complete = getattr(state.router, "on_complete", None) if state is not None else None
        if on_complete is not None:
            on_complete(self.worker, self.prep.info, outcome is not False)

    def completion_tokens(self) -> int:
        return sum(max(self.completion.get(c.index, 0), c.tokens) for c in self.choices)

    def finish_reason(self, ch: ChoiceStream) -> str:
        reason = ch.finish_reason or "stop"
        if reason == "stop" and ch.result()["calls"]:
            return "tool_calls"
        return reason


# the timeouts of every attempt in flight: one timer per event loop
_DEADLINES: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Deadlines] = weakref.WeakKeyDictionary()


def _deadlines() -> Deadlines:
    loop = asyncio.get_running_loop()
    deadlines = _DEADLINES.get(loop)
    if deadlines is None:
        deadlines = _DEADLINES[loop] = Deadlines(tick=0.05)
    return deadlines


def deadlines_now() -> float:
    return asyncio.get_running_loop().time()


def _limits(state: Any) -> tuple[float, float, float]:
    """(request timeout, first-byte timeout, inter-token timeout) from the config (0: none)."""
    config = getattr(state, "config", None)
    if config is None:
        return 0.0, 0.0, 0.0
    rel = config.reliability
    return config.server.request_timeout_secs, rel.first_byte_timeout_secs, rel.inter_token_timeout_secs


def _deadline(state: Any) -> float:
    """When the request must be over (``--request-timeout-secs`` from now; inf: never)."""
    total = _limits(state)[0]
    return deadlines_now() + total if total else float("inf")


async def _open(prep: Prepared, state: Any, backend: GrpcBackend, tried: list[str],
                deadline: float = float("inf")) -> Attempt:
    """A worker (or prefill/decode pair) running ``prep``, its first message received."""
    pd = getattr(state, "pd", None)
    if pd is not None:  # prefill/decode disaggregation: a pair, the decode stream drives
        worker, pair_stream, first = await open_pair(prep, pd, backend, tried, state.pd_metrics)
        return Attempt(prep, worker, ItemStream(pair_stream, (first,)))
    worker = state.router.select(prep.info, exclude=tried, retry_tried=False)
    if worker is None:
        if tried:
            raise _NoneLeft
        raise NoHealthyWorker(f"no healthy worker serves model {prep.runtime.model!r}")
    tried.append(worker.id)
    client = backend.client(worker.url)
    worker.begin()
    source = None
    attempt = None
    try:
        opener = getattr(client, "stream", None)  # batched reads; else over generate()
        params = _params(prep)
        source = await opener(params) if opener is not None else ItemStream(client.generate(params))
        attempt = Attempt(prep, worker, source)
        _, first_byte, idle = _limits(state)
        if deadline != float("inf") or first_byte or idle:
            # a whole answer in one message (params.stream False) has no reads in between
            attempt.watch(_deadlines(), deadline, first_byte if params.stream else 0.0, idle if params.stream else 0.0)
        await source.first()
        attempt.touch()
    except WorkerCallError as exc:
        if attempt is not None:
            attempt.unwatch()
        worker.end(False if exc.worker_fault else None)
        if source is not None:
            await source.aclose()
        raise
    except BaseException:  # cancelled (client gone), or a bug here: not the worker's fault
        if attempt is not None:
            attempt.unwatch()
        worker.end(None)
        if source is not None:
            await source.aclose()
        raise
    return attempt


class _NoneLeft(Exception):
    """Every worker that could take the request was tried (each at most once)."""


async def open_attempt(prep: Prepared, state: Any, backend: GrpcBackend) -> Attempt:
    """``_open`` with retries on retryable failures before the first message."""
    tried: list[str] = []
    attempts = max(1, state.retry.max_retries)
    last: WorkerCallError | None = None
    deadline = _deadline(state)
    for n in range(attempts):
        try:
            return await _open(prep, state, backend, tried, deadline)
        except WorkerCallError as exc:
            last = exc
            await _before_retry(state, exc, n, attempts)
        except _NoneLeft:
            break
    raise _http_error(last) if last is not None else UpstreamError("all workers failed")


async def _before_retry(state: Any, exc: WorkerCallError, n: int, attempts: int, final: bool = False) -> None:
    """Raise ``exc`` as an HTTP error when attempt ``n`` may not be retried; else back off."""
    if final or not exc.retryable or n == attempts - 1:
        raise _http_error(exc) from None
    await asyncio.sleep(state.retry.delay(n))


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
    """Run ``body(attempt)`` on a worker, retrying on retryable worker failures."""
    tried: list[str] = []
    attempts = max(1, state.retry.max_retries)
    last: WorkerCallError | None = None
    deadline = _deadline(state)
    for n in range(attempts):
        try:
            attempt = await _open(prep, state, backend, tried, deadline)
        except WorkerCallError as exc:
            last = exc
            await _before_retry(state, exc, n, attempts)
            continue
        except _NoneLeft:
            break
        try:
            return await body(attempt)
        except WorkerCallError as exc:
            last = exc
            attempt.release(state, False if exc.worker_fault else None)
            await _before_retry(state, exc, n, attempts, final=prep.req.stream)
        except BaseException:
            attempt.release(state, None)
            raise
        finally:
            await attempt.source.aclose()
    raise _http_error(last) if last is not None else UpstreamError("all workers failed")


def _http_error(exc: WorkerCallError) -> SmgError:
    """The client's error for a worker's: its refusal of the request (INVALID_ARGUMENT...)
    is the client's 4xx with the worker's message; a timeout a 504; anything else a 502."""
    status, message = exc.status, exc.client_message()
    if status == 504:
        return UpstreamTimeout(message)
    if 400 <= status < 500 or status == 501:
        return WorkerRefused(message, status)
    return UpstreamError(message)


async def whole_response(prep: Prepared, state: Any, backend: GrpcBackend) -> dict[str, Any]:
    shape = ResponseShape(prep.kind, prep.rid, prep.runtime.model)

    async def body(attempt: Attempt) -> dict[str, Any]:
        lps: dict[int, list] = {i: [] for i in range(prep.req.n)}
        async for index, _delta, lp, _finished in attempt.items():
            if lp is not None and prep.req.logprobs:
                lps[index].append(lp)
        attempt.release(state, True)
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
                "logprobs": logprobs_of(prep, lps[ch.index]) if prep.req.logprobs else None,
            })
        return shape.whole(choices, attempt.prompt_tokens, attempt.completion_tokens(), attempt.cached_tokens)

    return await _with_retries(prep, state, backend, body)


def logprobs_of(prep: Prepared, items: list) -> Any:
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
