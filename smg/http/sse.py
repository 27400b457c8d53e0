"""Server-sent events: recognising an event stream and ending one that broke midway.

Proxied streams pass through byte for byte; the gateway writes SSE itself only when a
worker fails after the first byte reached the client, when a status can no longer be sent.
"""

from __future__ import annotations

import orjson

__all__ = ["DONE", "error_event", "is_event_stream"]

DONE = b"data: [DONE]\n\n"


def is_event_stream(content_type: str | None) -> bool:
    return bool(content_type) and content_type.split(";", 1)[0].strip().lower() == "text/event-stream"


def error_event(message: str, error_type: str = "upstream_error", code: int = 502) -> bytes:
    """An OpenAI-style error as one SSE event (what OpenAI sends when a stream fails)."""
    payload = {"error": {"message": message, "type": error_type, "param": None, "code": code}}
    return b"data: " + orjson.dumps(payload) + b"\n\n"
