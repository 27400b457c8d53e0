"""The ``redis`` history backend: redis-py's asyncio client over a blocking pool of at
most ``--redis-pool-max`` connections, every call bounded by ``--redis-op-timeout-secs``
(StorageError past it or on any Redis error).

Keys (``{id}`` is a Redis Cluster hash tag, so one conversation's keys share a slot):

- ``smg:resp:<id>``: hash ``status``, ``prev`` (previous_response_id), ``data`` (the
  whole record as JSON);
- ``smg:conv:{<id>}``: hash ``created_at``, ``metadata`` (JSON), ``seq`` (items so far);
- ``smg:conv:{<id>}:order``: sorted set, item id scored by its sequence number;
- ``smg:conv:{<id>}:items``: hash, item id -> the item as JSON.

Every write is one Lua script, so it happens whole or not at all and no other client
sees it half done. It carries the caller's deadline: a server that reaches it only after
that (a stalled server; the caller has already answered StorageError) refuses it rather
than apply it late (the clocks of smg and Redis must agree within the op timeout). An
append takes its sequence numbers with ``HINCRBY`` and adds its items in the same
script, so concurrent appends from any process or replica lose nothing and keep each
append's items together; ``put_response`` with ``if_status`` compares and sets in one
script. Writes are never retried (one whose answer was lost could apply twice); reads
are tried once more on a fresh connection when theirs is broken (after a Redis restart).
Keys expire ``--redis-retention-days`` after their last write (-1, or 0: never); a write
refreshes the TTL of every key of its record. ``response_chain`` walks the chain in one
script (it reads keys it computes from ``prev``, as a standalone or replicated Redis
allows; not Redis Cluster).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, Literal, TypeVar

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from smg.storage.base import Conversation, HistoryStore, ItemPage, Json, StorageError, StoredResponse
from smg.storage.records import dumps, loads, page_of, response_from_json, response_json, walk_chain

__all__ = ["RedisStore"]

T = TypeVar("T")
RESP = "smg:resp:"

# Every write script starts so: ARGV[1] is the caller's deadline (unix ms). A write that a
# stalled server reaches only after the caller gave up (and answered StorageError) is
# refused, not applied late. ARGV[2] is the TTL in seconds (0: none).
_WRITE = """
local t = redis.call('TIME')
if tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000 > tonumber(ARGV[1]) then
  return redis.error_reply('SMG past the deadline: not written')
end
local function refresh(first, last)
  local ttl = tonumber(ARGV[2])
  for i = first, last do
    if ttl > 0 then redis.call('EXPIRE', KEYS[i], ttl) else redis.call('PERSIST', KEYS[i]) end
  end
