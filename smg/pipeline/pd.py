"""PD in gRPC mode: open a request on a (prefill, decode) pair; the decode stream drives.

SGLang (``SglangScheduler``): the same ``GenerateRequest`` goes to both workers at once
with ``disaggregated_params = {bootstrap_host, bootstrap_port, bootstrap_room}`` (the
prefill worker's host and bootstrap port, else 8998; a fresh int32 room). The prefill
stream is drained in the background; if it fails before decode produced anything, the
decode call is cancelled (and aborted on its worker) and the error is retryable as a
pair. When decode is done, a prefill leg still open gets a short grace, then is aborted.

vLLM (``VllmEngine``): sequential. The prefill copy asks for one token (``n=1``, not
streamed) with ``kv_transfer_params_json`` announcing a remote decode; the decode copy
carries the ``kv_transfer_params_json`` the prefill's ``Complete`` returned.

``open_pair`` returns what ``smg.pipeline.run`` needs from any worker: the decode worker
(begun), a stream (closing it closes both legs) and the first decode item.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

from smg.clients.grpc_types import Complete, GenParams, WorkerCallError
from smg.errors import NoHealthyWorker
from smg.http.pd_metrics import PDMetrics
from smg.pipeline.backend import GrpcBackend
from smg.pipeline.prepare import Prepared
from smg.router import Worker
from smg.router.pd import DEFAULT_BOOTSTRAP_PORT, ROOM_BITS_GRPC, PDPair, PDRouter, new_room

__all__ = ["PDStream", "open_pair"]

log = logging.getLogger(__name__)

_PREFILL_KV = json.dumps({"do_remote_decode": True, "do_remote_prefill": False, "remote_engine_id": None,
                          "remote_block_ids": None, "remote_host": None, "remote_port": None})
PREFILL_GRACE_SECS = 5.0  # how long a prefill leg may outlive its decode leg


class PDStream:
    """The decode leg's stream; it owns the prefill leg (``aclose`` ends both)."""

    def __init__(self, decode: AsyncIterator[Any], prefill: asyncio.Future | None, prefill_worker: Worker,
                 metrics: PDMetrics, started: float) -> None:
        self._decode = decode
        self._prefill = prefill
        self._prefill_worker = prefill_worker
        self._metrics = metrics
        self._started = started
        self._closed = False

    def __aiter__(self) -> PDStream:
        return self

    async def __anext__(self) -> Any:
        return await self._decode.__anext__()

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            await self._decode.aclose()
        finally:
            task = self._prefill
            if task is not None:
                await _finish_prefill(task, self._prefill_worker, PREFILL_GRACE_SECS)


async def _finish_prefill(task: asyncio.Future, worker: Worker, grace: float) -> None:
    if not task.done() and grace > 0:
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait((task,), timeout=grace)
    if not task.done():
        task.cancel()  # the prefill generator's cleanup cancels the call and sends Abort
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        worker.end(None)
    elif task.cancelled():
        worker.end(None)
    else:
        worker.end(task.exception() is None)


async def _drain(stream: AsyncIterator[Any], metrics: PDMetrics, started: float) -> list[Complete]:
    """Read a prefill leg to its end; its ``Complete`` messages."""
    completes: list[Complete] = []
    first = True
    async for item in stream:
        if first:
            first = False
            elapsed = time.perf_counter() - started
            metrics.queued("prefill", elapsed)
            metrics.first_token("prefill", elapsed)
        if isinstance(item, Complete):
            completes.append(item)
    metrics.prefill_done(time.perf_counter() - started)
    return completes


def _prefill_error(exc: WorkerCallError) -> WorkerCallError:
    return WorkerCallError(f"prefill leg: {exc.message}", status=exc.status, retryable=exc.retryable)


async def _cancel(task: asyncio.Future) -> None:
    task.cancel()
    with contextlib.suppress(BaseException):
        await task


async def open_pair(
    prep: Prepared, pd: PDRouter, backend: GrpcBackend, tried: list[str], metrics: PDMetrics | None = None
) -> tuple[Worker, PDStream, Any]:
    """Open ``prep`` on a new pair: (decode worker, stream, first decode item).

    A failure of either leg before the first decode item raises ``WorkerCallError``
    (retryable as the worker's error was) with no leg left open.
    """
    metrics = metrics if metrics is not None else _DEFAULT_METRICS
    pair = pd.select_pair(prep.info, exclude=tried)
    if pair is None:
        raise NoHealthyWorker(pd.unavailable_reason(prep.info))
    retry = len(tried) // 2
    tried.extend(pair.ids)
    params = prep.params()
    if retry:  # the failed attempt's leg may still be winding down on the same worker
        params.request_id = f"{params.request_id}-r{retry}"
    if backend.client(pair.decode.url).proto == "vllm":
        metrics.request("grpc", "vllm")
        return await _sequential(pair, params, backend, metrics)
    metrics.request("grpc", "sglang")
    return await _parallel(pair, params, backend, metrics)


