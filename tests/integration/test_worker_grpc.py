"""Every SglangScheduler rpc of the reference worker over loopback with a grpc.aio client."""

from __future__ import annotations

import asyncio
import hashlib

import grpc
import pytest
from _grpc_worker_lib import deepseek_tokenizer, grpc_worker
from google.protobuf import struct_pb2

from smg._proto import common_pb2, sglang_scheduler_pb2 as pb, sglang_scheduler_pb2_grpc as pbg
from smg.engine.config import DEFAULT_CYCLE_TEXT

PROMPT = "The reference worker speaks the SGLang scheduler protocol."


@pytest.fixture
def tokenizer():
    return deepseek_tokenizer()


def _req(rid: str, ids, stream=True, **sp) -> pb.GenerateRequest:
    params = pb.SamplingParams(temperature=1.0, top_p=1.0, top_k=-1, repetition_penalty=1.0, n=1,
                               skip_special_tokens=True, spaces_between_special_tokens=True)
    for k, v in sp.items():
        if k in ("stop_token_ids", "stop"):
            getattr(params, k).extend(v)
        else:
            setattr(params, k, v)
    return pb.GenerateRequest(request_id=rid, tokenized=pb.TokenizedInput(input_ids=ids),
                              sampling_params=params, stream=stream)


async def test_generate_streaming(tokenizer) -> None:
    async with grpc_worker(tokenizer) as (_, ch):
        stub = pbg.SglangSchedulerStub(ch)
        ids = tokenizer.encode(PROMPT)
        chunks, completes = [], []
        async for r in stub.Generate(_req("s1", ids)):
            assert r.request_id == "s1"
            (chunks if r.WhichOneof("response") == "chunk" else completes).append(r)
        out = [t for c in chunks for t in c.chunk.token_ids]
        eos = tokenizer.eos_token_ids[0]
        assert tokenizer.decode(out) == DEFAULT_CYCLE_TEXT and out[-1] == eos
        assert [c.chunk.completion_tokens for c in chunks] == list(range(1, len(out) + 1))
        assert all(c.chunk.prompt_tokens == len(ids) for c in chunks)
        (done,) = completes
        c = done.complete
        assert (c.finish_reason, c.matched_token_id, c.completion_tokens) == ("stop", eos, len(out))
        assert c.WhichOneof("matched_stop") == "matched_token_id"
        assert list(c.output_ids) == [eos]  # streamed: the last step's slice, as SGLang does


async def test_generate_non_streaming_n2_and_logprobs(tokenizer) -> None:
    async with grpc_worker(tokenizer) as (_, ch):
        stub = pbg.SglangSchedulerStub(ch)
        req = _req("n1", tokenizer.encode(PROMPT), stream=False, n=2, max_new_tokens=5)
        req.return_logprob, req.top_logprobs_num = True, 3
        rs = [r async for r in stub.Generate(req)]
        assert [r.WhichOneof("response") for r in rs] == ["complete", "complete"]
        assert sorted(r.complete.index for r in rs) == [0, 1]
        for r in rs:
            c = r.complete
            assert len(c.output_ids) == 5 and c.finish_reason == "length"
            assert not c.HasField("matched_token_id") and not c.HasField("matched_stop_str")
            assert list(c.output_logprobs.token_ids) == list(c.output_ids)
            assert len(c.output_logprobs.token_logprobs) == 5
            assert [len(t.values) for t in c.output_logprobs.top_logprobs] == [3] * 5
            inp = c.input_logprobs  # prompt logprobs: unset for the first token
            assert list(inp.token_ids) == list(req.tokenized.input_ids)
            assert not inp.token_logprobs[0].HasField("value")
            assert all(t.HasField("value") for t in inp.token_logprobs[1:])


async def test_generate_stop_ids_min_tokens_and_ignore_eos(tokenizer) -> None:
    async with grpc_worker(tokenizer) as (_, ch):
        stub = pbg.SglangSchedulerStub(ch)
        ids = tokenizer.encode(PROMPT)
        full = tokenizer.encode(DEFAULT_CYCLE_TEXT)
        rs = [r async for r in stub.Generate(_req("a", ids, stream=False, stop_token_ids=[full[3]]))]
        assert list(rs[0].complete.output_ids) == full[: full.index(full[3]) + 1]
        assert rs[0].complete.matched_token_id == full[3]
        rs = [r async for r in stub.Generate(
            _req("b", ids, stream=False, ignore_eos=True, max_new_tokens=len(full) + 5))]
        assert rs[0].complete.finish_reason == "length"
        assert len(rs[0].complete.output_ids) == len(full) + 5
        rs = [r async for r in stub.Generate(_req("c", ids, stream=False, stop=["lazy"]))]
        assert rs[0].complete.matched_stop_str == "lazy"


