"""``create_app(engine)``: the worker's OpenAI/SGLang HTTP routes as one Starlette app.

Routes (each an ASGI endpoint class, see ``asgi.Endpoint``)::

    POST /v1/chat/completions   POST /v1/completions   POST /generate
    GET  /v1/models             GET  /health           GET  /health_generate
    GET  /get_model_info        GET  /get_server_info  GET  /v1/loads   GET /get_load
    GET  /metrics               POST /flush_cache      POST /abort_request
    GET  /smg/aborted_rids

Unknown paths and wrong methods get OpenAI error bodies (404, 405), as every error does.
"""

from __future__ import annotations

import logging
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from smg.engine.http import admin
from smg.engine.http.errors import HTTPError, error_body
from smg.engine.http.generate import Generate
from smg.engine.http.openai_routes import ChatCompletions, Completions
from smg.engine.http.context import WorkerContext

__all__ = ["create_app"]

log = logging.getLogger("smg.engine.http")

_ERROR_TYPES = {404: "not_found_error", 405: "invalid_request_error"}


def _http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    status = exc.status_code
    if status == 404:
        message = f"no route {request.method} {request.url.path}"
    elif status == 405:
        message = f"method {request.method} not allowed on {request.url.path}"
    else:
        message = str(exc.detail)
    return Response(
        error_body(status, message, _ERROR_TYPES.get(status, "invalid_request_error")),
        status_code=status,
        headers=exc.headers,
        media_type="application/json",
    )


def _server_error(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    err = HTTPError(f"internal error: {type(exc).__name__}")
    return Response(err.body(), status_code=500, media_type="application/json")


class WorkerApp(Starlette):
    """Starlette with a dict lookup in front: a known path and method goes straight to
    its endpoint (the endpoints render their own errors), skipping the middleware stack
    and the route scan (~17 µs a request here); everything else (404, 405, HEAD, other
    scopes) takes Starlette's path."""

    def __init__(self, fast: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._fast = fast

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            endpoint = self._fast.get(scope["path"])
            if endpoint is not None and scope["method"] in endpoint.methods:
                await endpoint(scope, receive, send)
                return
        await super().__call__(scope, receive, send)


def create_app(engine: Any) -> Starlette:
    """The worker's HTTP app over ``engine`` (``smg.engine.core.Engine`` or alike)."""
    ctx = WorkerContext.for_engine(engine)
    endpoints: list[tuple[str, Any]] = [
        ("/v1/chat/completions", ChatCompletions(ctx)),
        ("/v1/completions", Completions(ctx)),
        ("/generate", Generate(ctx)),
        ("/v1/models", admin.Models(engine)),
        ("/health", admin.Health(engine)),
        ("/health_generate", admin.HealthGenerate(engine)),
        ("/get_model_info", admin.ModelInfo(engine)),
        ("/get_server_info", admin.ServerInfo(engine)),
        ("/v1/loads", admin.Loads(engine)),
        ("/get_load", admin.GetLoad(engine)),
        ("/metrics", admin.Metrics(engine)),
        ("/flush_cache", admin.FlushCache(engine)),
        ("/abort_request", admin.AbortRequest(engine, ctx.inflight)),
        ("/smg/aborted_rids", admin.AbortedRids(engine)),
    ]
    routes = [Route(path, ep, methods=list(ep.methods)) for path, ep in endpoints]
    app = WorkerApp(
        dict(endpoints),
        routes=routes,
        exception_handlers={HTTPException: _http_exception, Exception: _server_error},
    )
    app.state.ctx = ctx
    return app
