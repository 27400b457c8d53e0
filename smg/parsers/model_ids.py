"""Which parsers a model id names: glob patterns on the lower-cased id, first match wins.

Each pattern is tried on the whole id and on its last path part, so org-prefixed ids
(``mistralai/Mistral-7B-Instruct-v0.3``, ``deepseek-ai/DeepSeek-R1``) match like the
bare name. A pattern may map to None: "this family has no such parser" (it stops the
search, so a broader pattern below does not claim it).

Reasoning parsers that start in reasoning (``deepseek_r1``, ``qwen3_thinking``,
``step3``, ``minimax``, ``kimi_thinking``) are named only for ids of thinking models;
the gateway also switches a parser to "started" when the chat template opened the
thinking block itself, so a ``<think>`` family is otherwise read with a parser that
starts in content and cannot swallow a tool-only model's output.
"""

from __future__ import annotations

from fnmatch import fnmatchcase

__all__ = ["REASONING_ID_PATTERNS", "TOOL_ID_PATTERNS", "match_id"]

TOOL_ID_PATTERNS: tuple[tuple[str, str | None], ...] = (
    ("*gpt-oss*", "gpt_oss"),
    ("gpt-4*", "json"),
    ("gpt-3.5*", "json"),
    ("claude-*", "json"),
    ("*hermes*", "qwen"),  # NousResearch Hermes 2/3/4: <tool_call>{json}</tool_call>
    ("*xlam*", "xlam"),
    ("*magistral*", "mistral"),
    ("*devstral*", "mistral"),
    ("*ministral*", "mistral"),
    ("*codestral*", "mistral"),
    ("*mistral*", "mistral"),
    ("*mixtral*", "mistral"),
    ("*deepseek-v3.1*", "deepseek31"),
    ("*deepseek-v3.2-exp*", "deepseek31"),
    ("*deepseek-v3.2*", "deepseek32"),
    ("*deepseek-v4.1*", "deepseek_v41"),
    ("*deepseek-v41*", "deepseek_v41"),
    ("*deepseek-v4*", "deepseek_v4"),
    ("*deepseek-v3*", "deepseek"),
    ("*deepseek-r1*", "deepseek"),  # R1 / R1-0528 / the distills: the V3 fenced-JSON calls
    ("*deepseek*", "deepseek"),
    ("*nemotron-3*", "qwen_xml"),
    ("*nemotron*", "llama_nemotron"),
    ("*qwen3.5*", "qwen_xml"),
    ("*qwen3.6*", "qwen_xml"),
    ("*qwen3-coder*", "qwen_xml"),
    ("*qwen*", "qwen"),
    ("*qwq*", "qwen"),
    ("*llama-4*", "pythonic"),
    ("*llama-3*", "llama3"),  # Llama 3.1 / 3.2 / 3.3: <|python_tag|> or bare JSON calls
    ("*llama*", "json"),
    ("*glm-4.5*", "glm45_moe"),
    ("*glm-4.6*", "glm45_moe"),
    ("*glm-4.7*", "glm47_moe"),
    ("*glm-5*", "glm47_moe"),
    ("*glm*", "json"),
    ("*sarashina*", "sarashina"),
    ("*step3*", "step3"),
    ("*step-3*", "step3"),
    ("*kimi-k2*", "kimik2"),
    ("*kimi-k3*", "kimi_k3"),
    ("*kimi_k3*", "kimi_k3"),
    ("*inkling*", "inkling"),
    ("*minimax-m3*", "minimax_m3"),
    ("*minimax*", "minimax_m2"),
    ("*command-r*", "cohere"),
    ("*command-a*", "cohere"),
    ("*c4ai-command*", "cohere"),
    ("*cohere*", "cohere"),
    ("*seed-oss*", "seed_oss"),
    ("*functiongemma*", "function_gemma"),
    ("*gemma-4*", "gemma4"),
    ("gemini-*", "json"),
    ("*gemma*", "json"),
    ("*hy4*", "hy_v4"),
    ("*k2-horizon*", "k2_horizon"),
    ("*lfm2*", "lfm2.5"),
    ("*iquest*", "iquest"),
    ("*dots3*", "dots3"),
    ("ling-[0-9]*", "ling"),
    ("*olmo-3*", "olmo3"),
    ("*minicpm5*", "minicpm5"),
)

REASONING_ID_PATTERNS: tuple[tuple[str, str | None], ...] = (
    ("*gpt-oss*", "harmony"),
    ("*deepseek-r1*", "deepseek_r1"),
    ("*deepseek-v3.1*", "deepseek_v31"),
    ("*deepseek-v3-1*", "deepseek_v31"),
    ("*deepseek-v3.2*", "deepseek_v31"),  # thinking mode: <think> opened by the template
    ("*deepseek-v4.1*", "deepseek_v41"),
    ("*deepseek-v41*", "deepseek_v41"),
    ("*deepseek-v4*", "deepseek_v4"),
    ("*deepseek*", None),  # V3 and older do not think
    ("*qwen3-coder*", None),
    ("*qwen3*thinking*", "qwen3_thinking"),
    ("*qwen-thinking*", "qwen3_thinking"),
    ("*qwen2*", None),
    ("*qwen3*", "qwen3"),
    ("*qwq*", "qwen3"),
    ("*qwen*", "qwen3"),
    ("*glm-4.5*", "glm45"),
    ("*glm-4.6*", "glm45"),
    ("*glm-4.7*", "glm45"),
    ("*glm-5*", "glm45"),
    ("*glm45*", "glm45"),
    ("*glm47*", "glm45"),
    ("*step3*", "step3"),
    ("*step-3*", "step3"),
    ("*minimax-m3*", "minimax_m3"),
    ("*minimax-m1*", "minimax"),
    ("*minimax-m2*", "minimax"),
    ("*mm-m2*", "minimax"),
    ("*kimi-k2.5*", "kimi_k25"),
    ("*kimi-k2-thinking*", "kimi_thinking"),
    ("*kimi-k3*", "kimi_k3"),
    ("*kimi_k3*", "kimi_k3"),
    ("*kimi*", "kimi"),
    ("*command-a-reasoning*", "cohere_cmd"),
    ("*nemotron-nano*", "nano_v3"),
    ("*nemotron-super*", "nano_v3"),
    ("*nemotron-3*", "nano_v3"),
    ("*nano-v3*", "nano_v3"),
    ("*nemotron*", "llama_nemotron"),
    ("*inkling*", "inkling"),
    ("*magistral*", "mistral_v13"),
    ("*seed-oss*", "seed_oss"),
    ("*gemma-4*", "gemma4"),
    ("*hy4*", "hy_v4"),
    ("*k2-horizon*", "k2_horizon"),
    ("*lfm2*", "lfm2.5"),
    ("ling-[0-9]*", "ling"),
    ("*iquest*", "iquest"),
    ("*dots3*", "dots3"),
    ("*minicpm5*", "minicpm5"),
)


def match_id(model: str, patterns: tuple[tuple[str, str | None], ...]) -> tuple[str | None, str | None]:
    """(parser name, the pattern that chose it) for ``model``; (None, None) when none."""
    low = model.lower()
    base = low.rsplit("/", 1)[-1]
    for pattern, name in patterns:
        if fnmatchcase(low, pattern) or fnmatchcase(base, pattern):
            return name, pattern
    return None, None