async def test_generate_bad_input_is_invalid_argument(tokenizer) -> None:
    async with grpc_worker(tokenizer) as (_, ch):
        stub = pbg.SglangSchedulerStub(ch)
        with pytest.raises(grpc.aio.AioRpcError) as info:
            async for _ in stub.Generate(pb.GenerateRequest(request_id="x")):
                pass
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "tokenized" in info.value.details()
        with pytest.raises(grpc.aio.AioRpcError) as info:
            async for _ in stub.Generate(_req("y", [10**8])):
                pass
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_abort_rpc_stops_a_running_generation(tokenizer) -> None:
    async with grpc_worker(tokenizer) as (engine, ch):
        stub = pbg.SglangSchedulerStub(ch)
        call = stub.Generate(_req("stalled", tokenizer.encode(PROMPT)),
                             metadata=[("x-smg-fault", "stall:2")])
        first = [await call.read(), await call.read()]
        assert all(r.WhichOneof("response") == "chunk" for r in first)
        resp = await stub.Abort(pb.AbortRequest(request_id="stalled", reason="test"))
        assert resp.success
        last = await call.read()
        assert last.complete.finish_reason == "abort" and last.complete.completion_tokens == 2
        assert "stalled" in engine.aborted_rids
        assert not (await stub.Abort(pb.AbortRequest(request_id="stalled"))).success


async def test_client_cancel_frees_the_request(tokenizer) -> None:
    async with grpc_worker(tokenizer, max_running=1) as (engine, ch):
        stub = pbg.SglangSchedulerStub(ch)
        call = stub.Generate(_req("gone", tokenizer.encode(PROMPT)),
                             metadata=[("x-smg-fault", "stall:1")])
        await call.read()
        assert engine.loads()["num_running_reqs"] == 1
        call.cancel()
        for _ in range(500):
            if engine.loads()["num_running_reqs"] == 0:
                break
            await asyncio.sleep(0.01)
        assert engine.loads()["num_running_reqs"] == 0


@pytest.mark.parametrize(
    ("fault", "code", "tokens"),
    [
        ("error_before_first", grpc.StatusCode.INTERNAL, 0),
        ("error_mid_stream:3", grpc.StatusCode.INTERNAL, 3),
        ("disconnect_mid_stream:2", grpc.StatusCode.INTERNAL, 2),
    ],
)
async def test_fault_metadata(tokenizer, fault, code, tokens) -> None:
    async with grpc_worker(tokenizer) as (_, ch):
        stub = pbg.SglangSchedulerStub(ch)
        got = []
        with pytest.raises(grpc.aio.AioRpcError) as info:
            async for r in stub.Generate(_req("f", tokenizer.encode(PROMPT)),
                                         metadata=[("x-smg-fault", fault)]):
                got.extend(r.chunk.token_ids)
        assert info.value.code() == code
        if fault.startswith("disconnect"):  # a reset stream: the client may drop what it had
            assert "RST_STREAM" in info.value.details() and len(got) <= tokens
        else:
            assert len(got) == tokens


async def test_fault_in_custom_params_and_worker_wide_fault(tokenizer) -> None:
    async with grpc_worker(tokenizer) as (_, ch):
        stub = pbg.SglangSchedulerStub(ch)
        req = _req("f", tokenizer.encode(PROMPT))
        req.sampling_params.custom_params.CopyFrom(
            struct_pb2.Struct(fields={"smg_fault": struct_pb2.Value(string_value="error_before_first")}))
        with pytest.raises(grpc.aio.AioRpcError) as info:
            async for _ in stub.Generate(req):
                pass
        assert "error_before_first" in info.value.details()
    async with grpc_worker(tokenizer, fault="unhealthy") as (_, ch):
        resp = await pbg.SglangSchedulerStub(ch).HealthCheck(pb.HealthCheckRequest())
        assert not resp.healthy


