"""Running the chat completion a Responses request became, in either mode.

gRPC mode runs the gateway's own chat pipeline (``smg.pipeline``: template, tokenize,
worker selection and retries, detok, stops, reasoning and tool parsers), exactly what
``/v1/chat/completions`` runs. Proxy mode sends it through the proxy endpoint of
``/v1/chat/completions`` (``smg.http.proxy.ProxyEndpoint``: routing, retries, breakers,
metrics), called in-process as an ASGI app, and reads the worker's answer back. When the
worker returns raw text with reasoning or tool-call markup (no parsers of its own) and the
gateway was given ``--reasoning-parser``/``--tool-call-parser``, the gateway's parsers
split it.

Either way the result is OpenAI chat data: a ``chat.completion`` dict (:func:`whole`) or
an async iterator of ``chat.completion.chunk`` dicts (:func:`stream`; errors before the
first chunk raise, later ones come as an ``{"error": ...}`` chunk).
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import AsyncIterator
from typing import Any

import orjson

from smg.errors import BadRequest, SmgError, UpstreamError
from smg.parsers.output import ChoiceParser
from smg.parsers.reasoning import get_reasoning_parser
from smg.parsers.tools import get_tool_parser

__all__ = ["ChatError", "stream", "whole"]

Json = dict[str, Any]

CHAT_PATH = "/v1/chat/completions"
# the proxy endpoint the calls go through: one per event loop (it keeps per-loop state)
_ENDPOINTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


class ChatError(SmgError):
    """An error the chat side answered with (status and type as it gave them)."""

    def __init__(self, message: str, status: int, error_type: str, param: str | None = None) -> None:
        super().__init__(message, param=param)
        self.status_code = status  # type: ignore[misc] - per instance
        self.error_type = error_type  # type: ignore[misc]


async def whole(state: Any, scope: dict, body: Json) -> tuple[Json, int | None]:
    """The chat completion, and its reasoning token count when the gateway can count it."""
    if state.grpc is not None:
        prep = await _prepare(state, scope, body)
        from smg.pipeline.run import whole_response

        resp = await whole_response(prep, state, state.grpc)
        reasoning = (resp["choices"][0]["message"].get("reasoning_content") or "") if resp["choices"] else ""
        return resp, _count(prep, reasoning)
    status, data = await _proxy_whole(state, scope, body)
    resp = _loads(data)
    if status != 200:
        raise _error_of(status, resp)
    if not isinstance(resp, dict) or not resp.get("choices"):
        raise UpstreamError("the worker's chat completion has no choices")
    _parse_whole(state, body, resp)
    return resp, None


async def stream(state: Any, scope: dict, body: Json) -> tuple[AsyncIterator[Json], Any]:
    """The chunks, and a function of the reasoning text giving its token count (or None)."""
    if state.grpc is not None:
        from smg.pipeline.stream import stream_events

        prep = await _prepare(state, scope, body)
        return await stream_events(prep, state, state.grpc), lambda text: _count(prep, text)
    call = _ProxyCall(state, scope, body)
    status = await call.start()
    if status != 200:
        data = await call.rest()
        raise _error_of(status, _loads(data))
    return _parsed_stream(state, body, call.chunks()), lambda text: None


async def _prepare(state: Any, scope: dict, body: Json) -> Any:
    from smg.pipeline.prepare import prepare
    from smg.pipeline.requests import parse_chat

    if any(isinstance(m.get("content"), list) and any(p.get("type") == "image_url" for p in m["content"])
           for m in body["messages"]):
        raise BadRequest("input_image parts are not supported in gRPC mode yet (the gateway has no "
                         "multimodal pipeline); proxy mode passes them to the worker", param="input")
    req = parse_chat(body)
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
    rid = scope.get("smg.request_id")
    return await prepare("chat", req, state.grpc, headers, rid)


def _count(prep: Any, text: str) -> int:
    return len(prep.runtime.tokenizer.encode(text, False)) if text else 0


def _loads(data: bytes) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return None


def _error_of(status: int, data: Any) -> SmgError:
    err = data.get("error") if isinstance(data, dict) else None
    if isinstance(err, dict):
        message = str(err.get("message") or f"the worker answered {status}")
        return ChatError(message, status, str(err.get("type") or "upstream_error"), err.get("param"))
    if isinstance(data, dict) and isinstance(data.get("message"), str):
        return ChatError(data["message"], status, "upstream_error")
    return ChatError(f"the worker answered {status}", status, "upstream_error")


# -- proxy mode: the proxy endpoint, called in-process ---------------------------------------

class _ProxyCall:
    """One request through ``ProxyEndpoint(CHAT_PATH)``: the status, then the body as it comes."""

    def __init__(self, state: Any, scope: dict, body: Json) -> None:
        from smg.http.proxy import ProxyEndpoint

        loop = asyncio.get_running_loop()
        endpoint = _ENDPOINTS.get(loop)
        if endpoint is None:
            endpoint = _ENDPOINTS[loop] = ProxyEndpoint(CHAT_PATH)
        self.endpoint = endpoint
        raw = orjson.dumps(body)
        headers = [(k, v) for k, v in scope.get("headers", [])
                   if k.lower() not in (b"content-length", b"content-type", b"transfer-encoding", b"accept-encoding")]
        headers += [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(raw))]
        self.scope = {**{k: v for k, v in scope.items() if k in ("app", "client", "server", "scheme", "http_version",
                                                                    "smg.request_id", "smg.request_id_made")},
                      "type": "http", "method": "POST", "path": CHAT_PATH, "raw_path": CHAT_PATH.encode(),
                      "query_string": b"", "headers": headers}
        self._raw = raw
        self._sent = False
        self._gone = asyncio.Event()
        self._queue: asyncio.Queue = asyncio.Queue()
        self._task: asyncio.Task | None = None

    async def _receive(self) -> dict:
        if not self._sent:
            self._sent = True
            return {"type": "http.request", "body": self._raw, "more_body": False}
        await self._gone.wait()
        return {"type": "http.disconnect"}

    async def _send(self, message: dict) -> None:
        if message["type"] == "http.response.start":
            await self._queue.put(("start", message["status"]))
        elif message["type"] == "http.response.body":
            if message.get("body"):
                await self._queue.put(("body", message["body"]))
            if not message.get("more_body", False):
                await self._queue.put(("end", None))

    async def _run(self) -> None:
        try:
            await self.endpoint(self.scope, self._receive, self._send)
        except BaseException as exc:  # noqa: BLE001 - handed to the reader
            await self._queue.put(("raise", exc))
        await self._queue.put(("end", None))

    async def start(self) -> int:
        self._task = asyncio.ensure_future(self._run())
        try:
            kind, value = await self._queue.get()
        except BaseException:  # cancelled (a background run cancelled, the client gone)
            await self.close()
            raise
        if kind == "raise":
            raise value
        if kind != "start":
            raise UpstreamError("the chat call ended without an answer")
        return value

    async def rest(self) -> bytes:
        parts = []
        async for part in self._body():
            parts.append(part)
        return b"".join(parts)

    async def _body(self) -> AsyncIterator[bytes]:
        try:
            while True:
                kind, value = await self._queue.get()
                if kind == "end":
                    return
                if kind == "raise":
                    raise value
                yield value
        finally:
            await self.close()

    async def chunks(self) -> AsyncIterator[Json]:
        """The SSE body's ``data:`` events as dicts (``[DONE]`` ends it)."""
        held = b""
        async for part in self._body():
            held += part
            while b"\n\n" in held:
                event, held = held.split(b"\n\n", 1)
                for line in event.splitlines():
                    if not line.startswith(b"data:"):
                        continue
                    data = line[5:].strip()
                    if data == b"[DONE]":
                        return
                    parsed = _loads(data)
                    if isinstance(parsed, dict):
                        yield parsed

    async def close(self) -> None:
        task = self._task
        if task is not None and not task.done():
            self._gone.set()  # the proxy sees the client leave: the worker's request is closed
            task.cancel()
            with contextlib.suppress(BaseException):
                await task


