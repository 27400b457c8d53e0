"""The ``/v1/conversations`` routes (OpenAI Conversations API): conversations and their
items, kept in the history store (``smg.storage``). Items are checked and given ids the
way Responses input items are (``smg.api.responses.items``)."""

from __future__ import annotations

import time
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from smg.api.common import item_page, json_response, list_params, new_id, read_object, store_of, stored
from smg.api.responses.items import normalize_items
from smg.api.responses.request import check_metadata
from smg.errors import BadRequest, NotFound
from smg.storage import Conversation

__all__ = ["routes"]

MAX_ITEMS_PER_CALL = 20  # OpenAI's bound on items added by one call


def _items(body: dict[str, Any], required: bool) -> list[dict[str, Any]]:
    items = body.get("items")
    if items is None and not required:
        return []
    if not isinstance(items, list) or (required and not items):
        raise BadRequest("'items' must be a non-empty array of items", param="items")
    if len(items) > MAX_ITEMS_PER_CALL:
        raise BadRequest(f"'items' holds at most {MAX_ITEMS_PER_CALL} items", param="items")
    return normalize_items(items, "items")


def _missing(conversation_id: str) -> NotFound:
    return NotFound(f"conversation {conversation_id!r} not found", param="conversation_id")


async def create(request: Request) -> Response:
    body = await read_object(request)
    items = _items(body, required=False)
    conv = Conversation(new_id("conv"), int(time.time()), check_metadata(body.get("metadata")))
    store = store_of(request)
    await stored(lambda: store.create_conversation(conv, items))
    return json_response(conv.to_json())


async def _conversation(request: Request) -> Conversation:
    cid = request.path_params["conversation_id"]
    conv = await stored(lambda: store_of(request).get_conversation(cid))
    if conv is None:
        raise _missing(cid)
    return conv


async def retrieve(request: Request) -> Response:
    return json_response((await _conversation(request)).to_json())


async def update(request: Request) -> Response:
    body = await read_object(request)
    if "metadata" not in body:
        raise BadRequest("'metadata' is required", param="metadata")
    metadata = check_metadata(body["metadata"])
    cid = request.path_params["conversation_id"]
    conv = await stored(lambda: store_of(request).update_conversation(cid, metadata))
    if conv is None:
        raise _missing(cid)
    return json_response(conv.to_json())


async def delete(request: Request) -> Response:
    cid = request.path_params["conversation_id"]
    if not await stored(lambda: store_of(request).delete_conversation(cid)):
        raise _missing(cid)
    return json_response({"id": cid, "object": "conversation.deleted", "deleted": True})


async def list_items(request: Request) -> Response:
    limit, order, after = list_params(request, "desc")
    cid = request.path_params["conversation_id"]
    page = await stored(lambda: store_of(request).list_items(cid, limit=limit, order=order, after=after))  # type: ignore[arg-type]
    if page is None:
        raise _missing(cid)
    return json_response(item_page(page.items, page.has_more))


async def add_items(request: Request) -> Response:
    body = await read_object(request)
    items = _items(body, required=True)
    cid = request.path_params["conversation_id"]
    if not await stored(lambda: store_of(request).append_items(cid, items)):
        raise _missing(cid)
    return json_response(item_page(items, False))


async def get_item(request: Request) -> Response:
    cid, iid = request.path_params["conversation_id"], request.path_params["item_id"]
    store = store_of(request)
    item = await stored(lambda: store.get_item(cid, iid))
    if item is None:
        if await stored(lambda: store.get_conversation(cid)) is None:
            raise _missing(cid)
        raise NotFound(f"item {iid!r} not found in conversation {cid!r}", param="item_id")
    return json_response(item)


async def delete_item(request: Request) -> Response:
    cid, iid = request.path_params["conversation_id"], request.path_params["item_id"]
    store = store_of(request)
    if not await stored(lambda: store.delete_item(cid, iid)):
        if await stored(lambda: store.get_conversation(cid)) is None:
            raise _missing(cid)
        raise NotFound(f"item {iid!r} not found in conversation {cid!r}", param="item_id")
    return json_response((await _conversation(request)).to_json())


routes = [
    Route("/v1/conversations", create, methods=["POST"]),
    Route("/v1/conversations/{conversation_id}", retrieve, methods=["GET"]),
    Route("/v1/conversations/{conversation_id}", update, methods=["POST"]),
    Route("/v1/conversations/{conversation_id}", delete, methods=["DELETE"]),
    Route("/v1/conversations/{conversation_id}/items", list_items, methods=["GET"]),
    Route("/v1/conversations/{conversation_id}/items", add_items, methods=["POST"]),
    Route("/v1/conversations/{conversation_id}/items/{item_id}", get_item, methods=["GET"]),
    Route("/v1/conversations/{conversation_id}/items/{item_id}", delete_item, methods=["DELETE"]),
]
