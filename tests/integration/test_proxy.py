"""`smg serve` in front of real `smg worker --transport http` processes, driven by `openai`.

Which worker served a request is read from the workers themselves: every request here
carries a unique prompt of several KV blocks, so exactly one worker's prefix cache
(``kv_cached_tokens`` in its ``/v1/loads``) grows per request.
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Iterator

import openai
import orjson
import pytest

from smg.app import create_app
from smg.cli.serve import ReferenceWorker, spawn_reference_workers
from smg.config import GatewayConfig
from smg.serve import ServerThread

pytestmark = pytest.mark.slow

MODEL = "smg-reference"


class _Resp:
    def __init__(self, status: int, body: bytes) -> None:
        self.status_code = status
        self.text = body.decode()

    def json(self):
        return orjson.loads(self.text)


def _http(method: str, url: str, payload: object = None, timeout: float = 10) -> _Resp:
    data = None if payload is None else orjson.dumps(payload)
    req = urllib.request.Request(url, data=data, method=method, headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return _Resp(r.status, r.read())
    except urllib.error.HTTPError as e:
        return _Resp(e.code, e.read())


class requests:  # noqa: N801 - the few calls these tests need, on urllib
    RequestException = OSError

    @staticmethod
    def get(url: str, timeout: float = 10) -> _Resp:
        return _http("GET", url, timeout=timeout)

    @staticmethod
    def post(url: str, json: object = None, timeout: float = 10) -> _Resp:
        return _http("POST", url, json if json is not None else {}, timeout)

    @staticmethod
    def delete(url: str, timeout: float = 10) -> _Resp:
        return _http("DELETE", url, timeout=timeout)
FAST_HEALTH = {"health_check_interval_secs": 0.1, "health_failure_threshold": 1, "health_check_timeout_secs": 1.0}


@pytest.fixture(scope="module")
def workers() -> Iterator[list[ReferenceWorker]]:
    """Three reference workers (the last test kills the third)."""
    ws = spawn_reference_workers(3, timeout=120)
    yield ws
    for w in ws:
        w.stop()


@pytest.fixture
def gateway() -> Iterator[Callable[..., str]]:
    threads: list[ServerThread] = []

    def start(worker_urls: list[str], server: str = "uvicorn", **settings) -> str:
        settings = {"disable_load_monitoring": True, "retry_initial_backoff_ms": 1, **settings}
        config = GatewayConfig.from_mapping({"worker_urls": worker_urls, **settings})
        thread = ServerThread(create_app(config), server=server)
        threads.append(thread)
        return thread.start()

    yield start
    for t in threads:
        t.request_stop()
    for t in threads:
        t.stop()


def client(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0, timeout=30)


def unique_prompt(tag: str = "") -> str:
    """A prompt whose first KV blocks no earlier request shares."""
    words = " ".join(uuid.uuid4().hex[i : i + 4] for i in range(0, 32, 4))
    return f"{tag} {words} " + " ".join(f"w{i}" for i in range(24))


def cached_tokens(urls: list[str]) -> dict[str, int]:
    out = {}
    for url in urls:
        loads = requests.get(url + "/v1/loads", timeout=5).json()["loads"]
        out[url] = sum(entry["kv_cached_tokens"] for entry in loads)
    return out


def served_by(urls: list[str], do: Callable[[], object]) -> str:
    """Run ``do`` (one request) and return the URL of the worker whose cache grew."""
    before = cached_tokens(urls)
    do()
    after = cached_tokens(urls)
    grew = [u for u in urls if after[u] > before[u]]
    assert len(grew) == 1, (before, after)
    return grew[0]


def chat(c: openai.OpenAI, prompt: str, *, user: str | None = None, max_tokens: int = 4, stream: bool = False):
    extra = {"user": user} if user else {}
    messages = [{"role": "user", "content": prompt}]
    if not stream:
        return c.chat.completions.create(model=MODEL, messages=messages, max_tokens=max_tokens, **extra)
    chunks = list(c.chat.completions.create(model=MODEL, messages=messages, max_tokens=max_tokens,
                                            stream=True, **extra))
    return chunks


def wait_for(predicate: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail("condition not reached in time")
        time.sleep(0.05)


def worker_status(gw: str) -> dict[str, dict]:
    return {w["url"]: w for w in requests.get(gw + "/workers", timeout=5).json()["workers"]}


def test_round_robin_is_even_streaming_and_not(workers, gateway):
    urls = [w.url for w in workers[:3]]
    gw = gateway(urls, policy="round_robin")
    c = client(gw)
    counts: Counter[str] = Counter()
    for i in range(6):
        stream = i % 2 == 1
        counts[served_by(urls, lambda: chat(c, unique_prompt("rr"), stream=stream))] += 1
    assert counts == Counter({u: 2 for u in urls})


def test_stream_matches_non_stream(workers, gateway):
    gw = gateway([workers[0].url])
    c = client(gw)
    prompt = unique_prompt("same")
    whole = chat(c, prompt, max_tokens=8)
    chunks = chat(c, prompt, max_tokens=8, stream=True)
    assert len(chunks) > 2
    streamed = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert streamed == whole.choices[0].message.content and streamed
    assert whole.usage.completion_tokens == 8


def test_consistent_hash_is_sticky_and_moves_few_keys(workers, gateway):
    urls = [w.url for w in workers[:3]]
    gw = gateway(urls, policy="consistent_hash")
    c = client(gw)
    users = [f"user-{i}" for i in range(6)]
    home = {}
    for user in users:
        seen = {served_by(urls, lambda: chat(c, unique_prompt(user), user=user)) for _ in range(2)}
        assert len(seen) == 1, (user, seen)
        home[user] = seen.pop()
    assert len(set(home.values())) >= 2  # keys spread over workers
    # remove the busiest worker: only its users move
    leaving = Counter(home.values()).most_common(1)[0][0]
    wid = worker_status(gw)[leaving]["id"]
    assert requests.delete(f"{gw}/workers/{wid}", timeout=5).status_code == 202
    for user in users:
        now = served_by(urls, lambda: chat(c, unique_prompt(user), user=user))
        assert now != leaving
        if home[user] != leaving:
            assert now == home[user], user


def test_cache_aware_sends_a_repeated_prefix_to_the_same_worker(workers, gateway):
    urls = [w.url for w in workers[:3]]
    gw = gateway(urls, policy="cache_aware")
    c = client(gw)
    prefix = unique_prompt("shared-prefix") + " " + unique_prompt()
    homes, hits = set(), []
    for i in range(4):
        resp = None

        def ask() -> None:
            nonlocal resp
            resp = chat(c, f"{prefix} question {i}: " + unique_prompt())

        homes.add(served_by(urls, ask))
        hits.append(resp.usage.prompt_tokens_details.cached_tokens)
    assert len(homes) == 1
    assert hits[0] == 0 and all(h >= 32 for h in hits[1:]), hits


def test_workers_added_and_removed_through_the_api(workers, gateway):
    urls = [w.url for w in workers[:2]]
    gw = gateway(urls[:1], policy="round_robin")
    c = client(gw)
    assert [served_by(urls, lambda: chat(c, unique_prompt("one"))) for _ in range(2)] == [urls[0]] * 2
    r = requests.post(gw + "/workers", json={"url": urls[1]}, timeout=10)
    assert r.status_code == 202 and r.json()["worker"]["model_id"] == MODEL
    assert requests.post(gw + "/workers", json={"url": urls[1]}, timeout=10).status_code == 409
    counts = Counter(served_by(urls, lambda: chat(c, unique_prompt("two"))) for _ in range(4))
    assert counts == Counter({urls[0]: 2, urls[1]: 2})
    wid = r.json()["worker_id"]
    assert requests.get(f"{gw}/workers/{wid}", timeout=5).json()["url"] == urls[1]
    assert requests.delete(f"{gw}/workers/{wid}", timeout=5).status_code == 202
    assert [served_by(urls, lambda: chat(c, unique_prompt("three"))) for _ in range(3)] == [urls[0]] * 3


def test_error_statuses_through_the_openai_client(workers, gateway, unused_port):
    gw = gateway([workers[0].url], max_payload_size=4096)
    c = client(gw)
    with pytest.raises(openai.NotFoundError) as e404:
        c.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "x"}])
    assert e404.value.status_code == 404 and e404.value.body["type"] == "model_not_found"
    with pytest.raises(openai.BadRequestError) as e400:
        c.chat.completions.create(model=MODEL, messages="not a list")  # type: ignore[arg-type]
    assert e400.value.body["type"] == "invalid_request_error"
    with pytest.raises(openai.APIStatusError) as e413:
        chat(c, "x" * 10_000)
    assert e413.value.status_code == 413
    # the worker's own 4xx passes through with its body
    with pytest.raises(openai.BadRequestError) as worker_400:
        chat(c, "hello", max_tokens=-5)
    assert "max_tokens" in str(worker_400.value.body) or worker_400.value.status_code == 400
    empty = gateway([])
    with pytest.raises(openai.InternalServerError) as e503:
        chat(client(empty), "x")
    assert e503.value.status_code == 503
    dead = gateway([f"http://127.0.0.1:{unused_port}"], disable_health_check=True, retry_max_retries=2)
    with pytest.raises(openai.InternalServerError) as e502:
        chat(client(dead), "x")
    assert e502.value.status_code == 502 and e502.value.body["type"] == "upstream_error"


def test_hypercorn_serves_stream_and_non_stream(workers, gateway):
    gw = gateway([w.url for w in workers[:2]], server="hypercorn", policy="round_robin")
    c = client(gw)
    whole = chat(c, unique_prompt("hc"), max_tokens=6)
    chunks = chat(c, unique_prompt("hc"), max_tokens=6, stream=True)
    assert whole.choices[0].message.content
    assert "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices) == whole.choices[0].message.content


def test_smg_serve_command(workers, unused_port):
    """The real CLI: flags, banner, a request, and a clean exit on SIGTERM."""
    cmd = [sys.executable, "-m", "smg", "serve", "--port", str(unused_port), "--policy", "round_robin",
           "--worker-urls", workers[0].url, workers[1].url, "--disable-load-monitoring"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        assert proc.stdout is not None
        banner = list(itertools.takewhile(lambda line: "curl" not in line, proc.stdout))
        head = next(line for line in banner if " ready on " in line)
        assert f"ready on http://127.0.0.1:{unused_port}" in head and "policy round_robin" in head, banner
        gw = f"http://127.0.0.1:{unused_port}"
        assert _answers(gw)  # the banner comes once the gateway answers
        assert chat(client(gw), unique_prompt("cli")).choices[0].message.content
        models = requests.get(gw + "/v1/models", timeout=5).json()
        assert [m["id"] for m in models["data"]] == [MODEL]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _answers(url: str) -> bool:
    try:
        return requests.get(url + "/readiness", timeout=1).status_code == 200
    except requests.RequestException:
        return False


def test_load_reports_reach_the_gateway(workers, gateway):
    gw = gateway([workers[0].url], disable_load_monitoring=False, load_monitor_interval=0.05)
    wait_for(lambda: requests.get(gw + "/get_loads", timeout=5).json()["workers"][0]["report"] is not None)
    report = requests.get(gw + "/get_loads", timeout=5).json()["workers"][0]["report"]
    assert set(report) >= {"running", "waiting", "token_usage"}
    assert orjson.loads(orjson.dumps(report))["token_usage"] >= 0.0


def test_worker_faults_reach_the_client_as_openai_errors(workers, gateway):
    gw = gateway([w.url for w in workers[:2]], policy="round_robin")
    c = client(gw)
    before = _metric(gw, "smg_worker_retries_total")
    # fails on every worker before any byte: retried, then the worker's own answer
    with pytest.raises(openai.APIStatusError) as failed:
        c.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}], max_tokens=4,
                                  extra_headers={"x-smg-fault": "error_before_first"})
    assert failed.value.status_code >= 500 and isinstance(failed.value.body, dict)
    assert _metric(gw, "smg_worker_retries_total") >= before + 1
    # the worker drops the stream midway: bytes already went out, so the stream ends with
    # an error event, which the openai client raises
    stream = c.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": unique_prompt()}],
                                       max_tokens=32, stream=True,
                                       extra_headers={"x-smg-fault": "disconnect_mid_stream:3"})
    got = []
    with pytest.raises(openai.APIError, match="mid-stream"):
        for chunk in stream:
            got.extend(ch.delta.content or "" for ch in chunk.choices)
    assert "".join(got)


def test_client_disconnect_aborts_the_request_on_the_worker(workers, gateway):
    w = workers[1]
    gw = gateway([w.url])
    c = client(gw)
    running = lambda: requests.get(w.url + "/v1/loads").json()["loads"][0]["num_running_reqs"]  # noqa: E731
    stream = c.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": unique_prompt()}],
                                       max_tokens=64, stream=True, extra_headers={"x-smg-fault": "stall:2"})
    next(iter(stream))
    wait_for(lambda: running() == 1)
    stream.close()  # the client goes away while the worker holds the request
    wait_for(lambda: running() == 0)
    assert worker_status(gw)[w.url]["load"] == 0


def test_killed_worker_gets_no_traffic_and_requests_are_retried(workers, gateway):
    victim, other = workers[2], workers[0]  # runs last: it kills workers[2]
    urls = [victim.url, other.url]
    # one gateway without health checks (so only retries save requests), one with fast ones
    retrying = gateway(urls, policy="round_robin", disable_health_check=True)
    checked = gateway(urls, policy="round_robin", **FAST_HEALTH)
    for gw in (retrying, checked):
        for _ in range(2):
            chat(client(gw), unique_prompt("before"))
        assert worker_status(gw)[victim.url]["processed"] >= 1
    victim.stop()
    c = client(retrying)
    for _ in range(4):
        assert served_by([other.url], lambda: chat(c, unique_prompt("retried"))) == other.url
    assert _metric(retrying, "smg_worker_retries_total") >= 2
    # the health checker takes the dead worker out: no new attempts reach it
    wait_for(lambda: worker_status(checked)[victim.url]["status"] != "ready")
    sent = worker_status(checked)[victim.url]["processed"]
    c = client(checked)
    for _ in range(4):
        assert served_by([other.url], lambda: chat(c, unique_prompt("after"))) == other.url
    assert worker_status(checked)[victim.url]["processed"] == sent
    assert _metric(checked, "smg_worker_retries_total") == 0


def _metric(gw: str, name: str) -> float:
    for line in requests.get(gw + "/metrics", timeout=5).text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.split()[-1])
    raise AssertionError(f"{name} not exported")
