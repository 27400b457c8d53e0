"""Pooled keep-alive HTTP to workers: one :class:`UpstreamClient` per app.

Proxied bodies go out as the bytes the client sent and come back as the worker wrote
them (no decompression), so what the worker wrote is what the client reads. The wire
protocol (one ``asyncio.Protocol`` per keep-alive connection, httptools parsing) is in
:mod:`smg.clients.http1`.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Coroutine, Iterable, Mapping
from typing import Any

import orjson

from smg.clients.http1 import Deadlines, Http1Pool, UpstreamConnectionError, UpstreamResponse

__all__ = [
    "HOP_BY_HOP",
    "UpstreamClient",
    "UpstreamConnectionError",
    "UpstreamResponse",
    "forward_headers",
    "parse_load_report",
    "response_headers",
]

# Headers that describe one connection, not the message (RFC 9110 7.6.1), plus the ones
# the gateway recomputes (and ``expect``: the gateway already answered it).
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
        "expect",
    }
)
_HOP_BY_HOP_BYTES = frozenset(h.encode() for h in HOP_BY_HOP)
_NO_HEADERS: Mapping[str, str] = {}
_JSON_HEADERS: Mapping[str, str] = {"content-type": "application/json"}


class UpstreamClient:
    """Keep-alive connection pools, one per worker origin; closed on app shutdown.

    ``request_timeout`` bounds a whole exchange (until the last body byte), and
    ``connect_timeout`` a new connection. Failures raise :class:`UpstreamConnectionError`
    (an ``OSError``) or ``asyncio.TimeoutError``."""

    def __init__(self, *, request_timeout: float, connect_timeout: float, keepalive_timeout: float = 50.0,
                 ssl_context: ssl.SSLContext | None = None, first_byte_timeout: float = 0.0,
                 idle_timeout: float = 0.0) -> None:
        self.request_timeout = request_timeout
        self.first_byte_timeout = first_byte_timeout  # proxied requests: the head within this
        self.idle_timeout = idle_timeout  # proxied requests: the longest silence mid-body
        self.ssl_context = ssl_context  # for https:// workers (CA bundle, client cert); None: system CAs
        self.connect_timeout = connect_timeout
        self.keepalive_timeout = keepalive_timeout
        self._pools: dict[str, Http1Pool] = {}
        self._deadlines = Deadlines()

    async def close(self) -> None:
        pools, self._pools = self._pools, {}
        for pool in pools.values():
            pool.close()
        self._deadlines.close()

    def send(self, url: str, body: bytes, headers: Mapping[str, str]) -> Coroutine[Any, Any, UpstreamResponse]:
        """POST ``body`` as is; await it for the response, then read it (or close it to give up).
        The first-byte and between-chunks timeouts apply (TimeoutError past either)."""
        return self.request("POST", url, body, headers, first_byte=self.first_byte_timeout, idle=self.idle_timeout)

    def request(
        self,
        method: str,
        url: str,
        body: bytes = b"",
        headers: Mapping[str, str] = _NO_HEADERS,
        *,
        timeout: float | None = None,
        first_byte: float = 0.0,
        idle: float = 0.0,
    ) -> Coroutine[Any, Any, UpstreamResponse]:
        """One request, to await: the response once its headers are in. ``headers`` are the
        message's own (no Host, Content-Length or hop-by-hop ones: see :func:`forward_headers`).
        Plain methods handing back the pool's coroutine: one coroutine per request, not three."""
        cut = url.find("/", url.find("//") + 2)
        origin, path = (url, "/") if cut < 0 else (url[:cut], url[cut:])
        pool = self._pools.get(origin)
        if pool is None:
            pool = self._pools[origin] = Http1Pool(origin, keepalive=self.keepalive_timeout, deadlines=self._deadlines,
                                                   ssl_context=self.ssl_context)
        head = request_head(method, path, pool.host_header, headers, body)
        deadline = asyncio.get_running_loop().time() + (self.request_timeout if timeout is None else timeout)
        return pool.send(head, body, deadline, self.connect_timeout, first_byte, idle)

    async def probe(self, url: str, timeout: float) -> bool:
        """GET ``url``: True for a 2xx answer within ``timeout``."""
        try:
            async with await self.request("GET", url, timeout=timeout) as resp:
                await resp.read()
                return 200 <= resp.status < 300
        except (asyncio.TimeoutError, OSError, ValueError):
            return False

    async def get_json(self, url: str, timeout: float) -> Any | None:
        """GET ``url`` and decode JSON; None on any failure."""
        try:
            async with await self.request("GET", url, timeout=timeout) as resp:
                data = await resp.read()
                return orjson.loads(data) if resp.status == 200 else None
        except (asyncio.TimeoutError, OSError, ValueError):  # orjson.JSONDecodeError is a ValueError
            return None

    async def post_json(self, url: str, payload: Any, timeout: float) -> tuple[int, Any]:
        """POST JSON; returns (status, decoded body or text); status 0 when unreachable."""
        try:
            async with await self.request("POST", url, orjson.dumps(payload), _JSON_HEADERS, timeout=timeout) as resp:
                raw = await resp.read()
        except (asyncio.TimeoutError, OSError, ValueError) as exc:
            return 0, str(exc) or type(exc).__name__
        try:
            return resp.status, orjson.loads(raw)
        except orjson.JSONDecodeError:
            return resp.status, raw.decode(errors="replace")