async def _parallel(pair: PDPair, params: GenParams, backend: GrpcBackend,
                    metrics: PDMetrics) -> tuple[Worker, PDStream, Any]:
    params.bootstrap_host = pair.bootstrap_host
    params.bootstrap_port = pair.bootstrap_port or DEFAULT_BOOTSTRAP_PORT
    params.bootstrap_room = new_room(ROOM_BITS_GRPC)
    started = time.perf_counter()
    pair.prefill.begin()
    pair.decode.begin()
    prefill = asyncio.ensure_future(_drain(backend.client(pair.prefill.url).generate(params), metrics, started))
    decode = backend.client(pair.decode.url).generate(params)
    first_item = asyncio.ensure_future(decode.__anext__())
    try:
        await asyncio.wait((prefill, first_item), return_when=asyncio.FIRST_COMPLETED)
        failed = prefill.done() and not first_item.done() and prefill.exception() is not None
    except BaseException:
        await _cancel(first_item)
        pair.decode.end(None)
        await _finish_prefill(prefill, pair.prefill, 0)
        raise
    if failed:  # decode would wait for a room that never comes: abort it, retry the pair
        await _cancel(first_item)
        pair.decode.end(None)
        exc = prefill.exception()
        pair.prefill.end(_fault(exc))
        metrics.leg_failed("prefill", "grpc")
        if isinstance(exc, WorkerCallError):
            raise _prefill_error(exc) from None
        raise exc
    try:
        first = await first_item
    except WorkerCallError as exc:
        metrics.leg_failed("decode", "grpc")
        if exc.status == 504:
            metrics.bootstrap_failed()
        pair.decode.end(_fault(exc))
        await _finish_prefill(prefill, pair.prefill, 0)
        raise
    except BaseException:
        pair.decode.end(None)
        await _finish_prefill(prefill, pair.prefill, 0)
        raise
    elapsed = time.perf_counter() - started
    metrics.queued("decode", elapsed)
    metrics.first_token("decode", elapsed)
    return pair.decode, PDStream(decode, prefill, pair.prefill, metrics, started), first


async def _sequential(pair: PDPair, params: GenParams, backend: GrpcBackend,
                      metrics: PDMetrics) -> tuple[Worker, PDStream, Any]:
    prefill_params = replace(params, max_new_tokens=1, min_new_tokens=0, n=1, stream=False,
                             return_logprob=False, kv_transfer_params_json=_PREFILL_KV)
    started = time.perf_counter()
    pair.prefill.begin()
    try:
        completes = await _drain(backend.client(pair.prefill.url).generate(prefill_params), metrics, started)
    except WorkerCallError as exc:
        pair.prefill.end(_fault(exc))
        metrics.leg_failed("prefill", "grpc")
        raise _prefill_error(exc) from None
    except BaseException:
        pair.prefill.end(None)
        raise
    pair.prefill.end(True)
    kv = next((c.kv_transfer_params_json for c in completes if c.kv_transfer_params_json), None)
    if kv is None:
        log.warning("prefill worker %s returned no kv_transfer_params_json", pair.prefill.url)
    decode_params = replace(params, kv_transfer_params_json=kv)
    started = time.perf_counter()
    pair.decode.begin()
    stream = backend.client(pair.decode.url).generate(decode_params)
    try:
        first = await stream.__anext__()
    except WorkerCallError as exc:
        metrics.leg_failed("decode", "grpc")
        pair.decode.end(_fault(exc))
        await stream.aclose()
        raise
    except BaseException:
        pair.decode.end(None)
        await stream.aclose()
        raise
    elapsed = time.perf_counter() - started
    metrics.queued("decode", elapsed)
    metrics.first_token("decode", elapsed)
    return pair.decode, PDStream(stream, None, pair.prefill, metrics, started), first


def _fault(exc: BaseException | None) -> bool | None:
    """A leg's outcome for its worker's breaker: False (a failure) unless the worker only
    refused the request itself (a 4xx: the client's error, not the worker's)."""
    return None if isinstance(exc, WorkerCallError) and not exc.worker_fault else False


_DEFAULT_METRICS = PDMetrics()
