"""The proxy endpoints: route one request to a worker and relay its answer as it comes.

For ``/v1/chat/completions``, ``/v1/completions``, ``/generate`` and ``/v1/embeddings``:

1. read the body and parse just enough of it to route (:mod:`smg.protocol`);
2. pick a worker with ``smg.router`` and POST the original bytes to the same path on it;
3. a connection error, a timeout or a retryable status (408, 429, 5xx) before any byte
   reached the client is retried on a worker not yet tried, after a backoff;
4. otherwise the worker's status, headers and body go to the client: a sized body in one
   piece, an SSE or chunked body chunk by chunk as it arrives.

``worker.begin()`` / ``worker.end(success)`` bracket every attempt. When the client goes
away, the upstream response is closed, which aborts the request on the worker.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

import orjson

from starlette.types import Receive, Scope, Send

from smg.clients.http import UpstreamResponse, forward_headers, response_headers
from smg.clients.http1 import UpstreamProtocolError
from smg.errors import ModelNotFound, NoHealthyWorker, SmgError, UpstreamError, UpstreamTimeout, send_error
from smg.http.middleware import random_hex
from smg.http.pd_body import PD_PATHS
from smg.http.sse import DONE, EventFramer, error_event, is_event_stream
from smg.http.state import AppState
from smg.protocol.routing import PARSERS, RoutingFields
from smg.router import RETRYABLE_STATUS, RequestInfo, Worker

__all__ = ["ProxyEndpoint"]

log = logging.getLogger(__name__)

_UPSTREAM_ERRORS = (OSError,)  # UpstreamConnectionError and socket errors


class _ClientGone(Exception):
    """The client disconnected before its request body was complete."""


@dataclass(slots=True)
class _Answer:
    """A worker's retryable error answer, kept in case no other worker is left."""

    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes


class _Exchange:
    """One client request in flight: what every attempt needs."""

    __slots__ = ("state", "path", "send", "info", "body", "headers", "finished", "disconnected",
                 "responded", "watcher", "receive", "task", "failed_on", "answered")

    def __init__(self, state: AppState, path: str, send: Send) -> None:
        self.state = state
        self.path = path
        self.send = send
        self.info: RequestInfo = _NO_INFO
        self.body = b""
        self.headers: dict[str, str] = {}
        self.finished = False  # no more client messages matter
        self.disconnected = False  # the client went away before the answer was complete
        self.responded = False  # http.response.start was sent
        self.watcher: asyncio.Task | None = None
        self.receive: Receive | None = None  # for the watcher, with the task it would cancel
        self.task: asyncio.Task | None = None
        self.failed_on: set[str] | None = None  # workers this request counted a failure against
        self.answered: list[str] | None = None  # workers that answered (or timed out): not asked again

    def done(self, worker: Worker, success: bool | None) -> None:
        if success is False:  # a request counts at most once against a worker's breaker
            failed_on = self.failed_on
            if failed_on is None:
                failed_on = self.failed_on = set()
            elif worker.id in failed_on:
                success = None
            failed_on.add(worker.id)
        worker.end(success)
        self.state.router.on_complete(worker, self.info, success is not False)

    def no_retry_on(self, worker: Worker) -> None:
        """``worker`` answered this request (or took too long): retries go elsewhere. One
        that could not be reached may be tried again (nothing saw the request there)."""
        if self.answered is None:
            self.answered = []
        self.answered.append(worker.id)


_NO_INFO = RequestInfo()

# The routes whose event streams end with ``data: [DONE]`` (OpenAI chat and completions,
# SGLang /generate); others (Responses, Anthropic Messages) end with an event of their own.
DONE_PATHS = frozenset({"/v1/chat/completions", "/v1/completions", "/generate"})

# A request still in flight after this long (up to twice as long) gets a task watching
# for the client to go away; quicker ones never pay for it.
WATCH_AFTER_SECS = 0.05


class _Watchers:
    """Starts the disconnect watchers from one periodic timer, for the requests in flight
    for a while (a timer per request would cost more than most requests' own work)."""

    __slots__ = ("loop", "pending", "_handle")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.pending: dict[_Exchange, float] = {}  # exchange -> when it started
        self._handle: asyncio.TimerHandle | None = None

    def add(self, ex: _Exchange) -> None:
        self.pending[ex] = self.loop.time()
        if self._handle is None:
            self._handle = self.loop.call_later(WATCH_AFTER_SECS, self._sweep)

    def _sweep(self) -> None:
        pending = self.pending
        cutoff = self.loop.time() - WATCH_AFTER_SECS
        for ex in [ex for ex, started in pending.items() if started <= cutoff]:
            del pending[ex]
            if not ex.finished:
                ex.watcher = self.loop.create_task(_watch_disconnect(ex))
        self._handle = self.loop.call_later(WATCH_AFTER_SECS, self._sweep) if pending else None


