"""One Responses request, start to end: the context (a stored chain or a conversation),
the chat run (``smg.api.responses.chat``), the output (``output.OutputBuilder``) and
what is stored. Whole, streamed (SSE events) or in the background.

Storage: a response is stored once it is finished (completed, incomplete, failed or
cancelled), never half-written; the items a response adds to a conversation (its input
and its output) are appended in one write after the response is stored, and when that
append fails the stored response is taken back, so the request fails (503) whole.

Background runs are tasks of the gateway process that took them, stored ``queued`` then
``in_progress``; each final write is a compare-and-set on ``in_progress``, so a cancel
(here, or through another process or replica: the run polls its stored status) wins. A
streamed background run publishes its events to a :class:`Feed` that clients follow and
resume (``starting_after``) in this process. At shutdown the runs still going are stopped
and stored ``failed``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson

from smg.api.common import StorageUnavailable, new_id, stored
from smg.api.responses import chat
from smg.api.responses.items import to_messages
from smg.api.responses.output import OutputBuilder, usage
from smg.api.responses.request import ResponsesRequest
from smg.errors import BadRequest, NotFound, SmgError
from smg.storage import HistoryStore, StorageError, StoredResponse

__all__ = ["Feed", "Run", "cancel_background", "stop_background", "stream_of"]

log = logging.getLogger(__name__)

Json = dict[str, Any]

MAX_TRUNCATIONS = 12
# a chat-side error names a chat field: the client sent the Responses one
CHAT_PARAMS = {"messages": "input", "max_tokens": "max_output_tokens", "response_format": "text.format",
               "reasoning_effort": "reasoning.effort", "chat_template_kwargs": "reasoning"}
CANCEL_POLL_SECS = 0.5  # how often a background run looks for a cancel made elsewhere
_BACKGROUND: dict[str, asyncio.Task] = {}  # response id -> its task, in this process
_FEEDS: dict[str, Feed] = {}  # response id -> the events of a streamed background run
FEED_KEEP_SECS = 300.0  # how long a finished streamed background run's events stay to resume


class Run:
    def __init__(self, state: Any, scope: dict, store: HistoryStore, req: ResponsesRequest) -> None:
        self.state = state
        self.scope = scope
        self.store = store
        self.req = req
        self.id = new_id("resp")
        self.history: list[Json] = []
        model = req.model or next((w.model_id for w in state.registry.all() if w.model_id), None) or "default"
        self.response: Json = {
            "id": self.id, "object": "response", "created_at": int(time.time()), "status": "in_progress",
            "error": None, "incomplete_details": None, "output": [], "usage": None, **req.echo(), "model": model,
        }

    # -- context -------------------------------------------------------------------------
    async def load_context(self) -> None:
        """The items before this request's input: the stored chain or the conversation
        (404 when unknown)."""
        req, store = self.req, self.store
        if req.previous_response_id:
            context = await stored(lambda: store.chain_context(req.previous_response_id))
            if context is None:
                raise NotFound(f"previous response {req.previous_response_id!r} not found",
                               param="previous_response_id")
            status, items = context
            if status in ("queued", "in_progress"):
                raise BadRequest(f"previous response {req.previous_response_id!r} is still {status}",
                                 param="previous_response_id")
            self.history += items
        elif req.conversation_id:
            if await stored(lambda: store.get_conversation(req.conversation_id)) is None:
                raise NotFound(f"conversation {req.conversation_id!r} not found", param="conversation")
            after = None
            while True:
                page = await stored(lambda: store.list_items(req.conversation_id, limit=100, order="asc", after=after))
                if page is None:
                    raise NotFound(f"conversation {req.conversation_id!r} not found", param="conversation")
                self.history += page.items
                if not page.has_more or not page.items:
                    break
                after = page.items[-1]["id"]

    def _messages(self) -> list[Json]:
        return to_messages(self.history + self.req.input_items, self.req.instructions)

    def _truncate(self, exc: SmgError) -> bool:
        """``truncation: auto`` and the context is over the model's: drop the oldest half of
        the history (a function call output is never left without its call)."""
        if self.req.truncation != "auto" or exc.status_code != 400 or not self.history:
            return False
        text = exc.message.lower()
        if "context" not in text and "too long" not in text:
            return False
        rest = self.history[len(self.history) // 2 + 1:]
        while rest and rest[0]["type"] in ("function_call_output", "reasoning"):
            rest = rest[1:]
        self.history = rest
        return True

    async def _chat(self, opener):
        for _ in range(MAX_TRUNCATIONS):
            try:
                return await opener(self._messages())
            except SmgError as exc:
                exc.param = CHAT_PARAMS.get(exc.param, exc.param)  # type: ignore[arg-type]
                if not self._truncate(exc):
                    if self.req.truncation == "disabled" and exc.status_code == 400 and "context" in exc.message:
                        raise BadRequest(f"the input exceeds the model's context window ({exc.message}); "
                                         "set truncation to 'auto' to drop the oldest items", param="input") from None
                    raise
        raise BadRequest("the input does not fit the model's context window", param="input")

    # -- whole ---------------------------------------------------------------------------
    async def whole(self) -> Json:
        """Run to the end and store; the Response object."""
        resp, reasoning_tokens = await self._chat(
            lambda messages: chat.whole(self.state, self.scope, self.req.chat_body(messages, stream=False)))
        b = OutputBuilder(self.response, parallel_tool_calls=self.req.parallel_tool_calls, quiet=True)
        choice = resp["choices"][0]
        msg = choice.get("message") or {}
        b.reasoning(msg.get("reasoning_content") or "")
        b.content(msg.get("content") or "", ((choice.get("logprobs") or {}).get("content") or None)
                  if self.req.logprobs else None)
        for i, tc in enumerate(msg.get("tool_calls") or []):
            fn = tc.get("function") or {}
            b.tool(i, tc.get("id"), fn.get("name"), fn.get("arguments") or "")
        b.finish(choice.get("finish_reason"), self._usage(resp.get("usage"), b, reasoning_tokens))
        self.response["model"] = resp.get("model") or self.response["model"]
        await self.persist()
        return self.response

    def _usage(self, u: Json | None, b: OutputBuilder, reasoning_tokens: int | None) -> Json:
        u = u or {}
        details = u.get("completion_tokens_details") or {}
        if reasoning_tokens is None:
            reasoning_tokens = details.get("reasoning_tokens") or 0
        return usage(u.get("prompt_tokens") or 0, u.get("completion_tokens") or 0,
                     (u.get("prompt_tokens_details") or {}).get("cached_tokens") or 0, reasoning_tokens)

    # -- storage -------------------------------------------------------------------------
    async def persist(self, *, if_status: str | None = None) -> bool:
        """Store the finished response (when ``store``) and append its items to the
        conversation; all or nothing. False when a compare-and-set did not hold."""
        req, store = self.req, self.store
        record = StoredResponse(self.id, self.response["created_at"], self.response, req.input_items,
                                req.previous_response_id, req.conversation_id)
        if req.store or if_status is not None:
            if not await stored(lambda: store.put_response(record, if_status=if_status)):
                return False
        if req.conversation_id:
            try:
                ok = await store.append_items(req.conversation_id, req.input_items + self.response["output"])
            except StorageError as exc:
                ok, error = False, exc
            else:
                error = None
            if not ok:
                if req.store:
                    try:
                        await store.delete_response(self.id)
                    except StorageError:
                        log.warning("response %s stored, but its conversation append failed", self.id)
                if error is not None:
                    raise StorageUnavailable(f"history storage failed: {error}")
                raise NotFound(f"conversation {req.conversation_id!r} not found", param="conversation")
        return True

    # -- streamed ------------------------------------------------------------------------
    async def open_stream(self) -> AsyncIterator[bytes]:
        """Open the chat stream (errors before it raise: the endpoint answers a status),
        then the SSE events; the last is always a terminal one."""
        chunks, count = await self._chat(
            lambda messages: chat.stream(self.state, self.scope, self.req.chat_body(messages, stream=True)))
        return _encoded(self._events(chunks, count))

    async def _events(self, chunks: AsyncIterator[Json], count,
                      if_status: str | None = None) -> AsyncIterator[list[Json]]:
        """The Responses events of a chat stream, a batch per chat chunk; stored at the end."""
        b = OutputBuilder(self.response, parallel_tool_calls=self.req.parallel_tool_calls)
        finish, use, error = None, None, None
        try:
            yield [b.snapshot("response.created"), b.snapshot("response.in_progress")]
            async for chunk in chunks:
                if "error" in chunk:
                    err = chunk["error"] if isinstance(chunk["error"], dict) else {"message": str(chunk["error"])}
                    error = {"code": "server_error", "message": str(err.get("message") or "the worker failed")}
                    break
                if chunk.get("usage"):
                    use = chunk["usage"]
                if chunk.get("model"):
                    self.response["model"] = chunk["model"]
                out: list[Json] = []
                for choice in chunk.get("choices") or []:
                    if choice.get("index", 0) != 0:
                        continue
                    delta = choice.get("delta") or {}
                    out += b.reasoning(delta.get("reasoning_content") or "")
                    lps = (choice.get("logprobs") or {}).get("content") if self.req.logprobs else None
                    out += b.content(delta.get("content") or "", lps)
                    for tc in delta.get("tool_calls") or []:
                        fn = tc.get("function") or {}
                        out += b.tool(tc.get("index", 0), tc.get("id"), fn.get("name"), fn.get("arguments") or "")
                    if choice.get("finish_reason"):
                        finish = choice["finish_reason"]
                if out:
                    yield out
        finally:
            await chunks.aclose()  # type: ignore[attr-defined]
        events = b.finish(finish, self._usage(use, b, count(b.reasoning_text)), error)
        try:
            await self.persist(if_status=if_status)
        except SmgError as exc:
            events = events[:-1]
            self.response["status"] = "failed"
            self.response["error"] = {"code": "server_error", "message": exc.message}
            events.append(b.event("error", code=exc.error_type, message=exc.message, param=None))
            events.append(b.snapshot("response.failed"))
        yield events

    # -- background ----------------------------------------------------------------------
    async def start_background(self) -> Json | AsyncIterator[bytes]:
        """Store it queued, run it in a task; the queued Response object, or with
        ``stream`` the run's events (the run goes on when the client leaves)."""
        self.response["status"] = "queued"
        record = StoredResponse(self.id, self.response["created_at"], self.response, self.req.input_items,
                                self.req.previous_response_id, self.req.conversation_id)
        await stored(lambda: self.store.put_response(record))
        queued = orjson.loads(orjson.dumps(self.response))
        feed = _FEEDS[self.id] = Feed() if self.req.stream else None
        loop = asyncio.get_running_loop()
        task = loop.create_task(self._background(feed), name=f"smg-response-{self.id}")
        _BACKGROUND[self.id] = task
        task.add_done_callback(lambda _t: _BACKGROUND.pop(self.id, None))
        if feed is None:
            return queued
        task.add_done_callback(lambda _t: loop.call_later(FEED_KEEP_SECS, _FEEDS.pop, self.id, None))
        return _encoded(feed.follow(-1))

    async def _background(self, feed: Feed | None = None) -> None:
        self.response["status"] = "in_progress"
        watch: asyncio.Task | None = None
        try:
            if not await self._put("queued"):
                return  # cancelled before it started
            watch = asyncio.get_running_loop().create_task(self._watch(asyncio.current_task()))
            try:  # streamed from the worker: a cancel stops it at the next token
                chunks, count = await self._chat(
                    lambda messages: chat.stream(self.state, self.scope, self.req.chat_body(messages, stream=True)))
                async for batch in self._events(chunks, count, if_status="in_progress"):
                    if feed is not None:
                        feed.extend(batch)
            except SmgError as exc:
                self.response.update(status="failed", output=[],
                                     error={"code": "server_error", "message": exc.message})
                await self._put("in_progress")
        except asyncio.CancelledError:  # cancelled (stored as such already) or the gateway stopping
            self.response.update(status="failed", output=[], usage=None,
                                 error={"code": "server_error", "message": "the gateway stopped while it ran"})
            if not await self._put("in_progress"):  # a cancelled one stays cancelled
                self.response.update(status="cancelled", error=None)
        except Exception:  # noqa: BLE001 - a background task must not die silently
            log.exception("background response %s failed", self.id)
        finally:
            if watch is not None:
                watch.cancel()
            if feed is not None:
                feed.end(self.response["status"])

    async def _watch(self, run: asyncio.Task | None) -> None:
        """Stop the run when the stored response stops being in progress: cancelled (or
        deleted) through another gateway process or replica sharing the store."""
        while run is not None:
            await asyncio.sleep(CANCEL_POLL_SECS)
            try:
                record = await self.store.get_response(self.id)
            except StorageError:
                continue
            if record is None or record.status != "in_progress":
                run.cancel()
                return

    async def _put(self, if_status: str) -> bool:
        record = StoredResponse(self.id, self.response["created_at"], self.response, self.req.input_items,
                                self.req.previous_response_id, self.req.conversation_id)
        try:
            return await self.store.put_response(record, if_status=if_status)
        except StorageError:
            log.warning("background response %s: storage failed", self.id)
            return False


