"""Retry settings: exponential backoff with jitter (SMG semantics and defaults).

``max_retries`` is the *total* number of attempts (SMG's executor loops
``max(max_retries, 1)`` times). The delay before retry ``i`` (0-based) is
``min(initial * multiplier**i, max_backoff)`` scaled by ``1 + U[-jitter, +jitter]``.
Each attempt re-runs worker selection, excluding workers already tried.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

__all__ = ["RETRYABLE_STATUS", "RetryConfig", "is_retryable"]

RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})

_rng = random.Random()


def is_retryable(status: int) -> bool:
    """Is an upstream HTTP status worth another attempt (and a breaker failure)?"""
    return status in RETRYABLE_STATUS


@dataclass(frozen=True)
class RetryConfig:
    """Retry settings (defaults are SMG's CLI defaults)."""

    max_retries: int = field(
        default=5, metadata={"help": "total attempts per request (1 disables retries)", "flag": "--retry-max-retries"}
    )
    initial_backoff_ms: int = field(
        default=50, metadata={"help": "delay before the first retry", "flag": "--retry-initial-backoff-ms"}
    )
    max_backoff_ms: int = field(
        default=30000, metadata={"help": "upper bound on a retry delay", "flag": "--retry-max-backoff-ms"}
    )
    backoff_multiplier: float = field(
        default=1.5, metadata={"help": "growth of the delay per retry", "flag": "--retry-backoff-multiplier"}
    )
    jitter_factor: float = field(
        default=0.2, metadata={"help": "relative random jitter on each delay", "flag": "--retry-jitter-factor"}
    )

    def __post_init__(self) -> None:
        if self.max_retries < 1:
            raise ValueError("max_retries is the total number of attempts and must be >= 1")
        if self.initial_backoff_ms < 0 or self.max_backoff_ms < 0:
            raise ValueError("backoff delays must be >= 0")
        if self.backoff_multiplier < 1.0:
            raise ValueError("backoff_multiplier must be >= 1")
        if not 0.0 <= self.jitter_factor <= 1.0:
            raise ValueError("jitter_factor must be in [0, 1]")

    @property
    def attempts(self) -> int:
        return max(self.max_retries, 1)

    def base_delay(self, attempt: int) -> float:
        """The delay in seconds before retry ``attempt`` (0-based), without jitter."""
        ms = min(self.initial_backoff_ms * self.backoff_multiplier ** min(max(attempt, 0), 256), self.max_backoff_ms)
        return ms / 1000.0

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """The delay in seconds before retry ``attempt`` (0-based), with jitter."""
        jitter = (rng or _rng).uniform(-self.jitter_factor, self.jitter_factor)
        return max(self.base_delay(attempt) * (1.0 + jitter), 0.0)
