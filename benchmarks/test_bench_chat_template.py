"""Chat template rendering: ChatSandbox against jinja2's stock immutable sandbox, same run.

Workloads: the built-in templates on the e2e benchmark's one-message chat, and on a
six-message conversation with a tool call and tools. The stock environment is the one
chat templates used before ChatSandbox (same filters, globals and extensions).

Run::

    python -m pytest benchmarks/test_bench_chat_template.py -q -s

Ratios are printed at the end ("chat template render ratios"); below 1 is faster.
"""

from __future__ import annotations

from typing import Any

import pytest
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from smg.tokenizer import ChatTemplate
from smg.tokenizer.template import _environment
from smg.tokenizer.templates import BUILTIN_TEMPLATES, builtin_template

pytest.importorskip("pytest_benchmark")

SHORT = [{"role": "user", "content": "Say hello to the benchmark."}]
TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather for a city",
                                           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]
LONG = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Weather in Paris?"},
    {"role": "assistant", "content": "", "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]},
    {"role": "tool", "tool_call_id": "c1", "content": "20 degrees"},
    {"role": "assistant", "content": "It is 20 degrees."},
    {"role": "user", "content": "Thanks!"},
]
WORKLOADS = {"short": (SHORT, None), "tools": (LONG, TOOLS)}
RESULTS: dict[tuple[str, str, str], float] = {}


class _Stock(ImmutableSandboxedEnvironment):
    def unsafe_undefined(self, obj: Any, attribute: str) -> Any:
        raise SecurityError(attribute)


STOCK = _environment(_Stock)


def _context(messages: list, tools: list | None) -> dict[str, Any]:
    return {"messages": messages, "tools": tools, "add_generation_prompt": True, "bos_token": "<s>", "eos_token": "</s>"}


@pytest.mark.parametrize("workload", sorted(WORKLOADS))
@pytest.mark.parametrize("name", BUILTIN_TEMPLATES)
@pytest.mark.parametrize("env", ["stock", "chat_sandbox"])
def test_render(benchmark, env: str, name: str, workload: str) -> None:
    source = builtin_template(name)
    template = STOCK.from_string(source) if env == "stock" else ChatTemplate(source)._template
    context = _context(*WORKLOADS[workload])
    assert template.render(context) == STOCK.from_string(source).render(context)
    benchmark.pedantic(template.render, args=(context,), rounds=200, iterations=10, warmup_rounds=5)
    RESULTS[env, name, workload] = benchmark.stats.stats.min


def teardown_module() -> None:
    print("\nchat template render ratios (min time, ChatSandbox / stock sandbox):")
    for name in BUILTIN_TEMPLATES:
        for workload in sorted(WORKLOADS):
            stock, new = RESULTS.get(("stock", name, workload)), RESULTS.get(("chat_sandbox", name, workload))
            if stock and new:
                print(f"  {name:9s} {workload:6s} {new / stock:.2f}x ({new * 1e6:.1f} vs {stock * 1e6:.1f} us)")
