"""A scripted HTTP/1.1 server on loopback for the upstream client's tests.

Each accepted connection reads requests (head plus Content-Length body) and hands each to
``handler(request, writer)``, which writes whatever bytes the test wants and returns
whether to keep the connection for another request. The server counts connections and
sets ``closed`` each time one ends (whoever closed it).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    conn: int  # which connection (0, 1, ...) carried it
    reader: asyncio.StreamReader = field(repr=False)

    async def until_client_closes(self) -> None:
        """Answer nothing more; return when the client closes the connection."""
        while await self.reader.read(65536):
            pass


Handler = Callable[[Request, asyncio.StreamWriter], Awaitable[bool]]


@dataclass
class Server:
    handler: Handler
    read_bodies: bool = True  # False: the handler answers before the body is read
    url: str = ""
    connections: int = 0
    ended: int = 0
    requests: list[Request] = field(default_factory=list)
    writers: list[asyncio.StreamWriter] = field(default_factory=list)
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    _server: asyncio.base_events.Server | None = None

    async def start(self) -> Server:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        self.drop_connections()
        await self.wait_ended(self.connections)
        await self._server.wait_closed()

    def drop_connections(self) -> None:
        """Close every open connection now, from the server side."""
        for w in self.writers:
            w.transport.abort()

    async def wait_ended(self, n: int, timeout: float = 5.0) -> None:
        """Until ``n`` connections have ended."""
        async with asyncio.timeout(timeout):
            while self.ended < n:
                self.closed.clear()
                await self.closed.wait()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = self.connections
        self.connections += 1
        self.writers.append(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                line, *fields = head[:-4].decode("latin-1").split("\r\n")
                method, path, _ = line.split(" ", 2)
                headers = {}
                for f in fields:
                    name, _, value = f.partition(":")
                    headers[name.strip().lower()] = value.strip()
                length = int(headers.get("content-length", "0")) if self.read_bodies else 0
                body = await reader.readexactly(length)
                request = Request(method, path, headers, body, conn, reader)
                self.requests.append(request)
                if not await self.handler(request, writer):
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.writers.remove(writer)
            writer.transport.abort()
            self.ended += 1
            self.closed.set()


def answer(body: bytes, *, status: int = 200, content_type: str = "application/json", extra: str = "") -> bytes:
    return (f"HTTP/1.1 {status} X\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n{extra}\r\n"
            .encode() + body)


def chunked(pieces: list[bytes], content_type: str = "text/event-stream") -> tuple[bytes, list[bytes]]:
    """The head and the chunk frames (the last one ends the body) of a chunked answer."""
    head = f"HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
    frames = [b"%x\r\n%s\r\n" % (len(p), p) for p in pieces if p] + [b"0\r\n\r\n"]
    return head, frames


async def echo(request: Request, writer: asyncio.StreamWriter) -> bool:
    """Answer with what came: method, path, connection, body length."""
    writer.write(answer(b"%s %s %d %d" % (request.method.encode(), request.path.encode(), request.conn,
                                          len(request.body))))
    await writer.drain()
    return True
