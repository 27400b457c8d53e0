"""The Rust SMG gateway's command-line flags (``smg launch`` of PyPI ``smg`` 1.13.0).

``smg serve`` accepts each of them that names a setting smg has, with the same meaning
(they are the dataclass fields' flags and aliases in :mod:`smg.config`). Any other one is
refused by name with :data:`NOT_SUPPORTED`, so a user switching from the Rust gateway
learns at start which setting smg does not have yet, instead of an "unrecognized
arguments" error or, worse, a setting silently ignored.
"""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["NOT_SUPPORTED", "RUST_FLAGS", "refuse_unsupported"]

NOT_SUPPORTED = "{flag} is a Rust SMG flag that smg does not support yet"

RUST_FLAGS: tuple[str, ...] = (
    "--host", "--port", "--worker-urls", "--upstream-http2",
    "--upstream-pool-idle-timeout-secs", "--health-check-port", "--policy", "--encode-policy",
    "--prefill-policy", "--decode-policy", "--cache-threshold", "--cache-match-threshold",
    "--prefix-token-count", "--prefix-hash-load-factor", "--prefix-hash-balance-abs-threshold",
    "--least-load-kv-pressure-weight", "--least-load-default-throughput",
    "--least-load-mean-prefill-tokens", "--least-load-max-waiting-requests",
    "--power-of-two-load-metric", "--balance-abs-threshold", "--spill-abs-threshold",
    "--balance-rel-threshold", "--spill-rel-threshold", "--balance-token-usage-threshold",
    "--overload-token-usage-threshold", "--worker-overload-waiting-requests",
    "--worker-overload-token-usage", "--worker-overload-protection",
    "--disable-worker-overload-protection", "--worker-overload-shed", "--kv-index",
    "--worker-stall-secs", "--worker-wedge-secs", "--worker-stale-secs", "--worker-warmup-secs",
    "--worker-warmup-share", "--worker-warmup-blocks", "--worker-warmup-thin-ratio",
    "--worker-warmup-divert-every", "--selection-policy", "--selection-accounting-ttl-ms",
    "--overlap-decay", "--selection-temperature", "--bucket-adjust-interval-secs",
    "--eviction-interval-secs", "--max-tree-size", "--block-size", "--cache-boundaries",
    "--cache-index", "--cache-ttl-secs", "--max-idle-secs", "--sticky-key-idle-secs",
    "--assignment-mode", "--max-payload-size", "--max-buffered-request-bytes",
    "--pd-admission-wait-secs", "--stream-body-stall-timeout-secs", "--sse-keepalive-secs",
    "--dp-aware", "--routing-key-override", "--sticky-sessions", "--routing-key-headers",
    "--dp-minimum-tokens-scheduler", "--enable-igw", "--enable-rl", "--rl-control-timeout-secs",
    "--rl-fanout-concurrency", "--pd-disaggregation", "--epd-disaggregation", "--encode",
    "--prefill", "--decode", "--prefill-max-inflight-requests-per-worker",
    "--prefill-queue-size", "--prefill-queue-timeout-secs", "--worker-startup-timeout-secs",
    "--worker-startup-delay", "--worker-startup-check-interval", "--job-queue-capacity",
    "--job-queue-concurrency", "--load-monitor-interval", "--disable-load-monitoring",
    "--multimodal-tensor-transport", "--multimodal-shm-min-bytes",
    "--multimodal-max-inflight-bytes", "--mm-per-request-image-limit", "--mm-processing",
    "--mm-pixel-cache-mb", "--mm-pixel-rdma", "--mm-allowed-media-domains",
    "--mm-allow-private-media-hosts", "--rdma-listen-ip", "--rdma-slot-ttl-s",
    "--log-mm-timing", "--log-dir", "--log-level", "--log-json", "--service-discovery",
    "--discovery-provider", "--discovery-file", "--discovery-check-interval-secs", "--selector",
    "--service-discovery-port", "--service-discovery-namespace", "--kv-connector-annotation",
    "--kv-engine-id-annotation", "--encode-selector", "--prefill-selector", "--decode-selector",
    "--router-selector", "--model-id-from", "--model-alias", "--prometheus-port",
    "--prometheus-host", "--prometheus-duration-buckets", "--jemalloc-prof-dir",
    "--request-id-headers", "--storage-context-headers", "--request-timeout-secs",
    "--shutdown-grace-period-secs", "--header-read-timeout-secs",
    "--idle-connection-timeout-secs", "--trust-tenant-header", "--tenant-header-name",
    "--cors-allowed-origins", "--max-concurrent-requests", "--queue-size",
    "--queue-timeout-secs", "--rate-limit-tokens-per-second", "--max-background-responses",
    "--priority-scheduler-enabled", "--priority-scheduler-default-max-class",
    "--priority-scheduler-config", "--priority-scheduler-tenant-metric-top-n",
    "--tenant-rate-limit-enabled", "--tenant-rate-limit-config", "--retry-max-retries",
    "--retry-initial-backoff-ms", "--retry-max-backoff-ms", "--retry-backoff-multiplier",
    "--retry-jitter-factor", "--disable-retries", "--cb-failure-threshold",
    "--cb-success-threshold", "--cb-timeout-duration-secs", "--cb-window-duration-secs",
    "--disable-circuit-breaker", "--health-failure-threshold", "--health-success-threshold",
    "--health-check-timeout-secs", "--health-check-interval-secs", "--health-check-endpoint",
    "--disable-health-check", "--remove-unhealthy-workers", "--no-remove-unhealthy-workers",
    "--worker-auto-recovery", "--no-worker-auto-recovery", "--model-path", "--model",
    "--tokenizer-path", "--chat-template", "--disable-tokenizer-autoload", "--parser",
    "--tokenizer-cache-enable-l0", "--tokenizer-cache-l0-max-entries",
    "--tokenizer-cache-enable-l1", "--tokenizer-cache-l0-max-memory",
    "--tokenizer-cache-l1-max-memory", "--reasoning-parser", "--tool-call-parser",
    "--mcp-config-path", "--backend", "--zmq-engine-count", "--enable-wasm",
    "--storage-hook-wasm-path", "--history-backend", "--history-memory-max-responses",
    "--history-memory-max-items", "--history-memory-retention-secs", "--oracle-wallet-path",
    "--oracle-tns-alias", "--oracle-connect-descriptor", "--oracle-username",
    "--oracle-password", "--oracle-external-auth", "--oracle-pool-min", "--oracle-pool-max",
    "--oracle-pool-timeout-secs", "--postgres-db-url", "--postgres-pool-max",
    "--postgres-op-timeout-secs", "--redis-url", "--redis-pool-max", "--redis-retention-days",
    "--redis-op-timeout-secs", "--schema-config", "--client-cert-path", "--client-key-path",
    "--ca-cert-paths", "--tls-cert-path", "--tls-key-path", "--enable-trace",
    "--otlp-traces-endpoint", "--api-key", "--tenant-api-key", "--control-plane-api-keys",
    "--control-plane-audit-enabled", "--jwt-issuer", "--jwt-audience", "--jwt-jwks-uri",
    "--jwt-role-mapping", "--enable-mesh", "--mesh-server-name", "--mesh-host",
    "--mesh-advertise-host", "--mesh-port", "--mesh-peer-urls", "--mesh-tls-ca-cert",
    "--mesh-tls-cert", "--mesh-tls-key",
)


class _Refuse(argparse.Action):
    def __call__(self, parser: argparse.ArgumentParser, namespace: Any, values: Any, option_string: Any = None) -> None:
        parser.error(NOT_SUPPORTED.format(flag=option_string))


def refuse_unsupported(parser: argparse.ArgumentParser) -> list[str]:
    """Add a refusing flag for every Rust flag ``parser`` does not define; returns them."""
    known = set(parser._option_string_actions)
    missing = [flag for flag in RUST_FLAGS if flag not in known]
    group = parser.add_argument_group("Rust SMG flags not supported yet")
    for flag in missing:
        group.add_argument(flag, nargs="*", action=_Refuse, help=argparse.SUPPRESS, dest=argparse.SUPPRESS)
    return missing
