"""A fast canned OpenAI HTTP worker for gateway benchmarks: ``python fast_http_worker.py PORT``.

A raw ``asyncio.Protocol`` on uvloop with httptools' request parser (no ASGI server, no
framework): POST answers one fixed chat completion, or, when the body asks for
``"stream": true``, a fixed SSE stream of ``SSE_CHUNKS`` chunks and ``[DONE]`` sent as
two chunked-encoding writes (so a gateway really streams it); GET answers /v1/models,
/v1/loads and health. Keep-alive, pipelining-safe. It does no per-request work beyond
parsing the request, so a gateway in front of it is what a benchmark measures, and on a
2-core machine the load side takes as little of the cores as it can (the
``--workers 2`` scaling run shares both cores with the workers and wrk).
"""

from __future__ import annotations

import asyncio
import socket
import sys

import httptools
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


def _head(status: bytes, ctype: bytes, length: int | None) -> bytes:
    size = b"content-length: %d\r\n" % length if length is not None else b"transfer-encoding: chunked\r\n"
    return b"HTTP/1.1 " + status + b"\r\ncontent-type: " + ctype + b"\r\n" + size + b"\r\n"


def _whole(out: bytes) -> bytes:
    return _head(b"200 OK", b"application/json", len(out)) + out


def _chunked(part: bytes) -> bytes:
    return b"%x\r\n" % len(part) + part + b"\r\n"


_ANSWER = _whole(_COMPLETION)
_GET = {b"/v1/models": _whole(_MODELS), b"/v1/loads": _whole(_LOADS)}
_GET_OTHER = _whole(b"{}")
_HALF = _SSE.index(b"data: ", len(_SSE) // 2)
_SSE_FIRST = _head(b"200 OK", b"text/event-stream", None) + _chunked(_SSE[:_HALF])
_SSE_REST = _chunked(_SSE[_HALF:]) + b"0\r\n\r\n"


class _Conn(asyncio.Protocol):
    """One keep-alive connection; answers each request as its message completes."""

    def __init__(self) -> None:
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.url = b""
        self.body: list[bytes] = []

    def connection_made(self, transport) -> None:  # noqa: ANN001
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.transport.close()

    # httptools callbacks
    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        url, body = self.url, b"".join(self.body)
        self.url, self.body = b"", []
        write = self.transport.write
        if self.parser.get_method() == b"GET":
            write(_GET.get(url.split(b"?", 1)[0], _GET_OTHER))
        elif b'"stream":true' in body or b'"stream": true' in body:
            write(_SSE_FIRST)
            write(_SSE_REST)
        else:
            write(_ANSWER)
        if not self.parser.should_keep_alive():
            self.transport.close()


async def _serve(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_Conn, "127.0.0.1", port, backlog=1024)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    import uvloop

    uvloop.run(_serve(int(sys.argv[1])))
