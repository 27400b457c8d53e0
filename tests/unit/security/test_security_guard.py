"""Who may call which route, against a real gateway and stub workers on loopback."""

from __future__ import annotations

import logging

import pytest

from tests.unit.security._authlib import ADMIN_KEY, CHAT, CONTROL_KEYS, DATA_KEY, USER_KEY, call

TENANT_KEY = "tenant-a-secret-0123456789"

# every control-plane route, with a request that would change or read state
CONTROL_ROUTES = [
    ("GET", "/workers", None),
    ("POST", "/workers", {"url": "http://127.0.0.1:1"}),
    ("GET", "/workers/some-id", None),
    ("DELETE", "/workers/some-id", None),
    ("POST", "/flush_cache", {}),
    ("GET", "/get_loads", None),
    ("POST", "/parse/reasoning", {"text": "x", "parser": "deepseek_r1"}),
    ("GET", "/no-such-route", None),
]
DATA_ROUTES = [
    ("POST", "/v1/chat/completions", CHAT),
    ("POST", "/v1/completions", {"model": "stub-model", "prompt": "hi"}),
    ("POST", "/generate", {"text": "hi"}),
    ("POST", "/v1/embeddings", {"model": "stub-model", "input": "hi"}),
    ("GET", "/v1/models", None),
]
PROBES = ["/health", "/liveness", "/readiness", "/metrics"]


@pytest.fixture
def gateway(servers):
    stub = servers.stub("a")
    url = servers.gateway(worker_urls=[stub.url], api_key=DATA_KEY, tenant_api_key=[f"team-a:{TENANT_KEY}"],
                          control_plane_api_keys=CONTROL_KEYS)
    return url, stub


def _is_openai_error(body: object, status: int) -> bool:
    return isinstance(body, dict) and set(body["error"]) == {"message", "type", "param", "code"} \
        and body["error"]["code"] == status


@pytest.mark.parametrize(("method", "path", "payload"), DATA_ROUTES)
async def test_data_routes_need_the_api_key(gateway, method, path, payload):
    url, _ = gateway
    for key in (None, "wrong-key", ADMIN_KEY):  # a control-plane key is not a data-plane key
        status, body, headers = await call(method, url + path, payload, key=key)
        assert status == 401 and _is_openai_error(body, 401), (key, body)
        assert headers["www-authenticate"].startswith("Bearer")
        assert "x-request-id" in headers
    for key in (DATA_KEY, TENANT_KEY):
        status, body, _ = await call(method, url + path, payload, key=key)
        assert status == 200, (key, body)


async def test_the_key_never_reaches_the_worker_nor_the_answer(gateway):
    url, stub = gateway
    status, body, _ = await call("POST", url + "/v1/chat/completions", CHAT, key=TENANT_KEY,
                                 headers={"x-api-key": TENANT_KEY})
    assert status == 200
    assert "authorization" not in stub.headers[-1] and "x-api-key" not in stub.headers[-1]
    assert TENANT_KEY not in repr(stub.headers[-1])
    status, body, _ = await call("POST", url + "/v1/chat/completions", CHAT, key="wrong-" + DATA_KEY)
    assert status == 401 and DATA_KEY not in repr(body)


async def test_x_api_key_counts_only_on_the_anthropic_route(gateway):
    url, _ = gateway
    status, _, _ = await call("POST", url + "/v1/chat/completions", CHAT, headers={"x-api-key": DATA_KEY})
    assert status == 401
    # /v1/messages is not built yet: past the guard it is a 404, not a 401
    status, _, _ = await call("POST", url + "/v1/messages", {}, headers={"x-api-key": DATA_KEY})
    assert status == 404
    status, _, _ = await call("POST", url + "/v1/messages", {}, headers={"x-api-key": "nope"})
    assert status == 401


@pytest.mark.parametrize(("method", "path", "payload"), CONTROL_ROUTES)
async def test_control_routes_refuse_without_an_admin_credential(gateway, method, path, payload):
    url, _ = gateway
    status, body, _ = await call(method, url + path, payload)
    assert status == 401 and _is_openai_error(body, 401)
    status, body, _ = await call(method, url + path, payload, key="wrong")
    assert status == 401
    for data_key in (DATA_KEY, TENANT_KEY):
        status, body, _ = await call(method, url + path, payload, key=data_key)
        assert status == 403 and body["error"]["type"] == "permission_error"
    status, body, _ = await call(method, url + path, payload, key=USER_KEY)
    if method == "GET":
        assert status in (200, 404), body  # a reader may read
    else:
        assert status == 403
    status, body, _ = await call(method, url + path, payload, key=ADMIN_KEY)
    assert status not in (401, 403), body


async def test_only_data_plane_keys_means_the_control_plane_is_closed(servers):
    stub = servers.stub("a")
    url = servers.gateway(worker_urls=[stub.url], api_key=DATA_KEY)
    for method, path, payload in CONTROL_ROUTES:
        for key in (None, DATA_KEY):
            status, body, _ = await call(method, url + path, payload, key=key)
            assert status == 403 and "control plane is disabled" in body["error"]["message"]
    status, _, _ = await call("POST", url + "/v1/chat/completions", CHAT, key=DATA_KEY)
    assert status == 200


async def test_no_credential_on_a_wildcard_listener_closes_the_control_plane():
    from smg.config import SecuritySettings
    from smg.security.guard import Guard

    assert Guard.build(SecuritySettings(), listen_host="127.0.0.1") is None  # nothing to guard
    guard = Guard.build(SecuritySettings(), listen_host="0.0.0.0")
    assert guard is not None and guard.control_mode == "deny" and guard.public_probes


