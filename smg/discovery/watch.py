"""List, then watch, the pods of one label selector, with the ``kubernetes_asyncio`` client.

One :class:`PodWatch` per (role, selector). A cycle: list the pods (a full snapshot and
its ``resourceVersion``), hand the snapshot to the fleet and wait until it is applied,
then watch from that ``resourceVersion`` with bookmarks, applying each event, until the
next full re-list is due (``--discovery-check-interval-secs``; the watch asks the server
to end by then). A cycle also ends early, followed by an immediate re-list, when

* the watch expires: ``410 Gone`` (an ERROR event, or the HTTP status);
* the connection drops (the stream ends before its time, or a read fails);
* the watch is silent (no event, no bookmark) past ``--discovery-watch-timeout-secs``.

A re-list replaces the whole snapshot, so whatever the watch missed is reconciled:
what is new is added, what is gone drains. Failures to reach the API server back off
(0.2 s doubling to 5 s) and keep the current workers as they are.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import orjson

from smg.discovery.pods import pod_key, selector_string

__all__ = ["PodWatch", "WatchStalled"]

log = logging.getLogger(__name__)

BACKOFF_MIN, BACKOFF_MAX = 0.2, 5.0


class WatchStalled(Exception):
    """The watch said nothing (not even a bookmark) for longer than the deadline."""


class ListFailed(Exception):
    def __init__(self, status: int, body: bytes) -> None:
        super().__init__(f"pod list answered {status}: {body[:200]!r}")
        self.status = status


Snapshot = Callable[[str, Mapping[str, Mapping[str, Any]]], Awaitable[None]]


class PodWatch:
    """Keeps ``pods`` (namespace/name -> pod JSON) equal to the API server's view of
    ``selector`` and calls ``on_change(role, pods)`` after every change (awaited)."""

    def __init__(
        self, api: Any, *, role: str, selector: Mapping[str, str], namespace: str | None,
        relist_secs: float, stall_secs: float, on_change: Snapshot,
        observe_sync: Callable[[float], None] | None = None,
    ) -> None:
        self.api = api  # kubernetes_asyncio.client.CoreV1Api
        self.role = role
        self.selector = selector_string(selector)
        self.namespace = namespace
        self.relist_secs = relist_secs
        self.stall_secs = stall_secs
        self.on_change = on_change
        self.observe_sync = observe_sync
        self.pods: dict[str, Mapping[str, Any]] = {}
        self.relists = 0  # full lists done (tests and logs)
        self.last_reason = ""

    def _list_call(self) -> tuple[Callable[..., Awaitable[Any]], tuple]:
        if self.namespace:
            return self.api.list_namespaced_pod, (self.namespace,)
        return self.api.list_pod_for_all_namespaces, ()

    async def run(self) -> None:
        backoff = BACKOFF_MIN
        while True:
            try:
                version = await self.relist()
                backoff = BACKOFF_MIN
                self.last_reason = await self.watch(version)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - every failure ends in a re-list
                self.last_reason = _reason(exc)
                if self.last_reason != "expired":
                    log.warning("discovery %s (%s): %s; re-listing in %.1fs", self.role, self.selector,
                                self.last_reason, backoff)
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, BACKOFF_MAX)
                    continue
            level = logging.DEBUG if self.last_reason == "interval" else logging.INFO  # the periodic re-list is quiet
            log.log(level, "discovery %s (%s): watch ended (%s); re-listing", self.role, self.selector, self.last_reason)

    async def relist(self) -> str:
        """A full list: the snapshot replaces ``pods``; returns its resourceVersion."""
        started = time.perf_counter()
        func, args = self._list_call()
        resp = await func(*args, label_selector=self.selector, _preload_content=False,
                          _request_timeout=(10, max(self.stall_secs, 10)))
        try:
            body = await resp.read()
            if not 200 <= resp.status < 300:
                raise ListFailed(resp.status, body)
        finally:
            resp.release()
        data = orjson.loads(body)
        self.pods = {pod_key(p): p for p in data.get("items") or ()}
        await self.on_change(self.role, self.pods)
        self.relists += 1
        if self.observe_sync is not None:
            self.observe_sync(time.perf_counter() - started)
        return str((data.get("metadata") or {}).get("resourceVersion") or "")

    async def watch(self, version: str) -> str:
        """Apply watch events from ``version`` until the re-list is due; returns why it
        ended ("interval" or "dropped"); raises on 410, stalls and errors."""
        from kubernetes_asyncio import watch

        func, args = self._list_call()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.relist_secs
        server_secs = max(1, int(self.relist_secs))
        stream = watch.Watch(return_type="object").stream(
            func, *args, label_selector=self.selector, resource_version=version,
            allow_watch_bookmarks=True, timeout_seconds=server_secs,
            _request_timeout=(10, server_secs + self.stall_secs),
        )
        async with stream:
            while True:
                left = deadline - loop.time()
                if left <= 0:
                    return "interval"
                try:
                    event = await asyncio.wait_for(stream.__anext__(), min(left, self.stall_secs))
                except StopAsyncIteration:
                    return "interval" if loop.time() >= deadline - 1.0 else "dropped"
                except asyncio.TimeoutError:
                    if loop.time() >= deadline:
                        return "interval"
                    raise WatchStalled(f"no event for {self.stall_secs:g}s") from None
                await self._apply(event)

    async def _apply(self, event: Mapping[str, Any]) -> None:
        kind, pod = event.get("type"), event.get("raw_object") or {}
        if kind == "BOOKMARK":
            return
        key = pod_key(pod)
        if kind == "DELETED":
            if self.pods.pop(key, None) is None:
                return
        elif kind in ("ADDED", "MODIFIED"):
            self.pods[key] = pod
        else:
            return
        await self.on_change(self.role, self.pods)


def _reason(exc: BaseException) -> str:
    status = getattr(exc, "status", None)
    if status == 410:
        return "expired"
    if isinstance(exc, WatchStalled):
        return "stalled"
    if isinstance(exc, ListFailed):
        return f"list failed ({exc.status})"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
