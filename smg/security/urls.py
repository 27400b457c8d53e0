"""Worker URLs: what the control plane may point the gateway at, and how URLs are shown.

- :func:`redact` hides the user-info part (``http://user:pw@host`` -> ``http://***@host``)
  wherever a worker URL is answered; :func:`redact_logs` does it for every log record of
  the process, whichever module logs the URL.
- :func:`parse_worker_url` refuses what is not a base URL for the gateway's mode: the
  wrong scheme, a query or fragment (the request path would land inside it), control
  characters or spaces, a bad port.
- :class:`WorkerAllowList` decides whether a URL added at run time may be used: its host
  must be on ``--worker-allow-hosts`` (names, IPs, CIDRs) or, by default, be one of the
  start-up workers' hosts (loopback as a whole only when one of them is on loopback); and
  it must never be the gateway itself (the self-loop).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import re
import socket
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass

from smg.errors import BadRequest
from smg.security.errors import Forbidden

__all__ = ["WorkerAllowList", "WorkerUrl", "is_gateway", "parse_worker_url", "redact", "redact_logs", "redact_text"]

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
LOOPBACK: tuple[IPNetwork, ...] = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))
HTTP_SCHEMES = ("http", "https")
GRPC_SCHEMES = ("grpc",)
_DEFAULT_PORTS = {"http": 80, "https": 443, "grpc": 80}
_BAD_CHARS = re.compile(r"[\x00-\x20\x7f\\]")
_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]*@")


def redact(url: str) -> str:
    """``url`` with any user-info replaced by ``***``."""
    return _USERINFO.sub(r"\g<scheme>***@", url)


def redact_text(text: str) -> str:
    """Every URL's user-info inside ``text`` replaced (for error messages and logs)."""
    return _USERINFO.sub(r"\g<scheme>***@", text)


_redacting = False


def redact_logs() -> None:
    """From now on, every log record whose message or string arguments hold an ``@`` is
    formatted at once with URL credentials redacted (idempotent; process-wide)."""
    global _redacting
    if _redacting:
        return
    _redacting = True
    make = logging.getLogRecordFactory()

    def factory(*args: object, **kwargs: object) -> logging.LogRecord:
        record = make(*args, **kwargs)
        values = record.args if isinstance(record.args, tuple) else ()
        if (isinstance(record.msg, str) and "@" in record.msg) or any(isinstance(v, str) and "@" in v for v in values):
            with contextlib.suppress(Exception):  # a record that cannot be formatted stays as it is
                message = record.getMessage()
                if _USERINFO.search(message):
                    record.msg, record.args = redact_text(message), None
        return record

    logging.setLogRecordFactory(factory)


@dataclass(frozen=True, slots=True)
class WorkerUrl:
    url: str  # as it will be used: no trailing slash
    scheme: str
    host: str  # lower-case, IPv6 without brackets
    port: int


def parse_worker_url(url: object, *, schemes: tuple[str, ...]) -> WorkerUrl:
    """Validate ``url`` as a worker base URL with one of ``schemes`` (400 otherwise)."""
    if not isinstance(url, str) or not url:
        raise BadRequest("'url' must be a string", param="url")
    shown = redact(url)
    if _BAD_CHARS.search(url):
        raise BadRequest(f"worker URL {shown!r} holds spaces, backslashes or control characters", param="url")
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "grpcs":
        raise BadRequest("grpcs:// (TLS to gRPC workers) is not supported yet: the gRPC clients would "
                         "talk plaintext", param="url")
    if scheme not in schemes:
        wanted = " or ".join(s + "://" for s in schemes)
        raise BadRequest(f"worker URL must start with {wanted} in this gateway's mode", param="url")
    if "?" in url or "#" in url:
        raise BadRequest("a worker URL may not have a query or fragment", param="url")
    try:
        port = parts.port
    except ValueError:
        raise BadRequest(f"worker URL {shown!r} has a bad port", param="url") from None
    host = (parts.hostname or "").lower()
    if not host:
        raise BadRequest(f"worker URL {shown!r} names no host", param="url")
    if scheme == "grpc" and parts.path not in ("", "/"):
        raise BadRequest("a grpc:// worker URL may not have a path", param="url")
    return WorkerUrl(url.rstrip("/"), scheme, host, port or _DEFAULT_PORTS[scheme])


