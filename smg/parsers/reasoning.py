"""Reasoning parsers: split a model's thinking from its answer.

``ThinkParser(start, end, starts_in_reasoning)`` covers every ``<think>``-style family:
- if the output starts (after whitespace) with ``start``, the text up to ``end`` is
  reasoning; a model that ``starts_in_reasoning`` (DeepSeek-R1, Qwen3-thinking, ...) is
  in reasoning from its first token, because its template already opened the block;
- text after ``end`` is content, with the whitespace right after ``end`` dropped;
- output cut off before ``end`` is all reasoning (truncated thinking);
- a ``start`` marker later in the text is plain content (models open thinking only at
  the start of a turn).
``end`` may arrive split across any number of chunks; a possible partial marker is held.
The gateway calls ``started()`` to get the variant that begins in reasoning when the chat
template's thinking toggle injected ``start`` itself.
"""

from __future__ import annotations

from dataclasses import dataclass

from smg.parsers.core import Parser, Snapshot, SnapshotBuilder
from smg.parsers.model_ids import REASONING_ID_PATTERNS, match_id
from smg.parsers.reasoning_channels import InklingReasoningParser, KimiK3ReasoningParser
from smg.parsers.reasoning_harmony import HarmonyReasoningParser, PassthroughReasoningParser
from smg.parsers.scan import held_suffix

__all__ = ["REASONING_PARSERS", "UNVERIFIED_ALIASES", "ThinkParser", "reasoning_parser_for_model", "get_reasoning_parser"]

_START, _REASONING, _AFTER_END, _CONTENT = "start", "reasoning", "after_end", "content"


@dataclass(frozen=True)
class ThinkParser(Parser):
    start: str = "<think>"
    end: str = "</think>"
    starts_in_reasoning: bool = False
    name: str = "base"

    def fast(self, chunk: str, state: object) -> tuple[str, str] | None:
        if state == _CONTENT:
            return chunk, ""
        if state == _REASONING and self.end[0] not in chunk:
            return "", chunk
        return None

    def started(self) -> ThinkParser:
        """The same format when the prompt already opened the reasoning block."""
        return ThinkParser(self.start, self.end, True, self.name)

    def parse(self, text: str, final: bool, state: object = None) -> Snapshot:
        b = SnapshotBuilder()
        mode = state or _START
        pos = 0
        n = len(text)
        if mode == _START:
            stripped = len(text) - len(text.lstrip())
            rest = text[stripped:]
            if rest.startswith(self.start):
                pos = stripped + len(self.start)
                mode = _REASONING
            elif not final and self.start.startswith(rest):
                return b.build()  # may still become the start marker
            elif self.starts_in_reasoning:
                mode = _REASONING
            else:
                mode = _CONTENT
        if mode == _REASONING:
            i = text.find(self.end, pos)
            if i == -1:
                keep = 0 if final else held_suffix(text, (self.end,), pos)
                b.reasoning(text[pos : n - keep])
                b.safe(n - keep, _REASONING)
                return b.build()
            b.reasoning(text[pos:i])
            pos = i + len(self.end)
            b.safe(pos, _AFTER_END)
            mode = _AFTER_END
        if mode == _AFTER_END:
            j = pos
            while j < n and text[j].isspace():
                j += 1
            if j == n:
                b.safe(n, _AFTER_END)
                return b.build()
            pos = j
        b.content(text[pos:])
        b.safe(n, _CONTENT)
        return b.build()


def _think(name: str, starts: bool = False, start: str = "<think>", end: str = "</think>") -> ThinkParser:
    return ThinkParser(start, end, starts, name)


# name -> parser
# Channel formats (kimi_k3, inkling) offer the same parse/started() interface.
REASONING_PARSERS: dict[str, ThinkParser] = {
    p.name: p  # type: ignore[misc]
    for p in (
        _think("base"),
        _think("deepseek_r1", True),
        _think("deepseek_v31"),
        _think("qwen3"),
        _think("qwen3_thinking", True),
        _think("glm45"),
        _think("step3", True),
        _think("minimax", True),
        _think("kimi", start="\u25c1think\u25b7", end="\u25c1/think\u25b7"),
        _think("kimi_k25"),
        _think("kimi_thinking", True),
        _think("cohere_cmd", start="<|START_THINKING|>", end="<|END_THINKING|>"),
        _think("nano_v3"),
        KimiK3ReasoningParser(),
        InklingReasoningParser(),
        HarmonyReasoningParser(),
        PassthroughReasoningParser(),
        # families added to the Rust gateway later (markers from its parsers and tables)
        _think("deepseek_v4"),
        _think("deepseek_v41"),
        _think("gemma4", start="<|channel>thought\n", end="<channel|>"),
        _think("hy_v4", start="<think:opensource>", end="</think:opensource>"),
        _think("minimax_m3", start="<mm:think>", end="</mm:think>"),
        _think("seed_oss", start="<seed:think>", end="</seed:think>"),
        _think("k2_horizon", start="<ifm|think>", end="</ifm|think>"),
        _think("mistral_v13", start="[THINK]", end="[/THINK]"),
        _think("llama_nemotron"),
        _think("lfm2.5"),
    )
}
# Rust names that read as another parser: the same family under another table name, a
# table without reasoning (passthrough), a <think> family (base); UNVERIFIED_ALIASES:
# names whose meaning smg does not reproduce.
for _alias, _target in {
    "deepseek_v4.1": "deepseek_v41", "hy4": "hy_v4", "minimax_m2": "minimax",
    "qwen3_tagged": "qwen3", "qwen3_tagged_direct": "qwen3",
    "qwen2.5": "passthrough", "json": "passthrough", "plain": "passthrough", "xlam": "passthrough",
    "function_gemma": "passthrough", "olmo3": "passthrough", "glm": "glm45", "glm4": "glm45",
    "minicpm5": "base", "ling": "base", "iquest": "base", "dots3": "base",
}.items():
    REASONING_PARSERS[_alias] = REASONING_PARSERS[_target]
UNVERIFIED_ALIASES = {"hf": "passthrough"}  # the Rust gateway reads the tokenizer config's template
for _alias, _target in UNVERIFIED_ALIASES.items():
    REASONING_PARSERS[_alias] = REASONING_PARSERS[_target]


def reasoning_parser_for_model(model: str) -> str | None:
    """The reasoning parser a model id names (``smg.parsers.model_ids``), or None."""
    return match_id(model, REASONING_ID_PATTERNS)[0]


def get_reasoning_parser(name: str) -> ThinkParser:
    try:
        return REASONING_PARSERS[name]
    except KeyError:
        raise ValueError(
            f"unknown reasoning parser {name!r}; known: {', '.join(sorted(REASONING_PARSERS))}"
        ) from None
