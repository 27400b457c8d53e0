"""gRPC mode: the response's ``id`` is the request id Front made, the same as the
``x-request-id`` header, streamed and not (made ids keep the OpenAI prefixes); a client's
own id is echoed and prefixes the body id, which stays unique on the worker."""

from __future__ import annotations

import concurrent.futures
import json
import urllib.request

import pytest
from test_grpc_mode import MODEL, _gateway

from worker_threads import GrpcWorkerThread


@pytest.fixture(scope="module")
def gw():
    workers = [GrpcWorkerThread(grpc_proto="sglang", model=MODEL, tokenizer="deepseek")]
    g = _gateway(workers)
    yield g
    g.server.stop()
    for w in workers:
        w.stop()


def _post(url: str, body: dict, headers: dict | None = None) -> tuple[str, list[dict]]:
    """The ``x-request-id`` header and the JSON body (or every SSE data event but [DONE])."""
    req = urllib.request.Request(url, data=json.dumps(body).encode(),
                                 headers={"content-type": "application/json", **(headers or {})})
    with urllib.request.urlopen(req, timeout=30) as resp:
        rid, raw = resp.headers["x-request-id"], resp.read().decode()
    if not body.get("stream"):
        return rid, [json.loads(raw)]
    events = [line[len("data: "):] for line in raw.split("\n") if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    return rid, [json.loads(e) for e in events[:-1]]


CHAT = {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4}
TEXT = {"model": MODEL, "prompt": "Hi", "max_tokens": 4}


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(("path", "body", "prefix"), [("/v1/chat/completions", CHAT, "chatcmpl-"),
                                                     ("/v1/completions", TEXT, "cmpl-")])
def test_made_id_is_the_body_id(gw, stream, path, body, prefix) -> None:
    rid, events = _post(gw.url + path, {**body, "stream": stream})
    assert rid.startswith(prefix) and len(rid) > len(prefix)
    assert events and {e["id"] for e in events} == {rid}


@pytest.mark.parametrize("stream", [False, True])
def test_client_id_is_echoed_and_prefixes_the_body_id(gw, stream) -> None:
    rid, events = _post(gw.url + "/v1/chat/completions", {**CHAT, "stream": stream},
                        {"x-request-id": f"client-chosen-{stream}"})
    assert rid == f"client-chosen-{stream}"
    ids = {e["id"] for e in events}
    assert len(ids) == 1
    (body_id,) = ids
    assert body_id.startswith(f"client-chosen-{stream}-") and len(body_id) > len(rid) + 1


def test_client_id_reused_on_concurrent_requests(gw) -> None:
    """A trace id sent on several requests at once must not collide on the worker."""
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda _: _post(gw.url + "/v1/chat/completions", {**CHAT, "max_tokens": 16},
                                                {"x-request-id": "same-trace"}), range(4)))
    assert [rid for rid, _ in answers] == ["same-trace"] * 4
    body_ids = {events[0]["id"] for _, events in answers}
    assert len(body_ids) == 4
    assert all(e[0]["choices"][0]["finish_reason"] == "length" for _, e in answers)


def test_ids_differ_between_requests(gw) -> None:
    ids = {_post(gw.url + "/v1/chat/completions", CHAT)[0] for _ in range(3)}
    assert len(ids) == 3
