"""The audit log: one line per control-plane change or refusal, on logger ``smg.audit``.

A line names who (the principal's source and id, never a key), what (method and path,
and the target where there is one, with URLs redacted) and the outcome (the status)."""

from __future__ import annotations

import logging

from smg.security.keys import Principal
from smg.security.urls import redact_text

__all__ = ["audit", "log"]

log = logging.getLogger("smg.audit")


def audit(enabled: bool, principal: Principal | None, method: str, path: str, status: int,
          target: str | None = None) -> None:
    if not enabled:
        return
    who = principal.describe() if principal is not None else "anonymous"
    role = principal.role if principal is not None else "-"
    extra = f" target={redact_text(target)!r}" if target else ""
    log.info("audit who=%s role=%s action=%s %s status=%d%s", who, role, method,
             redact_text(path), status, extra)
