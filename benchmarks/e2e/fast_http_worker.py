"""A fast canned OpenAI HTTP worker for gateway benchmarks: ``python fast_http_worker.py PORT``.

A raw ASGI app on uvicorn (httptools + uvloop). POST answers one fixed chat completion,
or, when the body asks for ``"stream": true``, a fixed SSE stream of ``SSE_CHUNKS`` chunks
and ``[DONE]``; GET answers /v1/models, /v1/loads and health. It does no per-request work
beyond reading the body, so a gateway in front of it is what a benchmark measures.
"""

from __future__ import annotations

import sys

import orjson

MODEL = "bench-model"
SSE_CHUNKS = 8

_COMPLETION = orjson.dumps({
    "id": "chatcmpl-bench", "object": "chat.completion", "created": 0, "model": MODEL,
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello there, friend!"},
                 "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 5, "completion_tokens": 5, "total_tokens": 10},
})


def _chunk(content: str, finish: str | None) -> bytes:
    return b"data: " + orjson.dumps({
        "id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 0, "model": MODEL,
        "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": finish}],
    }) + b"\n\n"


_SSE = b"".join(_chunk(f"tok{i} ", None) for i in range(SSE_CHUNKS - 1)) + _chunk("end", "stop") \
    + b"data: [DONE]\n\n"
_MODELS = orjson.dumps({"object": "list", "data": [{"id": MODEL, "object": "model", "owned_by": "bench"}]})
_LOADS = orjson.dumps({"loads": [{"dp_rank": 0, "num_running_reqs": 0, "num_waiting_reqs": 0,
                                  "token_usage": 0.0}]})
_JSON = [(b"content-type", b"application/json")]


async def app(scope, receive, send) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    body, more = b"", True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    if scope["method"] == "GET":
        path = scope["path"]
        out = _MODELS if path == "/v1/models" else _LOADS if path == "/v1/loads" else b"{}"
    elif b'"stream":true' in body or b'"stream": true' in body:
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]})
        # two body messages so the gateway really streams (chunked transfer)
        half = _SSE.index(b"data: ", len(_SSE) // 2)
        await send({"type": "http.response.body", "body": _SSE[:half], "more_body": True})
        await send({"type": "http.response.body", "body": _SSE[half:]})
        return
    else:
        out = _COMPLETION
    await send({"type": "http.response.start", "status": 200,
                "headers": [*_JSON, (b"content-length", b"%d" % len(out))]})
    await send({"type": "http.response.body", "body": out})


if __name__ == "__main__":
    import uvicorn

    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), loop="uvloop", http="httptools",
                log_level="warning", access_log=False, lifespan="on")
