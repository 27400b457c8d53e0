"""The lean server's HPACK decoder agrees with the ``hpack`` package on encoder output."""

from __future__ import annotations

import random

import hpack
import pytest

from smg.engine.grpc.hpackdec import HpackDecoder, HpackError


def _blocks(seed: int):
    rng = random.Random(seed)
    enc = hpack.Encoder()
    enc.header_table_size = rng.choice([4096, 256, 0])
    names = ["content-type", "te", "grpc-timeout", "x-smg-fault", "traceparent", "user-agent", "x-a"]
    for i in range(60):
        headers = [(":method", "POST"), (":scheme", "http"),
                   (":path", f"/sglang.grpc.scheduler.SglangScheduler/{rng.choice(['Generate', 'Abort'])}"),
                   (":authority", "127.0.0.1:30001")]
        for _ in range(rng.randint(0, 6)):
            headers.append((rng.choice(names), "".join(rng.choice("abcxyz-019 /") for _ in range(rng.randint(0, 300)))))
        sensitive = [hpack.NeverIndexedHeaderTuple(*h) if rng.random() < 0.2 else h for h in headers]
        yield headers, enc.encode(sensitive, huffman=rng.random() < 0.7)


@pytest.mark.parametrize("seed", range(6))
def test_decodes_what_hpack_encodes(seed: int) -> None:
    ours, theirs = HpackDecoder(), hpack.Decoder()
    for headers, block in _blocks(seed):
        expected = [(str(n), str(v)) for n, v in theirs.decode(block)]
        assert ours.decode(block) == expected == headers
        assert [e[:2] for e in ours.dynamic] == [(n.decode(), v.decode()) for n, v in theirs.header_table.dynamic_entries]


@pytest.mark.parametrize(
    "block",
    [b"\xff\xff\xff\xff\xff\xff\x01", b"\xbf\x7f", b"\x40\x85abc", b"\x3f\xe1\x7f"],
    ids=["long-int", "bad-index", "truncated", "table-too-big"],
)
def test_broken_blocks_raise(block: bytes) -> None:
    with pytest.raises(HpackError):
        HpackDecoder().decode(block)


def test_server_header_blocks_decode_back() -> None:
    """What the lean server sends (stateless literals, long values) is valid HPACK."""
    from smg.h2.frames import header_block, percent_encode

    message = "no matching prefill for bootstrap room 7 — 100% " + "x" * 300
    block = header_block([(":status", "200"), ("content-type", "application/grpc"),
                          ("grpc-status", "4"), ("grpc-message", percent_encode(message))])
    decoded = dict(hpack.Decoder().decode(block))
    assert decoded[":status"] == "200" and decoded["grpc-status"] == "4"
    from urllib.parse import unquote

    assert unquote(decoded["grpc-message"]) == message
    assert percent_encode("plain text") == "plain text"
    assert percent_encode("50%") == "50%25"
