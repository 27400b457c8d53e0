"""Decode a streamed ``GenerateResponse`` chunk straight from its protobuf bytes.

The specification of ``smg._fast.grpcwire``. The gateway's lean gRPC client gets one
``GenerateResponse`` per generated step; building a upb message and reading it back
field by field costs more than the rest of the message's handling, so the common case
is decoded here:

    decode_chunk(raw, chunk_field, complete_field, index_field)
        -> (index, token_ids, prompt_tokens, completion_tokens, cached_tokens) | None

``raw`` is a serialized ``GenerateResponse`` whose oneof ``response`` holds a
``GenerateStreamChunk`` at field ``chunk_field`` (SGLang 2, vLLM 1; ``complete_field``
is 3 / 2, ``index_field`` 8 / 7). The result is what reading the parsed message gives:
``token_ids`` (field 1, packed or not, as uint32), the counts (fields 2, 3, 4, uint32),
the choice index, with protobuf's rules (last value of a scalar wins, repeated values
concatenate, unknown fields are skipped). None means "parse it the general way": the
response is not a chunk (a complete, or nothing), the chunk field occurs more than once,
the chunk carries ``output_logprobs`` (field 5), or the bytes are malformed.

    decode_chunks(messages, chunk_field, complete_field, index_field) -> list

Every message of one worker read at once: ``decode_chunk`` on each, with each run of
consecutive plain chunks of one choice merged into one tuple
``(index, token_ids, prompt_tokens, completion_tokens, cached_tokens, marks)``: the ids
concatenated, the counts as applying the run's messages in order leaves them (the last
non-zero prompt count, the largest cached count, the last completion count) and
``marks`` = ``[end, completion_tokens, ...]``, per message of the run where its ids end
in ``token_ids`` and its completion count. A message that ``decode_chunk`` leaves to
the general path comes through as its bytes, in order, and ends the run before it.

    encode_tokenized(field, original_text, input_ids) -> bytes

The other way, for the request: field ``field`` (a ``TokenizedInput``: ``original_text``
= 1, packed ``input_ids`` = 2, both protos) as serialized protobuf bytes, to append to a
serialized ``GenerateRequest`` built without it (protobuf reads fields in any order).
The field is written even when empty (it is set, as ``SetInParent`` does); empty text
and no ids are left out inside it, as protobuf does. An id that is not a uint32 is a
ValueError, as in protobuf.
"""

from __future__ import annotations

__all__ = ["decode_chunk", "decode_chunks", "encode_tokenized"]

_MASK32 = 0xFFFFFFFF


def _varint(data: bytes, pos: int, end: int) -> tuple[int, int]:
    """(value, next position); position -1 when the varint is cut off or too long."""
    value = shift = 0
    while pos < end:
        b = data[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value & 0xFFFFFFFFFFFFFFFF, pos
        shift += 7
        if shift >= 70:
            return 0, -1
    return 0, -1


def _skip(data: bytes, pos: int, end: int, wire: int) -> int:
    """Position after a field's value of wire type ``wire``; -1 if malformed."""
    if wire == 0:
        return _varint(data, pos, end)[1]
    if wire == 1:
        return pos + 8 if pos + 8 <= end else -1
    if wire == 2:
        n, pos = _varint(data, pos, end)
        return pos + n if pos >= 0 and pos + n <= end else -1
    if wire == 5:
        return pos + 4 if pos + 4 <= end else -1
    return -1  # groups (3, 4) and invalid types


def _chunk(data: bytes, pos: int, end: int, index_field: int):
    ids: list[int] = []
    counts = [0, 0, 0, 0]  # prompt, completion, cached, index
    while pos < end:
        key, pos = _varint(data, pos, end)
        if pos < 0:
            return None
        field, wire = key >> 3, key & 7
        if field == 0:
            return None
        if field == 1 and wire == 2:
            n, pos = _varint(data, pos, end)
            if pos < 0 or pos + n > end:
                return None
            stop = pos + n
            while pos < stop:
                v, pos = _varint(data, pos, stop)
                if pos < 0:
                    return None
                ids.append(v & _MASK32)
        elif field == 1 and wire == 0:
            v, pos = _varint(data, pos, end)
            if pos < 0:
                return None
            ids.append(v & _MASK32)
        elif field == 5:
            return None  # output_logprobs: the general path
        elif wire == 0 and (field in (2, 3, 4) or field == index_field):
            v, pos = _varint(data, pos, end)
            if pos < 0:
                return None
            counts[3 if field == index_field else field - 2] = v & _MASK32
        else:
            pos = _skip(data, pos, end, wire)
            if pos < 0:
                return None
    return counts[3], ids, counts[0], counts[1], counts[2]


def decode_chunk(raw: bytes, chunk_field: int, complete_field: int, index_field: int):
    pos, end = 0, len(raw)
    found: tuple[int, int] | None = None
    while pos < end:
        key, pos = _varint(raw, pos, end)
        if pos < 0:
            return None
        field, wire = key >> 3, key & 7
        if field == 0 or field == complete_field:
            return None
        if field == chunk_field:
            if wire != 2 or found is not None:
                return None
            n, pos = _varint(raw, pos, end)
            if pos < 0 or pos + n > end:
                return None
            found = (pos, pos + n)
            pos += n
        else:
            pos = _skip(raw, pos, end, wire)
            if pos < 0:
                return None
    if found is None:
        return None
    return _chunk(raw, found[0], found[1], index_field)


def decode_chunks(messages, chunk_field: int, complete_field: int, index_field: int) -> list:
    out: list = []
    run: list | None = None  # [index, ids, prompt, completion, cached, marks]
    for raw in messages:
        t = decode_chunk(raw, chunk_field, complete_field, index_field)
        if t is None:
            if run is not None:
                out.append(tuple(run))
                run = None
            out.append(raw)
            continue
        index, ids, prompt, completion, cached = t
        if run is not None and run[0] == index:
            run[1] += ids
            if prompt:
                run[2] = prompt
            run[3] = completion
            run[4] = max(run[4], cached)
            run[5] += [len(run[1]), completion]
        else:
            if run is not None:
                out.append(tuple(run))
            run = [index, ids, prompt, completion, cached, [len(ids), completion]]
    if run is not None:
        out.append(tuple(run))
    return out


def _put_varint(out: bytearray, value: int) -> None:
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)


def encode_tokenized(field: int, original_text: str, input_ids) -> bytes:
    inner = bytearray()
    if original_text:
        text = original_text.encode("utf-8")
        inner.append(0x0A)  # field 1, length-delimited
        _put_varint(inner, len(text))
        inner += text
    if len(input_ids):
        packed = bytearray()
        for v in input_ids:
            v = int(v)
            if not 0 <= v <= _MASK32:
                raise ValueError(f"Value out of range: {v}")
            _put_varint(packed, v)
        inner.append(0x12)  # field 2, length-delimited
        _put_varint(inner, len(packed))
        inner += packed
    out = bytearray()
    _put_varint(out, field << 3 | 2)
    _put_varint(out, len(inner))
    return bytes(out + inner)
