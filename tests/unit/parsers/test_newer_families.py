"""The families the Rust gateway gained later, and every Rust parser name: complete
parses of real output, and the same output streamed one character at a time and in
random chunks, all equal."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smg.parsers.reasoning import REASONING_PARSERS, get_reasoning_parser
from smg.parsers.tools import TOOL_PARSERS, get_tool_parser

from .conftest import chunkings, reassemble
from .newer_cases import NEWER_REASONING_CASES, NEWER_TOOL_CASES

TOOL_IDS = [f"{c[0]}-{i}" for i, c in enumerate(NEWER_TOOL_CASES)]
REASONING_IDS = [f"{c[0]}-{i}" for i, c in enumerate(NEWER_REASONING_CASES)]


def _rust_choices(flag: str) -> list[str]:
    with open("tests/data/rust_smg_1_13_0_flags.tsv", encoding="utf-8") as f:
        row = next(line.rstrip("\n").split("\t") for line in f if line.startswith(flag + "\t"))
    return row[3].split(",")


@pytest.mark.parametrize("flag", ["--tool-call-parser", "--reasoning-parser"])
def test_every_rust_parser_name_is_accepted(flag: str) -> None:
    known = TOOL_PARSERS if flag == "--tool-call-parser" else REASONING_PARSERS
    names = _rust_choices(flag)
    assert len(names) > 40
    assert [n for n in names if n not in known] == []


def test_smg_serve_accepts_every_rust_parser_name() -> None:
    from smg.cli import build_parser

    parser = build_parser()
    tools, reasonings = _rust_choices("--tool-call-parser"), _rust_choices("--reasoning-parser")
    for i in range(max(len(tools), len(reasonings))):
        tool, reasoning = tools[i % len(tools)], reasonings[i % len(reasonings)]
        args = parser.parse_args(["serve", "--tool-call-parser", tool, "--reasoning-parser", reasoning])
        chosen = vars(args)
        assert (chosen["model.tool_call_parser"], chosen["model.reasoning_parser"]) == (tool, reasoning)


@pytest.mark.parametrize("case", NEWER_TOOL_CASES, ids=TOOL_IDS)
@settings(max_examples=8, deadline=None)
@given(data=st.data())
def test_newer_tool_formats(case, data) -> None:
    name, text, content, calls = case
    parser = get_tool_parser(name)
    whole = parser.parse_complete(text)
    assert whole.content == content
    assert [(c.name, json.loads(c.arguments)) for c in whole.calls] == calls
    assert reassemble(parser, list(text)) == whole
    assert reassemble(parser, data.draw(chunkings(text))) == whole
    # cut at max_tokens anywhere: only whole calls, never a partial one
    k = data.draw(st.integers(0, len(text)))
    cut = parser.parse_complete(text[:k], "length")
    got = [(c.name, json.loads(c.arguments)) for c in cut.calls]
    assert got == calls[: len(got)]
    assert reassemble(parser, data.draw(chunkings(text[:k])), "length") == cut


@pytest.mark.parametrize("case", NEWER_REASONING_CASES, ids=REASONING_IDS)
@settings(max_examples=8, deadline=None)
@given(data=st.data())
def test_newer_reasoning_formats(case, data) -> None:
    name, text, reasoning, content = case
    parser = get_reasoning_parser(name)
    whole = parser.parse_complete(text)
    assert (whole.reasoning, whole.content) == (reasoning, content)
    assert reassemble(parser, list(text)) == whole
    assert reassemble(parser, data.draw(chunkings(text))) == whole


def test_gemma_schema_types_bare_values() -> None:
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {
        "n": {"type": "integer"}, "s": {"type": "string"}}}}}]
    (call,) = get_tool_parser("gemma4").with_tools(tools).parse_complete("<|tool_call>call:f{n:3,s:007}<tool_call|>").calls
    assert json.loads(call.arguments) == {"n": 3, "s": "007"}

