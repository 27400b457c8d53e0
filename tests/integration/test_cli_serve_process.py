"""``smg serve`` as a person runs it: a real process in front of reference workers.

The banner comes once the gateway answers; each request gets an access line; start-up
failures are one line and exit status 2; a worker down at start is a warning, and is used
within seconds once it comes up.
"""

from __future__ import annotations

import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest
from openai import OpenAI

from tests.conftest import free_port

MODEL = "smg-reference"


class Process:
    """A command whose output lines are read as they come."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "smg", *args], stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True,
                                     env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def wait_for(self, text: str, timeout: float = 60.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                break
            if line is None:
                raise AssertionError(f"exited ({self.proc.wait()}) before {text!r}:\n" + "\n".join(self.seen))
            self.seen.append(line)
            if text in line:
                return line
        raise AssertionError(f"no {text!r} within {timeout} s:\n" + "\n".join(self.seen))

    def finish(self, timeout: float = 60.0) -> tuple[int, str]:
        code = self.proc.wait(timeout)
        while (line := self.lines.get(timeout=10)) is not None:
            self.seen.append(line)
        return code, "\n".join(self.seen)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


@pytest.fixture(scope="module")
def http_worker():
    worker = Process("worker", "--transport", "http", "--host", "127.0.0.1", "--port", "0")
    line = worker.wait_for("smg worker ready: ")
    yield line.split()[3]
    worker.stop()


def _client(port: int) -> OpenAI:
    return OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="unused", timeout=30, max_retries=0)


def test_banner_comes_when_the_gateway_answers_and_requests_are_logged(http_worker):
    port = free_port()
    gw = Process("serve", "--worker-urls", http_worker, "--port", str(port), "--policy", "round_robin")
    try:
        head = gw.wait_for(" ready on ")
        # the first request right after the banner is answered: the banner waited for start-up
        reply = _client(port).chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}])
        assert reply.choices[0].message.content
        assert f"http://127.0.0.1:{port}" in head and "proxy mode" in head and "policy round_robin" in head
        gw.wait_for(f"worker {http_worker}")
        assert "ready" in gw.seen[-1] and f"model {MODEL}" in gw.seen[-1]
        kernels = gw.wait_for("kernels:")
        assert all(k in kernels for k in ("radix", "detok", "stops", "bpe", "grpcwire", "h2wire"))
        access = gw.wait_for('"POST /v1/chat/completions" 200')
        assert reply.id in access
    finally:
        assert gw.stop() == 0


def test_port_in_use_is_one_line_and_exit_2(http_worker):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        gw = Process("serve", "--worker-urls", http_worker, "--port", str(port))
        code, out = gw.finish()
    assert code == 2
    assert out.strip().splitlines()[-1] == f"smg serve: error: cannot listen on 127.0.0.1:{port}: Address already in use"
    assert "Traceback" not in out


@pytest.mark.parametrize(("args", "says"), [
    (["--worker-urls", "127.0.0.1:8000"], "has no scheme"),
    (["--policy", "bogus"], "unknown name 'bogus'"),
    (["--upstream-http2"], "--upstream-http2 is a Rust SMG flag that smg does not support yet"),
])
def test_bad_settings_are_one_line_and_exit_2(args, says):
    code, out = Process("serve", *args).finish()
    assert code == 2 and says in out and "Traceback" not in out
    assert len(out.strip().splitlines()) == 1


def test_failed_start_up_is_one_line_and_exit_2(tmp_path):
    """A gRPC worker whose model cannot be set up (here: a chat template that does not
    compile) stops start-up: one line, exit 2, no banner, no traceback."""
    worker = Process("worker", "--host", "127.0.0.1", "--port", "0")
    try:
        url = "grpc://" + worker.wait_for("smg worker ready: ").split()[3].split("://")[1]
        code, out = Process("serve", "--worker-urls", url, "--port", str(free_port()),
                            "--chat-template", "{% if %}").finish()
    finally:
        worker.stop()
    assert code == 2, out
    assert "smg serve: error: start-up failed: " in out
    assert " ready on " not in out and "Traceback" not in out


def test_a_worker_down_at_start_is_a_warning_and_is_used_once_up():
    worker_port, port = free_port(), free_port()
    url = f"http://127.0.0.1:{worker_port}"
    gw = Process("serve", "--worker-urls", url, "--port", str(port), "--disable-load-monitoring")
    worker = None
    try:
        warning = gw.wait_for("warning: worker")
        assert url in warning and "not answering yet" in warning
        gw.wait_for(" ready on ")
        worker = Process("worker", "--transport", "http", "--host", "127.0.0.1", "--port", str(worker_port))
        worker.wait_for("smg worker ready: ")
        up = time.monotonic()
        client = _client(port)
        while True:  # polled, bounded: the worker must take traffic within seconds
            try:
                reply = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}])
                break
            except Exception:  # noqa: BLE001 - 503 until its health check passes
                assert time.monotonic() - up < 10, "a worker that came up was not used within 10 s"
                time.sleep(0.1)
        assert reply.choices[0].message.content
    finally:
        gw.stop()
        if worker is not None:
            worker.stop()


def test_banner_says_what_auth_asks_and_access_lines_name_the_tenant(http_worker):
    port = free_port()
    gw = Process("serve", "--worker-urls", http_worker, "--port", str(port), "--tenant-api-key", "acme:k-123")
    try:
        gw.wait_for(" ready on ")
        assert "need an API key" in gw.wait_for("auth: inference routes")
        assert "refused to everyone" in gw.wait_for("auth: the control plane")
        assert "authorization: Bearer" in gw.wait_for("curl -s")
        client = OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="k-123", timeout=30, max_retries=0)
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}])
        access = gw.wait_for('"POST /v1/chat/completions" 200')
        assert access.endswith(" auth:acme") and "k-123" not in access
    finally:
        assert gw.stop() == 0
