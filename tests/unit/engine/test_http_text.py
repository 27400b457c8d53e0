"""ChoiceText: incremental detokenization and vLLM-style stop strings, on a real tokenizer."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smg.engine.config import DEFAULT_CYCLE_TEXT
from smg.engine.http.text import ChoiceText, detok_table


@pytest.fixture(scope="module")
def tok(tokenizer):
    return tokenizer  # the session's DeepSeek tokenizer (tests/unit/engine/conftest.py)


@pytest.fixture(scope="module")
def table(tok):
    return detok_table(tok)


def feed(ct: ChoiceText, ids: list[int], step: int) -> str:
    out = []
    for i in range(0, len(ids), step):
        out.append(ct.push(ids[i : i + step]))
        if ct.stopped:
            break
    out.append(ct.flush())
    return "".join(out)


@pytest.mark.parametrize("step", [1, 2, 3, 7])
def test_incremental_text_equals_full_decode(tok, table, step):
    # the cycle text has CJK, Cyrillic and emoji: byte-level tokens split characters
    ids = tok.encode(DEFAULT_CYCLE_TEXT)
    ct = ChoiceText(table)
    assert feed(ct, ids, step) == tok.decode(ids)
    assert ct.text == tok.decode(ids)
    assert not ct.stopped and ct.output_ids == ids


def test_incomplete_utf8_is_held_until_complete(tok, table):
    ids = tok.encode("🦊")
    assert len(ids) > 1, "the emoji spans several byte-level tokens"
    ct = ChoiceText(table)
    assert [ct.push([t]) for t in ids[:-1]] == [""] * (len(ids) - 1)
    assert ct.push(ids[-1:]) == "🦊"


def test_stop_string_cuts_text_and_counts_tokens(tok, table):
    text = "The quick brown fox jumps over the lazy dog."
    ids = tok.encode(text)
    ct = ChoiceText(table, ["fox"])
    out = feed(ct, ids, 1)
    assert out == "The quick brown "
    assert ct.stopped and ct.matched == "fox"
    # the tokens up to (and including) the one that completed the stop
    assert tok.decode(ct.output_ids).endswith("fox")
    assert len(ct.output_ids) < len(ids)


def test_stop_string_spanning_tokens_and_hold_back(tok, table):
    text = "The quick brown fox jumps over the lazy dog."
    ids = tok.encode(text)
    ct = ChoiceText(table, ["lazy d"])
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


def test_include_stop_keeps_the_stop_string(tok, table):
    ids = tok.encode("one two three four")
    ct = ChoiceText(table, ["three"], include_stop=True)
    assert feed(ct, ids, 1) == "one two three"


def test_earliest_stop_wins(tok, table):
    ids = tok.encode("alpha beta gamma delta")
    ct = ChoiceText(table, ["delta", "beta"])
    assert feed(ct, ids, 4) == "alpha "
    assert ct.matched == "beta"


def test_partial_stop_is_held_then_released(tok, table):
    ids = tok.encode("abc def")
    ct = ChoiceText(table, ["def!"])
    streamed = "".join(ct.push([t]) for t in ids)
    assert streamed == "abc "  # "def" could still become "def!"
    assert streamed + ct.flush() == "abc def" and not ct.stopped


def test_stop_acts_only_after_min_tokens(tok, table):
    ids = tok.encode("fox one fox two")
    ct = ChoiceText(table, ["fox"], min_tokens=2)
    assert feed(ct, ids, 1) == "fox one "
    assert ct.matched == "fox"


def test_prompt_tail_primes_a_split_character(tok, table):
    ids = tok.encode("狐🦊")
    cut = next(i for i in range(1, len(ids)) if tok.decode(ids[:i]).endswith("\ufffd"))
    ct = ChoiceText(table, prompt_tail=ids[:cut])
    assert tok.decode(ids[:cut]).rstrip("\ufffd") + feed(ct, ids[cut:], 1) == "狐🦊"


def test_special_tokens_skipped_or_kept(tok, table):
    eos = tok.eos_token_ids[0]
    ids = tok.encode("hi") + [eos]
    assert feed(ChoiceText(table), ids, 1) == "hi"
    kept = feed(ChoiceText(table, skip_special_tokens=False), ids, 1)
    assert kept.startswith("hi") and len(kept) > 2


@settings(max_examples=40, deadline=None)
@given(
    text=st.text(alphabet="ab xé狐🦊", min_size=0, max_size=24),
    stop=st.text(alphabet="ab xé狐🦊", min_size=1, max_size=3),
    step=st.integers(1, 4),
)
def test_matches_a_plain_search_on_the_full_text(tok, table, text, stop, step):
    """The streamed result is the full decode cut at the first stop occurrence."""
    ids = tok.encode(text)
    full = tok.decode(ids)
    ct = ChoiceText(table, [stop])
    out = feed(ct, ids, step)
    pos = full.find(stop)
    if pos == -1:
        assert out == full and not ct.stopped
    else:
        assert out == full[:pos] and ct.stopped
