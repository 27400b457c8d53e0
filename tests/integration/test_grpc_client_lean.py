"""The gateway's gRPC clients (lean HTTP/2 and grpc.aio) against the reference worker on
both of its servers (lean, grpc.aio) and both protos (SGLang, vLLM): the same scenarios
for every combination, so the lean client is held to what grpc.aio does."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib

import pytest
from _grpc_worker_lib import deepseek_tokenizer

from smg.clients.grpc import make_client
from smg.clients.grpc_lean import LeanGrpcWorkerClient
from smg.clients.grpc_types import Chunk, Complete, GenParams, WorkerCallError
from smg.engine.config import DEFAULT_CYCLE_TEXT, WorkerConfig
from smg.engine.core import Engine
from smg.engine.grpc import start_grpc_server

COMBOS = [pytest.param((server, proto, transport), id=f"{server}-server-{proto}-{transport}-client")
          for server in ("lean", "aio") for proto in ("sglang", "vllm") for transport in ("lean", "aio")]


@pytest.fixture(params=COMBOS)
def combo(request):
    return request.param


@pytest.fixture
def tokenizer():
    return deepseek_tokenizer()


@contextlib.asynccontextmanager
async def worker(tokenizer, combo, **config):
    """A reference worker on 127.0.0.1:0 and a client of the combo's transport."""
    server_kind, proto, transport = combo
    cfg = WorkerConfig(host="127.0.0.1", port=0, grpc_server=server_kind, grpc_proto=proto, **config)
    engine = Engine(cfg, tokenizer)
    await engine.start()
    server, port = await start_grpc_server(engine, cfg)
    client = make_client(f"grpc://127.0.0.1:{port}", proto, transport)
    try:
        yield engine, client
    finally:
        await client.close()
        await server.stop(grace=None)
        await engine.close()


async def until(predicate, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.005)


def spy_aborts(engine: Engine) -> list[str]:
    """Request ids of every Abort rpc the worker's servicer passes to its engine."""
    seen: list[str] = []
    abort = engine.abort

    def recording(rid: str) -> bool:
        seen.append(rid)
        return abort(rid)

    engine.abort = recording  # type: ignore[method-assign]
    return seen


async def collect(client, params: GenParams) -> list:
    return [item async for item in client.generate(params)]


async def test_generate_streams_chunks_then_complete(tokenizer, combo) -> None:
    async with worker(tokenizer, combo) as (_, client):
        prompt = tokenizer.encode("Stream the cycle text, please.")
        items = await collect(client, GenParams("s1", prompt))
        chunks, done = items[:-1], items[-1]
        assert all(isinstance(c, Chunk) for c in chunks) and isinstance(done, Complete)
        ids = [t for c in chunks for t in c.token_ids]
        eos = tokenizer.eos_token_ids[0]
        assert ids[-1] == eos and tokenizer.decode(ids) == DEFAULT_CYCLE_TEXT
        assert [c.completion_tokens for c in chunks] == list(range(1, len(ids) + 1))
        assert {c.prompt_tokens for c in chunks} == {len(prompt)}
        assert (done.finish_reason, done.completion_tokens) == ("stop", len(ids))
        if combo[1] == "sglang":
            assert done.matched_stop == eos


async def test_non_streamed_n2_with_logprobs(tokenizer, combo) -> None:
    async with worker(tokenizer, combo) as (_, client):
        params = GenParams("n2", tokenizer.encode("two choices"), stream=False, n=2,
                           max_new_tokens=5, return_logprob=True, top_logprobs=2)
        items = await collect(client, params)
        assert sorted(c.index for c in items) == [0, 1]
        for c in items:
            assert isinstance(c, Complete)
            assert (c.finish_reason, c.completion_tokens, len(c.output_ids)) == ("length", 5, 5)
            assert c.logprobs is not None and c.logprobs.token_ids == c.output_ids
            assert all(len(ids) == 2 for _, ids in c.logprobs.top)


async def test_early_exit_resets_and_aborts(tokenizer, combo) -> None:
    async with worker(tokenizer, combo, decode_us_per_token=2000) as (engine, client):
        abort_rpcs = spy_aborts(engine)
        params = GenParams("leave-early", tokenizer.encode("a long answer"), max_new_tokens=100_000,
                           ignore_eos=True)
        gen = client.generate(params)
        got = [await gen.__anext__() for _ in range(3)]
        assert [c.completion_tokens for c in got] == [1, 2, 3]
        await gen.aclose()
        await until(lambda: "leave-early" in abort_rpcs)  # the Abort rpc reached the worker
        if combo[2] == "lean":  # sent before the reset, so the engine counts it as aborted;
            # grpc.aio may cancel the rpc first (when its stream iterator is finalized)
            await until(lambda: "leave-early" in engine.aborted_rids)
        # the connection carries on
        items = await collect(client, GenParams("after", [1, 2, 3], max_new_tokens=2))
        assert items[-1].completion_tokens == 2


