"""Endpoints of gRPC (full server) mode: the gateway is the whole OpenAI server.

/v1/chat/completions, /v1/completions, /generate (SGLang-native), /v1/tokenize and
/v1/detokenize. The work is in ``smg.pipeline``; this module only speaks HTTP.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from smg.errors import BadRequest, ModelNotFound
from smg.pipeline.prepare import prepare
from smg.pipeline.requests import GenerationRequest, parse_chat, parse_completion
from smg.pipeline.run import stream_events, whole_response

__all__ = ["routes"]

_SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}


async def _body(request: Request) -> Any:
    raw = await request.body()
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"the request body is not valid JSON: {exc}") from None


def _json(data: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status, media_type="application/json")


class EventStream(StreamingResponse):
    """SSE response that writes everything its producer has ready in one send, and stops
    the producer as soon as the client disconnects.

    Under load a worker's socket read carries several tokens of one stream; the producer
    then yields several events without waiting, and they leave in one write (one
    syscall) instead of one each. At low load every event is sent at once. Starlette no
    longer watches ``receive`` while streaming under ASGI 2.4 servers, so a gone client
    would leave the worker generating; here a watcher cancels the producer, whose
    cleanup aborts the request on the worker.
    """

    def __init__(self, content: AsyncIterator[bytes]) -> None:
        super().__init__(content, media_type="text/event-stream", headers=_SSE_HEADERS)
        self.events = content

    async def __call__(self, scope, receive, send) -> None:  # type: ignore[override]
        producer = asyncio.ensure_future(self._pump(send))

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

    async def _pump(self, send) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        events, out = self.events, []
        while True:
            step = events.__anext__()
            try:
                try:
                    pending = step.send(None)
                except StopIteration as ready:  # produced without waiting: keep it for now
                    out.append(ready.value)
                    if len(out) < _MAX_BATCH:
                        continue
                    pending = None
                if out:  # the producer is about to wait (or the batch is full): write
                    try:
                        await send({"type": "http.response.body", "body": b"".join(out), "more_body": True})
                    except BaseException as exc:  # cancelled or failed mid-write: unwind the producer
                        if pending is not None:
                            await _unwind(step, exc)
                        raise
                    out.clear()
                if pending is not None:
                    out.append(await _Resume(step, pending))
            except StopAsyncIteration:
                break
            finally:
                step.close()  # a no-op once finished; closes it when a send failed
        await send({"type": "http.response.body", "body": b"".join(out), "more_body": False})


_MAX_BATCH = 64


async def _unwind(step: Any, exc: BaseException) -> None:
    """Deliver ``exc`` to a suspended producer step and let its cleanup (which aborts the
    request on the worker) run to the end."""
    try:
        pending = step.throw(exc)
    except BaseException:  # noqa: BLE001 - the producer ended, as it should
        return
    with contextlib.suppress(BaseException):
        await _Resume(step, pending)


class _Resume:
    """Await a coroutine that was started by hand and suspended on ``pending`` (what it
    yielded): hands each yield to the running task and each wake-up (or exception,
    cancellation included) back to it, as ``await`` would have."""

    __slots__ = ("coro", "pending")

    def __init__(self, coro: Any, pending: Any) -> None:
        self.coro, self.pending = coro, pending

    def __await__(self):
        coro, pending = self.coro, self.pending
        while True:
            try:
                value = yield pending
            except BaseException as exc:  # noqa: BLE001 - thrown into the task: pass it on
                try:
                    pending = coro.throw(exc)
                except StopIteration as done:
                    return done.value
            else:
                try:
                    pending = coro.send(value)
                except StopIteration as done:
                    return done.value


async def _never() -> dict:
    await asyncio.Event().wait()
    return {"type": "http.disconnect"}


async def _run(request: Request, kind: str, req: GenerationRequest) -> Response:
    state = request.app.state.smg
    headers = {k.lower(): v for k, v in request.headers.items()}
    prep = await prepare(kind, req, state.grpc, headers, request.headers.get("x-request-id"))
    if req.stream:
        return EventStream(await stream_events(prep, state, state.grpc, sse=True))
    return _json(await whole_response(prep, state, state.grpc))


async def chat_completions(request: Request) -> Response:
    return await _run(request, "chat", parse_chat(await _body(request)))


async def completions(request: Request) -> Response:
    return await _run(request, "text", parse_completion(await _body(request)))


async def generate(request: Request) -> Response:
    """SGLang-native /generate: ``text`` or ``input_ids`` plus ``sampling_params``."""
    body = await _body(request)
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
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
    state = request.app.state.smg
    prep = await prepare("text", req, state.grpc, {}, None)
    if req.stream:
        events = await stream_events(prep, state, state.grpc)
        return EventStream(_sglang_stream(events, prep.rid))
    whole = await whole_response(prep, state, state.grpc)
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
    async for event in events:
        if "error" in event:
            yield b"data: " + orjson.dumps(event) + b"\n\n"
            continue
        for choice in event.get("choices", []):
            text += choice.get("text", "")
            out = {"text": text, "meta_info": _meta(rid, choice, event.get("usage") or {})}
            yield b"data: " + orjson.dumps(out) + b"\n\n"
    yield b"data: [DONE]\n\n"


def _runtime(request: Request, body: dict[str, Any]):
    runtime = request.app.state.smg.grpc.runtime(body.get("model"))
    if runtime is None:
        raise ModelNotFound(f"model {body.get('model')!r} is not served here", param="model")
    return runtime


async def tokenize(request: Request) -> Response:
    body = await _body(request)
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    runtime = _runtime(request, body)
    add_special = bool(body.get("add_special_tokens", False))
    if isinstance(body.get("messages"), list):
        text = runtime.tokenizer.apply_chat_template(body["messages"], add_generation_prompt=bool(body.get("add_generation_prompt", True)))
    elif isinstance(body.get("prompt"), str):
        text = body["prompt"]
    else:
        raise BadRequest("give 'prompt' (a string) or 'messages'", param="prompt")
    ids = runtime.tokenizer.encode(text, add_special)
    return _json({"tokens": ids, "count": len(ids), "model": runtime.model})


async def detokenize(request: Request) -> Response:
    body = await _body(request)
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    runtime = _runtime(request, body)
    ids = body.get("tokens")
    if not isinstance(ids, list) or not all(isinstance(t, int) and not isinstance(t, bool) and t >= 0 for t in ids):
        raise BadRequest("'tokens' must be an array of token ids", param="tokens")
    text = runtime.tokenizer.decode(ids, skip_special_tokens=bool(body.get("skip_special_tokens", True)))
    return _json({"prompt": text, "model": runtime.model})


routes = [
    Route("/v1/chat/completions", chat_completions, methods=["POST"]),
    Route("/v1/completions", completions, methods=["POST"]),
    Route("/generate", generate, methods=["POST"]),
    Route("/v1/tokenize", tokenize, methods=["POST"]),
    Route("/v1/detokenize", detokenize, methods=["POST"]),
]
