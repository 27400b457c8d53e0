"""Router test helpers: worker lists and realistic request texts."""

from __future__ import annotations

import random

from smg.router import Worker


def make_workers(n: int, **kwargs) -> list[Worker]:
    return [Worker(f"http://127.0.0.1:{9000 + i}", **kwargs) for i in range(n)]


_WORDS = (
    "cache route token prefix model worker latency batch stream queue kernel tensor "
    "python rust gateway prompt answer explain summary table chart data error retry "
    "health load policy radix tree hash ring session user history turn reply"
).split()

SYSTEM_PROMPTS = (
    "You are a helpful assistant that answers concisely.",
    "You are a senior software engineer reviewing code for correctness and style.",
    "You are a translator. Translate the user's text into French, keeping the tone.",
)


def chat_prompts(n: int, seed: int = 0, system: str | None = None) -> list[str]:
    """``n`` distinct chat routing texts: a system prompt and a random user question."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        sys_prompt = system or SYSTEM_PROMPTS[rng.randrange(len(SYSTEM_PROMPTS))]
        question = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(8, 40)))
        out.append(f"{sys_prompt} #{i}: {question}?")
    return out
