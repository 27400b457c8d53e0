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

Admission control (:mod:`smg.http.admission`; Rust names but the last two):
``--max-concurrent-requests`` (-1 or 0: off), ``--queue-size``, ``--queue-timeout-secs``,
``--rate-limit-tokens-per-second`` (0: off), ``--tenant-rate-limit-tokens-per-second`` and
``--shed-inflight-per-worker``. ``--body-read-timeout-secs`` bounds how long a client may
take to send a request body (smg's HTTP/1.1 server, :mod:`smg.http.h1limits`).
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

    max_concurrent_requests: int = opt(
        -1, "inference requests admitted at a time; more wait in the admission queue (-1 or 0: no limit)"
    )
    queue_size: int = opt(100, "inference requests that may wait for admission (429 past it; 0: no queue)")
    queue_timeout_secs: float = opt(60.0, "longest wait for admission (408 past it)")
    rate_limit_tokens_per_second: float = opt(
        0.0,
        "inference requests admitted per second, bursting up to --max-concurrent-requests (429 past it; 0: no limit)",
    )
    tenant_rate_limit_tokens_per_second: float = opt(
        0.0, "inference requests per second of each tenant API key's tenant (429 past it; 0: no limit)"
    )
    shed_inflight_per_worker: int = opt(
        0, "503 at once when every available worker has this many requests in flight (0: never shed)"
    )

    body_read_timeout_secs: float = opt(
        60.0, "a request body must arrive whole this soon after it is first waited for (408 and close; 0: no limit)"
    )

    max_tree_total_size: int = opt(
        0, "cache_aware: chars/tokens cached across every tree and worker together, besides --max-tree-size "
           "per worker (0: 5% of the machine's memory at 4 bytes a unit)"
    )

    def __post_init__(self) -> None:
        if self.first_byte_timeout_secs < 0 or self.inter_token_timeout_secs < 0:
            raise ValueError("timeouts must be >= 0 (0: no limit)")
        if self.max_tree_total_size < 0:
            raise ValueError("--max-tree-total-size must be >= 0 (0: sized to the machine)")
        if self.body_read_timeout_secs < 0:
            raise ValueError("--body-read-timeout-secs must be >= 0 (0: no limit)")
        if self.queue_size < 0 or self.queue_timeout_secs < 0:
            raise ValueError("--queue-size and --queue-timeout-secs must be >= 0")
        if (self.rate_limit_tokens_per_second < 0 or self.tenant_rate_limit_tokens_per_second < 0
                or self.shed_inflight_per_worker < 0):
            raise ValueError("rate limits and --shed-inflight-per-worker must be >= 0 (0: off)")
