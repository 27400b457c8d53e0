"""smg.http.middleware.Front over a real uvicorn server: request ids, the body limit, fast
routes and their errors, and what it hands to the Starlette app behind it."""

from __future__ import annotations

import asyncio
import os
import re
import socket
from collections.abc import Iterator

import aiohttp
import orjson
import pytest
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from smg.errors import BadRequest, SmgError, error_handler
from smg.http.middleware import Front, random_hex, request_endpoint
from smg.serve import ServerThread

LIMIT = 1024


async def echo(scope, receive, send) -> None:
    """A pure-ASGI fast endpoint: answers with what it saw."""
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    out = {"rid": scope["smg.request_id"], "len": len(b"".join(chunks)), "app": type(scope["app"]).__name__}
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": orjson.dumps(out)})


async def boom(scope, receive, send) -> None:
    raise RuntimeError("secret detail of a bug")


async def late_boom(scope, receive, send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"10")]})
    await send({"type": "http.response.body", "body": b"12345", "more_body": True})
    raise RuntimeError("failed mid-body")


async def bad_request(request: Request) -> Response:
    await request.body()
    raise BadRequest("no good", param="x")


async def not_allowed(request: Request) -> Response:
    raise HTTPException(405, "nope")


async def starlette_echo(request: Request) -> Response:
    body = await request.body()
    return Response(orjson.dumps({"len": len(body), "rid": request.scope["smg.request_id"]}),
                    media_type="application/json")


async def liveness(request: Request) -> Response:
    return Response(b"{}", media_type="application/json")


def make_front() -> Front:
    app = Starlette(
        routes=[Route("/slow", starlette_echo, methods=["POST"]), Route("/liveness", liveness)],
        exception_handlers={SmgError: error_handler, HTTPException: error_handler, Exception: error_handler},
    )
    fast = {"/v1/chat/completions": echo, "/v1/completions": echo, "/boom": boom, "/late-boom": late_boom,
            "/bad": request_endpoint(bad_request), "/not-allowed": request_endpoint(not_allowed)}
    return Front(app, fast=fast, header_names=("x-request-id", "x-correlation-id"), max_bytes=LIMIT)


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    with ServerThread(make_front()) as base:
        yield base


async def call(url: str, path: str, data=b"{}", method: str = "POST", **kw):
    async with aiohttp.ClientSession() as s, s.request(method, url + path, data=data, **kw) as r:
        return r.status, orjson.loads(await r.read()), r.headers


def assert_openai_error(body: dict, status: int, error_type: str) -> None:
    err = body["error"]
    assert err["code"] == status and err["type"] == error_type and isinstance(err["message"], str)


async def test_fast_route_gets_the_app_and_a_made_up_request_id(url):
    status, body, headers = await call(url, "/v1/chat/completions", b"x" * 100)
    assert status == 200 and body["len"] == 100 and body["app"] == "Starlette"
    assert headers["x-request-id"] == body["rid"]
    assert re.fullmatch(r"chatcmpl-[0-9a-f]{24}", body["rid"])
    _, other, _ = await call(url, "/v1/completions")
    assert re.fullmatch(r"cmpl-[0-9a-f]{24}", other["rid"]) and other["rid"][5:] != body["rid"][9:]


async def test_the_earliest_listed_id_header_wins(url):
    headers = {"x-correlation-id": "later", "x-request-id": "first"}
    _, body, echoed = await call(url, "/v1/chat/completions", headers=headers)
    assert body["rid"] == "first" and echoed["x-request-id"] == "first"
    _, body, echoed = await call(url, "/slow", headers={"x-correlation-id": "corr-7"})
    assert body["rid"] == "corr-7" and echoed["x-request-id"] == "corr-7"


async def test_made_up_ids_do_not_repeat(url):
    ids = await asyncio.gather(*(call(url, "/slow") for _ in range(40)))
    rids = [body["rid"] for _, body, _ in ids]
    assert len(set(rids)) == len(rids) and all(r.startswith("req-") for r in rids)


