"""What the Responses and Conversations endpoints share: the body, ids, lists, the store.

Errors are :mod:`smg.errors` classes (rendered OpenAI-style by the app's handler); a
:class:`~smg.storage.StorageError` becomes :class:`StorageUnavailable` (503).
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from smg.errors import BadRequest, SmgError
from smg.storage import HistoryStore, StorageError

__all__ = ["StorageUnavailable", "item_page", "json_response", "new_id", "read_object", "store_of", "stored"]

T = TypeVar("T")


class StorageUnavailable(SmgError):
    status_code = 503
    error_type = "storage_unavailable"


def new_id(prefix: str) -> str:
    """An OpenAI-style id: ``resp_``, ``msg_``, ``fc_``, ``rs_``, ``conv_`` + 48 hex digits."""
    return f"{prefix}_{secrets.token_hex(24)}"


async def read_object(request: Request) -> dict[str, Any]:
    """The request body as a JSON object (400 otherwise)."""
    try:
        raw = await request.body()
    except ClientDisconnect:
        raise BadRequest("the client left before its body was complete") from None
    if not raw.strip():
        return {}
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"the request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    return body


def json_response(data: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status, media_type="application/json")


def store_of(request: Request) -> HistoryStore:
    store = getattr(request.app.state.smg, "history", None)
    if store is None:
        backend = request.app.state.smg.config.history.history_backend
        raise StorageUnavailable(f"the history backend {backend!r} is not available in this gateway")
    return store


async def stored(call: Callable[[], Awaitable[T]]) -> T:
    """``await call()`` with a storage failure as a 503."""
    try:
        return await call()
    except StorageError as exc:
        raise StorageUnavailable(f"history storage failed: {exc}") from None


def list_params(request: Request, default_order: str) -> tuple[int, str, str | None]:
    """``limit`` (1..100, default 20), ``order`` (asc/desc) and ``after`` from the query."""
    q = request.query_params
    raw = q.get("limit", "20")
    try:
        limit = int(raw)
    except ValueError:
        raise BadRequest(f"'limit' must be an integer, not {raw!r}", param="limit") from None
    if not 1 <= limit <= 100:
        raise BadRequest("'limit' must be between 1 and 100", param="limit")
    order = q.get("order", default_order)
    if order not in ("asc", "desc"):
        raise BadRequest("'order' must be 'asc' or 'desc'", param="order")
    return limit, order, q.get("after") or None


def item_page(items: list[dict[str, Any]], has_more: bool) -> dict[str, Any]:
    """An OpenAI list object."""
    return {
        "object": "list", "data": items, "first_id": items[0]["id"] if items else None,
        "last_id": items[-1]["id"] if items else None, "has_more": has_more,
    }
