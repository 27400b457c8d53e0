"""PD in gRPC mode: ``smg.pipeline.pd.open_pair`` against reference workers speaking
SglangScheduler (parallel legs, DisaggregatedParams) and VllmEngine (sequential legs,
kv_transfer_params_json). What each leg carried is read from the workers."""

from __future__ import annotations

import asyncio

import pytest
from _pd_lib import PDWorker, tokenizer

from smg.clients.grpc_types import Chunk, Complete, WorkerCallError
from smg.engine.config import DEFAULT_CYCLE_TEXT
from smg.http.pd_metrics import PDMetrics
from smg.pipeline.backend import GrpcBackend, GrpcSettings
from smg.pipeline.pd import open_pair
from smg.pipeline.prepare import prepare
from smg.pipeline.requests import parse_chat
from smg.router import Worker, WorkerRegistry, WorkerRole, create_policy
from smg.router.pd import PDRouter

MODEL = "smg-reference"
_RUNTIMES: dict = {}


async def _until(worker: PDWorker, predicate) -> bool:
    """Wait for a worker condition without blocking this loop (its Abort calls run here)."""
    return await asyncio.to_thread(worker.wait_for, predicate)


def _expected(n: int) -> str:
    tok = tokenizer()
    return tok.decode(tok.encode(DEFAULT_CYCLE_TEXT, add_special_tokens=False)[:n])


class _Cluster:
    def __init__(self, proto: str, prefills: list[PDWorker], decodes: list[PDWorker]) -> None:
        self.proto = proto
        self.prefills, self.decodes = prefills, decodes
        self.workers = [*prefills, *decodes]
        self.registry = WorkerRegistry()
        self.metrics = PDMetrics()

    def start(self) -> _Cluster:
        for w in self.workers:
            w.start()
        for w in self.prefills:
            self.registry.add(Worker(w.url, role=WorkerRole.PREFILL, bootstrap_port=w.bootstrap_port))
        for w in self.decodes:
            self.registry.add(Worker(w.url, role=WorkerRole.DECODE))
        self.pd = PDRouter(self.registry, create_policy("round_robin"), create_policy("round_robin"))
        return self

    async def backend(self) -> GrpcBackend:
        backend = GrpcBackend(GrpcSettings())
        if MODEL in _RUNTIMES:  # the tokenizer comes over GetTokenizer once per test run
            backend.models[MODEL] = _RUNTIMES[MODEL]
        for w in self.workers:
            await backend.connect(w.url)
        _RUNTIMES.setdefault(MODEL, backend.models[MODEL])
        return backend

    def stop(self) -> None:
        for w in self.workers:
            w.stop()


def _workers(proto: str, n_prefill: int = 1, n_decode: int = 1, **decode_config) -> tuple[list, list]:
    kw = dict(transport="grpc", grpc_proto=proto, pd_style=proto)
    return ([PDWorker(role="prefill", **kw) for _ in range(n_prefill)],
            [PDWorker(role="decode", **kw, **decode_config) for _ in range(n_decode)])


@pytest.fixture(scope="module", params=["sglang", "vllm"])
def cluster(request):
    c = _Cluster(request.param, *_workers(request.param)).start()
    yield c
    c.stop()


async def _run(cluster: _Cluster, backend: GrpcBackend, max_tokens: int = 6, tried=None) -> str:
    req = parse_chat({"model": MODEL, "messages": [{"role": "user", "content": "pd over grpc"}],
                      "max_tokens": max_tokens, "stream": True})
    prep = await prepare("chat", req, backend, {}, None)
    worker, stream, first = await open_pair(prep, cluster.pd, backend, [] if tried is None else tried, cluster.metrics)
    assert worker.role is WorkerRole.DECODE and worker.load == 1
    ids: list[int] = []
    item = first
    try:
        while True:
            if isinstance(item, Chunk):
                ids += item.token_ids
            elif isinstance(item, Complete):
                break
            item = await stream.__anext__()
    finally:
        await stream.aclose()
        worker.end(True)
    return tokenizer().decode(ids)


async def test_pair_serves_and_legs_match(cluster) -> None:
    backend = await cluster.backend()
    try:
        p, d = cluster.prefills[0], cluster.decodes[0]
        np, nd = len(p.inputs), len(d.inputs)
        assert await _run(cluster, backend) == _expected(6)
        (pin,), (din,) = p.inputs[np:], d.inputs[nd:]
        if cluster.proto == "sglang":
            assert pin.bootstrap_room == din.bootstrap_room and 0 <= din.bootstrap_room < 2**31
            assert (din.bootstrap_host, din.bootstrap_port) == ("127.0.0.1", p.bootstrap_port)
            assert pin.rid == din.rid  # one request id, cloned to both legs
        else:
            assert pin.params.max_new_tokens == 1 and pin.kv_transfer_params["do_remote_decode"]
            assert din.kv_transfer_params["remote_request_id"] == pin.rid
        assert all(w.load == 0 for w in cluster.registry.all())
        assert cluster.metrics.registry.get_sample_value("smg_pd_leg_ttft_seconds_count", {"leg": "prefill"}) >= 1
        assert await _until(p, lambda w: w.active == 0) and await _until(d, lambda w: w.active == 0)
    finally:
        await backend.close()


