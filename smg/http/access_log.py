"""One log line per request at info level (logger ``smg.access``), in front of the app::

    127.0.0.1:51234 "POST /v1/chat/completions" 200 12.3 ms chatcmpl-5f0c... auth:acme

(the last field is the tenant of a ``--tenant-api-key`` key, ``-`` without one).

It wraps the app only when that logger is enabled at info level when the app is built
(``smg serve`` with ``--log-level info`` and without ``--no-access-log``), so a gateway
that does not log requests pays nothing for it. The line is written when the app returns,
after the response's last byte (streams included); a client that left early still gets a
line, with the status it was sent (or 499 when nothing was sent).
"""

from __future__ import annotations

import logging
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["AccessLog", "access_log_enabled"]

log = logging.getLogger("smg.access")

NO_RESPONSE = 499  # as nginx logs a client that left before an answer


def access_log_enabled() -> bool:
    return log.isEnabledFor(logging.INFO)


class AccessLog:
    __slots__ = ("app",)

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    def __getattr__(self, name: str) -> object:  # the wrapped app's attributes (Front.app ...)
        return getattr(self.app, name)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = NO_RESPONSE

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            client = scope.get("client")
            peer = f"{client[0]}:{client[1]}" if client else "-"
            log.info('%s "%s %s" %d %.1f ms %s %s', peer, scope["method"], scope["path"], status,
                     (time.perf_counter() - start) * 1000.0, scope.get("smg.request_id", "-"),
                     scope.get("smg.tenant") or "-")
