"""History outlives the gateway and is shared by gateways: on a persistent backend a new
gateway on the same store continues a stored chain and a conversation, a background
response the old one was running when it stopped is stored as failed (not left in
progress), and a background response cancelled through another gateway on the same store
stops on its worker."""

from __future__ import annotations

import json

import pytest

from _responses_lib import BACKENDS, LONG_TOKENS, SCRIPT, backend_settings, gateway, start_worker

try:  # the private PostgreSQL and Redis servers of the storage tests
    from tests.storage_servers import postgres_server, redis_server  # noqa: F401
except ImportError:
    pass

PERSISTENT = [b for b in BACKENDS if b != "memory"]


@pytest.fixture(scope="module")
def worker(tmp_path_factory):
    path = tmp_path_factory.mktemp("restart") / "script.json"
    path.write_text(json.dumps(SCRIPT), encoding="utf-8")
    w, url = start_worker("grpc", str(path))
    yield w, url
    w.stop()


@pytest.mark.skipif(not PERSISTENT, reason="no persistent history backend is built")
@pytest.mark.parametrize("backend", PERSISTENT)
def test_a_new_gateway_sees_the_history(worker, backend, request, tmp_path) -> None:
    w, url = worker
    settings, cleanup = backend_settings(backend, request, tmp_path)
    try:
        server, client = gateway(url, settings)
        try:
            first = client.responses.create(input="My name is Ada.")
            conv = client.conversations.create(items=[{"type": "message", "role": "user", "content": "My name is Ada."}])
            slow = client.responses.create(input="long story", background=True)
            assert w.wait_for(lambda engine: engine.loads()["num_total_reqs"] > 0)
        finally:
            server.stop()
        server, client = gateway(url, settings)
        try:
            assert client.responses.retrieve(first.id).output_text == first.output_text
            again = client.responses.create(input="What is my name?", previous_response_id=first.id)
            assert again.output_text == "Your name is Ada."
            turn = client.responses.create(input="What is my name?", conversation=conv.id)
            assert turn.output_text == "Your name is Ada."
            assert len(client.conversations.items.list(conv.id).data) == 3
            stopped = client.responses.retrieve(slow.id)
            assert stopped.status == "failed" and "stopped" in stopped.error.message
        finally:
            server.stop()
    finally:
        cleanup()


@pytest.mark.skipif(not PERSISTENT, reason="no persistent history backend is built")
@pytest.mark.parametrize("backend", PERSISTENT)
def test_a_cancel_through_another_gateway_stops_the_run(worker, backend, request, tmp_path) -> None:
    w, url = worker
    settings, cleanup = backend_settings(backend, request, tmp_path)
    one, a = gateway(url, settings)
    two, b = gateway(url, settings)
    try:
        assert w.wait_for(lambda engine: engine.loads()["num_total_reqs"] == 0, timeout=30)  # nothing left over
        generated = w.engine._generated_tokens
        slow = a.responses.create(input="long story", background=True)
        assert w.wait_for(lambda engine: engine.loads()["num_total_reqs"] > 0)
        assert b.responses.retrieve(slow.id).status == "in_progress"  # the other gateway sees it
        assert b.responses.cancel(slow.id).status == "cancelled"
        assert w.wait_for(lambda engine: engine.loads()["num_total_reqs"] == 0, timeout=30)
        assert w.engine._generated_tokens - generated < LONG_TOKENS, "the run went on after the cancel"
        assert a.responses.retrieve(slow.id).status == "cancelled"
    finally:
        one.stop()
        two.stop()
        cleanup()