def test_a_forked_process_draws_other_ids() -> None:
    random_hex()  # the parent holds a block of ids drawn ahead
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.write(write, random_hex().encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    child = os.read(read, 64).decode()
    os.close(read)
    assert re.fullmatch(r"[0-9a-f]{24}", child) and child != random_hex()


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/slow", "/nowhere"])
async def test_content_length_over_the_limit_is_413_at_once(url, path):
    status, err, headers = await call(url, path, b"x" * (LIMIT + 1))
    assert status == 413 and "x-request-id" in headers
    assert_openai_error(err, 413, "invalid_request_error")


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/slow"])
async def test_a_body_at_the_limit_passes(url, path):
    status, body, _ = await call(url, path, b"x" * LIMIT)
    assert status == 200 and body["len"] == LIMIT


async def _chunks(n: int):
    for _ in range(n):
        yield b"x" * 256


@pytest.mark.parametrize("path", ["/slow", "/bad"])
async def test_a_streamed_body_over_the_limit_is_413(url, path):
    status, err, _ = await call(url, path, _chunks(8))  # chunked: no Content-Length
    assert status == 413
    assert_openai_error(err, 413, "invalid_request_error")


async def test_a_streamed_body_under_the_limit_passes(url):
    status, body, _ = await call(url, "/slow", _chunks(3))
    assert status == 200 and body["len"] == 768


async def test_an_unexpected_exception_is_a_500_json_error_without_the_traceback(url):
    status, err, headers = await call(url, "/boom")
    assert status == 500 and "x-request-id" in headers
    assert_openai_error(err, 500, "internal_error")
    assert "secret" not in err["error"]["message"] and "Traceback" not in err["error"]["message"]
    assert (await call(url, "/v1/chat/completions"))[0] == 200  # the server still serves


async def test_an_exception_after_the_answer_started_cuts_the_connection(url):
    with pytest.raises(aiohttp.ClientPayloadError):
        await call(url, "/late-boom")


async def test_request_endpoint_errors_render_as_openai_json(url):
    status, err, _ = await call(url, "/bad")
    assert status == 400 and err["error"]["param"] == "x"
    assert_openai_error(err, 400, "invalid_request_error")
    status, err, _ = await call(url, "/not-allowed")
    assert status == 405
    assert_openai_error(err, 405, "invalid_request_error")


async def test_other_requests_go_to_the_starlette_app(url):
    status, err, headers = await call(url, "/nowhere")
    assert status == 404 and "x-request-id" in headers
    assert_openai_error(err, 404, "not_found_error")
    status, err, _ = await call(url, "/v1/chat/completions", None, method="GET")  # fast paths are POST only
    assert status == 404
    status, _, _ = await call(url, "/liveness", None, method="GET")
    assert status == 200


def test_http_1_0_over_the_limit_is_413_too(url) -> None:
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.0\r\ncontent-length: %d\r\n\r\n" % (LIMIT + 1))
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 413 ")


def test_max_bytes_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        Front(Starlette(), max_bytes=0)


async def _drive(front: Front, scope: dict, bodies: list[bytes]) -> list[dict]:
    messages = [{"type": "http.request", "body": b, "more_body": i < len(bodies) - 1} for i, b in enumerate(bodies)]
    sent: list[dict] = []

    async def receive():
        return messages.pop(0)

    async def send(message):
        sent.append(message)

    await front(scope, receive, send)
    return sent


@pytest.mark.parametrize(("length", "bodies"), [(LIMIT + 1, [b"x"]), (10, [b"x" * 600, b"x" * 600])])
async def test_over_http_2_content_length_is_not_trusted(length, bodies):
    # HTTP/2 servers need not stop a body at Content-Length: it is counted as it streams
    scope = {"type": "http", "http_version": "2", "method": "POST", "path": "/v1/chat/completions",
             "headers": [(b"content-length", b"%d" % length)]}
    sent = await _drive(make_front(), scope, bodies)
    assert sent[0]["status"] == 413 and orjson.loads(sent[1]["body"])["error"]["code"] == 413