async def stop_background() -> None:
    """At shutdown: stop this loop's background runs (each stored as failed)."""
    loop = asyncio.get_running_loop()
    tasks = [t for t in list(_BACKGROUND.values()) if t.get_loop() is loop]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def cancel_background(store: HistoryStore, response_id: str) -> Json:
    """``POST /v1/responses/{id}/cancel``: a queued or running background response
    becomes ``cancelled`` (its run is stopped, the worker's request aborted); a finished
    one is returned as it is."""
    for _ in range(3):
        record = await stored(lambda: store.get_response(response_id))
        if record is None:
            raise NotFound(f"response {response_id!r} not found", param="response_id")
        if not record.body.get("background"):
            raise BadRequest("only a background response can be cancelled", param="response_id")
        if record.status not in ("queued", "in_progress"):
            return record.body
        was = record.status
        record.body["status"] = "cancelled"
        if await stored(lambda: store.put_response(record, if_status=was)):
            task = _BACKGROUND.get(response_id)
            if task is not None and task.get_loop() is asyncio.get_running_loop():
                task.cancel()  # run here; one run elsewhere sees the cancel in the store (_watch)
            return record.body
    raise StorageUnavailable("the response kept changing while it was being cancelled")


def stream_of(response_id: str, starting_after: int) -> AsyncIterator[bytes] | None:
    """The events of a background response streaming in this process after sequence
    number ``starting_after`` (``GET /v1/responses/{id}?stream=true``); None when none."""
    feed = _FEEDS.get(response_id)
    if feed is None or feed.loop is not asyncio.get_running_loop():
        return None
    return _encoded(feed.follow(starting_after))


