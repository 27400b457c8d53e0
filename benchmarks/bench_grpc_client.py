"""Gateway-side CPU of the gRPC client: grpc.aio against smg's lean HTTP/2 client.

    python benchmarks/bench_grpc_client.py [--calls 1000] [--tokens 256] [--concurrency 16] [--rounds 3]

Starts one ``smg worker`` (lean server, zero simulated cost) as a subprocess, so its
CPU is not counted; this process drives it through ``make_client(..., transport)`` for
both transports, interleaved for ``--rounds`` rounds (the fastest round of each counts),
on uvloop when installed, and measures its own CPU time (``time.process_time``: every
thread of the process) around each run:

- non-streamed call: ``generate`` with ``stream=False`` and 32 tokens (one message);
- unary call: ``HealthCheck``;
- streamed message: (CPU of a streamed ``--tokens``-token call - CPU of a streamed
  1-token call) / (tokens - 1), one message per token.

Prints µs per call / message and the ratios lean / aio (absolute figures move with the
machine's load; the ratios are what to compare). For scale it also applies the ratios
to the issue's unloaded grpc.aio figures (~205 µs per call, ~25 µs per streamed
message); the whole Rust SMG gateway costs ~225 µs per request and ~3.5 µs per token.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import time

from smg.clients.grpc import make_client
from smg.clients.grpc_types import GenParams

READY = re.compile(r"ready: grpc://[\d.]+:(\d+)")
PROMPT = list(range(1000, 1200))  # 200 tokens


def spawn_worker() -> tuple[subprocess.Popen, int]:
    cmd = [sys.executable, "-m", "smg", "worker", "--port", "0", "--grpc-server", "lean"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert proc.stdout is not None
    for line in proc.stdout:
        m = READY.search(line)
        if m:
            return proc, int(m.group(1))
    raise RuntimeError("the worker exited before it was ready")


async def cpu_per_call(client, calls: int, concurrency: int, job) -> float:
    """Client CPU seconds per ``job(client, i)`` over ``calls`` calls at ``concurrency``."""
    counter = iter(range(10**9))

    async def lane(n: int) -> None:
        for _ in range(n):
            await job(client, next(counter))

    await asyncio.gather(*(lane(max(1, calls // 20 // concurrency)) for _ in range(concurrency)))
    per_lane = max(1, calls // concurrency)
    before = time.process_time()
    await asyncio.gather(*(lane(per_lane) for _ in range(concurrency)))
    return (time.process_time() - before) / (per_lane * concurrency)


def _generate(tokens: int, stream: bool):
    async def job(client, i: int) -> None:
        params = GenParams(f"c{i}-{tokens}-{int(stream)}", PROMPT, stream=stream,
                           max_new_tokens=tokens, ignore_eos=True)
        got = 0
        async for item in client.generate(params):
            got = item.completion_tokens
        assert got == tokens, got

    return job


async def _health(client, i: int) -> None:
    assert await client.health()


async def measure(port: int, transport: str, args: argparse.Namespace) -> dict[str, float]:
    client = make_client(f"grpc://127.0.0.1:{port}", "sglang", transport)
    try:
        c, n = args.calls, args.concurrency
        out = {
            "non-streamed call (32 tokens)": await cpu_per_call(client, c, n, _generate(32, False)),
            "unary call (HealthCheck)": await cpu_per_call(client, c, n, _health),
        }
        one = await cpu_per_call(client, c, n, _generate(1, True))
        many = await cpu_per_call(client, c // 8 or 1, n, _generate(args.tokens, True))
        out[f"streamed call ({args.tokens} tokens)"] = many
        out["streamed message"] = (many - one) / (args.tokens - 1)
    finally:
        await client.close()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--calls", type=int, default=1000)
    ap.add_argument("--tokens", type=int, default=256)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    try:
        import uvloop

        loop_name = "uvloop"
        run = uvloop.run
    except ImportError:
        loop_name, run = "asyncio", asyncio.run
    t0 = time.perf_counter()
    proc, port = spawn_worker()
    try:
        results: dict[str, dict[str, float]] = {}
        for _ in range(args.rounds):  # interleaved; the fastest round of each counts
            for t in ("aio", "lean"):
                got = run(measure(port, t, args))
                best = results.setdefault(t, got)
                for key, value in got.items():
                    best[key] = min(best[key], value)
    finally:
        proc.terminate()
        proc.wait(10)
    print(f"calls={args.calls} tokens={args.tokens} concurrency={args.concurrency} "
          f"rounds={args.rounds} loop={loop_name} ({time.perf_counter() - t0:.1f}s, "
          f"load average {os.getloadavg()[0]:.1f})")
    print(f"{'client CPU (µs)':<32}{'grpc.aio':>10}{'lean':>10}{'lean/aio':>10}")
    for key in results["aio"]:
        a, b = results["aio"][key] * 1e6, results["lean"][key] * 1e6
        print(f"{key:<32}{a:>10.1f}{b:>10.1f}{b / a:>9.2f}x")
    ratio = {k: results["lean"][k] / results["aio"][k] for k in results["aio"]}
    print("scaled to the issue's unloaded grpc.aio figures (205 µs/call, 25 µs/message): lean "
          f"~{205 * ratio['non-streamed call (32 tokens)']:.0f} µs per non-streamed call, "
          f"~{25 * ratio['streamed message']:.1f} µs per streamed message "
          "(the whole Rust gateway: ~225 µs per request, ~3.5 µs per streamed token)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
