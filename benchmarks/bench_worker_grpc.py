"""Worker CPU per Generate call and per streamed token, at zero simulated cost.

    python benchmarks/bench_worker_grpc.py [--calls 600] [--tokens 32] [--concurrency 8]

Starts ``smg worker`` (gRPC, SGLang protocol; its lean HTTP/2 server, then grpc.aio) as
a subprocess and, as the baseline of the same run, a bare grpc.aio server whose Generate streams prebuilt messages and does
nothing else (the floor any grpc.aio worker pays). A grpc.aio client in this process
drives streamed Generate calls of 1 and of ``--tokens`` tokens; the worker's CPU time
comes from /proc/<pid>/stat (utime + stime) around each run, so the client's own cost
is not counted. Per token = (CPU of an N-token call - CPU of a 1-token call) / (N - 1).

Prints the figures and the ratios worker / bare grpc.aio server. For scale, the issue
quotes the Rust SMG gateway at about 225 µs per 32-token call and 3.5 µs per streamed
token on this kind of machine (not measured here).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import time

import grpc

from smg._proto import sglang_scheduler_pb2 as pb, sglang_scheduler_pb2_grpc as pbg

READY = re.compile(r"ready: grpc://[\d.]+:(\d+)")
_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK  # utime, stime


def spawn(cmd: list[str]) -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert proc.stdout is not None
    for line in proc.stdout:
        m = READY.search(line)
        if m:
            return proc, int(m.group(1))
    raise RuntimeError(f"{cmd} exited before it was ready")


# -- the baseline: a grpc.aio SglangScheduler that only streams prebuilt messages ---------
class _Bare(pbg.SglangSchedulerServicer):
    async def Generate(self, request, context):  # noqa: N802
        n = request.sampling_params.max_new_tokens
        rid = request.request_id
        for i in range(n):
            yield pb.GenerateResponse(request_id=rid, chunk=pb.GenerateStreamChunk(
                token_ids=[1000 + i], prompt_tokens=len(request.tokenized.input_ids),
                completion_tokens=i + 1))
        yield pb.GenerateResponse(request_id=rid, complete=pb.GenerateComplete(
            output_ids=[1000 + n - 1], finish_reason="length", completion_tokens=n))


async def serve_bare() -> None:
    server = grpc.aio.server()
    pbg.add_SglangSchedulerServicer_to_server(_Bare(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    print(f"bare grpc.aio ready: grpc://127.0.0.1:{port}", flush=True)
    await server.wait_for_termination()


# -- the client ----------------------------------------------------------------------------
def _request(i: int, tokens: int, prompt: list[int]) -> pb.GenerateRequest:
    return pb.GenerateRequest(
        request_id=f"b{i}-{tokens}", tokenized=pb.TokenizedInput(input_ids=prompt),
        sampling_params=pb.SamplingParams(temperature=1.0, top_p=1.0, top_k=-1, n=1,
                                          max_new_tokens=tokens, ignore_eos=True,
                                          skip_special_tokens=True),
        stream=True)


async def drive(port: int, calls: int, tokens: int, concurrency: int, pid: int) -> float:
    """Worker CPU seconds per call for ``calls`` streamed calls of ``tokens`` tokens."""
    prompt = list(range(1000, 1200))  # 200 tokens
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
        stub = pbg.SglangSchedulerStub(ch)
        counter = iter(range(10**9))

        async def one() -> None:
            got = 0
            async for r in stub.Generate(_request(next(counter), tokens, prompt)):
                got += len(r.chunk.token_ids)
            assert got == tokens, got

        async def lane(n: int) -> None:
            for _ in range(n):
                await one()

        await asyncio.gather(*(lane(5) for _ in range(concurrency)))  # warm up
        before = cpu_seconds(pid)
        await asyncio.gather(*(lane(calls // concurrency) for _ in range(concurrency)))
        used = cpu_seconds(pid) - before
    return used / (calls // concurrency * concurrency)


def measure(cmd: list[str], args: argparse.Namespace) -> tuple[float, float]:
    proc, port = spawn(cmd)
    try:
        one = asyncio.run(drive(port, args.calls, 1, args.concurrency, proc.pid))
        many = asyncio.run(drive(port, args.calls, args.tokens, args.concurrency, proc.pid))
    finally:
        proc.terminate()
        proc.wait(10)
    return many, (many - one) / (args.tokens - 1)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--calls", type=int, default=600)
    ap.add_argument("--tokens", type=int, default=32)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--serve-bare", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve_bare:
        asyncio.run(serve_bare())
        return 0
    t0 = time.perf_counter()
    worker = measure([sys.executable, "-m", "smg", "worker", "--port", "0"], args)
    on_aio = measure([sys.executable, "-m", "smg", "worker", "--port", "0",
                      "--grpc-server", "aio"], args)
    bare = measure([sys.executable, __file__, "--serve-bare"], args)
    n = args.tokens
    print(f"calls={args.calls} tokens/call={n} concurrency={args.concurrency} "
          f"({time.perf_counter() - t0:.1f}s)")
    print(f"{'server':<34}{'CPU/call (µs)':>16}{'CPU/token (µs)':>16}")
    rows = (("smg worker (lean HTTP/2 server)", worker), ("smg worker --grpc-server aio", on_aio),
            ("bare grpc.aio (no engine)", bare))
    for name, (call, tok) in rows:
        print(f"{name:<34}{call * 1e6:>16.1f}{tok * 1e6:>16.1f}")
    print(f"ratio worker/bare: per call {worker[0] / bare[0]:.2f}x, "
          f"per token {worker[1] / bare[1]:.2f}x")
    print(f"vs the Rust gateway's quoted 225 µs/call, 3.5 µs/token: per call "
          f"{worker[0] * 1e6 / 225:.2f}x, per token {worker[1] * 1e6 / 3.5:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
