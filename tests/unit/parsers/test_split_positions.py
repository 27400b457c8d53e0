"""Every case split into two chunks at every position (so every marker is cut at every
offset once) streams to exactly the complete result."""

from __future__ import annotations

import pytest

from smg.parsers.reasoning import get_reasoning_parser
from smg.parsers.tools import get_tool_parser

from .cases import REASONING_CASES, TOOL_CASES
from .conftest import reassemble

CASES = [(get_tool_parser, c[0], c[1]) for c in TOOL_CASES] + [(get_reasoning_parser, c[0], c[1]) for c in REASONING_CASES]


@pytest.mark.parametrize("case", CASES, ids=[f"{c[1]}-{i}" for i, c in enumerate(CASES)])
def test_every_two_chunk_split(case) -> None:
    get, name, text = case
    parser = get(name)
    complete = parser.parse_complete(text)
    for k in range(1, len(text)):
        assert reassemble(parser, [text[:k], text[k:]]) == complete, f"split at {k}: {text[:k]!r} | {text[k:]!r}"
