"""StreamRun: a streamed request advanced one worker read at a time.

Whatever way the worker's tokens are split into messages and the messages into reads
(read from their bytes as the lean client does, or ``Chunk`` objects), the client gets the same text, finish
and usage as with one message per read; local stops, errors and a client that leaves
still end the worker's request as they should.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import orjson
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from smg._fast import grpcwire
from smg._fast.detok import DetokTable
from smg._proto import sglang_scheduler_pb2 as sg
from smg.clients.grpc_types import Chunk, Complete, Logprobs, WorkerCallError
from smg.parsers.reasoning import get_reasoning_parser
from smg.pipeline.backend import GrpcBackend, GrpcSettings, ModelRuntime
from smg.pipeline.prepare import prepare
from smg.pipeline.requests import parse_chat, parse_completion
from smg.pipeline.run import Attempt
from smg.pipeline.stream import StreamRun
from smg.router import Worker
from smg.tokenizer import load_tokenizer

TEXT = "Hello wörld! 敏捷的棕色狐狸 🦊 jumps over </answer> the lazy dog."


@pytest.fixture(scope="module")
def tok():
    return load_tokenizer("deepseek")


@pytest.fixture(scope="module")
def table(tok):
    return DetokTable.from_hf(tok.hf)


class FakeSource:
    """ItemStream's interface over prepared reads; records how it was left."""

    def __init__(self, reads: list[list], error: WorkerCallError | None = None) -> None:
        self.reads = list(reads)
        self.error = error
        self.ended = False
        self.aborted = None  # set by aclose: True when the worker still had more to send

    def take(self) -> list:
        if self.reads:
            return self.reads.pop(0)
        if self.error is not None:
            self.ended = True
            raise self.error
        self.ended = True
        return []

    async def wait(self) -> None:
        await asyncio.sleep(0)

    async def aclose(self) -> None:
        if self.aborted is None:
            self.aborted = bool(self.reads) or (self.error is not None and not self.ended)


def _runtime(tok, table, reasoning=None) -> ModelRuntime:
    return ModelRuntime("m", tok, table, reasoning, None)


