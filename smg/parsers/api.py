"""The ``/parse/function_call`` and ``/parse/reasoning`` endpoints, as pure functions.

``parse_function_call(text, parser_name, tools)`` and ``parse_reasoning(text,
parser_name)`` run one complete parse and return SMG's response bodies::

    {"remaining_text": str, "tool_calls": [{"function": {"name", "arguments"}}], "success": true}
    {"normal_text": str, "reasoning_text": str, "success": true}

An unknown parser raises ``ParseRequestError`` (status 400). ``handle_parse_request``
wraps both for an HTTP handler: it checks the JSON body's fields and returns
``(status, body)``, with errors as ``{"error": {"message", "type", "code"},
"success": false}`` (422 for a malformed body, as SMG's typed extractor answers).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from smg.parsers.reasoning import get_reasoning_parser
from smg.parsers.tools import get_tool_parser

__all__ = ["ParseRequestError", "handle_parse_request", "parse_function_call", "parse_reasoning"]


class ParseRequestError(ValueError):
    """A request the parse endpoints cannot serve; ``status`` is the HTTP status."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def parse_function_call(
    text: str, parser_name: str, tools: Sequence[Mapping[str, Any]] | None = None
) -> dict[str, Any]:
    """Extract the tool calls in ``text`` written in ``parser_name``'s format."""
    try:
        parser = get_tool_parser(parser_name)
    except ValueError:
        raise ParseRequestError(f"Unknown tool parser: {parser_name}") from None
    result = parser.with_tools(tools).parse_complete(text)
    return {
        "remaining_text": result.content,
        "tool_calls": [{"function": {"name": c.name, "arguments": c.arguments}} for c in result.calls],
        "success": True,
    }


def parse_reasoning(text: str, parser_name: str) -> dict[str, Any]:
    """Split ``text`` into reasoning and answer with ``parser_name``."""
    try:
        parser = get_reasoning_parser(parser_name)
    except ValueError:
        raise ParseRequestError(f"Unknown reasoning parser: {parser_name}") from None
    result = parser.parse_complete(text)
    return {"normal_text": result.content, "reasoning_text": result.reasoning, "success": True}


def _field(body: Mapping[str, Any], key: str, kind: type, required: bool = True) -> Any:
    value = body.get(key)
    if value is None:
        if required:
            raise ParseRequestError(f"field {key!r} is missing", 422)
        return None
    if not isinstance(value, kind):
        raise ParseRequestError(f"field {key!r} must be {'a string' if kind is str else 'an array'}", 422)
    return value


def _tools(body: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    tools = _field(body, "tools", list, required=False) or []
    for i, tool in enumerate(tools):
        fn = tool.get("function") if isinstance(tool, Mapping) else None
        if not isinstance(fn, Mapping) or not isinstance(fn.get("name"), str):
            raise ParseRequestError(f"tools[{i}] must be an object with function.name", 422)
    return tools


def handle_parse_request(endpoint: str, body: Any) -> tuple[int, dict[str, Any]]:
    """``(status, JSON body)`` for a POST to ``/parse/function_call`` or ``/parse/reasoning``."""
    try:
        if not isinstance(body, Mapping):
            raise ParseRequestError("request body must be a JSON object", 422)
        text = _field(body, "text", str)
        if endpoint.endswith("function_call"):
            return 200, parse_function_call(text, _field(body, "tool_call_parser", str), _tools(body))
        if endpoint.endswith("reasoning"):
            return 200, parse_reasoning(text, _field(body, "reasoning_parser", str))
        raise ParseRequestError(f"unknown parse endpoint {endpoint!r}", 404)
    except ParseRequestError as e:
        kind = "invalid_request_error" if e.status < 500 else "internal_error"
        return e.status, {"error": {"message": str(e), "type": kind, "code": e.status}, "success": False}
