"""PD routing: smg serve vs the Rust SMG gateway in front of the same prefill/decode workers.

    python benchmarks/e2e/pd_vs_rust.py [--requests 1000] [--requests-c1 200] [--rust /work/rust-smg-venv/bin/smg]

Starts one reference prefill worker (``smg worker --transport http --role prefill
--bootstrap-port B``) and one decode worker (SGLang style: the decode worker really
fetches each room from the prefill worker's bootstrap server, so an unpaired request
fails), then ``smg serve --pd-disaggregation`` and ``smg launch --pd-disaggregation``
(Rust) in front of them. Each target is driven with a small asyncio/aiohttp load
generator at concurrency 1 and 32:

- ``direct``: the load generator does the PD dance itself (random room, both legs at
  once, the decode answer) — the floor any gateway adds to;
- ``smg`` and ``rust``: one POST to the gateway.

With ``--stub`` the two workers are instead canned-answer ASGI apps (``proxy_vs_rust``'s
fast worker), so the gateways' own cost dominates; ``direct`` is then one POST to the
decode worker (what a client without PD would pay).

Reports requests/s, latency p50/p99, the latency each gateway adds over ``direct``, and
the ratios smg/Rust (req/s: higher is better; added latency: lower is better), all from
this one run. Non-streamed chat completions of 8 tokens.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass

import aiohttp
import orjson

RUST_SMG = "/work/rust-smg-venv/bin/smg"
MODEL = "smg-reference"
BODY = {"model": MODEL, "messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 8}
CHAT = orjson.dumps(BODY)


def use_model(model: str) -> None:
    global CHAT
    BODY["model"] = model
    CHAT = orjson.dumps(BODY)
PATH = "/v1/chat/completions"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 90.0) -> None:
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


@dataclass
class Result:
    target: str
    concurrency: int
    requests: int
    seconds: float
    latencies: list[float]
    errors: int

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    def pct(self, q: float) -> float:
        data = sorted(self.latencies)
        return data[min(len(data) - 1, int(q * len(data)))] * 1e3


async def _direct(session: aiohttp.ClientSession, prefill: str, decode: str, bootstrap: int) -> int:
    body = orjson.dumps({**BODY, "bootstrap_host": "127.0.0.1", "bootstrap_port": bootstrap,
                         "bootstrap_room": random.getrandbits(63)})
    headers = {"content-type": "application/json"}

    async def leg(url: str) -> int:
        async with session.post(url + PATH, data=body, headers=headers) as resp:
            await resp.read()
            return resp.status

    statuses = await asyncio.gather(leg(prefill), leg(decode))
    return max(statuses)


async def load(target: str | tuple[str, str, int], concurrency: int, total: int) -> tuple[float, list[float], int]:
    connector = aiohttp.TCPConnector(limit=2 * concurrency, keepalive_timeout=60)
    latencies: list[float] = []
    errors = 0
    remaining = total
    headers = {"content-type": "application/json"}
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one() -> int:
            if isinstance(target, tuple):
                return await _direct(session, *target)
            async with session.post(target + PATH, data=CHAT, headers=headers) as resp:
                await resp.read()
                return resp.status

        async def one_client() -> None:
            nonlocal remaining, errors
            while remaining > 0:
                remaining -= 1
                t0 = time.perf_counter()
                if await one() != 200:
                    errors += 1
                latencies.append(time.perf_counter() - t0)

        remaining = concurrency * 4  # warm the connections, then measure
        await asyncio.gather(*(one_client() for _ in range(concurrency)))
        latencies.clear()
        errors = 0
        remaining = total
        started = time.perf_counter()
        await asyncio.gather(*(one_client() for _ in range(concurrency)))
        return time.perf_counter() - started, latencies, errors


def run_load(name: str, target, concurrency: int, total: int) -> Result:
    import uvloop

    seconds, latencies, errors = uvloop.run(load(target, concurrency, total))
    return Result(name, concurrency, len(latencies), seconds, latencies, errors)


def check_chat(url: str, name: str, timeout: float = 60.0) -> None:
    """The gateway answers a chat completion with the decode worker's text."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        req = urllib.request.Request(url + PATH, data=CHAT, headers={"content-type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                data = orjson.loads(resp.read())
                if data["choices"][0]["message"]["content"]:
                    return
        except (OSError, KeyError, ValueError) as exc:
            last = exc
        time.sleep(0.3)
    raise RuntimeError(f"{name} does not serve PD chat completions: {last}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=1000, help="requests per run at concurrency 32")
    parser.add_argument("--requests-c1", type=int, default=200, help="requests per run at concurrency 1")
    parser.add_argument("--rust", default=RUST_SMG, help="the Rust smg executable")
    parser.add_argument("--stub", action="store_true", help="canned-answer workers instead of reference workers")
    parser.add_argument("--serve-stub", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    if args.serve_stub:
        from proxy_vs_rust import serve_worker

        serve_worker(args.serve_stub)
        return 0

    p_port, d_port, boot, smg_port, rust_port, prom = (free_port() for _ in range(6))
    prefill, decode = f"http://127.0.0.1:{p_port}", f"http://127.0.0.1:{d_port}"
    worker = [sys.executable, "-m", "smg", "worker", "--transport", "http", "--model", MODEL]
    if args.stub:
        from proxy_vs_rust import MODEL as STUB_MODEL

        use_model(STUB_MODEL)
        procs = [start([sys.executable, __file__, "--serve-stub", str(port)]) for port in (p_port, d_port)]
    else:
        procs = [
            start([*worker, "--port", str(p_port), "--role", "prefill", "--bootstrap-port", str(boot)]),
            start([*worker, "--port", str(d_port), "--role", "decode"]),
        ]
    try:
        wait_http(prefill + "/health")
        wait_http(decode + "/health")
        pd_flags = ["--pd-disaggregation", "--prefill", prefill, str(boot), "--decode", decode,
                    "--prefill-policy", "round_robin", "--decode-policy", "round_robin"]
        procs.append(start([sys.executable, "-m", "smg", "serve", *pd_flags, "--port", str(smg_port),
                            "--log-level", "warn", "--disable-load-monitoring"]))
        direct: object = decode if args.stub else (prefill, decode, boot)
        targets: dict[str, object] = {"direct": direct, "smg": f"http://127.0.0.1:{smg_port}"}
        if os.path.exists(args.rust):
            procs.append(start([args.rust, "launch", *pd_flags, "--host", "127.0.0.1", "--port", str(rust_port),
                                "--log-level", "warn", "--prometheus-port", str(prom),
                                "--disable-tokenizer-autoload", "--disable-load-monitoring"]))
            targets["rust"] = f"http://127.0.0.1:{rust_port}"
        else:
            print(f"note: {args.rust} not found; comparing smg with the direct path only")
        for name, url in targets.items():
            if isinstance(url, str):
                wait_http(url + "/health")
                check_chat(url, name)
        results: dict[tuple[str, int], Result] = {}
        for concurrency, total in ((1, args.requests_c1), (32, args.requests)):
            for name, target in targets.items():
                r = run_load(name, target, concurrency, total)
                results[(name, concurrency)] = r
                print(f"{name:>6} c={concurrency:<3} {r.rps:8.0f} req/s  p50 {r.pct(0.5):7.3f} ms  "
                      f"p99 {r.pct(0.99):7.3f} ms  errors {r.errors}", flush=True)
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


def report(results: dict[tuple[str, int], Result], have_rust: bool) -> None:
    print("\nadded latency = gateway latency - direct PD latency (same percentile)")
    for c in (1, 32):
        d, s = results[("direct", c)], results[("smg", c)]
        line = f"c={c:<3} smg adds p50 {s.pct(0.5) - d.pct(0.5):6.3f} ms, p99 {s.pct(0.99) - d.pct(0.99):6.3f} ms"
        if have_rust:
            r = results[("rust", c)]
            line += f" | rust adds p50 {r.pct(0.5) - d.pct(0.5):6.3f} ms, p99 {r.pct(0.99) - d.pct(0.99):6.3f} ms"
        print(line)
    if not have_rust:
        return
    print("\nratios smg / rust (req/s: >1 smg faster; added latency: <1 smg adds less)")

    def ratio(a: float, b: float) -> str:
        return f"{a / b:5.2f}" if b > 0 else "  n/a"

    for c in (1, 32):
        d, s, r = results[("direct", c)], results[("smg", c)], results[("rust", c)]
        print(f"c={c:<3} req/s {ratio(s.rps, r.rps)}   added p50 "
              f"{ratio(s.pct(0.5) - d.pct(0.5), r.pct(0.5) - d.pct(0.5))}   added p99 "
              f"{ratio(s.pct(0.99) - d.pct(0.99), r.pct(0.99) - d.pct(0.99))}")


if __name__ == "__main__":
    sys.exit(main())
