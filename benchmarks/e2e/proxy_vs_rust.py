"""smg serve vs the Rust SMG gateway, side by side in front of the same fast HTTP worker.

    python benchmarks/e2e/proxy_vs_rust.py [--requests 3000] [--rust /work/rust-smg-venv/bin/smg]

Starts one fast worker (a raw ASGI app on uvicorn answering a canned chat completion),
``smg serve`` and ``smg launch`` (Rust) in front of it, and drives each target — the
worker directly, then each gateway — with a small asyncio/aiohttp load generator at
concurrency 1 and 64, a bounded number of requests each. Reports requests/s, latency
p50/p99, the latency each gateway adds over the direct path, and the ratios smg/Rust
(req/s: higher is better; added latency: lower is better), all from this one run, plus
each process's CPU time per request (robust when the machine is shared: the wall-clock
numbers are only as steady as the machine).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass

import aiohttp
import orjson

RUST_SMG = "/work/rust-smg-venv/bin/smg"
MODEL = "bench-model"
CHAT = orjson.dumps({"model": MODEL, "messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 8})


# -- the fast worker ------------------------------------------------------------------------

_COMPLETION = orjson.dumps({
    "id": "chatcmpl-bench", "object": "chat.completion", "created": 0, "model": MODEL,
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello there, friend!"},
                 "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 5, "completion_tokens": 5, "total_tokens": 10},
})
_MODELS = orjson.dumps({"object": "list", "data": [{"id": MODEL, "object": "model", "owned_by": "bench"}]})
_LOADS = orjson.dumps({"loads": [{"dp_rank": 0, "num_running_reqs": 0, "num_waiting_reqs": 0, "token_usage": 0.0}]})


async def fast_worker(scope, receive, send) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    path = scope["path"]
    body = _COMPLETION
    if scope["method"] == "GET":
        body = _MODELS if path == "/v1/models" else _LOADS if path == "/v1/loads" else b"{}"
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]})
    await send({"type": "http.response.body", "body": body})


def serve_worker(port: int) -> None:
    import uvicorn

    uvicorn.run(fast_worker, host="127.0.0.1", port=port, loop="uvloop", http="httptools",
                log_level="warning", access_log=False, lifespan="on")


# -- processes --------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(url)


def start(cmd: list[str]) -> subprocess.Popen:
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


# -- the load generator -----------------------------------------------------------------------

def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` (Linux /proc)."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Result:
    target: str
    concurrency: int
    requests: int
    seconds: float
    latencies: list[float]
    errors: int
    cpu_us_per_request: float = 0.0

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    def pct(self, q: float) -> float:
        data = sorted(self.latencies)
        return data[min(len(data) - 1, int(q * len(data)))] * 1e3


async def load(url: str, concurrency: int, total: int) -> tuple[float, list[float], int]:
    connector = aiohttp.TCPConnector(limit=concurrency, keepalive_timeout=60)
    latencies: list[float] = []
    errors = 0
    remaining = total
    headers = {"content-type": "application/json"}
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one_client() -> None:
            nonlocal remaining, errors
            while remaining > 0:
                remaining -= 1
                t0 = time.perf_counter()
                async with session.post(url, data=CHAT, headers=headers) as resp:
                    await resp.read()
                    if resp.status != 200:
                        errors += 1
                latencies.append(time.perf_counter() - t0)

        # warm the connections, then measure
        remaining = concurrency * 4
        await asyncio.gather(*(one_client() for _ in range(concurrency)))
        latencies.clear()
        errors = 0
        remaining = total
        started = time.perf_counter()
        await asyncio.gather(*(one_client() for _ in range(concurrency)))
        return time.perf_counter() - started, latencies, errors


def run_load(target: str, url: str, concurrency: int, total: int) -> Result:
    import uvloop

    seconds, latencies, errors = uvloop.run(load(url, concurrency, total))
    return Result(target, concurrency, len(latencies), seconds, latencies, errors)


# -- main ---------------------------------------------------------------------------------------

def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--serve-worker", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--requests", type=int, default=3000, help="requests per run at concurrency 64")
    parser.add_argument("--requests-c1", type=int, default=500, help="requests per run at concurrency 1")
    parser.add_argument("--rust", default=RUST_SMG, help="the Rust smg executable")
    parser.add_argument("--server", default="uvicorn", choices=["uvicorn", "hypercorn"])
    args = parser.parse_args()
    if args.serve_worker:
        serve_worker(args.serve_worker)
        return 0

    worker_port, smg_port, rust_port, prom_port = (free_port() for _ in range(4))
    worker_url = f"http://127.0.0.1:{worker_port}"
    procs = [start([sys.executable, __file__, "--serve-worker", str(worker_port)])]
    try:
        wait_http(worker_url + "/health")
        procs.append(start([sys.executable, "-m", "smg", "serve", "--worker-urls", worker_url,
                            "--port", str(smg_port), "--policy", "round_robin", "--log-level", "warn",
                            "--disable-load-monitoring", "--server", args.server]))
        targets = {"direct": worker_url, "smg": f"http://127.0.0.1:{smg_port}"}
        pids = {"direct": procs[0].pid, "smg": procs[1].pid}
        if os.path.exists(args.rust):
            procs.append(start([args.rust, "launch", "--worker-urls", worker_url, "--host", "127.0.0.1",
                                "--port", str(rust_port), "--policy", "round_robin", "--log-level", "warn",
                                "--prometheus-port", str(prom_port), "--disable-tokenizer-autoload",
                                "--disable-load-monitoring"]))
            targets["rust"] = f"http://127.0.0.1:{rust_port}"
            pids["rust"] = procs[2].pid
        else:
            print(f"note: {args.rust} not found; comparing smg with the direct path only")
        for url in targets.values():
            wait_http(url + "/health")
        for name, url in targets.items():  # every target must really proxy before measuring
            wait_chat(url, name)
        results: dict[tuple[str, int], Result] = {}
        for concurrency, total in ((1, args.requests_c1), (64, args.requests)):
            for name, url in targets.items():
                cpu_before = cpu_seconds(pids[name])
                r = run_load(name, url + "/v1/chat/completions", concurrency, total)
                # (includes the warm-up requests: 4 per connection)
                r.cpu_us_per_request = (cpu_seconds(pids[name]) - cpu_before) / (total + 4 * concurrency) * 1e6
                results[(name, concurrency)] = r
                print(f"{name:>6} c={concurrency:<3} {r.rps:8.0f} req/s  p50 {r.pct(0.5):7.3f} ms  "
                      f"p99 {r.pct(0.99):7.3f} ms  cpu {r.cpu_us_per_request:5.0f} us/req  errors {r.errors}",
                      flush=True)
        report(results, "rust" in targets)
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
    return 0


def wait_chat(url: str, name: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        req = urllib.request.Request(url + "/v1/chat/completions", data=CHAT,
                                     headers={"content-type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=5) as resp:
                if resp.status == 200:
                    return
        except OSError as exc:
            last = exc
        time.sleep(0.2)
    raise RuntimeError(f"{name} does not proxy chat completions: {last}")


def report(results: dict[tuple[str, int], Result], have_rust: bool) -> None:
    print("\nadded latency = gateway latency - direct latency (same percentile)")
    for c in (1, 64):
        d, s = results[("direct", c)], results[("smg", c)]
        line = f"c={c:<3} smg adds p50 {s.pct(0.5) - d.pct(0.5):6.3f} ms, p99 {s.pct(0.99) - d.pct(0.99):6.3f} ms"
        if have_rust:
            r = results[("rust", c)]
            line += f" | rust adds p50 {r.pct(0.5) - d.pct(0.5):6.3f} ms, p99 {r.pct(0.99) - d.pct(0.99):6.3f} ms"
        print(line)
    if not have_rust:
        return
    print("\nratios smg / rust (req/s: >1 smg faster; added latency and CPU per request: <1 smg spends less)")
    for c in (1, 64):
        d, s, r = results[("direct", c)], results[("smg", c)], results[("rust", c)]

        def ratio(a: float, b: float) -> str:
            return f"{a / b:5.2f}" if b > 0 else "  n/a"

        print(f"c={c:<3} req/s {ratio(s.rps, r.rps)}   added p50 "
              f"{ratio(s.pct(0.5) - d.pct(0.5), r.pct(0.5) - d.pct(0.5))}   added p99 "
              f"{ratio(s.pct(0.99) - d.pct(0.99), r.pct(0.99) - d.pct(0.99))}   CPU/req "
              f"{ratio(s.cpu_us_per_request, r.cpu_us_per_request)}")


if __name__ == "__main__":
    sys.exit(main())
