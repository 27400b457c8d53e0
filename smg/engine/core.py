"""The reference engine: deterministic generation over a simulated batch and KV cache.

``Engine.generate(GenerateInput)`` is an async iterator of ``TokenChunk`` and, per
choice index, one final ``Finished``. A request waits in a queue while ``max_running``
requests run (or the KV capacity is taken), then is prefilled (its cached prefix is
free, the rest costs ``prefill_us_per_token``), then decoded ``stream_interval``
tokens per chunk at ``decode_us_per_token``. Transports (gRPC, HTTP) sit on top and
own nothing but their wire format. Call ``await engine.start()`` before serving (it
opens the PD bootstrap server of a prefill worker) and ``await engine.close()`` after.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from smg.engine.config import FAULTS, WorkerConfig
from smg.engine.generation import Program, load_script
from smg.engine.kvcache import KvEventBatch, PrefixCache, block_hashes
from smg.engine.pd import PDRendezvous
from smg.engine.types import (
    EngineDisconnect,
    EngineError,
    Finished,
    GenerateInput,
    SamplingParams,
    TokenChunk,
    parse_fault,
)

__all__ = [
    "Engine",
    "EngineDisconnect",
    "EngineError",
    "Finished",
    "GenerateInput",
    "KvEventBatch",
    "SamplingParams",
    "TokenChunk",
]

_EVENT_HISTORY = 4096  # KV event batches kept for subscribers that start from a sequence


@dataclass
class _Request:
    rid: str
    prompt_len: int
    tokens: int = 0  # KV tokens held while running (prompt + output so far)
    running: bool = False
    aborted: bool = False
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    admitted: asyncio.Future | None = None


class Engine:
    def __init__(self, config: WorkerConfig, tokenizer: Any) -> None:
        self.config = config
        self.tokenizer = tokenizer
        rules = load_script(config.script) if config.mode == "script" and config.script else ()
        self.program = Program(config.mode, tokenizer, config.cycle_text, rules)
        eos = [int(t) for t in (getattr(tokenizer, "eos_token_ids", None) or ())]
        self.eos_token_ids: tuple[int, ...] = tuple(eos)
        self.cache = PrefixCache(config.kv_block_size, config.kv_capacity_tokens)
        self.pd = PDRendezvous(config)
        self.aborted_rids: collections.deque[str] = collections.deque(maxlen=1024)
        self.cancelled_rids: collections.deque[str] = collections.deque(maxlen=1024)
        self.started_at = time.time()
        self.last_receive_timestamp = 0.0
        self._requests: dict[str, _Request] = {}
        self._running = 0
        self._running_tokens = 0
        self._waiting: collections.deque[_Request] = collections.deque()
        self._generated_tokens = 0
        self._event_seq = 0
        self._event_history: collections.deque[KvEventBatch] = collections.deque(
            maxlen=_EVENT_HISTORY
        )
        self._subscribers: set[asyncio.Queue[KvEventBatch]] = set()
        self._closed = False

    # -- lifecycle -----------------------------------------------------------------
    async def start(self) -> None:
        await self.pd.start()

    async def close(self) -> None:
        self._closed = True
        for req in list(self._requests.values()):
            self._abort(req)
        await self.pd.close()

    # -- generation ----------------------------------------------------------------
    async def generate(self, inp: GenerateInput) -> AsyncIterator[TokenChunk | Finished]:
        cfg = self.config
        p = inp.params
        self._validate(inp)
        fault, fault_arg = parse_fault(inp.fault or cfg.fault)
        if fault is not None and fault not in FAULTS:
            raise EngineError(400, f"unknown fault {fault!r}; one of {', '.join(FAULTS)}")
        fault_after = cfg.fault_after_tokens if fault_arg is None else int(fault_arg)
        self.last_receive_timestamp = time.time()
        if fault == "error_before_first":
            raise EngineError(500, "injected fault: error_before_first")
        if inp.rid in self._requests:
            raise EngineError(400, f"duplicate request id {inp.rid!r}")
        req = _Request(inp.rid, len(inp.input_ids))
        self._requests[inp.rid] = req
        n = p.n
        prompt_len = len(inp.input_ids)
        try:
            if not await self._admit(req):
                for i in range(n):
                    yield Finished(i, "abort", None, prompt_len, 0, 0)
                return
            try:
                prefill = await self._unless_aborted(req, self._prefill(inp, req, fault, fault_arg))
                if prefill is None:  # aborted before decoding (e.g. waiting for its prefill)
                    self.aborted_rids.append(inp.rid)
                    for i in range(n):
                        yield Finished(i, "abort", None, prompt_len, 0, 0)
                    return
                cached, hashes, kv_params = prefill
                # -- decode: one step = up to `interval` tokens, one chunk per choice ----------
                seq = self.program.base(inp.input_ids)
                if self.eos_token_ids:
                    seq = seq + [self.eos_token_ids[0]]
                seq_len = len(seq)
                limit = cfg.context_length - prompt_len
                if p.max_new_tokens is not None:
                    limit = min(limit, p.max_new_tokens)
                if self.pd.is_prefill_leg(inp):
                    limit = min(limit, 1)
                stops = set(p.stop_token_ids)
                if not p.ignore_eos:
                    stops.update(self.eos_token_ids)
                interval = (p.stream_interval or cfg.stream_interval) if inp.stream else max(limit, 1)
                mid_fault = fault in ("error_mid_stream", "disconnect_mid_stream", "stall")
                min_new, stop_strs, cost = p.min_new_tokens, p.stop, cfg.decode_us_per_token
                want_lp, top_k = inp.return_logprob, inp.top_logprobs
                out: list[int] = []
                k = 0  # == len(out)
                reason: str | None = None
                matched: int | str | None = None
                while True:
                    if req.aborted:
                        reason = "abort"
                        break
                    if k >= limit:
                        reason = "length"
                        break
                    want = interval
                    if mid_fault:
                        if k >= fault_after:
                            await self._mid_stream_fault(req, fault)
                            continue  # only a stall returns, when aborted
                        want = min(want, fault_after - k)
                    step: list[int] = []
                    for _ in range(want):
                        tok = seq[k % seq_len]
                        out.append(tok)
                        step.append(tok)
                        k += 1
                        if k >= min_new:
                            if tok in stops:
                                reason, matched = "stop", tok
                                break
                            if stop_strs:
                                hit = self._match_stop_str(out, stop_strs)
                                if hit is not None:
                                    reason, matched = "stop", hit
                                    break
                        if k >= limit:
                            reason = "length"
                            break
                    got = len(step) * n
                    if cost > 0:
                        await self._sleep(req, len(step) * cost / 1e6)
                    self._generated_tokens += got
                    req.tokens += got
                    self._running_tokens += got
                    lp = self._logprobs(step, k - len(step)) if want_lp else None
                    top = self._top_logprobs(step, top_k) if top_k > 0 else None
                    for i in range(n):
                        yield TokenChunk(i, step, prompt_len, k, cached, lp, top)
                    if reason is not None:
                        break
                if reason == "abort":
                    self.aborted_rids.append(inp.rid)
                else:
                    full = inp.input_ids + out
                    self.cache.insert(full, block_hashes(full, cfg.kv_block_size, hashes))
                    self._flush_events()
                for i in range(n):
                    yield Finished(i, reason, matched, prompt_len, k, cached, kv_params, out)
            finally:
                self._release(req)
        except (asyncio.CancelledError, GeneratorExit):
            # The caller went away (a cancelled RPC, a closed HTTP stream): like a real
            # engine, the request stops here; recorded apart from explicit Aborts.
            self.cancelled_rids.append(inp.rid)
            raise
        finally:
            self._requests.pop(inp.rid, None)

    async def _prefill(
        self, inp: GenerateInput, req: _Request, fault: str | None, fault_arg: float | None
    ) -> tuple[int, list[int], dict | None]:
        """PD rendezvous, prefix-cache lookup, simulated prefill time; (cached tokens,
        prompt block hashes, kv_transfer_params of a vLLM-style prefill leg)."""
        cfg = self.config
        prompt_len = len(inp.input_ids)
        peer = await self.pd.before_prefill(inp)
        hashes = block_hashes(inp.input_ids, cfg.kv_block_size)
        cached = self.cache.match(inp.input_ids, hashes)
        if peer is not None:  # decode leg: the KV came from the prefill worker
            cached = max(cached, min(int(peer.get("cached_tokens", 0)), prompt_len))
        if fault == "slow_first_token":
            await self._sleep(req, cfg.fault_delay_s if fault_arg is None else fault_arg)
        uncached = prompt_len - cached
        if cfg.prefill_us_per_token > 0 and peer is None and uncached > 0:
            await self._sleep(req, uncached * cfg.prefill_us_per_token / 1e6)
        self.cache.insert(inp.input_ids, hashes)
        self._flush_events()
        return cached, hashes, await self.pd.after_prefill(inp, cached)

    @staticmethod
    async def _unless_aborted(req: _Request, coro: Any) -> Any:
        """Await ``coro`` unless the request is aborted first (then None)."""
        if req.aborted:
            coro.close()
            return None
        task = asyncio.ensure_future(coro)
        try:
            while not task.done():
                waiter = asyncio.ensure_future(req.wake.wait())
                try:
                    await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    waiter.cancel()
                if req.aborted and not task.done():
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
                    return None
                if not task.done():
                    req.wake.clear()
        except BaseException:
            task.cancel()  # the caller went away: do not leave the prefill running
            raise
        return task.result()

    async def _mid_stream_fault(self, req: _Request, fault: str | None) -> None:
        if fault == "error_mid_stream":
            raise EngineError(500, "injected fault: error_mid_stream")
        if fault == "disconnect_mid_stream":
            raise EngineDisconnect()
        # stall: nothing more until the request is aborted (or the client goes away)
        await req.wake.wait()

    def _match_stop_str(self, out: list[int], stops: tuple[str, ...]) -> str | None:
        text = self.tokenizer.decode(out[-64:], skip_special_tokens=False)
        for s in stops:
            if s and s in text:
                return s
        return None

    @staticmethod
    def _logprobs(step: list[int], offset: int) -> list[float]:
        return [-((offset + j) % 7) / 8.0 - 0.01 for j in range(len(step))]

    @staticmethod
    def _top_logprobs(step: list[int], k: int) -> list[list[tuple[int, float]]]:
        return [[(t + d, -0.01 - d / 4.0) for d in range(min(k, 20))] for t in step]

    async def _sleep(self, req: _Request, seconds: float) -> None:
        """Simulated work; an abort cuts it short."""
        if seconds <= 0:
            return
        try:
            await asyncio.wait_for(req.wake.wait(), seconds)
        except asyncio.TimeoutError:
            pass

    def _validate(self, inp: GenerateInput) -> None:
        p = inp.params
        if not inp.input_ids:
            raise EngineError(400, "input_ids must not be empty")
        if len(inp.input_ids) >= self.config.context_length:
            raise EngineError(
                400,
                f"prompt of {len(inp.input_ids)} tokens exceeds the context length "
                f"{self.config.context_length}",
            )
        if p.n < 1:
            raise EngineError(400, "n must be >= 1")
        if p.max_new_tokens is not None and p.max_new_tokens < 0:
            raise EngineError(400, "max_new_tokens must be >= 0")
        vocab = self.vocab_size
        if vocab and (min(inp.input_ids) < 0 or max(inp.input_ids) >= vocab):
            raise EngineError(400, f"input_ids outside the vocabulary (size {vocab})")

    # -- batch admission -----------------------------------------------------------
    async def _admit(self, req: _Request) -> bool:
        if not self._waiting and self._fits(req):
            self._take(req)
            return True
        req.admitted = asyncio.get_running_loop().create_future()
        self._waiting.append(req)
        try:
            return await req.admitted
        finally:
            if req in self._waiting:
                self._waiting.remove(req)

    def _fits(self, req: _Request) -> bool:
        if self._running >= self.config.max_running:
            return False
        used = self._running_tokens + req.prompt_len
        return self._running == 0 or used <= self.config.kv_capacity_tokens

    def _take(self, req: _Request) -> None:
        self._running += 1
        req.running = True
        req.tokens = req.prompt_len
        self._running_tokens += req.tokens

    def _release(self, req: _Request) -> None:
        if req.running:
            req.running = False
            self._running -= 1
            self._running_tokens -= req.tokens
        while self._waiting and self._fits(self._waiting[0]):
            nxt = self._waiting.popleft()
            if nxt.admitted is not None and not nxt.admitted.done():
                self._take(nxt)
                nxt.admitted.set_result(True)

    # -- control -------------------------------------------------------------------
    def abort(self, rid: str) -> bool:
        req = self._requests.get(rid)
        if req is None:
            return False
        self._abort(req)
        return True

    def _abort(self, req: _Request) -> None:
        req.aborted = True
        req.wake.set()
        if req.admitted is not None and not req.admitted.done():
            req.admitted.set_result(False)
            self.aborted_rids.append(req.rid)

    def is_healthy(self) -> bool:
        return not self._closed and self.config.fault != "unhealthy"

    def flush_cache(self) -> bool:
        """Drop the prefix cache; refused (False) while requests are in flight."""
        if self._requests:
            return False
        self.cache.clear()
        self._flush_events()
        return True

    # -- reports -------------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        size = getattr(self.tokenizer, "vocab_size", None)
        return int(size) if size else 0

    def loads(self) -> dict[str, Any]:
        cfg = self.config
        cap = max(cfg.kv_capacity_tokens, 1)
        used = self._running_tokens
        uptime = max(time.time() - self.started_at, 1e-9)
        lookups = self.cache.lookups
        return {
            "num_running_reqs": self._running,
            "num_waiting_reqs": len(self._waiting),
            "num_total_reqs": self._running + len(self._waiting),
            "num_used_tokens": used,
            "max_total_num_tokens": cfg.kv_capacity_tokens,
            "token_usage": min(used / cap, 1.0),
            "gen_throughput": self._generated_tokens / uptime,
            "cache_hit_rate": self.cache.hits / lookups if lookups else 0.0,
            "utilization": self._running / cfg.max_running,
            "max_running_requests": cfg.max_running,
            "num_waiting_uncached_tokens": sum(r.prompt_len for r in self._waiting),
            "kv_cached_tokens": self.cache.cached_tokens,
            "kv_cached_blocks": len(self.cache),
            "kv_block_size": cfg.kv_block_size,
        }

    def model_info(self) -> dict[str, Any]:
        cfg = self.config
        tok = self.tokenizer
        return {
            "model_path": cfg.model,
            "served_model_name": cfg.model,
            "tokenizer_path": cfg.tokenizer,
            "is_generation": True,
            "max_context_length": cfg.context_length,
            "max_req_input_len": cfg.context_length - 1,
            "vocab_size": self.vocab_size,
            "model_type": "smg-reference",
            "architectures": ["SmgReferenceForCausalLM"],
            "eos_token_ids": list(self.eos_token_ids),
            "pad_token_id": int(getattr(tok, "pad_token_id", None) or 0),
            "bos_token_id": int(getattr(tok, "bos_token_id", None) or 1),
            "supports_vision": False,
            "default_sampling_params_json": "",
        }

    def server_info(self) -> dict[str, Any]:
        cfg = self.config
        return {
            "server_args": {k: v for k, v in vars(cfg).items()},
            "active_requests": len(self._requests),
            "is_paused": False,
            "last_receive_timestamp": self.last_receive_timestamp,
            "uptime_seconds": time.time() - self.started_at,
            "start_time": self.started_at,
            "max_total_num_tokens": cfg.kv_capacity_tokens,
            "role": cfg.role,
            "pd_style": cfg.pd_style,
            "bootstrap_port": self.pd.port,
            "kv_connector": self.pd.kv_connector,
            "kv_role": self.pd.kv_role,
            "kv_engine_id": self.pd.engine_id,
        }

    # -- KV events -----------------------------------------------------------------
    def _flush_events(self) -> None:
        if not self.cache.pending:
            return
        self._event_seq += 1
        batch = KvEventBatch(self._event_seq, time.time(), tuple(self.cache.pending))
        self.cache.pending.clear()
        self._event_history.append(batch)
        for q in self._subscribers:
            q.put_nowait(batch)

    async def kv_events(self, start_sequence_number: int = 0) -> AsyncIterator[KvEventBatch]:
        """Batches of stored/removed/cleared blocks; from ``start_sequence_number`` when
        it is still in the history, else (and for 0) from now on."""
        q: asyncio.Queue[KvEventBatch] = asyncio.Queue()
        last = 0
        if start_sequence_number > 0:
            for batch in self._event_history:
                if batch.sequence_number >= start_sequence_number:
                    q.put_nowait(batch)
        self._subscribers.add(q)
        try:
            while not self._closed:
                batch = await q.get()
                if batch.sequence_number > last:
                    last = batch.sequence_number
                    yield batch
        finally:
            self._subscribers.discard(q)
