"""``--responses-passthrough``: proxy mode forwards POST /v1/responses as it came to a
worker that has the Responses API itself (here a small one made in the test), through
the proxy machinery, and relays its answer. Without it, the chat completion the gateway
sends for a Responses request carries no credential the gateway itself checked."""

from __future__ import annotations

import json

import openai
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from smg.app import create_app
from smg.config import GatewayConfig, HistorySettings, RoutingConfig
from smg.serve import ServerThread

SEEN: list[dict] = []
CHAT_HEADERS: list[dict] = []


async def chat_completions(request: Request) -> Response:
    CHAT_HEADERS.append(dict(request.headers))
    return JSONResponse({"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "w",
                         "choices": [{"index": 0, "finish_reason": "stop",
                                      "message": {"role": "assistant", "content": "chat answer"}}],
                         "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}})


async def responses(request: Request) -> Response:
    body = json.loads(await request.body())
    SEEN.append(body)
    if body.get("stream"):
        events = [
            {"type": "response.created", "sequence_number": 0, "response": _resp("in_progress", [])},
            {"type": "response.completed", "sequence_number": 1, "response": _resp("completed", [_msg()])},
        ]
        data = b"".join(b"event: %s\ndata: %s\n\n" % (e["type"].encode(), json.dumps(e).encode()) for e in events)
        return Response(data, media_type="text/event-stream")
    return JSONResponse(_resp("completed", [_msg()]))


def _msg() -> dict:
    return {"type": "message", "id": "msg_w", "role": "assistant", "status": "completed",
            "content": [{"type": "output_text", "text": "from the worker", "annotations": []}]}


def _resp(status: str, output: list) -> dict:
    return {"id": "resp_worker", "object": "response", "created_at": 1, "status": status, "model": "w",
            "output": output, "parallel_tool_calls": True, "tool_choice": "auto", "tools": []}


def _worker_app() -> Starlette:
    return Starlette(routes=[
        Route("/v1/responses", responses, methods=["POST"]),
        Route("/v1/chat/completions", chat_completions, methods=["POST"]),
        Route("/v1/models", lambda r: JSONResponse({"object": "list", "data": [{"id": "w", "object": "model"}]})),
        Route("/health", lambda r: Response("ok")),
    ])


@pytest.fixture(scope="module")
def client():
    worker = ServerThread(_worker_app())
    url = worker.start()
    config = GatewayConfig(
        routing=RoutingConfig(worker_urls=(url,), disable_load_monitoring=True),
        history=HistorySettings(history_backend="memory", responses_passthrough=True),
    )
    gateway = ServerThread(create_app(config))
    base = gateway.start()
    yield openai.OpenAI(base_url=base + "/v1", api_key="unused", max_retries=0, timeout=30)
    gateway.stop()
    worker.stop()


def test_forwarded_as_is(client) -> None:
    SEEN.clear()
    resp = client.responses.create(model="w", input="hi", previous_response_id="resp_known_to_the_worker")
    assert resp.id == "resp_worker" and resp.output_text == "from the worker"
    assert SEEN == [{"model": "w", "input": "hi", "previous_response_id": "resp_known_to_the_worker"}]


def test_streamed(client) -> None:
    with client.responses.stream(model="w", input="hi") as stream:
        kinds = [e.type for e in stream]
        final = stream.get_final_response()
    assert kinds == ["response.created", "response.completed"] and final.output_text == "from the worker"


def test_the_gateways_key_is_not_passed_to_the_worker() -> None:
    from smg.config import SecuritySettings

    worker = ServerThread(_worker_app())
    url = worker.start()
    config = GatewayConfig(routing=RoutingConfig(worker_urls=(url,), disable_load_monitoring=True),
                           history=HistorySettings(history_backend="memory"),
                           security=SecuritySettings(api_key="gateway-key"))
    gateway = ServerThread(create_app(config))
    client = openai.OpenAI(base_url=gateway.start() + "/v1", api_key="gateway-key", max_retries=0, timeout=30)
    try:
        CHAT_HEADERS.clear()
        assert client.responses.create(model="w", input="hi").output_text == "chat answer"
        (headers,) = CHAT_HEADERS
        assert "authorization" not in headers and "gateway-key" not in json.dumps(headers)
    finally:
        gateway.stop()
        worker.stop()
