"""Tokenizer backed by HF ``tokenizers`` (a tokenizer.json)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import tokenizers
from tokenizers import decoders

from smg.tokenizer.bytelevel import token_to_bytes
from smg.tokenizer.tokenizer import Tokenizer

__all__ = ["GIL_FREE_CHARS", "HfTokenizer"]

GIL_FREE_CHARS = 1024
"""From this length on, encode goes through ``encode_batch([text])``.

Measured here: ``tokenizers`` holds the GIL for the whole of ``encode`` (another thread
ran at 0.13x its speed meanwhile) but releases it in ``encode_batch`` (0.90x), and for
one text of 1.5 KB or 150 KB ``encode_batch`` costs 0.97-1.05x of ``encode`` (1.3x at
50 bytes). So long texts encoded in a worker thread no longer stall the event loop.
"""


class HfTokenizer(Tokenizer):
    """A tokenizer.json through ``tokenizers.Tokenizer``."""

    def __init__(self, hf: tokenizers.Tokenizer, fast: Any | None = None, **facts: Any) -> None:
        added = hf.get_added_tokens_decoder()
        special = frozenset(i for i, tok in added.items() if tok.special)
        super().__init__(
            vocab_size=hf.get_vocab_size(with_added_tokens=True),
            special_token_ids=special,
            **facts,
        )
        self.hf = hf
        self._added = added
        self._byte_level = isinstance(hf.decoder, decoders.ByteLevel)
        self._encode = hf.encode
        self._decode = hf.decode
        self._encode_batch = hf.encode_batch
        self.fast_encoder = fast
        self._fast_encode = fast.encode if fast is not None else None

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        if self._fast_encode is not None and not add_special_tokens:
            return self._fast_encode(text)
        if len(text) >= GIL_FREE_CHARS:
            return self._encode_batch([text], add_special_tokens=add_special_tokens)[0].ids
        return self._encode(text, add_special_tokens=add_special_tokens).ids

    def encode_batch(
        self, texts: Sequence[str], add_special_tokens: bool = False
    ) -> list[list[int]]:
        if self.fast_encoder is not None and not add_special_tokens:
            return self.fast_encoder.encode_batch(list(texts))
        encoded = self.hf.encode_batch(list(texts), add_special_tokens=add_special_tokens)
        return [e.ids for e in encoded]

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = True) -> str:
        if not isinstance(ids, list):
            ids = list(ids)
        return self._decode(ids, skip_special_tokens=skip_special_tokens)

    def token_to_id(self, token: str) -> int | None:
        return self.hf.token_to_id(token)

    def id_to_token(self, token_id: int) -> str | None:
        return self.hf.id_to_token(token_id)

    def token_bytes(self, token_id: int) -> bytes | None:
        token = self.hf.id_to_token(token_id)
        if token is None:
            return None
        added = self._added.get(token_id)
        if added is not None:
            return added.content.encode()
        if self._byte_level:
            raw = token_to_bytes(token)
            if raw is not None:
                return raw
        # Other decoders (Metaspace, byte fallback): the decoded text of the lone token.
        return self.hf.decode([token_id], skip_special_tokens=False).encode()

    def atomic_tokens(self) -> dict[str, int]:
        # Added tokens are cut out before pre-tokenization. Those that also strip
        # neighbouring spaces, match whole words only, or change under the normalizer
        # do not cut the raw text where their string is, so they are left out.
        norm = self.hf.normalizer
        atomic = {}
        for i, tok in self._added.items():
            if tok.lstrip or tok.rstrip or tok.single_word:
                continue
            if tok.normalized and norm is not None and norm.normalize_str(tok.content) != tok.content:
                continue
            atomic[tok.content] = i
        return atomic
