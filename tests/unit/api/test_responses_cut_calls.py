"""Proxy-mode Responses parse a worker's raw output with the gateway's parsers: a tool
call cut at max_tokens ("length") is not a call, whole or streamed."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from smg.api.responses.chat import _parse_whole, _parsed_stream

CUT = 'Checking.<tool_call>\n{"name": "get_weather", "arguments": {"city": "Par'
TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
STATE = SimpleNamespace(config=SimpleNamespace(model=SimpleNamespace(reasoning_parser=None, tool_call_parser="qwen")))


@pytest.mark.parametrize(("reason", "calls"), [("length", 0), ("stop", 1)])
def test_whole_answer(reason, calls):
    resp = {"choices": [{"message": {"role": "assistant", "content": CUT}, "finish_reason": reason}]}
    _parse_whole(STATE, {"tools": TOOLS}, resp)
    msg = resp["choices"][0]["message"]
    assert msg["content"] == "Checking." and len(msg.get("tool_calls") or []) == calls


@pytest.mark.parametrize(("reason", "calls"), [("length", 0), ("stop", 1)])
def test_streamed_answer(reason, calls):
    chunks = [{"choices": [{"delta": {"content": CUT[i:i + 7]}, "finish_reason": None}]}
              for i in range(0, len(CUT), 7)]
    chunks.append({"choices": [{"delta": {}, "finish_reason": reason}]})

    async def source():
        for c in chunks:
            yield c

    async def collect():
        return [c async for c in _parsed_stream(STATE, {"tools": TOOLS}, source())]

    out = asyncio.run(collect())
    deltas = [ch["choices"][0]["delta"] for ch in out]
    assert "".join(d["content"] for d in deltas) == "Checking."
    assert sum(len(d["tool_calls"]) for d in deltas) == calls
