"""``smg serve --workers 2``: two gateway processes listen on one port (SO_REUSEPORT),
both answer, and stopping the first stops the other."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request

import pytest

from tests.conftest import free_port


def _spawn_until(cmd: list[str], pattern: str) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert proc.stdout is not None
    for line in proc.stdout:
        m = re.search(pattern, line)
        if m:
            return proc, m.group(1)
    raise RuntimeError(f"{cmd} exited before printing {pattern!r}")


def _children(pid: int) -> list[int]:
    out: list[int] = []
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as f:
            out += [int(x) for x in f.read().split()]
    return out


def _listen_inodes(port: int) -> set[int]:
    inodes = set()
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            cols = line.split()
            if int(cols[1].split(":")[1], 16) == port and cols[3] == "0A":  # LISTEN
                inodes.add(int(cols[9]))
    return inodes


def _socket_inodes(pid: int) -> set[int]:
    found = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            found.add(int(target[8:-1]))
    return found


def _wait(predicate, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


@pytest.mark.skipif(not hasattr(os, "fork") or not os.path.exists("/proc/net/tcp"), reason="Linux only")
def test_two_processes_share_the_port_and_stop_together() -> None:
    worker, worker_url = _spawn_until([sys.executable, "-m", "smg", "worker", "--transport", "http", "--port", "0"],
                                      r"ready: (http://\S+)")
    port = free_port()
    gw = subprocess.Popen([sys.executable, "-m", "smg", "serve", "--workers", "2", "--port", str(port),
                           "--worker-urls", worker_url, "--policy", "round_robin", "--log-level", "warn",
                           "--disable-load-monitoring"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    child: list[int] = []
    try:
        assert _wait(lambda: len(_children(gw.pid)) == 1), "the gateway forked no second process"
        child = _children(gw.pid)

        def both_listen() -> bool:
            listening = _listen_inodes(port)
            return all(_socket_inodes(p) & listening for p in (gw.pid, child[0]))

        assert _wait(both_listen), "both processes hold a listening socket on the port"
        body = json.dumps({"model": "smg-reference", "messages": [{"role": "user", "content": "hi"}],
                           "max_tokens": 4}).encode()

        def answers() -> bool:
            req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/chat/completions", data=body,
                                         headers={"content-type": "application/json"})
            try:
                with urllib.request.urlopen(req, timeout=10) as resp:
                    return resp.status == 200 and json.loads(resp.read())["choices"][0]["message"]["content"] != ""
            except OSError:
                return False

        assert _wait(answers)
        assert all(answers() for _ in range(20))  # each on a new connection, spread by the kernel
        gw.send_signal(signal.SIGTERM)
        gw.wait(30)
        assert _wait(lambda: not os.path.exists(f"/proc/{child[0]}") or
                     open(f"/proc/{child[0]}/stat").read().split(") ")[1][0] == "Z"), "the second process stopped"
    finally:
        if gw.poll() is None:
            gw.kill()
        for pid in child:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        worker.terminate()
        worker.wait(10)
