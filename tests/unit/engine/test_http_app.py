"""The worker's HTTP app driven in-process: shapes, errors, streaming, faults, aborts."""

from __future__ import annotations

import asyncio

import pytest
from _http_harness import call

from smg.engine.config import WorkerConfig
from smg.engine.core import Engine
from smg.engine.http import create_app

CHAT = "/v1/chat/completions"
MSG = [{"role": "user", "content": "Hello there"}]


@pytest.fixture(scope="module")
def tok(tokenizer):
    return tokenizer  # the session's DeepSeek tokenizer (tests/unit/engine/conftest.py)


class RecordingEngine(Engine):
    """The real engine, remembering every GenerateInput it was given."""

    def __init__(self, *a, **kw) -> None:
        super().__init__(*a, **kw)
        self.inputs = []

    def generate(self, inp):
        self.inputs.append(inp)
        return super().generate(inp)


@pytest.fixture
def make(tok):
    def _make(**kw):
        engine = RecordingEngine(WorkerConfig(port=0, transport="http", **kw), tok)
        return engine, create_app(engine)

    return _make


@pytest.fixture
def app(make):
    return make()[1]


def cycle_ids(tok, k: int) -> list[int]:
    from smg.engine.config import DEFAULT_CYCLE_TEXT

    ids = tok.encode(DEFAULT_CYCLE_TEXT)
    return (ids * (k // len(ids) + 1))[:k]


# -- errors -------------------------------------------------------------------------


def assert_error(reply, status: int, param: str | None = None) -> dict:
    assert reply.status == status
    err = reply.json()["error"]
    assert err["code"] == status and isinstance(err["message"], str) and err["message"]
    assert isinstance(err["type"], str)
    if param is not None:
        assert err["param"] == param
    assert b"Traceback" not in reply.body
    return err


@pytest.mark.parametrize("body", [b"{not json", b"", b"[1, 2]", b'"text"'])
async def test_bad_json_is_400(app, body):
    err = assert_error(await call(app, "POST", CHAT, body), 400)
    assert err["type"] == "invalid_request_error"


@pytest.mark.parametrize(
    "extra, param",
    [
        ({"max_tokens": "ten"}, "max_tokens"),
        ({"max_tokens": True}, "max_tokens"),
        ({"max_completion_tokens": 0}, "max_completion_tokens"),
        ({"n": 0}, "n"),
        ({"stop": 5}, "stop"),
        ({"stop": ["ok", 3]}, "stop"),
        ({"temperature": "hot"}, "temperature"),
        ({"stream": "yes"}, "stream"),
        ({"stop_token_ids": [-1]}, "stop_token_ids"),
        ({"messages": []}, "messages"),
        ({"messages": [{"content": "no role"}]}, "messages"),
        ({"bootstrap_room": "r"}, "bootstrap_room"),
    ],
)
async def test_wrong_types_are_400_naming_the_field(app, extra, param):
    body = {"messages": MSG, **extra}
    assert_error(await call(app, "POST", CHAT, body), 400, param)


async def test_unknown_model_is_404(app):
    err = assert_error(await call(app, "POST", CHAT, {"model": "gpt-9", "messages": MSG}), 404)
    assert err["type"] == "model_not_found" and "gpt-9" in err["message"]


async def test_unknown_route_and_wrong_method(app):
    assert_error(await call(app, "GET", "/v2/nothing"), 404)
    assert_error(await call(app, "GET", CHAT), 405)


async def test_prompt_over_context_length_is_400(make):
    _, app = make(context_length=64)
    err = assert_error(await call(app, "POST", "/generate", {"input_ids": list(range(100, 200))}), 400)
    assert "context length" in err["message"]


async def test_generate_needs_exactly_one_input(app):
    assert_error(await call(app, "POST", "/generate", {"sampling_params": {}}), 400)
    assert_error(await call(app, "POST", "/generate", {"text": "a", "input_ids": [1]}), 400)
    assert_error(await call(app, "POST", "/generate", {"input_ids": [1, "x"]}), 400, "input_ids")


# -- OpenAI shapes --------------------------------------------------------------------


async def test_chat_text_and_usage(app, tok):
    r = await call(app, "POST", CHAT, {"messages": MSG, "max_tokens": 12, "n": 3})
    assert r.status == 200
    out = r.json()
    assert out["object"] == "chat.completion" and out["id"].startswith("chatcmpl-")
    assert [c["index"] for c in out["choices"]] == [0, 1, 2]
    expected = tok.decode(cycle_ids(tok, 12))
    for c in out["choices"]:
        assert c["message"] == {"role": "assistant", "content": expected}
        assert c["finish_reason"] == "length"
    prompt_len = len(tok.encode(tok.apply_chat_template(MSG), add_special_tokens=False))
    u = out["usage"]
    assert u["prompt_tokens"] == prompt_len  # counted once, not per choice
    assert u["completion_tokens"] == 36 and u["total_tokens"] == prompt_len + 36
    assert u["prompt_tokens_details"] == {"cached_tokens": 0}


async def test_cached_tokens_grow_on_a_repeated_prompt(make):
    _, app = make(kv_block_size=4)
    long = [{"role": "user", "content": "a long prompt that fills several blocks " * 4}]
    first = (await call(app, "POST", CHAT, {"messages": long, "max_tokens": 2})).json()
    second = (await call(app, "POST", CHAT, {"messages": long, "max_tokens": 2})).json()
    assert first["usage"]["prompt_tokens_details"]["cached_tokens"] == 0
    assert second["usage"]["prompt_tokens_details"]["cached_tokens"] >= first["usage"]["prompt_tokens"] - 4


async def test_chat_stop_string_and_stop_token(app, tok):
    r = (await call(app, "POST", CHAT, {"messages": MSG, "max_tokens": 30, "stop": ["fox", "dog"]})).json()
    c = r["choices"][0]
    assert c["message"]["content"] == "The quick brown "
    assert c["finish_reason"] == "stop" and c["matched_stop"] == "fox"
    assert r["usage"]["completion_tokens"] == len(tok.encode("The quick brown fox"))
    keep = {"messages": MSG, "max_tokens": 30, "stop": "fox", "include_stop_str_in_output": True}
    assert (await call(app, "POST", CHAT, keep)).json()["choices"][0]["message"]["content"] == "The quick brown fox"
    brown = tok.encode(" brown")[0]
    r = (await call(app, "POST", CHAT, {"messages": MSG, "max_tokens": 30, "stop_token_ids": [brown]})).json()
    c = r["choices"][0]
    assert c["finish_reason"] == "stop" and c["matched_stop"] == brown
    assert r["usage"]["completion_tokens"] == 3


async def test_chat_stream_framing_and_text(app, tok):
    body = {"messages": MSG, "max_tokens": 40, "n": 2, "stream": True, "stream_options": {"include_usage": True}}
    r = await call(app, "POST", CHAT, body)
    assert r.status == 200 and r.headers[b"content-type"] == b"text/event-stream"
    events = r.events()
    assert events[-1] == "[DONE]"
    usage = events[-2]
    assert usage["choices"] == [] and usage["usage"]["completion_tokens"] == 80
    chunks = events[:-2]
    assert all(e["object"] == "chat.completion.chunk" and len(e["choices"]) == 1 for e in chunks)
    assert len({e["id"] for e in events[:-1]}) == 1
    for i in (0, 1):
        mine = [e["choices"][0] for e in chunks if e["choices"][0]["index"] == i]
        assert mine[0]["delta"] == {"role": "assistant", "content": ""}
        text = "".join(c["delta"].get("content", "") for c in mine)
        assert text == tok.decode(cycle_ids(tok, 40))  # multi-byte text streamed intact
        assert mine[-1]["finish_reason"] == "length"
        assert all(c["finish_reason"] is None for c in mine[:-1])


async def test_stream_with_stop_never_shows_the_stop(app):
    body = {"messages": MSG, "max_tokens": 40, "stream": True, "stop": ["lazy"]}
    events = (await call(app, "POST", CHAT, body)).events()
    text = "".join(e["choices"][0]["delta"].get("content", "") for e in events[:-1])
    assert text == "The quick brown fox jumps over the "
    assert events[-2]["choices"][0]["finish_reason"] == "stop"
    assert events[-2]["choices"][0]["matched_stop"] == "lazy"


async def test_completions_batch_and_echo(app, tok):
    body = {"prompt": ["one", "two three"], "n": 2, "max_tokens": 3, "echo": True}
    out = (await call(app, "POST", "/v1/completions", body)).json()
    assert out["object"] == "text_completion"
    texts = [c["text"] for c in out["choices"]]
    gen = tok.decode(cycle_ids(tok, 3))
    assert texts == ["one" + gen, "one" + gen, "two three" + gen, "two three" + gen]
    prompt = len(tok.encode("one", add_special_tokens=True)) + len(tok.encode("two three", add_special_tokens=True))
    assert out["usage"]["prompt_tokens"] == prompt and out["usage"]["completion_tokens"] == 12


async def test_completions_token_prompt_stream(app, tok):
    body = {"prompt": [tok.encode("Once upon a time")], "max_tokens": 5, "stream": True}
    events = (await call(app, "POST", "/v1/completions", body)).events()
    text = "".join(e["choices"][0]["text"] for e in events[:-1])
    assert text == tok.decode(cycle_ids(tok, 5))
    assert events[-2]["choices"][0]["finish_reason"] == "length"


async def test_logprobs_minimal(app):
    r = (await call(app, "POST", CHAT, {"messages": MSG, "max_tokens": 4, "logprobs": True, "top_logprobs": 2})).json()
    content = r["choices"][0]["logprobs"]["content"]
    assert len(content) == 4
    assert all(isinstance(x["logprob"], float) and x["logprob"] <= 0 and len(x["top_logprobs"]) == 2 for x in content)
    assert "".join(x["token"] for x in content) == r["choices"][0]["message"]["content"]
    r = (await call(app, "POST", "/v1/completions", {"prompt": "x", "max_tokens": 3, "logprobs": 1})).json()
    lp = r["choices"][0]["logprobs"]
    assert len(lp["tokens"]) == len(lp["token_logprobs"]) == len(lp["text_offset"]) == 3


# -- /generate --------------------------------------------------------------------------


async def test_generate_shapes(app, tok):
    r = (await call(app, "POST", "/generate", {"input_ids": [5, 6, 7], "sampling_params": {"max_new_tokens": 4}})).json()
    assert r["output_ids"] == cycle_ids(tok, 4)
    assert r["text"] == tok.decode(r["output_ids"])
    meta = r["meta_info"]
    assert meta["finish_reason"] == {"type": "length", "length": 4}
    assert meta["prompt_tokens"] == 3 and meta["completion_tokens"] == 4 and meta["cached_tokens"] == 0
    batch = (await call(app, "POST", "/generate", {"text": ["a", "b"], "sampling_params": {"max_new_tokens": 2, "n": 2}})).json()
    assert isinstance(batch, list) and len(batch) == 4
    stop = (await call(app, "POST", "/generate", {"text": "a", "sampling_params": {"max_new_tokens": 30, "stop": "fox"}})).json()
    assert stop["meta_info"]["finish_reason"] == {"type": "stop", "matched": "fox"}
    assert stop["text"] == "The quick brown "


async def test_generate_stream_is_cumulative(app, tok):
    body = {"text": "a", "rid": "gen-1", "stream": True, "sampling_params": {"max_new_tokens": 6}}
    events = (await call(app, "POST", "/generate", body)).events()
    assert events[-1] == "[DONE]"
    objs = events[:-1]
    for a, b in zip(objs, objs[1:]):
        assert b["text"].startswith(a["text"]) and b["output_ids"][: len(a["output_ids"])] == a["output_ids"]
    assert objs[-1]["text"] == tok.decode(cycle_ids(tok, 6))
    assert objs[-1]["meta_info"]["finish_reason"]["type"] == "length"
    assert objs[-1]["meta_info"]["id"] == "gen-1"
    assert all(o["meta_info"]["finish_reason"] is None for o in objs[:-1])


# -- PD fields ---------------------------------------------------------------------------


async def test_bootstrap_fields_reach_the_engine(make):
    engine, app = make()
    body = {"text": "x", "sampling_params": {"max_new_tokens": 1}, "bootstrap_host": "10.0.0.1", "bootstrap_port": 8998, "bootstrap_room": 7}
    await call(app, "POST", "/generate", body)
    inp = engine.inputs[-1]
    assert (inp.bootstrap_host, inp.bootstrap_port, inp.bootstrap_room) == ("10.0.0.1", 8998, 7)
    batch = {"prompt": ["a", "b"], "max_tokens": 1, "bootstrap_host": ["h1", "h2"], "bootstrap_port": [1, 2], "bootstrap_room": [11, 12]}
    engine.inputs.clear()
    assert (await call(app, "POST", "/v1/completions", batch)).status == 200
    assert sorted((i.bootstrap_host, i.bootstrap_port, i.bootstrap_room) for i in engine.inputs) == [("h1", 1, 11), ("h2", 2, 12)]
    chat = {"messages": MSG, "n": 2, "max_tokens": 1, "bootstrap_host": "h", "bootstrap_port": 1, "bootstrap_room": [21, 22]}
    engine.inputs.clear()
    out = (await call(app, "POST", CHAT, chat)).json()
    assert [c["index"] for c in out["choices"]] == [0, 1]
    assert sorted(i.bootstrap_room for i in engine.inputs) == [21, 22]
    assert all(i.params.n == 1 for i in engine.inputs)
    bad = {**batch, "bootstrap_room": [1, 2, 3]}
    assert_error(await call(app, "POST", "/v1/completions", bad), 400)


# -- faults, health, aborts ---------------------------------------------------------------


async def test_fault_error_before_first_token(app):
    for stream in (True, False):
        r = await call(app, "POST", CHAT, {"messages": MSG, "stream": stream}, {"x-smg-fault": "error_before_first"})
        assert_error(r, 500)


async def test_fault_error_mid_stream(app):
    body = {"messages": MSG, "max_tokens": 20, "stream": True}
    r = await call(app, "POST", CHAT, body, {"x-smg-fault": "error_mid_stream:3"})
    assert r.status == 200 and r.complete
    events = r.events()
    assert events[-1] == "[DONE]" and events[-2]["error"]["code"] == 500
    text = "".join(e["choices"][0]["delta"].get("content", "") for e in events[:-2])
    assert text == "The quick brown"


async def test_fault_disconnect_drops_the_response(app):
    body = {"messages": MSG, "max_tokens": 20, "stream": True}
    r = await call(app, "POST", CHAT, body, {"x-smg-fault": "disconnect_mid_stream:2"})
    assert r.status == 200 and not r.complete and b"[DONE]" not in r.body
    r = await call(app, "POST", CHAT, {**body, "stream": False}, {"x-smg-fault": "disconnect_mid_stream:2"})
    assert not r.complete


async def test_unhealthy_worker_and_header(make):
    _, app = make(fault="unhealthy")
    assert_error(await call(app, "GET", "/health"), 503)
    assert_error(await call(app, "GET", "/health_generate"), 503)
    _, healthy = make()
    assert (await call(healthy, "GET", "/health")).status == 200
    assert (await call(healthy, "GET", "/health_generate")).status == 200
    assert_error(await call(healthy, "GET", "/health", headers={"x-smg-fault": "unhealthy"}), 503)


async def test_client_disconnect_aborts_the_engine_request(make):
    engine, app = make()
    gone = asyncio.Event()
    body = {"messages": MSG, "stream": True, "rid": "bye-1"}
    task = asyncio.ensure_future(call(app, "POST", CHAT, body, {"x-smg-fault": "stall:2"}, disconnect=gone))
    await _until(lambda: engine.loads()["num_running_reqs"] == 1)
    gone.set()
    await asyncio.wait_for(task, 5)
    assert "bye-1" in engine.aborted_rids


async def test_abort_request_route(make):
    engine, app = make()
    body = {"text": "x", "rid": "stuck", "stream": False}
    task = asyncio.ensure_future(call(app, "POST", "/generate", body, {"x-smg-fault": "stall:1"}))
    await _until(lambda: engine.loads()["num_running_reqs"] == 1)
    r = await call(app, "POST", "/abort_request", {"rid": "stuck"})
    assert r.json() == {"aborted": ["stuck"]}
    out = (await asyncio.wait_for(task, 5)).json()
    assert out["meta_info"]["finish_reason"]["type"] == "abort"
    seen = (await call(app, "GET", "/smg/aborted_rids")).json()["aborted_rids"]
    assert "stuck" in seen


async def test_info_loads_metrics_flush(app):
    models = (await call(app, "GET", "/v1/models")).json()
    assert models["data"][0]["id"] == "smg-reference"
    assert (await call(app, "GET", "/get_model_info")).json()["is_generation"] is True
    assert "server_args" in (await call(app, "GET", "/get_server_info")).json()
    loads = (await call(app, "GET", "/v1/loads")).json()
    assert loads["dp_rank_count"] == 1 and loads["loads"][0]["num_running_reqs"] == 0
    assert loads["aggregate"]["total_reqs"] == 0
    metrics = (await call(app, "GET", "/metrics")).body.decode()
    for name in ("sglang:num_running_reqs", "sglang:num_waiting_reqs", "sglang:token_usage"):
        assert f'{name}{{model_name="smg-reference"}} 0.0' in metrics
    r = await call(app, "POST", "/flush_cache")
    assert r.status == 200


async def _until(pred, timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not pred():
        assert loop.time() < end, "condition not reached"
        await asyncio.sleep(0.002)


async def test_stream_writes_once_per_engine_step(make, tok):
    """Events of one loop turn share a write; a step that waits gets its own write."""
    body = {"messages": MSG, "max_tokens": 24, "stream": True, "ignore_eos": True}
    _, fast = make()
    r = await call(fast, "POST", CHAT, body)
    writes = [m for m in r.messages if m["type"] == "http.response.body"]
    assert len(writes) <= 3  # the first event at once, the rest together
    _, slow = make(decode_us_per_token=200.0)
    r2 = await call(slow, "POST", CHAT, body)
    writes2 = [m for m in r2.messages if m["type"] == "http.response.body"]
    assert len(writes2) >= 24  # every decoded token is sent when it is made

    def text(reply) -> str:
        return "".join(e["choices"][0]["delta"].get("content", "") for e in reply.events()[:-1])

    assert text(r) == text(r2) == tok.decode(cycle_ids(tok, 24))


async def test_repeated_chat_prompt_is_cached_per_message_list(app, tok):
    a = (await call(app, "POST", CHAT, {"messages": MSG, "max_tokens": 2})).json()
    b = (await call(app, "POST", CHAT, {"messages": MSG, "max_tokens": 2})).json()
    other = [{"role": "user", "content": "Hello there, a longer question this time"}]
    c = (await call(app, "POST", CHAT, {"messages": other, "max_tokens": 2})).json()
    d = (await call(app, "POST", CHAT, {"messages": MSG, "max_tokens": 2, "add_generation_prompt": False})).json()
    assert a["usage"]["prompt_tokens"] == b["usage"]["prompt_tokens"]
    assert c["usage"]["prompt_tokens"] == len(tok.encode(tok.apply_chat_template(other), add_special_tokens=False))
    no_gen = tok.apply_chat_template(MSG, add_generation_prompt=False)
    assert d["usage"]["prompt_tokens"] == len(tok.encode(no_gen, add_special_tokens=False))


async def test_worker_wide_faults_need_no_header(make):
    _, failing = make(fault="error_before_first")
    assert_error(await call(failing, "POST", CHAT, {"messages": MSG, "stream": True}), 500)
    _, midway = make(fault="error_mid_stream", fault_after_tokens=2)
    events = (await call(midway, "POST", CHAT, {"messages": MSG, "max_tokens": 9, "stream": True})).events()
    assert events[-2]["error"]["message"] == "injected fault: error_mid_stream"


async def test_unexpected_errors_are_json_500s(make, monkeypatch):
    engine, app = make()
    monkeypatch.setattr(engine, "loads", lambda: 1 / 0)
    err = assert_error(await call(app, "GET", "/v1/loads"), 500)
    assert "ZeroDivisionError" in err["message"]
    monkeypatch.setattr(engine.program, "base", lambda ids: 1 / 0)
    for stream in (True, False):
        err = assert_error(await call(app, "POST", CHAT, {"messages": MSG, "stream": stream}), 500)
        assert "ZeroDivisionError" in err["message"]


async def test_batch_streams_finish_each_choice_once(app, tok):
    body = {"prompt": ["a", "b"], "n": 2, "stream": True, "stop": ["fox"], "max_tokens": 50}
    events = (await call(app, "POST", "/v1/completions", body)).events()[:-1]
    for i in range(4):
        mine = [e["choices"][0] for e in events if e["choices"][0]["index"] == i]
        assert [c["finish_reason"] for c in mine if c["finish_reason"]] == ["stop"]
        assert "".join(c["text"] for c in mine) == "The quick brown "
    gen = {"text": ["a", "b", "c"], "stream": True, "sampling_params": {"max_new_tokens": 5}}
    objs = (await call(app, "POST", "/generate", gen)).events()[:-1]
    for i in range(3):
        mine = [o for o in objs if o["index"] == i]
        assert [o["meta_info"]["finish_reason"]["type"] for o in mine if o["meta_info"]["finish_reason"]] == ["length"]
        assert mine[-1]["text"] == tok.decode(cycle_ids(tok, 5))
