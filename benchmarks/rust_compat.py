"""The Rust SMG gateway in front of ``smg worker``: CPU of each, per request and per token.

    python benchmarks/rust_compat.py [--calls 400] [--tokens 32] [--concurrency 8]

Starts ``smg worker`` (gRPC, SGLang protocol, lean server, DeepSeek tokenizer) and the
Rust gateway (``smg launch`` from /work/rust-smg-venv, or $SMG_RUST_GATEWAY) in front of
it, checks that a chat completion through the gateway returns the worker's text, then
drives streamed chat completions of 1 and ``--tokens`` tokens with aiohttp and reads
both processes' CPU time from /proc (utime + stime, children included). The question
it answers: is the worker ever what limits a gateway benchmark? (worker/gateway ratio
well below 1 means no.) Exits 0 with a message when the Rust gateway is not installed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

import aiohttp

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from bench_worker_grpc import spawn  # noqa: E402

RUST_SMG = os.environ.get("SMG_RUST_GATEWAY", "/work/rust-smg-venv/bin/smg")
MODEL = "smg-reference"
CONFIG_JSON = '{"model_type": "llama", "architectures": ["LlamaForCausalLM"]}'
_TICK = os.sysconf("SC_CLK_TCK")


def tree_cpu(pid: int) -> float:
    """CPU seconds of ``pid`` and its descendants."""
    children: dict[int, list[int]] = {}
    stats: dict[int, list[str]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            stats[int(entry)] = fields
            children.setdefault(int(fields[1]), []).append(int(entry))
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        if p in stats:
            total += (int(stats[p][11]) + int(stats[p][12])) / _TICK
        todo.extend(children.get(p, ()))
    return total


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def chat(session: aiohttp.ClientSession, base: str, i: int, max_tokens: int) -> str:
    body = {"model": MODEL, "messages": [{"role": "user", "content": f"bench {i % 64}"}],
            "max_tokens": max_tokens, "stream": True, "ignore_eos": True}
    text = []
    async with session.post(base + "/v1/chat/completions", json=body) as resp:
        assert resp.status == 200, await resp.text()
        async for line in resp.content:
            if line.startswith(b"data: {"):
                for choice in json.loads(line[6:])["choices"]:
                    text.append(choice["delta"].get("content") or "")
    return "".join(text)


async def drive(base: str, calls: int, tokens: int, concurrency: int, pids: dict[str, int]) -> dict[str, float]:
    async with aiohttp.ClientSession() as session:
        counter = iter(range(10**9))

        async def lane(n: int) -> None:
            for _ in range(n):
                await chat(session, base, next(counter), tokens)

        await asyncio.gather(*(lane(3) for _ in range(concurrency)))
        before = {k: tree_cpu(p) for k, p in pids.items()}
        per_lane = calls // concurrency
        await asyncio.gather(*(lane(per_lane) for _ in range(concurrency)))
        return {k: (tree_cpu(p) - before[k]) / (per_lane * concurrency) for k, p in pids.items()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--calls", type=int, default=400)
    ap.add_argument("--tokens", type=int, default=32)
    ap.add_argument("--concurrency", type=int, default=8)
    args = ap.parse_args()
    if not os.access(RUST_SMG, os.X_OK):
        print(f"skipped: the Rust SMG gateway is not installed at {RUST_SMG} (set SMG_RUST_GATEWAY)")
        return 0
    from smg.tokenizer import load_tokenizer

    model = pathlib.Path(tempfile.mkdtemp(prefix="smg-rust-compat-"))
    for name, data in load_tokenizer("deepseek", fast_encoder=False).files.items():
        (model / name).write_bytes(data)
    # without a config.json the gateway looks the model up on the HF hub per request
    (model / "config.json").write_text(CONFIG_JSON)
    worker, wport = spawn([sys.executable, "-m", "smg", "worker", "--port", "0",
                           "--tokenizer", str(model), "--model", MODEL])
    port = free_port()
    log = open(model / "gateway.log", "wb")
    gateway = subprocess.Popen(
        [RUST_SMG, "launch", "--worker-urls", f"grpc://127.0.0.1:{wport}", "--model-path",
         str(model), "--tokenizer-path", str(model), "--host", "127.0.0.1", "--port", str(port),
         "--prometheus-host", "127.0.0.1", "--prometheus-port", str(free_port()),
         "--log-level", "warn"], stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120

        async def first() -> str:
            async with aiohttp.ClientSession() as s:
                return await chat(s, base, 0, 64)

        while True:
            try:
                text = asyncio.run(first())
                break
            except (AssertionError, aiohttp.ClientError):
                if time.monotonic() > deadline or gateway.poll() is not None:
                    print((model / "gateway.log").read_text()[-2000:])
                    return 1
                time.sleep(0.3)
        print(f"through the Rust gateway: {text!r}")
        pids = {"Rust gateway": gateway.pid, "smg worker": worker.pid}
        one = asyncio.run(drive(base, args.calls, 1, args.concurrency, pids))
        many = asyncio.run(drive(base, args.calls, args.tokens, args.concurrency, pids))
    finally:
        gateway.terminate()
        worker.terminate()
        gateway.wait(10)
        worker.wait(10)
    n = args.tokens
    print(f"streamed chat completions: calls={args.calls} concurrency={args.concurrency}")
    print(f"{'process':<16}{'CPU/1-token call':>18}{f'CPU/{n}-token call':>20}{'CPU/token':>12}  (µs)")
    per_token = {k: (many[k] - one[k]) / (n - 1) for k in many}
    for k in many:
        print(f"{k:<16}{one[k] * 1e6:>18.1f}{many[k] * 1e6:>20.1f}{per_token[k] * 1e6:>12.1f}")
    w, g = "smg worker", "Rust gateway"
    print(f"ratio worker/gateway: per 1-token call {one[w] / one[g]:.2f}x, "
          f"per {n}-token call {many[w] / many[g]:.2f}x (CPU/token is a difference of two "
          f"10 ms-tick readings: noisy on a shared machine)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
