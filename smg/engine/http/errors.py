"""HTTP errors of the reference worker, rendered as OpenAI error bodies.

Every error the worker answers with is one JSON shape, the one OpenAI, vLLM and SGLang
clients parse::

    {"error": {"message": ..., "type": ..., "param": null, "code": <HTTP status>}}

Hierarchy (status, ``error.type``)::

    HTTPError                 500 internal_server_error
    ├── BadRequest            400 invalid_request_error   (bad JSON, wrong types, bad values)
    ├── NotFound              404 not_found_error          (no such route / request id)
    │   └── ModelNotFound     404 model_not_found          (the body names another model)
    ├── MethodNotAllowed      405 invalid_request_error
    ├── PayloadTooLarge       413 invalid_request_error
    ├── EngineFailed          500 internal_server_error    (the engine raised, or a fault)
    └── Unavailable           503 service_unavailable      (unhealthy, injected or real)
"""

from __future__ import annotations

from typing import ClassVar

import orjson

__all__ = [
    "BadRequest",
    "EngineFailed",
    "HTTPError",
    "MethodNotAllowed",
    "ModelNotFound",
    "NotFound",
    "PayloadTooLarge",
    "Unavailable",
    "error_body",
]


def error_body(status: int, message: str, error_type: str, param: str | None = None) -> bytes:
    """The OpenAI error JSON for one error (bytes, ready to send)."""
    return orjson.dumps(
        {"error": {"message": message, "type": error_type, "param": param, "code": status}}
    )


class HTTPError(Exception):
    """An error answered with ``status`` and an OpenAI error body."""

    status: ClassVar[int] = 500
    error_type: ClassVar[str] = "internal_server_error"

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param

    def body(self) -> bytes:
        return error_body(self.status, self.message, self.error_type, self.param)

    def event(self) -> bytes:
        """The same error as one SSE event (for failures after the stream started)."""
        return b"data: " + self.body() + b"\n\n"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r})"


class BadRequest(HTTPError):
    status = 400
    error_type = "invalid_request_error"


class NotFound(HTTPError):
    status = 404
    error_type = "not_found_error"


class ModelNotFound(NotFound):
    error_type = "model_not_found"


class MethodNotAllowed(HTTPError):
    status = 405
    error_type = "invalid_request_error"


class PayloadTooLarge(HTTPError):
    status = 413
    error_type = "invalid_request_error"


class EngineFailed(HTTPError):
    status = 500
    error_type = "internal_server_error"


class Unavailable(HTTPError):
    status = 503
    error_type = "service_unavailable"
