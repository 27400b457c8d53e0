"""Errors the gateway turns into HTTP responses.

Every class carries the HTTP status and the OpenAI error ``type`` it is rendered with, so
one Starlette exception handler (:func:`error_handler`) renders them all as::

    {"error": {"message": ..., "type": ..., "param": null, "code": <status>}}

Hierarchy::

    SmgError                      500 internal_error
    ├── BadRequest                400 invalid_request_error   (bad JSON, wrong types)
    ├── NotFound                  404 not_found_error
    │   └── ModelNotFound         404 model_not_found         (no worker serves the model)
    ├── Conflict                  409 conflict_error          (worker already registered)
    ├── PayloadTooLarge           413 invalid_request_error
    ├── WorkerRefused             4xx (the worker's status)   (the worker refused the request)
    ├── UpstreamError             502 upstream_error          (worker failed after retries)
    ├── NoHealthyWorker           503 service_unavailable     (nothing to route to)
    └── UpstreamTimeout           504 timeout_error           (worker did not answer in time)
"""

from __future__ import annotations

from typing import ClassVar

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Send

__all__ = [
    "BadRequest",
    "Conflict",
    "ModelNotFound",
    "NoHealthyWorker",
    "NotFound",
    "PayloadTooLarge",
    "SmgError",
    "UpstreamError",
    "UpstreamTimeout",
    "WorkerRefused",
    "error_body",
    "error_handler",
    "error_response",
    "send_error",
]


class SmgError(Exception):
    """Base class: an error with an HTTP status and an OpenAI error type."""

    status_code: ClassVar[int] = 500
    error_type: ClassVar[str] = "internal_error"

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r})"


class BadRequest(SmgError):
    status_code = 400
    error_type = "invalid_request_error"


class NotFound(SmgError):
    status_code = 404
    error_type = "not_found_error"


class ModelNotFound(NotFound):
    error_type = "model_not_found"


class Conflict(SmgError):
    status_code = 409
    error_type = "conflict_error"


class PayloadTooLarge(SmgError):
    status_code = 413
    error_type = "invalid_request_error"


class WorkerRefused(SmgError):
    """A worker refused the request itself (gRPC INVALID_ARGUMENT, an over-long prompt):
    the client's error, with the worker's status (400, 404, 429, 501) and message."""

    status_code = 400
    error_type = "invalid_request_error"

    def __init__(self, message: str, status: int = 400, *, param: str | None = None) -> None:
        super().__init__(message, param=param)
        self.status_code = status  # type: ignore[misc] - per instance, not per class
        if status == 429:
            self.error_type = "rate_limit_error"  # type: ignore[misc]
        elif status == 501:
            self.error_type = "not_implemented"  # type: ignore[misc]


class UpstreamError(SmgError):
    status_code = 502
    error_type = "upstream_error"


class NoHealthyWorker(SmgError):
    status_code = 503
    error_type = "service_unavailable"


class UpstreamTimeout(SmgError):
    status_code = 504
    error_type = "timeout_error"


def error_body(status: int, message: str, error_type: str, param: str | None = None) -> bytes:
    return orjson.dumps(
        {"error": {"message": message, "type": error_type, "param": param, "code": status}}
    )


def error_response(exc: SmgError, headers: dict[str, str] | None = None) -> Response:
    body = error_body(exc.status_code, exc.message, exc.error_type, exc.param)
    return Response(body, exc.status_code, headers=headers, media_type="application/json")


async def send_error(send: Send, exc: SmgError) -> None:
    """Answer with ``exc`` over raw ASGI (for endpoints outside Starlette's handlers)."""
    body = error_body(exc.status_code, exc.message, exc.error_type, exc.param)
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": exc.status_code, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def error_handler(request: Request, exc: Exception) -> Response:
    """Starlette exception handler for :class:`SmgError` (and Starlette's HTTPException)."""
    if isinstance(exc, SmgError):
        return error_response(exc)
    status = getattr(exc, "status_code", 500)
    detail = getattr(exc, "detail", None) or "internal error"
    kind = "not_found_error" if status == 404 else "invalid_request_error"
    if status >= 500:
        kind = "internal_error"
    return Response(error_body(status, str(detail), kind), status, media_type="application/json")
