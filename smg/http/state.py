"""The per-app state the endpoints share, built in the app lifespan.

:class:`AppState` owns the worker registry, the policy and router, the pooled upstream
client, the metrics and three background loops: health checks (``GET /health`` on each
worker), load polling (``GET /v1/loads`` feeding the policies' ``on_load_report``) and
policy maintenance (cache_aware eviction, run by the router).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from smg.clients.http import UpstreamClient, parse_load_report
from smg.config import GatewayConfig
from smg.http.pd import PDHttpExecutor
from smg.http.pd_metrics import PDMetrics
from smg.http.worker_sync import POLL_SECS, WorkerLog, shared_log
from smg.metrics import GatewayMetrics
from smg.pipeline.backend import GrpcBackend, GrpcSettings, is_grpc_url
from smg.router import (
    CircuitBreaker,
    HealthChecker,
    HealthStatus,
    LoadReport,
    Policy,
    RetryConfig,
    Router,
    Worker,
    WorkerRegistry,
    WorkerRole,
    create_policy,
)
from smg.router.pd import PDRouter
from smg.security.tls import worker_ssl_context
from smg.security.urls import (
    GRPC_SCHEMES,
    HTTP_SCHEMES,
    WorkerAllowList,
    is_gateway,
    parse_worker_url,
    redact,
    redact_logs,
)
from smg.storage import HistoryStore, open_store

__all__ = ["AppState"]

log = logging.getLogger(__name__)

DISCOVERY_TIMEOUT_SECS = 5.0


@dataclass
class AppState:
    config: GatewayConfig
    registry: WorkerRegistry
    policy: Policy
    router: Router
    retry: RetryConfig
    client: UpstreamClient
    metrics: GatewayMetrics
    health: HealthChecker
    grpc: GrpcBackend | None = None  # gRPC (full server) mode
    pd: PDRouter | None = None  # prefill/decode disaggregation
    pd_http: PDHttpExecutor | None = None  # PD in proxy mode
    pd_metrics: PDMetrics | None = None
    allow: WorkerAllowList | None = None  # where run-time workers may be (smg.security.urls)
    sync: WorkerLog | None = None  # with --workers N: run-time changes shared by the processes
    history: HistoryStore | None = None  # stored responses and conversations (smg.storage; None: not built yet)
    discovery: Any = None  # smg.discovery.Discovery with --service-discovery (imported only then)
    _tasks: list[asyncio.Task] = field(default_factory=list)

    @classmethod
    async def start(cls, config: GatewayConfig) -> AppState:
        """Build everything, register ``config.routing.worker_urls`` and start the loops."""
        if not config.pd.pd_disaggregation and (config.pd.prefill or config.pd.decode):
            raise ValueError("--prefill and --decode workers need --pd-disaggregation")
        config.security.validate()  # bad key entries stop the start here, with a one-line message
        redact_logs()  # worker URLs' credentials never reach a log, whoever logs them
        own = [(config.server.host, config.server.port)]
        for url in startup_urls(config):  # the run-time rules (no query, no self-loop ...) hold at start too
            if await is_gateway(parse_worker_url(url, schemes=HTTP_SCHEMES + GRPC_SCHEMES), own):
                raise ValueError(f"worker {redact(url)} is this gateway's own address")
        registry = WorkerRegistry()
        policy = create_policy(config.routing.policy, config.policy_config())
        retry = config.retry.to_router()
        client = UpstreamClient(
            request_timeout=config.server.request_timeout_secs,
            connect_timeout=config.server.connect_timeout_secs,
            first_byte_timeout=config.reliability.first_byte_timeout_secs,  # reliability (issue 15)
            idle_timeout=config.reliability.inter_token_timeout_secs,
            ssl_context=worker_ssl_context(config.security),
        )
        health_config = config.health.to_router()

        grpc_backend = GrpcBackend(GrpcSettings.from_config(config.model)) if config.grpc_mode() else None

        async def probe(worker: Worker) -> bool:
            if grpc_backend is not None and is_grpc_url(worker.url):
                return await grpc_backend.probe(worker.url, health_config.timeout_secs)
            return await client.probe(worker.url + health_config.endpoint, health_config.timeout_secs)

        state = cls(
            config=config,
            registry=registry,
            policy=policy,
            router=Router(registry, policy, retry=retry),
            retry=retry,
            client=client,
            metrics=GatewayMetrics(registry.all),
            health=HealthChecker(registry, probe, health_config),
            grpc=grpc_backend,
            allow=WorkerAllowList(config.security.worker_allow_hosts, startup_urls(config)),
        )
        state.history = await open_history(config)
        await asyncio.gather(*(state.add_worker(url) for url in config.routing.worker_urls))
        if config.pd.pd_disaggregation:
            await state._start_pd()
        state.health.start()
        if config.discovery.service_discovery:  # Kubernetes pods -> workers (smg.discovery)
            from smg.discovery import Discovery

            state.discovery = await Discovery.start(state)
        state.sync = shared_log()
        if state.sync is not None:
            sync = state.sync
            state._every(POLL_SECS, lambda: sync.poll(state.apply_change), "smg-worker-sync")
        if not config.routing.disable_load_monitoring:
            state._every(config.routing.load_monitor_interval, state.poll_loads, "smg-load-monitor")
        state.router.start_maintenance(config.routing.eviction_interval_secs)
        if state.pd is not None:
            state.pd.start_maintenance(config.routing.eviction_interval_secs)
        return state

    async def _start_pd(self) -> None:
        """The pair router (a policy per pool), its metrics, and the prefill/decode workers."""
        pd, routing = self.config.pd, self.config.routing
        policies = (
            create_policy(name or routing.policy, self.config.policy_config())
            for name in (pd.prefill_policy, pd.decode_policy)
        )
        self.pd = PDRouter(self.registry, *policies, retry=self.retry)
        self.pd_metrics = PDMetrics(self.metrics.registry)
        if self.grpc is None:
            self.pd_http = PDHttpExecutor(self.pd, self.client, self.retry, style=pd.pd_style, metrics=self.pd_metrics)
        await asyncio.gather(
            *(self.add_worker(url, role=WorkerRole.PREFILL, bootstrap_port=port) for url, port in pd.prefill_workers()),
            *(self.add_worker(url, role=WorkerRole.DECODE) for url in pd.decode),
        )

    async def close(self) -> None:
        if self.discovery is not None:
            await self.discovery.close()
        await self.health.stop()
        await self.router.stop()
        self.router.close()
        if self.pd is not None:
            await self.pd.stop()
            self.pd.close()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        await self.client.close()
        if self.grpc is not None:
            await self.grpc.close()
        if self.history is not None:
            await self.history.close()

    # -- workers --------------------------------------------------------------------------

    async def add_worker(
        self,
        url: str,
        *,
        model_id: str | None = None,
        role: WorkerRole = WorkerRole.REGULAR,
        labels: Mapping[str, str] | None = None,
        bootstrap_port: int | None = None,
        source: str = "static",
    ) -> Worker:
        """Register the worker at ``url``; without ``model_id`` ask its ``/v1/models``. A
        worker that does not answer starts PENDING (health checks make it READY)."""
        url = url.rstrip("/")
        reachable = True
        if model_id is None and self.grpc is not None and is_grpc_url(url):
            _client, model_id = await self.grpc.connect(url)
            reachable = model_id is not None
        elif model_id is None:
            model_id, reachable = await self._discover_model(url)
        status = HealthStatus.READY
        if not reachable and self.health.config.enabled:
            status = HealthStatus.PENDING
        worker = Worker(
            url,
            model_id=model_id,
            role=role,
            labels=labels,
            bootstrap_port=bootstrap_port,
            breaker=CircuitBreaker(self.config.breaker.to_router()),
            status=status,
            source=source,
        )
        self.registry.add(worker)
        log.info("worker added: %s (model %s, %s)", redact(url), model_id, status.value)
        return worker

    def remove_worker(self, worker_id: str) -> Worker | None:
        worker = self.registry.remove(worker_id)  # the router tells the policies
        if worker is not None:
            log.info("worker removed: %s", redact(worker.url))
            if self.grpc is not None and not any(w.url == worker.url for w in self.registry.all()):
                client = self.grpc.clients.pop(worker.url, None)
                if client is not None:  # its channel closes in the background
                    self._tasks.append(asyncio.get_running_loop().create_task(client.close()))
        return worker

    async def flush_worker(self, worker: Worker, timeout: float) -> tuple[int, str]:
        """Flush one worker's prefix cache: ``POST /flush_cache`` over HTTP, the FlushCache
        RPC over gRPC (``timeout_s=0``: now). (status, short message); 0 when unreachable."""
        if not is_grpc_url(worker.url):
            status, _ = await self.client.post_json(worker.url + "/flush_cache", {}, timeout)
            return status, "flushed" if 200 <= status < 300 else "failed"
        client = self.grpc.clients.get(worker.url) if self.grpc is not None else None
        if client is None or client.proto != "sglang":
            return 501, "the worker's protocol has no FlushCache"
        from smg._proto import common_pb2

        try:
            resp = await client._stub.FlushCache(common_pb2.FlushCacheRequest(timeout_s=0.0), timeout=timeout)
        except Exception:  # noqa: BLE001 - unreachable or failing: reported, not raised
            return 0, "unreachable"
        return (200, "flushed") if resp.success else (409, "not flushed: requests in flight")

    async def _discover_model(self, url: str) -> tuple[str | None, bool]:
        data = await self.client.get_json(url + "/v1/models", DISCOVERY_TIMEOUT_SECS)
        if data is None:
            return None, False
        models = data.get("data") if isinstance(data, dict) else None
        if isinstance(models, list) and models and isinstance(models[0], dict):
            model = models[0].get("id")
            return (model if isinstance(model, str) and model else None), True
        return None, True

    def published(self, op: str, worker: Worker) -> None:
        """Tell the other gateway processes (if any) about a run-time change made here."""
        if self.sync is not None:
            self.sync.publish(op, url=worker.url, role=worker.role.value, model_id=worker.model_id,
                              labels=dict(worker.labels), bootstrap_port=worker.bootstrap_port)

    async def apply_change(self, change: Mapping) -> None:
        """A change another gateway process published (see :mod:`smg.http.worker_sync`)."""
        url, role = change["url"], WorkerRole(change["role"])
        worker = self.registry.find(url, role)
        if change["op"] == "add" and worker is None:
            await self.add_worker(url, model_id=change.get("model_id"), role=role, labels=change.get("labels"),
                                  bootstrap_port=change.get("bootstrap_port"), source="api")
        elif change["op"] == "remove" and worker is not None:
            self.remove_worker(worker.id)

    def listening(self, server: tuple[str, int] | None) -> list[tuple[str, int]]:
        """The gateway's own addresses: the socket a request came in on and the configured one."""
        out = [(self.config.server.host, self.config.server.port)]
        if server is not None:
            out.append((str(server[0]), int(server[1])))
        return out

    # -- background loops -----------------------------------------------------------------

    async def poll_loads(self) -> None:
        """Fetch ``/v1/loads`` from every worker once and hand reports to the policy."""
        workers = [
            w for w in self.registry.all() if w.status is not HealthStatus.FAILED and not is_grpc_url(w.url)
        ]
        timeout = self.config.health.timeout_secs
        results = await asyncio.gather(
            *(self.client.get_json(w.url + "/v1/loads", timeout) for w in workers)
        )
        for worker, data in zip(workers, results):
            fields = parse_load_report(data)
            if fields is None or self.registry.get(worker.id) is not worker:
                continue
            if self.pd is not None and worker.role is not WorkerRole.REGULAR:
                self.pd.on_load_report(worker, LoadReport(**fields))
            else:
                self.router.on_load_report(worker, LoadReport(**fields))

    def _every(self, interval: float, job: Callable[[], Awaitable[None]], name: str) -> None:
        if interval <= 0:
            return

        async def loop() -> None:
            while True:
                await asyncio.sleep(interval)
                try:
                    await job()
                except Exception:  # a failing round must not end the loop
                    log.exception("%s round failed", name)

        self._tasks.append(asyncio.get_running_loop().create_task(loop(), name=name))


async def open_history(config: GatewayConfig) -> HistoryStore | None:
    """The history store, started. A backend not built yet (open_store says so) leaves
    None: the gateway serves, and the Responses/Conversations routes answer 503."""
    try:
        store = open_store(config.history)
    except ValueError as exc:
        if "not built yet" not in str(exc):
            raise
        log.warning("history: %s; /v1/responses and /v1/conversations answer 503", exc)
        return None
    await store.start()
    return store


def startup_urls(config: GatewayConfig) -> list[str]:
    return [*config.routing.worker_urls, *(url for url, _ in config.pd.prefill_workers()), *config.pd.decode]
