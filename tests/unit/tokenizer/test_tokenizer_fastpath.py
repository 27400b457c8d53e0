"""Encoding through smg._fast.bpe (when built) gives the backend library's ids."""

from __future__ import annotations

import unicodedata

import pytest

from smg._fast import NO_EXTENSIONS
from smg.tokenizer import Tokenizer, build_tokenizer
from smg.tokenizer.fastpath import fast_bpe_module

TEXTS = [
    "Hello, world! It's 2024-06-01 and we'll see 1234567 things.",
    "  spaces\t\ttabs\r\n\r\nlines  \n",
    "中文文本，日本語のテキスト、カタカナ. Ελληνικά; русский текст.",
    "emoji 🎉👍🏽🇫🇷 and combining e\u0301 " + unicodedata.normalize("NFD", "café"),
    "<|im_start|>user\nhi<|im_end|> <｜User｜>x<｜Assistant｜></think> <think>",
    "",
]

needs_kernel = pytest.mark.skipif(
    fast_bpe_module() is None, reason="smg._fast.bpe is not built (or SMG_NO_EXTENSIONS=1)"
)


_fast_cache: dict[str, Tokenizer] = {}


@pytest.fixture
def library_tok(builtin_tok: Tokenizer) -> Tokenizer:
    """The tokenizer with encoding left to HF tokenizers / tiktoken."""
    return builtin_tok


@pytest.fixture
def fast_tok(builtin_tok: Tokenizer) -> Tokenizer:
    """The same files loaded with the default (kernel when it applies), once per name."""
    if builtin_tok.name not in _fast_cache:
        _fast_cache[builtin_tok.name] = build_tokenizer(builtin_tok.name, builtin_tok.files)
    return _fast_cache[builtin_tok.name]


def test_library_path_has_no_fast_encoder(library_tok: Tokenizer) -> None:
    assert library_tok.fast_encoder is None


@pytest.mark.skipif(not NO_EXTENSIONS, reason="only in the pure-Python run")
def test_pure_python_run_never_uses_the_twin(fast_tok: Tokenizer) -> None:
    assert fast_tok.fast_encoder is None


@needs_kernel
def test_kernel_is_used_and_matches_the_library(fast_tok: Tokenizer, library_tok: Tokenizer) -> None:
    assert fast_tok.fast_encoder is not None
    assert fast_tok.encode_releases_gil
    for text in TEXTS:
        assert fast_tok.encode(text) == library_tok.encode(text), text
    assert fast_tok.encode_batch(TEXTS) == library_tok.encode_batch(TEXTS)
    long = " ".join(TEXTS) * 50
    assert fast_tok.encode(long) == library_tok.encode(long)


@needs_kernel
def test_add_special_tokens_goes_to_the_library(fast_tok: Tokenizer, library_tok: Tokenizer) -> None:
    assert fast_tok.encode(TEXTS[0], True) == library_tok.encode(TEXTS[0], True)
