"""What the persistent backends share: JSON encoding of records, the response-chain walk
over rows fetched in one query, and the list-items page cut."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import orjson

from smg.storage.base import ItemPage, Json, StorageError, StoredResponse

__all__ = ["dumps", "loads", "page_of", "response_json", "response_from_json", "walk_chain"]


def dumps(value: Any) -> str:
    try:
        return orjson.dumps(value).decode()
    except TypeError as exc:  # not JSON-ready: refused before anything is written
        raise StorageError(f"record is not JSON-serializable: {exc}") from None


def loads(text: str | bytes) -> Any:
    return orjson.loads(text)


def response_json(record: StoredResponse) -> str:
    """The whole record as one JSON document (the key-value backends store it so)."""
    return dumps({
        "id": record.id, "created_at": record.created_at, "body": record.body, "input_items": record.input_items,
        "previous_response_id": record.previous_response_id, "conversation_id": record.conversation_id,
    })


def response_from_json(text: str | bytes) -> StoredResponse:
    d = loads(text)
    return StoredResponse(d["id"], d["created_at"], d["body"], d["input_items"], d["previous_response_id"],
                          d["conversation_id"])


def walk_chain(records: Iterable[StoredResponse], limit: int) -> list[StoredResponse] | None:
    """``records`` newest first, as a recursive query found them (each the previous one
    of the one before, up to ``limit`` deep): oldest first, cut at the first repeated id
    (a cycle), as :meth:`HistoryStore.response_chain` walks."""
    chain: list[StoredResponse] = []
    seen: set[str] = set()
    for rec in records:
        if rec.id in seen or len(chain) >= limit:
            break
        if chain and chain[-1].previous_response_id != rec.id:
            break
        seen.add(rec.id)
        chain.append(rec)
    if not chain:
        return None
    chain.reverse()
    return chain


def page_of(bodies: Sequence[str | bytes | Json], limit: int) -> ItemPage:
    """``bodies`` fetched with ``LIMIT limit + 1``: the page and whether more follow."""
    items = [b if isinstance(b, dict) else loads(b) for b in bodies[:limit]]
    return ItemPage(items, len(bodies) > limit)
