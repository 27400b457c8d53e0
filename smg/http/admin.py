"""Worker management: ``/workers`` (list, add, get, delete), ``/flush_cache``, ``/get_loads``.

Who may call these is decided before they run (:mod:`smg.security.guard`). Here: a URL
added at run time must suit the mode (``http(s)://`` or ``grpc://``) and pass the
allow-list and self-loop checks (:mod:`smg.security.urls`); worker URLs are shown with
their credentials redacted; every change leaves an audit line.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from smg.errors import BadRequest, Conflict, NotFound, SmgError
from smg.http.state import AppState
from smg.router import Worker, WorkerRole
from smg.security.audit import audit
from smg.security.urls import GRPC_SCHEMES, HTTP_SCHEMES, parse_worker_url, redact

__all__ = ["routes"]

FLUSH_TIMEOUT_SECS = 30.0


def json_response(data: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status, media_type="application/json")


def _state(request: Request) -> AppState:
    return request.app.state.smg


def shown(worker: Worker) -> dict[str, Any]:
    """``worker.to_dict()`` with the URL's credentials redacted."""
    data = worker.to_dict()
    data["url"] = redact(data["url"])
    return data


def _audit(request: Request, status: int, target: str | None = None) -> None:
    state = _state(request)
    audit(state.config.security.audit_enabled, request.scope.get("smg.principal"), request.method,
          request.url.path, status, target)


def audited(handler: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
    """A change handler whose refusals (bad URL, not allowed, unknown id ...) are audited too."""

    @functools.wraps(handler)
    async def run(request: Request) -> Response:
        try:
            return await handler(request)
        except SmgError as exc:
            _audit(request, exc.status_code, f"refused: {exc.message}")
            raise

    return run


async def list_workers(request: Request) -> Response:
    state = _state(request)
    model = request.query_params.get("model")
    workers = [shown(w) for w in state.registry.all() if model is None or w.serves(model)]
    return json_response({"workers": workers, "total": len(workers)})


@audited
async def add_worker(request: Request) -> Response:
    state = _state(request)
    spec = _worker_spec(await request.body())
    schemes = GRPC_SCHEMES if state.grpc is not None else HTTP_SCHEMES
    target = parse_worker_url(spec["url"], schemes=schemes)
    assert state.allow is not None
    await state.allow.check(target, state.listening(request.scope.get("server")))
    url = target.url
    role = spec["role"]
    if state.registry.find(url, role) is not None:
        raise Conflict(f"worker {redact(url)} is already registered", param="url")
    worker = await state.add_worker(
        url,
        model_id=spec["model_id"],
        role=role,
        labels=spec["labels"],
        bootstrap_port=spec["bootstrap_port"],
        source="api",
    )
    state.published("add", worker)
    _audit(request, 202, f"add {worker.id} {url}")
    return json_response({"status": "accepted", "worker_id": worker.id, "worker": shown(worker)}, 202)


def _worker_spec(body: bytes) -> dict[str, Any]:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"request body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise BadRequest("request body must be a JSON object")
    url = data.get("url")
    if not isinstance(url, str):
        raise BadRequest("'url' must be a string", param="url")
    model_id = data.get("model_id")
    models = data.get("models")
    if model_id is None and isinstance(models, list) and models and isinstance(models[0], str):
        model_id = models[0]
    if model_id is not None and not isinstance(model_id, str):
        raise BadRequest("'model_id' must be a string", param="model_id")
    try:
        role = WorkerRole(data.get("worker_type") or data.get("role") or "regular")
    except ValueError:
        raise BadRequest("'worker_type' must be regular, prefill or decode", param="worker_type") from None
    labels = data.get("labels") or {}
    if not isinstance(labels, dict) or not all(isinstance(v, str) for v in labels.values()):
        raise BadRequest("'labels' must be an object of strings", param="labels")
    port = data.get("bootstrap_port")
    if port is not None and type(port) is not int:
        raise BadRequest("'bootstrap_port' must be an integer", param="bootstrap_port")
    return {"url": url, "model_id": model_id, "role": role, "labels": labels, "bootstrap_port": port}


async def get_worker(request: Request) -> Response:
    worker = _state(request).registry.get(request.path_params["worker_id"])
    if worker is None:
        raise NotFound(f"no worker with id {request.path_params['worker_id']}")
    return json_response(shown(worker))


@audited
async def delete_worker(request: Request) -> Response:
    worker_id = request.path_params["worker_id"]
    state = _state(request)
    worker = state.remove_worker(worker_id)
    if worker is None:
        raise NotFound(f"no worker with id {worker_id}")
    state.published("remove", worker)
    _audit(request, 202, f"remove {worker_id} {worker.url}")
    return json_response({"status": "accepted", "worker_id": worker_id, "url": redact(worker.url)}, 202)


@audited
async def flush_cache(request: Request) -> Response:
    state = _state(request)
    workers = state.registry.all()
    results = await asyncio.gather(*(state.flush_worker(w, FLUSH_TIMEOUT_SECS) for w in workers))
    report = [
        {"worker": redact(w.url), "id": w.id, "status": status, "message": message}
        for w, (status, message) in zip(workers, results)
    ]
    ok = all(200 <= r["status"] < 300 for r in report)
    _audit(request, 200 if ok else 502, f"flush {len(workers)} workers")
    return json_response({"status": "ok" if ok else "partial", "workers": report}, 200 if ok else 502)


async def get_loads(request: Request) -> Response:
    state = _state(request)
    workers = [
        {
            "worker": redact(w.url),
            "id": w.id,
            "load": w.load,
            "report": asdict(w.load_report) if w.load_report is not None else None,
        }
        for w in state.registry.all()
    ]
    return json_response({"workers": workers})


routes = [
    Route("/workers", list_workers, methods=["GET"]),
    Route("/workers", add_worker, methods=["POST"]),
    Route("/workers/{worker_id}", get_worker, methods=["GET"]),
    Route("/workers/{worker_id}", delete_worker, methods=["DELETE"]),
    Route("/flush_cache", flush_cache, methods=["POST"]),
    Route("/get_loads", get_loads, methods=["GET"]),
]
