"""The /parse endpoints' pure layer: SMG-shaped bodies, clear errors for bad requests."""

from __future__ import annotations

import json

import pytest

from smg.parsers.api import ParseRequestError, handle_parse_request, parse_function_call, parse_reasoning

from .cases import REASONING_CASES, TOOL_CASES

TOOLS = [{"type": "function", "function": {"name": "search", "parameters": {"type": "object"}}}]


@pytest.mark.parametrize("case", TOOL_CASES[:3] + [c for c in TOOL_CASES if c[0] in ("kimi_k3", "inkling", "sarashina")][:3])
def test_function_call_body_matches_the_parser(case) -> None:
    name, text, content, _, calls = case
    body = parse_function_call(text, name, [])
    assert body["success"] is True and body["remaining_text"] == content
    assert [tc["function"]["name"] for tc in body["tool_calls"]] == [c[0] for c in calls]
    for tc, (_, args) in zip(body["tool_calls"], calls):
        assert set(tc) == {"function"}
        if args is not None:
            assert json.loads(tc["function"]["arguments"]) == args


def test_reasoning_body() -> None:
    name, text, reasoning, content = REASONING_CASES[0]
    assert parse_reasoning(text, name) == {"normal_text": content, "reasoning_text": reasoning, "success": True}


def test_tools_reach_the_parser() -> None:
    text = '<|content_invoke_tool_json|>{"name":"rm","args":{}}<|end_message|><|content_invoke_tool_json|>{"name":"search","args":{"q":1}}<|end_message|>'
    body = parse_function_call(text, "inkling", TOOLS)
    assert [tc["function"]["name"] for tc in body["tool_calls"]] == ["search"]


def test_unknown_parsers_are_400() -> None:
    with pytest.raises(ParseRequestError, match="Unknown tool parser: nope") as e:
        parse_function_call("x", "nope")
    assert e.value.status == 400
    status, body = handle_parse_request("/parse/reasoning", {"text": "x", "reasoning_parser": "nope"})
    assert status == 400 and body["success"] is False
    assert body["error"]["message"] == "Unknown reasoning parser: nope" and body["error"]["type"] == "invalid_request_error"


@pytest.mark.parametrize(
    ("endpoint", "body", "status", "message"),
    [
        ("/parse/function_call", {"text": '{"name": "search", "arguments": {}}', "tool_call_parser": "json", "tools": TOOLS}, 200, None),
        ("/parse/reasoning", {"text": "<think>a</think>b", "reasoning_parser": "qwen3"}, 200, None),
        ("/parse/function_call", {"tool_call_parser": "json", "tools": []}, 422, "'text' is missing"),
        ("/parse/function_call", {"text": "x", "tool_call_parser": 3}, 422, "'tool_call_parser' must be a string"),
        ("/parse/function_call", {"text": "x", "tool_call_parser": "json", "tools": {"a": 1}}, 422, "'tools' must be an array"),
        ("/parse/function_call", {"text": "x", "tool_call_parser": "json", "tools": [{"type": "function"}]}, 422, "tools[0]"),
        ("/parse/reasoning", ["not", "an", "object"], 422, "JSON object"),
        ("/parse/other", {"text": "x"}, 404, "unknown parse endpoint"),
    ],
)
def test_handle_parse_request(endpoint, body, status, message) -> None:
    got_status, got = handle_parse_request(endpoint, body)
    assert got_status == status
    json.dumps(got)  # always serializable
    if message is None:
        assert got["success"] is True
    else:
        assert got["success"] is False and message in got["error"]["message"] and got["error"]["code"] == status