@pytest.mark.parametrize("path", PROBES)
async def test_probes_need_a_credential_unless_made_public(servers, path):
    stub = servers.stub("a")
    closed = servers.gateway(worker_urls=[stub.url], api_key=DATA_KEY, control_plane_api_keys=CONTROL_KEYS)
    opened = servers.gateway(worker_urls=[stub.url], api_key=DATA_KEY, public_health_metrics=True)
    assert (await call("GET", closed + path))[0] == 401
    for key in (DATA_KEY, ADMIN_KEY):
        assert (await call("GET", closed + path, key=key))[0] == 200
    assert (await call("GET", opened + path))[0] == 200


async def test_control_plane_changes_are_audited_and_no_key_is_logged(servers, caplog):
    caplog.set_level(logging.DEBUG)
    a, b = servers.stub("a"), servers.stub("b")
    url = servers.gateway(worker_urls=[a.url], api_key=DATA_KEY, control_plane_api_keys=CONTROL_KEYS)
    status, added, _ = await call("POST", url + "/workers", {"url": b.url}, key=ADMIN_KEY)
    assert status == 202
    await call("DELETE", f"{url}/workers/{added['worker_id']}", key=ADMIN_KEY)
    await call("POST", url + "/workers", {"url": b.url}, key=DATA_KEY)
    await call("POST", url + "/workers", {"url": "http://10.1.2.3:1"}, key=ADMIN_KEY)  # not on the allow-list
    await call("POST", url + "/v1/chat/completions", CHAT, key=DATA_KEY)
    await call("POST", url + "/v1/chat/completions", CHAT, key="bad-" + DATA_KEY)
    audit = [r.getMessage() for r in caplog.records if r.name == "smg.audit"]
    assert any("who=control_key:ops" in m and "POST /workers status=202" in m and b.url in m for m in audit)
    assert any("who=control_key:ops" in m and "DELETE /workers/" in m for m in audit)
    assert any("who=api_key:api-key" in m and "POST /workers status=403" in m for m in audit)
    assert any("who=control_key:ops" in m and "status=403" in m and "allow-list" in m for m in audit)
    everything = "\n".join(r.getMessage() + repr(r.args) for r in caplog.records)
    for secret in (DATA_KEY, ADMIN_KEY, USER_KEY):
        assert secret not in everything


async def test_audit_logging_can_be_turned_off(servers, caplog):
    caplog.set_level(logging.INFO)
    a = servers.stub("a")
    url = servers.gateway(worker_urls=[a.url], control_plane_api_keys=CONTROL_KEYS, disable_audit_logging=True)
    assert (await call("POST", url + "/flush_cache", {}, key=ADMIN_KEY))[0] == 200
    assert (await call("POST", url + "/flush_cache", {}))[0] == 401
    assert not [r for r in caplog.records if r.name == "smg.audit"]


async def test_dot_segments_do_not_smuggle_a_control_route_past_the_guard(gateway):
    url, _ = gateway
    for path in ("/v1/../workers", "/v1/%2e%2e/workers", "/v1/..%2fworkers", "//workers"):
        status, body, _ = await call("GET", url + path, key=DATA_KEY)
        assert status in (403, 404), (path, body)  # refused, or routed nowhere: never the worker list
        assert not (isinstance(body, dict) and "workers" in body)


async def test_tenants_are_counted_in_metrics(gateway):
    url, stub = gateway
    for key in (TENANT_KEY, TENANT_KEY, DATA_KEY, "wrong"):
        await call("POST", url + "/v1/chat/completions", CHAT, key=key)
    status, text, _ = await call("GET", url + "/metrics", key=ADMIN_KEY)
    assert status == 200
    assert 'smg_auth_requests_total{route="data",caller="auth:team-a",outcome="allowed"} 2\n' in text
    assert 'smg_auth_requests_total{route="data",caller="api_key:api-key",outcome="allowed"} 1' in text
    assert 'smg_auth_requests_total{route="data",caller="-",outcome="401"} 1' in text
    assert TENANT_KEY not in text and DATA_KEY not in text


async def test_an_open_data_plane_passes_the_clients_own_authorization_on(servers):
    stub = servers.stub("a")
    url = servers.gateway(worker_urls=[stub.url], control_plane_api_keys=CONTROL_KEYS)
    status, _, _ = await call("POST", url + "/v1/chat/completions", CHAT, key="worker-side-key")
    assert status == 200 and stub.headers[-1]["authorization"] == "Bearer worker-side-key"


async def test_a_websocket_handshake_is_checked_too():
    from smg.config import SecuritySettings
    from smg.http.middleware import Front
    from smg.security.guard import Guard

    reached = []

    async def app(scope, receive, send):
        reached.append(scope["path"])

    front = Front(app, max_bytes=1024, guard=Guard.build(SecuritySettings(api_key=DATA_KEY)))
    sent = []

    async def send(message):
        sent.append(message)

    for key in (None, "wrong", DATA_KEY):
        headers = [(b"authorization", f"Bearer {key}".encode())] if key else []
        scope = {"type": "websocket", "path": "/v1/realtime", "headers": headers, "query_string": b""}
        await front(scope, None, send)
    assert sent == [{"type": "websocket.close", "code": 1008}] * 2 and reached == ["/v1/realtime"]
