"""One HTTP request's engine calls, merged into per-choice text events.

``Run.events()`` drives every unit's ``engine.generate`` (one directly, several through
a queue), feeds each choice's tokens through its ``ChoiceText`` and yields
``(choice, delta, finished)`` whenever visible text appears or a choice finishes. With
several units the reader may lag behind the engine calls, so ``finished`` is the flag
to go by, not the choice's state at read time. A choice that hits a stop string finishes at
once; when every choice of a unit has finished that way the unit is aborted in the
engine (vLLM stops such a sequence; it is not left decoding to ``max_tokens``).
Engine errors propagate as ``EngineError`` / ``EngineDisconnect``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

from smg._fast.detok import PRIME_IDS, DetokTable
from smg.engine.http.sampling import TextOptions, Unit
from smg.engine.http.text import ChoiceText
from smg.engine.types import Finished, TokenChunk

__all__ = ["Choice", "Run"]


class Choice:
    """The state of one choice (``index`` as the client sees it)."""

    __slots__ = (
        "cached_tokens",
        "completion_tokens",
        "finish_reason",
        "index",
        "kv_transfer_params",
        "logprobs",
        "matched_stop",
        "prompt_tokens",
        "text",
        "unit",
    )

    def __init__(self, index: int, text: ChoiceText, unit: int) -> None:
        self.index = index
        self.text = text
        self.unit = unit
        self.finish_reason: str | None = None
        self.matched_stop: int | str | None = None
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.cached_tokens = 0
        self.kv_transfer_params: dict | None = None
        # (token_id, logprob, [(alt_id, alt_logprob), ...]) per output token, when asked
        self.logprobs: list[tuple[int, float, list]] | None = None


_DONE = object()


class Run:
    """The engine calls of one request and the choices they produce."""

    def __init__(
        self,
        rid: str,
        engine: Any,
        units: Sequence[Unit],
        text: TextOptions,
        table: DetokTable,
    ) -> None:
        self.rid = rid  # the request's id (its units have it or ``rid-k``)
        self.engine = engine
        self.units = list(units)
        self.choices: list[Choice] = []
        for u, unit in enumerate(self.units):
            for j in range(unit.inp.params.n):
                ct = ChoiceText(
                    table,
                    text.stops,
                    include_stop=text.include_stop,
                    skip_special_tokens=text.skip_special_tokens,
                    min_tokens=unit.inp.params.min_new_tokens,
                    prompt_tail=unit.inp.input_ids[-PRIME_IDS:],
                )
                choice = Choice(unit.first + j, ct, u)
                if unit.inp.return_logprob:
                    choice.logprobs = []
                self.choices.append(choice)
        self.choices.sort(key=lambda c: c.index)
        self._open = [unit.inp.params.n for unit in self.units]  # unfinished choices per unit
        self.aborted = False

    @property
    def rids(self) -> list[str]:
        return [unit.inp.rid for unit in self.units]

    def abort(self) -> None:
        """Abort every engine call of this request (client gone); calls that have not
        reached the engine yet are not started."""
        self.aborted = True
        for unit in self.units:
            self.engine.abort(unit.inp.rid)

    def events(self) -> AsyncIterator[tuple[Choice, str, bool]]:
        """``(choice, new_text, finished)`` as the engine produces tokens (module doc)."""
        if len(self.units) == 1:
            return self._unit_events(0)  # no extra generator layer per token
        return self._merged()

    async def _merged(self) -> AsyncIterator[tuple[Choice, str, bool]]:
        queue: asyncio.Queue[Any] = asyncio.Queue()
        tasks = [
            asyncio.ensure_future(self._pump(u, queue)) for u in range(len(self.units))
        ]
        try:
            running = len(tasks)
            while running:
                item = await queue.get()
                if item is _DONE:
                    running -= 1
                elif isinstance(item, BaseException):
                    raise item
                else:
                    yield item
        finally:
            for task in tasks:
                if not task.done():
                    task.cancel()
            if any(not t.done() for t in tasks):
                self.abort()

    async def _pump(self, u: int, queue: asyncio.Queue[Any]) -> None:
        try:
            async for event in self._unit_events(u):
                queue.put_nowait(event)
        except Exception as exc:  # handed to the reader, which raises it
            queue.put_nowait(exc)
        finally:
            queue.put_nowait(_DONE)

    async def _unit_events(self, u: int) -> AsyncIterator[tuple[Choice, str, bool]]:
        unit = self.units[u]
        first = unit.first
        by_index = {c.index: c for c in self.choices if c.unit == u}
        if self.aborted:
            return
        agen = self.engine.generate(unit.inp)
        try:
            async for item in agen:
                if self.aborted:  # an abort may have come before the engine knew the rid
                    self.engine.abort(unit.inp.rid)
                choice = by_index[first + item.index]
                if choice.finish_reason is not None:
                    continue
                if type(item) is TokenChunk:
                    delta = choice.text.push(item.token_ids)
                    choice.prompt_tokens = item.prompt_tokens
                    choice.cached_tokens = item.cached_tokens
                    if choice.logprobs is not None and item.logprobs is not None:
                        tops = item.top_logprobs or [[]] * len(item.token_ids)
                        choice.logprobs.extend(zip(item.token_ids, item.logprobs, tops))
                    if choice.text.stopped:
                        self._stop_locally(u, choice)
                    else:
                        choice.completion_tokens = item.completion_tokens
                    if choice.finish_reason is not None:
                        yield choice, delta, True
                    elif delta:
                        yield choice, delta, False
                elif type(item) is Finished:
                    delta = choice.text.flush()
                    choice.prompt_tokens = item.prompt_tokens
                    choice.cached_tokens = item.cached_tokens
                    choice.completion_tokens = item.completion_tokens
                    choice.kv_transfer_params = item.kv_transfer_params
                    choice.finish_reason = item.finish_reason
                    choice.matched_stop = item.matched_stop
                    self._open[u] -= 1
                    yield choice, delta, True
        finally:
            await agen.aclose()

    def _stop_locally(self, u: int, choice: Choice) -> None:
        text = choice.text
        choice.finish_reason = "stop"
        choice.matched_stop = text.matched
        choice.completion_tokens = len(text.output_ids)
        if choice.logprobs is not None:
            del choice.logprobs[len(text.output_ids) :]
        self._open[u] -= 1
        if self._open[u] == 0:
            # the engine reports the abort with a Finished per choice, ignored here
            self.engine.abort(self.units[u].inp.rid)

    def usage(self) -> dict[str, Any]:
        """OpenAI usage: each prompt counted once (not once per choice), as vLLM does."""
        prompt: dict[int, int] = {}
        cached: dict[int, int] = {}
        completion = 0
        for c in self.choices:
            p = self.units[c.unit].prompt
            prompt[p] = max(prompt.get(p, 0), c.prompt_tokens)
            cached[p] = max(cached.get(p, 0), c.cached_tokens)
            completion += c.completion_tokens
        total_prompt = sum(prompt.values())
        return {
            "prompt_tokens": total_prompt,
            "completion_tokens": completion,
            "total_tokens": total_prompt + completion,
            "prompt_tokens_details": {"cached_tokens": sum(cached.values())},
        }
