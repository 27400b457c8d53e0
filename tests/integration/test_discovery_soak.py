"""Soak: random pod churn and injected watch faults under steady traffic.

Four real reference workers, each behind a pod of the API server stand-in
(tests/k8s_standin.py). While clients send requests (plain and streamed) through the
gateway, pods are made unready, ready, deleted and re-created at random, and the
stand-in's watches are dropped, stalled and expired (410) at random. At least one pod is
ready at every moment, so every request can be served. At the end the discovered
workers must equal the ready pods within one re-list interval, and no request may have
failed.

The default run soaks for 25 s; ``SMG_SOAK=1`` soaks for ``SMG_SOAK_SECS`` (default 180).
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections import Counter

import openai
import pytest

pytest.importorskip("kubernetes_asyncio")

from _discovery_gateway_lib import RELIST, start_gateway, stop_gateways, wait_for, worker_pod, workers_by_url  # noqa: E402
from k8s_standin import ApiServerStandIn  # noqa: E402

from smg.cli.serve import spawn_reference_workers  # noqa: E402

pytestmark = pytest.mark.slow

MODEL = "smg-reference"
SOAK_SECS = float(os.environ.get("SMG_SOAK_SECS", "180")) if os.environ.get("SMG_SOAK") == "1" else 25.0
MSG = [{"role": "user", "content": "Say something"}]
FAULTS = ("drop_watches", "stall_watches", "expire_watches")


def test_soak_churn_and_watch_faults(tmp_path):
    rng = random.Random(int(os.environ.get("SMG_SOAK_SEED", "23")))
    workers = spawn_reference_workers(4, args=["--decode-us-per-token", "2000"], timeout=120)
    standin = ApiServerStandIn(bookmark_secs=0.3).start()
    gateway = None
    try:
        names = {f"w{i}": w for i, w in enumerate(workers)}
        state = dict.fromkeys(names, "ready")  # ready | unready | deleted
        for name, w in names.items():
            standin.put(worker_pod(name, w))
        gateway = start_gateway(standin, standin.kubeconfig(str(tmp_path / "kubeconfig")),
                                discovery_drain_timeout_secs=30.0, health_check_interval_secs=1.0)
        url = gateway.url
        stop = threading.Event()
        outcomes: Counter = Counter()
        errors: list[str] = []

        def traffic(seed: int) -> None:
            c = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0, timeout=60)
            r = random.Random(seed)
            while not stop.is_set():
                try:
                    if r.random() < 0.5:
                        chunks = list(c.chat.completions.create(model=MODEL, messages=MSG, max_tokens=16, stream=True))
                        assert [ch.choices[0].finish_reason for ch in chunks if ch.choices][-1] in ("stop", "length")
                    else:
                        assert c.chat.completions.create(model=MODEL, messages=MSG, max_tokens=8).choices[0].message
                    outcomes["ok"] += 1
                except Exception as exc:  # counted: the test fails on any
                    outcomes["failed"] += 1
                    errors.append(repr(exc))

        clients = [threading.Thread(target=traffic, args=(i,), daemon=True) for i in range(3)]
        for t in clients:
            t.start()
        end = time.monotonic() + SOAK_SECS
        faults: Counter = Counter()
        while time.monotonic() < end:
            time.sleep(rng.uniform(0.1, 0.4))
            if rng.random() < 0.12:
                fault = rng.choice(FAULTS)
                getattr(standin, fault)()
                faults[fault] += 1
                continue
            name = rng.choice(list(names))
            ready_now = [n for n, s in state.items() if s == "ready"]
            if state[name] == "ready" and ready_now == [name]:
                continue  # keep one pod ready: every request can be served
            op = rng.choice(("unready", "deleted", "ready"))
            if op == "ready":
                if state[name] == "deleted":
                    standin.put(worker_pod(name, names[name]))
                else:
                    standin.set_ready(name, True)
            elif op == "unready" and state[name] != "deleted":
                standin.set_ready(name, False)
            elif op == "deleted" and state[name] != "deleted":
                standin.delete(name)
            else:
                continue
            state[name] = op
        stop.set()
        for t in clients:
            t.join(60)

        ready = {names[n].url for n, s in state.items() if s == "ready"}

        def converged() -> bool:
            shown = workers_by_url(url)
            return {u for u, w in shown.items() if w["status"] != "draining"} == ready and all(
                w["source"] == "discovery" for w in shown.values())

        wait_for(converged, RELIST + 5.0, "discovered workers == ready pods")
        assert outcomes["failed"] == 0, (outcomes, errors[:5])
        assert outcomes["ok"] > 20 and sum(faults.values()) >= 2, (outcomes, faults)
    finally:
        if gateway is not None:
            stop_gateways([gateway])
        standin.stop()
        for w in workers:
            w.stop()
