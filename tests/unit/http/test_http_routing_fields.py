"""smg.protocol: just enough parsing to route (model, routing text, token ids, stream, user)."""

from __future__ import annotations

import orjson
import pytest

from smg.errors import BadRequest
from smg.protocol import parse_body


def fields(path: str, data: dict):
    return parse_body(path, orjson.dumps(data))


def test_chat_joins_all_message_texts_including_parts():
    f = fields("/v1/chat/completions", {
        "model": "m", "stream": True, "user": "u1",
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": [{"type": "text", "text": "look"}, {"type": "image_url", "image_url": {}}]},
            {"role": "assistant", "content": None, "tool_calls": []},
        ],
    })
    assert (f.model, f.stream, f.user) == ("m", True, "u1")
    assert f.text == "be brief look "


def test_session_id_stands_in_for_user():
    assert fields("/v1/chat/completions", {"messages": [{"content": "x"}], "session_id": "s"}).user == "s"


@pytest.mark.parametrize(
    ("prompt", "text", "ids"),
    [("hello", "hello", None), (["a", "b"], "a", None), ([1, 2, 3], None, (1, 2, 3)), ([[4, 5], [6]], None, (4, 5))],
)
def test_completion_prompt_shapes(prompt, text, ids):
    f = fields("/v1/completions", {"prompt": prompt})
    assert (f.text, f.token_ids, f.stream, f.model) == (text, ids, False, None)


def test_generate_text_or_input_ids():
    assert fields("/generate", {"text": "hi", "stream": False}).text == "hi"
    assert fields("/generate", {"input_ids": [7, 8]}).token_ids == (7, 8)
    with pytest.raises(BadRequest):
        fields("/generate", {"input_ids": ["x"]})


def test_embeddings_never_stream():
    f = fields("/v1/embeddings", {"input": "abc", "stream": True, "model": "e"})
    assert (f.text, f.stream, f.model) == ("abc", False, "e")


@pytest.mark.parametrize("raw", [b"", b"nul", b"{", b'"str"', b"3"])
def test_not_a_json_object(raw):
    with pytest.raises(BadRequest) as exc:
        parse_body("/v1/chat/completions", raw)
    assert exc.value.status_code == 400


def test_mixed_prompt_list_is_refused():
    with pytest.raises(BadRequest):
        fields("/v1/completions", {"prompt": [True, {"a": 1}]})
