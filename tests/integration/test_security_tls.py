"""TLS end to end with the ``openai`` client: the gateway's front over TLS under uvicorn and
hypercorn, and mTLS from the gateway to an ``https://`` reference worker that requires a
client certificate. Every certificate is made in the test (tests/unit/security/_certs.py)."""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator

import openai
import pytest
from starlette.types import Receive, Scope, Send

from smg.app import create_app
from smg.config import GatewayConfig
from smg.engine.config import WorkerConfig
from smg.engine.core import Engine
from smg.engine.http.app import create_app as create_worker_app
from smg.security.tls import ServerTls, server_tls
from smg.serve import ServerThread
from smg.tokenizer import load_tokenizer
from tests.conftest import free_port
from tests.unit.security._authlib import stop_process
from tests.unit.security._certs import Pki, make_pki

KEY = "tls-test-key-0123456789"
MSG = [{"role": "user", "content": "Say something"}]


class EngineApp:
    """The reference worker's HTTP app with a lifespan that starts and closes its engine."""

    def __init__(self) -> None:
        config = WorkerConfig(host="127.0.0.1", port=0, transport="http")
        self.engine = Engine(config, load_tokenizer(config.tokenizer))
        self.app = create_worker_app(self.engine)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return
        await receive()
        await self.engine.start()
        await send({"type": "lifespan.startup.complete"})
        await receive()
        await self.engine.close()
        await send({"type": "lifespan.shutdown.complete"})


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def threads() -> Iterator[list[ServerThread]]:
    started: list[ServerThread] = []
    yield started
    for t in started:
        t.request_stop()
    for t in started:
        t.stop()


def _start(threads: list[ServerThread], thread: ServerThread) -> str:
    threads.append(thread)
    return thread.start()


def _gateway(threads, server: str = "uvicorn", **settings) -> str:
    config = GatewayConfig.from_mapping({"disable_load_monitoring": True, "retry_max_retries": 1, **settings})
    return _start(threads, ServerThread(create_app(config), server=server, tls=server_tls(config.security)))


def _client(url: str, pki: Pki, key: str = KEY) -> openai.OpenAI:
    return openai.OpenAI(base_url=url + "/v1", api_key=key, max_retries=0, timeout=30,
                         http_client=openai.DefaultHttpx2Client(verify=ssl.create_default_context(cafile=str(pki.ca))))


@pytest.mark.parametrize("server", ["uvicorn", "hypercorn"])
def test_tls_front_with_the_openai_client(threads, pki, server):
    worker = _start(threads, ServerThread(EngineApp()))
    gw = _gateway(threads, server, worker_urls=[worker], api_key=KEY,
                  tls_cert_path=str(pki.server_cert), tls_key_path=str(pki.server_key))
    assert gw.startswith("https://127.0.0.1:")
    client = _client(gw, pki)
    reply = client.chat.completions.create(model="smg-reference", messages=MSG, max_tokens=4)
    assert reply.choices[0].message.content
    chunks = list(client.chat.completions.create(model="smg-reference", messages=MSG, max_tokens=4, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    with pytest.raises(openai.AuthenticationError):
        _client(gw, pki, key="wrong").chat.completions.create(model="smg-reference", messages=MSG, max_tokens=1)
    with pytest.raises(OSError):  # plain HTTP to the TLS port gets no HTTP answer
        urllib.request.urlopen(gw.replace("https://", "http://") + "/liveness", timeout=5)
    with pytest.raises(openai.APIConnectionError):  # a client that does not trust the test CA
        openai.OpenAI(base_url=gw + "/v1", api_key=KEY, max_retries=0, timeout=10).models.list()


@pytest.mark.parametrize("worker_server", ["uvicorn", "hypercorn"])
def test_mtls_to_a_worker_that_requires_a_client_certificate(threads, pki, worker_server):
    tls = ServerTls(str(pki.server_cert), str(pki.server_key), client_ca=str(pki.ca))
    worker = _start(threads, ServerThread(EngineApp(), server=worker_server, tls=tls))
    assert worker.startswith("https://")
    common = {"worker_urls": [worker], "health_check_interval_secs": 3600}
    good = _gateway(threads, **common, ca_cert_paths=[str(pki.ca)], client_cert_path=str(pki.client_cert),
                    client_key_path=str(pki.client_key))
    reply = openai.OpenAI(base_url=good + "/v1", api_key="x", max_retries=0, timeout=30).chat.completions.create(
        model="smg-reference", messages=MSG, max_tokens=4)
    assert reply.choices[0].message.content
    # no client certificate: the worker refuses the handshake; no CA: the gateway refuses the worker
    for settings in ({"ca_cert_paths": [str(pki.ca)]}, {}):
        bad = _gateway(threads, **common, **settings)
        plain = openai.OpenAI(base_url=bad + "/v1", api_key="x", max_retries=0, timeout=30)
        with pytest.raises(openai.APIStatusError) as info:
            plain.chat.completions.create(model="smg-reference", messages=MSG, max_tokens=4)
        assert info.value.status_code in (502, 503) and "BEGIN" not in info.value.message


def test_smg_serve_process_serves_tls(threads, pki):
    worker = _start(threads, ServerThread(EngineApp()))
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "smg", "serve", "--port", str(port), "--worker-urls", worker, "--api-key", KEY,
         "--tls-cert-path", str(pki.server_cert), "--tls-key-path", str(pki.server_key),
         "--log-level", "warn", "--disable-load-monitoring", "--shutdown-grace-period-secs", "2"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    ctx = ssl.create_default_context(cafile=str(pki.ca))
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                req = urllib.request.Request(f"https://127.0.0.1:{port}/v1/models",
                                             headers={"Authorization": f"Bearer {KEY}"})
                with urllib.request.urlopen(req, timeout=2, context=ctx) as resp:
                    assert resp.status == 200
                    break
            except OSError:
                assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
                assert time.monotonic() < deadline, "smg serve did not answer over TLS"
                time.sleep(0.1)
        with _client(f"https://127.0.0.1:{port}", pki) as client:
            reply = client.chat.completions.create(model="smg-reference", messages=MSG, max_tokens=4)
        assert reply.choices[0].message.content
    finally:
        stop_process(proc)
