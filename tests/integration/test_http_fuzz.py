"""Socket-level malformed HTTP against a real gateway (smg's HTTP/1.1 server, Front, the
routes) in proxy and gRPC mode: request lines, headers, framing (Content-Length,
chunked, both, neither), Expect and bodies, mangled by hypothesis and sent raw, some cut
short by a client that leaves. Each gets
an answer or a close within a few seconds (no hang), never a 5xx from the gateway, and
nothing is logged at ERROR (no traceback); in proxy mode also with admission control on."""

from __future__ import annotations

import logging
import re
import socket
import time
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from smg.app import create_app
from smg.config import GatewayConfig
from smg.serve import ServerThread

from test_worker_faults import MODEL, RawWorker, good
from worker_threads import GrpcWorkerThread

PATHS = ["/v1/chat/completions", "/v1/completions", "/generate", "/v1/responses", "/v1/messages", "/v1/embeddings",
         "/v1/tokenize", "/v1/detokenize", "/health", "/readiness", "/liveness", "/v1/models", "/metrics",
         "/parse/reasoning", "/v1/chat/completions?x=%ff", "/%00", "/v1/../v1/models", "*", "/" + "a" * 5000]
METHODS = ["GET", "POST", "POST", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "CONNECT", "G\x00T", "POSTX"]
VERSIONS = ["HTTP/1.1", "HTTP/1.1", "HTTP/1.0", "HTTP/2.0", "HTTP/9.9", "HTTP/1.1x", "HTTX/1.1", ""]
HEADER_NAMES = ["content-type", "content-length", "transfer-encoding", "expect", "connection", "host",
                "x-request-id", "x-smg-routing-key", "authorization", "x-smg-target-worker", "te", "upgrade",
                "bad name", "x\x01y", ""]
JSON_BODIES = [b'{"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}',
               b'{"model": "m", "prompt": "hi", "max_tokens": 2, "stream": true}', b'{"text": "hi"}', b"{", b"[]",
               b"null", b'{"model": 1}', b'{"messages": "x"}', b"\xff\xfe", b""]
STATUS = re.compile(rb"HTTP/1\.[01] (\d{3})")

text = st.text(st.characters(min_codepoint=0, max_codepoint=0x2FF), max_size=40)
printable = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40)
token = st.text(st.sampled_from("abcdefghijklmnopqrstuvwxyz0123456789-_"), min_size=1, max_size=20)


def _mostly(draw, usual, rare):
    """``usual`` seven times in eight, else ``rare`` (most requests must get past the
    parser to reach Front and the routes)."""
    return draw(rare) if draw(st.integers(0, 7)) == 0 else draw(usual)


@st.composite
def requests(draw) -> bytes:
    method = _mostly(draw, st.sampled_from(METHODS[:4]), st.sampled_from(METHODS) | text)
    path = _mostly(draw, st.sampled_from(PATHS[:14]), st.sampled_from(PATHS) | text)
    version = _mostly(draw, st.just("HTTP/1.1"), st.sampled_from(VERSIONS))
    body = draw(st.sampled_from(JSON_BODIES) | st.binary(max_size=300))
    headers: list[tuple[str, str]] = [("host", "x")]
    framing = _mostly(draw, st.sampled_from(["length", "chunked", "none"]),
                      st.sampled_from(["wrong_length", "bad_chunked", "both", "huge_length", "negative_length"]))
    payload = body
    if framing == "length":
        headers.append(("content-length", str(len(body))))
    elif framing == "wrong_length":
        headers.append(("content-length", str(max(0, len(body) + draw(st.integers(-5, 5))))))
    elif framing in ("chunked", "both"):
        headers.append(("transfer-encoding", "chunked"))
        payload = (b"%x\r\n%s\r\n" % (len(body), body) if body else b"") + b"0\r\n\r\n"
        if framing == "both":
            headers.append(("content-length", str(len(payload))))
    elif framing == "bad_chunked":
        headers.append(("transfer-encoding", draw(st.sampled_from(["chunked", "gzip, chunked", "chunked, gzip",
                                                                   "identity", "xchunked"]))))
        payload = draw(st.sampled_from([b"zz\r\n", b"5\r\nab\r\n0\r\n\r\n", b"ffffffffffffffffff\r\n", b"0\r\n\r\n"]))
    elif framing == "huge_length":
        headers.append(("content-length", "99999999999999999999999"))
    elif framing == "negative_length":
        headers.append(("content-length", "-1"))
    headers += draw(st.lists(st.tuples(st.sampled_from(HEADER_NAMES[:12]) | token, printable), max_size=3))
    if draw(st.integers(0, 7)) == 0:
        headers.append(draw(st.tuples(st.sampled_from(HEADER_NAMES) | text, text)))
    if draw(st.booleans()):
        headers.append(("content-type", "application/json"))
    if draw(st.integers(0, 9)) == 0:
        headers.append(("expect", "100-continue"))
    head = f"{method} {path} {version}".rstrip() + "\r\n" + "".join(f"{n}: {v}\r\n" for n, v in headers) + "\r\n"
    data = head.encode("utf-8", "surrogatepass") + payload
    if draw(st.integers(0, 7)) == 0:  # the client goes away mid-request (a half-close after the cut)
        return Cut(data[:draw(st.integers(0, len(data)))])
    return data


