"""The ``history`` section of :class:`~smg.config.GatewayConfig`: where stored responses
and conversations live (the Responses and Conversations APIs). Flag names and defaults
are the Rust gateway's, except the default backend: ``sqlite`` (a file under
``--data-dir``), so that history survives a restart with zero set-up."""

from __future__ import annotations

import os
from dataclasses import dataclass

from smg.config.sections import opt

__all__ = ["BACKENDS", "HistorySettings"]

BACKENDS = ("sqlite", "memory", "none", "postgres", "redis")


def _backends() -> tuple[str, ...]:
    return BACKENDS


@dataclass(frozen=True)
class HistorySettings:
    """Stored responses and conversations (Responses and Conversations APIs)."""

    history_backend: str = opt(
        "sqlite", "where history is kept: sqlite (a file under --data-dir), memory (lost on exit), "
        "none (nothing stored), postgres (--postgres-db-url), redis (--redis-url)",
        choices=_backends, refused={"oracle": "the oracle history backend (Rust SMG) is not supported by smg yet"},
    )
    data_dir: str | None = opt(
        None, "directory of the sqlite history file, history.db (default: $XDG_DATA_HOME/smg, else "
        "~/.local/share/smg)"
    )

    def sqlite_dir(self) -> str:
        """Where the sqlite backend keeps history.db."""
        if self.data_dir:
            return os.path.expanduser(self.data_dir)
        base = os.environ.get("XDG_DATA_HOME") or os.path.expanduser("~/.local/share")
        return os.path.join(base, "smg")
    history_memory_max_responses: int = opt(10000, "memory backend: most stored responses (oldest go first)")
    history_memory_max_items: int = opt(100000, "memory backend: most conversation items (oldest go first)")
    history_memory_retention_secs: int = opt(
        86400, "memory backend: seconds a record is kept after its last use (0: until a count bound drops it)"
    )
    postgres_db_url: str | None = opt(None, "PostgreSQL URL (postgresql://user@host:port/db or a unix socket)")
    postgres_pool_max: int = opt(16, "most PostgreSQL connections")
    postgres_op_timeout_secs: float = opt(5.0, "bound on each PostgreSQL call (pool wait and statement); 503 past it")
    redis_url: str | None = opt(None, "Redis URL (redis://host:port/db or unix://path)")
    redis_pool_max: int = opt(16, "most Redis connections")
    redis_retention_days: int = opt(30, "days Redis keeps a record (-1: forever)")
    redis_op_timeout_secs: float = opt(5.0, "bound on each Redis call; 503 past it")
    responses_passthrough: bool = opt(
        False, "proxy mode: forward POST /v1/responses as is to workers that serve it (nothing stored "
        "here) instead of converting it to a chat completion"
    )