async def test_health_info_and_loads(tokenizer) -> None:
    async with grpc_worker(tokenizer, model="ref-model", max_running=7) as (engine, ch):
        stub = pbg.SglangSchedulerStub(ch)
        assert (await stub.HealthCheck(pb.HealthCheckRequest())).healthy
        info = await stub.GetModelInfo(pb.GetModelInfoRequest())
        assert info.served_model_name == "ref-model" and info.is_generation
        assert list(info.eos_token_ids) == list(tokenizer.eos_token_ids)
        assert info.vocab_size == tokenizer.vocab_size and info.max_context_length > 0
        server = await stub.GetServerInfo(pb.GetServerInfoRequest())
        assert server.server_type == "grpc" and server.server_args["model"] == "ref-model"
        assert server.start_time.seconds > 0 and server.max_total_num_tokens > 0
        system = tokenizer.encode("shared system prompt for the cache " * 8)
        for i in range(2):
            async for _ in stub.Generate(_req(f"l{i}", system + [100 + i], max_new_tokens=1)):
                pass
        loads = await stub.GetLoads(pb.GetLoadsRequest(include=["core", "disagg", "queues", "memory"]))
        (load,) = loads.loads
        assert load.max_running_requests == 7 and load.num_running_reqs == 0
        assert load.cache_hit_rate > 0 and load.HasField("memory") and load.HasField("queues")
        assert load.disaggregation.mode == "null"
        assert loads.dp_rank_count == 1 and loads.timestamp
        bare = (await stub.GetLoads(pb.GetLoadsRequest())).loads[0]
        assert not bare.HasField("memory")


async def test_flush_cache_and_kv_events(tokenizer) -> None:
    async with grpc_worker(tokenizer) as (engine, ch):
        stub = pbg.SglangSchedulerStub(ch)
        events = stub.SubscribeKvEvents(common_pb2.SubscribeKvEventsRequest())
        ids = tokenizer.encode("one two three four five six seven " * 10)
        while not engine._subscribers:  # the subscription is registered server-side
            await asyncio.sleep(0.005)
        async for _ in stub.Generate(_req("k", ids, max_new_tokens=1)):
            pass
        batch = await asyncio.wait_for(events.read(), 5)
        ev = batch.events[0]
        assert ev.WhichOneof("data") == "stored"
        assert list(ev.stored.blocks[0].token_ids) == ids[:16] and ev.stored.blocks[0].block_size == 16
        assert not ev.stored.HasField("parent_block_hash")
        flushed = await stub.FlushCache(common_pb2.FlushCacheRequest())
        assert flushed.success
        kinds = []
        while "cleared" not in kinds:
            b = await asyncio.wait_for(events.read(), 5)
            kinds += [e.WhichOneof("data") for e in b.events]
        events.cancel()
        assert engine.loads()["kv_cached_tokens"] == 0


async def test_get_tokenizer_streams_a_verified_zip(tokenizer) -> None:
    from smg.tokenizer import load_tokenizer_from_zip

    async with grpc_worker(tokenizer) as (_, ch):
        stub = pbg.SglangSchedulerStub(ch)
        chunks = [c async for c in stub.GetTokenizer(common_pb2.GetTokenizerRequest())]
        assert len(chunks) > 1 and all(len(c.data) <= 64 * 1024 for c in chunks)
        assert [bool(c.sha256) for c in chunks] == [False] * (len(chunks) - 1) + [True]
        data = b"".join(c.data for c in chunks)
        assert hashlib.sha256(data).hexdigest() == chunks[-1].sha256
        again = load_tokenizer_from_zip(data, sha256=chunks[-1].sha256)
        assert again.encode(PROMPT) == tokenizer.encode(PROMPT)


async def test_profile_lora_and_embed(tokenizer) -> None:
    async with grpc_worker(tokenizer) as (_, ch):
        stub = pbg.SglangSchedulerStub(ch)
        assert (await stub.StartProfile(common_pb2.StartProfileRequest())).success
        assert (await stub.StopProfile(common_pb2.StopProfileRequest())).success
        loaded = await stub.LoadLoRAAdapter(pb.LoadLoRAAdapterRequest(lora_name="a", lora_path="/x"))
        assert loaded.success and list(loaded.loaded_lora_ids) == ["a"]
        listed = await stub.ListLoadedLoRAAdapters(pb.ListLoadedLoRAAdaptersRequest())
        assert [a.lora_path for a in listed.loaded_adapters] == ["/x"]
        assert (await stub.UnloadLoRAAdapter(pb.UnloadLoRAAdapterRequest(lora_name="a"))).success
        emb = await stub.Embed(pb.EmbedRequest(request_id="e", tokenized=pb.TokenizedInput(input_ids=[1, 2])))
        assert emb.embedding_dim == len(emb.embedding) > 0 and emb.prompt_tokens == 2