async def _proxy_whole(state: Any, scope: dict, body: Json) -> tuple[int, bytes]:
    call = _ProxyCall(state, scope, body)
    status = await call.start()
    return status, await call.rest()


# -- proxy mode: the gateway's parsers over a worker's raw text -------------------------------

def _parser(state: Any, body: Json) -> ChoiceParser | None:
    model = state.config.model
    tools = body.get("tools") if body.get("tool_choice") != "none" else None
    reasoning = get_reasoning_parser(model.reasoning_parser) if model.reasoning_parser else None
    tool_parser = get_tool_parser(model.tool_call_parser) if model.tool_call_parser and tools else None
    if reasoning is None and tool_parser is None:
        return None
    specs = [t["function"] for t in tools] if tool_parser is not None else None
    return ChoiceParser(reasoning, tool_parser, tool_specs=specs)


def _parse_whole(state: Any, body: Json, resp: Json) -> None:
    msg = resp["choices"][0].get("message") or {}
    if msg.get("reasoning_content") or msg.get("tool_calls") or not msg.get("content"):
        return
    parser = _parser(state, body)
    if parser is None:
        return
    parser.feed(msg["content"])
    parser.finish(resp["choices"][0].get("finish_reason"))  # a call cut at "length" is not a call
    result = parser.result()
    from smg.parsers.core import new_call_id

    msg["content"] = result.content
    if result.reasoning:
        msg["reasoning_content"] = result.reasoning
    if result.calls:
        msg["tool_calls"] = [{"id": new_call_id(), "type": "function",
                              "function": {"name": c.name, "arguments": c.arguments}} for c in result.calls]
        if resp["choices"][0].get("finish_reason") == "stop":
            resp["choices"][0]["finish_reason"] = "tool_calls"


async def _parsed_stream(state: Any, body: Json, chunks: AsyncIterator[Json]) -> AsyncIterator[Json]:
    parser = _parser(state, body)
    try:
        async for chunk in chunks:
            if parser is not None:
                for choice in chunk.get("choices") or []:
                    delta = choice.get("delta") or {}
                    if delta.get("reasoning_content") or delta.get("tool_calls"):
                        parser = None  # the worker parses for itself
                        break
                    pieces = [parser.feed(delta.get("content") or "")]
                    if choice.get("finish_reason"):
                        pieces.append(parser.finish(choice["finish_reason"]))
                    delta["content"], delta["reasoning_content"], calls = "", "", []
                    for d in pieces:
                        delta["content"] += d.content
                        delta["reasoning_content"] += d.reasoning
                        calls += [{"index": tc.index, "id": tc.id, "type": "function",
                                   "function": {"name": tc.name, "arguments": tc.arguments}} for tc in d.tool_calls]
                    delta["tool_calls"] = calls
                    choice["delta"] = delta
            yield chunk
    finally:
        await chunks.aclose()  # type: ignore[attr-defined]
