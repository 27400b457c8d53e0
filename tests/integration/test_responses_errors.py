"""Bad input and failing storage on the Responses and Conversations routes: OpenAI-shaped
4xx errors naming the field, never a 5xx from a body; a store that fails answers 503 and
leaves nothing half-written."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from smg.app import create_app
from smg.config import GatewayConfig, HistorySettings, ModelSettings, RoutingConfig
from smg.serve import ServerThread
from smg.storage import StorageError
from smg.storage.memory import MemoryStore

from _responses_lib import SCRIPT, start_worker


class _Answer:
    def __init__(self, status: int, body: bytes) -> None:
        self.status_code = status
        self.text = body.decode("utf-8", "replace")

    def json(self):
        return json.loads(self.text)


class Client:
    """Plain HTTP to the gateway (urllib): any body, any method, the answer whatever its status."""

    def __init__(self, base: str) -> None:
        self.base = base

    def request(self, method: str, path: str, *, json=None, content: bytes | None = None,  # noqa: A002
                params: dict | None = None, headers: dict | None = None) -> _Answer:
        url = self.base + path + ("?" + urllib.parse.urlencode(params) if params else "")
        data = content
        if json is not None:
            import json as _json

            data = _json.dumps(json).encode()
        req = urllib.request.Request(url, data=data, method=method, headers={"content-type": "application/json",
                                                                            **(headers or {})})
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return _Answer(resp.status, resp.read())
        except urllib.error.HTTPError as exc:
            return _Answer(exc.code, exc.read())

    def get(self, path: str, **kw) -> _Answer:
        return self.request("GET", path, **kw)

    def post(self, path: str, **kw) -> _Answer:
        return self.request("POST", path, **kw)


class FlakyStore(MemoryStore):
    """A memory store whose methods named in ``failing`` raise StorageError."""

    def __init__(self) -> None:
        super().__init__()
        self.failing: set[str] = set()

    def __getattribute__(self, name: str):
        if name != "failing" and name in object.__getattribute__(self, "failing"):
            async def fail(*args, **kwargs):
                raise StorageError(f"{name}: the disk is gone")
            return fail
        return object.__getattribute__(self, name)


@pytest.fixture(scope="module", params=["proxy", "grpc"])
def gw(request, tmp_path_factory):
    path = tmp_path_factory.mktemp("responses-errors") / "script.json"
    path.write_text(json.dumps(SCRIPT), encoding="utf-8")
    worker, url = start_worker(request.param, str(path))
    store = FlakyStore()
    config = GatewayConfig(
        routing=RoutingConfig(worker_urls=(url,), policy="round_robin", disable_load_monitoring=True),
        model=ModelSettings(reasoning_parser="qwen3", tool_call_parser="qwen"),
        history=HistorySettings(history_backend="memory"),
    )
    server = ServerThread(create_app(config, on_ready=lambda state: setattr(state, "history", store)))
    base = server.start()
    client = Client(base)
    client.store = store
    yield client
    server.stop()
    worker.stop()


def _error(resp: _Answer, status: int, param: str | None = None) -> dict:
    assert resp.status_code == status, resp.text
    err = resp.json()["error"]
    assert set(err) >= {"message", "type", "param", "code"} and err["message"]
    if param is not None:
        assert err["param"] == param, err
    return err


BAD_BODIES = [
    ({}, "input"),
    ({"input": 5}, "input"),
    ({"input": []}, "input"),
    ({"input": [{"type": "computer_call", "id": "x"}]}, "input[0].type"),
    ({"input": [{"role": "user", "content": [{"type": "input_text", "text": 5}]}]}, "input[0].content[0].text"),
    ({"input": [{"role": "user", "content": [{"type": "input_video"}]}]}, "input[0].content[0].type"),
    ({"input": [{"role": "user", "content": [{"type": "input_image"}]}]}, "input[0].content[0].image_url"),
    ({"input": [{"role": "wizard", "content": "hi"}]}, "input[0].role"),
    ({"input": [{"type": "function_call", "call_id": "c", "name": "f"}]}, "input[0].arguments"),
    ({"input": [{"type": "function_call_output", "call_id": "c", "output": 3}]}, "input[0].output"),
    ({"input": [{"type": "reasoning", "summary": [{"text": 1}]}]}, "input[0].summary[0]"),
    ({"input": ["hi"]}, "input[0]"),
    ({"input": "hi", "tools": [{"type": "web_search"}]}, "tools[0].type"),
    ({"input": "hi", "tools": [{"type": "function"}]}, "tools[0].name"),
    ({"input": "hi", "tool_choice": "sometimes"}, "tool_choice"),
    ({"input": "hi", "tools": [{"type": "function", "name": "f"}], "tool_choice": {"type": "function", "name": "g"}},
     "tool_choice.name"),
    ({"input": "hi", "text": {"format": {"type": "json_schema", "name": "a"}}}, "text.format.schema"),
    ({"input": "hi", "text": {"format": {"type": "xml"}}}, "text.format.type"),
    ({"input": "hi", "temperature": 3}, "temperature"),
    ({"input": "hi", "top_p": "high"}, "top_p"),
    ({"input": "hi", "max_output_tokens": 0}, "max_output_tokens"),
    ({"input": "hi", "max_output_tokens": True}, "max_output_tokens"),
    ({"input": "hi", "store": "yes"}, "store"),
    ({"input": "hi", "metadata": {"k": 1}}, "metadata"),
    ({"input": "hi", "truncation": "sometimes"}, "truncation"),
    ({"input": "hi", "reasoning": {"effort": "extreme"}}, "reasoning.effort"),
    ({"input": "hi", "background": True, "store": False}, "background"),
    ({"input": "hi", "stream": 1}, "stream"),
    ({"input": "hi", "previous_response_id": "resp_x", "conversation": "conv_x"}, "conversation"),
    ({"input": "hi", "conversation": 7}, "conversation"),
]


@pytest.mark.parametrize(("body", "param"), BAD_BODIES, ids=[p for _, p in BAD_BODIES])
def test_bad_bodies_name_the_field(gw, body, param) -> None:
    err = _error(gw.post("/v1/responses", json=body), 400, param)
    assert err["type"] == "invalid_request_error"


@pytest.mark.parametrize("raw", [b"{", b"[1]", b"\"hi\"", b"null", "{\"input\": \"\xe9\"}".encode("latin-1")])
def test_bodies_that_are_not_objects(gw, raw) -> None:
    _error(gw.post("/v1/responses", content=raw, headers={"content-type": "application/json"}), 400)
    _error(gw.post("/v1/conversations", content=raw, headers={"content-type": "application/json"}), 400)


def test_unknown_ids_are_404(gw) -> None:
    _error(gw.post("/v1/responses", json={"input": "hi", "previous_response_id": "resp_nope"}), 404,
           "previous_response_id")
    _error(gw.post("/v1/responses", json={"input": "hi", "conversation": {"id": "conv_nope"}}), 404, "conversation")
    for method, path in [("GET", "/v1/responses/resp_nope"), ("DELETE", "/v1/responses/resp_nope"),
                         ("POST", "/v1/responses/resp_nope/cancel"), ("GET", "/v1/responses/resp_nope/input_items"),
                         ("GET", "/v1/conversations/conv_nope"), ("DELETE", "/v1/conversations/conv_nope"),
                         ("GET", "/v1/conversations/conv_nope/items"),
                         ("GET", "/v1/conversations/conv_nope/items/msg_x"),
                         ("DELETE", "/v1/conversations/conv_nope/items/msg_x")]:
        assert _error(gw.request(method, path), 404)["type"] == "not_found_error", (method, path)
    _error(gw.post("/v1/conversations/conv_nope", json={"metadata": {}}), 404)
    _error(gw.post("/v1/conversations/conv_nope/items", json={"items": [{"role": "user", "content": "x"}]}), 404)
    conv = gw.post("/v1/conversations", json={}).json()
    _error(gw.get(f"/v1/conversations/{conv['id']}/items/msg_nope"), 404, "item_id")


def test_conversation_and_list_bad_input(gw) -> None:
    conv = gw.post("/v1/conversations", json={"metadata": {"a": "b"}}).json()
    cid = conv["id"]
    _error(gw.post(f"/v1/conversations/{cid}/items", json={"items": []}), 400, "items")
    _error(gw.post(f"/v1/conversations/{cid}/items", json={"items": [{"type": "bogus"}]}), 400, "items[0].type")
    _error(gw.post("/v1/conversations", json={"items": [{"role": "user", "content": 3}]}), 400, "items[0].content")
    _error(gw.post(f"/v1/conversations/{cid}", json={}), 400, "metadata")
    _error(gw.get(f"/v1/conversations/{cid}/items", params={"limit": "lots"}), 400, "limit")
    _error(gw.get(f"/v1/conversations/{cid}/items", params={"limit": 0}), 400, "limit")
    _error(gw.get(f"/v1/conversations/{cid}/items", params={"order": "sideways"}), 400, "order")
    resp = gw.post("/v1/responses", json={"input": "hello"}).json()
    _error(gw.post(f"/v1/responses/{resp['id']}/cancel"), 400)  # not a background response


def test_storage_failure_is_503_and_nothing_half_written(gw) -> None:
    store: FlakyStore = gw.store
    conv = gw.post("/v1/conversations", json={"items": [{"role": "user", "content": "My name is Ada."}]}).json()
    before = len(store._responses)
    try:
        store.failing = {"append_items"}  # the response could be stored, its conversation items not
        err = _error(gw.post("/v1/responses", json={"input": "What is my name?", "conversation": conv["id"]}), 503)
        assert err["type"] == "storage_unavailable"
        assert len(store._responses) == before  # the stored response was taken back
        store.failing = {"put_response"}
        _error(gw.post("/v1/responses", json={"input": "hello"}), 503)
        events = gw.post("/v1/responses", json={"input": "hello", "stream": True}).text
        assert "event: error" in events and events.rstrip().split("\n")[-1].startswith("data: ")
        assert json.loads(events.rstrip().split("\n")[-1][6:])["type"] == "response.failed"
        store.failing = {"get_conversation", "create_conversation", "get_response"}
        _error(gw.post("/v1/conversations", json={}), 503)
        _error(gw.get(f"/v1/conversations/{conv['id']}"), 503)
        _error(gw.get("/v1/responses/resp_x"), 503)
    finally:
        store.failing = set()
    assert len(store._responses) == before
    items = gw.get(f"/v1/conversations/{conv['id']}/items").json()["data"]
    assert len(items) == 1  # only the item it was created with


def test_worker_errors_pass_through_as_client_errors(gw) -> None:
    _error(gw.post("/v1/responses", json={"input": "hi", "model": "no-such-model"}), 404)


def test_the_routes_are_data_plane_routes_behind_the_api_key() -> None:
    from smg.config import SecuritySettings

    config = GatewayConfig(history=HistorySettings(history_backend="memory"), security=SecuritySettings(api_key="k1"))
    server = ServerThread(create_app(config))
    client = Client(server.start())
    try:
        for method, path in [("POST", "/v1/responses"), ("GET", "/v1/responses/resp_x"),
                             ("POST", "/v1/conversations"), ("GET", "/v1/conversations/conv_x/items")]:
            assert client.request(method, path, json={}).status_code == 401, path
        key = {"authorization": "Bearer k1"}
        conv = client.post("/v1/conversations", json={}, headers=key)
        assert conv.status_code == 200 and conv.json()["object"] == "conversation"
        assert client.get(f"/v1/conversations/{conv.json()['id']}", headers=key).status_code == 200
    finally:
        server.stop()


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(1 << 40), 1 << 40) | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)
_PART = st.fixed_dictionaries({"type": st.sampled_from(["input_text", "input_image", "output_text", "refusal", "x"])},
                              optional={"text": _JSON, "image_url": _JSON, "detail": _JSON, "refusal": _JSON})
_ITEM = st.fixed_dictionaries(
    {"type": st.sampled_from(["message", "function_call", "function_call_output", "reasoning", "nope"])},
    optional={"role": st.sampled_from(["user", "assistant", "system", "developer", "x"]) | _JSON,
              "content": st.text(max_size=8) | st.lists(_PART, max_size=2) | _JSON, "call_id": _JSON,
              "name": _JSON, "arguments": _JSON, "output": _JSON, "summary": _JSON, "id": _JSON},
)
_FIELDS = ("model", "instructions", "previous_response_id", "conversation", "store", "stream", "background",
           "max_output_tokens", "temperature", "top_p", "tools", "tool_choice", "parallel_tool_calls", "text",
           "reasoning", "metadata", "user", "truncation")
_BODY = st.fixed_dictionaries(
    {"input": st.text(max_size=10) | st.lists(_ITEM, max_size=3) | _JSON},
    optional={k: _JSON for k in _FIELDS},
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=_BODY)
def test_no_body_gets_a_5xx(gw, body) -> None:
    body.pop("background", None)  # a queued run would outlive the example
    if body.get("stream") is True:
        body["stream"] = False
    resp = gw.post("/v1/responses", json=body)
    assert resp.status_code < 500, (body, resp.text)
    if resp.status_code >= 400:
        assert resp.json()["error"]["message"]


def test_history_backend_none_keeps_nothing() -> None:
    config = GatewayConfig(history=HistorySettings(history_backend="none"))
    server = ServerThread(create_app(config))
    client = Client(server.start())
    try:
        _error(client.post("/v1/responses", json={"input": "hi", "background": True}), 400, "background")
        conv = client.post("/v1/conversations", json={})
        assert conv.status_code == 200
        _error(client.get(f"/v1/conversations/{conv.json()['id']}"), 404)
        _error(client.post("/v1/responses", json={"input": "hi", "previous_response_id": "resp_x"}), 404)
    finally:
        server.stop()
