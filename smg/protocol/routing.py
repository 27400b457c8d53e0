"""Parse just enough of a request body to route it: model, routing text, stream flag, user.

The body is forwarded upstream as the original bytes; nothing here re-serialises it. Wrong
JSON or wrong types raise :class:`smg.errors.BadRequest` (rendered as a 400), so a worker
never sees a body the gateway could not read.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from smg.errors import BadRequest

__all__ = ["PARSERS", "RoutingFields", "parse_body"]


@dataclass(frozen=True, slots=True)
class RoutingFields:
    """What routing needs from one request."""

    model: str | None = None
    text: str | None = None
    token_ids: tuple[int, ...] | None = None
    stream: bool = False
    user: str | None = None


def _load(body: bytes) -> dict[str, Any]:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"request body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise BadRequest("request body must be a JSON object")
    return data


def _opt_str(data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is not None and not isinstance(value, str):
        raise BadRequest(f"'{key}' must be a string", param=key)
    return value


def _stream(data: Mapping[str, Any]) -> bool:
    value = data.get("stream")
    if value is None:
        return False
    if not isinstance(value, bool):
        raise BadRequest("'stream' must be a boolean", param="stream")
    return value


def _user(data: Mapping[str, Any]) -> str | None:
    return _opt_str(data, "user") or _opt_str(data, "session_id")


def _content_text(content: Any, param: str) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if not isinstance(part, dict):
                raise BadRequest(f"'{param}' parts must be objects", param=param)
            text = part.get("text")
            if isinstance(text, str):
                parts.append(text)
        return " ".join(parts)
    raise BadRequest(f"'{param}' must be a string, an array of parts or null", param=param)


def _token_ids(value: Any) -> tuple[int, ...] | None:
    if isinstance(value, list) and value and all(type(v) is int for v in value):
        return tuple(value)
    return None


def _text_or_ids(value: Any, param: str) -> tuple[str | None, tuple[int, ...] | None]:
    """A prompt-like field: a string, a list of strings, token ids, or a list of those."""
    if isinstance(value, str):
        return value, None
    if isinstance(value, list):
        if not value:
            raise BadRequest(f"'{param}' must not be empty", param=param)
        ids = _token_ids(value)
        if ids is not None:
            return None, ids
        first = value[0]
        if all(isinstance(v, str) for v in value):
            return first, None
        if all(isinstance(v, list) and all(type(t) is int for t in v) for v in value):
            return None, tuple(first)
    raise BadRequest(
        f"'{param}' must be a string, an array of strings or an array of token ids", param=param
    )


def parse_chat(body: bytes) -> RoutingFields:
    data = _load(body)
    messages = data.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("'messages' must be a non-empty array", param="messages")
    texts = []
    for message in messages:
        if not isinstance(message, dict):
            raise BadRequest("each message must be an object", param="messages")
        texts.append(_content_text(message.get("content"), "messages.content"))
    return RoutingFields(_opt_str(data, "model"), " ".join(texts), None, _stream(data), _user(data))


def parse_completion(body: bytes) -> RoutingFields:
    data = _load(body)
    if "prompt" not in data:
        raise BadRequest("'prompt' is required", param="prompt")
    text, ids = _text_or_ids(data["prompt"], "prompt")
    return RoutingFields(_opt_str(data, "model"), text, ids, _stream(data), _user(data))


def parse_generate(body: bytes) -> RoutingFields:
    data = _load(body)
    text: str | None = None
    ids: tuple[int, ...] | None = None
    if data.get("text") is not None:
        text, ids = _text_or_ids(data["text"], "text")
    elif data.get("input_ids") is not None:
        text, ids = _text_or_ids(data["input_ids"], "input_ids")
        if ids is None:
            raise BadRequest("'input_ids' must be token ids", param="input_ids")
    else:
        raise BadRequest("one of 'text' or 'input_ids' is required", param="text")
    return RoutingFields(_opt_str(data, "model"), text, ids, _stream(data), _user(data))


def parse_embeddings(body: bytes) -> RoutingFields:
    data = _load(body)
    if "input" not in data:
        raise BadRequest("'input' is required", param="input")
    text, ids = _text_or_ids(data["input"], "input")
    return RoutingFields(_opt_str(data, "model"), text, ids, False, _user(data))


PARSERS: dict[str, Callable[[bytes], RoutingFields]] = {
    "/v1/chat/completions": parse_chat,
    "/v1/completions": parse_completion,
    "/generate": parse_generate,
    "/v1/embeddings": parse_embeddings,
}


def parse_body(path: str, body: bytes) -> RoutingFields:
    """Parse ``body`` for the endpoint at ``path`` (one of :data:`PARSERS`)."""
    return PARSERS[path](body)
