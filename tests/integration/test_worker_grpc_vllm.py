"""Every VllmEngine rpc of the reference worker over loopback with a grpc.aio client."""

from __future__ import annotations

import hashlib
import json

import grpc
import pytest
from _grpc_worker_lib import deepseek_tokenizer, grpc_worker

from smg._proto import common_pb2, vllm_engine_pb2 as pb, vllm_engine_pb2_grpc as pbg
from smg.engine.config import DEFAULT_CYCLE_TEXT

PROMPT = "The reference worker speaks the vLLM engine protocol too."


@pytest.fixture
def tokenizer():
    return deepseek_tokenizer()


def _req(rid, ids=None, text=None, stream=True, **sp) -> pb.GenerateRequest:
    params = pb.SamplingParams(**{"n": 1, "skip_special_tokens": True, **sp})
    req = pb.GenerateRequest(request_id=rid, sampling_params=params, stream=stream)
    if text is not None:
        req.text = text
    else:
        req.tokenized.input_ids.extend(ids)
    return req


async def test_generate_streaming_tokenized_and_text(tokenizer) -> None:
    async with grpc_worker(tokenizer, grpc_proto="vllm") as (_, ch):
        stub = pbg.VllmEngineStub(ch)
        ids = tokenizer.encode(PROMPT)
        rs = [r async for r in stub.Generate(_req("v1", ids))]
        kinds = [r.WhichOneof("response") for r in rs]
        assert kinds[-1] == "complete" and set(kinds[:-1]) == {"chunk"}
        out = [t for r in rs[:-1] for t in r.chunk.token_ids]
        assert tokenizer.decode(out) == DEFAULT_CYCLE_TEXT
        done = rs[-1].complete
        assert done.finish_reason == "stop" and done.matched_token_id == tokenizer.eos_token_ids[0]
        assert done.prompt_tokens == len(ids) and done.completion_tokens == len(out)
        by_text = [r async for r in stub.Generate(_req("v2", text=PROMPT, stream=False))]
        assert by_text[-1].complete.prompt_tokens == len(ids)
        assert list(by_text[-1].complete.output_ids) == out


async def test_generate_params_and_logprobs(tokenizer) -> None:
    async with grpc_worker(tokenizer, grpc_proto="vllm") as (_, ch):
        stub = pbg.VllmEngineStub(ch)
        ids = tokenizer.encode(PROMPT)
        rs = [r async for r in stub.Generate(
            _req("p", ids, stream=False, max_tokens=4, n=2, logprobs=2))]
        assert sorted(r.complete.index for r in rs) == [0, 1]
        for r in rs:
            c = r.complete
            assert (c.finish_reason, len(c.output_ids)) == ("length", 4)
            assert len(c.output_logprobs.token_logprobs) == 4
            assert [len(t.token_ids) for t in c.output_logprobs.top_logprobs] == [2] * 4
        full = tokenizer.encode(DEFAULT_CYCLE_TEXT)
        rs = [r async for r in stub.Generate(
            _req("q", ids, stream=False, min_tokens=len(full) + 2, max_tokens=len(full) + 3))]
        assert rs[0].complete.finish_reason == "length"


async def test_abort_faults_and_errors(tokenizer) -> None:
    async with grpc_worker(tokenizer, grpc_proto="vllm") as (engine, ch):
        stub = pbg.VllmEngineStub(ch)
        ids = tokenizer.encode(PROMPT)
        call = stub.Generate(_req("st", ids), metadata=[("x-smg-fault", "stall:1")])
        await call.read()
        await stub.Abort(pb.AbortRequest(request_ids=["st", "unknown"]))
        last = await call.read()
        assert last.complete.finish_reason == "abort" and "st" in engine.aborted_rids
        with pytest.raises(grpc.aio.AioRpcError) as info:
            async for _ in stub.Generate(_req("e", ids), metadata=[("x-smg-fault", "error_mid_stream:2")]):
                pass
        assert info.value.code() == grpc.StatusCode.INTERNAL
        with pytest.raises(grpc.aio.AioRpcError) as info:
            async for _ in stub.Generate(pb.GenerateRequest(request_id="none")):
                pass
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        bad = _req("j", ids)
        bad.kv_transfer_params_json = "{not json"
        with pytest.raises(grpc.aio.AioRpcError) as info:
            async for _ in stub.Generate(bad):
                pass
        assert "not JSON" in info.value.details()


async def test_info_loads_tokenizer_events(tokenizer) -> None:
    import asyncio

    async with grpc_worker(tokenizer, grpc_proto="vllm", model="v-model") as (engine, ch):
        stub = pbg.VllmEngineStub(ch)
        assert (await stub.HealthCheck(pb.HealthCheckRequest())).healthy
        info = await stub.GetModelInfo(pb.GetModelInfoRequest())
        assert info.served_model_name == "v-model" and list(info.eos_token_ids) == [1]
        server = await stub.GetServerInfo(pb.GetServerInfoRequest())
        assert server.server_type == "vllm-grpc" and server.kv_role == ""
        loads = await stub.GetLoads(pb.GetLoadsRequest())
        assert loads.loads[0].max_running_requests == 256
        chunks = [c async for c in stub.GetTokenizer(common_pb2.GetTokenizerRequest())]
        data = b"".join(c.data for c in chunks)
        assert hashlib.sha256(data).hexdigest() == chunks[-1].sha256
        events = stub.SubscribeKvEvents(common_pb2.SubscribeKvEventsRequest())
        while not engine._subscribers:
            await asyncio.sleep(0.005)
        async for _ in stub.Generate(_req("k", tokenizer.encode(PROMPT * 3), max_tokens=1)):
            pass
        batch = await asyncio.wait_for(events.read(), 5)
        assert batch.events[0].WhichOneof("data") == "stored"
        events.cancel()
        emb = await stub.Embed(pb.EmbedRequest(request_id="e", tokenized=pb.TokenizedInput(input_ids=[5])))
        assert emb.embedding_dim == len(emb.embedding)
    async with grpc_worker(tokenizer, grpc_proto="vllm", fault="unhealthy") as (_, ch):
        assert not (await pbg.VllmEngineStub(ch).HealthCheck(pb.HealthCheckRequest())).healthy


async def test_vllm_pd_in_process(tokenizer) -> None:
    async with grpc_worker(tokenizer, grpc_proto="vllm", role="prefill", pd_style="vllm",
                           bootstrap_port=0) as (_, pch), \
            grpc_worker(tokenizer, grpc_proto="vllm", role="decode", pd_style="vllm") as (_, dch):
        ids = tokenizer.encode(PROMPT)
        pre = _req("pd-1", ids, stream=False, max_tokens=1)
        pre.kv_transfer_params_json = json.dumps({"do_remote_decode": True})
        rs = [r async for r in pbg.VllmEngineStub(pch).Generate(pre)]
        params = json.loads(rs[-1].complete.kv_transfer_params_json)
        assert params["do_remote_prefill"] and params["remote_port"] > 0
        dec = _req("pd-1-d", ids, max_tokens=6)
        dec.kv_transfer_params_json = json.dumps(params)
        rs = [r async for r in pbg.VllmEngineStub(dch).Generate(dec)]
        assert rs[-1].complete.completion_tokens == 6
        with pytest.raises(grpc.aio.AioRpcError) as info:
            async for _ in pbg.VllmEngineStub(dch).Generate(_req("nope", ids)):
                pass
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
