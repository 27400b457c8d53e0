"""Structural tags: the shape xgrammar expects, and text written along a tag's frame
parses back (with the same format's parser) to the call it constrains."""

from __future__ import annotations

import json

import jsonschema
import pytest

from smg.parsers.constraints import has_structural_tag, structural_tag_for
from smg.parsers.tools import get_tool_parser

WEATHER = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "days": {"type": "integer"}, "unit": {"enum": ["c", "f"]}},
    "required": ["city"],
}
TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "parameters": WEATHER}},
    {"type": "function", "function": {"name": "ping", "parameters": {"type": "object", "properties": {}}}},
]
ARGS = {"city": "北京 \"big\"", "days": 3, "unit": "c"}
JSON_FORMATS = ["qwen", "hermes", "mistral", "kimik2", "inkling"]


@pytest.mark.parametrize("parser", JSON_FORMATS)
def test_auto_gives_the_classic_shape_and_frames_round_trip(parser: str) -> None:
    tag = json.loads(structural_tag_for(parser, TOOLS, "auto"))
    assert tag["type"] == "structural_tag" and set(tag) == {"type", "structures", "triggers"}
    assert tag["triggers"] and all(isinstance(t, str) and t for t in tag["triggers"])
    names = set()
    for s in tag["structures"]:
        assert set(s) == {"begin", "schema", "end"}
        assert any(s["begin"].startswith(t) for t in tag["triggers"]), "every begin starts with a trigger"
        jsonschema.Draft202012Validator.check_schema(s["schema"])
        args = ARGS if "get_weather" in s["begin"] else {}
        jsonschema.validate(args, s["schema"])
        text = s["begin"] + json.dumps(args, ensure_ascii=False) + s["end"]
        (call,) = get_tool_parser(parser).parse_complete(text).calls
        assert json.loads(call.arguments) == args
        names.add(call.name)
    assert names == {"get_weather", "ping"}


@pytest.mark.parametrize("parser", JSON_FORMATS)
def test_required_and_named_force_a_call(parser: str) -> None:
    tag = json.loads(structural_tag_for(parser, TOOLS, "required"))
    fmt = tag["format"]
    assert fmt["type"] == "triggered_tags" and fmt["at_least_one"] is True
    assert {t["content"]["type"] for t in fmt["tags"]} == {"json_schema"}
    named = json.loads(structural_tag_for(parser, TOOLS, {"type": "function", "function": {"name": "ping"}}))
    assert named["format"]["tags"] and all("ping" in t["begin"] for t in named["format"]["tags"])
    assert all("get_weather" not in t["begin"] for t in named["format"]["tags"])


def test_no_constraint_cases() -> None:
    assert structural_tag_for("qwen", TOOLS, "none") is None
    assert structural_tag_for("qwen", [], "required") is None
    assert structural_tag_for("deepseek", TOOLS, "required") is None  # format has no tag
    assert structural_tag_for(None, TOOLS, "auto") is None
    assert not has_structural_tag("pythonic") and has_structural_tag("kimi_k3")
    with pytest.raises(ValueError, match="not in tools"):
        structural_tag_for("qwen", TOOLS, {"type": "function", "function": {"name": "nope"}})


def _instantiate(node, sample: dict) -> str:
    """Write text along a grammar node: the first choice, optional parts included."""
    kind = node["type"]
    if kind == "const_string":
        return node["value"]
    if kind == "sequence":
        return "".join(_instantiate(e, sample) for e in node["elements"])
    if kind in ("optional", "plus", "star"):
        return _instantiate(node["content"], sample)
    if kind == "or":
        return _instantiate(node["elements"][0], sample)
    if kind == "regex":
        return "1"
    if kind == "any_text":
        return sample["text"]
    if kind == "json_schema":
        value = sample[node["json_schema"].get("type")]
        jsonschema.validate(value, node["json_schema"])
        return json.dumps(value)
    raise AssertionError(f"unexpected grammar node {kind}")


@pytest.mark.parametrize("choice", ["auto", "required"])
def test_kimi_k3_tag_writes_parseable_xtml(choice: str) -> None:
    tag = json.loads(structural_tag_for("kimi_k3", TOOLS, choice))
    fmt = tag["format"]
    assert fmt["at_least_one"] is (choice == "required")
    assert len(fmt["tags"]) == 3 and all(any(t["begin"].startswith(g) for g in fmt["triggers"]) for t in fmt["tags"])
    first = fmt["tags"][0]
    text = first["begin"] + _instantiate(first["content"], {"text": "北京", "integer": 3}) + first["end"]
    (call,) = get_tool_parser("kimi_k3").parse_complete(text).calls
    assert (call.name, json.loads(call.arguments)) == ("get_weather", {"city": "北京", "days": 3, "unit": "c"})
