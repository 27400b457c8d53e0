"""PD over HTTP in front of reference workers in prefill and decode roles, both styles.

What each leg carried is read from the workers themselves (they record every engine
call and every abort): the rooms on both legs match, the decode leg of vLLM style has
the prefill's transfer id, a failed leg's partner was aborted.
"""

from __future__ import annotations

import json
import urllib.request

import openai
import pytest
from _pd_gateway import pd_gateway
from _pd_lib import CrashingWorker, PDWorker, tokenizer

from smg.engine.config import DEFAULT_CYCLE_TEXT
from tests.conftest import free_port

MODEL = "smg-reference"
MSG = [{"role": "user", "content": "Disaggregate me."}]


def _expected(n_tokens: int) -> str:
    tok = tokenizer()
    return tok.decode(tok.encode(DEFAULT_CYCLE_TEXT, add_special_tokens=False)[:n_tokens])


def _post(url: str, payload: dict) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=json.dumps(payload).encode(), method="POST",
                                 headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


@pytest.fixture(scope="module", params=["sglang", "vllm"])
def pd(request):
    style = request.param
    workers = [PDWorker(role="prefill", pd_style=style), PDWorker(role="decode", pd_style=style)]
    for w in workers:
        w.start()
    p, d = workers
    gw = pd_gateway([(p.url, p.bootstrap_port)], [d.url])  # style "auto": asks the prefill worker
    gw.style, gw.p, gw.d = style, p, d
    yield gw
    gw.server.stop()
    for w in workers:
        w.stop()


def _legs(gw, since_p: int, since_d: int):
    return gw.p.inputs[since_p:], gw.d.inputs[since_d:]


def _check_legs(gw, prefill_inputs, decode_inputs, count: int = 1) -> None:
    assert len(prefill_inputs) == count and len(decode_inputs) == count
    if gw.style == "sglang":
        rooms = {i.bootstrap_room for i in prefill_inputs}
        assert rooms == {i.bootstrap_room for i in decode_inputs} and len(rooms) == count
        for leg in (*prefill_inputs, *decode_inputs):
            assert (leg.bootstrap_host, leg.bootstrap_port) == ("127.0.0.1", gw.p.bootstrap_port)
    else:
        assert {i.rid for i in prefill_inputs} == {i.kv_transfer_params["remote_request_id"] for i in decode_inputs}
        assert all(i.params.max_new_tokens == 1 and not i.stream for i in prefill_inputs)
        assert all(i.kv_transfer_params["remote_port"] == gw.p.bootstrap_port for i in decode_inputs)


@pytest.mark.parametrize("stream", [False, True])
def test_chat_through_a_pair(pd, stream: bool) -> None:
    np, nd = len(pd.p.inputs), len(pd.d.inputs)
    if stream:
        chunks = list(pd.client.chat.completions.create(
            model=MODEL, messages=MSG, max_tokens=9, stream=True, stream_options={"include_usage": True}))
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert chunks[0].choices[0].delta.role == "assistant"
        assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
        assert chunks[-1].usage.completion_tokens == 9
    else:
        resp = pd.client.chat.completions.create(model=MODEL, messages=MSG, max_tokens=9)
        text = resp.choices[0].message.content
        assert resp.choices[0].finish_reason == "length" and resp.usage.completion_tokens == 9
    assert text == _expected(9)
    _check_legs(pd, *_legs(pd, np, nd))


