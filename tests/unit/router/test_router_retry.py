"""Retry backoff: exponential, capped, jittered within bounds."""

from __future__ import annotations

import random

import pytest

from smg.router import RETRYABLE_STATUS, RetryConfig, is_retryable


def test_defaults_match_smg():
    cfg = RetryConfig()
    assert (cfg.max_retries, cfg.initial_backoff_ms, cfg.max_backoff_ms) == (5, 50, 30000)
    assert (cfg.backoff_multiplier, cfg.jitter_factor) == (1.5, 0.2)
    assert RETRYABLE_STATUS == {408, 429, 500, 502, 503, 504}
    assert is_retryable(503) and not is_retryable(400) and not is_retryable(404)


def test_base_delay_grows_geometrically_and_caps():
    cfg = RetryConfig(initial_backoff_ms=100, backoff_multiplier=2.0, max_backoff_ms=1000)
    delays = [cfg.base_delay(i) for i in range(6)]
    assert delays[:4] == pytest.approx([0.1, 0.2, 0.4, 0.8])
    assert delays[4] == delays[5] == pytest.approx(1.0)
    assert cfg.base_delay(10_000) == pytest.approx(1.0)  # no overflow


def test_jitter_stays_in_band_and_varies():
    cfg = RetryConfig(initial_backoff_ms=1000, backoff_multiplier=1.0, jitter_factor=0.2)
    rng = random.Random(7)
    samples = [cfg.delay(0, rng) for _ in range(500)]
    assert min(samples) >= 0.8 and max(samples) <= 1.2
    assert max(samples) - min(samples) > 0.3  # actually jittered, both sides
    assert RetryConfig(jitter_factor=0.0).delay(2) == pytest.approx(0.05 * 1.5**2)


@pytest.mark.parametrize(
    "kw", [{"max_retries": 0}, {"backoff_multiplier": 0.5}, {"jitter_factor": 1.5}, {"initial_backoff_ms": -1}]
)
def test_bad_config_rejected(kw):
    with pytest.raises(ValueError):
        RetryConfig(**kw)
