"""Tokenizer backed by tiktoken (a ``*.tiktoken`` / ``tiktoken.model`` vocabulary).

A tiktoken vocabulary is base64 token bytes and a rank per line; the split pattern and
special tokens come from outside the file (tokenizer_config.json: ``added_tokens_decoder``
and smg's ``pat_str`` key; otherwise the cl100k pattern and no special tokens).
Special-token strings in the text are always recognised, like added tokens in HF.
"""

from __future__ import annotations

import base64
import binascii
import unicodedata
from collections.abc import Mapping, Sequence
from typing import Any

from smg.tokenizer.bytelevel import bytes_to_token, token_to_bytes
from smg.tokenizer.errors import TokenizerError
from smg.tokenizer.tokenizer import Tokenizer

__all__ = ["CL100K_PATTERN", "TiktokenTokenizer", "parse_tiktoken_ranks"]

CL100K_PATTERN = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]++[\r\n]*"""
    r"""|\s*[\r\n]|\s+(?!\S)|\s+"""
)


def parse_tiktoken_ranks(data: bytes, filename: str) -> dict[bytes, int]:
    """``base64-token rank`` lines -> {token bytes: rank}; errors name ``filename``."""
    ranks: dict[bytes, int] = {}
    for lineno, line in enumerate(data.splitlines(), 1):
        if not line.strip():
            continue
        try:
            token, rank = line.split()
            ranks[base64.b64decode(token, validate=True)] = int(rank)
        except (ValueError, binascii.Error) as exc:
            raise TokenizerError(f"{filename}: line {lineno} is not 'base64 rank' ({exc})") from None
    if not ranks:
        raise TokenizerError(f"{filename}: empty tiktoken vocabulary")
    return ranks


class TiktokenTokenizer(Tokenizer):
    """A tiktoken ``Encoding`` built from ranks, a split pattern and special tokens."""

    def __init__(
        self,
        ranks: dict[bytes, int],
        *,
        pattern: str,
        special_tokens: Mapping[str, int],
        nfc: bool = False,
        fast: Any | None = None,
        **facts: Any,
    ) -> None:
        try:
            import tiktoken
        except ImportError:
            raise TokenizerError(
                f"{facts['name']}: a tiktoken vocabulary needs the tiktoken package"
            ) from None
        try:
            enc = tiktoken.Encoding(
                facts["name"],
                pat_str=pattern,
                mergeable_ranks=ranks,
                special_tokens=dict(special_tokens),
            )
        except ValueError as exc:
            raise TokenizerError(f"{facts['name']}: bad tiktoken vocabulary: {exc}") from None
        super().__init__(
            vocab_size=enc.n_vocab,
            special_token_ids=frozenset(special_tokens.values()),
            **facts,
        )
        self.tiktoken = enc
        self.pattern = pattern
        self.nfc = nfc
        self._special = dict(special_tokens)
        self._special_by_id = {i: s for s, i in special_tokens.items()}
        self._ranks = ranks
        self._by_id = {i: b for b, i in ranks.items()}
        self._encode = enc.encode
        self.fast_encoder = fast
        self._fast_encode = fast.encode if fast is not None else None
        self._decode_bytes = enc.decode_bytes

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        # add_special_tokens has nothing to add: tiktoken has no post-processor.
        if self.nfc:
            text = unicodedata.normalize("NFC", text)
        if self._fast_encode is not None:
            return self._fast_encode(text)
        return self._encode(text, allowed_special="all")

    def encode_batch(
        self, texts: Sequence[str], add_special_tokens: bool = False
    ) -> list[list[int]]:
        if self.nfc:
            texts = [unicodedata.normalize("NFC", t) for t in texts]
        if self.fast_encoder is not None:
            return self.fast_encoder.encode_batch(list(texts))
        assert self.tiktoken is not None
        return self.tiktoken.encode_batch(list(texts), allowed_special="all")

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = True) -> str:
        if skip_special_tokens:
            special = self._special_by_id
            ids = [i for i in ids if i not in special]
        try:
            raw = self._decode_bytes(ids)
        except (KeyError, OverflowError, TypeError):
            # Unknown ids are dropped, as HF tokenizers does.
            raw = b"".join(self.token_bytes(i) or b"" for i in ids)
        return raw.decode("utf-8", "replace")

    def token_to_id(self, token: str) -> int | None:
        if token in self._special:
            return self._special[token]
        raw = token_to_bytes(token)
        return None if raw is None else self._ranks.get(raw)

    def id_to_token(self, token_id: int) -> str | None:
        if token_id in self._special_by_id:
            return self._special_by_id[token_id]
        raw = self._by_id.get(token_id)
        return None if raw is None else bytes_to_token(raw)

    def token_bytes(self, token_id: int) -> bytes | None:
        if token_id in self._special_by_id:
            return self._special_by_id[token_id].encode()
        return self._by_id.get(token_id)

    def atomic_tokens(self) -> dict[str, int]:
        return dict(self._special)