def _network(entry: str) -> IPNetwork | None:
    try:
        return ipaddress.ip_network(entry.strip("[]"), strict=False)
    except ValueError:
        return None


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


class WorkerAllowList:
    """Names and networks run-time workers may be on, and the gateway's own addresses."""

    def __init__(self, allow: Iterable[str], startup_urls: Iterable[str]) -> None:
        entries = [a.strip().lower() for a in allow if a.strip()]
        self.explicit = bool(entries)
        self.anywhere = "*" in entries  # any host (never the gateway itself)
        if not entries:
            entries = [urllib.parse.urlsplit(u).hostname or "" for u in startup_urls]
            entries = [e for e in entries if e]
        self.names: set[str] = set()
        self.networks: list[IPNetwork] = []
        for entry in entries:
            net = _network(entry)
            if net is not None:
                self.networks.append(net)
            else:
                self.names.add(entry.rstrip("."))
        if not self.explicit and (self.names & {"localhost"} or any(_on_loopback(n) for n in self.networks)):
            self.names.add("localhost")
            self.networks.extend(LOOPBACK)

    def describe(self) -> str:
        return ", ".join([*sorted(self.names), *map(str, self.networks)]) or "nothing"

    async def check(self, worker: WorkerUrl, listening: Iterable[tuple[str, int]]) -> None:
        """Raise :class:`Forbidden` unless ``worker`` may be added."""
        addresses = await _resolve(worker.host, worker.port)
        if _is_self(addresses, worker.port, listening):
            raise Forbidden(SELF_LOOP, param="url")
        if self.anywhere or worker.host.rstrip(".") in self.names:
            return
        if addresses and self.networks and all(any(a in n for n in self.networks) for a in addresses):
            return
        hint = "" if self.explicit else " (default: the start-up workers' hosts; widen with --worker-allow-hosts)"
        raise Forbidden(f"worker host {worker.host!r} is not on the worker allow-list{hint}", param="url")


SELF_LOOP = "a worker URL may not point at this gateway"


async def is_gateway(worker: WorkerUrl, listening: Iterable[tuple[str, int]]) -> bool:
    """Whether ``worker`` reaches one of the gateway's listening addresses (its host is
    resolved only when its port is one the gateway listens on)."""
    listening = list(listening)
    if all(port != worker.port for _, port in listening):
        return False
    return _is_self(await _resolve(worker.host, worker.port), worker.port, listening)


def _on_loopback(net: IPNetwork) -> bool:
    return any(net.subnet_of(lo) for lo in LOOPBACK if lo.version == net.version)  # type: ignore[arg-type]


async def _resolve(host: str, port: int) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    literal = _ip(host)
    if literal is not None:
        return [literal]
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        return []
    out = []
    for info in infos:
        ip = _ip(str(info[4][0]).split("%")[0])
        if ip is not None:
            out.append(ip)
    return out


def _is_self(addresses: list, port: int, listening: Iterable[tuple[str, int]]) -> bool:
    """True when ``addresses``:``port`` reaches one of the gateway's listening sockets."""
    for host, listen_port in listening:
        if listen_port != port:
            continue
        listen_ip = _ip(host.strip("[]"))
        for addr in addresses:
            if listen_ip is None or listen_ip == addr:
                return True
            if listen_ip.is_unspecified and (addr.is_loopback or addr.is_unspecified or _is_local(addr)):
                return True
    return False


def _is_local(addr: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Whether ``addr`` is one of this machine's addresses (only those can be bound)."""
    family = socket.AF_INET6 if addr.version == 6 else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        with contextlib.suppress(OSError):
            probe.bind((str(addr), 0))
            return True
    return False
