"""Parsing cost per output character, streaming (token-sized chunks) vs complete.

    python -m pytest benchmarks/test_bench_parsers.py -q -s

Each case runs the same model output through ``parse_complete`` and through a stream of
4-character chunks (about one token each); the table printed at the end gives ns per
character and the streaming/complete ratio from the same run.
"""

from __future__ import annotations

import json
import time

import pytest

from smg.parsers.output import ChoiceParser
from smg.parsers.reasoning import get_reasoning_parser
from smg.parsers.tools import get_tool_parser

ARGS = json.dumps({"city": "Paris", "days": 3, "filters": {"tags": ["a", "b"], "note": "x" * 200}})
OUTPUTS = {
    "qwen": "<think>" + "reasoning about the request. " * 40 + "</think>\n\nSure.\n"
    + "".join(f'<tool_call>\n{{"name": "f{i}", "arguments": {ARGS}}}\n</tool_call>\n' for i in range(3)),
    "deepseek31": "Let me check. " * 20 + "<｜tool▁calls▁begin｜>"
    + "".join(f"<｜tool▁call▁begin｜>f{i}<｜tool▁sep｜>{ARGS}<｜tool▁call▁end｜>" for i in range(3)) + "<｜tool▁calls▁end｜>",
    "qwen_xml": "<tool_call>\n<function=f>\n" + "".join(f"<parameter=p{i}>\nvalue {i} " + "y" * 50 + "\n</parameter>\n" for i in range(8)) + "</function>\n</tool_call>",
    "plain": "The answer is plain text with <b>tags</b> and 1 < 2 comparisons. " * 60,
}
RESULTS: dict[str, dict[str, float]] = {}


def _parser(name: str) -> ChoiceParser:
    if name == "plain":
        return ChoiceParser(None, get_tool_parser("qwen"))
    reasoning = get_reasoning_parser("qwen3") if name == "qwen" else None
    return ChoiceParser(reasoning, get_tool_parser(name))


def _stream(name: str, text: str) -> None:
    p = _parser(name)
    for i in range(0, len(text), 4):
        p.feed(text[i : i + 4])
    p.finish()


def _complete(name: str, text: str) -> None:
    p = _parser(name)
    p.feed(text)
    p.finish()


@pytest.mark.parametrize("name", list(OUTPUTS))
@pytest.mark.parametrize("mode", ["complete", "stream"])
def test_parse_cost(benchmark, name: str, mode: str) -> None:
    text = OUTPUTS[name]
    fn = _stream if mode == "stream" else _complete
    benchmark(fn, name, text)
    RESULTS.setdefault(name, {})[mode] = benchmark.stats.stats.median * 1e9 / len(text)


def teardown_module() -> None:
    print("\nparser cost, ns per output character (median)")
    print(f"{'format':<12} {'complete':>10} {'stream':>10} {'stream/complete':>16}")
    for name, r in RESULTS.items():
        if "complete" in r and "stream" in r:
            print(f"{name:<12} {r['complete']:>10.1f} {r['stream']:>10.1f} {r['stream'] / r['complete']:>16.2f}")
