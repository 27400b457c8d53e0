"""The ``memory`` history backend (and ``none``): dicts in this process, lost on exit.

Bounded like the Rust gateway's: at most ``max_responses`` responses and ``max_items``
conversation items (the oldest go first, on every write; a background response still
running is not dropped), and records unused for ``retention_secs`` are dropped (0: kept
until a count bound drops them). Every method is a plain dict operation with no await
inside, so each is atomic on the event loop.

Responses and items are kept JSON-encoded (the bytes are immutable, and decoding a record
costs a fraction of a ``copy.deepcopy``): what a caller changes in a record it passed in
or got back never changes what is stored, and a record that is not JSON-ready is refused
(:class:`StorageError`) as the other backends refuse it.
"""

from __future__ import annotations

import collections
import copy
import time
from typing import Literal

from smg.storage.base import Conversation, HistoryStore, ItemPage, Json, StoredResponse
from smg.storage.records import dumps, loads, response_from_json, response_json

__all__ = ["MemoryStore", "NoStore"]

RUNNING = ("queued", "in_progress")


class MemoryStore(HistoryStore):
    name = "memory"

    def __init__(self, max_responses: int = 10000, max_items: int = 100000, retention_secs: int = 86400) -> None:
        self.max_responses = max_responses
        self.max_items = max_items
        self.retention_secs = retention_secs
        # id -> (last use, status, the record as JSON)
        self._responses: collections.OrderedDict[str, tuple[float, str, str]] = collections.OrderedDict()
        self._conversations: dict[str, tuple[float, Conversation]] = {}
        self._items: dict[str, collections.OrderedDict[str, str]] = {}  # conversation -> item id -> item JSON
        self._item_count = 0
        self._item_order: collections.deque[tuple[str, str]] = collections.deque()  # (conversation, item), oldest first

    # -- bounds ------------------------------------------------------------------------

    def _expire(self) -> None:
        now = time.monotonic()
        if self.retention_secs > 0:
            cutoff = now - self.retention_secs
            for rid in [r for r, (t, status, _) in self._responses.items() if t < cutoff and status not in RUNNING]:
                del self._responses[rid]
            for cid in [c for c, (t, _) in self._conversations.items() if t < cutoff]:
                self._drop_conversation(cid)
        while len(self._responses) > self.max_responses:
            victim = next((r for r, (_, status, _) in self._responses.items() if status not in RUNNING), None)
            if victim is None:
                break
            del self._responses[victim]
        while self._item_count > self.max_items and self._item_order:
            cid, iid = self._item_order.popleft()
            items = self._items.get(cid)
            if items is not None and items.pop(iid, None) is not None:
                self._item_count -= 1

    def _drop_conversation(self, cid: str) -> None:
        self._conversations.pop(cid, None)
        self._item_count -= len(self._items.pop(cid, {}))

    def _touch(self, cid: str) -> Conversation | None:
        entry = self._conversations.get(cid)
        if entry is None:
            return None
        self._conversations[cid] = (time.monotonic(), entry[1])
        return entry[1]

    # -- responses ---------------------------------------------------------------------

    async def put_response(self, record: StoredResponse, *, if_status: str | None = None) -> bool:
        if if_status is not None:
            current = self._responses.get(record.id)
            if current is None or current[1] != if_status:
                return False
        self._responses[record.id] = (time.monotonic(), record.status, response_json(record))
        self._responses.move_to_end(record.id)
        self._expire()
        return True

    async def get_response(self, response_id: str) -> StoredResponse | None:
        entry = self._responses.get(response_id)
        return response_from_json(entry[2]) if entry is not None else None

    async def delete_response(self, response_id: str) -> bool:
        return self._responses.pop(response_id, None) is not None

    # -- conversations -----------------------------------------------------------------

    async def create_conversation(self, conversation: Conversation, items: list[Json]) -> None:
        encoded = _encoded(items)  # refused (StorageError) before anything changes
        self._conversations[conversation.id] = (time.monotonic(), copy.deepcopy(conversation))
        self._items[conversation.id] = collections.OrderedDict()
        self._add(conversation.id, encoded)
        self._expire()

    def _add(self, cid: str, encoded: list[tuple[str, str]]) -> None:
        bucket = self._items[cid]
        for iid, text in encoded:
            bucket[iid] = text
            self._item_order.append((cid, iid))
        self._item_count += len(encoded)

    async def get_conversation(self, conversation_id: str) -> Conversation | None:
        conv = self._touch(conversation_id)
        return copy.deepcopy(conv) if conv is not None else None

    async def update_conversation(self, conversation_id: str, metadata: dict[str, str]) -> Conversation | None:
        conv = self._touch(conversation_id)
        if conv is None:
            return None
        conv.metadata = dict(metadata)
        return copy.deepcopy(conv)

    async def delete_conversation(self, conversation_id: str) -> bool:
        if conversation_id not in self._conversations:
            return False
        self._drop_conversation(conversation_id)
        return True

    async def append_items(self, conversation_id: str, items: list[Json]) -> bool:
        encoded = _encoded(items)
        if self._touch(conversation_id) is None:
            return False
        self._add(conversation_id, encoded)
        self._expire()
        return True

    async def list_items(
        self, conversation_id: str, *, limit: int = 20, order: Literal["asc", "desc"] = "desc",
        after: str | None = None,
    ) -> ItemPage | None:
        if self._touch(conversation_id) is None:
            return None
        ids = list(self._items[conversation_id])
        if order == "desc":
            ids.reverse()
        if after is not None:
            if after not in self._items[conversation_id]:
                return ItemPage([], False)
            ids = ids[ids.index(after) + 1:]
        page = [loads(self._items[conversation_id][i]) for i in ids[:limit]]
        return ItemPage(page, len(ids) > limit)

    async def get_item(self, conversation_id: str, item_id: str) -> Json | None:
        if self._touch(conversation_id) is None:
            return None
        item = self._items[conversation_id].get(item_id)
        return loads(item) if item is not None else None

    async def delete_item(self, conversation_id: str, item_id: str) -> bool:
        if self._touch(conversation_id) is None:
            return False
        if self._items[conversation_id].pop(item_id, None) is None:
            return False
        self._item_count -= 1
        return True


def _encoded(items: list[Json]) -> list[tuple[str, str]]:
    return [(item["id"], dumps(item)) for item in items]


class NoStore(MemoryStore):
    """``--history-backend none``: nothing is kept. Every lookup misses, so a
    ``previous_response_id`` or a conversation answers 404, and ``store`` is accepted but
    has no effect."""

    name = "none"

    async def put_response(self, record: StoredResponse, *, if_status: str | None = None) -> bool:
        return if_status is None

    async def create_conversation(self, conversation: Conversation, items: list[Json]) -> None:
        return None

    async def append_items(self, conversation_id: str, items: list[Json]) -> bool:
        return False
