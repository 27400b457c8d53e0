"""EventFramer: a worker's event stream leaves in whole events whatever its reads."""

from __future__ import annotations

from hypothesis import given, strategies as st

from smg.http.sse import EventFramer

STREAM = b'data: {"a": 1}\n\ndata: {"b": "x\\ny"}\n\n: comment\n\ndata: [DONE]\n\n'


@given(st.lists(st.integers(0, len(STREAM)), max_size=8))
def test_any_split_gives_the_same_whole_events(cuts):
    framer = EventFramer()
    bounds = [0, *sorted(cuts), len(STREAM)]
    out = [framer.feed(STREAM[a:b]) for a, b in zip(bounds, bounds[1:])]
    assert b"".join(out) == STREAM
    assert all(piece.endswith(b"\n\n") for piece in out if piece)
    assert framer.done and framer.held == b""


def test_a_cut_event_is_held_back_and_done_needs_the_last_event():
    framer = EventFramer()
    assert framer.feed(b'data: {"a": 1}\n\ndata: {"tr') == b'data: {"a": 1}\n\n'
    assert framer.held == b'data: {"tr' and not framer.done
    crlf = EventFramer()
    assert crlf.feed(b"data: 1\r\n\r\ndata: [DONE]\r\n\r\n") == b"data: 1\r\n\r\ndata: [DONE]\r\n\r\n"
    assert crlf.done
