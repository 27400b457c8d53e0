"""``smg serve --pd-disaggregation`` in a thread, in front of the given workers."""

from __future__ import annotations

from types import SimpleNamespace

import openai

from smg.app import create_app
from smg.config import GatewayConfig, HealthSettings, PDSettings, RetrySettings, RoutingConfig
from smg.serve import ServerThread


def pd_gateway(prefills: list[tuple[str, int | None]], decodes: list[str], *, style: str = "auto",
               policy: str = "round_robin", retries: int = 3) -> SimpleNamespace:
    prefill_args: list[str] = []
    for url, port in prefills:
        prefill_args += [url, "none" if port is None else str(port)]
    config = GatewayConfig(
        routing=RoutingConfig(policy=policy, disable_load_monitoring=True),
        retry=RetrySettings(max_retries=retries, initial_backoff_ms=1),
        health=HealthSettings(disable_health_check=True),
        pd=PDSettings(pd_disaggregation=True, prefill=tuple(prefill_args), decode=tuple(decodes), pd_style=style),
    )
    app = create_app(config)
    gw = SimpleNamespace(server=ServerThread(app))
    gw.url = gw.server.start()
    gw.state = app.state.smg
    gw.registry, gw.metrics = gw.state.registry, gw.state.pd_metrics
    gw.client = openai.OpenAI(base_url=gw.url + "/v1", api_key="unused", max_retries=0, timeout=30)
    return gw
