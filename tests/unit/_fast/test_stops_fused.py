"""StreamDecoder (detok fused with stops): reference semantics, grouping invariance, C == Python."""

from __future__ import annotations

import functools
import importlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tokenizers import Tokenizer

from smg._fast import NO_EXTENSIONS
from smg._fast.detok_build import TableSpec, spec_from_hf
from tests.conftest import kernel_impls

impls = pytest.mark.parametrize("impl", kernel_impls("stops"))

PIECES = [b"a", b"b", b" ", b"\xe4\xb8", b"\xad", b"\xe4\xb8\xad", b"\xff", b"ab", b"<s>", b"\xef\xbf\xbd", b"\xf0\x9f"]
SPEC = TableSpec("synthetic", PIECES, frozenset({8}), {})
STOP_TEXTS = st.text("ab 中\ufffd<s>", min_size=1, max_size=4)


def detok_modules(impl):
    return importlib.import_module(f"smg._fast.detok_{impl.tag}"), impl.module


def reference(spec: TableSpec, ids, stops, stop_ids, include, min_tokens, skip):
    """Per-token texts from the detok twin, then the earliest armed stop by brute force."""
    from smg._fast.detok_py import DetokTable, Detokenizer

    d = Detokenizer(DetokTable(spec), skip_special_tokens=skip)
    text = ""
    for t, tid in enumerate(ids, start=1):
        armed = t > min_tokens
        if armed and tid in stop_ids:
            tail = d.step(tid) if include else ""
            return text + tail + d.flush(), tid
        before = len(text)
        text += d.step(tid)
        if not armed:
            continue
        for end in range(before + 1, len(text) + 1):
            hits = [s for s in stops if text[:end].endswith(s)]
            if hits:
                stop = max(hits, key=len)
                return text[: end if include else end - len(stop)], stop
    return text + d.flush(), None


def run(detok, stops_mod, spec, ids, groups, kw, batch=False):
    dec = stops_mod.StreamDecoder(detok.DetokTable(spec), **kw)
    out, k, g = [], 0, 0
    while k < len(ids):
        n = groups[g % len(groups)]
        g += 1
        chunk = ids[k : k + n]
        r = stops_mod.stream_batch([dec], [chunk])[0] if batch else (dec.step(chunk[0]) if n == 1 else dec.step_many(chunk))
        out.append(tuple(r))
        k += n
        if r.finished:
            break
    out.append(tuple(dec.flush()))
    return out


@st.composite
def cases(draw):
    ids = draw(st.lists(st.integers(-1, len(PIECES)), max_size=30))
    stops = draw(st.lists(STOP_TEXTS, max_size=4))
    if stops and draw(st.booleans()):
        stops.append("q" * 600)  # too long for the compiled DFA: KMP per stop
    kw = dict(
        stops=stops,
        stop_token_ids=draw(st.lists(st.integers(0, len(PIECES) - 1), max_size=2)),
        include_stop=draw(st.booleans()),
        min_tokens=draw(st.integers(0, 6)),
        skip_special_tokens=draw(st.booleans()),
    )
    return ids, kw, draw(st.lists(st.integers(1, 6), min_size=1, max_size=4))


def check_against_reference(results, ids, kw):
    want_text, want_matched = reference(SPEC, ids, kw["stops"], set(kw["stop_token_ids"]), kw["include_stop"],
                                        kw["min_tokens"], kw["skip_special_tokens"])
    assert "".join(text for text, _, _ in results) == want_text
    assert results[-1][1] is True
    finished = [r for r in results if r[1]]
    assert finished[0][2] == want_matched and all(r[0] == "" for r in finished[1:])


@impls
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=cases(), batch=st.booleans())
def test_stream_decoder_matches_reference_for_any_grouping(impl, case, batch):
    ids, kw, groups = case
    detok, stops_mod = detok_modules(impl)
    check_against_reference(run(detok, stops_mod, SPEC, ids, groups, kw, batch), ids, kw)
    check_against_reference(run(detok, stops_mod, SPEC, ids, [1], kw), ids, kw)


@pytest.mark.c_extension
@pytest.mark.skipif(NO_EXTENSIONS, reason="SMG_NO_EXTENSIONS=1: pure-Python run")
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=cases())
def test_c_equals_python_call_by_call(case):
    ids, kw, groups = case
    py = run(importlib.import_module("smg._fast.detok_py"), importlib.import_module("smg._fast.stops_py"),
             SPEC, ids, groups, kw)
    c = run(importlib.import_module("smg._fast.detok_c"), importlib.import_module("smg._fast.stops_c"),
            SPEC, ids, groups, kw)
    assert c == py


@functools.lru_cache(maxsize=None)
def deepseek(path: str):
    tok = Tokenizer.from_file(path)
    return tok, spec_from_hf(tok)


@impls
def test_deepseek_stops_on_real_text(impl, deepseek_tokenizer_json):
    tok, spec = deepseek(str(deepseek_tokenizer_json))
    detok, stops_mod = detok_modules(impl)
    table = detok.DetokTable(spec)
    text = "先说明。然后<think>想一想</think>\nUser: 再见 🙂 done"
    ids = tok.encode(text).ids + [1]
    for stop, include in (("。", False), ("User:", True), ("想一想</think>", False), ("🙂", True)):
        for group in (1, 3, len(ids)):
            dec = stops_mod.StreamDecoder(table, stops=[stop, "never matches"], stop_token_ids=[1],
                                          include_stop=include)
            parts = [dec.step_many(ids[k : k + group]) for k in range(0, len(ids), group)]
            got = "".join(r.text for r in parts) + dec.flush().text
            at = text.index(stop)
            assert got == text[: at + len(stop) if include else at]
            assert dec.finished and dec.matched == stop
    dec = stops_mod.StreamDecoder(table, stops=["zzz"], stop_token_ids=[1], min_tokens=len(ids) - 1)
    res = dec.step_many(ids)
    assert res.text == text and res.finished and res.matched == 1


@impls
def test_min_tokens_defers_stops(impl):
    detok, stops_mod = detok_modules(impl)
    table = detok.DetokTable(SPEC)
    dec = stops_mod.StreamDecoder(table, stops=["ab"], stop_token_ids=[8], min_tokens=3, skip_special_tokens=False)
    assert tuple(dec.step_many([0, 1, 8])) == ("ab<s>", False, None)  # tokens 1..3: not yet
    assert tuple(dec.step(0)) == ("", False, None)                      # "a" held: could become "ab"
    assert tuple(dec.step(1)) == ("", True, "ab")
    assert dec.num_tokens == 5


@impls
def test_fallback_table_and_id_sets(impl):
    from tokenizers import decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(["hello world", "hello there", "world peace"],
                            trainers.WordPieceTrainer(vocab_size=60, special_tokens=["[UNK]"], show_progress=False))
    tok.decoder = decoders.WordPiece()
    detok, stops_mod = detok_modules(impl)
    table = detok.DetokTable.from_hf(tok)
    assert table.kind == "fallback"
    ids = tok.encode("hello world peace there").ids
    dec = stops_mod.StreamDecoder(table, stops=["peace"], stop_token_ids={10**6})
    results = [dec.step(i) for i in ids]
    assert "".join(r.text for r in results) == "hello world "
    assert results[-1].finished and dec.matched == "peace"
