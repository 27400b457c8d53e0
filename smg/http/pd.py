"""PD over HTTP: send a request to a prefill and a decode worker, answer with decode.

SGLang style: both legs at once, the same body plus ``bootstrap_host/port/room`` (the
decode worker pulls the KV from the prefill worker's bootstrap server by room). vLLM
style: the prefill leg first (one token, ``kv_transfer_params`` announcing a remote
decode), then the decode leg with the ``kv_transfer_params`` the prefill returned.
The decode answer goes to the client as it comes (status, headers, bytes).

Failures: a leg that fails before the first byte reached the client (connection error,
timeout, retryable status) ends the attempt: the other leg is cancelled (closing its
connection aborts it on the worker) and a new pair is tried after a backoff, both
workers of the failed pair excluded while others remain. A non-retryable answer (400,
a decode worker reporting a missing room) goes to the client as the worker wrote it.
The client going away cancels the request task, which closes both legs. No leg outlives
its request: when decode finishes, a prefill leg still open is closed.

Style ``auto`` asks each prefill worker's ``/get_server_info`` once: a ``kv_connector``
means vLLM style; anything else (or no answer) SGLang style, as SMG's HTTP PD router.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Protocol

import orjson
from starlette.types import Send

from smg.clients.http import UpstreamClient, UpstreamResponse, response_headers
from smg.errors import NoHealthyWorker, SmgError, UpstreamError, UpstreamTimeout
from smg.http.pd_body import (
    batch_size,
    kv_params_of,
    merge_input_logprobs,
    sglang_body,
    vllm_decode_body,
    vllm_prefill_body,
)
from smg.http.pd_metrics import PDMetrics
from smg.http.sse import DONE, EventFramer, error_event, is_event_stream
from smg.router import RETRYABLE_STATUS, RequestInfo, RetryConfig, Worker
from smg.router.pd import PDPair, PDRouter, new_room, new_rooms

__all__ = ["PDExchange", "PDHttpExecutor", "PD_STYLES"]

log = logging.getLogger(__name__)

PD_STYLES = ("auto", "sglang", "vllm")
_UPSTREAM_ERRORS = (OSError,)  # UpstreamConnectionError and socket errors
_BOOTSTRAP_STATUS = (409, 504)  # the reference decode worker: prompt mismatch, room never came


class PDExchange(Protocol):
    """One client request (``smg.http.proxy``'s exchange has these attributes)."""

    path: str
    send: Send
    info: RequestInfo
    body: bytes
    headers: dict[str, str]
    finished: bool  # no more client messages matter
    responded: bool  # http.response.start was sent


@dataclass(slots=True)
class _Failed:
    """An attempt that ended before any byte reached the client."""

    leg: str
    retryable: bool
    error: SmgError | None = None
    status: int = 0
    headers: list[tuple[bytes, bytes]] | None = None
    body: bytes = b""


def _outcome(status: int) -> bool | None:
    if status < 400:
        return True
    return False if status in RETRYABLE_STATUS else None


class _Legs:
    """The two legs of one attempt: each worker's ``begin``/``end`` exactly once."""

    __slots__ = ("pair", "info", "pd", "open", "ok", "prefill", "merge_logprobs")

    def __init__(self, pd: PDRouter, pair: PDPair, info: RequestInfo) -> None:
        self.pd = pd
        self.pair = pair
        self.info = info
        self.open = {"prefill": False, "decode": False}
        self.ok = {"prefill": True, "decode": True}
        self.prefill: asyncio.Future | None = None  # the prefill leg's task
        self.merge_logprobs = False  # put the prefill's prompt logprobs into the answer

    def begin(self, leg: str) -> None:
        getattr(self.pair, leg).begin()
        self.open[leg] = True

    def end(self, leg: str, success: bool | None) -> None:
        if self.open[leg]:
            self.open[leg] = False
            getattr(self.pair, leg).end(success)
            self.ok[leg] = success is not False
            if not any(self.open.values()):
                self.pd.on_complete(self.pair, self.info, self.ok["prefill"], self.ok["decode"])

    def abandon(self) -> None:
        """The client went away: whatever is open ends without blame."""
        for leg in ("prefill", "decode"):
            self.end(leg, None)


class PDHttpExecutor:
    def __init__(
        self,
        pd: PDRouter,
        client: UpstreamClient,
        retry: RetryConfig,
        *,
        style: str = "auto",
        metrics: PDMetrics | None = None,
        discovery_timeout: float = 5.0,
        prefill_grace: float = 5.0,
    ) -> None:
        if style not in PD_STYLES:
            raise ValueError(f"unknown PD style {style!r}; one of {', '.join(PD_STYLES)}")
        self.pd = pd
        self.client = client
        self.retry = retry
        self.style = style
        self.metrics = metrics if metrics is not None else PDMetrics()
        self.discovery_timeout = discovery_timeout
        self.prefill_grace = prefill_grace  # how long a prefill leg may outlive its decode
        self._styles: dict[str, str] = {}

    async def style_of(self, prefill: Worker) -> str:
        if self.style != "auto":
            return self.style
        style = self._styles.get(prefill.id)
        if style is None:
            info = await self.client.get_json(prefill.url + "/get_server_info", self.discovery_timeout)
            if not isinstance(info, dict):
                return "sglang"  # unknown: ask again next time
            style = "vllm" if info.get("kv_connector") else "sglang"
            self._styles[prefill.id] = style
        return style

    async def route(self, ex: PDExchange) -> int:
        """Serve ``ex`` with PD pairs; return the status sent to the client."""
        data = orjson.loads(ex.body)  # the routing parser already checked it is an object
        tried: list[str] = []
        last: _Failed | None = None
        for attempt in range(self.retry.attempts):
            pair = self.pd.select_pair(ex.info, exclude=tried)
            if pair is None:
                break
            if attempt:
                self.metrics.retried()
                await asyncio.sleep(self.retry.delay(attempt - 1))
            tried.extend(pair.ids)
            if attempt:
                _new_request_id(ex, attempt)
            style = await self.style_of(pair.prefill)
            self.metrics.request("http", style)
            legs = _Legs(self.pd, pair, ex.info)
            try:
                if style == "vllm":
                    outcome = await self._vllm(ex, legs, data)
                else:
                    outcome = await self._sglang(ex, legs, data)
            except BaseException:
                if legs.prefill is not None:
                    await _cancel(legs.prefill)
                legs.abandon()
                raise
            if isinstance(outcome, int):
                return outcome
            last = outcome
            if not outcome.retryable:
                break
        if last is None:
            raise NoHealthyWorker(self.pd.unavailable_reason(ex.info))
        if last.error is not None:
            raise last.error
        ex.finished = ex.responded = True
        await _send_whole(ex.send, last.status, last.headers or [], last.body)
        return last.status

    # -- SGLang style: both legs at once ----------------------------------------------

    async def _sglang(self, ex: PDExchange, legs: _Legs, data: dict) -> int | _Failed:
        pair = legs.pair
        n = batch_size(ex.path, data)
        rooms = new_rooms(n) if n is not None else new_room()
        body = sglang_body(data, pair.bootstrap_host, pair.bootstrap_port, rooms)
        legs.merge_logprobs = ex.path == "/generate" and data.get("return_logprob") is True
        started = time.perf_counter()
        legs.begin("prefill")
        legs.begin("decode")
        prefill = legs.prefill = asyncio.ensure_future(
            self._whole(pair.prefill.url + ex.path, body, ex.headers, started))
        decode = asyncio.ensure_future(self.client.send(pair.decode.url + ex.path, body, ex.headers))
        try:
            await asyncio.wait((prefill, decode), return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            await _cancel(decode)
            raise
        if prefill.done() and not decode.done():
            failed = self._prefill_result(legs)
            if failed is not None:  # the decode leg would wait for a room that never comes
                await _cancel(decode)
                legs.end("decode", None)
                return failed
        try:
            resp = await decode
        except asyncio.TimeoutError:
            return await self._decode_error(legs, "timeout", UpstreamTimeout(f"decode worker {pair.decode.url} timed out"))
        except _UPSTREAM_ERRORS as exc:
            return await self._decode_error(legs, "connect", UpstreamError(f"decode worker {pair.decode.url} failed: {exc}"))
        self.metrics.queued("decode", time.perf_counter() - started)
        if resp.status >= 400:
            return await self._decode_answer(legs, resp)
        return await self._relay(ex, legs, resp, started)

    async def _whole(self, url: str, body: bytes, headers: dict[str, str], started: float) -> tuple[int, list, bytes]:
        """A prefill leg: status, headers and the whole body."""
        async with await self.client.send(url, body, headers) as resp:
            self.metrics.queued("prefill", time.perf_counter() - started)
            data = await resp.read()
            if resp.status < 400:
                elapsed = time.perf_counter() - started
                self.metrics.first_token("prefill", elapsed)
                self.metrics.prefill_done(elapsed)
            return resp.status, response_headers(resp.headers), data

    def _prefill_result(self, legs: _Legs) -> _Failed | None:
        """Account the finished prefill leg; its failure, or None when it answered well."""
        pair, task = legs.pair, legs.prefill
        assert task is not None and task.done()
        try:
            status, headers, body = task.result()
        except asyncio.TimeoutError:
            return self._leg_error(legs, "prefill", "timeout",
                                   UpstreamTimeout(f"prefill worker {pair.prefill.url} timed out"))
        except _UPSTREAM_ERRORS as exc:
            return self._leg_error(legs, "prefill", "connect",
                                   UpstreamError(f"prefill worker {pair.prefill.url} failed: {exc}"))
        legs.end("prefill", _outcome(status))
        if status < 400:
            return None
        self.metrics.leg_failed("prefill", f"status_{status}")
        return _Failed("prefill", status in RETRYABLE_STATUS, None, status, headers, body)

    def _leg_error(self, legs: _Legs, leg: str, kind: str, error: SmgError) -> _Failed:
        legs.end(leg, False)
        self.metrics.leg_failed(leg, kind)
        return _Failed(leg, True, error)

    async def _finish_prefill(self, legs: _Legs, grace: float) -> None:
        """Decode is over: wait up to ``grace`` for the prefill leg, then close it."""
        task = legs.prefill
        if task is None or not legs.open["prefill"]:
            return
        if not task.done() and grace > 0:
            await asyncio.wait((task,), timeout=grace)
        if task.done() and not task.cancelled():
            self._prefill_result(legs)
        else:
            await _cancel(task)
            legs.end("prefill", None)

    async def _decode_error(self, legs: _Legs, kind: str, error: SmgError) -> _Failed:
        await self._finish_prefill(legs, 0)
        return self._leg_error(legs, "decode", kind, error)

    async def _decode_answer(self, legs: _Legs, resp: UpstreamResponse) -> _Failed:
        """The decode worker answered with an error status before any token."""
        status = resp.status
        try:
            body = await resp.read()
        except (asyncio.TimeoutError, *_UPSTREAM_ERRORS):
            body = b""
        finally:
            resp.close()
        await self._finish_prefill(legs, 0)
        self.metrics.leg_failed("decode", f"status_{status}")
        if status in _BOOTSTRAP_STATUS:
            self.metrics.bootstrap_failed()
        legs.end("decode", _outcome(status))
        return _Failed("decode", status in RETRYABLE_STATUS, None, status, response_headers(resp.headers), body)

    # -- vLLM style: prefill, then decode ---------------------------------------------

    async def _vllm(self, ex: PDExchange, legs: _Legs, data: dict) -> int | _Failed:
        pair = legs.pair
        prefill_body = vllm_prefill_body(ex.path, data)
        started = time.perf_counter()
        legs.begin("prefill")
        legs.prefill = asyncio.ensure_future(self._whole(pair.prefill.url + ex.path, prefill_body, ex.headers, started))
        await asyncio.wait((legs.prefill,))
        failed = self._prefill_result(legs)
        if failed is not None:
            return failed
        kv = kv_params_of(ex.path, legs.prefill.result()[2])
        if kv is None:
            log.warning("prefill worker %s returned no kv_transfer_params", pair.prefill.url)
        started = time.perf_counter()
        legs.begin("decode")
        try:
            resp = await self.client.send(pair.decode.url + ex.path, vllm_decode_body(data, kv), ex.headers)
        except asyncio.TimeoutError:
            return self._leg_error(legs, "decode", "timeout", UpstreamTimeout(f"decode worker {pair.decode.url} timed out"))
        except _UPSTREAM_ERRORS as exc:
            return self._leg_error(legs, "decode", "connect", UpstreamError(f"decode worker {pair.decode.url} failed: {exc}"))
        self.metrics.queued("decode", time.perf_counter() - started)
        if resp.status >= 400:
            return await self._decode_answer(legs, resp)
        return await self._relay(ex, legs, resp, started)

    # -- the decode answer to the client ----------------------------------------------

    async def _relay(self, ex: PDExchange, legs: _Legs, resp: UpstreamResponse, started: float) -> int | _Failed:
        try:
            if resp.content_length is not None and not is_event_stream(resp.content_type):
                result = await self._relay_whole(ex, legs, resp, started)
            else:
                result = await self._relay_stream(ex, legs, resp, started)
        except BaseException:
            resp.close()
            raise
        await self._finish_prefill(legs, self.prefill_grace)
        return result

    async def _relay_whole(self, ex: PDExchange, legs: _Legs, resp: UpstreamResponse,
                           started: float) -> int | _Failed:
        try:
            data = await resp.read()
        except (asyncio.TimeoutError, *_UPSTREAM_ERRORS) as exc:
            resp.close()
            await self._finish_prefill(legs, 0)
            return self._leg_error(legs, "decode", "read",
                                   UpstreamError(f"decode worker {legs.pair.decode.url} failed: {exc}"))
        self.metrics.first_token("decode", time.perf_counter() - started)
        legs.end("decode", True)
        if legs.merge_logprobs and resp.status == 200 and legs.prefill is not None:
            await asyncio.wait((legs.prefill,), timeout=self.prefill_grace)
            prefill = legs.prefill
            if prefill.done() and not prefill.cancelled() and prefill.exception() is None:
                data = merge_input_logprobs(data, prefill.result()[2])
        ex.finished = ex.responded = True
        await _send_whole(ex.send, resp.status, response_headers(resp.headers), data)
        return resp.status

    async def _relay_stream(self, ex: PDExchange, legs: _Legs, resp: UpstreamResponse, started: float) -> int:
        send = ex.send
        ex.responded = True
        await send({"type": "http.response.start", "status": resp.status,
                     "headers": response_headers(resp.headers)})
        first = True
        events = EventFramer() if is_event_stream(resp.content_type) else None
        try:
            async for chunk in resp:
                if first:
                    first = False
                    self.metrics.first_token("decode", time.perf_counter() - started)
                if events is not None:
                    chunk = events.feed(chunk)  # whole events: an error event gets a line of its own
                    if not chunk:
                        continue
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        except (asyncio.TimeoutError, *_UPSTREAM_ERRORS) as exc:
            # bytes already reached the client: no retry; an event stream ends with an error event
            resp.close()
            legs.end("decode", False)
            self.metrics.leg_failed("decode", "stream")
            if events is None:
                raise UpstreamError(f"decode worker {legs.pair.decode.url} failed mid-body: {exc!r}") from exc
            await send({"type": "http.response.body", "more_body": True,
                        "body": error_event(f"decode worker failed mid-stream: {exc!r}") + DONE})
        else:
            if events is not None and resp.status == 200 and not events.done:  # cut, or no [DONE]
                legs.end("decode", False)
                self.metrics.leg_failed("decode", "stream")
                await send({"type": "http.response.body", "more_body": True,
                            "body": error_event("decode worker's stream ended without data: [DONE]") + DONE})
            else:
                legs.end("decode", True)
        ex.finished = True
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        return resp.status


def _new_request_id(ex: PDExchange, attempt: int) -> None:
    """A retry's legs get their own request id: a leg of the failed attempt may still be
    winding down on the same worker, which refuses a duplicate id."""
    rid = ex.headers.get("x-request-id")
    if rid is not None:
        base = rid.rsplit("-r", 1)[0] if attempt > 1 else rid
        ex.headers = {**ex.headers, "x-request-id": f"{base}-r{attempt}"}


async def _cancel(task: asyncio.Future) -> None:
    """Cancel a leg and wait for it; a response it already got is closed (aborting it)."""
    if task.done():
        if not task.cancelled() and task.exception() is None:
            result = task.result()
            if isinstance(result, UpstreamResponse):
                result.close()
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task


async def _send_whole(send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    headers = [*headers, (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
