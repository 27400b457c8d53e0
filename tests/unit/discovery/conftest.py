"""Fixtures of the discovery tests: the API server stand-in (tests/k8s_standin.py) and a
gateway AppState discovering from it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

import pytest

pytest.importorskip("kubernetes_asyncio")

from k8s_standin import kubeconfig, standin  # noqa: E402,F401 - fixtures

from smg.config import GatewayConfig  # noqa: E402
from smg.http.state import AppState  # noqa: E402


def discovery_config(kubeconfig: str, **settings) -> GatewayConfig:
    base = {
        "service_discovery": True, "selector": ["app=worker"], "discovery_kubeconfig": kubeconfig,
        "service_discovery_namespace": "default", "model_id_from": "label:model",
        "discovery_check_interval_secs": 3.0, "discovery_watch_timeout_secs": 1.5,
        "disable_health_check": True, "disable_load_monitoring": True, "discovery_drain_timeout_secs": 5.0,
    }
    for key, value in settings.items():  # None: the setting's default
        if value is None:
            base.pop(key, None)
        else:
            base[key] = value
    return GatewayConfig.from_mapping(base)


@pytest.fixture
async def gateway(kubeconfig: str) -> AsyncIterator[Callable[..., asyncio.Future]]:
    """``await gateway(**settings)``: an AppState discovering from the stand-in."""
    states: list[AppState] = []

    async def start(**settings) -> AppState:
        state = await AppState.start(discovery_config(kubeconfig, **settings))
        states.append(state)
        return state

    yield start
    for state in states:
        with contextlib.suppress(Exception):
            await state.close()
