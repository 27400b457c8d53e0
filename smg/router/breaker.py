"""Per-worker circuit breaker (SMG semantics).

States: ``closed`` (traffic flows), ``open`` (no traffic), ``half_open`` (traffic flows
while the worker proves itself). Transitions:

- closed -> open after ``failure_threshold`` *consecutive* failures (a success resets the
  count);
- open -> half_open lazily: the first time the state is read at least
  ``timeout_duration_secs`` after the breaker opened;
- half_open -> closed after ``success_threshold`` consecutive successes; any failure in
  half_open reopens it.

Half-open does not limit probes: every request is let through, as in SMG. The clock is
injectable so tests drive the timeout without sleeping.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["BreakerConfig", "BreakerState", "CircuitBreaker"]

BreakerState = Literal["closed", "open", "half_open"]


@dataclass(frozen=True)
class BreakerConfig:
    """Circuit breaker settings (defaults are SMG's CLI defaults)."""

    failure_threshold: int = field(
        default=10,
        metadata={"help": "consecutive failures that open a worker's circuit", "flag": "--cb-failure-threshold"},
    )
    success_threshold: int = field(
        default=3,
        metadata={"help": "consecutive half-open successes that close it", "flag": "--cb-success-threshold"},
    )
    timeout_duration_secs: float = field(
        default=60.0,
        metadata={"help": "seconds an open circuit waits before half-open", "flag": "--cb-timeout-duration-secs"},
    )
    enabled: bool = field(
        default=True, metadata={"help": "enable per-worker circuit breakers", "flag": "--circuit-breaker"}
    )

    def __post_init__(self) -> None:
        if self.failure_threshold < 1 or self.success_threshold < 1:
            raise ValueError("breaker thresholds must be >= 1")
        if self.timeout_duration_secs < 0:
            raise ValueError("timeout_duration_secs must be >= 0")


class CircuitBreaker:
    """Consecutive-failure circuit breaker with a lazy open -> half_open transition."""

    __slots__ = ("config", "_clock", "_state", "_changed_at", "consecutive_failures",
                 "consecutive_successes", "transitions", "_listeners")

    def __init__(self, config: BreakerConfig = BreakerConfig(), clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self._clock = clock
        self._state: BreakerState = "closed"
        self._changed_at = clock()
        self.consecutive_failures = 0
        self.consecutive_successes = 0
        self.transitions = 0
        self._listeners: list[Callable[[BreakerState, BreakerState], None]] = []

    @property
    def state(self) -> BreakerState:
        if self._state == "open" and self._clock() - self._changed_at >= self.config.timeout_duration_secs:
            self._move("half_open")
        return self._state

    def allow(self) -> bool:
        """May a request be sent now? False only while open."""
        if not self.config.enabled:
            return True
        return self.state != "open"

    def record_success(self) -> None:
        if not self.config.enabled:
            return
        state = self.state  # first: a lazy open -> half_open move resets the streak
        self.consecutive_failures = 0
        self.consecutive_successes += 1
        if state == "half_open" and self.consecutive_successes >= self.config.success_threshold:
            self._move("closed")

    def record_failure(self) -> None:
        if not self.config.enabled:
            return
        state = self.state
        self.consecutive_successes = 0
        self.consecutive_failures += 1
        if state == "half_open" or (
            state == "closed" and self.consecutive_failures >= self.config.failure_threshold
        ):
            self._move("open")

    def trip(self) -> None:
        """Open now, whatever the count (outlier ejection: a worker that timed out gets no
        traffic until the open timeout passes and it proves itself half-open)."""
        if not self.config.enabled:
            return
        self.consecutive_successes = 0
        if self._state != "open":
            self._move("open")
        else:
            self._changed_at = self._clock()

    def recovered(self) -> None:
        """Health probes saw the worker down and then answering again while the breaker was
        open (a restart): half-open now, so the next requests try it, instead of waiting
        out the whole open timeout."""
        if self._state == "open":
            self._move("half_open")

    def reset(self) -> None:
        """Force the breaker closed (an operator action, e.g. a worker re-added)."""
        self.consecutive_failures = self.consecutive_successes = 0
        if self._state != "closed":
            self._move("closed")

    def on_transition(self, callback: Callable[[BreakerState, BreakerState], None]) -> None:
        """Call ``callback(old, new)`` on every state change (for metrics and events)."""
        self._listeners.append(callback)

    def _move(self, new: BreakerState) -> None:
        old, self._state = self._state, new
        self._changed_at = self._clock()
        self.transitions += 1
        if new != "closed":
            # Counting starts afresh in the new state: half_open needs N successes of its own.
            self.consecutive_successes = 0
        for callback in self._listeners:
            callback(old, new)

    def to_dict(self) -> dict:
        return {
            "state": self.state,
            "consecutive_failures": self.consecutive_failures,
            "consecutive_successes": self.consecutive_successes,
            "transitions": self.transitions,
        }

    def __repr__(self) -> str:
        return f"CircuitBreaker(state={self.state!r}, failures={self.consecutive_failures})"
