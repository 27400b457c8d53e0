"""``create_app(config)``: the gateway as one ASGI app.

A Starlette app serves every route; in front of it, :class:`~smg.http.middleware.Front`
handles request ids and the body limit for all requests and sends the hot ``POST`` paths
(the proxy or gRPC-mode generation endpoints) straight to their endpoints. The lifespan
builds the :class:`~smg.http.state.AppState` (workers, policy, pooled upstream client,
background loops) and keeps it on ``app.state.smg``; endpoints read it from there. Every :class:`~smg.errors.SmgError` renders as an OpenAI-style JSON error.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import AsyncIterator, Callable

from starlette.applications import Starlette
from starlette.datastructures import State
from starlette.exceptions import HTTPException
from starlette.routing import Route
from starlette.types import ASGIApp

from smg import api
from smg.config import GatewayConfig
from smg.errors import SmgError, error_handler
from smg.http import admin, grpc_endpoints, health, parse
from smg.http.access_log import AccessLog, access_log_enabled
from smg.http.admission import Admission
from smg.http.middleware import Front, request_endpoint
from smg.http.proxy import ProxyEndpoint
from smg.http.state import AppState
from smg.protocol import PARSERS
from smg.security.guard import Guard

__all__ = ["create_app"]


def create_app(
    config: GatewayConfig | None = None,
    *,
    state: AppState | None = None,
    on_ready: Callable[[AppState], None] | None = None,
) -> ASGIApp:
    """The gateway app for ``config``. Its lifespan builds the :class:`AppState` (or takes
    ``state``, already started on the serving loop) and closes it at shutdown;
    ``on_ready(state)`` runs once start-up is complete."""
    config = config or GatewayConfig()
    prebuilt = state

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        state = prebuilt if prebuilt is not None else await AppState.start(config)
        app.state.smg = state
        if on_ready is not None:
            on_ready(state)
        try:
            yield
        finally:
            await api.shutdown()  # background responses, while the store is open
            await state.close()

    fast: dict[str, ASGIApp]
    if config.grpc_mode():
        if not all(u.startswith(("grpc://", "grpcs://")) for u in config.routing.worker_urls):
            raise ValueError("worker URLs mix grpc:// and http:// workers; run one gateway per mode")
        generate_routes = list(grpc_endpoints.routes)
        fast = {r.path: _fast_endpoint(r) for r in generate_routes
                if isinstance(r, Route) and r.methods == {"POST"} and not r.param_convertors}
    else:
        fast = {path: ProxyEndpoint(path) for path in PARSERS}
        generate_routes = [Route(path, endpoint, methods=["POST"]) for path, endpoint in fast.items()]
    api_routes = api.routes()
    fast.update((r.path, _fast_endpoint(r)) for r in api_routes if r.path == "/v1/responses")  # POST only
    app = Starlette(
        routes=[*generate_routes, *health.routes, *admin.routes, *parse.routes, *api_routes],
        exception_handlers={SmgError: error_handler, HTTPException: error_handler, Exception: error_handler},
        lifespan=lifespan,
    )
    app.state = _GatewayState()
    app.state.guard = guard = Guard.build(config.security, listen_host=config.server.host)  # /metrics reads it
    app.state.admission = admission = Admission.build(  # /metrics reads it
        config, workers=lambda: app.state.smg.registry.available())
    front = Front(app, fast=fast, header_names=config.server.request_id_headers,
                  max_bytes=config.server.max_payload_size, guard=guard, admission=admission)
    return AccessLog(front) if config.server.access_log and access_log_enabled() else front


class _GatewayState(State):
    """Starlette's ``app.state`` with ``smg`` as a plain attribute: every request reads
    ``app.state.smg``, and State keeps its items where only a Python-level
    ``__getattr__`` finds them."""

    def __setattr__(self, key: str, value: object) -> None:
        if key == "smg":
            object.__setattr__(self, key, value)
        else:
            super().__setattr__(key, value)

    def __delattr__(self, key: str) -> None:
        if key == "smg":
            object.__delattr__(self, key)
        else:
            super().__delattr__(key)


def _fast_endpoint(route: Route) -> ASGIApp:
    """The ASGI app a fast route calls for ``route``: a request/response function without
    Starlette's per-request wrapping, anything else as the route would call it."""
    if inspect.isfunction(route.endpoint) or inspect.ismethod(route.endpoint):
        return request_endpoint(route.endpoint)
    return route.app
