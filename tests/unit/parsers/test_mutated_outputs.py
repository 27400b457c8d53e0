"""Each family's real output taken apart and put back together wrongly (pieces dropped,
repeated, shuffled, cut anywhere): whatever the text, streaming it in any chunks gives
the complete parse, for an output that stopped and for one cut at max_tokens."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smg.parsers.tools import get_tool_parser

from .conftest import chunkings, reassemble
from .family_outputs import TOOLS, TWO_CALLS
from .newer_cases import NEWER_TOOL_CASES

SOURCES = {name: text for name, (text, _) in TWO_CALLS.items()}
for _name, _text, *_ in NEWER_TOOL_CASES:
    SOURCES.setdefault(_name, _text)


def _pieces(text: str) -> list[str]:
    return [p for p in re.split(r"(<[^>]{1,40}>|\[[A-Z_]+\]|\s+)", text) if p] + ["Hi. ", "\n", " ", "Done."]


@pytest.mark.parametrize("name", sorted(SOURCES))
@settings(max_examples=15, deadline=None)
@given(data=st.data(), finish=st.sampled_from(["stop", "length"]))
def test_mangled_output_streams_like_complete(name: str, data, finish: str) -> None:
    text = SOURCES[name]
    pieces = _pieces(text)
    if data.draw(st.booleans()):
        mangled = "".join(data.draw(st.lists(st.sampled_from(pieces), max_size=14)))
    else:
        cut = data.draw(st.integers(0, len(text)))
        mangled = text[:cut] + "".join(data.draw(st.lists(st.sampled_from(pieces), max_size=4)))
    parser = get_tool_parser(name).with_tools(TOOLS)
    assert reassemble(parser, data.draw(chunkings(mangled)), finish) == parser.parse_complete(mangled, finish)
