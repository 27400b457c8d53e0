"""The ``discovery`` section of :class:`~smg.config.GatewayConfig`: Kubernetes service
discovery (pods found by label selector become workers; see :mod:`smg.discovery`).

Flag names and defaults are the Rust gateway's (``--service-discovery``, ``--selector``,
``--service-discovery-port`` 80 ...). ``--discovery-check-interval-secs`` is, in the Rust
gateway, the reread period of its file provider; here it is the period of the full pod
re-list that backs up the watch (the same idea: a periodic full read of the source). The
``--discovery-*`` flags without a Rust counterpart are smg's own: the kubeconfig, the
workers' scheme, the watch-silence deadline and the drain bound.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from smg.config.sections import opt

__all__ = ["DiscoverySettings", "parse_model_id_from", "parse_selector"]

BOOTSTRAP_PORT_ANNOTATION = "sglang.ai/bootstrap-port"  # the Rust gateway's annotation names
WORKER_PORTS_ANNOTATION = "smg.ai/worker-ports"


@dataclass(frozen=True)
class DiscoverySettings:
    """Workers found as Kubernetes pods (Running and Ready) by label selector."""

    service_discovery: bool = opt(False, "find workers as Kubernetes pods by label selector (watch + re-list)")
    selector: tuple[str, ...] = opt((), "label selector of worker pods (key=value, repeatable)", metavar="K=V")
    service_discovery_port: int = opt(80, "worker port of a discovered pod (without the smg.ai/worker-ports annotation)")
    service_discovery_namespace: str | None = opt(None, "namespace watched (default: every namespace)")
    prefill_selector: tuple[str, ...] = opt(
        (), "PD: label selector of prefill pods (bootstrap port from annotation sglang.ai/bootstrap-port)",
        metavar="K=V",
    )
    decode_selector: tuple[str, ...] = opt((), "PD: label selector of decode pods", metavar="K=V")
    model_id_from: str | None = opt(
        None, "a discovered worker's model id from pod metadata: namespace, label:<key> or annotation:<key> "
        "(default: asked of the worker)",
    )
    discovery_check_interval_secs: float = opt(
        30.0, "seconds between full pod re-lists that back up the watch (each watch ends by then)"
    )
    discovery_watch_timeout_secs: float = opt(
        90.0, "a watch silent this long (no event, no bookmark; API servers send a bookmark about once a "
        "minute) is taken as stalled: re-list"
    )
    discovery_drain_timeout_secs: float = opt(
        600.0, "most seconds a gone pod's worker drains (no new requests; in-flight ones finish) before removal"
    )
    discovery_scheme: Literal["http", "grpc"] = opt("http", "how discovered workers are spoken to: http or grpc")
    discovery_kubeconfig: str | None = opt(
        None, "kubeconfig file (default: in-cluster config inside a pod, else $KUBECONFIG or ~/.kube/config)"
    )

    def selectors(self, pd: bool) -> list[tuple[str, dict[str, str]]]:
        """(role, selector) pairs to watch: prefill and decode in PD mode, else regular."""
        if pd:
            pairs = [("prefill", parse_selector(self.prefill_selector)), ("decode", parse_selector(self.decode_selector))]
        else:
            pairs = [("regular", parse_selector(self.selector))]
        return [(role, sel) for role, sel in pairs if sel]

    def validate(self, pd: bool) -> None:
        """Raise ValueError with a one-line message for settings that cannot work."""
        if not self.service_discovery:
            return
        parse_model_id_from(self.model_id_from)
        if pd and not (self.prefill_selector and self.decode_selector):
            raise ValueError("--service-discovery with --pd-disaggregation needs --prefill-selector and --decode-selector")
        if not pd and not self.selector:
            raise ValueError("--service-discovery needs --selector key=value")
        if self.discovery_check_interval_secs <= 0 or self.discovery_watch_timeout_secs <= 0:
            raise ValueError("--discovery-check-interval-secs and --discovery-watch-timeout-secs must be positive")


def parse_selector(items: tuple[str, ...]) -> dict[str, str]:
    """``("app=sglang", "tier=gpu")`` -> ``{"app": "sglang", "tier": "gpu"}``."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"selector entry {item!r} is not key=value")
        out[key.strip()] = value.strip()
    return out


def parse_model_id_from(spec: str | None) -> tuple[str, str] | None:
    """``namespace`` | ``label:<k>`` | ``annotation:<k>`` -> (source, key); None: not set."""
    if spec is None:
        return None
    if spec == "namespace":
        return ("namespace", "")
    kind, sep, key = spec.partition(":")
    if sep and key and kind in ("label", "annotation"):
        return (kind, key)
    raise ValueError(f"--model-id-from {spec!r}: expected namespace, label:<key> or annotation:<key>")
