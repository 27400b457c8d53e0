"""A Kubernetes API server STAND-IN for the discovery tests (no real API server can run
on these machines). It is not Kubernetes: it serves only what a pod watcher uses, the way
the real API server speaks it, so the real ``kubernetes_asyncio`` client runs against it:

* ``GET /api/v1/pods`` and ``GET /api/v1/namespaces/{ns}/pods`` with ``labelSelector``
  (equality terms ``k=v,k2=v2``): a JSON ``PodList`` whose ``metadata.resourceVersion`` is
  the store's current version;
* the same with ``watch=1``: a chunked stream of one JSON event per line (``ADDED``,
  ``MODIFIED``, ``DELETED`` with the pod, each pod carrying its ``resourceVersion``) from
  the given ``resourceVersion`` on, ``BOOKMARK`` events when ``allowWatchBookmarks`` is
  set, ending after ``timeoutSeconds``; a version older than the compacted history gets
  an ``ERROR`` event with a ``Status`` of code 410 (``Expired``), as the real server does.

Faults, injected by the tests: :meth:`drop_watches` (connections cut), :meth:`stall_watches`
(open watches go silent, bookmarks too), :meth:`expire_watches` (history compacted, open
watches get the 410 ERROR event). It runs on 127.0.0.1 in its own thread and event loop;
every method is safe to call from any thread. :meth:`kubeconfig` writes a kubeconfig
pointing at it. The fixtures :func:`standin` and :func:`kubeconfig` give one per test.
"""

from __future__ import annotations

import asyncio
import copy
import threading
from typing import Any

import orjson
import pytest
from aiohttp import web

__all__ = ["ApiServerStandIn", "kubeconfig", "pod", "standin"]


def pod(name: str, ip: str = "127.0.0.1", *, namespace: str = "default", labels: dict | None = None,
        annotations: dict | None = None, ready: bool = True, phase: str = "Running") -> dict:
    """A pod as the API server returns it (only the fields discovery reads, and a few more)."""
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "uid": f"uid-{namespace}-{name}",
                     "labels": dict(labels or {}), "annotations": dict(annotations or {})},
        "spec": {"containers": [{"name": "worker", "image": "smg-worker"}]},
        "status": {"phase": phase, "podIP": ip,
                   "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]},
    }


def _matches(selector: str, p: dict) -> bool:
    labels = p["metadata"].get("labels") or {}
    for term in filter(None, selector.split(",")):
        key, _, value = term.partition("=")
        if labels.get(key) != value:
            return False
    return True


class _Watch:
    def __init__(self, namespace: str | None, selector: str) -> None:
        self.namespace, self.selector = namespace, selector
        self.queue: asyncio.Queue = asyncio.Queue()
        self.stalled = False

    def wants(self, p: dict) -> bool:
        return (self.namespace is None or p["metadata"]["namespace"] == self.namespace) and _matches(self.selector, p)


