"""Responses input items -> stored items and chat messages; chat output -> output items
and events (smg.api.responses.items / .output)."""

from __future__ import annotations

import pytest

from smg.api.responses.items import normalize_input, to_messages
from smg.api.responses.output import OutputBuilder, usage
from smg.errors import BadRequest


def test_a_string_is_one_user_message_with_an_id() -> None:
    (item,) = normalize_input("hi")
    assert item["type"] == "message" and item["role"] == "user" and item["id"].startswith("msg_")
    assert item["content"] == [{"type": "input_text", "text": "hi"}]


def test_given_ids_are_kept() -> None:
    (item,) = normalize_input([{"type": "function_call", "id": "fc_1", "call_id": "c", "name": "f", "arguments": "{}"}])
    assert item["id"] == "fc_1"


def test_to_messages_merges_calls_and_carries_reasoning() -> None:
    items = normalize_input([
        {"role": "developer", "content": "be brief"},
        {"role": "user", "content": [{"type": "input_text", "text": "a"}, {"type": "input_text", "text": "b"}]},
        {"type": "reasoning", "summary": [], "content": [{"type": "reasoning_text", "text": "hmm"}]},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "let me see"}]},
        {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{\"x\": 1}"},
        {"type": "function_call", "call_id": "c2", "name": "g", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c1", "output": "one"},
        {"type": "function_call_output", "call_id": "c2", "output": [{"type": "input_text", "text": "two"}]},
    ])
    messages = to_messages(items, "sys")
    assert messages[0] == {"role": "system", "content": "sys"}
    assert messages[1] == {"role": "system", "content": "be brief"}
    assert messages[2] == {"role": "user", "content": "ab"}
    assistant = messages[3]
    assert assistant["content"] == "let me see" and assistant["reasoning_content"] == "hmm"
    assert [c["id"] for c in assistant["tool_calls"]] == ["c1", "c2"]
    assert messages[4:] == [{"role": "tool", "tool_call_id": "c1", "content": "one"},
                            {"role": "tool", "tool_call_id": "c2", "content": "two"}]