class Feed:
    """A background run's events as they come, for any number of followers."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.events: list[Json] = []
        self.done = False
        self._changed = asyncio.Event()

    def _wake(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def extend(self, events: list[Json]) -> None:
        self.events += events
        self.done = self.done or any(e["type"] in TERMINAL for e in events)
        self._wake()

    def end(self, status: str) -> None:
        """The run ended without its terminal event (cancelled, stopped): an error event says so."""
        if not self.done:
            seq = self.events[-1]["sequence_number"] + 1 if self.events else 0
            self.events.append({"type": "error", "sequence_number": seq, "code": status, "param": None,
                                "message": f"the response was {status} before it was complete"})
        self.done = True
        self._wake()

    async def follow(self, after: int) -> AsyncIterator[list[Json]]:
        i = next((k for k, e in enumerate(self.events) if e["sequence_number"] > after), len(self.events))
        while True:
            if i < len(self.events):
                batch, i = self.events[i:], len(self.events)
                yield batch
            elif self.done:
                return
            else:
                await self._changed.wait()


TERMINAL = ("response.completed", "response.incomplete", "response.failed")


async def _encoded(batches: AsyncIterator[list[Json]]) -> AsyncIterator[bytes]:
    try:
        async for batch in batches:
            yield b"".join(_sse(e) for e in batch)
    finally:
        await batches.aclose()  # type: ignore[attr-defined]


def _sse(event: Json) -> bytes:
    return b"event: " + event["type"].encode() + b"\ndata: " + orjson.dumps(event) + b"\n\n"
