"""The CPU a Responses turn costs the gateway against the equivalent chat completion.

    python benchmarks/e2e/responses_chain.py [--turns 20] [--calls 60] [--backend sqlite] [--mode grpc]

A reference worker (``smg worker``, cycle mode, a short reply) and ``smg serve`` in front
of it (gRPC mode by default; ``--mode proxy`` for an HTTP worker), history on
``--backend`` (sqlite in a temporary data directory). A chain of ``--turns`` stored
responses is built first; then, one request at a time, side by side in one run:

- ``responses``: ``POST /v1/responses`` with ``previous_response_id`` = the chain's last
  (the gateway loads the 20-turn chain from the store, converts it, runs it, stores the
  new response);
- ``stateless``: ``POST /v1/responses`` with the same 41 items as ``input`` and ``store``
  false (the conversion without the store);
- ``chat``: ``POST /v1/chat/completions`` with the same 41 messages in the body.

The gateway process's CPU seconds (utime + stime from /proc) per request are printed for
each, and their ratio (the issue's target: at most 1.5).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import tempfile
import time
import urllib.request

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from bench_worker_grpc import cpu_seconds, spawn  # noqa: E402
from rust_compat import free_port  # noqa: E402

MODEL = "qwen3-ref"
REPLY = "Fine, thank you for asking; and you?"


def post(base: str, path: str, body: dict) -> dict:
    req = urllib.request.Request(base + path, data=json.dumps(body).encode(),
                                 headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as resp:
        return json.loads(resp.read())


def wait_up(base: str, proc, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            post(base, "/v1/chat/completions", {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]})
            return
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError("the gateway exited") from None
            time.sleep(0.2)
    raise RuntimeError("the gateway did not answer")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--turns", type=int, default=20)
    ap.add_argument("--calls", type=int, default=60)
    ap.add_argument("--backend", default="sqlite")
    ap.add_argument("--mode", choices=("grpc", "proxy"), default="grpc")
    args = ap.parse_args()
    transport = "grpc" if args.mode == "grpc" else "http"
    worker, wport = spawn([sys.executable, "-m", "smg", "worker", "--host", "127.0.0.1", "--port", "0",
                           "--transport", transport, "--tokenizer", "qwen", "--model", MODEL, "--mode", "cycle",
                           "--cycle-text", REPLY]) if transport == "grpc" else _http_worker()
    procs = [worker]
    try:
        with tempfile.TemporaryDirectory() as data:
            port = free_port()
            import subprocess

            gw = subprocess.Popen([sys.executable, "-m", "smg", "serve", "--port", str(port), "--log-level", "warn",
                                   "--worker-urls", f"{transport}://127.0.0.1:{wport}", "--history-backend",
                                   args.backend, "--data-dir", data, "--disable-load-monitoring"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            procs.append(gw)
            base = f"http://127.0.0.1:{port}"
            wait_up(base, gw)
            last, messages = None, []
            for i in range(args.turns):
                text = f"Turn {i}: how are you today, and what is new?"
                body = {"model": MODEL, "input": text, **({"previous_response_id": last} if last else {})}
                resp = post(base, "/v1/responses", body)
                last = resp["id"]
                messages += [{"role": "user", "content": text},
                             {"role": "assistant", "content": resp["output"][0]["content"][0]["text"]}]
            question = "And one more thing?"
            cost = {}
            items = [{"role": m["role"], "content": m["content"]} for m in messages]
            for _round in range(2):  # the second round is the one reported (both warm)
                for kind in ("responses", "stateless", "chat"):
                    before = cpu_seconds(gw.pid)
                    for _ in range(args.calls):
                        if kind == "responses":
                            post(base, "/v1/responses", {"model": MODEL, "input": question,
                                                         "previous_response_id": last})
                        elif kind == "stateless":
                            post(base, "/v1/responses", {"model": MODEL, "store": False, "input": [
                                *items, {"role": "user", "content": question}]})
                        else:
                            post(base, "/v1/chat/completions", {"model": MODEL, "messages": [
                                *messages, {"role": "user", "content": question}]})
                    cost[kind] = (cpu_seconds(gw.pid) - before) / args.calls
    finally:
        for p in procs:
            p.terminate()
            p.wait(15)
    ratio = cost["responses"] / cost["chat"]
    print(f"{args.mode} mode, {args.backend}, chain of {args.turns} turns, {args.calls} calls each:")
    print(f"  chat completion  {cost['chat'] * 1e3:7.2f} ms CPU per request")
    print(f"  responses turn   {cost['responses'] * 1e3:7.2f} ms CPU per request  ({ratio:.2f}x)")
    print(f"  same, stateless  {cost['stateless'] * 1e3:7.2f} ms CPU per request  "
          f"({cost['stateless'] / cost['chat']:.2f}x: the 41 items in the body, store false)")
    return 0


def _http_worker():
    import re
    import subprocess

    proc = subprocess.Popen([sys.executable, "-m", "smg", "worker", "--host", "127.0.0.1", "--port", "0",
                             "--transport", "http", "--tokenizer", "qwen", "--model", MODEL, "--mode", "cycle",
                             "--cycle-text", REPLY], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for line in proc.stdout:
        m = re.search(r"ready: http://[\d.]+:(\d+)", line)
        if m:
            return proc, int(m.group(1))
    raise RuntimeError("the HTTP worker exited before it was ready")


if __name__ == "__main__":
    sys.exit(main())