@pytest.mark.parametrize("proto", ["sglang", "vllm"])
async def test_failed_leg_is_retryable_and_aborts_its_partner(proto: str) -> None:
    """A prefill that fails before its token: the decode leg sent with it is aborted (SGLang)
    or never sent (vLLM), and the error says it may be retried on a new pair."""
    prefills, decodes = _workers(proto)
    bad = PDWorker(role="prefill", transport="grpc", grpc_proto=proto, pd_style=proto, fault="error_before_first",
                   fault_delay_s=0.0)
    c = _Cluster(proto, [bad], decodes).start()
    backend = await c.backend()
    try:
        with pytest.raises(WorkerCallError) as info:
            await _run(c, backend)
        assert info.value.retryable and "prefill leg" in info.value.message
        d = decodes[0]
        if proto == "sglang":  # a decode leg that reached its worker was aborted there
            for rid in [i.rid for i in d.inputs if i.bootstrap_room == bad.inputs[-1].bootstrap_room]:
                assert await _until(d, lambda w, rid=rid: rid in w.aborted)
            assert await _until(d, lambda w: w.active == 0)
        else:
            assert not d.inputs
        assert all(w.load == 0 for w in c.registry.all())
        # the next attempt excludes the failed pair's workers while others remain
        c.registry.add(Worker(prefills[0].start(), role=WorkerRole.PREFILL, bootstrap_port=prefills[0].bootstrap_port))
        c.workers.append(prefills[0])
        await backend.connect(prefills[0].url)
        tried = [w.id for w in c.registry.all() if w.url == bad.url]
        assert await _run(c, backend, tried=tried) == _expected(6)
    finally:
        await backend.close()
        c.stop()


@pytest.mark.parametrize("proto", ["sglang", "vllm"])
async def test_unmatched_room_or_missing_params_is_the_decode_workers_error(proto: str) -> None:
    prefills, decodes = _workers(proto, pd_timeout_s=0.3)
    c = _Cluster(proto, prefills, decodes).start()
    # SGLang: a wrong bootstrap port, so the room is never found; vLLM: no kv params at all
    worker = next(w for w in c.registry.all() if w.role is WorkerRole.PREFILL)
    worker.bootstrap_port = 1
    backend = await c.backend()
    try:
        if proto == "vllm":
            c.registry.remove(worker.id)
            both = PDWorker(role="both", transport="grpc", grpc_proto="vllm")
            c.registry.add(Worker(both.start(), role=WorkerRole.PREFILL))
            c.workers.append(both)
            await backend.connect(both.url)
        with pytest.raises(WorkerCallError) as info:
            await _run(c, backend)
        if proto == "sglang":
            room = decodes[0].inputs[-1].bootstrap_room
            assert info.value.status == 504 and not info.value.retryable
            assert f"no matching prefill for bootstrap room {room} at 127.0.0.1:1" in info.value.message
        else:
            assert info.value.status == 400
            assert "decode worker needs kv_transfer_params" in info.value.message
        assert all(w.load == 0 for w in c.registry.all())
    finally:
        await backend.close()
        c.stop()


# -- through the gateway (smg serve in gRPC mode, --pd-disaggregation) ----------------------


@pytest.fixture(scope="module", params=["sglang", "vllm"])
def gateway(request):
    from _pd_gateway import pd_gateway

    proto = request.param
    prefills, decodes = _workers(proto, n_prefill=2)
    bad = PDWorker(role="prefill", transport="grpc", grpc_proto=proto, pd_style=proto, fault="error_before_first")
    workers = [bad, *prefills, *decodes]
    for w in workers:
        w.start()
    gw = pd_gateway([(w.url, w.bootstrap_port) for w in (bad, *prefills)], [d.url for d in decodes])
    gw.proto, gw.bad, gw.prefills, gw.decodes, gw.workers = proto, bad, prefills, decodes, workers
    yield gw
    gw.server.stop()
    for w in workers:
        w.stop()


@pytest.mark.parametrize("stream", [False, True])
def test_openai_client_through_pd_gateway(gateway, stream: bool) -> None:
    """Three requests over round robin: one meets the failing prefill worker and is retried
    on a new pair; the client sees normal answers and one normal stream each time."""
    d = gateway.decodes[0]
    for _ in range(3):
        nd = len(d.inputs)
        resp = gateway.client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "pd gateway"}], max_tokens=5, stream=stream)
        if stream:
            chunks = list(resp)
            assert chunks[0].choices[0].delta.role == "assistant"
            assert chunks[-1].choices[0].finish_reason == "length"
            text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        else:
            text = resp.choices[0].message.content
            assert resp.choices[0].finish_reason == "length" and resp.usage.completion_tokens == 5
        assert text == _expected(5)
        din = d.inputs[-1]
        served = [i for w in gateway.prefills for i in w.inputs if i.rid == din.rid]
        assert served, "the decode leg that answered had its prefill on a healthy worker"
        if gateway.proto == "sglang":
            assert served[-1].bootstrap_room == din.bootstrap_room
        else:
            assert din.kv_transfer_params["remote_request_id"] == served[-1].rid
        if gateway.proto == "vllm":  # sequential: decode only ever follows a prefill that worked
            assert len(d.inputs) - nd == 1
    assert gateway.bad.inputs, "the failing prefill worker was tried"
    assert all(w.load == 0 for w in gateway.registry.all())


def test_pd_workers_are_listed_with_roles(gateway) -> None:
    import json
    import urllib.request

    with urllib.request.urlopen(gateway.url + "/workers", timeout=10) as r:
        listed = json.loads(r.read())
    workers = listed["workers"] if isinstance(listed, dict) else listed
    roles = sorted(w["role"] for w in workers)
    assert roles == ["decode", "prefill", "prefill", "prefill"]
    assert {w["bootstrap_port"] for w in workers if w["role"] == "prefill"} == {
        w.bootstrap_port for w in (gateway.bad, *gateway.prefills)}

