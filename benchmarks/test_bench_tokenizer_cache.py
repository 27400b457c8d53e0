"""smg.tokenizer encode paths on a multi-turn chat prompt, same run, reported as ratios.

Workload: a 12-turn conversation (about 12.7 KB rendered with the built-in template)
plus a new user turn; the cache already holds the previous turn's prompt, as it does in
a chat session. Compared with encoding the whole prompt with the backend library
(HF tokenizers for DeepSeek, tiktoken for Qwen): a prefix-cache hit, an exact hit, and
the ``smg._fast.bpe`` kernel (when built).

Run::

    python -m pytest benchmarks/test_bench_tokenizer_cache.py -q -s

Ratios are printed at the end ("tokenizer encode ratios").
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from smg.tokenizer import Tokenizer, load_tokenizer
from smg.tokenizer.cache import CachedEncoder
from smg.tokenizer.fastpath import fast_bpe_module

pytest.importorskip("pytest_benchmark")

NAMES = ("deepseek", "qwen")
RESULTS: dict[tuple[str, str], float] = {}
_loaded: dict[tuple[str, bool], Tokenizer] = {}


def _tok(name: str, fast: bool) -> Tokenizer:
    if (name, fast) not in _loaded:
        _loaded[name, fast] = load_tokenizer(name, fast_encoder=fast)
    return _loaded[name, fast]


def _prompts(tok: Tokenizer) -> tuple[str, str]:
    msgs = [{"role": "system", "content": "You are a helpful assistant. " * 100}]
    for turn in range(12):
        msgs.append({"role": "user", "content": f"Question {turn}: what is {turn}+{turn}? 你好 " * 20})
        msgs.append({"role": "assistant", "content": f"It is {2 * turn}. " * 20})
    previous = tok.apply_chat_template(msgs[:-2])
    new = tok.apply_chat_template([*msgs, {"role": "user", "content": "And the next one?"}])
    return previous, new


def _run(benchmark, name: str, case: str, setup: Callable[[], tuple], fn: Callable) -> None:
    benchmark.pedantic(fn, setup=setup, rounds=30, iterations=1, warmup_rounds=2)
    RESULTS[name, case] = benchmark.stats.stats.min


@pytest.mark.parametrize("name", NAMES)
def test_library_encode(benchmark, name: str) -> None:
    tok = _tok(name, False)
    _, new = _prompts(tok)
    _run(benchmark, name, "library", lambda: ((new,), {}), tok.encode)


@pytest.mark.parametrize("name", NAMES)
def test_prefix_hit(benchmark, name: str) -> None:
    tok = _tok(name, False)
    previous, new = _prompts(tok)

    def setup() -> tuple:
        cache = CachedEncoder(tok, capacity=0, prefix_bytes=1 << 22)
        cache.encode(previous)
        return (cache, new), {}

    _run(benchmark, name, "prefix hit", setup, lambda cache, text: cache.encode(text))


@pytest.mark.parametrize("name", NAMES)
def test_exact_hit(benchmark, name: str) -> None:
    tok = _tok(name, False)
    _, new = _prompts(tok)
    cache = CachedEncoder(tok, capacity=16)
    cache.encode(new)
    _run(benchmark, name, "exact hit", lambda: ((new,), {}), cache.encode)


@pytest.mark.skipif(fast_bpe_module() is None, reason="smg._fast.bpe not built")
@pytest.mark.parametrize("name", NAMES)
def test_kernel_encode(benchmark, name: str) -> None:
    tok = _tok(name, True)
    assert tok.fast_encoder is not None
    _, new = _prompts(tok)
    _run(benchmark, name, "bpe kernel", lambda: ((new,), {}), tok.encode)


def teardown_module() -> None:
    print("\ntokenizer encode ratios (min time / library encode of the whole prompt):")
    for name in NAMES:
        base = RESULTS.get((name, "library"))
        if not base:
            continue
        for case in ("prefix hit", "exact hit", "bpe kernel"):
            if (name, case) in RESULTS:
                print(f"  {name:9s} {case:11s} {RESULTS[name, case] / base:.4f}x")
