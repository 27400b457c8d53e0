"""``smg serve --workers 2`` on the default history backend (sqlite in --data-dir): each
request on a new connection lands on either process, and every turn sees the history the
other process wrote: a previous_response_id chain and a conversation's items, in order."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from tests.conftest import free_port


def _post(base: str, path: str, body: dict) -> dict:
    req = urllib.request.Request(base + path, data=json.dumps(body).encode(),
                                 headers={"content-type": "application/json", "connection": "close"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())


def _get(base: str, path: str) -> dict:
    req = urllib.request.Request(base + path, headers={"connection": "close"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())


@pytest.mark.skipif(not hasattr(os, "fork"), reason="--workers N forks")
def test_two_gateway_processes_share_the_history(tmp_path) -> None:
    worker = subprocess.Popen([sys.executable, "-m", "smg", "worker", "--transport", "http", "--port", "0",
                               "--mode", "echo"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              env={**os.environ, "PYTHONUNBUFFERED": "1"})
    gw = None
    try:
        assert worker.stdout is not None
        url = next(m.group(1) for line in worker.stdout if (m := re.search(r"ready: (http://\S+)", line)))
        port = free_port()
        gw = subprocess.Popen([sys.executable, "-m", "smg", "serve", "--workers", "2", "--port", str(port),
                               "--worker-urls", url, "--data-dir", str(tmp_path), "--log-level", "warn",
                               "--disable-load-monitoring"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                first = _post(base, "/v1/responses", {"input": "turn 0", "max_output_tokens": 8})
                break
            except (urllib.error.URLError, ConnectionError):
                assert time.monotonic() < deadline and gw.poll() is None, "the gateway did not answer"
                time.sleep(0.1)
        assert (tmp_path / "history.db").exists()
        ids = [first["id"]]
        for i in range(1, 10):  # each on a new connection: either process
            resp = _post(base, "/v1/responses", {"input": f"turn {i}", "previous_response_id": ids[-1],
                                                 "max_output_tokens": 8})
            assert resp["status"] in ("completed", "incomplete"), resp
            ids.append(resp["id"])
        for i, rid in enumerate(ids):
            assert _get(base, f"/v1/responses/{rid}")["id"] == rid
            items = _get(base, f"/v1/responses/{rid}/input_items")["data"]
            assert [it["content"][0]["text"] for it in items] == [f"turn {i}"]
        conv = _post(base, "/v1/conversations", {})
        for i in range(6):
            _post(base, "/v1/responses", {"input": f"c{i}", "conversation": conv["id"], "max_output_tokens": 4})
        items = _get(base, f"/v1/conversations/{conv['id']}/items?order=asc&limit=100")["data"]
        assert [it["role"] for it in items] == ["user", "assistant"] * 6
        assert [it["content"][0]["text"] for it in items[::2]] == [f"c{i}" for i in range(6)]
    finally:
        if gw is not None:
            gw.send_signal(signal.SIGTERM)
            try:
                gw.wait(30)
            except subprocess.TimeoutExpired:
                gw.kill()
                gw.wait()
        worker.terminate()
        worker.wait(10)
