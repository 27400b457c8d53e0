"""StopScanner (stop strings over text) against a brute-force reference, both twins."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import kernel_impls

impls = pytest.mark.parametrize("impl", kernel_impls("stops"))

ALPHABET = "ab中🙂\ufffd"
stop_lists = st.lists(st.text(ALPHABET, min_size=1, max_size=4), min_size=1, max_size=8)


def first_match(text: str, stops: list[str], armed=lambda end: True) -> tuple[int, str] | None:
    """Earliest-ending match (ties: the longest) whose end position is armed, by brute force."""
    for end in range(1, len(text) + 1):
        hits = [s for s in stops if text[:end].endswith(s)]
        if hits and armed(end):
            return end, max(hits, key=len)
    return None


def holdback(text: str, stops: list[str]) -> int:
    """Length of the longest suffix of text that is a proper prefix of some stop."""
    return max((k for s in stops for k in range(1, len(s)) if text.endswith(s[:k])), default=0)


@impls
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stops=stop_lists, text=st.text(ALPHABET, max_size=24), cuts=st.lists(st.integers(1, 5), min_size=1),
       include=st.booleans(), acts=st.lists(st.booleans(), min_size=1), large=st.booleans())
def test_scanner_matches_reference_for_any_split(impl, stops, text, cuts, include, acts, large):
    if large:  # a long stop that never occurs: the compiled twin then runs one KMP per stop, not the DFA
        stops = [*stops, "q" * 600]
    scanner = impl.module.StopScanner(stops, include_stop=include)
    chunks, k = [], 0
    while k < len(text):
        n = cuts[len(chunks) % len(cuts)]
        chunks.append((k, text[k : k + n], acts[len(chunks) % len(acts)]))
        k += n
    armed_at = {start + i + 1: act for start, chunk, act in chunks for i in range(len(chunk))}
    want = first_match(text, stops, lambda end: armed_at[end])
    emitted, matched = "", None
    for start, chunk, act in chunks:
        out, matched = scanner.feed(chunk, act=act)
        emitted += out
        seen = text[: start + len(chunk)]
        if matched is not None:
            break
        # Minimal holdback: everything but the longest suffix that could still become a stop.
        assert emitted == seen[: len(seen) - holdback(seen, stops)]
        assert scanner.held_text == seen[len(emitted) :]
    if want is None:
        assert matched is None and emitted + scanner.flush() == text
    else:
        end, stop = want
        assert matched == stop and scanner.finished
        assert emitted == text[: end if include else end - len(stop)]
        assert scanner.feed("more") == ("", None)


@impls
def test_tie_goes_to_the_longest_and_earliest_end_wins(impl):
    s = impl.module.StopScanner(["bc", "abc", "abcd"])
    assert s.feed("xab") == ("x", None)
    assert s.feed("cd") == ("", "abc")  # "abc" and "bc" end together; "abcd" ends later
    s = impl.module.StopScanner(["world", "o w"], include_stop=True)
    assert s.feed("hello world") == ("hello w", "o w")


@impls
def test_no_normalisation(impl):
    s = impl.module.StopScanner(["é"])
    assert s.feed("cafe\u0301 ") == ("cafe\u0301 ", None)
    assert s.feed("caf\u00e9!") == ("caf", "é")
    s = impl.module.StopScanner(["ＡＢ"])  # full-width is not ASCII
    assert s.feed("AB") == ("AB", None)


@impls
def test_act_false_keeps_scanning(impl):
    s = impl.module.StopScanner(["ab"])
    assert s.feed("xab", act=False) == ("xab", None)
    assert s.feed("a", act=False) == ("", None)
    assert s.feed("b") == ("", "ab")


@impls
@pytest.mark.parametrize("bad", [[""], ["ok", ""], ["x" * 2000], ["s"] * 100])
def test_bad_stops_rejected(impl, bad):
    with pytest.raises(ValueError):
        impl.module.StopScanner(bad)


@impls
def test_stops_must_be_a_list(impl):
    with pytest.raises(TypeError):
        impl.module.StopScanner("stop")
