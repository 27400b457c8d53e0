"""The history store: one small interface for stored responses, conversations and their
items, with backends memory, sqlite, postgres and redis (and ``none``).

Records are plain JSON-ready dicts in the OpenAI shapes (a Response object, a
Conversation object, conversation items such as ``{"type": "message", "id": "msg_...",
...}``); a backend stores them whole and never interprets them beyond the fields named
here. Every method is a coroutine and never blocks the event loop. A write either
happens whole or not at all (a failed write raises :class:`StorageError` and leaves what
was stored before untouched).
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["Conversation", "HistoryStore", "ItemPage", "StorageError", "StoredResponse"]

Json = dict[str, Any]


class StorageError(Exception):
    """The store could not do what was asked (unreachable, timed out, constraint broken).
    The API answers 503 (``storage_unavailable``); nothing half-done stays behind."""


@dataclass
class StoredResponse:
    """One response as stored: ``body`` is the full Response object (``id``, ``status``,
    ``output``, ``usage`` ...), ``input_items`` the items its request added (with ids),
    for ``GET /v1/responses/{id}/input_items`` and for rebuilding the context of a later
    ``previous_response_id``."""

    id: str
    created_at: int
    body: Json
    input_items: list[Json] = field(default_factory=list)
    previous_response_id: str | None = None
    conversation_id: str | None = None

    @property
    def status(self) -> str:
        return str(self.body.get("status", ""))


@dataclass
class Conversation:
    id: str
    created_at: int
    metadata: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> Json:
        return {"id": self.id, "object": "conversation", "created_at": self.created_at, "metadata": self.metadata}


@dataclass
class ItemPage:
    items: list[Json]
    has_more: bool


class HistoryStore(abc.ABC):
    """What the Responses and Conversations APIs need from storage."""

    name: str = "?"

    async def start(self) -> None:
        """Connect, create or migrate the schema. Called once before use."""

    async def close(self) -> None:
        """Release connections and files."""

    # -- responses ---------------------------------------------------------------------

    @abc.abstractmethod
    async def put_response(self, record: StoredResponse, *, if_status: str | None = None) -> bool:
        """Store ``record`` whole, replacing one with the same id. With ``if_status``,
        only when the stored one has that status (compare-and-set: a background response
        that was cancelled is not overwritten by its late completion); returns whether
        it was written."""

    @abc.abstractmethod
    async def get_response(self, response_id: str) -> StoredResponse | None: ...

    @abc.abstractmethod
    async def delete_response(self, response_id: str) -> bool:
        """Delete it (not the responses before or after it in a chain); False when unknown."""

    async def response_chain(self, response_id: str, limit: int = 1000) -> list[StoredResponse] | None:
        """``response_id`` and the responses before it (``previous_response_id``), oldest
        first; None when ``response_id`` is unknown. A chain broken by a deleted response
        ends there. Backends may do this in one round trip; this default walks."""
        first = await self.get_response(response_id)
        if first is None:
            return None
        chain = [first]
        seen = {first.id}
        while len(chain) < limit and chain[-1].previous_response_id:
            prev = await self.get_response(chain[-1].previous_response_id)
            if prev is None or prev.id in seen:
                break
            seen.add(prev.id)
            chain.append(prev)
        chain.reverse()
        return chain

    async def chain_context(self, response_id: str, limit: int = 1000) -> tuple[str, list[Json]] | None:
        """What a request continuing ``response_id`` (its ``previous_response_id``) needs
        of :meth:`response_chain`: the status of ``response_id`` and the chain's items,
        oldest first (each response's ``input_items``, then its ``output``); None when
        unknown. A backend may decode only those; this default takes the whole chain."""
        chain = await self.response_chain(response_id, limit)
        if chain is None:
            return None
        items: list[Json] = []
        for prev in chain:
            items += prev.input_items + list(prev.body.get("output") or [])
        return chain[-1].status, items

    # -- conversations -----------------------------------------------------------------

    @abc.abstractmethod
    async def create_conversation(self, conversation: Conversation, items: list[Json]) -> None:
        """Create it with its first items (ids already given), in one write."""

    @abc.abstractmethod
    async def get_conversation(self, conversation_id: str) -> Conversation | None: ...

    @abc.abstractmethod
    async def update_conversation(self, conversation_id: str, metadata: dict[str, str]) -> Conversation | None:
        """Replace its metadata; None when unknown."""

    @abc.abstractmethod
    async def delete_conversation(self, conversation_id: str) -> bool:
        """Delete it and its items; False when unknown."""

    @abc.abstractmethod
    async def append_items(self, conversation_id: str, items: list[Json]) -> bool:
        """Append ``items`` (ids already given) after the existing ones, all or none,
        atomically with respect to other appends (from any process or replica sharing the
        store): concurrent appends lose nothing and each keeps its items together in one
        order. False when the conversation is unknown."""

    @abc.abstractmethod
    async def list_items(
        self, conversation_id: str, *, limit: int = 20, order: Literal["asc", "desc"] = "desc",
        after: str | None = None,
    ) -> ItemPage | None:
        """A page of items in insertion order (``asc``) or its reverse, starting after the
        item ``after``; None when the conversation is unknown. An unknown ``after`` gives
        an empty page."""

    @abc.abstractmethod
    async def get_item(self, conversation_id: str, item_id: str) -> Json | None: ...

    @abc.abstractmethod
    async def delete_item(self, conversation_id: str, item_id: str) -> bool: ...
