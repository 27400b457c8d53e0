"""smg.h2.frames: header blocks any HPACK decoder reads without state, gRPC's
percent-encoding of grpc-message, frame layout."""

from __future__ import annotations

import hpack
from hypothesis import given, settings, strategies as st

from smg.h2 import frames as f

HEADERS = [(":method", "POST"), (":scheme", "http"), (":path", "/pkg.Svc/Generate"),
           (":authority", "127.0.0.1:30001"), ("content-type", "application/grpc"),
           ("te", "trailers"), ("grpc-timeout", "5000m"), (":status", "200"),
           ("x-long", "v" * 300)]


def test_header_block_decodes_and_leaves_the_table_alone() -> None:
    decoder = hpack.Decoder()
    block = f.header_block(HEADERS)
    for _ in range(2):  # the same bytes mean the same thing every time
        assert decoder.decode(block) == HEADERS
    assert len(decoder.header_table.dynamic_entries) == 0


@given(st.lists(st.tuples(st.from_regex(r"[a-z][a-z0-9-]{0,20}", fullmatch=True),
                          st.text(st.characters(min_codepoint=32, max_codepoint=0x10FFFF,
                                                exclude_categories=("Cs",)), max_size=200)),
                max_size=8))
@settings(max_examples=40, deadline=None)
def test_header_block_round_trips(headers) -> None:
    assert hpack.Decoder().decode(f.header_block(headers)) == headers


@given(st.text(max_size=100))
def test_percent_encoding_round_trips(text) -> None:
    encoded = f.percent_encode(text.encode("utf-8", "replace").decode("utf-8"))
    assert all(0x20 <= ord(c) < 0x7F for c in encoded)
    assert f.percent_decode(encoded) == text.encode("utf-8", "replace").decode("utf-8")


def test_percent_decode_keeps_malformed_escapes() -> None:
    assert f.percent_decode("100%") == "100%"
    assert f.percent_decode("%zz and %4") == "%zz and %4"
    assert f.percent_decode("caf%C3%A9 %25") == "café %"


def test_frame_layout() -> None:
    data = f.frame(f.DATA, f.END_STREAM, 5, b"x" * 70000)
    assert data[:9] == bytes((0x01, 0x11, 0x70, f.DATA, f.END_STREAM, 0, 0, 0, 5))
    assert f.window_update(3, 1 << 20)[9:] == (1 << 20).to_bytes(4, "big")
    assert f.rst_stream(7, f.CANCEL) == bytes((0, 0, 4, f.RST_STREAM, 0, 0, 0, 0, 7, 0, 0, 0, 8))
    assert f.grpc_message(b"abc") == b"\x00\x00\x00\x00\x03abc"
