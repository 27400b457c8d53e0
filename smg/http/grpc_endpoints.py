"""Endpoints of gRPC (full server) mode: the gateway is the whole OpenAI server.

/v1/chat/completions, /v1/completions, /generate (SGLang-native), /v1/tokenize and
/v1/detokenize. The work is in ``smg.pipeline``; this module only speaks HTTP.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from typing import Any

import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from smg.errors import BadRequest, ModelNotFound
from smg.http.middleware import random_hex
from smg.pipeline.prepare import prepare
from smg.pipeline.requests import GenerationRequest, check_messages, parse_chat, parse_completion
from smg.pipeline.run import whole_response
from smg.pipeline.stream import StreamRun, stream_events, stream_sse
from smg.tokenizer import TokenizerError

__all__ = ["routes"]


class _ClientGone(Exception):
    """The client left before its body was complete: nothing to answer, nothing to log."""


async def _body(request: Request) -> Any:
    try:
        raw = await request.body()
    except ClientDisconnect:
        raise _ClientGone from None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"the request body is not valid JSON: {exc}") from None


def _endpoint(handler):
    """``handler`` with a client that left mid-body answered by nothing (no traceback)."""

    async def endpoint(request: Request) -> Response:
        try:
            return await handler(request)
        except _ClientGone:
            return Response(status_code=499)

    endpoint.__name__ = handler.__name__
    return endpoint


def _object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    return body


def _flag(body: dict[str, Any], key: str, default: bool) -> bool:
    value = body.get(key)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise BadRequest(f"'{key}' must be a boolean", param=key)
    return value


def _json(data: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status, media_type="application/json")


class EventStream(Response):
    """SSE response over a ``StreamRun`` (or any async iterator of SSE bytes) that stops
    as soon as the client disconnects.

    A run is pumped without a generator in between: per worker read one wake-up, one
    synchronous ``step()`` (every message of that read, all their tokens at once) and
    one send; under load a read carries several tokens of a stream and they leave in one
    write. Under smg's own HTTP/1.1 server (``scope["extensions"]["smg.write"]``) the run
    is pushed after its first bytes: a read's step runs and writes inside the worker
    connection's ``data_received``, and this task wakes only for the end, errors and
    back-pressure. Starlette no longer watches ``receive`` while streaming under ASGI 2.4
    servers, so a gone client would leave the worker generating; here a watcher cancels
    the producer, whose cleanup aborts the request on the worker.
    """

    media_type = "text/event-stream"

    def __init__(self, content: StreamRun | AsyncIterator[bytes]) -> None:  # noqa: D107 - no body to render
        self.status_code = 200
        self.background = None
        self.raw_headers = list(_SSE_RAW_HEADERS)
        self.content = content

    async def __call__(self, scope, receive, send) -> None:  # type: ignore[override]
        if isinstance(self.content, StreamRun):
            producer = asyncio.ensure_future(self._pump_run(send, scope.get("extensions", {}).get("smg.write")))
        else:
            producer = asyncio.ensure_future(self._pump_iter(send))

        async def watch() -> None:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    producer.cancel()
                    return

        watcher = asyncio.ensure_future(watch())
        try:
            await producer
        except asyncio.CancelledError:
            if not producer.cancelled():
                raise
        finally:
            watcher.cancel()

    async def _pump_run(self, send, write) -> None:
        run = self.content
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            while True:
                body = run.step()
                if run.finished:
                    break
                if body:
                    await send({"type": "http.response.body", "body": body, "more_body": True})
                if write is not None:  # smg's HTTP/1.1 server: steady reads go out from the read itself
                    run.push(write)
                    write = None
                await run.wait()
        finally:
            await run.close()  # before the end (cancelled, failed write): aborts on the worker
        await send({"type": "http.response.body", "body": body, "more_body": False})

    async def _pump_iter(self, send) -> None:
        events = self.content
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            async for body in events:
                await send({"type": "http.response.body", "body": body, "more_body": True})
        finally:
            await events.aclose()
        await send({"type": "http.response.body", "body": b"", "more_body": False})


_SSE_RAW_HEADERS = [(b"cache-control", b"no-cache"), (b"x-accel-buffering", b"no"),
                    (b"content-type", b"text/event-stream; charset=utf-8")]


def _take_front_id(request: Request, req: GenerationRequest) -> None:
    """The response's (and the worker request's) id comes from Front: the id it made
    (``chatcmpl-``/``cmpl-``/``gnt-`` + hex) as is, so ``x-request-id`` and the body's
    ``id`` agree; an id the client sent in a header gets a random suffix, as the Rust
    gateway does (a client may reuse its trace id on concurrent requests, and the
    worker's request ids must be unique). A ``rid`` in the body still wins."""
    if req.rid is None:
        scope = request.scope
        rid = scope.get("smg.request_id")
        if rid is not None and not scope.get("smg.request_id_made"):
            rid = f"{rid}-{random_hex()}"
        req.rid = rid


async def _run(request: Request, kind: str, req: GenerationRequest) -> Response:
    state = request.app.state.smg
    _take_front_id(request, req)
    headers = {k.lower(): v for k, v in request.headers.items()}
    prep = await prepare(kind, req, state.grpc, headers, request.headers.get("x-request-id"))
    if req.stream:
        return EventStream(await stream_sse(prep, state, state.grpc))
    return _json(await _unless_gone(request, whole_response(prep, state, state.grpc)))


# A whole response still in the works after this long gets a task watching for the client
# to go away (quicker ones pay only for a timer).
WATCH_AFTER_SECS = 0.05


async def _unless_gone(request: Request, work: Awaitable[Any]) -> Any:
    """``await work``, cancelled if the client disconnects first (the pipeline's cleanup
    then aborts the request on the worker, which would otherwise generate for nobody)."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    gone = False
    watcher: asyncio.Task | None = None

    async def watch() -> None:
        nonlocal gone
        while (await request.receive())["type"] != "http.disconnect":
            pass
        gone = True
        task.cancel()

    def start() -> None:
        nonlocal watcher
        watcher = loop.create_task(watch())

    timer = loop.call_later(WATCH_AFTER_SECS, start)
    try:
        return await work
    except asyncio.CancelledError:
        if not gone:
            raise
        task.uncancel()
        raise _ClientGone from None
    finally:
        timer.cancel()
        if watcher is not None:
            watcher.cancel()


async def chat_completions(request: Request) -> Response:
    return await _run(request, "chat", parse_chat(await _body(request)))


async def completions(request: Request) -> Response:
    return await _run(request, "text", parse_completion(await _body(request)))


async def generate(request: Request) -> Response:
    """SGLang-native /generate: ``text`` or ``input_ids`` plus ``sampling_params``."""
    body = _object(await _body(request))
    sp = body.get("sampling_params") or {}
    if not isinstance(sp, dict):
        raise BadRequest("'sampling_params' must be an object", param="sampling_params")
    prompt = body.get("input_ids", body.get("text"))
    mapped = {
        **{k: v for k, v in sp.items() if k not in ("max_new_tokens", "min_new_tokens")},
        "prompt": prompt, "model": body.get("model"), "stream": body.get("stream", False),
        "max_tokens": sp.get("max_new_tokens"), "min_tokens": sp.get("min_new_tokens", 0), "rid": body.get("rid"),
    }
    req = parse_completion(mapped)
    _take_front_id(request, req)
    state = request.app.state.smg
    prep = await prepare("text", req, state.grpc, {}, None)
    if req.stream:
        events = await stream_events(prep, state, state.grpc)
        return EventStream(_sglang_stream(events, prep.rid))
    whole = await _unless_gone(request, whole_response(prep, state, state.grpc))
    return _json(_sglang_whole(whole, prep.rid))


def _meta(rid: str, choice: dict[str, Any], usage: dict[str, Any]) -> dict[str, Any]:
    matched = choice.get("matched_stop")
    return {
        "id": rid,
        "finish_reason": {"type": choice.get("finish_reason"), "matched": matched} if choice.get("finish_reason") else None,
        "prompt_tokens": usage.get("prompt_tokens", 0),
        "completion_tokens": usage.get("completion_tokens", 0),
        "cached_tokens": usage.get("prompt_tokens_details", {}).get("cached_tokens", 0),
    }


def _sglang_whole(whole: dict[str, Any], rid: str) -> dict[str, Any]:
    choice = whole["choices"][0]
    return {"text": choice["text"], "meta_info": _meta(rid, choice, whole["usage"])}


async def _sglang_stream(events: AsyncIterator[dict[str, Any]], rid: str) -> AsyncIterator[bytes]:
    text = ""
    try:
        async for event in events:
            if "error" in event:
                yield b"data: " + orjson.dumps(event) + b"\n\n"
                continue
            for choice in event.get("choices", []):
                text += choice.get("text", "")
                out = {"text": text, "meta_info": _meta(rid, choice, event.get("usage") or {})}
                yield b"data: " + orjson.dumps(out) + b"\n\n"
    finally:
        await events.aclose()  # early (client gone): aborts the request on the worker
    yield b"data: [DONE]\n\n"


def _runtime(request: Request, body: dict[str, Any]):
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        raise BadRequest("'model' must be a string", param="model")
    runtime = request.app.state.smg.grpc.runtime(model)
    if runtime is None:
        raise ModelNotFound(f"model {model!r} is not served here", param="model")
    return runtime


async def tokenize(request: Request) -> Response:
    body = _object(await _body(request))
    runtime = _runtime(request, body)
    add_special = _flag(body, "add_special_tokens", False)
    if body.get("messages") is not None:
        messages = check_messages(body["messages"])
        try:
            text = runtime.tokenizer.apply_chat_template(
                messages, add_generation_prompt=_flag(body, "add_generation_prompt", True))
        except TokenizerError as exc:
            raise BadRequest(f"chat template: {exc}", param="messages") from None
    elif isinstance(body.get("prompt"), str):
        text = body["prompt"]
    else:
        raise BadRequest("give 'prompt' (a string) or 'messages'", param="prompt")
    ids = runtime.tokenizer.encode(text, add_special)
    return _json({"tokens": ids, "count": len(ids), "model": runtime.model})


async def detokenize(request: Request) -> Response:
    body = _object(await _body(request))
    runtime = _runtime(request, body)
    ids = body.get("tokens")
    vocab = runtime.tokenizer.vocab_size
    if not isinstance(ids, list) or not all(type(t) is int and 0 <= t < vocab for t in ids):
        raise BadRequest(f"'tokens' must be an array of token ids below {vocab}", param="tokens")
    text = runtime.tokenizer.decode(ids, skip_special_tokens=_flag(body, "skip_special_tokens", True))
    return _json({"prompt": text, "model": runtime.model})


routes = [
    Route("/v1/chat/completions", _endpoint(chat_completions), methods=["POST"]),
    Route("/v1/completions", _endpoint(completions), methods=["POST"]),
    Route("/generate", _endpoint(generate), methods=["POST"]),
    Route("/v1/tokenize", _endpoint(tokenize), methods=["POST"]),
    Route("/v1/detokenize", _endpoint(detokenize), methods=["POST"]),
]
