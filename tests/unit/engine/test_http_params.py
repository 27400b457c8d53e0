"""Request fields to engine inputs: typed reads, sampling parameters, units, PD fields."""

from __future__ import annotations

import pytest

from smg.engine.http.errors import BadRequest
from smg.engine.http.params import get_bool, get_float, get_int, int_list, stop_strings
from smg.engine.http.sampling import (
    Bootstrap,
    EngineOptions,
    build_units,
    openai_sampling,
    request_rid,
    sglang_sampling,
)


def test_typed_reads():
    body = {"i": 3, "f": 2.0, "b": True, "fi": 4.0, "n": None}
    assert get_int(body, "i") == 3 and get_int(body, "fi") == 4
    assert get_int(body, "missing", 7) == 7 and get_int(body, "n", 8) == 8
    assert get_float(body, "i") == 3.0 and get_bool(body, "b") is True
    for bad in ({"x": True}, {"x": "1"}, {"x": 1.5}):
        with pytest.raises(BadRequest) as info:
            get_int(bad, "x")
        assert info.value.param == "x"
    with pytest.raises(BadRequest):
        get_float({"x": False}, "x")
    with pytest.raises(BadRequest):
        get_bool({"x": 1}, "x")
    with pytest.raises(BadRequest, match=">= 1"):
        get_int({"x": 0}, "x", lo=1)
    with pytest.raises(BadRequest):
        int_list([1, -2], "ids")
    assert stop_strings({"stop": "a"}) == ("a",) and stop_strings({"stop": ["a", ""]}) == ("a",)
    assert stop_strings({}) == ()


def test_openai_sampling():
    params, text = openai_sampling(
        {"max_tokens": 9, "max_completion_tokens": 5, "n": 2, "stop": ["x"], "min_tokens": 2,
         "stop_token_ids": [7], "ignore_eos": True, "include_stop_str_in_output": True}
    )
    assert params.max_new_tokens == 5  # max_completion_tokens wins, as in OpenAI
    assert (params.n, params.min_new_tokens, params.stop_token_ids, params.ignore_eos) == (2, 2, (7,), True)
    assert text.stops == ("x",) and text.include_stop
    assert openai_sampling({})[0].max_new_tokens is None  # the engine's default (context)
    with pytest.raises(BadRequest, match="min_tokens"):
        openai_sampling({"max_tokens": 2, "min_tokens": 3})


def test_sglang_sampling_defaults_and_fields():
    params, text = sglang_sampling({})
    assert params.max_new_tokens == 128 and params.n == 1 and text.stops == ()
    params, text = sglang_sampling({"sampling_params": {"max_new_tokens": 0, "stop": "END", "no_stop_trim": True, "min_new_tokens": 1}})
    assert params.max_new_tokens == 0 and params.min_new_tokens == 1
    assert text.stops == ("END",) and text.include_stop
    with pytest.raises(BadRequest):
        sglang_sampling({"sampling_params": "fast"})


def test_units_number_choices_like_vllm():
    params, _ = openai_sampling({"n": 2})
    units = build_units("r", [[1], [2], [3]], params, Bootstrap(), EngineOptions())
    assert [(u.inp.rid, u.first, u.prompt, u.inp.params.n) for u in units] == [
        ("r-0", 0, 0, 2), ("r-1", 2, 1, 2), ("r-2", 4, 2, 2),
    ]
    single = build_units("r", [[1]], params, Bootstrap(), EngineOptions())
    assert [u.inp.rid for u in single] == ["r"]


def test_bootstrap_per_prompt_or_per_choice():
    params, _ = openai_sampling({"n": 2})
    per_prompt = Bootstrap.from_body({"bootstrap_host": "h", "bootstrap_port": [1, 2], "bootstrap_room": [10, 20]})
    units = build_units("r", [[1], [2]], params, per_prompt, EngineOptions())
    assert [(u.inp.bootstrap_host, u.inp.bootstrap_port, u.inp.bootstrap_room, u.inp.params.n) for u in units] == [
        ("h", 1, 10, 2), ("h", 2, 20, 2),
    ]
    per_choice = Bootstrap.from_body({"bootstrap_host": "h", "bootstrap_port": 1, "bootstrap_room": [10, 11, 20, 21]})
    units = build_units("r", [[1], [2]], params, per_choice, EngineOptions())
    assert [(u.first, u.prompt, u.inp.bootstrap_room, u.inp.params.n) for u in units] == [
        (0, 0, 10, 1), (1, 0, 11, 1), (2, 1, 20, 1), (3, 1, 21, 1),
    ]
    with pytest.raises(BadRequest, match="differ in length"):
        Bootstrap.from_body({"bootstrap_port": [1], "bootstrap_room": [1, 2]}).batch_len()
    with pytest.raises(BadRequest, match="expected 2"):
        build_units("r", [[1], [2]], params, Bootstrap(room=[1, 2, 3]), EngineOptions())
    with pytest.raises(BadRequest):
        Bootstrap.from_body({"bootstrap_port": "8998"})


def test_request_rid_precedence():
    assert request_rid({"rid": "body"}, "header") == "body"
    assert request_rid({}, "header") == "header"
    generated = {request_rid({}, None) for _ in range(3)}
    assert len(generated) == 3 and all(len(r) == 32 for r in generated)
    with pytest.raises(BadRequest):
        request_rid({"rid": 5}, None)
