"""Stop strings and stop token ids, standalone or fused with detok: the implementation in use.

API and semantics: :mod:`smg._fast.stops_py` (the specification). ``IMPLEMENTATION`` is
"cython" or "python" (``SMG_NO_EXTENSIONS=1``). A ``StreamDecoder`` takes a table from
:mod:`smg._fast.detok` (the same implementation).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from smg._fast import load

if TYPE_CHECKING:
    from smg._fast.stops_py import MAX_STOP_BYTES, MAX_STOPS, StepResult, StopScanner, StreamDecoder, stream_batch
else:
    _impl = load("stops")
    MAX_STOPS = _impl.MAX_STOPS
    MAX_STOP_BYTES = _impl.MAX_STOP_BYTES
    StepResult = _impl.StepResult
    StopScanner = _impl.StopScanner
    StreamDecoder = _impl.StreamDecoder
    stream_batch = _impl.stream_batch

IMPLEMENTATION = "python" if load("stops").__name__.endswith("_py") else "cython"

__all__ = ["IMPLEMENTATION", "MAX_STOPS", "MAX_STOP_BYTES", "StepResult", "StopScanner", "StreamDecoder",
           "stream_batch"]
