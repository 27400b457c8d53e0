"""Incremental detokenizer over a per-tokenizer byte table (pure Python; the specification).

API (the same in ``detok_c``; import it from :mod:`smg._fast.detok`)::

    table = DetokTable.from_hf(tokenizer)        # or DetokTable.from_tiktoken(encoding)
    d = Detokenizer(table, skip_special_tokens=True, prompt_tail=prompt_ids[-8:])
    d.step(token_id) -> str                      # text completed by this token ("" if none)
    d.step_many(token_ids) -> str                # the same for several tokens, one str
    d.flush() -> str                             # end of stream: "\\ufffd" for a cut-off char
    detokenize_batch(detokenizers, token_ids_per_request) -> list[str]

Semantics:

- A token's bytes come from the table (see :mod:`smg._fast.detok_build`). The text emitted
  so far is always the longest decodable prefix of the bytes seen: a character split over
  tokens is held back (at most 3 pending bytes, ``pending``) and emitted whole by the token
  that completes it. Invalid bytes become U+FFFD at once, one per maximal invalid subpart
  (Python's ``errors="replace"``, Rust's ``from_utf8_lossy``), so the concatenation of all
  deltas plus ``flush()`` equals ``tokenizers``' full ``decode`` of the same ids.
- ``skip_special_tokens`` drops only tokens flagged special (DeepSeek's non-special added
  tokens such as ``<think>`` are emitted). Ids the tokenizer does not have are dropped.
- Start of sequence: Metaspace decoders drop every ``▁`` of the first token, and the
  SentencePiece "legacy" decoder drops the first output byte if it is a space. Both apply only
  when there is no prompt: a non-empty ``prompt_tail`` means generation continues a prompt.
  Only the last 8 ids of ``prompt_tail`` are read (O(1) priming); a prompt that ends inside
  a character seeds the pending bytes, and the first delta carries the completed character.
- Tables whose tokenizer decoder is not expressible (``table.kind == "fallback"``) decode
  through the tokenizer itself (:class:`~smg._fast.detok_build.FallbackDetokenizer`).
- ``step`` keeps the GIL; ``detokenize_batch`` (compiled twin) releases it for the whole
  batch. A Detokenizer must not be used from two threads at once.
"""

from __future__ import annotations

from typing import Any, Sequence

from smg._fast.detok_build import FallbackDetokenizer, TableSpec, spec_from_hf, spec_from_tiktoken

__all__ = ["PRIME_IDS", "DetokTable", "Detokenizer", "complete_prefix_len", "detokenize_batch"]

PRIME_IDS = 8  # how many trailing prompt ids priming reads


def complete_prefix_len(buf: bytes) -> int:
    """Length of ``buf`` without its trailing incomplete (but so far valid) UTF-8 sequence."""
    n = len(buf)
    i = n - 1
    while i >= 0 and i > n - 4 and 0x80 <= buf[i] <= 0xBF:
        i -= 1
    if i < 0 or i < n - 4:
        return n
    lead = buf[i]
    if 0xC2 <= lead <= 0xDF:
        need, lo, hi = 2, 0x80, 0xBF
    elif 0xE0 <= lead <= 0xEF:
        need = 3
        lo = 0xA0 if lead == 0xE0 else 0x80
        hi = 0x9F if lead == 0xED else 0xBF
    elif 0xF0 <= lead <= 0xF4:
        need = 4
        lo = 0x90 if lead == 0xF0 else 0x80
        hi = 0x8F if lead == 0xF4 else 0xBF
    else:
        return n
    if n - i >= need:
        return n
    if n - i >= 2 and not lo <= buf[i + 1] <= hi:
        return n
    return i