def test_images_become_image_parts() -> None:
    items = normalize_input([{"role": "user", "content": [
        {"type": "input_text", "text": "what is it"}, {"type": "input_image", "image_url": "data:image/png;base64,AA"}]}])
    (msg,) = to_messages(items, None)
    assert msg["content"] == [{"type": "text", "text": "what is it"},
                              {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA", "detail": "auto"}}]


@pytest.mark.parametrize(("value", "param"), [
    (3, "input"), ([{"type": "item_reference", "id": "x"}], "input[0].type"),
    ([{"role": "assistant", "content": [{"type": "input_image", "image_url": "u"}]}], "input[0].content[0].type"),
    ([{"type": "message"}], "input[0].role"),
])
def test_bad_items_name_the_field(value, param) -> None:
    with pytest.raises(BadRequest) as info:
        normalize_input(value)
    assert info.value.param == param


def test_builder_events_and_response() -> None:
    b = OutputBuilder({"id": "resp_1", "output": [], "status": "in_progress"})
    events = [b.snapshot("response.created")]
    events += b.reasoning("think") + b.content("Hel") + b.content("lo") + b.tool(0, "call_1", "f", '{"a"') + b.tool(0, None, None, ": 1}")
    events += b.finish("tool_calls", usage(5, 7, 1, 2))
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert events[0]["response"]["output"] == []  # a snapshot does not change as the response grows
    kinds = [e["type"] for e in events]
    assert kinds == [
        "response.created",
        "response.output_item.added", "response.content_part.added", "response.reasoning_text.delta",
        "response.reasoning_text.done", "response.content_part.done", "response.output_item.done",
        "response.output_item.added", "response.content_part.added", "response.output_text.delta",
        "response.output_text.delta", "response.output_text.done", "response.content_part.done",
        "response.output_item.done",
        "response.output_item.added", "response.function_call_arguments.delta",
        "response.function_call_arguments.delta", "response.function_call_arguments.done",
        "response.output_item.done", "response.completed",
    ]
    final = events[-1]["response"]
    assert final["status"] == "completed" and [i["type"] for i in final["output"]] == ["reasoning", "message", "function_call"]
    assert final["output"][1]["content"][0]["text"] == "Hello" and final["output"][2]["arguments"] == '{"a": 1}'
    assert final["usage"]["output_tokens_details"]["reasoning_tokens"] == 2 and final["usage"]["total_tokens"] == 12


def test_length_is_incomplete_and_an_error_is_failed() -> None:
    b = OutputBuilder({"id": "r", "output": []})
    b.content("partial")
    *_, last = b.finish("length", usage(1, 1, 0, 0))
    assert last["type"] == "response.incomplete" and last["response"]["incomplete_details"] == {"reason": "max_output_tokens"}
    assert last["response"]["output"][0]["status"] == "incomplete"
    b = OutputBuilder({"id": "r", "output": []})
    *_, last = b.finish("stop", usage(1, 0, 0, 0), {"code": "server_error", "message": "boom"})
    assert last["type"] == "response.failed" and last["response"]["error"]["message"] == "boom"
    b = OutputBuilder({"id": "r", "output": []})
    *_, last = b.finish("abort", usage(1, 0, 0, 0))
    assert last["type"] == "response.failed" and last["response"]["status"] == "failed"


def test_parallel_tool_calls_off_keeps_the_first_call() -> None:
    b = OutputBuilder({"id": "r", "output": []}, parallel_tool_calls=False)
    b.tool(0, "c0", "f", "{}")
    assert b.tool(1, "c1", "g", "{}") == []
    b.finish("tool_calls", usage(1, 1, 0, 0))
    assert [i["call_id"] for i in b.response["output"]] == ["c0"]


def test_the_chat_request_a_responses_request_becomes() -> None:
    from smg.api.responses.request import parse_request

    req = parse_request({
        "model": "m", "input": "hi", "max_output_tokens": 7, "temperature": 0.5, "top_p": 0.9, "user": "u",
        "tools": [{"type": "function", "name": "f", "parameters": {"type": "object"}, "strict": True}],
        "tool_choice": {"type": "function", "name": "f"}, "parallel_tool_calls": False,
        "text": {"format": {"type": "json_schema", "name": "s", "schema": {"type": "object"}, "strict": True}},
        "reasoning": {"effort": "high"},
    })
    body = req.chat_body([{"role": "user", "content": "hi"}], stream=True)
    assert body == {
        "messages": [{"role": "user", "content": "hi"}], "stream": True, "model": "m",
        "stream_options": {"include_usage": True}, "max_tokens": 7, "temperature": 0.5, "top_p": 0.9, "user": "u",
        "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}, "strict": True}}],
        "tool_choice": {"type": "function", "function": {"name": "f"}}, "parallel_tool_calls": False,
        "response_format": {"type": "json_schema", "json_schema": {"name": "s", "schema": {"type": "object"},
                                                                   "strict": True}},
        "reasoning_effort": "high",
    }
    echo = req.echo()
    assert echo["tool_choice"] == {"type": "function", "name": "f"} and echo["max_output_tokens"] == 7
    assert echo["temperature"] == 0.5 and echo["store"] is True and echo["truncation"] == "disabled"


def test_chat_side_errors_name_the_responses_field() -> None:
    import asyncio
    import types

    from smg.api.responses.request import parse_request
    from smg.api.responses.run import Run

    state = types.SimpleNamespace(registry=types.SimpleNamespace(all=lambda: []))
    run = Run(state, {}, None, parse_request({"input": "hi"}))

    async def opener(messages):
        raise BadRequest("'max_tokens' is too big", param="max_tokens")

    with pytest.raises(BadRequest) as info:
        asyncio.run(run._chat(opener))
    assert info.value.param == "max_output_tokens"