async def _run(runtime, reads, *, kind="chat", sse=True, error=None, **body) -> tuple[StreamRun, FakeSource, list]:
    backend = GrpcBackend(GrpcSettings())
    backend.models["m"] = runtime
    if kind == "chat":
        req = parse_chat({"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True, **body})
    else:
        req = parse_completion({"model": "m", "prompt": "hi", "stream": True, **body})
    prep = await prepare(kind, req, backend, {}, None)
    completions: list = []
    state = SimpleNamespace(router=SimpleNamespace(on_complete=lambda w, info, ok: completions.append(ok)))
    source = FakeSource(reads, error)
    worker = Worker("grpc://127.0.0.1:1")
    worker.begin()
    run = StreamRun(prep, Attempt(prep, worker, source), state, sse=sse)
    return run, source, completions


async def _drive(run: StreamRun, steps: int | None = None) -> list:
    """Step the run to its end (or ``steps`` times, then close it as a leaving client)."""
    out = []
    try:
        for _ in range(steps if steps is not None else 10**9):
            got = run.step()
            out.extend(_events(got) if run.sse else got)
            if run.finished:
                break
            await run.wait()
    finally:
        await run.close()
    return out


def _events(body: bytes) -> list:
    out = []
    for part in body.split(b"\n\n"):
        if part:
            assert part.startswith(b"data: ")
            out.append("[DONE]" if part == b"data: [DONE]" else orjson.loads(part[6:]))
    return out


def _summary(events: list) -> dict:
    """Per choice: the concatenated content/reasoning, the finish; plus usage and the end."""
    out: dict = {"usage": None, "done": events[-1] == "[DONE]" if events else False, "errors": []}
    for e in events:
        if e == "[DONE]":
            continue
        if "error" in e:
            out["errors"].append(e["error"]["message"])
            continue
        if e.get("usage"):
            out["usage"] = e["usage"]
        for c in e["choices"]:
            ch = out.setdefault(c["index"], {"content": "", "reasoning": "", "finish": None, "role_first": None})
            delta = c.get("delta", {})
            if ch["role_first"] is None:
                ch["role_first"] = delta.get("role") == "assistant"
            ch["content"] += delta.get("content") or c.get("text") or ""
            ch["reasoning"] += delta.get("reasoning_content") or ""
            if c["finish_reason"] is not None:
                assert ch["finish"] is None, "one finish per choice"
                ch["finish"] = (c["finish_reason"], c.get("matched_stop"))
    return out


def _messages(ids: list[int], cuts: list[int], index: int = 0, as_bytes: bool = True) -> list:
    """The worker's chunks for ``ids`` cut at ``cuts``: serialized SGLang responses (read
    as the lean client does, with ``grpcwire.decode_chunks``) or ``Chunk`` objects."""
    bounds = sorted({c % (len(ids) + 1) for c in cuts} | {0, len(ids)})
    msgs, done = [], 0
    for a, b in zip(bounds, bounds[1:]):
        done += b - a
        if as_bytes:
            msgs.append(sg.GenerateResponse(chunk=sg.GenerateStreamChunk(
                token_ids=ids[a:b], prompt_tokens=5, completion_tokens=done, cached_tokens=2,
                index=index)).SerializeToString())
        else:
            msgs.append(Chunk(index, ids[a:b], 5, done, 2))
    return msgs


def _read(msgs: list) -> list:
    """One read's items as a source hands them over (runs of plain chunks merged)."""
    if msgs and type(msgs[0]) is bytes:
        return grpcwire.decode_chunks(msgs, 2, 3, 8)
    return msgs


def _group(msgs: list, sizes: list[int]) -> list[list]:
    reads, i = [], 0
    for s in sizes:
        if i >= len(msgs):
            break
        reads.append(_read(msgs[i : i + max(1, s)]))
        i += max(1, s)
    if i < len(msgs):
        reads.append(_read(msgs[i:]))
    return reads


def _complete(index: int, ids: list[int], reason: str = "length") -> Complete:
    return Complete(index, reason, None, 5, len(ids), 2, ids)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cuts=st.lists(st.integers(0, 200), max_size=12), sizes=st.lists(st.integers(1, 6), max_size=12),
       as_bytes=st.booleans(), stop=st.sampled_from([None, ["</answer>"], ["狐狸"], ["zzz"]]),
       usage=st.booleans())
async def test_any_batching_gives_what_one_message_per_read_gives(tok, table, cuts, sizes, as_bytes, stop, usage) -> None:
    ids = tok.encode(TEXT, False)
    msgs = _messages(ids, cuts, as_bytes=as_bytes)
    body = {"stop": stop, "stream_options": {"include_usage": usage}}
    one, src_one, _ = await _run(_runtime(tok, table), [_read([m]) for m in msgs] + [[_complete(0, ids)]], **body)
    many, src_many, _ = await _run(_runtime(tok, table), _group(msgs, sizes) + [[_complete(0, ids)]], **body)
    expected = _summary(await _drive(one))
    got = _summary(await _drive(many))
    assert got == expected
    assert got[0]["role_first"] and got["done"] and not got["errors"]
    if stop is not None and stop[0] in TEXT:
        assert got[0]["content"] == TEXT[: TEXT.index(stop[0])]
        assert got[0]["finish"] == ("stop", stop[0])
        assert src_many.aborted  # a local stop leaves the worker's stream: aborted there
    else:
        assert got[0]["content"] == TEXT
        assert got[0]["finish"] == ("length", None)
        assert not src_many.aborted
        assert (got["usage"] or {}).get("completion_tokens") == (len(ids) if usage else None)


async def test_one_read_of_plain_chunks_is_one_content_delta(tok, table) -> None:
    ids = tok.encode(TEXT, False)
    run, _, _ = await _run(_runtime(tok, table), [_read(_messages(ids, [3, 7, 11, 20]))])
    events = await _drive(run)
    contents = [e["choices"][0]["delta"].get("content") for e in events[:-1] if e["choices"]]
    assert contents == ["", TEXT, None]  # role, the merged delta, the finish ("abort": no Complete)
    assert events[-2]["choices"][0]["finish_reason"] == "abort"


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(order=st.permutations(list(range(8))), sizes=st.lists(st.integers(1, 5), max_size=8))
async def test_n_choices_interleaved_in_any_order_keep_their_text(tok, table, order, sizes) -> None:
    ids = tok.encode(TEXT, False)
    per_choice = [_messages(ids, [5, 9, 30], index=i) for i in (0, 1)]  # 4 messages each
    # any interleaving that keeps each choice's own order
    queues = [list(per_choice[0]), list(per_choice[1])]
    msgs = [queues[k % 2].pop(0) for k in order if queues[k % 2]]
    msgs += queues[0] + queues[1]
    reads = _group(msgs, sizes) + [[_complete(0, ids), _complete(1, ids, "stop")]]
    run, _, _ = await _run(_runtime(tok, table), reads, n=2)
    got = _summary(await _drive(run))
    for i, reason in ((0, "length"), (1, "stop")):
        assert got[i]["content"] == TEXT and got[i]["role_first"] and got[i]["finish"] == (reason, None)


async def test_logprobs_chunks_are_sent_one_event_each(tok, table) -> None:
    ids = tok.encode("Hello world again", False)
    msgs = [Chunk(0, [t], 5, k + 1, 0, Logprobs([-0.5], [t], [([-0.5], [t])])) for k, t in enumerate(ids)]
    run, _, _ = await _run(_runtime(tok, table), [msgs, [_complete(0, ids)]], logprobs=True, top_logprobs=1)
    events = await _drive(run)
    with_lp = [e["choices"][0] for e in events if e != "[DONE]" and e["choices"] and e["choices"][0]["logprobs"]]
    assert len(with_lp) == len(ids)
    assert [c["logprobs"]["content"][0]["token"] for c in with_lp] == [tok.decode([t], skip_special_tokens=False) for t in ids]
    assert "".join(c["delta"].get("content", "") for c in with_lp) == "Hello world again"


async def test_a_reasoning_parser_splits_the_same_however_batched(tok, table) -> None:
    text = "<think>step one, step two</think>The answer is 42."
    ids = tok.encode(text, False)
    rt = _runtime(tok, table, get_reasoning_parser("deepseek_r1"))
    ones, manys = [], []
    for cuts, sizes, out in (([k for k in range(len(ids))], [1] * len(ids), ones), ([2, 5, 9], [3], manys)):
        run, _, _ = await _run(rt, _group(_messages(ids, cuts), sizes) + [[_complete(0, ids)]])
        out.append(_summary(await _drive(run)))
    assert ones == manys
    assert manys[0][0]["content"] == "The answer is 42." and "step two" in manys[0][0]["reasoning"]


async def test_text_completions_echo_and_dict_events(tok, table) -> None:
    ids = tok.encode(TEXT, False)
    run, _, _ = await _run(_runtime(tok, table), [_read(_messages(ids, [4, 8]))], kind="text", sse=False, echo=True)
    events = await _drive(run)
    assert all(isinstance(e, dict) for e in events)  # chunk dicts, no [DONE]
    text = "".join(c["text"] for e in events for c in e["choices"])
    assert text == "hi" + TEXT


async def test_a_worker_error_mid_stream_is_one_error_event_and_a_failure(tok, table) -> None:
    ids = tok.encode(TEXT, False)
    error = WorkerCallError("worker w: INTERNAL: boom", status=502, retryable=False)
    run, source, completions = await _run(_runtime(tok, table), [_read(_messages(ids[:5], [2]))], error=error)
    got = _summary(await _drive(run))
    assert got[0]["content"] == tok.decode(ids[:5]) and got["errors"] == ["worker w: INTERNAL: boom"]
    assert got["done"] and got[0]["finish"] is None
    worker = run.attempt.worker
    assert worker.load == 0 and worker.breaker.consecutive_failures == 1 and completions == [False]


async def test_a_client_that_leaves_aborts_without_blaming_the_worker(tok, table) -> None:
    ids = tok.encode(TEXT, False)
    run, source, completions = await _run(_runtime(tok, table), [_read([m]) for m in _messages(ids, [2, 4, 6, 8])])
    await _drive(run, steps=2)  # the client is gone after two reads
    assert source.aborted and not run.finished
    worker = run.attempt.worker
    assert worker.load == 0 and worker.breaker.consecutive_failures == 0 and completions == [True]


async def test_a_worker_that_sends_only_complete(tok, table) -> None:
    ids = tok.encode(TEXT, False)
    run, source, completions = await _run(_runtime(tok, table), [[_complete(0, ids, "stop")]])
    got = _summary(await _drive(run))
    assert got[0]["content"] == TEXT and got[0]["finish"] == ("stop", None) and completions == [True]
    assert run.attempt.worker.breaker.consecutive_successes == 1
