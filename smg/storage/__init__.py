"""Stored history for the Responses and Conversations APIs: one interface
(:class:`HistoryStore`) and its backends. :func:`open_store` builds the one the config
names; backends whose driver is optional are imported only when chosen."""

from __future__ import annotations

from typing import TYPE_CHECKING

from smg.storage.base import Conversation, HistoryStore, ItemPage, StorageError, StoredResponse

if TYPE_CHECKING:
    from smg.config.history import HistorySettings

__all__ = ["Conversation", "HistoryStore", "ItemPage", "StorageError", "StoredResponse", "open_store"]


def open_store(settings: HistorySettings) -> HistoryStore:
    """The backend ``settings.history_backend`` names (not started yet: await ``start()``)."""
    from smg.storage.memory import MemoryStore, NoStore

    backend = settings.history_backend
    if backend == "memory":
        return MemoryStore(settings.history_memory_max_responses, settings.history_memory_max_items,
                           settings.history_memory_retention_secs)
    if backend == "none":
        return NoStore()
    if backend == "sqlite":
        from smg.storage.sqlite import SqliteStore

        return SqliteStore.in_dir(settings.sqlite_dir())
    if backend == "postgres":
        from smg.storage.postgres import PostgresStore

        return PostgresStore(settings.postgres_db_url or "", pool_max=settings.postgres_pool_max,
                             op_timeout_secs=settings.postgres_op_timeout_secs)
    if backend == "redis":
        from smg.storage.redis import RedisStore

        return RedisStore(settings.redis_url or "", pool_max=settings.redis_pool_max,
                          retention_days=settings.redis_retention_days, op_timeout_secs=settings.redis_op_timeout_secs)
    raise ValueError(f"unknown history backend {backend!r}")
