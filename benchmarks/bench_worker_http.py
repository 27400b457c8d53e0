"""CPU the reference worker's HTTP server spends per request and per streamed token.

A real ``smg worker --transport http`` process (zero simulated cost, ``ignore_eos`` so
every request makes exactly the asked number of tokens) is driven over loopback by
aiohttp from this process. The worker's CPU time (user + system, from
``/proc/<pid>/stat``) over a batch of requests, divided by the batch size, is its cost
per request; the per-token cost is the slope between two output lengths (32 and 256
tokens) of the same route. Same-run baselines:

- ``GET /health``: the floor of one HTTP request on this stack (uvicorn, Starlette);
- the engine alone, in-process (``engine.generate`` drained, no HTTP), per call and per
  token: what is left is the HTTP layer (parsing, detokenization, JSON, SSE).

Run (short; the machine is shared)::

    python benchmarks/bench_worker_http.py                 # default sizes
    python benchmarks/bench_worker_http.py --requests 3000 --concurrency 64 --repeat 5

Reference points (issue 4): the Rust SMG gateway spends about 225 µs per 32-token call
and 3.5 µs per streamed token; the worker must stay well below a gateway's cost.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import time

import aiohttp

GATEWAY_US_PER_CALL = 225.0
GATEWAY_US_PER_TOKEN = 3.5
MSG = [{"role": "user", "content": "Write a short story about a fox and a dog."}]
PROMPT_IDS = list(range(1000, 1032))


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_worker() -> tuple[subprocess.Popen, str]:
    cmd = [sys.executable, "-m", "smg", "worker", "--transport", "http", "--port", "0"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    m = re.match(r"smg worker ready: (http://\S+)", line)
    if not m:
        proc.kill()
        raise SystemExit(f"worker did not start: {line!r}")
    return proc, m[1]


def scenarios(tokens: int) -> dict[str, tuple[str, str, dict | None]]:
    chat = {"messages": MSG, "max_tokens": tokens, "ignore_eos": True}
    gen = {"input_ids": PROMPT_IDS, "sampling_params": {"max_new_tokens": tokens, "ignore_eos": True}}
    comp = {"prompt": PROMPT_IDS, "max_tokens": tokens, "ignore_eos": True}
    return {
        f"chat {tokens}": ("POST", "/v1/chat/completions", chat),
        f"chat stream {tokens}": ("POST", "/v1/chat/completions", {**chat, "stream": True}),
        f"completions stream {tokens}": ("POST", "/v1/completions", {**comp, "stream": True}),
        f"generate {tokens}": ("POST", "/generate", gen),
        f"generate stream {tokens}": ("POST", "/generate", {**gen, "stream": True}),
    }


async def drive(base: str, pid: int, method: str, path: str, body: dict | None, n: int, conc: int) -> tuple[float, float]:
    """(worker CPU µs per request, wall seconds) for ``n`` requests, ``conc`` at a time."""
    conn = aiohttp.TCPConnector(limit=conc)
    async with aiohttp.ClientSession(base, connector=conn) as s:

        async def one() -> None:
            async with s.request(method, path, json=body) as r:
                await r.read()
                if r.status != 200:
                    raise SystemExit(f"{path}: HTTP {r.status}")

        async def lane(k: int) -> None:
            for _ in range(k):
                await one()

        await asyncio.gather(*(lane(max(1, conc // 4)) for _ in range(conc)))  # warm up
        per = [n // conc + (1 if i < n % conc else 0) for i in range(conc)]
        t0, c0 = time.perf_counter(), cpu_seconds(pid)
        await asyncio.gather(*(lane(k) for k in per))
        c1, t1 = cpu_seconds(pid), time.perf_counter()
    return (c1 - c0) / n * 1e6, t1 - t0


async def engine_only(n: int, tokens: int, stream: bool) -> float:
    """CPU µs per drained ``engine.generate`` call, in this process (no HTTP)."""
    from smg.engine.config import WorkerConfig
    from smg.engine.core import Engine, GenerateInput, SamplingParams
    from smg.tokenizer import load_tokenizer

    engine = Engine(WorkerConfig(port=0), load_tokenizer("deepseek"))

    async def one(i: int) -> None:
        p = SamplingParams(max_new_tokens=tokens, ignore_eos=True)
        async for _ in engine.generate(GenerateInput(f"r{i}", PROMPT_IDS, p, stream=stream)):
            pass

    await asyncio.gather(*(one(-i - 1) for i in range(50)))
    c0 = time.process_time()
    for start in range(0, n, 32):
        await asyncio.gather(*(one(i) for i in range(start, min(n, start + 32))))
    return (time.process_time() - c0) / n * 1e6


async def main(args: argparse.Namespace) -> None:
    proc, base = start_worker()
    rows: dict[str, float] = {}
    try:
        pid = proc.pid
        runs = [("health", ("GET", "/health", None), args.requests)]
        for tokens, n in ((32, args.requests), (256, max(args.requests // 4, 100))):
            runs += [(name, spec, n) for name, spec in scenarios(tokens).items()]
        for name, (method, path, body), n in runs:
            # the least of a few runs: the machine is shared, noise only ever adds CPU
            best = min(
                [await drive(base, pid, method, path, body, n, args.concurrency) for _ in range(args.repeat)]
            )
            rows[name] = best[0]
            print(f"{name:28s} {best[0]:8.1f} µs/req   ({n / best[1]:7.0f} req/s, client-bound)")
    finally:
        proc.terminate()
        proc.wait(10)
    e32 = min([await engine_only(args.requests // 2, 32, True) for _ in range(args.repeat)])
    e256 = min([await engine_only(args.requests // 8, 256, True) for _ in range(args.repeat)])
    e_tok = (e256 - e32) / 224
    print(f"{'engine only, stream 32':28s} {e32:8.1f} µs/call  (in-process, no HTTP)")
    print(f"{'engine only, per token':28s} {e_tok:8.2f} µs/token")
    print("\nper streamed token (slope 32 -> 256 tokens), and ratios:")
    for route in ("chat stream", "completions stream", "generate stream"):
        slope = (rows[f"{route} 256"] - rows[f"{route} 32"]) / 224
        print(
            f"  {route:22s} {slope:6.2f} µs/token = {slope / GATEWAY_US_PER_TOKEN:5.2f}x the Rust "
            f"gateway's 3.5; HTTP layer {slope - e_tok:5.2f} µs/token over the engine's {e_tok:.2f}"
        )
    print("\nper 32-token call, and ratios:")
    for name in ("chat 32", "chat stream 32", "generate 32", "generate stream 32"):
        us = rows[name]
        print(
            f"  {name:22s} {us:7.1f} µs = {us / rows['health']:5.1f}x GET /health, "
            f"{us / GATEWAY_US_PER_CALL:5.2f}x the Rust gateway's 225 µs per call"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=1000, help="requests per 32-token scenario")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=3, help="runs per scenario (the least CPU counts)")
    try:
        import uvloop

        uvloop.run(main(parser.parse_args()))
    except ImportError:
        asyncio.run(main(parser.parse_args()))
