"""``smg serve --workers 2``: a worker added or removed at run time, through whichever
process takes the request, is added or removed in both (the shared change log of
smg.http.worker_sync). Each check reads /workers over many fresh connections, which the
kernel spreads over both processes (SO_REUSEPORT): a process that missed the change shows
in some of them."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import orjson
import pytest

from tests.conftest import free_port
from tests.unit.http.conftest import Servers
from tests.unit.security._authlib import ADMIN_KEY, CONTROL_KEYS, DATA_KEY, USER_KEY, stop_process

READS = 40  # fresh connections per check: all landing in one process has odds 2**-40


def _request(method: str, url: str, payload: object = None, key: str = ADMIN_KEY) -> tuple[int, dict]:
    data = None if payload is None else orjson.dumps(payload)
    req = urllib.request.Request(url, data=data, method=method, headers={
        "Authorization": f"Bearer {key}", "x-api-key": key, "content-type": "application/json",
        "connection": "close"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, orjson.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, orjson.loads(err.read())


def _urls(gw: str) -> list[frozenset[str]]:
    return [frozenset(w["url"] for w in _request("GET", gw + "/workers")[1]["workers"]) for _ in range(READS)]


def _until_all(gw: str, want: set[str], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            seen = set(_urls(gw))
        except OSError as exc:  # still starting
            seen = {exc}
        if seen == {frozenset(want)}:
            return
        assert time.monotonic() < deadline, f"processes disagree: {seen}"


@pytest.fixture
def stubs() -> Iterator[Servers]:
    s = Servers()
    yield s
    s.close()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_run_time_worker_changes_reach_every_process(stubs):
    a, b = stubs.stub("a"), stubs.stub("b")
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "smg", "serve", "--workers", "2", "--port", str(port), "--worker-urls", a.url,
         "--control-plane-api-keys", *CONTROL_KEYS, "--policy", "round_robin", "--log-level", "warn",
         "--disable-load-monitoring", "--shutdown-grace-period-secs", "2"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    gw = f"http://127.0.0.1:{port}"
    try:
        _until_all(gw, {a.url})  # both processes up and serving
        status, added = _request("POST", gw + "/workers", {"url": b.url})
        assert status == 202
        _until_all(gw, {a.url, b.url})
        status, _ = _request("DELETE", f"{gw}/workers/{added['worker_id']}")
        assert status == 202
        _until_all(gw, {a.url})
    finally:
        stop_process(proc)


def test_no_key_reaches_the_log_at_debug_level(stubs, tmp_path):
    a = stubs.stub("a")
    port = free_port()
    out = tmp_path / "gateway.log"
    with out.open("wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "smg", "serve", "--port", str(port), "--worker-urls", a.url, "--api-key", DATA_KEY,
             "--control-plane-api-keys", *CONTROL_KEYS, "--log-level", "debug", "--disable-load-monitoring",
             "--shutdown-grace-period-secs", "2"], stdout=sink, stderr=subprocess.STDOUT)
    gw = f"http://127.0.0.1:{port}"
    chat = {"model": "stub-model", "messages": [{"role": "user", "content": "hi"}]}
    try:
        _until_all(gw, {a.url})
        for key in (DATA_KEY, ADMIN_KEY, USER_KEY, "x" + DATA_KEY):
            _request("POST", gw + "/v1/chat/completions", chat, key=key)
            _request("POST", gw + "/v1/messages", {}, key=key)
            _request("POST", gw + "/flush_cache", {}, key=key)
            _request("GET", gw + "/workers", key=key)
    finally:
        stop_process(proc)
    logged = out.read_text()
    assert "audit who=control_key:ops" in logged and "smg.access" in logged  # it did log
    for key in (DATA_KEY, ADMIN_KEY, USER_KEY):
        assert key not in logged
