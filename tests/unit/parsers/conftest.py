from __future__ import annotations

import json

from hypothesis import strategies as st

from smg.parsers.core import Parser, ParseResult, ToolCall


def reassemble(parser: Parser, chunks: list[str], finish_reason: str | None = None) -> ParseResult:
    """Stream ``chunks`` through ``parser`` and rebuild the result from the deltas."""
    stream = parser.stream()
    content, reasoning = [], []
    calls: dict[int, list] = {}
    deltas = [stream.feed(c) for c in chunks] + [stream.finish(finish_reason)]
    for d in deltas:
        content.append(d.content)
        reasoning.append(d.reasoning)
        for tc in d.tool_calls:
            if tc.index not in calls:
                assert tc.id and tc.name is not None, "first delta of a call carries id and name"
                calls[tc.index] = [tc.name, tc.arguments]
            else:
                assert tc.id is None and tc.name is None
                calls[tc.index][1] += tc.arguments
    assert sorted(calls) == list(range(len(calls))), "call indices are dense from 0"
    return ParseResult(
        "".join(content), "".join(reasoning), [ToolCall(n, a) for n, a in (calls[i] for i in sorted(calls))]
    )


@st.composite
def chunkings(draw, text: str) -> list[str]:
    """Any split of ``text`` into chunks (incl. one char at a time and whole)."""
    mode = draw(st.sampled_from(["random", "chars", "whole"]))
    if mode == "chars":
        return list(text)
    if mode == "whole" or not text:
        return [text]
    cuts = sorted(draw(st.sets(st.integers(1, max(1, len(text) - 1)), max_size=min(40, len(text)))))
    bounds = [0, *cuts, len(text)]
    return [text[a:b] for a, b in zip(bounds, bounds[1:]) if b > a]


def args_json(call: ToolCall) -> object:
    return json.loads(call.arguments)
