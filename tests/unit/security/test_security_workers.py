"""The control plane cannot be turned against the network: the attack sequences of issue 14
against a real gateway, with stub workers and an "internal" recorder on loopback."""

from __future__ import annotations

import logging

import pytest
from starlette.types import Receive, Scope, Send

from smg.serve import ServerThread
from tests.unit.security._authlib import ADMIN_KEY, CHAT, CONTROL_KEYS, call


class Recorder:
    """A raw ASGI app that records every request path and answers ``status`` (POSTs only;
    with ``location`` for a redirect): the internal host an attacker wants to reach."""

    def __init__(self, status: int = 200, location: str | None = None) -> None:
        self.status, self.location = status, location
        self.paths: list[str] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        self.paths.append(scope["path"] + ("?" + scope["query_string"].decode() if scope["query_string"] else ""))
        headers = [(b"content-type", b"application/json")]
        if self.location and scope["method"] == "POST":
            headers.append((b"location", self.location.encode()))
        status = self.status if scope["method"] == "POST" else 200
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": b'{"data": [{"id": "internal-secret-model"}], "secret": 1}'})


@pytest.fixture
def internal(servers):
    """A recorder on 127.0.0.2: loopback, but not a host the gateway was started with."""
    rec = Recorder()
    thread = ServerThread(rec, host="127.0.0.2")
    servers.threads.append(thread)
    rec.url = thread.start()
    rec.paths.clear()  # ServerThread's own liveness poll
    return rec


def _admin(**kw):
    return {"key": ADMIN_KEY, **kw}


async def test_internal_hosts_cannot_be_added_and_are_never_contacted(servers, internal):
    stub = servers.stub("a")
    gw = servers.gateway(worker_urls=[stub.url], control_plane_api_keys=CONTROL_KEYS,
                         worker_allow_hosts=["127.0.0.1"])
    for url in (internal.url, internal.url + "/v1", internal.url.replace("127.0.0.2", "127.2")):
        status, body, _ = await call("POST", gw + "/workers", {"url": url}, **_admin())
        assert status == 403 and "allow-list" in body["error"]["message"], body
    for url in (internal.url + "/path?x=", internal.url + "/#f", stub.url + "?q"):
        status, body, _ = await call("POST", gw + "/workers", {"url": url}, **_admin())
        assert status == 400 and "query or fragment" in body["error"]["message"]
    assert internal.paths == []  # no /v1/models probe, no health check: nothing reached it
    status, listing, _ = await call("GET", gw + "/workers", **_admin())
    assert [w["url"] for w in listing["workers"]] == [stub.url]


async def test_the_gateways_own_url_is_refused(servers):
    stub = servers.stub("a")
    gw = servers.gateway(worker_urls=[stub.url], control_plane_api_keys=CONTROL_KEYS)
    port = gw.rsplit(":", 1)[1]
    for url in (gw, gw + "/", f"http://localhost:{port}", f"http://127.0.0.1:{port}/v1"):
        status, body, _ = await call("POST", gw + "/workers", {"url": url, "model_id": "stub-model"}, **_admin())
        assert status == 403 and "this gateway" in body["error"]["message"], url
    # the rest of the loop sequence: remove the real worker, then chat. Nothing loops: 503
    _, listing, _ = await call("GET", gw + "/workers", **_admin())
    [worker] = listing["workers"]
    assert (await call("DELETE", f"{gw}/workers/{worker['id']}", **_admin()))[0] == 202
    status, body, _ = await call("POST", gw + "/v1/chat/completions", CHAT)
    assert status in (404, 503), body


async def test_wrong_scheme_for_the_mode_is_400(servers):
    stub = servers.stub("a")
    gw = servers.gateway(worker_urls=[stub.url])
    status, body, _ = await call("POST", gw + "/workers", {"url": "grpc://127.0.0.1:50051"})
    assert status == 400 and "http://" in body["error"]["message"]


async def test_a_worker_path_is_a_prefix_never_a_query(servers):
    rec = Recorder()
    thread = ServerThread(rec)
    servers.threads.append(thread)
    base = thread.start()
    stub = servers.stub("a")
    gw = servers.gateway(worker_urls=[stub.url], health_check_interval_secs=3600)
    status, _, _ = await call("POST", gw + "/workers", {"url": base + "/prefix/", "model_id": "m2"})
    assert status == 202
    rec.paths.clear()
    await call("POST", gw + "/v1/chat/completions", {**CHAT, "model": "m2"})
    assert "/prefix/v1/chat/completions" in rec.paths  # (health probes may come in between)
    assert all(p.startswith("/prefix/") for p in rec.paths)


async def test_a_worker_redirect_is_not_followed(servers, internal):
    redirector = Recorder(status=307, location=internal.url + "/v1/chat/completions")
    thread = ServerThread(redirector)
    servers.threads.append(thread)
    url = thread.start()
    gw = servers.gateway(worker_urls=[url], health_check_interval_secs=3600)
    internal.paths.clear()  # ServerThread's start-up poll (urllib) follows redirects; the gateway must not
    status, _, headers = await call("POST", gw + "/v1/chat/completions", {**CHAT, "model": "internal-secret-model"})
    assert status == 307 and "/v1/chat/completions" in redirector.paths
    assert internal.paths == []  # the gateway did not go there itself


async def test_credentials_in_worker_urls_are_redacted(servers, caplog):
    caplog.set_level(logging.DEBUG)
    stub = servers.stub("a")
    port = stub.url.rsplit(":", 1)[1]
    secret_url = f"http://admin:hunter2@127.0.0.1:{port}"
    gw = servers.gateway(worker_urls=[stub.url], control_plane_api_keys=CONTROL_KEYS)
    status, added, _ = await call("POST", gw + "/workers", {"url": secret_url, "model_id": "m"}, **_admin())
    assert status == 202 and added["worker"]["url"] == f"http://***@127.0.0.1:{port}"
    status, dup, _ = await call("POST", gw + "/workers", {"url": secret_url, "model_id": "m"}, **_admin())
    assert status == 409
    answers = [added, dup]
    for path in ("/workers", f"/workers/{added['worker_id']}", "/get_loads"):
        answers.append((await call("GET", gw + path, **_admin()))[1])
    answers.append((await call("POST", gw + "/flush_cache", {}, **_admin()))[1])
    answers.append((await call("DELETE", f"{gw}/workers/{added['worker_id']}", **_admin()))[1])
    assert "hunter2" not in repr(answers) and "***@" in repr(answers)
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "***@127.0.0.1" in logged and "hunter2" not in logged


async def test_models_never_reflects_a_workers_body(servers):
    rec = Recorder()
    thread = ServerThread(rec)
    servers.threads.append(thread)
    url = thread.start()
    gw = servers.gateway(worker_urls=[url], health_check_interval_secs=3600)
    status, body, _ = await call("GET", gw + "/v1/models")
    assert status == 200 and "secret" not in body
    assert [m["id"] for m in body["data"]] == ["internal-secret-model"]


async def test_a_failing_worker_url_is_not_reflected_to_the_client(servers, unused_port):
    stub = servers.stub("a")
    secret = f"http://admin:hunter2@127.0.0.1:{unused_port}"
    gw = servers.gateway(worker_urls=[stub.url], health_check_interval_secs=3600, disable_retries=True)
    await call("POST", gw + "/workers", {"url": secret, "model_id": "m"})
    status, body, _ = await call("POST", gw + "/v1/chat/completions", {**CHAT, "model": "m"})
    assert status >= 500 and "127.0.0.1" not in repr(body) and "hunter2" not in repr(body)
