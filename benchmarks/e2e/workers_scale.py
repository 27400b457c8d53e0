"""``smg serve --workers N``: req/s and cache_aware affinity with 2 processes against 1.

    python benchmarks/e2e/workers_scale.py [--seconds 4] [--conversations 24] [--turns 4]
        [--gateway-cpus 0,1 --load-cpus 2-7 --wrk-threads 2] [--no-affinity]

1. Throughput: HTTP proxy (round_robin) in front of two canned fast workers, wrk at
   concurrency 32, ``--workers 1`` then ``--workers 2``. By default nothing is pinned:
   on a 2-core machine the gateway processes share both cores with the workers and wrk,
   which caps the ratio below 2 by the load side's share. With more cores,
   ``--gateway-cpus``/``--load-cpus`` give the gateway two cores of its own.
2. Affinity: cache_aware in gRPC mode in front of two reference workers (simulated
   prefix KV cache). Conversations with their own long system prompt, several turns
   each, every request on a new connection (so turns land on either process); the hit
   rate is the workers' cached prompt tokens over all prompt tokens (from ``usage``);
   the first turn of a conversation is always a miss, so the ceiling is below 1.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import pathlib
import sys
import tempfile
import time

import aiohttp

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
from bench_worker_grpc import spawn  # noqa: E402
from load import ensure_wrk, run_aiohttp, run_wrk  # noqa: E402
from run import GRPC_MODEL, HTTP_MODEL, chat, start, stop, wait_ready  # noqa: E402
from rust_compat import free_port, tree_cpu  # noqa: E402


def _cpus(text: str | None) -> set[int] | None:
    """``"0,1"`` or ``"2-15"`` -> a CPU set; None/empty -> None (not pinned)."""
    if not text:
        return None
    out: set[int] = set()
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        out.update(range(int(lo), int(hi or lo) + 1))
    return out


def _smg(args: list[str], log: pathlib.Path, port: int, cpus: set[int] | None = None) -> object:
    import subprocess

    return subprocess.Popen([sys.executable, "-m", "smg", "serve", "--port", str(port), "--log-level", "warn", *args],
                            stdout=open(log, "ab"), stderr=subprocess.STDOUT,
                            preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None)


async def _conversations(base: str, conversations: int, turns: int, salt: str) -> tuple[int, int]:
    """Cached and total prompt tokens; ``salt`` keeps each run's prompts new to the workers."""
    prompt = cached = 0
    histories = [[{"role": "system", "content": f"Run {salt}, conversation {c}. " + " ".join(
        f"fact {c}-{i}: the value of item {i} is {i * 7 + c}." for i in range(40))}] for c in range(conversations)]
    for turn in range(turns):
        for c, history in enumerate(histories):
            history.append({"role": "user", "content": f"turn {turn}: tell me about item {turn + c}"})
            body = {"model": GRPC_MODEL, "messages": history, "max_tokens": 8}
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as session:
                async with session.post(base + "/v1/chat/completions", json=body) as resp:
                    data = await resp.json()
            usage = data["usage"]
            prompt += usage["prompt_tokens"]
            cached += (usage.get("prompt_tokens_details") or {}).get("cached_tokens", 0)
            history.append({"role": "assistant", "content": data["choices"][0]["message"]["content"]})
    return prompt, cached


def _hit_rate(args: argparse.Namespace, n: int, grpc_urls: list[str], model: pathlib.Path,
              tmp: pathlib.Path) -> float:
    port = free_port()
    gw = _smg(["--workers", str(n), "--policy", "cache_aware", "--worker-urls", *grpc_urls,
               "--tokenizer-path", str(model)], tmp / f"grpc-{n}.log", port)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, chat(GRPC_MODEL, 1, False), gw, f"smg --workers {n} (gRPC)")
        time.sleep(1.0)
        prompt, cached = asyncio.run(_conversations(base, args.conversations, args.turns, f"{n}-{time.time()}"))
    finally:
        stop([gw])
    return cached / max(1, prompt)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--conversations", type=int, default=24)
    ap.add_argument("--turns", type=int, default=4)
    ap.add_argument("--gateway-cpus", help="pin the gateway processes to these CPUs (e.g. 0,1); default: not pinned")
    ap.add_argument("--load-cpus", help="pin the workers and wrk to these CPUs (e.g. 2-7); default: workers on CPU 1")
    ap.add_argument("--wrk-threads", type=int, default=1)
    ap.add_argument("--no-affinity", action="store_true", help="only the throughput part (no gRPC workers)")
    args = ap.parse_args()
    gw_cpus, load_cpus = _cpus(args.gateway_cpus), _cpus(args.load_cpus)
    wrk = ensure_wrk()
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="smg-workers-"))
    model = tmp / "model"
    model.mkdir()
    if not args.no_affinity:
        from smg.tokenizer import load_tokenizer

        for name, data in load_tokenizer("deepseek", fast_encoder=False).files.items():
            (model / name).write_bytes(data)
    procs = []
    try:
        http_ports = [free_port(), free_port()]
        worker_cpus = sorted(load_cpus) if load_cpus else [1]
        for i, p in enumerate(http_ports):
            procs.append(start([sys.executable, str(HERE / "fast_http_worker.py"), str(p)], tmp / "w.log",
                               worker_cpus[i % len(worker_cpus)]))
        http_urls = [f"http://127.0.0.1:{p}" for p in http_ports]
        grpc = [] if args.no_affinity else [spawn([sys.executable, "-m", "smg", "worker", "--port", "0", "--tokenizer",
                                                  str(model), "--model", GRPC_MODEL]) for _ in range(2)]
        procs += [g for g, _ in grpc]
        grpc_urls = [f"grpc://127.0.0.1:{port}" for _, port in grpc]
        for w, url in zip(procs, http_urls):
            wait_ready(url, chat(HTTP_MODEL, 8, False), w, "http worker")
        print("| gateway processes | proxy req/s (c=32) | gateway CPU µs/req | cache_aware hit rate |")
        print("|---:|---:|---:|---:|")
        rows = {}
        for n in (1, 2):
            port = free_port()
            gw = _smg(["--workers", str(n), "--policy", "round_robin", "--disable-load-monitoring",
                       "--worker-urls", *http_urls], tmp / f"proxy-{n}.log", port, gw_cpus)
            base = f"http://127.0.0.1:{port}"
            try:
                body = chat(HTTP_MODEL, 8, False)
                wait_ready(base, body, gw, f"smg --workers {n}")
                time.sleep(1.0)  # the forked processes bind their sockets
                drive = (lambda s: run_wrk(wrk, base + "/v1/chat/completions", body, 32, s, args.wrk_threads,
                                           load_cpus)) if wrk else \
                    (lambda s: run_aiohttp(base + "/v1/chat/completions", body, 32, s))
                drive(1.0)
                c0 = tree_cpu(gw.pid)
                r = drive(args.seconds)
                cpu = (tree_cpu(gw.pid) - c0) / max(1, r.requests) * 1e6
            finally:
                stop([gw])
            hit = float("nan") if args.no_affinity else _hit_rate(args, n, grpc_urls, model, tmp)
            rows[n] = (r.rps, cpu, hit)
            print(f"| {n} | {r.rps:,.0f} | {cpu:.0f} | {hit:.3f} |", flush=True)
        print(f"\nreq/s 2 processes / 1: {rows[2][0] / rows[1][0]:.2f}×; "
              f"hit rate 2 / 1: {rows[2][2] / max(1e-9, rows[1][2]):.2f}× (machine: {os.cpu_count()} CPUs)")
    finally:
        stop(procs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
