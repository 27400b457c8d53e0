"""Built-in chat templates (written for smg) for tokenizers that ship without one.

``chatml.jinja``: ChatML turns (``<|im_start|>role ... <|im_end|>``) with Qwen-style tools
(``<tools>`` in the system turn, ``<tool_call>{json}</tool_call>`` replies,
``<tool_response>`` results) and the ``enable_thinking`` toggle.
``deepseek.jinja``: DeepSeek-V3.1-style turns (``<｜User｜>``, ``<｜Assistant｜>``), the
``thinking`` toggle and ``<｜tool▁calls▁begin｜>`` tool calls with raw JSON arguments.
"""

from __future__ import annotations

from importlib import resources

__all__ = ["BUILTIN_TEMPLATES", "builtin_template"]

BUILTIN_TEMPLATES = ("chatml", "deepseek")


def builtin_template(name: str) -> str:
    """The source text of the built-in template ``name`` (one of BUILTIN_TEMPLATES)."""
    if name not in BUILTIN_TEMPLATES:
        raise KeyError(f"no built-in chat template {name!r}; have {', '.join(BUILTIN_TEMPLATES)}")
    return resources.files(__name__).joinpath(f"{name}.jinja").read_text(encoding="utf-8")
