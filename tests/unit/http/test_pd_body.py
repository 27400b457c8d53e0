"""PD leg bodies over HTTP: batch detection, bootstrap injection, vLLM legs, merges."""

from __future__ import annotations

import orjson
import pytest

from smg.errors import BadRequest
from smg.http.pd_body import (
    batch_size,
    kv_params_of,
    merge_input_logprobs,
    sglang_body,
    vllm_decode_body,
    vllm_prefill_body,
)

CHAT = "/v1/chat/completions"
COMP = "/v1/completions"
GEN = "/generate"


@pytest.mark.parametrize(
    ("path", "data", "size"),
    [
        (CHAT, {"messages": [], "n": 3}, 3),
        (CHAT, {"messages": [], "n": 1}, None),
        (CHAT, {"messages": []}, None),
        (COMP, {"prompt": "one"}, None),
        (COMP, {"prompt": [1, 2, 3]}, None),  # token ids: one prompt
        (COMP, {"prompt": ["a", "b"]}, 2),
        (COMP, {"prompt": [[1, 2], [3]]}, 2),
        (COMP, {"prompt": "one", "n": 4}, None),  # n choices of one prompt share a room
        (GEN, {"text": "one"}, None),
        (GEN, {"text": ["a", "b", "c"]}, 3),
        (GEN, {"input_ids": [1, 2]}, None),
        (GEN, {"input_ids": [[1], [2]]}, 2),
    ],
)
def test_batch_size(path: str, data: dict, size: int | None) -> None:
    assert batch_size(path, data) == size


def test_sglang_body_scalar_and_batch() -> None:
    one = orjson.loads(sglang_body({"prompt": "x", "stream": True}, "10.0.0.1", 8998, 42))
    assert one == {"prompt": "x", "stream": True, "bootstrap_host": "10.0.0.1", "bootstrap_port": 8998,
                   "bootstrap_room": 42}
    batch = orjson.loads(sglang_body({"prompt": ["a", "b"]}, "h", None, [7, 9]))
    assert batch["bootstrap_host"] == ["h", "h"] and batch["bootstrap_port"] == [None, None]
    assert batch["bootstrap_room"] == [7, 9]


def test_vllm_prefill_body_asks_for_one_token_and_announces_remote_decode() -> None:
    data = {"messages": [{"role": "user", "content": "x"}], "stream": True, "stream_options": {"include_usage": True},
            "max_completion_tokens": 50, "min_tokens": 5, "n": 2}
    out = orjson.loads(vllm_prefill_body(CHAT, data))
    assert out["stream"] is False and "stream_options" not in out and "min_tokens" not in out
    assert out["max_tokens"] == 1 and out["max_completion_tokens"] == 1 and out["n"] == 1
    assert out["kv_transfer_params"]["do_remote_decode"] is True
    assert data["stream"] is True and data["n"] == 2  # the client's request is left alone
    gen = orjson.loads(vllm_prefill_body(GEN, {"text": "x", "sampling_params": {"max_new_tokens": 9, "min_new_tokens": 3}}))
    assert gen["sampling_params"] == {"max_new_tokens": 1, "n": 1}
    with pytest.raises(BadRequest, match="one prompt per request"):
        vllm_prefill_body(COMP, {"prompt": ["a", "b"]})


def test_vllm_decode_body_carries_the_prefill_params() -> None:
    kv = {"do_remote_prefill": True, "remote_request_id": "r1"}
    assert orjson.loads(vllm_decode_body({"prompt": "x"}, kv)) == {"prompt": "x", "kv_transfer_params": kv}
    assert orjson.loads(vllm_decode_body({"prompt": "x", "kv_transfer_params": {"a": 1}}, None)) == {"prompt": "x"}


def test_kv_params_of_each_answer_shape() -> None:
    kv = {"remote_request_id": "r"}
    assert kv_params_of(CHAT, orjson.dumps({"choices": [], "kv_transfer_params": kv})) == kv
    assert kv_params_of(GEN, orjson.dumps({"text": "", "meta_info": {"kv_transfer_params": kv}})) == kv
    assert kv_params_of(GEN, orjson.dumps([{"meta_info": {"kv_transfer_params": kv}}])) == kv
    assert kv_params_of(CHAT, orjson.dumps({"choices": []})) is None
    assert kv_params_of(CHAT, b"not json") is None


def test_merge_input_logprobs() -> None:
    lps = [[None, 1, None], [-0.5, 2, None]]
    decode = orjson.dumps({"text": "hi", "meta_info": {"output_token_logprobs": [[-0.1, 5, None]]}})
    prefill = orjson.dumps({"text": "", "meta_info": {"input_token_logprobs": lps}})
    merged = orjson.loads(merge_input_logprobs(decode, prefill))
    assert merged["meta_info"] == {"output_token_logprobs": [[-0.1, 5, None]], "input_token_logprobs": lps}
    batch = merge_input_logprobs(orjson.dumps([{"meta_info": {}}, {"meta_info": {}}]),
                                 orjson.dumps([{"meta_info": {"input_token_logprobs": [1]}},
                                               {"meta_info": {"input_token_logprobs": [2]}}]))
    assert [b["meta_info"]["input_token_logprobs"] for b in orjson.loads(batch)] == [[1], [2]]
    assert merge_input_logprobs(decode, b"{}") == decode  # nothing to merge: the bytes as they were
