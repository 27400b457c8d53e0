"""The ``/parse/function_call`` and ``/parse/reasoning`` endpoints, as pure functions.

``parse_function_call(text, parser_name, tools)`` and ``parse_reasoning(text,
parser_name)`` run one complete parse and return SMG's response bodies::

    {"remaining_text": str, "tool_calls": [{"function": {"name", "arguments"}}], "success": true}
    {"normal_text": str, "reasoning_text": str, "success": true}

An unknown parser raises ``smg.errors.BadRequest`` (400). ``parse_request(endpoint,
body)`` serves a decoded JSON body: it checks the fields (``BadRequest`` naming the
``param`` when one is missing or of the wrong type) and calls the right function, so an
HTTP handler is ``return JSONResponse(parse_request(path, await request.json()))`` with
the app's ``error_handler`` rendering the errors in OpenAI shape.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from smg.errors import BadRequest, NotFound
from smg.parsers.reasoning import get_reasoning_parser
from smg.parsers.tools import get_tool_parser

__all__ = ["parse_function_call", "parse_reasoning", "parse_request"]


def parse_function_call(
    text: str, parser_name: str, tools: Sequence[Mapping[str, Any]] | None = None
) -> dict[str, Any]:
    """Extract the tool calls in ``text`` written in ``parser_name``'s format."""
    try:
        parser = get_tool_parser(parser_name)
    except ValueError:
        raise BadRequest(f"Unknown tool parser: {parser_name}", param="tool_call_parser") from None
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
        raise BadRequest(f"Unknown reasoning parser: {parser_name}", param="reasoning_parser") from None
    result = parser.parse_complete(text)
    return {"normal_text": result.content, "reasoning_text": result.reasoning, "success": True}


def _field(body: Mapping[str, Any], key: str, kind: type, required: bool = True) -> Any:
    value = body.get(key)
    if value is None:
        if required:
            raise BadRequest(f"field {key!r} is missing", param=key)
        return None
    if not isinstance(value, kind):
        raise BadRequest(f"field {key!r} must be {'a string' if kind is str else 'an array'}", param=key)
    return value


def _tools(body: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    tools = _field(body, "tools", list, required=False) or []
    for i, tool in enumerate(tools):
        fn = tool.get("function") if isinstance(tool, Mapping) else None
        if not isinstance(fn, Mapping) or not isinstance(fn.get("name"), str):
            raise BadRequest(f"tools[{i}] must be an object with function.name", param="tools")
    return tools


def parse_request(endpoint: str, body: Any) -> dict[str, Any]:
    """The response body for a POST of ``body`` to ``/parse/function_call`` or ``/parse/reasoning``."""
    if not isinstance(body, Mapping):
        raise BadRequest("request body must be a JSON object")
    text = _field(body, "text", str)
    if endpoint.endswith("/function_call"):
        return parse_function_call(text, _field(body, "tool_call_parser", str), _tools(body))
    if endpoint.endswith("/reasoning"):
        return parse_reasoning(text, _field(body, "reasoning_parser", str))
    raise NotFound(f"unknown parse endpoint {endpoint!r}")
