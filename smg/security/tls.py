"""TLS on both sides: the front's certificate and key, and the client context for
``https://`` workers (extra CA certificates, a client certificate for mTLS)."""

from __future__ import annotations

import ssl
from dataclasses import dataclass

from smg.config.security import SecuritySettings

__all__ = ["ServerTls", "server_tls", "worker_ssl_context"]


@dataclass(frozen=True)
class ServerTls:
    """What a server needs to serve TLS; ``client_ca`` set: client certificates required."""

    cert_path: str
    key_path: str
    client_ca: str | None = None


def server_tls(settings: SecuritySettings) -> ServerTls | None:
    settings.validate()
    if settings.tls_cert_path is None or settings.tls_key_path is None:
        return None
    return ServerTls(settings.tls_cert_path, settings.tls_key_path)


def worker_ssl_context(settings: SecuritySettings) -> ssl.SSLContext | None:
    """The context for ``https://`` workers, or None for the default (system CAs only)."""
    settings.validate()
    if not settings.ca_cert_paths and settings.client_cert_path is None:
        return None
    ctx = ssl.create_default_context()
    for path in settings.ca_cert_paths:
        ctx.load_verify_locations(cafile=path)
    if settings.client_cert_path is not None:
        ctx.load_cert_chain(settings.client_cert_path, settings.client_key_path)
    return ctx
