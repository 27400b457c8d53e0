"""hypercorn serves the gateway over HTTP/2 cleartext (h2c, prior knowledge)."""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

import h2.config
import h2.connection
import h2.events
import orjson

CHAT = {"model": "stub-model", "messages": [{"role": "user", "content": "hello"}]}


def h2_post(url: str, path: str, body: bytes, timeout: float = 10.0) -> tuple[int, bytes]:
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=timeout)
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    stream = conn.get_next_available_stream_id()
    conn.send_headers(stream, [(":method", "POST"), (":path", path), (":scheme", "http"),
                               (":authority", parts.netloc), ("content-type", "application/json"),
                               ("content-length", str(len(body)))])
    conn.send_data(stream, body, end_stream=True)
    sock.sendall(conn.data_to_send())
    status, data, done = 0, b"", False
    try:
        while not done:
            chunk = sock.recv(65536)
            if not chunk:
                break
            for event in conn.receive_data(chunk):
                if isinstance(event, h2.events.ResponseReceived):
                    status = int(dict(event.headers)[b":status"])
                elif isinstance(event, h2.events.DataReceived):
                    data += event.data
                    conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                elif isinstance(event, h2.events.StreamEnded):
                    done = True
            sock.sendall(conn.data_to_send())
    finally:
        sock.close()
    return status, data


def test_hypercorn_h2c(make_stub, make_gateway):
    a = make_stub("a")
    gw = make_gateway(server="hypercorn", worker_urls=[a.url])
    status, data = h2_post(gw, "/v1/chat/completions", orjson.dumps(CHAT))
    assert status == 200 and orjson.loads(data)["worker"] == "a"
    status, data = h2_post(gw, "/v1/chat/completions", orjson.dumps({**CHAT, "model": "nope"}))
    assert status == 404 and orjson.loads(data)["error"]["type"] == "model_not_found"
    payload = {**CHAT, "stream": True, "stub": {"stream": 3}}
    status, data = h2_post(gw, "/v1/chat/completions", orjson.dumps(payload))
    assert status == 200 and data == b"".join(a.events(3))