class ApiServerStandIn:
    def __init__(self, bookmark_secs: float = 0.5) -> None:
        self.bookmark_secs = bookmark_secs
        self.pods: dict[tuple[str, str], dict] = {}
        self.version = 1
        self.history: list[tuple[int, str, dict]] = []  # (version, type, pod) after `compacted`
        self.compacted = 1
        self.watches: set[_Watch] = set()
        self.lists = 0
        self.lost = 0
        self.failing = False  # answer every request 503 (an API server that is down)
        self.refused = 0
        self.watch_requests = 0
        self._responses: set[web.StreamResponse] = set()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True, name="k8s-standin")
        self.url = ""

    # -- life -------------------------------------------------------------------------------
    def start(self) -> ApiServerStandIn:
        self._thread.start()
        self.url = self._call(self._start())
        return self

    async def _start(self) -> str:
        app = web.Application()
        app.router.add_get("/api/v1/pods", self._pods)
        app.router.add_get("/api/v1/namespaces/{ns}/pods", self._pods)
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    def stop(self) -> None:
        self.drop_watches()
        self._call(self._shutdown())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    async def _shutdown(self) -> None:
        await self._runner.cleanup()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    def _run(self, fn: Any, *args: Any) -> Any:
        async def call() -> Any:
            return fn(*args)
        return self._call(call())

    def kubeconfig(self, path: str, namespace: str = "default") -> str:
        text = (
            "apiVersion: v1\nkind: Config\ncurrent-context: standin\n"
            f"clusters:\n- name: standin\n  cluster:\n    server: {self.url}\n"
            "users:\n- name: tester\n  user:\n    token: stand-in-token\n"
            f"contexts:\n- name: standin\n  context:\n    cluster: standin\n    user: tester\n    namespace: {namespace}\n"
        )
        with open(path, "w") as f:
            f.write(text)
        return path

    # -- the store (tests call these) --------------------------------------------------------
    def put(self, p: dict) -> None:
        """Create or replace a pod (ADDED or MODIFIED)."""
        self._run(self._put, copy.deepcopy(p))

    def set_ready(self, name: str, ready: bool, namespace: str = "default") -> None:
        def change() -> None:
            p = copy.deepcopy(self.pods[(namespace, name)])
            p["status"]["conditions"] = [{"type": "Ready", "status": "True" if ready else "False"}]
            self._put(p)
        self._run(change)

    def delete(self, name: str, namespace: str = "default") -> None:
        def change() -> None:
            p = self.pods.pop((namespace, name), None)
            if p is not None:
                self._event("DELETED", p)
        self._run(change)

    def all_pods(self) -> list[dict]:
        return self._run(lambda: [copy.deepcopy(p) for p in self.pods.values()])

    def _put(self, p: dict) -> None:
        key = (p["metadata"]["namespace"], p["metadata"]["name"])
        kind = "MODIFIED" if key in self.pods else "ADDED"
        self.pods[key] = p
        self._event(kind, p)

    def _event(self, kind: str, p: dict) -> None:
        self.version += 1
        p["metadata"]["resourceVersion"] = str(self.version)
        snapshot = copy.deepcopy(p)
        self.history.append((self.version, kind, snapshot))
        if self.lost > 0:
            self.lost -= 1
            return
        for w in list(self.watches):
            if w.wants(snapshot):
                w.queue.put_nowait((kind, snapshot))

    def open_watches(self) -> int:
        """Watches connected and not stalled (tests wait for one before a fault)."""
        return self._run(lambda: sum(1 for w in self.watches if not w.stalled))

    # -- faults ------------------------------------------------------------------------------
    def fail(self, failing: bool) -> None:
        """While on, every list and watch gets a 503 Status, as from an API server that is down."""
        def set_failing() -> None:
            self.failing = failing
        self._run(set_failing)

    def lose_events(self, n: int) -> None:
        """The next ``n`` changes reach no open watch (kept in the history: a lost delivery)."""
        def lose() -> None:
            self.lost = n
        self._run(lose)

    def drop_watches(self) -> None:
        """Cut every open watch connection (no final event)."""
        def cut() -> None:
            for resp in list(self._responses):
                transport = resp._req.transport if resp._req is not None else None
                if transport is not None:
                    transport.abort()
        self._run(cut)

    def stall_watches(self) -> None:
        """Open watches go silent (no events, no bookmarks); the connections stay open."""
        def stall() -> None:
            for w in self.watches:
                w.stalled = True
        self._run(stall)

    def expire_watches(self) -> None:
        """Compact the history: open watches get a 410 ERROR event, old versions are gone."""
        def expire() -> None:
            self.compacted = self.version
            self.history.clear()
            for w in self.watches:
                w.queue.put_nowait(("ERROR", None))
        self._run(expire)

    # -- HTTP --------------------------------------------------------------------------------
    async def _pods(self, request: web.Request) -> web.StreamResponse:
        ns = request.match_info.get("ns")
        q = request.query
        selector = q.get("labelSelector", "")
        if self.failing:
            self.refused += 1
            status = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "ServiceUnavailable",
                      "message": "the stand-in is failing on purpose", "code": 503}
            return web.Response(status=503, body=orjson.dumps(status), content_type="application/json")
        if q.get("watch") in ("1", "true", "True"):
            return await self._watch(request, ns, selector)
        self.lists += 1
        items = [p for p in self.pods.values() if (ns is None or p["metadata"]["namespace"] == ns)
                 and _matches(selector, p)]
        body = {"kind": "PodList", "apiVersion": "v1", "metadata": {"resourceVersion": str(self.version)},
                "items": items}
        return web.Response(body=orjson.dumps(body), content_type="application/json")

    async def _watch(self, request: web.Request, ns: str | None, selector: str) -> web.StreamResponse:
        self.watch_requests += 1
        q = request.query
        since = int(q.get("resourceVersion") or self.version)
        timeout = float(q.get("timeoutSeconds") or 1800)
        bookmarks = q.get("allowWatchBookmarks") in ("1", "true", "True")
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        self._responses.add(resp)
        w = _Watch(ns, selector)
        try:
            if since < self.compacted:
                await self._send(resp, _gone())
                return resp
            self.watches.add(w)
            for version, kind, p in self.history:
                if version > since and w.wants(p):
                    await self._send(resp, {"type": kind, "object": p})
            loop = asyncio.get_running_loop()
            end = loop.time() + timeout
            while (left := end - loop.time()) > 0:
                try:
                    kind, p = await asyncio.wait_for(w.queue.get(), min(left, self.bookmark_secs))
                except asyncio.TimeoutError:
                    if bookmarks and not w.stalled:
                        await self._send(resp, {"type": "BOOKMARK", "object": {
                            "kind": "Pod", "apiVersion": "v1", "metadata": {"resourceVersion": str(self.version)}}})
                    continue
                if w.stalled:
                    continue
                if kind == "ERROR":
                    await self._send(resp, _gone())
                    return resp
                await self._send(resp, {"type": kind, "object": p})
            await resp.write_eof()
        except (ConnectionResetError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self.watches.discard(w)
            self._responses.discard(resp)
        return resp

    @staticmethod
    async def _send(resp: web.StreamResponse, event: dict) -> None:
        await resp.write(orjson.dumps(event) + b"\n")


def _gone() -> dict:
    return {"type": "ERROR", "object": {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                                        "message": "too old resource version", "reason": "Expired", "code": 410}}


@pytest.fixture
def standin() -> Any:
    """A running stand-in (bookmarks every 0.3 s), stopped after the test."""
    server = ApiServerStandIn(bookmark_secs=0.3).start()
    yield server
    server.stop()


@pytest.fixture
def kubeconfig(standin: ApiServerStandIn, tmp_path: Any) -> str:
    """A kubeconfig file pointing at :func:`standin`."""
    return standin.kubeconfig(str(tmp_path / "kubeconfig"))
