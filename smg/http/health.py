"""Public routes: ``/health``, ``/liveness``, ``/readiness``, ``/v1/models``, ``/metrics``."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from smg.http import bounds
from smg.http.admin import json_response
from smg.http.state import AppState
from smg.metrics import CONTENT_TYPE

__all__ = ["routes"]

MODELS_TIMEOUT_SECS = 5.0


async def liveness(request: Request) -> Response:
    return json_response({"status": "ok"})


async def readiness(request: Request) -> Response:
    if getattr(request.app.state, "draining", False):  # smg.serve: shutting down, finishing requests
        return json_response({"status": "not ready", "reason": "draining"}, 503)
    state: AppState = request.app.state.smg
    healthy = len(state.registry.available())
    if healthy:
        return json_response({"status": "ready", "healthy_workers": healthy})
    return json_response({"status": "not ready", "reason": "no healthy workers"}, 503)


async def models(request: Request) -> Response:
    """Models named by the workers (their ``/v1/models`` is asked when they named none).
    Only the model ids are taken from a worker's answer: its body is never passed on."""
    state: AppState = request.app.state.smg
    ids = state.registry.models()
    if not ids:
        for worker in state.registry.available():
            data = await state.client.get_json(worker.url + "/v1/models", MODELS_TIMEOUT_SECS)
            if isinstance(data, dict) and isinstance(data.get("data"), list):
                ids = [m["id"] for m in data["data"] if isinstance(m, dict) and isinstance(m.get("id"), str)]
                break
    data = [{"id": m, "object": "model", "created": 0, "owned_by": "smg"} for m in ids]
    return json_response({"object": "list", "data": data})


async def metrics(request: Request) -> Response:
    state: AppState = request.app.state.smg
    guard = getattr(request.app.state, "guard", None)
    body = state.metrics.render() + (guard.metrics() if guard is not None else b"") + bounds.render(state)
    admission = getattr(request.app.state, "admission", None)
    if admission is not None:
        body += admission.metrics()
    return Response(body, media_type=CONTENT_TYPE)


routes = [
    Route("/health", liveness, methods=["GET"]),
    Route("/liveness", liveness, methods=["GET"]),
    Route("/readiness", readiness, methods=["GET"]),
    Route("/v1/models", models, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"]),
]
