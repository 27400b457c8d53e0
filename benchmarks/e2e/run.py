"""smg against the Rust SMG gateway (PyPI ``smg`` 1.13.0), side by side, one core each.

    python benchmarks/e2e/run.py [--quick] [--seconds 5] [--no-write]

Starts the same workers for both gateways — two fast canned HTTP workers
(``fast_http_worker.py``) and one reference gRPC worker (``smg worker``, SGLang proto,
DeepSeek tokenizer) — then, per group of paths, ``smg serve`` and ``smg launch`` (Rust)
with the same policy, each gateway pinned to CPU 0 and everything else (workers, load
generator, this script) to CPU 1. For every path it measures

- req/s at concurrency 16 (wrk, duration-bound) and the gateway's CPU time per request
  and per generated token (utime + stime deltas from /proc over that run);
- latency at concurrency 1: p50/p99, minus the same against the worker directly for the
  HTTP paths (added latency); for the gRPC paths (no direct OpenAI path) total latency
  and, streamed, time to the first SSE bytes, as a ratio between the gateways.

It prints the table and writes it, with the command and machine, to
``benchmarks/RESULTS.md`` (between the ``run.py`` markers; the rest of the file is kept).
Ratios are smg/Rust: req/s >1 is smg faster; CPU and latency <1 is smg cheaper.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import platform
import resource
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field

import orjson

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
from bench_worker_grpc import spawn  # noqa: E402
from load import LoadResult, ensure_wrk, run_aiohttp, run_wrk  # noqa: E402
from rust_compat import free_port, tree_cpu  # noqa: E402

RUST_SMG = os.environ.get("SMG_RUST_GATEWAY", "/work/rust-smg-venv/bin/smg")
GRPC_MODEL = "smg-reference"
HTTP_MODEL = "bench-model"
RESULTS = HERE.parent / "RESULTS.md"
BEGIN, END = "<!-- run.py:begin -->", "<!-- run.py:end -->"
GATEWAY_CPU, LOAD_CPU = 0, 1
PACED_US = 2000  # decode µs per token of the paced gRPC worker


def chat(model: str, max_tokens: int, stream: bool, **extra) -> bytes:
    return orjson.dumps({"model": model, "messages": [{"role": "user", "content": "Say hello to the benchmark."}],
                         "max_tokens": max_tokens, "stream": stream, **extra})


@dataclass(frozen=True)
class BenchPath:
    key: str
    title: str
    group: str  # which pair of gateways serves it: http_rr, http_ca, grpc
    body: bytes
    tokens: int = 0  # generated tokens per request (gRPC paths)
    streamed: bool = False


PATHS = [
    BenchPath("http_rr", "HTTP proxy, round_robin", "http_rr", chat(HTTP_MODEL, 8, False)),
    BenchPath("http_ca", "HTTP proxy, cache_aware", "http_ca", chat(HTTP_MODEL, 8, False)),
    BenchPath("http_sse", "HTTP SSE passthrough", "http_rr", chat(HTTP_MODEL, 8, True)),
    BenchPath("grpc_32", "gRPC chat, 32 tokens, not streamed", "grpc",
              chat(GRPC_MODEL, 32, False, ignore_eos=True), 32),
    BenchPath("grpc_256", "gRPC chat, 256 tokens, not streamed", "grpc",
              chat(GRPC_MODEL, 256, False, ignore_eos=True), 256),
    BenchPath("grpc_256s", "gRPC chat, 256 tokens, streamed", "grpc",
              chat(GRPC_MODEL, 256, True, ignore_eos=True), 256, True),
    # The worker above answers as fast as it can, so under load one read brings several
    # tokens of a stream; a real engine emits one token per stream per step. This worker
    # takes PACED_US per token, so each read carries about one token per stream.
    BenchPath("grpc_256sp", f"gRPC chat, 256 tokens, streamed, paced worker ({PACED_US // 1000} ms/token)",
              "grpc_paced", chat(GRPC_MODEL, 256, True, ignore_eos=True), 256, True),
]


@dataclass
class Measured:
    c16: LoadResult
    c1: LoadResult
    cpu_us_req: float
    load_core_busy: float  # CPU seconds of workers + load generator per wall second (CPU 1)
    extra: dict = field(default_factory=dict)


# -- processes -------------------------------------------------------------------------------

def _pin(cpu: int):
    return lambda: os.sched_setaffinity(0, {cpu})


def start(cmd: list[str], log: pathlib.Path, cpu: int) -> subprocess.Popen:
    out = open(log, "ab")
    return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, preexec_fn=_pin(cpu))


def post(url: str, body: bytes) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=body, headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except OSError:
        return 0, b""


def wait_ready(base: str, body: bytes, proc: subprocess.Popen, name: str, timeout: float = 90) -> bytes:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, data = post(base + "/v1/chat/completions", body)
        if status == 200:
            return data
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    raise RuntimeError(f"{name} never answered a chat completion at {base} (last status {status})")


def stop(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        p.terminate()
    for p in procs:
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()


def gateway_cmds(group: str, http_urls: list[str], grpc_url: str | None, model_dir: pathlib.Path,
                 smg_port: int, rust_port: int, smg_extra: list[str]) -> dict[str, list[str]]:
    policy = "cache_aware" if group == "http_ca" else "round_robin"
    smg = [sys.executable, "-m", "smg", "serve", "--port", str(smg_port), "--policy", policy,
           "--log-level", "warn", *smg_extra]
    rust = [RUST_SMG, "launch", "--host", "127.0.0.1", "--port", str(rust_port), "--policy", policy,
            "--log-level", os.environ.get("RUST_LOG_LEVEL", "warn"), "--prometheus-host", "127.0.0.1", "--prometheus-port", str(free_port())]
    if grpc_url is not None:
        smg += ["--worker-urls", grpc_url, "--tokenizer-path", str(model_dir)]
        rust += ["--disable-load-monitoring", "--worker-urls", grpc_url, "--model-path", str(model_dir), "--tokenizer-path", str(model_dir)]
    else:
        smg += ["--worker-urls", *http_urls, "--disable-load-monitoring"]
        rust += ["--worker-urls", *http_urls, "--disable-tokenizer-autoload", "--disable-load-monitoring"]
    return {"smg": smg, "rust": rust}


# -- measuring --------------------------------------------------------------------------------

def children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def measure(url: str, path: BenchPath, gw_pid: int | None, load_pids: list[int], wrk: str | None,
            seconds: float, c1_seconds: float) -> Measured:
    def drive(c: int, secs: float, probe: bool) -> LoadResult:
        if wrk and not probe:
            return run_wrk(wrk, url, path.body, c, secs)
        return run_aiohttp(url, path.body, c, secs)

    drive(16, 1.0, False)  # warm-up: connections, caches
    c1 = drive(1, c1_seconds, path.group.startswith("grpc"))  # gRPC c=1 also times the first bytes
    gw0 = tree_cpu(gw_pid) if gw_pid else 0.0
    side0 = sum(tree_cpu(p) for p in load_pids) + children_cpu() + resource.getrusage(resource.RUSAGE_SELF).ru_utime
    t0 = time.perf_counter()
    c16 = drive(16, seconds, False)
    wall = time.perf_counter() - t0
    side1 = sum(tree_cpu(p) for p in load_pids) + children_cpu() + resource.getrusage(resource.RUSAGE_SELF).ru_utime
    cpu = (tree_cpu(gw_pid) - gw0) / max(1, c16.requests) * 1e6 if gw_pid else 0.0
    return Measured(c16, c1, cpu, (side1 - side0) / wall)


# -- the table ------------------------------------------------------------------------------

def _r(a: float, b: float) -> str:
    return f"{a / b:.2f}×" if b > 0 and a > 0 else "–"


def table(results: dict[tuple[str, str], Measured]) -> list[str]:
    rows = ["| path (c=16 req/s; c=1 latency) | smg req/s | Rust req/s | req/s smg/Rust | smg CPU µs/req "
            "| Rust CPU µs/req | CPU/req smg/Rust | CPU µs/token smg / Rust | c=1 smg vs Rust p50 (ms) "
            "| c=1 p99 (ms) | load core busy |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---|---|---:|"]
    for path in PATHS:
        s, r = results.get((path.key, "smg")), results.get((path.key, "rust"))
        if not s or not r:
            continue
        d = results.get((path.key, "direct"))
        if d:  # added latency over the direct path
            p50 = (f"added {s.c1.p50_ms - d.c1.p50_ms:+.3f} vs {r.c1.p50_ms - d.c1.p50_ms:+.3f} "
                   f"(direct {d.c1.p50_ms:.3f})")
            p99 = f"added {s.c1.p99_ms - d.c1.p99_ms:+.3f} vs {r.c1.p99_ms - d.c1.p99_ms:+.3f}"
        else:
            p50 = f"{s.c1.p50_ms:.3f} vs {r.c1.p50_ms:.3f} ({_r(s.c1.p50_ms, r.c1.p50_ms)})"
            if path.streamed:
                p50 += (f"; TTFT {s.c1.ttft_p50_ms:.3f} vs {r.c1.ttft_p50_ms:.3f} "
                        f"({_r(s.c1.ttft_p50_ms, r.c1.ttft_p50_ms)})")
            p99 = f"{s.c1.p99_ms:.3f} vs {r.c1.p99_ms:.3f} ({_r(s.c1.p99_ms, r.c1.p99_ms)})"
        per_tok = "–"
        if path.tokens:
            st, rt = s.cpu_us_req / path.tokens, r.cpu_us_req / path.tokens
            per_tok = f"{st:.2f} / {rt:.2f} ({_r(st, rt)})"
        errs = s.c16.errors + r.c16.errors + s.c1.errors + r.c1.errors
        title = path.title + (f" ⚠ {errs} errors" if errs else "")
        rows.append(f"| {title} | {s.c16.rps:,.0f} | {r.c16.rps:,.0f} | {_r(s.c16.rps, r.c16.rps)} "
                    f"| {s.cpu_us_req:.0f} | {r.cpu_us_req:.0f} | {_r(s.cpu_us_req, r.cpu_us_req)} | {per_tok} "
                    f"| {p50} | {p99} | {s.load_core_busy:.2f} / {r.load_core_busy:.2f} |")
    return rows


def machine() -> str:
    model = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")), "?")
    rust = subprocess.run([RUST_SMG, "--version"], capture_output=True, text=True).stdout.strip() or "smg 1.13.0"
    return (f"{os.cpu_count()} CPUs ({model}), Linux {platform.release()}, Python {platform.python_version()}, "
            f"Rust gateway: {rust} (PyPI wheel)")


def write_results(lines: list[str]) -> None:
    text = RESULTS.read_text() if RESULTS.exists() else "# smg benchmark results\n\n"
    block = "\n".join([BEGIN, *lines, END])
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        text = head + block + rest.split(END, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    RESULTS.write_text(text)


# -- main -----------------------------------------------------------------------------------

def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="short runs (2 s at c=16, 1.5 s at c=1)")
    ap.add_argument("--seconds", type=float, default=5.0, help="duration of each c=16 run")
    ap.add_argument("--c1-seconds", type=float, default=3.0, help="duration of each c=1 run")
    ap.add_argument("--paths", nargs="*", default=[p.key for p in PATHS], help="subset of path keys")
    ap.add_argument("--smg-arg", action="append", default=[], help="extra argument for smg serve")
    ap.add_argument("--no-write", action="store_true", help=f"do not update {RESULTS.name}")
    args = ap.parse_args()
    if args.quick:
        args.seconds, args.c1_seconds = 2.0, 1.5
    if not os.access(RUST_SMG, os.X_OK):
        print(f"skipped: the Rust SMG gateway is not installed at {RUST_SMG} (set SMG_RUST_GATEWAY)")
        return 0
    both = len(os.sched_getaffinity(0)) >= 2 and os.cpu_count() >= 2
    if both:
        os.sched_setaffinity(0, {LOAD_CPU})  # this script, the load generator and workers
    wrk = ensure_wrk()
    if not wrk:
        print("note: wrk not available; using the aiohttp load generator (slower: may be the bottleneck)")
    from smg.tokenizer import load_tokenizer

    tmp = pathlib.Path(tempfile.mkdtemp(prefix="smg-e2e-"))
    model_dir = tmp / "model"
    model_dir.mkdir()
    for name, data in load_tokenizer("deepseek", fast_encoder=False).files.items():
        (model_dir / name).write_bytes(data)
    # Without a config.json the Rust gateway looks the model up on the HF hub on every
    # request (a connect() per request, a 5 s stall when it times out): give it one.
    (model_dir / "config.json").write_bytes(b'{"model_type": "llama", "architectures": ["LlamaForCausalLM"]}')
    paths = [p for p in PATHS if p.key in args.paths]
    groups = list(dict.fromkeys(p.group for p in paths))
    results: dict[tuple[str, str], Measured] = {}
    workers: list[subprocess.Popen] = []
    try:
        http_ports = [free_port(), free_port()]
        for port in http_ports:
            workers.append(start([sys.executable, str(HERE / "fast_http_worker.py"), str(port)],
                                 tmp / "http-worker.log", LOAD_CPU))
        http_urls = [f"http://127.0.0.1:{p}" for p in http_ports]
        grpc_urls: dict[str, str] = {}
        for group, extra in (("grpc", []), ("grpc_paced", ["--decode-us-per-token", str(PACED_US)])):
            if group in groups:
                grpc, gport = spawn([sys.executable, "-m", "smg", "worker", "--port", "0", "--tokenizer",
                                     str(model_dir), "--model", GRPC_MODEL, *extra])
                workers.append(grpc)
                grpc_urls[group] = f"grpc://127.0.0.1:{gport}"
        load_pids = [w.pid for w in workers]
        for w, url in zip(workers, http_urls):
            wait_ready(url, chat(HTTP_MODEL, 8, False), w, "http worker")
        for group in groups:
            ports = {"smg": free_port(), "rust": free_port()}
            cmds = gateway_cmds(group, http_urls, grpc_urls.get(group), model_dir, ports["smg"], ports["rust"], args.smg_arg)
            for gw in ("smg", "rust"):
                proc = start(cmds[gw], tmp / f"{gw}-{group}.log", GATEWAY_CPU if both else LOAD_CPU)
                base = f"http://127.0.0.1:{ports[gw]}"
                try:
                    for path in (p for p in paths if p.group == group):
                        answer = wait_ready(base, path.body, proc, f"{gw} ({group})")
                        if path.tokens and not path.streamed:
                            got = orjson.loads(answer)["usage"]["completion_tokens"]
                            assert got == path.tokens, f"{gw} generated {got} tokens, not {path.tokens}"
                        m = measure(base + "/v1/chat/completions", path, proc.pid, load_pids, wrk,
                                    args.seconds, args.c1_seconds)
                        results[(path.key, gw)] = m
                        print(f"{path.key:<10} {gw:<6} {m.c16.rps:8.0f} req/s  cpu {m.cpu_us_req:6.0f} µs/req  "
                              f"c1 p50 {m.c1.p50_ms:6.3f} p99 {m.c1.p99_ms:6.3f} ttft {m.c1.ttft_p50_ms:6.3f} ms  "
                              f"load core {m.load_core_busy:.2f}  errors {m.c16.errors + m.c1.errors}", flush=True)
                finally:
                    stop([proc])
            if group.startswith("http"):
                for path in (p for p in paths if p.group == group and (p.key, "direct") not in results):
                    results[(path.key, "direct")] = measure(http_urls[0] + "/v1/chat/completions", path, None,
                                                            load_pids, wrk, 1.0, args.c1_seconds)
    finally:
        stop(workers)
    cmd = "python benchmarks/e2e/run.py " + " ".join(sys.argv[1:])
    lines = ["## smg vs the Rust gateway, one core each (latest `run.py`)", "",
             f"`{cmd.strip()}` — {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}", "",
             f"Machine: {machine()}. Gateways pinned to CPU {GATEWAY_CPU}; workers, wrk and the script to "
             f"CPU {LOAD_CPU}{'' if both else ' (only one CPU: nothing pinned apart)'}. "
             f"c=16 runs {args.seconds:g} s each ({'wrk' if wrk else 'aiohttp: wrk unavailable'}), c=1 runs "
             f"{args.c1_seconds:g} s. HTTP workers: two canned fast workers; gRPC: one `smg worker` "
             f"(SGLang proto, lean server, DeepSeek tokenizer, ignore_eos), and for the paced path a second one "
             f"with `--decode-us-per-token {PACED_US}`. 'load core busy': CPU seconds "
             "of workers + load generator per second on CPU 1 during the c=16 run (near 1.0 = the load side "
             "limits req/s).", "", *table(results), ""]
    print("\n".join(lines))
    if not args.no_write:
        write_results(lines)
        print(f"written to {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
