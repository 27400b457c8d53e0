"""Protobuf fast paths of the lean gRPC client (streamed chunks in, one at a time or a
worker read at once; prompt ids out): the implementation in use.

API and semantics: :mod:`smg._fast.grpcwire_py` (the specification). ``IMPLEMENTATION``
is "cython" or "python" (``SMG_NO_EXTENSIONS=1``; the lean client then parses with
upb, which is faster than the Python twin).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from smg._fast import load

if TYPE_CHECKING:
    from smg._fast.grpcwire_py import decode_chunk, decode_chunks, encode_tokenized
else:
    _impl = load("grpcwire")
    decode_chunk = _impl.decode_chunk
    decode_chunks = _impl.decode_chunks
    encode_tokenized = _impl.encode_tokenized

IMPLEMENTATION = "python" if load("grpcwire").__name__.endswith("_py") else "cython"

__all__ = ["IMPLEMENTATION", "decode_chunk", "decode_chunks", "encode_tokenized"]
