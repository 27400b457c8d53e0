"""Fixtures of the discovery tests: the API server stand-in (tests/k8s_standin.py) and a
gateway AppState discovering from it."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Iterator

import pytest

pytest.importorskip("kubernetes_asyncio")

from k8s_standin import ApiServerStandIn  # noqa: E402

from smg.config import GatewayConfig  # noqa: E402
from smg.http.state import AppState  # noqa: E402


@pytest.fixture
def standin() -> Iterator[ApiServerStandIn]:
    server = ApiServerStandIn(bookmark_secs=0.3).start()
    yield server
    server.stop()


@pytest.fixture
def kubeconfig(standin: ApiServerStandIn, tmp_path) -> str:
    return standin.kubeconfig(str(tmp_path / "kubeconfig"))


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


def discovered(state: AppState) -> set[tuple[str, str]]:
    """(url, role) of the discovered workers taking traffic."""
    return {(w.url, w.role.value) for w in state.registry.all() if w.source == "discovery" and w.status.value == "ready"}


async def until(predicate: Callable[[], bool], timeout: float, what: str = "condition") -> None:
    """Poll ``predicate`` until true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout}s")
        await asyncio.sleep(0.02)
