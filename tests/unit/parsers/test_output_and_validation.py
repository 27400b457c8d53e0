from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smg.parsers.core import ToolCall
from smg.parsers.output import ChoiceParser
from smg.parsers.reasoning import get_reasoning_parser
from smg.parsers.tools import get_tool_parser
from smg.parsers.validation import constraint_for, validate_response_format, validate_tool_calls

from .conftest import chunkings

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
                "required": ["city"],
            },
        },
    }
]
OUTPUT = (
    "<think>The user wants weather.</think>\n\nChecking 北京.\n"
    '<tool_call>\n{"name": "get_weather", "arguments": {"city": "北京", "days": 3}}\n</tool_call>'
)


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_reasoning_then_tools_under_any_chunking(data) -> None:
    parser = ChoiceParser(get_reasoning_parser("qwen3"), get_tool_parser("qwen"), tool_specs=TOOLS)
    for chunk in data.draw(chunkings(OUTPUT)):
        parser.feed(chunk)
    parser.finish()
    result = parser.result()
    assert result.reasoning == "The user wants weather."
    assert result.content == "Checking 北京.\n"
    assert [(c.name, json.loads(c.arguments)) for c in result.calls] == [
        ("get_weather", {"city": "北京", "days": 3})
    ]
    assert validate_tool_calls(result.calls, TOOLS, "auto") is None


def test_separate_reasoning_off_keeps_reasoning_in_content() -> None:
    parser = ChoiceParser(get_reasoning_parser("qwen3"), None, separate_reasoning=False)
    parser.feed("<think>a</think>b")
    parser.finish()
    assert parser.result().content == "ab" and parser.result().reasoning == ""


def test_validation_reports_bad_arguments() -> None:
    assert "not valid JSON" in validate_tool_calls([ToolCall("get_weather", '{"city": ')], TOOLS, "auto")
    assert "do not match" in validate_tool_calls([ToolCall("get_weather", '{"days": 1}')], TOOLS, "auto")
    assert "unknown tool" in validate_tool_calls([ToolCall("nope", "{}")], TOOLS, "auto")
    assert "requires" in validate_tool_calls([], TOOLS, "required")


def test_named_tool_choice_constrains_to_that_tool() -> None:
    choice = {"type": "function", "function": {"name": "get_weather"}}
    schema = constraint_for(TOOLS, choice)
    assert schema["items"]["anyOf"][0]["properties"]["name"] == {"const": "get_weather"}
    with pytest.raises(ValueError, match="not in tools"):
        constraint_for(TOOLS, {"type": "function", "function": {"name": "other"}})
    assert constraint_for(TOOLS, "auto") is None


def test_response_format_validation() -> None:
    fmt = {"type": "json_schema", "json_schema": {"schema": {"type": "object", "required": ["a"]}}}
    assert validate_response_format('{"a": 1}', fmt) is None
    assert "does not match" in validate_response_format('{"b": 1}', fmt)
    assert "not valid JSON" in validate_response_format("nope", {"type": "json_object"})
    assert validate_response_format("anything", None) is None
