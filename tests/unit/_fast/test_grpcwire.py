"""grpcwire.decode_chunk: what reading the upb-parsed GenerateResponse gives, for both
protos; None whenever the general path must decide; the compiled kernel and the Python
twin agree on any bytes."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smg._fast import NO_EXTENSIONS
from smg._proto import sglang_scheduler_pb2 as sg, vllm_engine_pb2 as vl
from tests.conftest import kernel_impls

impls = pytest.mark.parametrize("impl", kernel_impls("grpcwire"))
FIELDS = {"sglang": (2, 3, 8), "vllm": (1, 2, 7)}
PB = {"sglang": sg, "vllm": vl}
u32 = st.integers(0, 2**32 - 1)


def expected(pb, raw: bytes):
    """The reading of the parsed message that the kernel stands in for."""
    msg = pb.GenerateResponse.FromString(raw)
    if msg.WhichOneof("response") != "chunk" or msg.chunk.HasField("output_logprobs"):
        return None
    c = msg.chunk
    return (c.index, list(c.token_ids), c.prompt_tokens, c.completion_tokens, c.cached_tokens)


@st.composite
def chunks(draw, proto: str):
    pb = PB[proto]
    chunk = pb.GenerateStreamChunk(token_ids=draw(st.lists(u32, max_size=20)),
                                   prompt_tokens=draw(u32), completion_tokens=draw(u32),
                                   cached_tokens=draw(u32), index=draw(u32))
    if proto == "sglang":
        chunk.reasoning_tokens = draw(u32)
        chunk.hidden_states.extend(draw(st.lists(st.floats(width=32, allow_nan=False), max_size=3)))
    kwargs = {"request_id": draw(st.text(max_size=10))} if proto == "sglang" else {}
    return pb.GenerateResponse(chunk=chunk, **kwargs).SerializeToString()


@impls
@pytest.mark.parametrize("proto", ["sglang", "vllm"])
@given(data=st.data())
@settings(max_examples=150, deadline=None)
def test_matches_the_parsed_message(impl, proto, data) -> None:
    raw = data.draw(chunks(proto))
    assert impl.module.decode_chunk(raw, *FIELDS[proto]) == expected(PB[proto], raw)


@impls
@pytest.mark.parametrize("proto", ["sglang", "vllm"])
def test_what_goes_the_general_way(impl, proto) -> None:
    pb, fields = PB[proto], FIELDS[proto]
    decode = impl.module.decode_chunk
    complete = pb.GenerateResponse(complete=pb.GenerateComplete(output_ids=[1], finish_reason="stop"))
    with_logprobs = pb.GenerateResponse(chunk=pb.GenerateStreamChunk(
        token_ids=[1], output_logprobs=pb.OutputLogProbs(token_logprobs=[-0.5], token_ids=[1])))
    plain = pb.GenerateResponse(chunk=pb.GenerateStreamChunk(token_ids=[7, 8], completion_tokens=2))
    for raw in (complete.SerializeToString(), with_logprobs.SerializeToString(), b"",
                plain.SerializeToString()[:-1],  # cut off
                plain.SerializeToString() * 2):  # the chunk field twice: protobuf merges
        assert decode(raw, *fields) is None
    assert decode(plain.SerializeToString(), *fields) == (0, [7, 8], 0, 2, 0)


@impls
def test_unpacked_ids_and_repeated_scalars_follow_protobuf(impl) -> None:
    def key(field: int, wire: int) -> bytes:
        return bytes([field << 3 | wire])

    # token_ids unpacked (wire type 0) and packed mixed; completion_tokens twice (last wins);
    # a 10-byte varint truncated to uint32
    big = b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01"
    body = (key(1, 0) + b"\x05" + key(1, 2) + b"\x02\x06\x07" + key(3, 0) + b"\x01"
            + key(3, 0) + b"\x09" + key(1, 0) + big)
    raw = key(2, 2) + bytes([len(body)]) + body
    want = expected(sg, raw)
    assert want == (0, [5, 6, 7, 2**32 - 1], 0, 9, 0)
    assert impl.module.decode_chunk(raw, *FIELDS["sglang"]) == want


@st.composite
def damaged(draw):
    """Any bytes, or a valid chunk with one byte changed or its end cut off."""
    proto = draw(st.sampled_from(sorted(FIELDS)))
    if draw(st.booleans()):
        return draw(st.binary(max_size=64)), FIELDS[proto]
    raw = bytearray(draw(chunks(proto)))
    if raw and draw(st.booleans()):
        raw[draw(st.integers(0, len(raw) - 1))] = draw(st.integers(0, 255))
    else:
        del raw[draw(st.integers(0, len(raw))):]
    return bytes(raw), FIELDS[proto]


@pytest.mark.c_extension
@pytest.mark.skipif(NO_EXTENSIONS, reason="SMG_NO_EXTENSIONS=1: pure-Python run")
@given(damaged())
@settings(max_examples=400, deadline=None)
def test_compiled_and_twin_agree_on_any_bytes(case) -> None:
    from smg._fast import grpcwire_c, grpcwire_py

    raw, fields = case
    assert grpcwire_c.decode_chunk(raw, *fields) == grpcwire_py.decode_chunk(raw, *fields)


@impls
@given(st.text(max_size=30), st.lists(u32, max_size=300), st.sampled_from([2, 5, 300]))
@settings(max_examples=150, deadline=None)
def test_encode_tokenized_is_protobufs_encoding(impl, text, ids, field) -> None:
    msg = sg.TokenizedInput(original_text=text, input_ids=ids)
    want = bytes([field << 3 | 2] if field < 16 else [(field << 3 | 2) & 0x7F | 0x80, field >> 4])
    body = msg.SerializeToString()
    want += bytes([len(body)]) if len(body) < 128 else _varint(len(body))
    assert impl.module.encode_tokenized(field, text, ids) == want + body


def _varint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


@impls
def test_encode_tokenized_rejects_what_protobuf_rejects(impl) -> None:
    for bad in (-1, 2**32, 2**70):
        with pytest.raises(ValueError):
            sg.TokenizedInput(input_ids=[bad])
        with pytest.raises(ValueError):
            impl.module.encode_tokenized(2, "", [1, bad])
