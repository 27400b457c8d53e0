"""Which reasoning and tool-call parsers a model gets, and why.

``pick_parsers(model_id, tokenizer_dir)`` answers from two sources:

- the tokenizer's chat template (``chat_template.jinja``, ``chat_template.json`` or
  ``tokenizer_config.json``'s ``chat_template``): the markers it writes for an
  assistant's tool calls and thinking name the format exactly, so they are preferred;
- the model id (``smg.parsers.model_ids``, org prefixes allowed), for what the template
  does not declare (no template, or a format without markers such as bare JSON).

A template that writes no thinking markers gets no reasoning parser, whatever the id
says: a parser would only misread the output of a model that does not think.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from smg.parsers.model_ids import REASONING_ID_PATTERNS, TOOL_ID_PATTERNS, match_id
from smg.parsers.reasoning import REASONING_PARSERS

__all__ = ["ParserPick", "chat_template_of", "pick_parsers"]

# (marker in the template, tool parser); the first that appears wins, so more specific
# markers come before the ones they contain.
_TOOL_MARKERS: tuple[tuple[str, str], ...] = (
    ("<｜DSML｜ calls>", "deepseek_v41"),
    ("<｜DSML｜tool_calls>", "deepseek_v4"),
    ("<｜DSML｜function_calls>", "deepseek32"),
    ("<｜tool▁calls▁begin｜>", "deepseek31"),  # "deepseek" when its arguments are fenced
    ("<|tool_calls_section_begin|>", "kimik2"),
    ("<|open|>tools<|sep|>", "kimi_k3"),
    ("<|content_invoke_tool_json|>", "inkling"),
    ("<|constrain|>", "gpt_oss"),
    ("to=functions.", "gpt_oss"),
    ("]<]minimax[>[", "minimax_m3"),
    ("<minimax:tool_call>", "minimax_m2"),
    ("<steptml:invoke", "step3"),
    ("<tool_call:opensource>", "hy_v4"),
    ("<ifm|tool_call>", "k2_horizon"),
    ("<seed:tool_call>", "seed_oss"),
    ("<|tool_call>", "gemma4"),
    ("<start_function_call>", "function_gemma"),
    ("<arg_key>", "glm47_moe"),  # "glm45_moe" when key and value sit on their own lines
    ("<function=", "qwen_xml"),
    ("<TOOLCALL>", "llama_nemotron"),
    ("<|tool_call_start|>", "lfm2.5"),
    ("<iquest_tool_call>", "iquest"),
    ("<dots_function_call>", "dots3"),
    ("<tool_call>", "qwen"),
    ("[TOOL_CALLS]", "mistral"),
    ("<|python_start|>", "pythonic"),
    ("<|python_tag|>", "llama3"),
    ("<|START_ACTION|>", "cohere"),
    ("<|tool_calls|>", "sarashina"),
)

_REASONING_MARKERS: tuple[tuple[str, str], ...] = (
    ("<|START_THINKING|>", "cohere_cmd"),
    ("\u25c1think\u25b7", "kimi"),
    ("<|open|>think<|sep|>", "kimi_k3"),
    ("<|content_thinking|>", "inkling"),
    ("<seed:think>", "seed_oss"),
    ("<mm:think>", "minimax_m3"),
    ("<think:opensource>", "hy_v4"),
    ("<ifm|think>", "k2_horizon"),
    ("<|channel>thought", "gemma4"),
    ("[THINK]", "mistral_v13"),
    ("<think>", "base"),  # refined by the id: its own <think> parser when it names one
)

_GLM45_LINES = re.compile(r"</arg_key>\s*\\n|</arg_key>\n")


@dataclass(frozen=True)
class ParserPick:
    """The parsers chosen, and one sentence for each saying why."""

    reasoning: str | None
    tool: str | None
    why: dict[str, str] = field(default_factory=dict)


def chat_template_of(tokenizer_dir: str | Path) -> str | None:
    """The chat template text a tokenizer directory declares (all of its named
    templates joined), or None."""
    d = Path(tokenizer_dir)
    parts: list[str] = []
    jinja = d / "chat_template.jinja"
    if jinja.is_file():
        parts.append(jinja.read_text(encoding="utf-8", errors="replace"))
    for name in ("chat_template.json", "tokenizer_config.json"):
        path = d / name
        if not path.is_file():
            continue
        try:
            data = json.loads(path.read_text(encoding="utf-8", errors="replace"))
        except ValueError:
            continue
        tpl = data.get("chat_template") if isinstance(data, dict) else None
        if isinstance(tpl, str):
            parts.append(tpl)
        elif isinstance(tpl, list):
            parts.extend(t.get("template", "") for t in tpl if isinstance(t, dict) and isinstance(t.get("template"), str))
    return "\n".join(parts) if parts else None


def _config_model_type(tokenizer_dir: str | Path | None) -> str | None:
    if tokenizer_dir is None:
        return None
    path = Path(tokenizer_dir) / "config.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    kind = data.get("model_type") if isinstance(data, dict) else None
    return kind if isinstance(kind, str) else None


def _template_tool(tpl: str) -> tuple[str, str] | None:
    if "<|channel|>" in tpl and "commentary" in tpl:
        return "gpt_oss", "the chat template writes harmony commentary-channel calls"
    for marker, name in _TOOL_MARKERS:
        if marker in tpl:
            if name == "deepseek31" and "```json" in tpl:
                return "deepseek", f"the chat template writes {marker} calls with fenced JSON arguments"
            if name == "glm47_moe" and _GLM45_LINES.search(tpl):
                return "glm45_moe", "the chat template writes <arg_key>/<arg_value> pairs on their own lines"
            if name == "qwen_xml" and "<parameter=" not in tpl:
                continue
            return name, f"the chat template writes tool calls with {marker}"
    return None


def _template_reasoning(tpl: str, model_id: str | None) -> tuple[str | None, str]:
    if "<|channel|>" in tpl and "analysis" in tpl:
        return "harmony", "the chat template writes harmony channels (analysis = reasoning)"
    for marker, name in _REASONING_MARKERS:
        if marker in tpl:
            if name == "base" and model_id:
                by_id, pattern = match_id(model_id, REASONING_ID_PATTERNS)
                if by_id is not None and _think_markers(by_id):
                    return by_id, f"the chat template writes <think> blocks; the id matches {pattern!r}"
            return name, f"the chat template writes thinking as {marker}"
    return None, "the chat template writes no thinking markers"


def _think_markers(name: str) -> bool:
    parser = REASONING_PARSERS.get(name)
    return getattr(parser, "start", None) == "<think>"


def pick_parsers(
    model_id: str | None = None, tokenizer_dir: str | Path | None = None, *, chat_template: str | None = None
) -> ParserPick:
    """The reasoning and tool parsers for a model, preferring what its template declares."""
    tpl = chat_template if chat_template is not None else (chat_template_of(tokenizer_dir) if tokenizer_dir else None)
    why: dict[str, str] = {}
    kind = _config_model_type(tokenizer_dir)
    ident = model_id or (kind or "").replace("_", "-")
    tool: str | None = None
    reasoning: str | None = None
    found = _template_tool(tpl) if tpl else None
    if found:
        tool, why["tool"] = found
    else:
        tool, pattern = match_id(ident, TOOL_ID_PATTERNS) if ident else (None, None)
        source = "model id" if model_id else "config.json model_type"
        lead = "the chat template declares no tool-call markers; " if tpl else ""
        why["tool"] = lead + (f"the {source} matches {pattern!r}" if pattern else f"no {source} pattern matches")
    if tpl:
        reasoning, why["reasoning"] = _template_reasoning(tpl, model_id)
    else:
        reasoning, pattern = match_id(ident, REASONING_ID_PATTERNS) if ident else (None, None)
        why["reasoning"] = f"the model id matches {pattern!r}" if pattern else "no model id pattern matches"
    return ParserPick(reasoning, tool, why)
