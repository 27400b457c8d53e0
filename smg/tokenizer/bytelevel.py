"""The GPT-2 byte-level alphabet: each byte as one printable character.

Byte-level BPE vocabularies (tokenizer.json with a ByteLevel decoder) spell tokens in this
alphabet; tiktoken vocabularies are raw bytes, and we show them in the same alphabet so
``id_to_token`` looks the same for both backends.
"""

from __future__ import annotations

__all__ = ["BYTE_TO_CHAR", "CHAR_TO_BYTE", "bytes_to_token", "token_to_bytes"]


def _alphabet() -> list[str]:
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    chars: list[str] = [""] * 256
    extra = 0
    for b in range(256):
        if b in printable:
            chars[b] = chr(b)
        else:
            chars[b] = chr(256 + extra)
            extra += 1
    return chars


BYTE_TO_CHAR: tuple[str, ...] = tuple(_alphabet())
CHAR_TO_BYTE: dict[str, int] = {c: b for b, c in enumerate(BYTE_TO_CHAR)}


def bytes_to_token(data: bytes) -> str:
    return "".join(BYTE_TO_CHAR[b] for b in data)


def token_to_bytes(token: str) -> bytes | None:
    """Inverse of ``bytes_to_token``; None when ``token`` is not in the alphabet."""
    try:
        return bytes(CHAR_TO_BYTE[c] for c in token)
    except KeyError:
        return None
