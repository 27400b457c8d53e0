"""Circuit breaker state machine, driven by an injected clock."""

from __future__ import annotations

import pytest

from smg.router import BreakerConfig, CircuitBreaker


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(failures=3, successes=2, timeout=10.0, **kw):
    clock = Clock()
    cfg = BreakerConfig(failure_threshold=failures, success_threshold=successes, timeout_duration_secs=timeout, **kw)
    return CircuitBreaker(cfg, clock=clock), clock


def test_opens_after_consecutive_failures_only():
    b, _ = make(failures=3)
    b.record_failure()
    b.record_failure()
    b.record_success()  # resets the streak
    b.record_failure()
    b.record_failure()
    assert b.state == "closed" and b.allow()
    b.record_failure()
    assert b.state == "open" and not b.allow()


def test_open_turns_half_open_lazily_after_timeout():
    b, clock = make(failures=1, timeout=10.0)
    b.record_failure()
    clock.now += 9.99
    assert b.state == "open"
    clock.now += 0.02
    assert b.allow()  # reading the state moves it
    assert b.state == "half_open"


def test_half_open_closes_after_successes_and_reopens_on_failure():
    b, clock = make(failures=1, successes=2, timeout=5.0)
    b.record_failure()
    clock.now += 5
    assert b.state == "half_open"
    b.record_success()
    assert b.state == "half_open"
    b.record_failure()
    assert b.state == "open"
    clock.now += 5
    b.record_success()
    b.record_success()
    assert b.state == "closed"
    # a fresh closed breaker needs the full failure streak again
    assert b.consecutive_failures == 0


def test_transitions_are_reported():
    b, clock = make(failures=1, successes=1, timeout=1.0)
    seen = []
    b.on_transition(lambda old, new: seen.append((old, new)))
    b.record_failure()
    clock.now += 1
    b.record_success()
    assert seen == [("closed", "open"), ("open", "half_open"), ("half_open", "closed")]
    assert b.transitions == 3


def test_disabled_breaker_always_allows():
    b, _ = make(failures=1, enabled=False)
    for _ in range(50):
        b.record_failure()
    assert b.allow() and b.state == "closed"


def test_reset_closes():
    b, _ = make(failures=1)
    b.record_failure()
    b.reset()
    assert b.state == "closed" and b.allow()


@pytest.mark.parametrize("kw", [{"failure_threshold": 0}, {"success_threshold": 0}, {"timeout_duration_secs": -1}])
def test_bad_config_rejected(kw):
    with pytest.raises(ValueError):
        BreakerConfig(**kw)
