"""A scriptable stub worker (a real HTTP server on loopback) for the proxy tests.

Each request's JSON body may carry ``"stub": {...}``: ``status`` (answer with it),
``delay`` (seconds before answering), ``stream`` (number of SSE events), ``gate`` (name
of a :class:`threading.Event` to wait for before the second event). The stub records
every request and sets ``closed`` when a streaming client went away mid-stream.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import orjson
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from smg.serve import ServerThread


@dataclass
class Stub:
    name: str
    model: str = "stub-model"
    url: str = ""
    requests: list[dict] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    headers: list[dict] = field(default_factory=list)
    gates: dict[str, threading.Event] = field(default_factory=dict)
    closed: threading.Event = field(default_factory=threading.Event)
    healthy: bool = True
    flushed: int = 0
    status: int | None = None  # answer every request with this status

    def events(self, n: int) -> list[bytes]:
        return [b'data: {"i": %d, "worker": "%s"}\n\n' % (i, self.name.encode()) for i in range(n)] + [
            b"data: [DONE]\n\n"
        ]

    def app(self) -> Starlette:
        async def handle(request: Request) -> Response:
            body = orjson.loads(await request.body())
            self.requests.append(body)
            self.paths.append(request.url.path)
            self.headers.append(dict(request.headers))
            spec = body.get("stub") or {}
            if spec.get("delay"):
                await asyncio.sleep(spec["delay"])
            status = self.status or spec.get("status", 200)
            if status != 200:
                err = {"error": {"message": f"{self.name} says {status}", "type": "stub_error", "code": status}}
                return Response(orjson.dumps(err), status, media_type="application/json")
            if spec.get("stream"):
                return StreamingResponse(self._stream(spec), media_type="text/event-stream",
                                         headers={"x-stub-worker": self.name})
            out = {"worker": self.name, "path": request.url.path, "echo": body}
            return Response(orjson.dumps(out), media_type="application/json", headers={"x-stub-worker": self.name})

        async def health(request: Request) -> Response:
            return Response(b"{}", 200 if self.healthy else 503, media_type="application/json")

        async def models(request: Request) -> Response:
            data = {"object": "list", "data": [{"id": self.model, "object": "model"}]}
            return Response(orjson.dumps(data), media_type="application/json")

        async def loads(request: Request) -> Response:
            data = {"loads": [{"num_running_reqs": 3, "num_waiting_reqs": 1, "token_usage": 0.5}]}
            return Response(orjson.dumps(data), media_type="application/json")

        async def flush(request: Request) -> Response:
            self.flushed += 1
            return Response(b"{}", media_type="application/json")

        paths = ["/v1/chat/completions", "/v1/completions", "/generate", "/v1/embeddings"]
        return Starlette(routes=[
            *(Route(p, handle, methods=["POST"]) for p in paths),
            Route("/health", health), Route("/v1/models", models), Route("/v1/loads", loads),
            Route("/flush_cache", flush, methods=["POST"]),
        ])

    async def _stream(self, spec: dict):
        events = self.events(spec["stream"])
        try:
            for i, event in enumerate(events):
                if i == 1 and spec.get("gate"):
                    gate = self.gates.setdefault(spec["gate"], threading.Event())
                    while not gate.is_set():
                        await asyncio.sleep(0.005)
                yield event
                if spec.get("pace"):
                    await asyncio.sleep(spec["pace"])
        except (asyncio.CancelledError, GeneratorExit):
            self.closed.set()
            raise
        except OSError:
            self.closed.set()


class Servers:
    """Starts stubs and gateways in threads; :meth:`close` stops them all."""

    def __init__(self) -> None:
        self.threads: list[ServerThread] = []

    def stub(self, name: str, model: str = "stub-model") -> Stub:
        stub = Stub(name, model)
        thread = ServerThread(stub.app())
        self.threads.append(thread)
        stub.url = thread.start()
        return stub

    def gateway(self, server: str = "uvicorn", **settings) -> str:
        """A gateway on a free port; ``settings`` are GatewayConfig flat keys."""
        from smg.app import create_app
        from smg.config import GatewayConfig

        settings.setdefault("disable_load_monitoring", True)
        settings.setdefault("policy", "round_robin")
        settings.setdefault("retry_initial_backoff_ms", 1)
        thread = ServerThread(create_app(GatewayConfig.from_mapping(settings)), server=server)
        self.threads.append(thread)
        return thread.start()

    def close(self) -> None:
        for thread in self.threads:
            thread.request_stop()
        for thread in self.threads:
            thread.stop()


@pytest.fixture
def servers() -> Iterator[Servers]:
    s = Servers()
    yield s
    s.close()


@pytest.fixture(scope="module")
def module_servers() -> Iterator[Servers]:
    s = Servers()
    yield s
    s.close()


@pytest.fixture
def make_stub(servers: Servers):
    return servers.stub


@pytest.fixture
def make_gateway(servers: Servers):
    return servers.gateway

