"""The /parse endpoints' pure layer: SMG-shaped bodies, clear errors for bad requests."""

from __future__ import annotations

import json

import pytest

from smg.errors import BadRequest, NotFound, SmgError
from smg.parsers.api import parse_function_call, parse_reasoning, parse_request

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


def test_unknown_parsers_are_bad_requests() -> None:
    with pytest.raises(BadRequest, match="Unknown tool parser: nope") as e:
        parse_function_call("x", "nope")
    assert e.value.status_code == 400 and e.value.param == "tool_call_parser"
    with pytest.raises(BadRequest, match="Unknown reasoning parser: nope"):
        parse_request("/parse/reasoning", {"text": "x", "reasoning_parser": "nope"})


@pytest.mark.parametrize(
    ("endpoint", "body"),
    [
        ("/parse/function_call", {"text": '{"name": "search", "arguments": {}}', "tool_call_parser": "json", "tools": TOOLS}),
        ("/parse/function_call", {"text": "plain", "tool_call_parser": "qwen"}),  # tools are optional
        ("/parse/reasoning", {"text": "<think>a</think>b", "reasoning_parser": "qwen3"}),
    ],
)
def test_parse_request_serves_both_endpoints(endpoint, body) -> None:
    got = parse_request(endpoint, body)
    assert got["success"] is True
    json.dumps(got)


@pytest.mark.parametrize(
    ("endpoint", "body", "error", "message", "param"),
    [
        ("/parse/function_call", {"tool_call_parser": "json", "tools": []}, BadRequest, "'text' is missing", "text"),
        ("/parse/function_call", {"text": "x", "tool_call_parser": 3}, BadRequest, "'tool_call_parser' must be a string", "tool_call_parser"),
        ("/parse/function_call", {"text": "x", "tool_call_parser": "json", "tools": {"a": 1}}, BadRequest, "'tools' must be an array", "tools"),
        ("/parse/function_call", {"text": "x", "tool_call_parser": "json", "tools": [{"type": "function"}]}, BadRequest, "tools[0]", "tools"),
        ("/parse/reasoning", ["not", "an", "object"], BadRequest, "JSON object", None),
        ("/parse/other", {"text": "x"}, NotFound, "unknown parse endpoint", None),
    ],
)
def test_bad_requests_are_clear_errors(endpoint, body, error, message, param) -> None:
    with pytest.raises(error) as e:
        parse_request(endpoint, body)
    assert isinstance(e.value, SmgError) and message in e.value.message and e.value.param == param
