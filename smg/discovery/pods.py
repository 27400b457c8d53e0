"""What a pod means to the gateway: pure functions from a pod (the API server's JSON, as
a dict) to the workers it serves. No I/O; the watch (:mod:`smg.discovery.watch`) feeds
pods in and the fleet (:mod:`smg.discovery.fleet`) applies the result.

A pod counts when its phase is ``Running``, its ``Ready`` condition is ``True`` and it is
not terminating (no ``deletionTimestamp``). It serves one worker per port: the ports in
annotation ``smg.ai/worker-ports`` (comma-separated; multi-server pods), else
``--service-discovery-port``. A prefill pod's KV bootstrap port is annotation
``sglang.ai/bootstrap-port``.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from smg.config.discovery import BOOTSTRAP_PORT_ANNOTATION, WORKER_PORTS_ANNOTATION

__all__ = ["WorkerSpec", "is_ready", "pod_key", "pod_workers", "selector_string"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkerSpec:
    """One worker a ready pod serves. Identity: (url, role)."""

    url: str
    role: str
    pod: str  # namespace/name
    model_id: str | None = None
    bootstrap_port: int | None = None
    labels: Mapping[str, str] = field(default_factory=dict, compare=False, hash=False)

    @property
    def key(self) -> tuple[str, str]:
        return (self.url, self.role)


def pod_key(pod: Mapping[str, Any]) -> str:
    meta = pod.get("metadata") or {}
    return f"{meta.get('namespace') or ''}/{meta.get('name') or ''}"


def is_ready(pod: Mapping[str, Any]) -> bool:
    """Running, Ready and not terminating, with an IP."""
    meta, status = pod.get("metadata") or {}, pod.get("status") or {}
    if meta.get("deletionTimestamp") or status.get("phase") != "Running" or not status.get("podIP"):
        return False
    return any(
        c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or ()
    )


def selector_string(selector: Mapping[str, str]) -> str:
    """``{"app": "x", "tier": "gpu"}`` -> ``app=x,tier=gpu`` (an equality label selector)."""
    return ",".join(f"{k}={v}" for k, v in sorted(selector.items()))


def _ports(annotations: Mapping[str, str], default: int, where: str) -> list[int]:
    raw = annotations.get(WORKER_PORTS_ANNOTATION)
    if raw is None:
        return [default]
    ports: list[int] = []
    for part in raw.split(","):
        part = part.strip()
        if part.isdigit() and 0 < int(part) < 65536:
            ports.append(int(part))
        elif part:
            log.warning("pod %s: %s entry %r is not a port; skipped", where, WORKER_PORTS_ANNOTATION, part)
    return ports


def _model_id(meta: Mapping[str, Any], model_from: tuple[str, str] | None) -> str | None:
    if model_from is None:
        return None
    kind, key = model_from
    if kind == "namespace":
        return meta.get("namespace") or None
    source = meta.get("labels" if kind == "label" else "annotations") or {}
    return source.get(key) or None


def _host(ip: str) -> str:
    try:
        return f"[{ip}]" if ipaddress.ip_address(ip).version == 6 else ip
    except ValueError:
        return ip


def pod_workers(
    pod: Mapping[str, Any], *, role: str, port: int, scheme: str, model_from: tuple[str, str] | None,
) -> list[WorkerSpec]:
    """The workers ``pod`` serves now (none unless it is ready)."""
    if not is_ready(pod):
        return []
    meta = pod.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    where = pod_key(pod)
    bootstrap: int | None = None
    if role == "prefill":
        raw = str(annotations.get(BOOTSTRAP_PORT_ANNOTATION, "")).strip()
        if raw.isdigit():
            bootstrap = int(raw)
        elif raw and raw.lower() != "none":
            log.warning("pod %s: %s %r is not a port; none used", where, BOOTSTRAP_PORT_ANNOTATION, raw)
    host = _host(pod["status"]["podIP"])
    model_id = _model_id(meta, model_from)
    labels = {"pod": meta.get("name") or "", "namespace": meta.get("namespace") or ""}
    return [
        WorkerSpec(f"{scheme}://{host}:{p}", role, where, model_id, bootstrap, labels)
        for p in _ports(annotations, port, where)
    ]
