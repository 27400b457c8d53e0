"""Load generation for the e2e benchmarks: wrk (installed with apt-get when missing),
an aiohttp fallback with the same result shape, and a c=1 probe that times the first
SSE event (TTFT) as well as the whole response.

Every run is bounded by time (``seconds``) and loopback only.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass

import orjson

_LUA = """
wrk.method = "POST"
wrk.body = [==[%s]==]
wrk.headers["Content-Type"] = "application/json"
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("WRKJSON {\\"requests\\":%%d,\\"duration_us\\":%%d,\\"errors\\":%%d,"
    .. "\\"p50_us\\":%%d,\\"p99_us\\":%%d}\\n", summary.requests, summary.duration,
    e.status + e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


@dataclass
class LoadResult:
    requests: int
    seconds: float
    errors: int
    p50_ms: float
    p99_ms: float
    ttft_p50_ms: float = 0.0

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def ensure_wrk() -> str | None:
    """The wrk executable; installs the Debian package once if it is missing and we may."""
    found = shutil.which("wrk")
    if found or os.environ.get("SMG_BENCH_NO_APT"):
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, check=False)
    return shutil.which("wrk")


def run_wrk(wrk: str, url: str, body: bytes, concurrency: int, seconds: float, threads: int = 1,
            cpus: set[int] | None = None) -> LoadResult:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(_LUA % body.decode())
        script = f.name
    try:
        out = subprocess.run([wrk, f"-t{threads}", f"-c{concurrency}", f"-d{max(1, round(seconds))}s",
                              "--timeout", "10s", "-s", script, url],
                             capture_output=True, text=True, timeout=seconds + 30,
                             preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None).stdout
    finally:
        os.unlink(script)
    m = re.search(r"WRKJSON (\{.*\})", out)
    if not m:
        raise RuntimeError(f"wrk gave no result for {url}:\n{out}")
    d = orjson.loads(m.group(1))
    return LoadResult(d["requests"], d["duration_us"] / 1e6, d["errors"], d["p50_us"] / 1e3, d["p99_us"] / 1e3)


def _pct(data: list[float], q: float) -> float:
    data = sorted(data)
    return data[min(len(data) - 1, int(q * len(data)))] * 1e3 if data else 0.0


async def _aio(url: str, body: bytes, concurrency: int, seconds: float) -> LoadResult:
    import aiohttp

    latencies: list[float] = []
    ttfts: list[float] = []
    errors = 0
    headers = {"content-type": "application/json"}
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def lane(until: float, record: bool) -> None:
            nonlocal errors
            while time.perf_counter() < until:
                t0 = time.perf_counter()
                first = 0.0
                async with session.post(url, data=body, headers=headers) as resp:
                    async for _ in resp.content.iter_any():
                        if not first:
                            first = time.perf_counter()
                    if resp.status != 200:
                        errors += 1
                if record:
                    latencies.append(time.perf_counter() - t0)
                    ttfts.append(first - t0)

        warm = time.perf_counter() + min(0.5, seconds / 4)
        await asyncio.gather(*(lane(warm, False) for _ in range(concurrency)))
        started = time.perf_counter()
        await asyncio.gather(*(lane(started + seconds, True) for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return LoadResult(len(latencies), elapsed, errors, _pct(latencies, 0.5), _pct(latencies, 0.99),
                      _pct(ttfts, 0.5))


def run_aiohttp(url: str, body: bytes, concurrency: int, seconds: float) -> LoadResult:
    """The same measurement with an asyncio/aiohttp client (also times the first body
    bytes: TTFT for SSE). Less efficient than wrk: only for c=1 probes or without wrk."""
    import uvloop

    return uvloop.run(_aio(url, body, concurrency, seconds))
