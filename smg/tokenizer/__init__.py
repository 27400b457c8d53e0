"""Tokenizers and chat templates: loading, encoding, templating, caching.

``load_tokenizer(source)`` gives a ``Tokenizer`` (HF tokenizers or tiktoken inside) with
its chat template and EOS ids; ``load_tokenizer_from_zip`` does the same from a
GetTokenizer rpc bundle, and ``zip_tokenizer_files`` makes one.
"""

from __future__ import annotations

from smg.tokenizer.bundle import load_tokenizer_from_zip, zip_tokenizer_files
from smg.tokenizer.errors import ChatTemplateError, TokenizerError
from smg.tokenizer.loader import build_tokenizer, load_tokenizer
from smg.tokenizer.template import ChatTemplate
from smg.tokenizer.tokenizer import Tokenizer

__all__ = [
    "ChatTemplate",
    "ChatTemplateError",
    "Tokenizer",
    "TokenizerError",
    "build_tokenizer",
    "load_tokenizer",
    "load_tokenizer_from_zip",
    "zip_tokenizer_files",
]