@pytest.mark.parametrize("combo", [c for c in COMBOS if c.values[0][2] == "lean"], indirect=True)
async def test_cancelled_consumer_aborts(tokenizer, combo) -> None:
    # lean client only: grpc.aio cancels the rpc itself (RST_STREAM) when the task reading
    # it is cancelled, before the Abort can go out, and the worker then drops the request
    # without counting it as aborted
    async with worker(tokenizer, combo, decode_us_per_token=2000) as (engine, client):
        first = asyncio.Event()

        async def consume() -> None:
            async for _ in client.generate(GenParams("cancel-me", [5, 6, 7], max_new_tokens=100_000,
                                                     ignore_eos=True)):
                first.set()

        task = asyncio.create_task(consume())
        await asyncio.wait_for(first.wait(), 5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await until(lambda: "cancel-me" in engine.aborted_rids)


async def test_error_before_first_token_is_retryable(tokenizer, combo) -> None:
    async with worker(tokenizer, combo, fault="error_before_first") as (_, client):
        with pytest.raises(WorkerCallError) as info:
            await collect(client, GenParams("e1", [1, 2, 3]))
        assert info.value.retryable and info.value.status == 502
        assert "injected fault: error_before_first" in info.value.message


@pytest.mark.parametrize("fault", ["error_mid_stream", "disconnect_mid_stream"])
async def test_failure_mid_stream_is_not_retryable(tokenizer, combo, fault) -> None:
    async with worker(tokenizer, combo, fault=fault, fault_after_tokens=4) as (_, client):
        got: list = []
        with pytest.raises(WorkerCallError) as info:
            async for item in client.generate(GenParams("m1", [1, 2, 3], max_new_tokens=50)):
                got.append(item)
        assert [c.completion_tokens for c in got] == [1, 2, 3, 4]
        assert not info.value.retryable
        if fault == "error_mid_stream":
            assert "injected fault: error_mid_stream" in info.value.message
        with contextlib.suppress(WorkerCallError):  # the connection still serves calls
            await collect(client, GenParams("m2", [1, 2, 3], max_new_tokens=1))
        assert await client.health()


async def test_admin_calls(tokenizer, combo) -> None:
    async with worker(tokenizer, combo) as (engine, client):
        assert await client.health()
        info = await client.model_info()
        assert info.get("served_model_name") == engine.config.model
        loads = await client.loads()
        assert "loads" in loads
        data, sha = await client.get_tokenizer_zip()
        assert len(data) > 100_000 and hashlib.sha256(data).hexdigest() == sha
    async with worker(tokenizer, combo, fault="unhealthy") as (_, client):
        assert not await client.health()


async def test_many_concurrent_streams_share_one_connection(tokenizer, combo) -> None:
    async with worker(tokenizer, combo) as (_, client):
        async def one(i: int) -> tuple[int, list[int]]:
            items = await collect(client, GenParams(f"c{i}", [100 + i] * (i + 1),
                                                    max_new_tokens=8 + i % 5, ignore_eos=True))
            return items[-1].completion_tokens, [t for c in items[:-1] for t in c.token_ids]

        results = await asyncio.gather(*(one(i) for i in range(64)))
        for i, (n, ids) in enumerate(results):
            assert n == 8 + i % 5 == len(ids)
        if isinstance(client, LeanGrpcWorkerClient):
            assert client._conn is not None and client._conn.next_sid == 1 + 2 * 64


async def test_large_messages_cross_flow_control_windows(tokenizer, combo) -> None:
    server_kind, proto, transport = combo
    async with worker(tokenizer, combo, mode="echo", context_length=200_000) as (_, client):
        if transport == "lean":  # the smallest windows HTTP/2 allows by default
            url, client = client.url, LeanGrpcWorkerClient(client.url, proto, window=65535,
                                                            conn_window=65535, max_frame=16384)
        try:
            prompt = [1000 + (i * 7919) % 90000 for i in range(30_000)]  # ~90 KB request
            items = await collect(client, GenParams("big", prompt, stream=False,
                                                    max_new_tokens=len(prompt) - 1))
            (done,) = items
            assert done.output_ids == prompt[: len(prompt) - 1]  # ~90 KB response
            if transport == "lean":  # ~1.9 MB through 64 KiB windows
                data, sha = await client.get_tokenizer_zip()
                assert hashlib.sha256(data).hexdigest() == sha
        finally:
            if transport == "lean":
                await client.close()


@pytest.mark.parametrize("transport", ["lean", "aio"])
async def test_unreachable_worker(transport) -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = make_client(f"grpc://127.0.0.1:{port}", "sglang", transport)
    try:
        assert not await client.health(timeout=2.0)
        with pytest.raises(WorkerCallError) as info:
            await collect(client, GenParams("u1", [1]))
        assert info.value.retryable
    finally:
        await client.close()


async def test_wrong_service_is_unimplemented_for_the_backend_probe(tokenizer, combo) -> None:
    # the gateway's backend tells SGLang from vLLM workers by this code on HealthCheck
    import grpc

    server_kind, proto, transport = combo
    other = "vllm" if proto == "sglang" else "sglang"
    async with worker(tokenizer, combo) as (_, client):
        wrong = make_client(client.url, other, transport)
        try:
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await wrong._stub.HealthCheck(wrong._pb.HealthCheckRequest(), timeout=5.0)
            assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED
            assert not await wrong.health()
        finally:
            await wrong.close()
