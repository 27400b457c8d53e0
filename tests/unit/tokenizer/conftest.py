"""Fixtures for the tokenizer tests: a tiny BPE trained in memory, model directories."""

from __future__ import annotations

import json
import pathlib
from collections.abc import Callable
from typing import Any

import pytest
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

SPECIALS = ["<s>", "</s>", "<|eot|>"]


@pytest.fixture(scope="session")
def tiny_tokenizer_json() -> str:
    """tokenizer.json text of a byte-level BPE trained on a few sentences."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    corpus = ["hello world", "the quick brown fox", "jumps over the lazy dog", "héllo wörld"]
    tok.train_from_iterator(corpus * 20, trainer)
    return tok.to_str()


@pytest.fixture
def model_dir(
    tmp_path: pathlib.Path, tiny_tokenizer_json: str
) -> Callable[..., pathlib.Path]:
    """make(files): a model directory holding the tiny tokenizer.json plus ``files``
    (name -> str, bytes or a JSON-able value; {"tokenizer.json": None} leaves it out)."""

    def make(files: dict[str, Any] | None = None) -> pathlib.Path:
        files = {"tokenizer.json": tiny_tokenizer_json, **(files or {})}
        for name, value in files.items():
            if value is None:
                continue
            path = tmp_path / name
            if isinstance(value, bytes):
                path.write_bytes(value)
            elif isinstance(value, str):
                path.write_text(value, encoding="utf-8")
            else:
                path.write_text(json.dumps(value), encoding="utf-8")
        return tmp_path

    return make


@pytest.fixture(scope="session")
def deepseek_tok():
    """The built-in DeepSeek tokenizer, encoding with HF tokenizers (loaded once)."""
    from smg.tokenizer import load_tokenizer

    return load_tokenizer("deepseek", fast_encoder=False)


@pytest.fixture(scope="session")
def qwen_tok():
    """The built-in Qwen tokenizer, encoding with tiktoken (loaded once)."""
    from smg.tokenizer import load_tokenizer

    return load_tokenizer("qwen", fast_encoder=False)


@pytest.fixture(params=["deepseek", "qwen"])
def builtin_tok(request: pytest.FixtureRequest):
    """Each built-in tokenizer, library encoders (the kernel is tested against these)."""
    return request.getfixturevalue(f"{request.param}_tok")
