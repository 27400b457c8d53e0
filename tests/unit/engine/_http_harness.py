"""Drive an ASGI app in-process (no socket): one request, the messages it sent back."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import orjson


@dataclass
class Reply:
    status: int
    headers: dict[bytes, bytes]
    body: bytes
    complete: bool  # the app finished the body (False: it dropped the response)
    messages: list[dict[str, Any]] = field(default_factory=list)

    def json(self) -> Any:
        return orjson.loads(self.body)

    def events(self) -> list[Any]:
        """SSE ``data:`` payloads, JSON-decoded (``[DONE]`` kept as the string)."""
        assert self.body.endswith(b"\n\n"), self.body[-80:]
        out = []
        for block in self.body.split(b"\n\n")[:-1]:
            assert block.startswith(b"data: "), block
            payload = block[len(b"data: ") :]
            out.append("[DONE]" if payload == b"[DONE]" else orjson.loads(payload))
        return out


async def call(
    app: Any,
    method: str,
    path: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
    disconnect: asyncio.Event | None = None,
) -> Reply:
    """Send one request; ``disconnect`` (when set by the test) makes the client go away."""
    if body is not None and not isinstance(body, bytes):
        body = orjson.dumps(body)
    hdrs = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    path_only, _, query = path.partition("?")
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path_only,
        "raw_path": path_only.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [(b"content-type", b"application/json"), *hdrs],
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8000),
    }
    sent_body = False
    gone = disconnect or asyncio.Event()
    messages: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal sent_body
        if not sent_body:
            sent_body = True
            return {"type": "http.request", "body": body or b"", "more_body": False}
        await gone.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        messages.append(message)

    await app(scope, receive, send)
    start = messages[0]
    assert start["type"] == "http.response.start"
    bodies = [m for m in messages[1:] if m["type"] == "http.response.body"]
    complete = bool(bodies) and not bodies[-1].get("more_body", False)
    return Reply(
        status=start["status"],
        headers=dict(start.get("headers", [])),
        body=b"".join(m.get("body", b"") for m in bodies),
        complete=complete,
        messages=messages,
    )