class DetokTable:
    """Token bytes of one tokenizer, built once and shared by all its requests."""

    def __init__(self, spec: TableSpec) -> None:
        self.kind = spec.kind
        self.reason = spec.reason
        self.fallback = spec.fallback
        self._pieces = list(spec.pieces)
        self._special = spec.special
        self._first = dict(spec.first_pieces)
        self.strip_first_space = spec.strip_first_space

    @classmethod
    def from_hf(cls, tokenizer: Any) -> DetokTable:
        """Table for a HF ``tokenizers.Tokenizer``; ``kind == "fallback"`` if its decoder isn't supported."""
        return cls(spec_from_hf(tokenizer))

    @classmethod
    def from_tiktoken(cls, encoding: Any) -> DetokTable:
        """Table for a ``tiktoken.Encoding`` (all its special tokens are flagged special)."""
        return cls(spec_from_tiktoken(encoding))

    def __len__(self) -> int:
        return len(self._pieces)

    def piece(self, token_id: int) -> bytes | None:
        """Token ``token_id``'s bytes, or None if the tokenizer has no such id."""
        if 0 <= token_id < len(self._pieces):
            return self._pieces[token_id]
        return None

    def is_special(self, token_id: int) -> bool:
        return token_id in self._special

    def __repr__(self) -> str:
        return f"<DetokTable kind={self.kind} ids={len(self._pieces)}>"


class Detokenizer:
    """Per-request incremental detokenizer state: a few pending bytes and two flags."""

    def __init__(self, table: DetokTable, skip_special_tokens: bool = True, prompt_tail: Sequence[int] = ()) -> None:
        self.table = table
        self.skip_special_tokens = bool(skip_special_tokens)
        self._pending = b""
        self._at_start = True
        self._strip = table.strip_first_space
        self._fallback: FallbackDetokenizer | None = None
        tail = [int(t) for t in prompt_tail[-PRIME_IDS:]] if prompt_tail else []
        if table.fallback is not None:
            self._fallback = FallbackDetokenizer(table.fallback, self.skip_special_tokens, tail)
            return
        if tail:
            self._at_start = self._strip = False
            data = b"".join(self._visible(t) for t in tail)
            self._pending = data[complete_prefix_len(data) :]

    @property
    def pending(self) -> bytes:
        """Bytes of an incomplete character held back (at most 3)."""
        return self._pending

    def _visible(self, token_id: int) -> bytes:
        """The bytes this token adds (b"" if dropped), updating the start-of-sequence flag."""
        table = self.table
        piece = table.piece(token_id)
        if piece is None or (self.skip_special_tokens and table.is_special(token_id)):
            return b""
        if self._at_start:
            self._at_start = False
            piece = table._first.get(token_id, piece)
        return piece

    def _push(self, data: bytes) -> str:
        if self._strip and data:
            self._strip = False
            if data[:1] == b" ":
                data = data[1:]
        buf = self._pending + data
        cut = complete_prefix_len(buf)
        self._pending = buf[cut:]
        return buf[:cut].decode("utf-8", "replace")

    def step(self, token_id: int) -> str:
        """Feed one generated token; returns the text it completes."""
        if self._fallback is not None:
            return self._fallback.step_many((token_id,))
        piece = self._visible(int(token_id))
        if piece and not self._pending and not self._strip and piece[-1] < 0x80:
            return piece.decode("utf-8", "replace")  # ends in ASCII: nothing to hold back
        return self._push(piece)

    def step_many(self, token_ids: Sequence[int]) -> str:
        """Feed several tokens; returns their text as one str."""
        if self._fallback is not None:
            return self._fallback.step_many(token_ids)
        return self._push(b"".join([self._visible(int(t)) for t in token_ids]))

    def flush(self) -> str:
        """End of stream: emit held bytes (an incomplete character becomes U+FFFD)."""
        if self._fallback is not None:
            return self._fallback.flush()
        out = self._pending.decode("utf-8", "replace")
        self._pending = b""
        return out


def detokenize_batch(detokenizers: Sequence[Detokenizer], token_ids_per_request: Sequence[Sequence[int]]) -> list[str]:
    """One engine step for many requests: ``detokenizers[i].step_many(token_ids_per_request[i])``."""
    if len(detokenizers) != len(token_ids_per_request):
        raise ValueError("detokenize_batch: one list of token ids per detokenizer")
    return [d.step_many(ids) for d, ids in zip(detokenizers, token_ids_per_request)]
