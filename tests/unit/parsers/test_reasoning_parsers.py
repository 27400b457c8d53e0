from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smg.parsers.reasoning import get_reasoning_parser, reasoning_parser_for_model

from .cases import REASONING_CASES
from .conftest import chunkings, reassemble


@pytest.mark.parametrize("case", REASONING_CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(REASONING_CASES)])
def test_complete_split(case) -> None:
    name, text, reasoning, content = case
    result = get_reasoning_parser(name).parse_complete(text)
    assert (result.reasoning, result.content) == (reasoning, content)


@pytest.mark.parametrize("case", REASONING_CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(REASONING_CASES)])
@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_any_chunking_matches_complete(case, data) -> None:
    name, text, *_ = case
    parser = get_reasoning_parser(name)
    assert reassemble(parser, data.draw(chunkings(text))) == parser.parse_complete(text)


@settings(max_examples=60, deadline=None)
@given(parts=st.lists(st.sampled_from(["<think>", "</think>", "<", "/", "t", "h", " ", "\n", "x", "思"]), max_size=40), data=st.data(), starts=st.booleans())
def test_random_text_streams_like_complete(parts, data, starts) -> None:
    text = "".join(parts)
    parser = get_reasoning_parser("qwen3")
    parser = parser.started() if starts else parser
    assert reassemble(parser, data.draw(chunkings(text))) == parser.parse_complete(text)


def test_template_toggle_starts_in_reasoning() -> None:
    parser = get_reasoning_parser("qwen3").started()
    result = parser.parse_complete("thinking</think>answer")
    assert (result.reasoning, result.content) == ("thinking", "answer")


def test_model_mapping() -> None:
    assert reasoning_parser_for_model("deepseek-ai/DeepSeek-R1-Distill") == "deepseek_r1"
    assert reasoning_parser_for_model("Qwen/Qwen3-8B") == "qwen3"
    assert reasoning_parser_for_model("Qwen3-Thinking-2507") == "qwen3_thinking"
    assert reasoning_parser_for_model("llama") is None
