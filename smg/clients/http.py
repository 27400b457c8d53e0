"""Pooled keep-alive HTTP to workers: one :class:`UpstreamClient` (one aiohttp session) per app.

Proxied bodies go out as the bytes the client sent and come back undecoded
(``auto_decompress=False``), so what the worker wrote is what the client reads.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from typing import Any

import aiohttp
import orjson

__all__ = [
    "HOP_BY_HOP",
    "UpstreamClient",
    "forward_headers",
    "parse_load_report",
    "response_headers",
]

# Headers that describe one connection, not the message (RFC 9110 7.6.1), plus the ones
# the gateway recomputes.
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
    }
)
_HOP_BY_HOP_BYTES = frozenset(h.encode() for h in HOP_BY_HOP)


class UpstreamClient:
    """One pooled aiohttp session; created in the app lifespan, closed on shutdown."""

    def __init__(self, *, request_timeout: float, connect_timeout: float, keepalive_timeout: float = 50.0) -> None:
        self.request_timeout = request_timeout
        self.connect_timeout = connect_timeout
        self.keepalive_timeout = keepalive_timeout
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(
            limit=0, keepalive_timeout=self.keepalive_timeout, ttl_dns_cache=300
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(
                total=self.request_timeout, sock_connect=self.connect_timeout
            ),
            auto_decompress=False,
            skip_auto_headers=("User-Agent", "Accept-Encoding", "Content-Type"),
            json_serialize=lambda obj: orjson.dumps(obj).decode(),
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("UpstreamClient.start() was not awaited")
        return self._session

    async def send(self, url: str, body: bytes, headers: Mapping[str, str]) -> aiohttp.ClientResponse:
        """POST ``body`` as is; the caller reads and releases (or closes) the response."""
        return await self.session.post(url, data=body, headers=headers)

    async def probe(self, url: str, timeout: float) -> bool:
        """GET ``url``: True for a 2xx answer within ``timeout``."""
        try:
            async with self.session.get(url, timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
                await resp.read()
                return 200 <= resp.status < 300
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError):
            return False

    async def get_json(self, url: str, timeout: float) -> Any | None:
        """GET ``url`` and decode JSON; None on any failure."""
        try:
            async with self.session.get(url, timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
                if resp.status != 200:
                    return None
                return orjson.loads(await resp.read())
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError, orjson.JSONDecodeError):
            return None

    async def post_json(self, url: str, payload: Any, timeout: float) -> tuple[int, Any]:
        """POST JSON; returns (status, decoded body or text); status 0 when unreachable."""
        try:
            async with self.session.post(
                url,
                data=orjson.dumps(payload),
                headers={"content-type": "application/json"},
                timeout=aiohttp.ClientTimeout(total=timeout),
            ) as resp:
                raw = await resp.read()
                try:
                    return resp.status, orjson.loads(raw)
                except orjson.JSONDecodeError:
                    return resp.status, raw.decode(errors="replace")
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            return 0, str(exc) or type(exc).__name__


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