def request_head(method: str, path: str, host: str, headers: Mapping[str, str], body: bytes) -> bytes:
    """The request line and headers of one HTTP/1.1 request (Content-Length from ``body``;
    none for a GET without one). A CR or LF anywhere in them is a ValueError."""
    fields = "".join([f"{name}: {value}\r\n" for name, value in headers.items()])
    lines = len(headers) + 3
    if body or method != "GET":
        head = f"{method} {path} HTTP/1.1\r\nHost: {host}\r\n{fields}Content-Length: {len(body)}\r\n\r\n"
        lines += 1
    else:
        head = f"{method} {path} HTTP/1.1\r\nHost: {host}\r\n{fields}\r\n"
    if head.count("\n") != lines or head.count("\r") != lines:
        raise ValueError(f"CR or LF inside a request line or header: {head!r}")
    return head.encode("latin-1")


def forward_headers(raw: Iterable[tuple[bytes, bytes]]) -> dict[str, str]:
    """Request headers to send upstream: all but hop-by-hop ones (names lower-case)."""
    out = {}
    for name, value in raw:
        if name not in _HOP_BY_HOP_BYTES:
            out[name.decode("latin-1")] = value.decode("latin-1")
    return out


def response_headers(raw: Iterable[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """Worker response headers to pass to the client (raw ASGI form, names lower-case)."""
    out = []
    for name, value in raw:
        name = name.lower()
        if name not in _HOP_BY_HOP_BYTES:
            out.append((name, value))
    return out


def parse_load_report(data: Any) -> dict[str, float] | None:
    """Fields of a ``LoadReport`` from a worker's ``/v1/loads`` JSON (SGLang shape:
    ``{"loads": [SchedulerLoad, ...], "aggregate": {...}}``); None if unrecognised."""
    if not isinstance(data, dict):
        return None
    loads = data.get("loads")
    if isinstance(loads, list) and loads and all(isinstance(x, dict) for x in loads):
        n = len(loads)

        def total(key: str) -> float:
            return sum(float(x.get(key) or 0) for x in loads)

        return {
            "running": int(total("num_running_reqs")),
            "waiting": int(total("num_waiting_reqs")),
            "token_usage": total("token_usage") / n,
            "waiting_uncached_tokens": int(total("num_waiting_uncached_tokens")),
            "gen_throughput": total("gen_throughput"),
        }
    agg = data.get("aggregate")
    if isinstance(agg, dict):
        return {
            "running": int(agg.get("total_running_reqs") or 0),
            "waiting": int(agg.get("total_waiting_reqs") or 0),
            "token_usage": float(agg.get("avg_token_usage") or 0.0),
            "waiting_uncached_tokens": 0,
            "gen_throughput": float(agg.get("avg_throughput") or 0.0),
        }
    return None
