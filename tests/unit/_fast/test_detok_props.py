"""Property tests for detok on synthetic tables: both twins against Python's UTF-8 decoder and each other."""

from __future__ import annotations

import importlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smg._fast import NO_EXTENSIONS
from smg._fast.detok_build import TableSpec
from tests.conftest import kernel_impls

impls = pytest.mark.parametrize("impl", kernel_impls("detok"))

# Pieces are short byte strings, mostly UTF-8 fragments, so characters split across tokens.
_frag = st.sampled_from([b"a", b" ", b"\xe4", b"\xb8", b"\xad", b"\xf0\x9f", b"\x98\x80", b"\x80", b"\xff",
                         b"\xed\xa0", b"\xc3", b"\xa9", b"\xe2\x80\x8d", b"\xef\xbf\xbd", b"xyz", b" \xe4\xb8"])
_piece = st.lists(_frag, max_size=3).map(b"".join)


@st.composite
def tables(draw, sentencepiece: bool = False) -> TableSpec:
    pieces = draw(st.lists(st.one_of(st.none(), _piece), min_size=1, max_size=24))
    special = frozenset(draw(st.sets(st.integers(0, len(pieces) - 1), max_size=4)))
    if not sentencepiece:
        return TableSpec("synthetic", pieces, special, {})
    first = {i: p[1:] for i, p in enumerate(pieces) if p and p[:1] == b" "}
    return TableSpec("synthetic", pieces, special, first, strip_first_space=draw(st.booleans()))


def _ids(spec: TableSpec) -> st.SearchStrategy[list[int]]:
    return st.lists(st.integers(-2, len(spec.pieces) + 2), max_size=40)


def _run(module, spec: TableSpec, ids: list[int], groups: list[int], skip: bool, tail: list[int]) -> list[str]:
    d = module.Detokenizer(module.DetokTable(spec), skip_special_tokens=skip, prompt_tail=tail)
    out, k, g = [], 0, 0
    while k < len(ids):
        n = groups[g % len(groups)] if groups else 1
        g += 1
        out.append(d.step(ids[k]) if n == 1 else d.step_many(ids[k : k + n]))
        assert len(d.pending) <= 3
        k += n
    out.append(d.flush())
    return out


@impls
@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_stream_equals_lossy_decode_of_all_bytes(impl, data):
    spec = data.draw(tables())
    ids = data.draw(_ids(spec))
    groups = data.draw(st.lists(st.integers(1, 5), max_size=4))
    skip = data.draw(st.booleans())
    visible = b"".join(spec.pieces[i] or b"" for i in ids
                       if 0 <= i < len(spec.pieces) and not (skip and i in spec.special))
    got = "".join(_run(impl.module, spec, ids, groups, skip, []))
    assert got == visible.decode("utf-8", "replace")


@impls
@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_deltas_are_complete_prefixes(impl, data):
    """Each delta only ever extends the text: after step k the output is the decodable prefix."""
    spec = data.draw(tables())
    ids = data.draw(_ids(spec))
    out = _run(impl.module, spec, ids, [1], False, [])
    seen = b""
    for k, i in enumerate(ids):
        seen += (spec.pieces[i] or b"") if 0 <= i < len(spec.pieces) else b""
        full = seen.decode("utf-8", "replace")
        text = "".join(out[: k + 1])
        assert full.startswith(text) and len(full) - len(text) <= 1  # at most one char withheld


@pytest.mark.c_extension
@pytest.mark.skipif(NO_EXTENSIONS, reason="SMG_NO_EXTENSIONS=1: pure-Python run")
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_c_equals_python(data):
    py = importlib.import_module("smg._fast.detok_py")
    c = importlib.import_module("smg._fast.detok_c")
    spec = data.draw(tables(sentencepiece=data.draw(st.booleans())))
    ids = data.draw(_ids(spec))
    tail = data.draw(st.lists(st.integers(-1, len(spec.pieces)), max_size=10))
    groups = data.draw(st.lists(st.integers(1, 5), max_size=4))
    skip = data.draw(st.booleans())
    assert _run(c, spec, ids, groups, skip, tail) == _run(py, spec, ids, groups, skip, tail)
    chunks = [ids[k : k + 3] for k in range(0, len(ids), 3)]
    outs = []
    for module in (py, c):
        table = module.DetokTable(spec)
        dets = [module.Detokenizer(table, skip, tail), module.Detokenizer(table, not skip)]
        outs.append([module.detokenize_batch(dets, [chunk, chunk[::-1]]) for chunk in chunks])
        outs[-1].append([d.flush() for d in dets])
    assert outs[0] == outs[1]
