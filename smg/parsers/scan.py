"""Small scanning helpers shared by the format parsers."""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["held_suffix", "json_value_end", "find_first", "inside_json_string"]


def held_suffix(text: str, markers: Iterable[str], start: int = 0) -> int:
    """Length of the longest suffix of ``text[start:]`` that is a proper prefix of a marker.

    That suffix must be held back while streaming: the next chunk may complete the marker.
    """
    best = 0
    n = len(text)
    # Cheap exit: a held suffix starts with some marker's first character.
    markers = tuple(markers)
    longest = max((len(m) for m in markers), default=0)
    tail = text[max(start, n - longest + 1) :]
    if not any(m[:1] in tail for m in markers if m):
        return 0
    for marker in markers:
        k = min(len(marker) - 1, n - start)
        while k > best:
            if text.endswith(marker[:k]):
                best = k
                break
            k -= 1
    return best


def find_first(text: str, markers: Iterable[str], start: int = 0) -> tuple[int, str | None]:
    """The earliest occurrence of any marker at or after ``start``: (index, marker)."""
    best, which = -1, None
    for marker in markers:
        i = text.find(marker, start)
        if i != -1 and (best == -1 or i < best or (i == best and len(marker) > len(which or ""))):
            best, which = i, marker
    return best, which


def json_value_end(text: str, start: int) -> int | None:
    """End offset of the JSON object/array/string/scalar that begins at ``start``.

    Returns None while it is incomplete. Only brackets and strings are tracked (the
    text is not validated): that is what is needed to find where arguments end.
    """
    n = len(text)
    i = start
    if i >= n:
        return None
    ch = text[i]
    if ch in "{[":
        depth = 0
        in_str = False
        esc = False
        while i < n:
            c = text[i]
            if in_str:
                if esc:
                    esc = False
                elif c == "\\":
                    esc = True
                elif c == '"':
                    in_str = False
            elif c == '"':
                in_str = True
            elif c in "{[":
                depth += 1
            elif c in "}]":
                depth -= 1
                if depth == 0:
                    return i + 1
            i += 1
        return None
    if ch == '"':
        i += 1
        esc = False
        while i < n:
            c = text[i]
            if esc:
                esc = False
            elif c == "\\":
                esc = True
            elif c == '"':
                return i + 1
            i += 1
        return None
    # number / true / false / null: ends at a delimiter
    while i < n and text[i] not in ",}] \t\r\n":
        i += 1
    return i if i < n else None


def inside_json_string(text: str, start: int, pos: int) -> bool:
    """Whether ``text[pos]`` lies inside a string literal of the JSON begun at ``start``."""
    in_str = esc = False
    for i in range(start, pos):
        c = text[i]
        if in_str:
            if esc:
                esc = False
            elif c == "\\":
                esc = True
            elif c == '"':
                in_str = False
        elif c == '"':
            in_str = True
    return in_str