@pytest.mark.parametrize("stream", [False, True])
def test_generate_and_completions(pd, stream: bool) -> None:
    np, nd = len(pd.p.inputs), len(pd.d.inputs)
    status, body = _post(pd.url + "/generate", {"text": "PD generate", "stream": stream,
                                                 "sampling_params": {"max_new_tokens": 5}})
    assert status == 200
    last = json.loads(body.split(b"data: ")[-2]) if stream else json.loads(body)
    assert last["text"] == _expected(5) and last["meta_info"]["completion_tokens"] == 5
    if not stream:  # prompt logprobs asked for: the answer is still decode's, with its logprobs
        status, body = _post(pd.url + "/generate", {"text": "PD lp", "return_logprob": True,
                                                     "sampling_params": {"max_new_tokens": 2}})
        assert status == 200 and len(json.loads(body)["meta_info"]["output_token_logprobs"]) == 2
    comp = pd.client.completions.create(model=MODEL, prompt="PD completion", max_tokens=4, stream=stream)
    text = "".join(c.choices[0].text for c in comp) if stream else comp.choices[0].text
    assert text == _expected(4)
    _check_legs(pd, *_legs(pd, np, nd), count=2 if stream else 3)


def test_batches_get_a_room_per_element(pd) -> None:
    if pd.style == "vllm":
        with pytest.raises(openai.BadRequestError, match="one prompt per request"):
            pd.client.completions.create(model=MODEL, prompt=["a", "b"], max_tokens=2)
        return
    np, nd = len(pd.p.inputs), len(pd.d.inputs)
    comp = pd.client.completions.create(model=MODEL, prompt=["first", "second", "third"], max_tokens=3)
    assert [c.text for c in sorted(comp.choices, key=lambda c: c.index)] == [_expected(3)] * 3
    _check_legs(pd, *_legs(pd, np, nd), count=3)
    np, nd = len(pd.p.inputs), len(pd.d.inputs)
    chat = pd.client.chat.completions.create(model=MODEL, messages=MSG, max_tokens=3, n=2)
    assert [c.message.content for c in chat.choices] == [_expected(3)] * 2
    _check_legs(pd, *_legs(pd, np, nd), count=2)


def test_metrics_per_leg(pd) -> None:
    pd.client.chat.completions.create(model=MODEL, messages=MSG, max_tokens=2)
    reg = pd.metrics.registry
    for leg in ("prefill", "decode"):
        assert reg.get_sample_value("smg_pd_leg_ttft_seconds_count", {"leg": leg}) >= 1
        assert reg.get_sample_value("smg_pd_leg_queue_seconds_count", {"leg": leg}) >= 1
    assert reg.get_sample_value("smg_pd_requests_total", {"transport": "http", "style": pd.style}) >= 1


def test_sglang_unmatched_room_is_the_workers_error() -> None:
    p, d = PDWorker(role="prefill"), PDWorker(role="decode", pd_timeout_s=0.3)
    p.start(), d.start()
    wrong_port = free_port()  # the gateway believes the bootstrap server is elsewhere
    gw = pd_gateway([(p.url, wrong_port)], [d.url], retries=1)
    try:
        with pytest.raises(openai.APIStatusError) as info:
            gw.client.chat.completions.create(model=MODEL, messages=MSG, max_tokens=2)
        assert info.value.status_code == 504
        room = d.inputs[-1].bootstrap_room
        assert f"no matching prefill for bootstrap room {room} at 127.0.0.1:{wrong_port}" in info.value.message
        assert gw.metrics.registry.get_sample_value("smg_pd_bootstrap_failures_total") == 1
    finally:
        gw.server.stop(), p.stop(), d.stop()


def test_vllm_prefill_without_kv_params_is_the_decode_workers_error() -> None:
    not_prefill = PDWorker(role="both", pd_style="vllm")  # answers, but with no kv_transfer_params
    d = PDWorker(role="decode", pd_style="vllm")
    not_prefill.start(), d.start()
    gw = pd_gateway([(not_prefill.url, None)], [d.url], style="vllm")
    try:
        with pytest.raises(openai.BadRequestError, match="decode worker needs kv_transfer_params"):
            gw.client.chat.completions.create(model=MODEL, messages=MSG, max_tokens=2, stream=True)
        assert len(d.inputs) == 1 and len(not_prefill.inputs) == 1  # a worker's 400 is not retried
    finally:
        gw.server.stop(), not_prefill.stop(), d.stop()


def _idle(*workers: PDWorker) -> bool:
    return all(w.wait_for(lambda w: w.active == 0, timeout=5.0) for w in workers)


