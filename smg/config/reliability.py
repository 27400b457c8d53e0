"""The ``reliability`` section of :class:`~smg.config.GatewayConfig`: how long a worker
may keep a request waiting before the gateway gives up on it (and on the worker).

``--request-timeout-secs`` (server section, the Rust gateway's name) bounds a whole
request in both modes. The two limits here have no Rust equivalent:

- ``--first-byte-timeout-secs``: the worker's first answer (proxy: the response head;
  gRPC: the first message) must come this soon after the request went out;
- ``--inter-token-timeout-secs``: once it answers, no silence between two reads of its
  answer may last longer.

Past either the client gets a 504 (mid-stream: an error event, then ``[DONE]``) and the
worker is ejected at once (its circuit breaker opens). 0 turns a limit off.
"""

from __future__ import annotations

from dataclasses import dataclass

from smg.config.sections import opt

__all__ = ["ReliabilitySettings"]


@dataclass(frozen=True)
class ReliabilitySettings:
    """Timeouts that take a stalled worker out of a request and out of rotation."""

    first_byte_timeout_secs: float = opt(
        300.0, "seconds a worker may take to start answering (504 and ejection past it; 0: no limit)"
    )
    inter_token_timeout_secs: float = opt(
        60.0, "longest silence between two pieces of a worker's answer (error and ejection past it; 0: no limit)"
    )

    def __post_init__(self) -> None:
        if self.first_byte_timeout_secs < 0 or self.inter_token_timeout_secs < 0:
            raise ValueError("timeouts must be >= 0 (0: no limit)")
