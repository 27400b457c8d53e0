"""A tokenizer.json built from GPT-2-style ``vocab.json`` + ``merges.txt``.

Some models ship only these two files (and tokenizer_config.json). They describe a
byte-level BPE; the split regex is GPT-2's, or Qwen2's (with NFC) when
tokenizer_config.json names a Qwen2 tokenizer class. Added tokens come from
``added_tokens_decoder`` and must land on the ids it gives.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from smg.tokenizer.errors import TokenizerError

__all__ = ["QWEN2_PATTERN", "tokenizer_json_from_vocab_merges"]

QWEN2_PATTERN = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"""
    r"""|\s*[\r\n]+|\s+(?!\S)|\s+"""
)


def _merges(data: bytes) -> list[tuple[str, str]]:
    merges = []
    for lineno, line in enumerate(data.decode("utf-8").splitlines(), 1):
        if not line.strip() or (lineno == 1 and line.startswith("#version")):
            continue
        parts = line.split(" ")
        if len(parts) != 2:
            raise TokenizerError(f"merges.txt: line {lineno} is not two tokens")
        merges.append((parts[0], parts[1]))
    return merges


def tokenizer_json_from_vocab_merges(
    name: str, files: Mapping[str, bytes], config: Mapping[str, Any]
) -> str:
    """tokenizer.json text equivalent to the vocab.json/merges.txt pair in ``files``."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers

    try:
        vocab = json.loads(files["vocab.json"])
        merges = _merges(files["merges.txt"])
        hf = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    except (ValueError, UnicodeDecodeError, TypeError) as exc:
        raise TokenizerError(f"{name}: cannot read vocab.json/merges.txt: {exc}") from None
    except Exception as exc:  # tokenizers' own errors are plain Exceptions
        raise TokenizerError(f"{name}: vocab.json/merges.txt do not form a BPE: {exc}") from None
    if "qwen2" in str(config.get("tokenizer_class", "")).lower():
        hf.normalizer = normalizers.NFC()
        hf.pre_tokenizer = pre_tokenizers.Sequence(
            [
                pre_tokenizers.Split(Regex(QWEN2_PATTERN), behavior="isolated"),
                pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
            ]
        )
    else:
        hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    hf.decoder = decoders.ByteLevel()
    added = sorted(
        (int(i), entry)
        for i, entry in (config.get("added_tokens_decoder") or {}).items()
        if isinstance(entry, dict) and "content" in entry
    )
    for token_id, entry in added:
        token = AddedToken(
            entry["content"],
            special=bool(entry.get("special", False)),
            lstrip=bool(entry.get("lstrip", False)),
            rstrip=bool(entry.get("rstrip", False)),
            normalized=bool(entry.get("normalized", not entry.get("special", False))),
            single_word=bool(entry.get("single_word", False)),
        )
        hf.add_tokens([token])
        if hf.token_to_id(entry["content"]) != token_id:
            raise TokenizerError(
                f"{name}: added token {entry['content']!r} cannot get id {token_id} "
                "on top of vocab.json (ids must follow the vocabulary without gaps)"
            )
    return hf.to_str()
