"""tool_choice and response_format: constraints for the worker, checks at the gateway.

``constraint_for(tools, tool_choice, response_format)`` gives the JSON schema the worker
should constrain decoding to (or None). After generation, ``validate_tool_calls`` and
``validate_response_format`` check the model's output with jsonschema and return a clear
message for the first problem (None when valid).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import jsonschema

from smg.parsers.core import ToolCall

__all__ = ["constraint_for", "selected_tools", "validate_response_format", "validate_tool_calls"]


def _fn(tool: Mapping[str, Any]) -> Mapping[str, Any]:
    return tool.get("function", tool)


def selected_tools(tools: Sequence[Mapping[str, Any]] | None, tool_choice: Any) -> list[Mapping[str, Any]]:
    """The tools the model may call under ``tool_choice`` (none/auto/required/named)."""
    tools = list(tools or ())
    if tool_choice in (None, "auto", "required"):
        return tools
    if tool_choice == "none":
        return []
    if isinstance(tool_choice, Mapping):
        name = (tool_choice.get("function") or {}).get("name")
        chosen = [t for t in tools if _fn(t).get("name") == name]
        if not chosen:
            raise ValueError(f"tool_choice names function {name!r}, which is not in tools")
        return chosen
    raise ValueError(f"invalid tool_choice {tool_choice!r}")


def constraint_for(
    tools: Sequence[Mapping[str, Any]] | None,
    tool_choice: Any,
    response_format: Mapping[str, Any] | None = None,
) -> dict[str, Any] | None:
    """The JSON schema to send the worker, or None when output is unconstrained."""
    if tools and (tool_choice == "required" or isinstance(tool_choice, Mapping)):
        variants = [
            {
                "type": "object",
                "properties": {
                    "name": {"const": _fn(t)["name"]},
                    "parameters": _fn(t).get("parameters") or {"type": "object"},
                },
                "required": ["name", "parameters"],
            }
            for t in selected_tools(tools, tool_choice)
        ]
        return {"type": "array", "minItems": 1, "items": {"anyOf": variants}}
    if response_format:
        kind = response_format.get("type")
        if kind == "json_object":
            return {"type": "object"}
        if kind == "json_schema":
            spec = response_format.get("json_schema") or {}
            return dict(spec.get("schema") or {"type": "object"})
    return None


def validate_tool_calls(
    calls: Sequence[ToolCall], tools: Sequence[Mapping[str, Any]] | None, tool_choice: Any
) -> str | None:
    allowed = {_fn(t)["name"]: _fn(t) for t in selected_tools(tools, tool_choice)}
    if (tool_choice == "required" or isinstance(tool_choice, Mapping)) and not calls:
        return "the model did not call a tool although tool_choice requires one"
    for call in calls:
        spec = allowed.get(call.name)
        if spec is None:
            return f"the model called unknown tool {call.name!r}"
        try:
            args = json.loads(call.arguments or "{}")
        except ValueError as exc:
            return f"arguments of tool {call.name!r} are not valid JSON: {exc}"
        schema = spec.get("parameters")
        if schema:
            try:
                jsonschema.validate(args, schema)
            except jsonschema.ValidationError as exc:
                return f"arguments of tool {call.name!r} do not match its schema: {exc.message}"
    return None


def validate_response_format(text: str, response_format: Mapping[str, Any] | None) -> str | None:
    schema = constraint_for(None, None, response_format)
    if schema is None:
        return None
    try:
        value = json.loads(text)
    except ValueError as exc:
        return f"the model's output is not valid JSON: {exc}"
    try:
        jsonschema.validate(value, schema)
    except jsonschema.ValidationError as exc:
        return f"the model's output does not match response_format: {exc.message}"
    return None