class ProxyEndpoint:
    """ASGI endpoint proxying ``path`` (one of :data:`smg.protocol.PARSERS`). It renders
    its own errors, so it can run outside Starlette's routing and exception middleware."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.parse = PARSERS[path]
        self._watchers: _Watchers | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        state: AppState = scope["app"].state.smg
        started = time.perf_counter()
        state.metrics.request(self.path)
        ex = _Exchange(state, self.path, send)
        status = 499
        try:
            status = await self._handle(ex, scope, receive)
        except SmgError as exc:
            status = exc.status_code
            if ex.responded:
                raise
            ex.responded = True
            await send_error(send, exc)
        finally:
            state.metrics.response(self.path, status, time.perf_counter() - started)

    async def _handle(self, ex: _Exchange, scope: Scope, receive: Receive) -> int:
        try:
            body = await _read_body(receive)
        except _ClientGone:
            return 499
        fields = self.parse(body)
        headers = forward_headers(scope["headers"])
        rid = scope.get("smg.request_id")
        if rid is not None:
            if not scope.get("smg.request_id_made"):
                # the client's id, made unique towards the worker (as in gRPC mode): two
                # requests reusing one trace id must not collide in the worker's request ids
                rid = f"{rid}-{random_hex()}"
            headers["x-request-id"] = rid
        _check_model(ex.state, fields)
        ex.info = RequestInfo(fields.text, fields.token_ids, headers, fields.model, fields.user)
        ex.body = body
        ex.headers = headers
        task = ex.task = asyncio.current_task()
        assert task is not None
        ex.receive = receive
        watchers = self._watchers
        loop = asyncio.get_running_loop()
        if watchers is None or watchers.loop is not loop:
            watchers = self._watchers = _Watchers(loop)
        watchers.add(ex)
        try:
            pd = ex.state.pd_http
            if pd is not None and self.path in PD_PATHS:
                return await pd.route(ex)
            return await _route(ex)
        except asyncio.CancelledError:
            if not ex.disconnected:
                raise
            task.uncancel()
            return 499
        finally:
            ex.finished = True
            watchers.pending.pop(ex, None)
            if ex.watcher is not None:
                ex.watcher.cancel()


async def _read_body(receive: Receive) -> bytes:
    message = await receive()
    if message["type"] != "http.request":
        raise _ClientGone
    body = message.get("body", b"")
    if not message.get("more_body", False):
        return body
    chunks = [body]
    while True:
        message = await receive()
        if message["type"] != "http.request":
            raise _ClientGone
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _watch_disconnect(ex: _Exchange) -> None:
    receive, task = ex.receive, ex.task
    assert receive is not None and task is not None
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            if not ex.finished:
                ex.disconnected = True
                task.cancel()
            return


def _check_model(state: AppState, fields: RoutingFields) -> None:
    model = fields.model
    if model is None:
        return
    workers = state.registry.all()
    if workers and not any(w.serves(model) for w in workers):
        raise ModelNotFound(f"The model '{model}' does not exist", param="model")


async def _route(ex: _Exchange) -> int:
    """Try workers until one answers; return the status sent to the client."""
    state = ex.state
    tried: list[str] = []
    failure: SmgError | None = None
    answer: _Answer | None = None
    for attempt in range(state.retry.attempts):
        worker = state.router.select(ex.info, exclude=tried, retry_tried=False)
        if worker is None and tried:  # every one tried: one that was unreachable again
            worker = state.router.select(ex.info, exclude=ex.answered or (), retry_tried=False)
        if worker is None:
            break
        if attempt:
            state.metrics.retry()
            await asyncio.sleep(state.retry.delay(attempt - 1))
        tried.append(worker.id)
        outcome = await _attempt(ex, worker)
        if isinstance(outcome, int):
            return outcome
        if isinstance(outcome, _Answer):
            answer, failure = outcome, None
        else:
            failure, answer = outcome, None
    if not tried:
        model = f" for model '{ex.info.model}'" if ex.info.model else ""
        raise NoHealthyWorker(f"no healthy worker available{model}")
    if len(tried) == state.retry.attempts:
        state.metrics.exhausted()
    if answer is not None:
        await _send_whole(ex, answer.status, answer.headers, answer.body)
        return answer.status
    assert failure is not None
    raise failure


async def _attempt(ex: _Exchange, worker: Worker) -> int | _Answer | SmgError:
    """One try on ``worker``: the status relayed, a retryable answer, or the failure."""
    state = ex.state
    worker.begin()
    try:
        resp = await state.client.send(worker.url + ex.path, ex.body, ex.headers)
    except asyncio.TimeoutError:
        return _timed_out(ex, worker)
    except UpstreamProtocolError as exc:  # it answered, with garbage: not asked again
        ex.no_retry_on(worker)
        return _failed(ex, worker, "garbage", "sent an answer that is not HTTP", exc)
    except _UPSTREAM_ERRORS as exc:
        return _failed(ex, worker, "connect", "could not be reached", exc)
    except asyncio.CancelledError:
        ex.done(worker, None)
        raise
    ex.no_retry_on(worker)
    if resp.status in RETRYABLE_STATUS or (
        resp.content_length is not None and not is_event_stream(resp.content_type)
    ):
        return await _relay_whole(ex, worker, resp)
    return await _relay_stream(ex, worker, resp)


def _failed(ex: _Exchange, worker: Worker, kind: str, what: str, exc: BaseException | None = None,
            error: type[SmgError] = UpstreamError) -> SmgError:
    """Count a failure of ``worker`` and make the client's error. The client's message
    names the worker by its id, never its URL (which may carry credentials and is the
    operator's business); the URL and the cause go to the log."""
    ex.state.metrics.worker_error(worker, kind)
    ex.done(worker, False)
    log.warning("worker %s %s%s", worker.url, what, f": {exc!r}" if exc is not None else "")
    return error(f"worker {worker.id} {what}")


def _timed_out(ex: _Exchange, worker: Worker) -> SmgError:
    """A worker that did not answer (or stopped sending) in time: a failure, and it is
    taken out of rotation at once (its breaker opens: outlier ejection) rather than at the
    next health probe; it is not asked again for this request."""
    ex.no_retry_on(worker)
    error = _failed(ex, worker, "timeout", "timed out", error=UpstreamTimeout)
    worker.breaker.trip()
    return error


def _outcome(status: int) -> bool | None:
    if status < 400:
        return True
    return False if status in RETRYABLE_STATUS else None


async def _relay_whole(ex: _Exchange, worker: Worker, resp: UpstreamResponse) -> int | _Answer | SmgError:
    """A sized (or error) body: read it all, then answer in one piece. A success whose
    body is not JSON (what every proxied route answers) is the worker's failure."""
    status = resp.status
    try:
        data = await resp.read()
    except asyncio.TimeoutError:
        resp.close()
        return _timed_out(ex, worker)
    except _UPSTREAM_ERRORS as exc:
        resp.close()
        return _failed(ex, worker, "read", "failed mid-answer", exc)
    except asyncio.CancelledError:
        resp.close()
        ex.done(worker, None)
        raise
    headers = response_headers(resp.headers)
    if status in RETRYABLE_STATUS:
        ex.state.metrics.worker_error(worker, f"status_{status}")
        ex.done(worker, False)
        return _Answer(status, headers, data)
    if 200 <= status < 300 and status != 204:
        try:
            orjson.loads(data)
        except orjson.JSONDecodeError:
            return _failed(ex, worker, "garbage", f"answered {status} with a body that is not JSON")
    ex.done(worker, _outcome(status))
    await _send_whole(ex, status, headers, data)
    return status


async def _send_whole(ex: _Exchange, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    send = ex.send
    ex.finished = ex.responded = True
    headers.append((b"content-length", b"%d" % len(body)))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _relay_stream(ex: _Exchange, worker: Worker, resp: UpstreamResponse) -> int | SmgError:
    """An SSE or chunked body: pass each chunk on as it arrives. The answer starts with
    the first body bytes, so a worker that fails before any is retried elsewhere. An event
    stream goes out whole events at a time (a partial one waits for its end), so when the
    worker fails midway, or ends a 200 stream without ``data: [DONE]``, the client gets an
    error event on a line of its own and ``[DONE]``."""
    send = ex.send
    status = resp.status
    sse = is_event_stream(resp.content_type)
    success: bool | None = _outcome(status)
    events = EventFramer() if sse else None
    problem: str | None = None
    cause: BaseException | None = None
    try:
        async for chunk in resp:
            if events is not None:
                chunk = events.feed(chunk)
                if not chunk:
                    continue
            if not ex.responded:
                ex.responded = True
                await send({"type": "http.response.start", "status": status,
                            "headers": response_headers(resp.headers)})
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        # an event cut by the end of the body is not an event (the SSE rule): dropped
        if events is not None and status == 200:
            if events.held:
                problem = "failed mid-stream: its event stream ended inside an event"
            elif ex.path in DONE_PATHS and not events.done:
                problem = "failed mid-stream: its event stream ended without data: [DONE]"
    except asyncio.TimeoutError:
        problem = "timeout"
    except _UPSTREAM_ERRORS as exc:
        problem, cause = "failed mid-stream", exc
    except asyncio.CancelledError:
        resp.close()
        ex.done(worker, None)
        raise
    resp.close()  # a no-op once the body is complete; else the worker sees the connection go
    if problem is not None:
        success = False
        if problem == "timeout":
            error = _timed_out(ex, worker)
        else:
            error = _failed(ex, worker, "stream", problem, cause)
        if not ex.responded:
            return error  # nothing sent yet: another worker may answer
        # Bytes already reached the client: no retry, no status. End an event stream with
        # an error event; any other body is cut off so the client sees it incomplete.
        if not sse:
            raise error
        end = error_event(error.message, error.error_type, error.status_code)
        await send({"type": "http.response.body", "more_body": True,
                    "body": end + DONE if ex.path in DONE_PATHS else end})
    else:
        ex.done(worker, success)
        if not ex.responded:  # an empty body
            ex.responded = True
            await send({"type": "http.response.start", "status": status, "headers": response_headers(resp.headers)})
    ex.finished = True
    await send({"type": "http.response.body", "body": b"", "more_body": False})
    return status
