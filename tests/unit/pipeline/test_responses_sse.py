"""ResponseShape.content_sse: the per-token SSE fast path must be byte-identical to
encoding the general chunk."""

from __future__ import annotations

import orjson
import pytest

from smg.parsers.core import Delta
from smg.pipeline.responses import ResponseShape


@pytest.mark.parametrize("kind", ["chat", "text"])
@pytest.mark.parametrize("text", ["hi", " ", 'quote " and \\ backslash', "é\n\t🦊 敏捷", "\u2028\x00"])
@pytest.mark.parametrize("index", [0, 3])
def test_content_sse_equals_the_encoded_delta_chunk(kind: str, text: str, index: int) -> None:
    shape = ResponseShape(kind, "chatcmpl-1", 'model "quoted"')
    expected = b"data: " + orjson.dumps(shape.delta_chunk(index, Delta(content=text))) + b"\n\n"
    assert shape.content_sse(index, text) == expected
    assert shape.content_sse(index, text) == expected  # from the cached prefix too


def test_content_sse_keeps_choices_apart() -> None:
    shape = ResponseShape("chat", "r", "m")
    first = orjson.loads(shape.content_sse(0, "a")[6:])
    second = orjson.loads(shape.content_sse(1, "b")[6:])
    assert first["choices"][0]["index"] == 0 and first["choices"][0]["delta"] == {"content": "a"}
    assert second["choices"][0]["index"] == 1 and second["choices"][0]["delta"] == {"content": "b"}
