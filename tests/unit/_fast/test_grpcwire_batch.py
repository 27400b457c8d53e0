"""grpcwire.decode_chunks: a worker read's messages at once. It is ``decode_chunk`` on
each message with runs of plain chunks of one choice merged (ids concatenated, counts as
applied in order, per-message marks), messages for the general path passed through as
bytes in order; the compiled kernel and the Python twin agree on any messages."""

from __future__ import annotations

import collections

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smg._proto import sglang_scheduler_pb2 as sg, vllm_engine_pb2 as vl
from tests.conftest import kernel_impls

impls = pytest.mark.parametrize("impl", kernel_impls("grpcwire"))
FIELDS = {"sglang": (2, 3, 8), "vllm": (1, 2, 7)}
PB = {"sglang": sg, "vllm": vl}
small = st.integers(0, 3)
count = st.integers(0, 2**32 - 1)


@st.composite
def message(draw, proto: str) -> bytes:
    pb = PB[proto]
    kind = draw(st.sampled_from(["chunk", "chunk", "chunk", "complete", "logprobs", "junk"]))
    if kind == "junk":
        return draw(st.binary(max_size=12))
    if kind == "complete":
        return pb.GenerateResponse(complete=pb.GenerateComplete(
            output_ids=draw(st.lists(count, max_size=3)), finish_reason="stop", index=draw(small))).SerializeToString()
    chunk = pb.GenerateStreamChunk(token_ids=draw(st.lists(count, max_size=6)), prompt_tokens=draw(st.sampled_from([0, 7, 9])),
                                   completion_tokens=draw(count), cached_tokens=draw(st.integers(0, 50)), index=draw(small))
    if kind == "logprobs":
        chunk.output_logprobs.CopyFrom(pb.OutputLogProbs(token_logprobs=[-0.5], token_ids=[1]))
    return pb.GenerateResponse(chunk=chunk).SerializeToString()


def reference(decode_chunk, raws: list[bytes], fields) -> list:
    """The specification spelled out: per-message decode, runs merged by hand."""
    out: list = []
    for raw in raws:
        t = decode_chunk(raw, *fields)
        if t is None:
            out.append(raw)
            continue
        index, ids, prompt, completion, cached = t
        last = out[-1] if out else None
        if type(last) is tuple and last[0] == index:
            ids = last[1] + ids
            marks = last[5] + [len(ids), completion]
            out[-1] = (index, ids, prompt or last[2], completion, max(cached, last[4]), marks)
        else:
            out.append((index, ids, prompt, completion, cached, [len(ids), completion]))
    return out


@impls
@pytest.mark.parametrize("proto", ["sglang", "vllm"])
@given(data=st.data())
@settings(max_examples=100, deadline=None)
def test_is_decode_chunk_with_runs_merged(impl, proto, data) -> None:
    raws = data.draw(st.lists(message(proto), max_size=12))
    fields = FIELDS[proto]
    want = reference(impl.module.decode_chunk, raws, fields)
    assert impl.module.decode_chunks(raws, *fields) == want
    assert impl.module.decode_chunks(collections.deque(raws), *fields) == want  # any iterable


@impls
def test_a_read_of_one_choice_is_one_run(impl) -> None:
    raws = [sg.GenerateResponse(chunk=sg.GenerateStreamChunk(token_ids=[10 + k], prompt_tokens=4,
                                                             completion_tokens=k + 1)).SerializeToString()
            for k in range(4)]
    complete = sg.GenerateResponse(complete=sg.GenerateComplete(finish_reason="length")).SerializeToString()
    got = impl.module.decode_chunks(raws + [complete], *FIELDS["sglang"])
    assert got == [(0, [10, 11, 12, 13], 4, 4, 0, [1, 1, 2, 2, 3, 3, 4, 4]), complete]


@impls
def test_interleaved_choices_make_runs_of_their_own(impl) -> None:
    def chunk(index: int, tid: int) -> bytes:
        return vl.GenerateResponse(chunk=vl.GenerateStreamChunk(token_ids=[tid], index=index,
                                                                completion_tokens=tid)).SerializeToString()

    got = impl.module.decode_chunks([chunk(0, 1), chunk(1, 1), chunk(1, 2), chunk(0, 2)], *FIELDS["vllm"])
    assert got == [(0, [1], 0, 1, 0, [1, 1]), (1, [1, 2], 0, 2, 0, [1, 1, 2, 2]), (0, [2], 0, 2, 0, [1, 2])]


@impls
def test_bad_bytes_pass_through_and_end_the_run(impl) -> None:
    ok = sg.GenerateResponse(chunk=sg.GenerateStreamChunk(token_ids=[5], completion_tokens=1)).SerializeToString()
    cut = ok[:-1]
    assert impl.module.decode_chunks([ok, cut, ok], *FIELDS["sglang"]) == [
        (0, [5], 0, 1, 0, [1, 1]), cut, (0, [5], 0, 1, 0, [1, 1])]
    assert impl.module.decode_chunks([], *FIELDS["sglang"]) == []
