"""What the reference model "says": deterministic token programs.

A program is the token sequence a request's model would emit, before stop conditions:
``echo`` repeats the prompt's tokens, ``cycle`` a fixed text, ``script`` the output of
the first rule whose regex matches the decoded prompt (else the cycle text). Each pass
of the text is followed by the EOS token; with ``ignore_eos`` (or below
``min_new_tokens``) the EOS is emitted and generation simply goes on, as a model would.

Scripts are JSON or YAML files: a list of ``{"match": regex, "output": text}`` (or
``{"rules": [...]}``). The output is raw model text, e.g. ``<think>…</think>`` followed by
a tool call, tokenized with the worker's real tokenizer so that parsers downstream see
what a real model emits.
"""

from __future__ import annotations

import json
import pathlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Program", "ScriptRule", "load_script"]


@dataclass(frozen=True)
class ScriptRule:
    pattern: re.Pattern[str]
    output: str


def load_script(path: str) -> list[ScriptRule]:
    """Parse a script file; a bad file is a ``ValueError`` naming the problem."""
    text = pathlib.Path(path).read_text(encoding="utf-8")
    data: Any
    if path.endswith((".yaml", ".yml")):
        import yaml

        data = yaml.safe_load(text)
    else:
        data = json.loads(text)
    if isinstance(data, dict):
        data = data.get("rules")
    if not isinstance(data, list):
        raise ValueError(f"{path}: a script is a list of {{match, output}} rules")
    rules = []
    for i, item in enumerate(data):
        if not isinstance(item, dict) or not isinstance(item.get("output"), str):
            raise ValueError(f"{path}: rule {i} needs a string 'output'")
        try:
            pattern = re.compile(str(item.get("match", "")), re.DOTALL)
        except re.error as exc:
            raise ValueError(f"{path}: rule {i} has a bad regex: {exc}") from None
        rules.append(ScriptRule(pattern, item["output"]))
    return rules


class Program:
    """Builds the per-request base token sequence for one worker's mode."""

    def __init__(self, mode: str, tokenizer: Any, cycle_text: str, rules: Sequence[ScriptRule] = ()):
        self.mode = mode
        self.tokenizer = tokenizer
        self.rules = list(rules)
        self.cycle_ids = list(tokenizer.encode(cycle_text)) or [0]
        self._rule_ids: dict[int, list[int]] = {}

    def base(self, input_ids: list[int]) -> list[int]:
        """The text one pass of the model emits for this prompt (without EOS)."""
        if self.mode == "echo":
            return list(input_ids) or self.cycle_ids
        if self.mode == "script" and self.rules:
            prompt = self.tokenizer.decode(input_ids, skip_special_tokens=False)
            for i, rule in enumerate(self.rules):
                if rule.pattern.search(prompt):
                    ids = self._rule_ids.get(i)
                    if ids is None:
                        ids = self._rule_ids[i] = list(self.tokenizer.encode(rule.output))
                    return ids or self.cycle_ids
        return self.cycle_ids
