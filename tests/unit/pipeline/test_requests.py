"""parse_chat / parse_completion: defaults, every field read, and a BadRequest naming the
parameter for each kind of bad value."""

from __future__ import annotations

from typing import Any

import pytest

from smg.errors import BadRequest
from smg.pipeline.requests import GenerationRequest, parse_chat, parse_completion

MSGS = [{"role": "user", "content": "hi"}]


def _chat(**body: Any) -> GenerationRequest:
    return parse_chat({"messages": [dict(m) for m in MSGS], **body})


def test_defaults_when_only_messages_are_given() -> None:
    req = _chat()
    assert req == GenerationRequest(model=None, stream=False, messages=MSGS)
    assert req.stop == [] and req.stop_token_ids == [] and req.template_kwargs == {}
    assert req.stop is not _chat().stop  # fresh lists per request


def test_null_values_mean_the_default() -> None:
    nulls = dict.fromkeys(["n", "max_tokens", "stop", "stop_token_ids", "temperature", "top_k", "seed", "stream_options",
                           "tools", "chat_template_kwargs", "logprobs", "ignore_eos", "skip_special_tokens"])
    assert _chat(**nulls) == _chat()


def test_every_field_is_read() -> None:
    req = _chat(
        model="m", stream=True, n=2, max_completion_tokens=7, max_tokens=9, min_tokens=1, stop="x",
        stop_token_ids=[5], ignore_eos=True, include_stop_str_in_output=True, skip_special_tokens=False,
        temperature=0, top_p=0.5, min_p=0.1, frequency_penalty=1, presence_penalty=-1, repetition_penalty=1.1,
        top_k=3, seed=4, user="u", rid="r", stream_options={"include_usage": True},
        tools=[{"type": "function", "function": {"name": "f"}}], tool_choice="required",
        response_format={"type": "json_object"}, logprobs=True, top_logprobs=2,
        chat_template_kwargs={"enable_thinking": False}, separate_reasoning=False, continue_final_message=True,
    )
    assert (req.model, req.stream, req.n, req.max_tokens, req.min_tokens) == ("m", True, 2, 7, 1)
    assert (req.stop, req.stop_token_ids, req.ignore_eos, req.no_stop_trim, req.skip_special_tokens) == (
        ["x"], [5], True, True, False)
    assert (req.temperature, req.top_p, req.min_p, req.frequency_penalty, req.presence_penalty) == (0.0, 0.5, 0.1, 1.0, -1.0)
    assert type(req.temperature) is float and req.repetition_penalty == 1.1
    assert (req.top_k, req.seed, req.user, req.rid, req.include_usage) == (3, 4, "u", "r", True)
    assert req.tools == [{"type": "function", "function": {"name": "f"}}] and req.tool_choice == "required"
    assert (req.response_format, req.logprobs, req.top_logprobs) == ({"type": "json_object"}, True, 2)
    assert (req.template_kwargs, req.separate_reasoning, req.continue_final_message) == ({"enable_thinking": False}, False, True)
    assert _chat(max_tokens=9).max_tokens == 9
    assert _chat(no_stop_trim=True).no_stop_trim and not _chat(no_stop_trim=False).no_stop_trim
    assert not _chat(stream_options={"include_usage": True}).include_usage  # only when streamed


def test_stop_strings() -> None:
    assert _chat(stop=["a", "", "b"]).stop == ["a", "b"]
    assert _chat(stop="").stop == []


@pytest.mark.parametrize(
    ("body", "param", "message"),
    [
        ({"n": 0}, "n", "between 1 and 128"),
        ({"n": "2"}, "n", "'n' must be an integer"),
        ({"n": True}, "n", "not a boolean"),
        ({"max_tokens": -1}, "max_tokens", "between 0 and 4294967295"),
        ({"max_completion_tokens": 1.5}, "max_completion_tokens", "an integer"),
        ({"stop": [1]}, "stop", "a string or an array of strings"),
        ({"stop": ["x"] * 17}, "stop", "at most 16 stop strings"),
        ({"stop_token_ids": [-1]}, "stop_token_ids", "array of token ids"),
        ({"stop_token_ids": 3}, "stop_token_ids", "an array"),
        ({"ignore_eos": 1}, "ignore_eos", "a boolean"),
        ({"include_stop_str_in_output": "yes"}, "include_stop_str_in_output", "a boolean"),
        ({"temperature": 3}, "temperature", "between 0 and 2"),
        ({"top_p": "1"}, "top_p", "an integer or a number"),
        ({"top_p": False}, "top_p", "not a boolean"),
        ({"seed": 1.0}, "seed", "an integer"),
        ({"user": 5}, "user", "a string"),
        ({"stream_options": []}, "stream_options", "an object"),
        ({"tools": {}}, "tools", "an array"),
        ({"tools": [{"function": {}}]}, "tools", "each tool"),
        ({"response_format": "json"}, "response_format", "an object"),
        ({"top_logprobs": "2"}, "top_logprobs", "an integer"),
        ({"chat_template_kwargs": []}, "chat_template_kwargs", "an object"),
        ({"continue_final_message": "no"}, "continue_final_message", "a boolean"),
        ({"messages": []}, "messages", "non-empty array"),
        ({"messages": [{"content": "x"}]}, "messages", "with a 'role'"),
        ({"messages": [{"role": "user", "content": 5}]}, "messages", "a string or an array"),
        # the first bad field in reading order is the one reported
        ({"n": 0, "temperature": 9}, "n", "between 1 and 128"),
        ({"seed": "x", "temperature": 9}, "temperature", "between 0 and 2"),
    ],
)
def test_bad_values_name_the_parameter(body: dict[str, Any], param: str, message: str) -> None:
    with pytest.raises(BadRequest, match=message) as info:
        parse_chat({"messages": [dict(m) for m in MSGS], **body})
    assert info.value.param == param


def test_not_an_object() -> None:
    with pytest.raises(BadRequest, match="JSON object"):
        parse_chat([1])  # type: ignore[arg-type]


def test_content_parts_become_text() -> None:
    req = parse_chat({"messages": [{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "image_url"},
                                                                   {"type": "text", "text": "b"}]}]})
    assert req.messages == [{"role": "user", "content": "ab"}]


def test_completion_prompts_and_logprobs() -> None:
    assert parse_completion({"prompt": "hi"}).prompt == "hi"
    assert parse_completion({"prompt": [[1, 2]]}).prompt == [1, 2]
    req = parse_completion({"prompt": [1, 2], "logprobs": 3, "echo": True})
    assert (req.logprobs, req.top_logprobs, req.echo) == (True, 3, True)
    for bad in ({"prompt": 5}, {"prompt": [1, -2]}, {"prompt": "x", "logprobs": True}):
        with pytest.raises(BadRequest):
            parse_completion(bad)
