"""CachedEncoder: exact-match LRU and the marker-prefix cache give the tokenizer's ids."""

from __future__ import annotations

import threading

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tokenizers import Tokenizer as HfTokenizer
from tokenizers import decoders, models, pre_tokenizers, trainers

from smg.tokenizer import Tokenizer, build_tokenizer
from smg.tokenizer.cache import CachedEncoder


@pytest.fixture
def tok(builtin_tok: Tokenizer) -> Tokenizer:
    return builtin_tok


def _conversation(turns: int, filler: str = "") -> list[dict[str, str]]:
    msgs = [{"role": "system", "content": "You are terse. " + filler}]
    for i in range(turns):
        msgs.append({"role": "user", "content": f"Question {i}: 2+{i}? 你好 🎉"})
        msgs.append({"role": "assistant", "content": f"Answer {i}: {2 + i}."})
    return msgs


def test_exact_hits_return_fresh_lists(tok: Tokenizer) -> None:
    cache = CachedEncoder(tok, capacity=4)
    first = cache.encode("hello world")
    first.append(-1)
    assert cache.encode("hello world") == tok.encode("hello world")
    assert cache.stats()["hits"] == 1 and cache.stats()["misses"] == 1


def test_lru_eviction(qwen_tok: Tokenizer) -> None:
    tok = qwen_tok
    cache = CachedEncoder(tok, capacity=2)
    for text in ("a", "b", "a", "c", "a", "b"):
        cache.encode(text)
    # a, b miss; a hits; c evicts b; a hits; b misses again.
    assert cache.stats()["hits"] == 2 and cache.stats()["misses"] == 4
    assert cache.stats()["entries"] == 2


def test_exact_level_memory_bound(qwen_tok: Tokenizer) -> None:
    cache = CachedEncoder(qwen_tok, capacity=100, exact_bytes=2000)
    texts = [f"text number {i} " * 20 for i in range(10)]
    for text in texts:
        assert cache.encode(text) == qwen_tok.encode(text)
        assert cache.stats()["exact_bytes_used"] <= 2000
    assert 0 < cache.stats()["entries"] < 10
    huge = "x" * 5000  # larger than the whole budget: encoded, never stored
    assert cache.encode(huge) == qwen_tok.encode(huge)
    assert cache.encode(huge) == qwen_tok.encode(huge)
    assert cache.stats()["hits"] == 0


def test_add_special_tokens_is_part_of_the_key(tiny_tokenizer_json: str) -> None:
    files = {"tokenizer.json": tiny_tokenizer_json.encode()}
    tok = build_tokenizer("tiny", files)
    cache = CachedEncoder(tok, capacity=8)
    assert cache.encode("hello", True) == tok.encode("hello", True)
    assert cache.encode("hello", False) == tok.encode("hello", False)
    assert cache.stats()["misses"] == 2


def test_prefix_cache_reuses_the_conversation(tok: Tokenizer) -> None:
    cache = CachedEncoder(tok, capacity=0, prefix_bytes=1 << 22)
    assert cache.prefix_disabled is None
    for turns in range(1, 6):
        msgs = _conversation(turns, "Be precise. " * 20)
        msgs.append({"role": "user", "content": "and now?"})
        text = tok.apply_chat_template(msgs)
        assert cache.encode(text) == tok.encode(text)
    stats = cache.stats()
    assert stats["prefix_hits"] == 4
    assert stats["prefix_tokens_reused"] > 0


def test_prefix_cache_memory_bound(tok: Tokenizer) -> None:
    cache = CachedEncoder(tok, capacity=0, prefix_bytes=4096)
    for turns in range(1, 8):
        text = tok.apply_chat_template(_conversation(turns, "x" * 500))
        assert cache.encode(text) == tok.encode(text)
        assert cache.stats()["prefix_bytes_used"] <= 4096


_pieces = st.sampled_from(
    ["Hello", " world", "\n", "  ", "é", "e\u0301", "\u0301", "🎉", "你好", "123", "'s", "<", "|", ">"]
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_prefix_cache_is_exact(tok: Tokenizer, data: st.DataObject) -> None:
    markers = sorted(tok.atomic_tokens().keys() & set(_template_markers(tok)))
    part = st.one_of(_pieces, st.sampled_from(markers))
    cache = CachedEncoder(tok, capacity=0, prefix_bytes=1 << 20)
    base = "".join(data.draw(st.lists(part, max_size=12)))
    for _ in range(3):
        base += "".join(data.draw(st.lists(part, max_size=8)))
        assert cache.encode(base) == tok.encode(base), repr(base)


def _template_markers(tok: Tokenizer) -> list[str]:
    assert tok.chat_template is not None
    return [s for s in tok.atomic_tokens() if s in tok.chat_template.source]


def test_prefix_cache_off_without_markers(tiny_tokenizer_json: str) -> None:
    tok = build_tokenizer("tiny", {"tokenizer.json": tiny_tokenizer_json.encode()})
    cache = CachedEncoder(tok, prefix_bytes=1024)
    assert cache.prefix_disabled is not None
    assert cache.encode("hello <|eot|>world") == tok.encode("hello <|eot|>world")


def test_prefix_cache_off_when_text_after_a_marker_is_not_independent() -> None:
    # Metaspace with prepend_scheme="first" marks only the very first word: the text after
    # a marker tokenizes differently on its own, so splicing would be wrong.
    hf = HfTokenizer(models.BPE())
    hf.pre_tokenizer = pre_tokenizers.Metaspace(prepend_scheme="first")
    hf.decoder = decoders.Metaspace(prepend_scheme="first")
    trainer = trainers.BpeTrainer(vocab_size=200, special_tokens=["<|eot|>"], show_progress=False)
    hf.train_from_iterator(["hello world", "the quick brown fox"] * 20, trainer)
    files = {"tokenizer.json": hf.to_str().encode(), "chat_template.jinja": b"{{ messages }}<|eot|>"}
    tok = build_tokenizer("metaspace", files)
    cache = CachedEncoder(tok, prefix_bytes=1024)
    assert cache.prefix_disabled is not None and "<|eot|>" in cache.prefix_disabled
    text = "x <|eot|>Hello world"
    assert cache.encode(text) == tok.encode(text)


def test_concurrent_use(tok: Tokenizer) -> None:
    cache = CachedEncoder(tok, capacity=16, prefix_bytes=1 << 20)
    texts = [tok.apply_chat_template(_conversation(n)) for n in range(1, 5)]
    expected = [tok.encode(t) for t in texts]
    errors: list[str] = []
    start = threading.Barrier(4)

    def work() -> None:
        start.wait(timeout=10)
        for _ in range(5):
            for text, want in zip(texts, expected):
                if cache.encode(text) != want:
                    errors.append(text)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors


def test_prefix_level_is_off_when_the_kernel_encodes(tiny_tokenizer_json: str) -> None:
    files = {"tokenizer.json": tiny_tokenizer_json.encode(), "chat_template.jinja": b"{{ messages }}</s>"}
    tok = build_tokenizer("tiny", files)
    cache = CachedEncoder(tok, prefix_bytes=1024)
    if tok.fast_encoder is None:
        assert cache.prefix_disabled is None
    else:
        assert cache.prefix_disabled is not None and "kernel" in cache.prefix_disabled
    assert cache.encode("a</s>b") == tok.encode("a</s>b")
