"""The ``/v1/responses`` routes (OpenAI Responses API)."""

from __future__ import annotations

import asyncio
import weakref
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from smg.api.common import item_page, json_response, list_params, read_object, store_of, stored
from smg.api.responses.request import parse_request
from smg.api.responses.run import Run, cancel_background, stream_of
from smg.errors import BadRequest, NotFound

__all__ = ["routes"]


async def create(request: Request) -> Response:
    body = await read_object(request)
    state = request.app.state.smg
    if state.config.history.responses_passthrough and state.grpc is None:
        return await _passthrough(request)
    req = parse_request(body)
    store = store_of(request)
    if req.background and store.name == "none":
        raise BadRequest("a background response needs a history backend that stores it "
                         "(this gateway runs with --history-backend none)", param="background")
    run = Run(state, request.scope, store, req)
    await run.load_context()
    if req.background:
        started = await run.start_background()
        return json_response(started) if isinstance(started, dict) else _events(started)
    if req.stream:
        return _events(await run.open_stream())
    return json_response(await run.whole())


def _events(body) -> Response:
    from smg.http.grpc_endpoints import EventStream

    return EventStream(body)


async def _passthrough(request: Request) -> Response:
    """``--responses-passthrough``: the original request to a worker, through the proxy
    endpoint machinery (routing, retries), its answer relayed as it comes."""
    from smg.http.proxy import ProxyEndpoint

    loop = asyncio.get_running_loop()
    endpoint = _PASSTHROUGH.get(loop)
    if endpoint is None:
        endpoint = _PASSTHROUGH[loop] = ProxyEndpoint("/v1/chat/completions")
        endpoint.path, endpoint.parse = "/v1/responses", _routing_fields
    raw = await request.body()
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": raw, "more_body": False}
        return await request.receive()

    return _Raw(endpoint, receive)


_PASSTHROUGH: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # one proxy endpoint per event loop


def _routing_fields(raw: bytes) -> Any:
    """What the router needs of a Responses body: the model, the input text (cache-aware
    routing), stream, user. The body was checked to be a JSON object already."""
    import orjson

    from smg.protocol.routing import RoutingFields

    body = orjson.loads(raw)
    text = body.get("input")
    if isinstance(text, list):
        text = " ".join(str(i.get("content") or "") for i in text if isinstance(i, dict))
    str_or_none = lambda v: v if isinstance(v, str) else None  # noqa: E731
    return RoutingFields(model=str_or_none(body.get("model")), text=str_or_none(text),
                         stream=body.get("stream") is True, user=str_or_none(body.get("user")))


class _Raw(Response):
    def __init__(self, app: Any, receive: Any) -> None:  # noqa: D107
        self.app = app
        self._receive = receive
        self.background = None

    async def __call__(self, scope, receive, send) -> None:  # type: ignore[override]
        await self.app(scope, self._receive, send)


async def _record(request: Request):
    response_id = request.path_params["response_id"]
    record = await stored(lambda: store_of(request).get_response(response_id))
    if record is None:
        raise NotFound(f"response {response_id!r} not found", param="response_id")
    return record


async def retrieve(request: Request) -> Response:
    """The stored response; with ``stream=true``, the events of a background response
    streaming in this gateway process, after ``starting_after``."""
    record = await _record(request)
    q = request.query_params
    if q.get("stream", "false").lower() != "true":
        return json_response(record.body)
    try:
        after = int(q.get("starting_after", "-1"))
    except ValueError:
        raise BadRequest("'starting_after' must be an integer (a sequence number)", param="starting_after") from None
    events = stream_of(record.id, after)
    if events is None:
        raise BadRequest("only a background response streamed by this gateway process (within "
                         "5 minutes of its end) can be streamed again", param="stream")
    return _events(events)


async def delete(request: Request) -> Response:
    response_id = request.path_params["response_id"]
    if not await stored(lambda: store_of(request).delete_response(response_id)):
        raise NotFound(f"response {response_id!r} not found", param="response_id")
    return json_response({"id": response_id, "object": "response", "deleted": True})


async def cancel(request: Request) -> Response:
    return json_response(await cancel_background(store_of(request), request.path_params["response_id"]))


async def input_items(request: Request) -> Response:
    limit, order, after = list_params(request, "desc")
    items = list((await _record(request)).input_items)
    if order == "desc":
        items.reverse()
    if after is not None:
        ids = [i["id"] for i in items]
        items = items[ids.index(after) + 1:] if after in ids else []
    return json_response(item_page(items[:limit], len(items) > limit))


routes = [
    Route("/v1/responses", create, methods=["POST"]),
    Route("/v1/responses/{response_id}", retrieve, methods=["GET"]),
    Route("/v1/responses/{response_id}", delete, methods=["DELETE"]),
    Route("/v1/responses/{response_id}/cancel", cancel, methods=["POST"]),
    Route("/v1/responses/{response_id}/input_items", input_items, methods=["GET"]),
]