end
"""
# KEYS: response. ARGV: deadline, ttl, status, prev, data, check ('1' or '0'), expected status.
_PUT = _WRITE + """
if ARGV[6] == '1' and redis.call('HGET', KEYS[1], 'status') ~= ARGV[7] then return 0 end
redis.call('HSET', KEYS[1], 'status', ARGV[3], 'prev', ARGV[4], 'data', ARGV[5])
refresh(1, 1)
return 1
"""
# KEYS: what to delete, the first deciding the answer. ARGV: deadline, ttl (unused).
_DELETE = _WRITE + """
local existed = redis.call('EXISTS', KEYS[1])
redis.call('DEL', unpack(KEYS))
return existed
"""
# KEYS: conversation, order, items. ARGV: deadline, ttl (unused), item id.
_DELETE_ITEM = _WRITE + """
local removed = redis.call('ZREM', KEYS[2], ARGV[3])
redis.call('HDEL', KEYS[3], ARGV[3])
return removed
"""
# ARGV: prefix, id, limit. The records, newest first, up to limit or a missing/repeated id.
_CHAIN = """
local out, seen, id = {}, {}, ARGV[2]
for i = 1, tonumber(ARGV[3]) do
  local v = redis.call('HMGET', ARGV[1] .. id, 'data', 'prev')
  if not v[1] then break end
  out[#out + 1] = v[1]
  seen[id] = true
  if not v[2] or v[2] == '' or seen[v[2]] then break end
  id = v[2]
end
return out
"""
# KEYS: conversation, order, items. ARGV: deadline, ttl, mode ('create' or 'append'),
# created_at, metadata, then item id and JSON pairs. An item id already there keeps its place.
_ADD = _WRITE + """
if ARGV[3] == 'create' then
  redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
  redis.call('HSET', KEYS[1], 'created_at', ARGV[4], 'metadata', ARGV[5], 'seq', 0)
elseif redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
local n = (#ARGV - 5) / 2
local seq = redis.call('HINCRBY', KEYS[1], 'seq', n) - n
for i = 1, n do
  local id = ARGV[4 + 2 * i]
  redis.call('ZADD', KEYS[2], 'NX', seq + i, id)
  redis.call('HSET', KEYS[3], id, ARGV[5 + 2 * i])
end
refresh(1, 3)
return 1
"""
# KEYS: conversation, order, items. ARGV: deadline, ttl, metadata. Nil when unknown, else created_at.
_UPDATE = _WRITE + """
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
redis.call('HSET', KEYS[1], 'metadata', ARGV[3])
refresh(1, 3)
return redis.call('HGET', KEYS[1], 'created_at')
"""
# KEYS: conversation, order, items. ARGV: limit, 'asc'/'desc', has-after ('1'/'0'), after.
# Nil when the conversation is unknown, else up to limit + 1 item JSONs.
_LIST = """
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
local limit, asc = tonumber(ARGV[1]), ARGV[2] == 'asc'
local ids
if ARGV[3] == '1' then
  local s = redis.call('ZSCORE', KEYS[2], ARGV[4])
  if not s then return {} end
  if asc then ids = redis.call('ZRANGEBYSCORE', KEYS[2], '(' .. s, '+inf', 'LIMIT', 0, limit + 1)
  else ids = redis.call('ZREVRANGEBYSCORE', KEYS[2], '(' .. s, '-inf', 'LIMIT', 0, limit + 1) end
elseif asc then ids = redis.call('ZRANGE', KEYS[2], 0, limit)
else ids = redis.call('ZREVRANGE', KEYS[2], 0, limit) end
local out = {}
for i = 1, #ids, 500 do
  local chunk = {}
  for j = i, math.min(i + 499, #ids) do chunk[#chunk + 1] = ids[j] end
  for _, body in ipairs(redis.call('HMGET', KEYS[3], unpack(chunk))) do out[#out + 1] = body end
end
return out
"""


def _conv_keys(conversation_id: str) -> list[str]:
    base = f"smg:conv:{{{conversation_id}}}"
    return [base, base + ":order", base + ":items"]


class RedisStore(HistoryStore):
    name = "redis"

    def __init__(self, url: str, *, pool_max: int = 16, retention_days: int = 30, op_timeout_secs: float = 5.0) -> None:
        if not url:
            raise ValueError("the redis history backend needs --redis-url")
        self.url = url
        self.pool_max = max(1, pool_max)
        self.ttl = retention_days * 86400 if retention_days > 0 else 0
        self.op_timeout = op_timeout_secs
        self._redis: aioredis.Redis | None = None

    async def start(self) -> None:
        if self._redis is not None:
            return
        pool = aioredis.BlockingConnectionPool.from_url(
            self.url, max_connections=self.pool_max, timeout=self.op_timeout, socket_timeout=self.op_timeout,
            socket_connect_timeout=self.op_timeout, retry=Retry(NoBackoff(), 0), health_check_interval=30,
        )
        client = aioredis.Redis(connection_pool=pool)
        self._put = client.register_script(_PUT)
        self._delete = client.register_script(_DELETE)
        self._delete_item = client.register_script(_DELETE_ITEM)
        self._chain = client.register_script(_CHAIN)
        self._add = client.register_script(_ADD)
        self._update = client.register_script(_UPDATE)
        self._list = client.register_script(_LIST)
        self._redis = client
        try:
            await self._call(client.ping())
        except StorageError as exc:
            await self.close()
            raise StorageError(f"redis: cannot start: {exc}") from exc

    async def close(self) -> None:
        if self._redis is not None:
            client, self._redis = self._redis, None
            await client.aclose()
            await client.connection_pool.disconnect()

    def _r(self) -> aioredis.Redis:
        if self._redis is None:
            raise StorageError("redis history store is not started")
        return self._redis

    def _w(self, *args: Any) -> list[Any]:
        """A write script's arguments: the deadline and the TTL first."""
        self._r()
        return [int((time.time() + self.op_timeout) * 1000), self.ttl, *args]

    async def _call(self, aw: Awaitable[T]) -> T:
        try:
            return await asyncio.wait_for(aw, self.op_timeout)
        except asyncio.TimeoutError:
            raise StorageError(f"redis: no answer in {self.op_timeout} s") from None
        except (RedisError, OSError) as exc:
            raise StorageError(f"redis: {exc}") from exc

    async def _read(self, call: Callable[[aioredis.Redis], Awaitable[T]]) -> T:
        """A read, tried once more on a fresh connection when its connection turns out
        broken (a Redis restart leaves every pooled one so): reads are safe to repeat,
        writes are not (they fail that once)."""
        client = self._r()
        try:
            return await self._call(call(client))
        except StorageError as exc:
            if not isinstance(exc.__cause__, RedisConnectionError):
                raise
        return await self._call(call(client))

    # -- responses ---------------------------------------------------------------------

    async def put_response(self, record: StoredResponse, *, if_status: str | None = None) -> bool:
        args = self._w(record.status, record.previous_response_id or "", response_json(record),
                       "0" if if_status is None else "1", if_status or "")
        return bool(await self._call(self._put(keys=[RESP + record.id], args=args)))

    async def get_response(self, response_id: str) -> StoredResponse | None:
        data = await self._read(lambda r: r.hget(RESP + response_id, "data"))
        return response_from_json(data) if data is not None else None

    async def delete_response(self, response_id: str) -> bool:
        return bool(await self._call(self._delete(keys=[RESP + response_id], args=self._w())))

    async def response_chain(self, response_id: str, limit: int = 1000) -> list[StoredResponse] | None:
        self._r()
        rows = await self._read(lambda r: self._chain(keys=[], args=[RESP, response_id, max(limit, 1)]))
        return walk_chain(map(response_from_json, rows), limit)

    # -- conversations -----------------------------------------------------------------

    def _add_args(self, mode: str, created_at: int, metadata: str, items: list[Json]) -> list[Any]:
        args = self._w(mode, created_at, metadata)
        for item in items:
            args += (item["id"], dumps(item))
        return args

    async def create_conversation(self, conversation: Conversation, items: list[Json]) -> None:
        args = self._add_args("create", conversation.created_at, dumps(conversation.metadata), items)
        await self._call(self._add(keys=_conv_keys(conversation.id), args=args))

    async def get_conversation(self, conversation_id: str) -> Conversation | None:
        key = _conv_keys(conversation_id)[0]
        created, metadata = await self._read(lambda r: r.hmget(key, "created_at", "metadata"))
        return Conversation(conversation_id, int(created), loads(metadata)) if created is not None else None

    async def update_conversation(self, conversation_id: str, metadata: dict[str, str]) -> Conversation | None:
        created = await self._call(self._update(keys=_conv_keys(conversation_id), args=self._w(dumps(metadata))))
        return Conversation(conversation_id, int(created), dict(metadata)) if created is not None else None

    async def delete_conversation(self, conversation_id: str) -> bool:
        return bool(await self._call(self._delete(keys=_conv_keys(conversation_id), args=self._w())))

    async def append_items(self, conversation_id: str, items: list[Json]) -> bool:
        args = self._add_args("append", 0, "", items)
        return bool(await self._call(self._add(keys=_conv_keys(conversation_id), args=args)))

    async def list_items(
        self, conversation_id: str, *, limit: int = 20, order: Literal["asc", "desc"] = "desc",
        after: str | None = None,
    ) -> ItemPage | None:
        self._r()
        args = [max(limit, 0), order, "0" if after is None else "1", after or ""]
        bodies = await self._read(lambda r: self._list(keys=_conv_keys(conversation_id), args=args))
        return page_of(bodies, limit) if bodies is not None else None

    async def get_item(self, conversation_id: str, item_id: str) -> Json | None:
        body = await self._read(lambda r: r.hget(_conv_keys(conversation_id)[2], item_id))
        return loads(body) if body is not None else None

    async def delete_item(self, conversation_id: str, item_id: str) -> bool:
        return bool(await self._call(self._delete_item(keys=_conv_keys(conversation_id), args=self._w(item_id))))
