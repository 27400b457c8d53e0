"""Kubernetes service discovery: pods found by label selector become workers.

``smg serve --service-discovery --selector app=sglang`` (PD: ``--prefill-selector`` /
``--decode-selector``) watches pods with the ``kubernetes_asyncio`` client — imported only
here, when discovery is on (``pip install smg[k8s]``) — and keeps the discovered workers
equal to the Running and Ready pods: :mod:`~smg.discovery.pods` (what a pod serves),
:mod:`~smg.discovery.watch` (list + watch + re-list), :mod:`~smg.discovery.fleet` (the
registry changes, draining), :mod:`~smg.discovery.metrics`.

With ``--workers N`` each gateway process runs its own discovery against the API server:
they see the same pods and converge on the same workers (nothing is shared through
:mod:`smg.http.worker_sync`, which carries only hand-made changes). Gateway replicas do
the same.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import TYPE_CHECKING, Any

from smg.discovery.fleet import Fleet, cancel_all
from smg.discovery.metrics import DiscoveryMetrics
from smg.discovery.watch import PodWatch

if TYPE_CHECKING:
    from smg.http.state import AppState

__all__ = ["Discovery", "FIRST_SYNC_SECS", "api_client"]

log = logging.getLogger(__name__)

FIRST_SYNC_SECS = 10.0  # start-up waits this long at most for the first pod lists


async def api_client(kubeconfig: str | None) -> Any:
    """A ``kubernetes_asyncio`` ApiClient: the given kubeconfig, else in-cluster config
    inside a pod, else ``$KUBECONFIG`` / ``~/.kube/config``."""
    try:
        from kubernetes_asyncio import client, config
    except ImportError:
        raise ValueError("--service-discovery needs the kubernetes_asyncio package: pip install 'smg[k8s]'") from None
    configuration = client.Configuration()
    if kubeconfig is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
        config.load_incluster_config(client_configuration=configuration)
    else:
        await config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
    return client.ApiClient(configuration=configuration)


class Discovery:
    """The running discovery of one gateway process: a watch per selector and the fleet."""

    def __init__(self, fleet: Fleet, watches: list[PodWatch], api: Any) -> None:
        self.fleet = fleet
        self.watches = watches
        self._api = api
        self._tasks: list[asyncio.Task] = []

    @classmethod
    async def start(cls, state: AppState) -> Discovery:
        settings = state.config.discovery
        pd = state.config.pd.pd_disaggregation
        settings.validate(pd)
        api = await api_client(settings.discovery_kubeconfig)  # a one-line error without kubernetes_asyncio
        from kubernetes_asyncio import client

        metrics = DiscoveryMetrics(state.metrics.registry)
        fleet = Fleet(state, settings, metrics)
        core = client.CoreV1Api(api)
        watches = [
            PodWatch(core, role=role, selector=selector, namespace=settings.service_discovery_namespace,
                     relist_secs=settings.discovery_check_interval_secs,
                     stall_secs=settings.discovery_watch_timeout_secs, on_change=fleet.update,
                     observe_sync=metrics.synced)
            for role, selector in settings.selectors(pd)
        ]
        self = cls(fleet, watches, api)
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(w.run(), name=f"smg-discovery-{w.role}") for w in watches]
        deadline = loop.time() + FIRST_SYNC_SECS
        while loop.time() < deadline and not all(w.relists for w in watches):
            await asyncio.sleep(0.02)
        for w in watches:
            log.info("discovery: watching %s pods (%s) in %s: %s", w.role, w.selector,
                     w.namespace or "every namespace", f"{len(w.pods)} listed" if w.relists else "first list pending")
        return self

    async def close(self) -> None:
        await cancel_all(self._tasks)
        self._tasks.clear()
        await self.fleet.close()
        await self._api.close()
