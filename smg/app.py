"""``create_app(config)``: the gateway as one Starlette app.

The lifespan builds the :class:`~smg.http.state.AppState` (workers, policy, pooled
upstream client, background loops) and keeps it on ``app.state.smg``; endpoints read it
from there. Every :class:`~smg.errors.SmgError` renders as an OpenAI-style JSON error.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.routing import Route

from smg.config import GatewayConfig
from smg.errors import SmgError, error_handler
from smg.http import admin, grpc_endpoints, health, parse
from smg.http.middleware import BodyLimitMiddleware, FastRoutes, RequestIdMiddleware
from smg.http.proxy import ProxyEndpoint
from smg.http.state import AppState
from smg.protocol import PARSERS

__all__ = ["create_app"]


def create_app(config: GatewayConfig | None = None) -> Starlette:
    config = config or GatewayConfig()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        state = await AppState.start(config)
        app.state.smg = state
        try:
            yield
        finally:
            await state.close()

    middleware = [
        Middleware(RequestIdMiddleware, header_names=config.server.request_id_headers),
        Middleware(BodyLimitMiddleware, max_bytes=config.server.max_payload_size),
    ]
    if config.grpc_mode():
        if not all(u.startswith(("grpc://", "grpcs://")) for u in config.routing.worker_urls):
            raise ValueError("worker URLs mix grpc:// and http:// workers; run one gateway per mode")
        generate_routes = list(grpc_endpoints.routes)
    else:
        proxies = {path: ProxyEndpoint(path) for path in PARSERS}
        generate_routes = [Route(path, endpoint, methods=["POST"]) for path, endpoint in proxies.items()]
        middleware.append(Middleware(FastRoutes, endpoints=proxies))
    return Starlette(
        routes=[*generate_routes, *health.routes, *admin.routes, *parse.routes],
        middleware=middleware,
        exception_handlers={SmgError: error_handler, HTTPException: error_handler, Exception: error_handler},
        lifespan=lifespan,
    )
