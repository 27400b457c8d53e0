"""Server-sent events: recognising an event stream and ending one that broke midway.

Proxied streams pass through byte for byte, whole events at a time (:class:`EventFramer`);
the gateway writes SSE itself only when a worker fails after the first byte reached the
client, when a status can no longer be sent: an error event (on a line of its own, since
only complete events were sent) and ``[DONE]``.
"""

from __future__ import annotations

import orjson

__all__ = ["DONE", "EventFramer", "error_event", "is_event_stream"]

DONE = b"data: [DONE]\n\n"


def is_event_stream(content_type: str | None) -> bool:
    return bool(content_type) and content_type.split(";", 1)[0].strip().lower() == "text/event-stream"


def error_event(message: str, error_type: str = "upstream_error", code: int = 502) -> bytes:
    """An OpenAI-style error as one SSE event (what OpenAI sends when a stream fails)."""
    payload = {"error": {"message": message, "type": error_type, "param": None, "code": code}}
    return b"data: " + orjson.dumps(payload) + b"\n\n"


class EventFramer:
    """Cuts a worker's event stream at event boundaries: ``feed(chunk)`` returns the
    complete events so far (a partial last one waits for the rest; one the stream never
    completes is dropped, as the SSE rules say), ``done`` whether the last event sent was
    ``data: [DONE]``."""

    __slots__ = ("held", "tail")

    def __init__(self) -> None:
        self.held = b""
        self.tail = b""

    def feed(self, chunk: bytes) -> bytes:
        if not chunk:
            return chunk
        if not self.held and chunk.endswith(b"\n\n"):  # the usual read: whole events
            self.tail = chunk[-16:]
            return chunk
        if self.held:
            chunk = self.held + chunk
        lf = chunk.rfind(b"\n\n")
        crlf = chunk.rfind(b"\r\n\r\n")
        end = max(lf + 2 if lf >= 0 else 0, crlf + 4 if crlf >= 0 else 0)
        if end < len(chunk):
            self.held = chunk[end:]
            chunk = chunk[:end]
            if not chunk:
                return chunk
        else:
            self.held = b""
        self.tail = chunk[-16:]  # room for data: [DONE] and a CRLF blank line
        return chunk

    @property
    def done(self) -> bool:
        return self.tail.rstrip(b"\r\n").endswith(b"data: [DONE]")
