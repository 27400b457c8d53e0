"""Every tool-call format: complete parse matches the expected calls, and any chunking
of the same output streams deltas that reassemble to exactly the complete result."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smg.parsers.tools import TOOL_PARSERS, get_tool_parser, tool_parser_for_model

from .cases import TOOL_CASES
from .conftest import chunkings, reassemble

IDS = [f"{c[0]}-{i}" for i, c in enumerate(TOOL_CASES)]


@pytest.mark.parametrize("case", TOOL_CASES, ids=IDS)
def test_complete_parse_matches_expected(case) -> None:
    name, text, content, reasoning, calls = case
    result = get_tool_parser(name).parse_complete(text)
    assert result.content == content
    assert result.reasoning == reasoning
    assert [c.name for c in result.calls] == [c[0] for c in calls]
    for got, (_, args) in zip(result.calls, calls):
        if args is not None:
            assert json.loads(got.arguments) == args
        else:  # truncated at max_tokens: a prefix of a JSON object, never more
            assert got.arguments.startswith("{")


@pytest.mark.parametrize("case", TOOL_CASES, ids=IDS)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_chunking_reassembles_to_complete_result(case, data) -> None:
    name, text, *_ = case
    parser = get_tool_parser(name)
    chunks = data.draw(chunkings(text))
    assert reassemble(parser, chunks) == parser.parse_complete(text)


@pytest.mark.parametrize("name", sorted(set(p.name for p in TOOL_PARSERS.values())))
@settings(max_examples=30, deadline=None)
@given(parts=st.lists(st.sampled_from(list("ab <>[]{}\"',=()|/:\n") + ["<tool_call>", "</tool_call>", "<|python_tag|>", "[TOOL_CALLS]", "<｜tool▁calls▁begin｜>", "<|channel|>", "<|message|>"]), max_size=60), data=st.data())
def test_arbitrary_text_never_breaks_streaming(name, parts, data) -> None:
    text = "".join(parts)
    parser = get_tool_parser(name)
    chunks = data.draw(chunkings(text))
    assert reassemble(parser, chunks) == parser.parse_complete(text)


def test_schema_types_parameters_in_xml_formats() -> None:
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {"n": {"type": "integer"}, "ok": {"type": "boolean"}, "o": {"type": "object"}, "s": {"type": "string"}}}}}]
    parser = get_tool_parser("qwen_xml").with_tools(tools)
    text = "<tool_call>\n<function=f>\n<parameter=n>\n42\n</parameter>\n<parameter=ok>\ntrue\n</parameter>\n<parameter=o>\n{\"a\": 1}\n</parameter>\n<parameter=s>\n007\n</parameter>\n</function>\n</tool_call>"
    (call,) = parser.parse_complete(text).calls
    assert json.loads(call.arguments) == {"n": 42, "ok": True, "o": {"a": 1}, "s": "007"}


@pytest.mark.parametrize(
    ("model", "parser"),
    [
        ("Qwen/Qwen2.5-7B-Instruct", "qwen"),
        ("Qwen/Qwen3-Coder-30B", "qwen_xml"),
        ("deepseek-ai/DeepSeek-V3.1", "deepseek31"),
        ("deepseek-ai/DeepSeek-V3-0324", "deepseek"),
        ("meta-llama/Llama-3.2-3B-Instruct", "llama3"),
        ("moonshotai/Kimi-K2-Instruct", "kimik2"),
        ("openai/gpt-oss-20b", "gpt_oss"),
        ("unknown-model", None),
    ],
)
def test_model_mapping(model: str, parser: str | None) -> None:
    assert tool_parser_for_model(model) == parser


def test_unknown_parser_name_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown tool-call parser"):
        get_tool_parser("nope")
