"""The GIL-free BPE kernel (``smg._fast.bpe``) as an encoder for loaded tokenizers.

Used when the compiled kernel is importable and reproduces the tokenizer exactly
(``BpeEncoder.supported``); otherwise encoding stays with HF tokenizers or tiktoken. The
pure-Python twin (``SMG_NO_EXTENSIONS=1``) is a specification, far slower than either
library, so it is never used here.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import tempfile
from collections.abc import Mapping
from types import ModuleType
from typing import Any

__all__ = ["encoder_for_tiktoken", "encoder_for_tokenizer_json", "fast_bpe_module"]

log = logging.getLogger("smg.tokenizer")


def fast_bpe_module() -> ModuleType | None:
    """``smg._fast.bpe`` when its compiled implementation is available, else None."""
    if importlib.util.find_spec("smg._fast.bpe") is None:
        return None
    try:
        from smg._fast import bpe
    except ImportError:  # the compiled kernel is not built
        return None
    return bpe if getattr(bpe, "IMPLEMENTATION", None) == "cython" else None


def _supported(encoder: Any, what: str) -> Any | None:
    if getattr(encoder, "supported", False):
        return encoder
    log.info("smg.tokenizer: %s is not supported by smg._fast.bpe; using the library", what)
    return None


def encoder_for_tokenizer_json(text: str) -> Any | None:
    """A supported ``BpeEncoder`` for this tokenizer.json text, or None."""
    bpe = fast_bpe_module()
    if bpe is None:
        return None
    try:
        encoder = bpe.BpeEncoder.from_tokenizer_json(text)
    except (ValueError, KeyError, TypeError) as exc:
        log.warning("smg.tokenizer: smg._fast.bpe cannot load this tokenizer.json: %s", exc)
        return None
    return _supported(encoder, "this tokenizer.json")


def encoder_for_tiktoken(
    data: bytes, pattern: str, special_tokens: Mapping[str, int]
) -> Any | None:
    """A supported ``BpeEncoder`` for a tiktoken vocabulary (its file bytes), or None."""
    bpe = fast_bpe_module()
    if bpe is None or bpe.pattern_split(pattern) is None:
        return None
    # from_tiktoken reads a path; the vocabulary may have come from a zip.
    fd, path = tempfile.mkstemp(suffix=".tiktoken")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        encoder = bpe.BpeEncoder.from_tiktoken(path, pattern, dict(special_tokens))
    except (ValueError, KeyError, TypeError, OSError) as exc:
        log.warning("smg.tokenizer: smg._fast.bpe cannot load this tiktoken file: %s", exc)
        return None
    finally:
        os.unlink(path)
    return _supported(encoder, "this tiktoken pattern")