class Cut(bytes):
    """Request bytes after which the client shuts its side of the connection."""


def _complete(buf: bytes) -> bool:
    """A whole response (after any 100 Continue) is in ``buf``."""
    while buf.startswith(b"HTTP/1.1 100"):
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            return False
        buf = buf[end + 4:]
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return False
    head, body = buf[:end].lower(), buf[end + 4:]
    length = re.search(rb"\r\ncontent-length: *(\d+)", head)
    if length:
        return len(body) >= int(length.group(1))
    if b"transfer-encoding: chunked" in head:
        return body.endswith(b"0\r\n\r\n")
    return False  # read to the close


def exchange(url: str, data: bytes, timeout: float = 8.0) -> bytes:
    host, port = url.removeprefix("http://").split(":")
    deadline = time.monotonic() + timeout
    buf = b""
    with socket.create_connection((host, int(port)), timeout=timeout) as s:
        try:
            s.sendall(data)
            if isinstance(data, Cut):
                s.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass  # refused before reading it all: what it answered is still to be read
        while not _complete(buf):
            left = deadline - time.monotonic()
            assert left > 0, f"no answer and no close within {timeout} s to {data[:200]!r}: {buf[:200]!r}"
            s.settimeout(left)
            try:
                chunk = s.recv(65536)
            except TimeoutError:
                continue
            except ConnectionResetError:
                break
            if not chunk:
                break
            buf += chunk
    return buf


class Errors(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture(scope="module")
def errors() -> Iterator[Errors]:
    handler = Errors()
    logging.getLogger().addHandler(handler)
    yield handler
    logging.getLogger().removeHandler(handler)


@pytest.fixture(scope="module", params=["proxy", "grpc", "proxy+admission"])
def gateway(request) -> Iterator[str]:
    if request.param != "grpc":
        worker = RawWorker(good)
    else:
        worker = GrpcWorkerThread(model=MODEL, tokenizer="deepseek")
        worker.start()
    config = {"worker_urls": [worker.url], "policy": "round_robin", "disable_load_monitoring": True,
              "disable_health_check": True}
    if request.param == "proxy+admission":  # the body read before admission, the queue
        config.update(max_concurrent_requests=2, queue_size=4, tenant_rate_limit_tokens_per_second=1000)
    gw = ServerThread(create_app(GatewayConfig.from_mapping(config)), body_read_timeout=0.5)
    gw.start()
    yield gw.url
    gw.stop()
    worker.stop()


@settings(max_examples=200, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=requests())
def test_malformed_http_is_never_a_5xx_a_hang_or_a_traceback(gateway, errors, data):
    answer = exchange(gateway, data)
    statuses = [int(code) for code in STATUS.findall(answer[:4096])]
    assert all(code < 500 for code in statuses), (data[:300], answer[:500])
    assert not errors.records, [(r.getMessage(), r.exc_info) for r in errors.records][:3]


def test_the_fuzzer_reaches_the_routes(gateway):
    """The requests are not all refused at the door: a well-formed one is answered 200."""
    body = JSON_BODIES[0]
    answer = exchange(gateway, b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                               b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
    assert answer.startswith(b"HTTP/1.1 200 "), answer[:300]
