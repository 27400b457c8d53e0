"""``/parse/function_call`` and ``/parse/reasoning``: run the parsers on supplied text."""

from __future__ import annotations

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from smg.errors import BadRequest
from smg.parsers.api import parse_request

__all__ = ["routes"]


async def parse_endpoint(request: Request) -> Response:
    try:
        body = orjson.loads(await request.body())
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"the request body is not valid JSON: {exc}") from None
    return Response(orjson.dumps(parse_request(request.url.path, body)), media_type="application/json")


routes = [
    Route("/parse/function_call", parse_endpoint, methods=["POST"]),
    Route("/parse/reasoning", parse_endpoint, methods=["POST"]),
]
