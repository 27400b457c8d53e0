"""Issue 19's classes of output, each from the affected families' real output: the
complete parse is what the class asks for, and streaming the same output one character
at a time and in random chunks gives exactly the complete result."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smg.parsers.core import ToolCall
from smg.parsers.output import ChoiceParser
from smg.parsers.reasoning import get_reasoning_parser
from smg.parsers.tools import get_tool_parser

from .conftest import chunkings, reassemble
from .family_outputs import CLASS_CASES, TOOLS, TWO_CALLS, W

IDS = [c[0] for c in CLASS_CASES]


def _parser(case):
    _, name, _, _, tools, *_ = case
    return get_tool_parser(name).with_tools(tools)


@pytest.mark.parametrize("case", CLASS_CASES, ids=IDS)
def test_complete_parse_is_what_the_class_asks(case) -> None:
    _, _, text, finish, _, content, reasoning, calls = case
    result = _parser(case).parse_complete(text, finish)
    assert result.content == content
    assert result.reasoning == reasoning
    assert [(c.name, json.loads(c.arguments)) for c in result.calls] == calls


@pytest.mark.parametrize("case", CLASS_CASES, ids=IDS)
def test_one_character_at_a_time_equals_complete(case) -> None:
    text, finish = case[2], case[3]
    parser = _parser(case)
    assert reassemble(parser, list(text), finish) == parser.parse_complete(text, finish)


@pytest.mark.parametrize("case", CLASS_CASES, ids=IDS)
@settings(max_examples=8, deadline=None)
@given(data=st.data())
def test_random_chunks_equal_complete(case, data) -> None:
    text, finish = case[2], case[3]
    parser = _parser(case)
    assert reassemble(parser, data.draw(chunkings(text)), finish) == parser.parse_complete(text, finish)


@pytest.mark.parametrize("name", sorted(TWO_CALLS))
@settings(max_examples=12, deadline=None)
@given(data=st.data())
def test_any_cut_at_max_tokens_emits_only_complete_calls(name, data) -> None:
    """Cut anywhere: the calls are the full output's first calls, each whole; streamed
    in any chunks, the same."""
    text, calls = TWO_CALLS[name]
    k = data.draw(st.integers(0, len(text)))
    parser = get_tool_parser(name).with_tools(TOOLS)
    result = parser.parse_complete(text[:k], "length")
    got = [(c.name, json.loads(c.arguments)) for c in result.calls]
    assert got == calls[: len(got)]
    assert reassemble(parser, data.draw(chunkings(text[:k])), "length") == result
    if k == len(text):
        assert got == calls


# --- class 1: gpt-oss harmony --------------------------------------------------------------

HARMONY = (
    "<|channel|>analysis<|message|>User wants the weather in 北京.<|end|>"
    '<|start|>assistant<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{"city": "北京", "unit": "celsius"}<|call|>'
)
HARMONY_ANSWER = "<|channel|>analysis<|message|>Simple.<|end|><|start|>assistant<|channel|>final<|message|>Hello 😀!<|return|>"


def _choice(reasoning: str | None, chunks: list[str], finish: str = "stop"):
    choice = ChoiceParser(get_reasoning_parser(reasoning) if reasoning else None, get_tool_parser("gpt_oss"), tool_specs=TOOLS)
    for c in chunks:
        choice.feed(c)
    choice.finish(finish)
    return choice.result()


@pytest.mark.parametrize("reasoning", [None, "harmony"])
@settings(max_examples=8, deadline=None)
@given(data=st.data())
def test_harmony_analysis_reasoning_reaches_the_response(reasoning, data) -> None:
    whole = _choice(reasoning, [HARMONY])
    assert whole.reasoning == "User wants the weather in 北京."
    assert whole.content == ""
    assert [(c.name, json.loads(c.arguments)) for c in whole.calls] == [("get_weather", W)]
    assert _choice(reasoning, list(HARMONY)) == whole
    assert _choice(reasoning, data.draw(chunkings(HARMONY))) == whole


@settings(max_examples=8, deadline=None)
@given(data=st.data())
def test_harmony_reasoning_parser_alone(data) -> None:
    parser = get_reasoning_parser("harmony")
    whole = parser.parse_complete(HARMONY_ANSWER)
    assert (whole.reasoning, whole.content) == ("Simple.", "Hello 😀!")
    assert reassemble(parser, list(HARMONY_ANSWER)) == whole
    assert reassemble(parser, data.draw(chunkings(HARMONY_ANSWER))) == whole


def test_a_call_is_sent_whole_once_complete() -> None:
    stream = get_tool_parser("qwen").stream()
    text = TWO_CALLS["qwen"][0]
    cut = text.index("</tool_call>")
    assert not stream.feed(text[:cut]).tool_calls  # complete only with its closing marker
    (first,) = stream.feed(text[cut:cut + len("</tool_call>")]).tool_calls
    assert (first.index, first.name, json.loads(first.arguments)) == (0, "get_weather", W)
    assert ToolCall("get_weather", first.arguments) == get_tool_parser("qwen").parse_complete(text).calls[0]