def test_prefill_dying_before_its_token_retries_as_a_pair_and_aborts_the_decode_leg() -> None:
    decodes = [PDWorker(role="decode", pd_timeout_s=1.0) for _ in range(2)]
    good = PDWorker(role="prefill")
    # the dying prefill worker drops its request once the decode leg of its room reached a worker
    dying = CrashingWorker(until=lambda body: any(
        i.bootstrap_room == body["bootstrap_room"] for d in decodes for i in d.inputs))
    workers = [good, *decodes]
    for w in (*workers, dying):
        w.start()
    gw = pd_gateway([(dying.url, 1), (good.url, good.bootstrap_port)], [d.url for d in decodes], style="sglang")
    try:
        for stream in (False, True):  # round robin: one of the two pairs has the dying prefill worker
            resp = gw.client.chat.completions.create(model=MODEL, messages=MSG, max_tokens=3, stream=stream)
            text = "".join(c.choices[0].delta.content or "" for c in resp) if stream else resp.choices[0].message.content
            assert text == _expected(3)
        assert dying.requests >= 1
        good_rooms = {i.bootstrap_room for i in good.inputs}
        orphans = [(d, i.rid) for d in decodes for i in d.inputs if i.bootstrap_room not in good_rooms]
        assert len(orphans) == dying.requests  # the decode legs sent along with the dying prefill...
        for d, rid in orphans:  # ...were aborted, not left waiting for a room that never comes
            assert d.wait_for(lambda w, rid=rid: rid in w.aborted)
        assert gw.metrics.registry.get_sample_value("smg_pd_pair_retries_total") >= 1
        assert gw.metrics.registry.get_sample_value(
            "smg_pd_leg_failures_total", {"leg": "prefill", "kind": "connect"}) >= 1
        assert _idle(*workers)
        assert all(w.load == 0 for w in gw.registry.all())
    finally:
        gw.server.stop()
        dying.stop()
        for w in workers:
            w.stop()


@pytest.mark.parametrize("style", ["sglang", "vllm"])
def test_failed_decode_leg_retries_as_a_pair(style: str) -> None:
    prefill = PDWorker(role="prefill", pd_style=style)
    bad = PDWorker(role="decode", pd_style=style, fault="error_before_first")
    good = PDWorker(role="decode", pd_style=style)
    workers = [prefill, bad, good]
    for w in workers:
        w.start()
    gw = pd_gateway([(prefill.url, prefill.bootstrap_port)], [bad.url, good.url])
    try:
        for stream in (True, False):
            resp = gw.client.completions.create(model=MODEL, prompt="retry me", max_tokens=3, stream=stream)
            text = "".join(c.choices[0].text for c in resp) if stream else resp.choices[0].text
            assert text == _expected(3)
        assert bad.inputs and len(good.inputs) == 2
        worker = next(w for w in gw.registry.all() if w.url == bad.url)
        assert worker.breaker.consecutive_failures >= 1  # each visit failed
        assert gw.metrics.registry.get_sample_value(
            "smg_pd_leg_failures_total", {"leg": "decode", "kind": "status_500"}) >= 1
        assert _idle(*workers)
        assert all(w.load == 0 for w in gw.registry.all())
    finally:
        gw.server.stop()
        for w in workers:
            w.stop()


def test_client_gone_mid_stream_aborts_the_decode_leg(pd) -> None:
    nd = len(pd.d.inputs)
    stream = pd.client.chat.completions.create(model=MODEL, messages=MSG, max_tokens=50, stream=True,
                                               extra_headers={"x-smg-fault": "stall:3"})
    got = ""
    for chunk in stream:
        got += (chunk.choices[0].delta.content or "") if chunk.choices else ""
        if got == _expected(3):
            break
    stream.close()
    rid = pd.d.inputs[nd].rid
    assert pd.d.wait_for(lambda w: rid in w.aborted)
    assert _idle(pd.p, pd.d)
    assert all(w.load == 0 for w in pd.registry.all())
