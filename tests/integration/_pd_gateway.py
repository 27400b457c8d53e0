"""A minimal gateway around ``PDHttpExecutor`` (registry, pair router, pooled client).

The PD executor is driven here exactly as the proxy endpoint drives it: the body read
whole, routed on its parsed fields, a disconnect cancelling the request task.
"""

from __future__ import annotations

import asyncio
import contextlib
from types import SimpleNamespace

import openai
from starlette.applications import Starlette
from starlette.routing import Route

from smg.clients.http import UpstreamClient, forward_headers
from smg.errors import SmgError, error_handler
from smg.http.pd import PDHttpExecutor
from smg.http.pd_body import PD_PATHS
from smg.http.pd_metrics import PDMetrics
from smg.protocol import PARSERS
from smg.router import RequestInfo, RetryConfig, Worker, WorkerRegistry, WorkerRole, create_policy
from smg.router.pd import PDRouter
from smg.serve import ServerThread


class _Endpoint:
    def __init__(self, path: str, gw: SimpleNamespace) -> None:
        self.path = path
        self.gw = gw

    async def __call__(self, scope, receive, send) -> None:
        chunks = []
        while True:
            msg = await receive()
            chunks.append(msg.get("body", b""))
            if not msg.get("more_body"):
                break
        body = b"".join(chunks)
        fields = PARSERS[self.path](body)
        info = RequestInfo(fields.text, fields.token_ids, {}, fields.model, fields.user)
        ex = SimpleNamespace(path=self.path, send=send, info=info, body=body,
                             headers=forward_headers(scope["headers"]), finished=False)
        task = asyncio.current_task()

        async def watch() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            if not ex.finished:
                task.cancel()

        watcher = asyncio.ensure_future(watch())
        try:
            await self.gw.executor.route(ex)
        except asyncio.CancelledError:
            pass
        finally:
            ex.finished = True
            watcher.cancel()


def pd_gateway(prefills: list[tuple[str, int | None]], decodes: list[str], *, style: str = "auto",
               policy: str = "round_robin", retries: int = 3) -> SimpleNamespace:
    gw = SimpleNamespace(registry=WorkerRegistry(), metrics=PDMetrics())
    for url, port in prefills:
        gw.registry.add(Worker(url, role=WorkerRole.PREFILL, bootstrap_port=port))
    for url in decodes:
        gw.registry.add(Worker(url, role=WorkerRole.DECODE))
    gw.pd = PDRouter(gw.registry, create_policy(policy), create_policy(policy))
    retry = RetryConfig(max_retries=retries, initial_backoff_ms=1)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        client = UpstreamClient(request_timeout=30, connect_timeout=5)
        await client.start()
        gw.executor = PDHttpExecutor(gw.pd, client, retry, style=style, metrics=gw.metrics)
        try:
            yield
        finally:
            await client.close()

    app = Starlette(routes=[Route(p, _Endpoint(p, gw), methods=["POST"]) for p in PD_PATHS],
                    exception_handlers={SmgError: error_handler, Exception: error_handler}, lifespan=lifespan)
    gw.server = ServerThread(app)
    gw.url = gw.server.start()
    gw.client = openai.OpenAI(base_url=gw.url + "/v1", api_key="unused", max_retries=0, timeout=30)
    return gw
