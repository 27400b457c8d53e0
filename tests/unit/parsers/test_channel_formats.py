"""Kimi-K3, Inkling, Sarashina and the Llama 4 wrapper: random marker soup streams like complete, reasoning and
tool parsers chain under any chunking, unknown tools are dropped, model mapping."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smg.parsers.output import ChoiceParser
from smg.parsers.reasoning import get_reasoning_parser, reasoning_parser_for_model
from smg.parsers.tools import get_tool_parser, tool_parser_for_model

from .cases import INK_CALL, K3_ARG, K3_CALL, K3_TOOLS, W
from .conftest import chunkings, reassemble

ALPHABETS = {
    "kimi_k3": ["<|open|>", "<|close|>", "<|sep|>", "tools", "response", "think", "message", 'call tool="f" index="1"',
                'argument key="k" type="number"', 'argument key="s" type="string"', "1", "x", " ", "<", "|"],
    "inkling": ["<|message_model|>", "<|content_text|>", "<|content_thinking|>", "<|content_invoke_tool_json|>",
                "<|content_invoke_tool_text|>", "<|end_message|>", "<|content_model_end_sampling|>", '{"name":"f","args":',
                "{}", "}", '"', "x", " ", "<|"],
    "llama4": ["<|python_start|>", "<|python_end|>", "[", "]", "f(", "x=1", "x=", '"s"', ")", ", ", " ", "a", "<|", "<|python", "{", "}", "b'z'"],
    "sarashina": ["<|tool_calls|>", "[", "]", "{", "}", "'name'", ": ", "'f'", ", ", "'arguments'", "'", "x", " ", "<|"],
}


@pytest.mark.parametrize("name", sorted(ALPHABETS))
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_marker_soup_streams_like_complete(name, data) -> None:
    text = "".join(data.draw(st.lists(st.sampled_from(ALPHABETS[name]), max_size=40)))
    chunks = data.draw(chunkings(text))
    tools = get_tool_parser(name)
    assert reassemble(tools, chunks) == tools.parse_complete(text)
    if name in ("kimi_k3", "inkling"):
        for reasoning in (get_reasoning_parser(name), get_reasoning_parser(name).started()):
            assert reassemble(reasoning, chunks) == reasoning.parse_complete(text)


K3_OUTPUT = (
    "<|open|>think<|sep|>User wants 北京 weather.<|close|>think<|sep|>"
    "<|open|>response<|sep|>Checking.<|close|>response<|sep|>"
    + K3_TOOLS(K3_CALL("get_weather", 1, K3_ARG("city", "string", "北京") + K3_ARG("unit", "string", "celsius")))
    + "<|close|>message<|sep|>"
)
INK_OUTPUT = (
    "<|message_model|><|content_thinking|>User wants 北京 weather.<|end_message|>"
    "<|message_model|><|content_text|>Checking.<|end_message|>"
    + INK_CALL("get_weather", json.dumps(W, ensure_ascii=False))
    + "<|content_model_end_sampling|>"
)


@pytest.mark.parametrize(("name", "output"), [("kimi_k3", K3_OUTPUT), ("inkling", INK_OUTPUT)])
@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_reasoning_then_tools_chain_under_any_chunking(name, output, data) -> None:
    parser = ChoiceParser(get_reasoning_parser(name), get_tool_parser(name))
    for chunk in data.draw(chunkings(output)):
        parser.feed(chunk)
    parser.finish()
    result = parser.result()
    assert result.reasoning == "User wants 北京 weather."
    assert result.content == "Checking."
    assert [(c.name, json.loads(c.arguments)) for c in result.calls] == [("get_weather", W)]


def test_kimi_k3_prefilled_think_channel() -> None:
    # The template opened <|open|>think<|sep|>; the model may jump straight to tools.
    text = "planning" + K3_TOOLS(K3_CALL("f", 1, ""))
    result = get_reasoning_parser("kimi_k3").started().parse_complete(text)
    assert result.reasoning == "planning"
    assert result.content == K3_TOOLS(K3_CALL("f", 1, ""))
    (call,) = get_tool_parser("kimi_k3").parse_complete(result.content).calls
    assert (call.name, json.loads(call.arguments)) == ("f", {})


def test_inkling_drops_calls_to_undeclared_tools() -> None:
    tools = [{"type": "function", "function": {"name": "search", "parameters": {"type": "object"}}}]
    text = INK_CALL("rm_rf", "{}") + INK_CALL("search", '{"q":"x"}') + "<|content_text|>done<|end_message|>"
    result = get_tool_parser("inkling").with_tools(tools).parse_complete(text)
    assert [(c.name, json.loads(c.arguments)) for c in result.calls] == [("search", {"q": "x"})]
    assert result.content == "done"
    assert [c.name for c in get_tool_parser("inkling").parse_complete(text).calls] == ["rm_rf", "search"]


def test_sarashina_python_literals_become_json() -> None:
    text = "<|tool_calls|>{'name': 'f', 'arguments': {'ok': True, 'none': None, 't': (1, 2), 's': {3}, 'b': b'x', 1: 2}}"
    (call,) = get_tool_parser("sarashina").parse_complete(text).calls
    assert json.loads(call.arguments) == {"ok": True, "none": None, "t": [1, 2], "s": [3], "b": "x", "1": 2}


@pytest.mark.parametrize("text", ["[f(x={{'a': 1}})]", "[f(x={1, 2}, y=b'z', z=3j)]", "[{'name': 'f', 'arguments': {'s': {{}}}}]"])
def test_odd_python_literals_give_json_not_errors(text: str) -> None:
    for name in ("pythonic", "sarashina"):
        for call in get_tool_parser(name).parse_complete(text).calls:
            assert isinstance(json.loads(call.arguments), dict)


@pytest.mark.parametrize(
    ("model", "tool", "reasoning"),
    [
        ("moonshotai/Kimi-K3-Instruct", "kimi_k3", "kimi_k3"),
        ("kimi_k3-preview", "kimi_k3", "kimi_k3"),
        ("moonshotai/Kimi-K2-Instruct", "kimik2", "kimi"),
        ("lab/Inkling-8B", "inkling", "inkling"),
        ("sbintuitions/sarashina2.2-3b-instruct", "sarashina", None),
    ],
)
def test_model_mapping(model: str, tool: str, reasoning: str | None) -> None:
    assert tool_parser_for_model(model) == tool
    assert reasoning_parser_for_model(model) == reasoning
