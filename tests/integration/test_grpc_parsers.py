"""Reasoning and tool calls end to end: the reference worker in script mode emits what a
Qwen3-style model emits (thinking, then a hermes tool call) through the real tokenizer;
the openai client must get reasoning_content and tool_calls right, streamed or not."""

from __future__ import annotations

import json

import openai
import pytest

from smg.app import create_app
from smg.config import GatewayConfig, ModelSettings, RoutingConfig
from smg.serve import ServerThread

from worker_threads import GrpcWorkerThread

MODEL = "qwen3-ref"
REASONING = "\nThe user asks about the weather in Paris; 温度 in °C.\n"
CONTENT = "Let me look that up.\n"
ARGS = {"city": "Paris", "unit": "celsius", "note": "say \"hi\" 😀"}
TOOL_OUTPUT = (
    f"<think>{REASONING}</think>\n\n{CONTENT}"
    f'<tool_call>\n{{"name": "get_weather", "arguments": {json.dumps(ARGS, ensure_ascii=False)}}}\n</tool_call>'
)
TOOLS = [{
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "unit": {"type": "string"},
                                                         "note": {"type": "string"}}, "required": ["city"]},
    },
}]


@pytest.fixture(scope="module")
def gw(tmp_path_factory):
    script = tmp_path_factory.mktemp("script") / "script.json"
    script.write_text(json.dumps([
        {"match": "in Paris\\?", "output": TOOL_OUTPUT},
        {"match": "json please", "output": '{"answer": 42}'},
        {"match": "call it now", "output": json.dumps([{"name": "get_weather", "parameters": ARGS}], ensure_ascii=False)},
        {"match": "", "output": "<think>short</think>Plain answer."},
    ]), encoding="utf-8")
    worker = GrpcWorkerThread(grpc_proto="sglang", model=MODEL, tokenizer="qwen", mode="script", script=str(script))
    url = worker.start()
    config = GatewayConfig(
        routing=RoutingConfig(worker_urls=(url,), policy="round_robin", disable_load_monitoring=True),
        model=ModelSettings(reasoning_parser="qwen3", tool_call_parser="qwen"),
    )
    server = ServerThread(create_app(config))
    base = server.start()
    yield openai.OpenAI(base_url=base + "/v1", api_key="unused", max_retries=0, timeout=30)
    server.stop()
    worker.stop()


def _ask(client, text, **kw):
    return client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": text}], **kw)


def test_reasoning_and_tool_call_whole(gw) -> None:
    resp = _ask(gw, "What's the weather in Paris?", tools=TOOLS)
    choice = resp.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.model_extra["reasoning_content"] == REASONING
    assert choice.message.content == CONTENT
    (call,) = choice.message.tool_calls
    assert call.function.name == "get_weather" and call.id
    assert json.loads(call.function.arguments) == ARGS


def test_reasoning_and_tool_call_streamed(gw) -> None:
    reasoning, content, calls, reasons = "", "", {}, []
    for chunk in _ask(gw, "What's the weather in Paris?", tools=TOOLS, stream=True):
        for c in chunk.choices:
            reasoning += (c.delta.model_extra or {}).get("reasoning_content") or ""
            content += c.delta.content or ""
            for tc in c.delta.tool_calls or []:
                entry = calls.setdefault(tc.index, {"id": None, "name": None, "args": ""})
                if tc.id:
                    assert entry["id"] is None, "id only on the first delta of a call"
                    entry["id"], entry["name"] = tc.id, tc.function.name
                entry["args"] += tc.function.arguments or ""
            if c.finish_reason:
                reasons.append(c.finish_reason)
    assert reasoning == REASONING and content == CONTENT
    assert list(calls) == [0] and calls[0]["name"] == "get_weather"
    assert json.loads(calls[0]["args"]) == ARGS
    assert reasons == ["tool_calls"]


def test_without_tools_the_call_text_stays_content(gw) -> None:
    resp = _ask(gw, "What's the weather in Paris?")
    msg = resp.choices[0].message
    assert msg.model_extra["reasoning_content"] == REASONING
    assert msg.content.startswith(CONTENT) and "<tool_call>" in msg.content
    assert not msg.tool_calls and resp.choices[0].finish_reason == "stop"


def test_separate_reasoning_off(gw) -> None:
    resp = _ask(gw, "hello", extra_body={"separate_reasoning": False})
    assert resp.choices[0].message.content == "shortPlain answer."


def test_required_tool_choice_without_a_call_is_a_clear_error(gw) -> None:
    with pytest.raises(openai.APIStatusError) as info:
        _ask(gw, "hello", tools=TOOLS, tool_choice="required")
    assert info.value.status_code == 502
    assert "did not call a tool" in str(info.value)


def test_response_format_is_validated(gw) -> None:
    fmt = {"type": "json_schema", "json_schema": {"name": "a", "schema": {"type": "object", "required": ["answer"]}}}
    resp = _ask(gw, "json please", response_format=fmt)
    assert json.loads(resp.choices[0].message.content) == {"answer": 42}
    bad = {"type": "json_schema", "json_schema": {"name": "b", "schema": {"type": "object", "required": ["other"]}}}
    with pytest.raises(openai.APIStatusError) as info:
        _ask(gw, "json please", response_format=bad)
    assert info.value.status_code == 502


def test_required_tool_choice_reads_the_constrained_json_array(gw) -> None:
    # With tool_choice=required the worker is constrained to a JSON array of calls; the
    # gateway reads that array whatever the model's own tool-call format is.
    resp = _ask(gw, "call it now", tools=TOOLS, tool_choice="required")
    (call,) = resp.choices[0].message.tool_calls
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == ARGS
    assert resp.choices[0].finish_reason == "tool_calls"


def test_parse_endpoints(gw) -> None:
    import urllib.request

    base = str(gw.base_url).rstrip("/").removesuffix("/v1")

    def post(path, body):
        req = urllib.request.Request(base + path, data=json.dumps(body).encode(), headers={"content-type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read())

    out = post("/parse/function_call", {"text": TOOL_OUTPUT.split("</think>")[1], "tool_call_parser": "qwen", "tools": TOOLS})
    assert out["tool_calls"][0]["function"]["name"] == "get_weather"
    out = post("/parse/reasoning", {"text": TOOL_OUTPUT, "reasoning_parser": "qwen3"})
    assert out["reasoning_text"] == REASONING
