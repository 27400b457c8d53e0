"""Prefill/decode rendezvous across worker processes: the KV bootstrap server.

A prefill worker publishes each finished prefill under a key (the SGLang bootstrap
room, or the vLLM transfer's request id) on a ``RoomBoard`` that a tiny HTTP/1.0 server
on its bootstrap port exposes: ``GET /room/<key>?wait=<seconds>`` answers 200 with the
room's JSON as soon as it is published, or 404 when ``wait`` runs out. A decode worker
cannot see the prefill worker's memory, so it asks that server (``fetch_room``), as a
real decode engine connects to its prefill peer's bootstrap server to pull the KV.
Loopback only in tests; the address comes from the request (bootstrap host/port, or
``remote_host``/``remote_port`` in vLLM's kv_transfer_params).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
import urllib.parse
import uuid
from array import array
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from smg.engine.types import EngineError, GenerateInput

if TYPE_CHECKING:
    from smg.engine.config import WorkerConfig

__all__ = ["BootstrapServer", "PDRendezvous", "RoomBoard", "fetch_room", "DEFAULT_BOOTSTRAP_PORT"]

DEFAULT_BOOTSTRAP_PORT = 8998  # SGLang's default disaggregation bootstrap port
_MAX_ROOMS = 10_000


class RoomBoard:
    """Published prefills by key, with waiters; the oldest rooms are forgotten first."""

    def __init__(self, max_rooms: int = _MAX_ROOMS) -> None:
        self._rooms: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._waiters: dict[str, asyncio.Event] = {}
        self._max = max_rooms

    def publish(self, key: str, info: dict[str, Any]) -> None:
        self._rooms[key] = info
        if len(self._rooms) > self._max:
            self._rooms.popitem(last=False)
        ev = self._waiters.pop(key, None)
        if ev is not None:
            ev.set()

    async def wait(self, key: str, timeout: float) -> dict[str, Any] | None:
        if key in self._rooms:
            return self._rooms[key]
        ev = self._waiters.setdefault(key, asyncio.Event())
        try:
            await asyncio.wait_for(ev.wait(), timeout)
        except asyncio.TimeoutError:
            return None
        finally:
            if not ev.is_set() and self._waiters.get(key) is ev:
                del self._waiters[key]
        return self._rooms.get(key)


class BootstrapServer:
    """Serves a ``RoomBoard`` over HTTP/1.0 on ``host:port`` (port 0: any free port)."""

    def __init__(self, board: RoomBoard, host: str, port: int) -> None:
        self.board = board
        self.host = host
        self.port = port
        self._server: asyncio.base_events.Server | None = None

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._handle, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5.0)
            method, target, _ = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ", 2)
            url = urllib.parse.urlsplit(target)
            status, body = 404, {"error": "not found"}
            if method == "GET" and url.path.startswith("/room/"):
                key = urllib.parse.unquote(url.path[len("/room/") :])
                query = urllib.parse.parse_qs(url.query)
                wait = min(float(query.get("wait", ["0"])[0]), 300.0)
                info = await self.board.wait(key, wait)
                if info is not None:
                    status, body = 200, info
                else:
                    body = {"error": f"no prefill published for room {key}"}
            elif method == "GET" and url.path == "/health":
                status, body = 200, {"ok": True}
            payload = json.dumps(body).encode()
            reason = "OK" if status == 200 else "Not Found"
            writer.write(
                f"HTTP/1.0 {status} {reason}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(payload)}\r\n\r\n".encode() + payload
            )
            await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.TimeoutError, ValueError, ConnectionError):
            pass
        finally:
            writer.close()


async def fetch_room(host: str, port: int, key: str, timeout: float) -> dict[str, Any] | None:
    """Ask a prefill worker's bootstrap server for a room; None when it never appears.

    A refused connection is retried until ``timeout`` (the prefill worker may still be
    starting); the server itself holds the request until the room is published.
    """
    deadline = time.monotonic() + timeout
    path = "/room/" + urllib.parse.quote(key, safe="")
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), left)
        except (OSError, asyncio.TimeoutError):
            await asyncio.sleep(min(0.05, max(0.0, deadline - time.monotonic())))
            continue
        try:
            writer.write(f"GET {path}?wait={left:.3f} HTTP/1.0\r\nHost: {host}\r\n\r\n".encode())
            await writer.drain()
            raw = await asyncio.wait_for(reader.read(), left + 1.0)
        except (OSError, asyncio.TimeoutError):
            return None
        finally:
            writer.close()
        head, _, body = raw.partition(b"\r\n\r\n")
        if head.startswith(b"HTTP/1.0 200") or head.startswith(b"HTTP/1.1 200"):
            return json.loads(body)
        return None


def _prompt_digest(input_ids: list[int]) -> str:
    return hashlib.blake2b(array("I", input_ids).tobytes(), digest_size=16).hexdigest()


class PDRendezvous:
    """One worker's side of PD: what its role adds before and after prefill."""

    def __init__(self, config: WorkerConfig) -> None:
        self.role = config.role
        self.style = config.pd_style
        self.host = config.host
        self.timeout = config.pd_timeout_s
        self.block_size = config.kv_block_size
        self.board = RoomBoard()
        self.port: int | None = config.bootstrap_port
        if self.role == "prefill" and self.port is None:
            self.port = DEFAULT_BOOTSTRAP_PORT
        self.engine_id = f"smg-{uuid.uuid4().hex[:12]}"
        self._server: BootstrapServer | None = None

    @property
    def kv_connector(self) -> str:
        return "NixlConnector" if self.style == "vllm" and self.role != "both" else ""

    @property
    def kv_role(self) -> str:
        if self.role == "both":
            return ""  # no KV connector
        if self.style == "vllm":
            return {"prefill": "kv_producer", "decode": "kv_consumer"}.get(self.role, "kv_both")
        return self.role

    async def start(self) -> None:
        if self.role == "prefill" and self._server is None:
            self._server = BootstrapServer(self.board, self.host, self.port or 0)
            self.port = await self._server.start()

    async def close(self) -> None:
        if self._server is not None:
            await self._server.close()
            self._server = None

    def is_prefill_leg(self, inp: GenerateInput) -> bool:
        return self.role == "prefill"

    async def before_prefill(self, inp: GenerateInput) -> dict[str, Any] | None:
        """Decode leg: wait for the matching prefill (its room info); else None."""
        if self.role == "prefill" and self.style == "sglang" and inp.bootstrap_room is None:
            raise EngineError(400, "prefill worker needs disaggregated_params (bootstrap room)")
        if self.role != "decode":
            return None
        if self.style == "sglang":
            if inp.bootstrap_room is None or not inp.bootstrap_host:
                raise EngineError(
                    400, "decode worker needs disaggregated_params (bootstrap host, port, room)"
                )
            host, port = inp.bootstrap_host, inp.bootstrap_port or DEFAULT_BOOTSTRAP_PORT
            what, key = f"bootstrap room {inp.bootstrap_room}", f"room:{inp.bootstrap_room}"
        else:
            params = inp.kv_transfer_params or {}
            if not params.get("do_remote_prefill"):
                raise EngineError(
                    400, "decode worker needs kv_transfer_params from a prefill (do_remote_prefill)"
                )
            host, port = params.get("remote_host"), params.get("remote_port")
            rid = params.get("remote_request_id")
            if not host or not port or not rid:
                raise EngineError(
                    400, "kv_transfer_params lack remote_host, remote_port or remote_request_id"
                )
            what, key = f"transfer {rid}", f"xfer:{rid}"
        info = await fetch_room(str(host), int(port), key, self.timeout)
        if info is None:
            raise EngineError(
                504, f"no matching prefill for {what} at {host}:{port} within {self.timeout:g}s"
            )
        if info.get("prompt_digest") != _prompt_digest(inp.input_ids):
            raise EngineError(
                409, f"PD mismatch: the prefill of {what} was for a different prompt"
            )
        return info

    async def after_prefill(self, inp: GenerateInput, cached: int) -> dict[str, Any] | None:
        """Prefill leg: publish the room; vLLM style returns the kv_transfer_params."""
        if self.role != "prefill":
            return None
        info = {
            "prompt_tokens": len(inp.input_ids),
            "cached_tokens": cached,
            "prompt_digest": _prompt_digest(inp.input_ids),
            "engine_id": self.engine_id,
        }
        if self.style == "sglang":
            self.board.publish(f"room:{inp.bootstrap_room}", info)
            return None
        self.board.publish(f"xfer:{inp.rid}", info)
        n_blocks = -(-len(inp.input_ids) // self.block_size)
        return {
            "do_remote_prefill": True,
            "do_remote_decode": False,
            "remote_engine_id": self.engine_id,
            "remote_host": self.host,
            "remote_port": self.port,
            "remote_block_ids": list(range(n_blocks)),
            "remote_request_id": inp.rid,
            "tp_size": 1,
        }
