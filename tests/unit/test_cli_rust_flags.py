"""Every flag of the Rust gateway's ``smg launch`` (PyPI smg 1.13.0, listed in
tests/data/rust_smg_1_13_0_flags.tsv, read off its own parser) is, in ``smg serve``, either
accepted with the same meaning or refused by name as not supported yet.

"The same meaning" is checked per flag in ACCEPTED: the setting it lands in and the value
it gives. A flag that smg starts accepting without an entry here fails the walk, so each
new one gets its meaning written down.
"""

from __future__ import annotations

import pathlib

import pytest

from smg.cli import build_parser
from smg.cli.rust_flags import NOT_SUPPORTED, RUST_FLAGS
from smg.config import GatewayConfig

DATA = pathlib.Path(__file__).resolve().parents[1] / "data" / "rust_smg_1_13_0_flags.tsv"


def _rust_flags() -> list[tuple[str, str]]:
    rows = [line.split("\t") for line in DATA.read_text().splitlines() if line.startswith("--")]
    return [(row[0], row[1]) for row in rows]


# Rust flag -> (values given after it, "section.field", the value smg then holds)
ACCEPTED: dict[str, tuple[list[str], str, object]] = {
    "--host": (["0.0.0.0"], "server.host", "0.0.0.0"),
    "--port": (["4321"], "server.port", 4321),
    "--worker-urls": (["http://127.0.0.1:1", "http://127.0.0.1:2"], "routing.worker_urls",
                      ("http://127.0.0.1:1", "http://127.0.0.1:2")),
    "--policy": (["consistent_hashing"], "routing.policy", "consistent_hashing"),
    "--prefill-policy": (["power_of_two"], "pd.prefill_policy", "power_of_two"),
    "--decode-policy": (["round_robin"], "pd.decode_policy", "round_robin"),
    "--cache-threshold": (["0.5"], "routing.cache_threshold", 0.5),
    "--cache-match-threshold": (["0.6"], "routing.cache_threshold", 0.6),
    "--prefix-token-count": (["128"], "routing.prefix_token_count", 128),
    "--prefix-hash-load-factor": (["2.0"], "routing.load_factor", 2.0),
    "--balance-abs-threshold": (["8"], "routing.balance_abs_threshold", 8),
    "--spill-abs-threshold": (["9"], "routing.balance_abs_threshold", 9),
    "--balance-rel-threshold": (["2.5"], "routing.balance_rel_threshold", 2.5),
    "--spill-rel-threshold": (["3.5"], "routing.balance_rel_threshold", 3.5),
    "--eviction-interval-secs": (["30"], "routing.eviction_interval_secs", 30.0),
    "--max-tree-size": (["1000"], "routing.max_tree_size", 1000),
    "--block-size": (["32"], "routing.block_size", 32),
    "--max-payload-size": (["1024"], "server.max_payload_size", 1024),
    "--pd-disaggregation": ([], "pd.pd_disaggregation", True),
    "--prefill": (["http://127.0.0.1:3", "9000"], "pd.prefill", ("http://127.0.0.1:3", "9000")),
    "--decode": (["http://127.0.0.1:4"], "pd.decode", ("http://127.0.0.1:4",)),
    "--load-monitor-interval": (["7"], "routing.load_monitor_interval", 7.0),
    "--disable-load-monitoring": ([], "routing.disable_load_monitoring", True),
    "--log-dir": (["/tmp/smg-logs"], "server.log_dir", "/tmp/smg-logs"),
    "--log-level": (["debug"], "server.log_level", "debug"),
    "--log-json": ([], "server.log_json", True),
    "--request-id-headers": (["x-a", "x-b"], "server.request_id_headers", ("x-a", "x-b")),
    "--request-timeout-secs": (["12"], "server.request_timeout_secs", 12.0),
    "--max-concurrent-requests": (["64"], "reliability.max_concurrent_requests", 64),
    "--queue-size": (["7"], "reliability.queue_size", 7),
    "--queue-timeout-secs": (["5"], "reliability.queue_timeout_secs", 5.0),
    "--rate-limit-tokens-per-second": (["20"], "reliability.rate_limit_tokens_per_second", 20.0),
    "--shutdown-grace-period-secs": (["3"], "server.shutdown_grace_period_secs", 3.0),
    "--retry-max-retries": (["2"], "retry.max_retries", 2),
    "--retry-initial-backoff-ms": (["10"], "retry.initial_backoff_ms", 10),
    "--retry-max-backoff-ms": (["100"], "retry.max_backoff_ms", 100),
    "--retry-backoff-multiplier": (["2.0"], "retry.backoff_multiplier", 2.0),
    "--retry-jitter-factor": (["0.1"], "retry.jitter_factor", 0.1),
    "--disable-retries": ([], "retry.disable_retries", True),
    "--cb-failure-threshold": (["4"], "breaker.failure_threshold", 4),
    "--cb-success-threshold": (["5"], "breaker.success_threshold", 5),
    "--cb-timeout-duration-secs": (["6"], "breaker.timeout_duration_secs", 6.0),
    "--cb-window-duration-secs": (["7"], "breaker.window_duration_secs", 7.0),
    "--disable-circuit-breaker": ([], "breaker.disable_circuit_breaker", True),
    "--health-failure-threshold": (["4"], "health.failure_threshold", 4),
    "--health-success-threshold": (["5"], "health.success_threshold", 5),
    "--health-check-timeout-secs": (["6"], "health.timeout_secs", 6.0),
    "--health-check-interval-secs": (["7"], "health.interval_secs", 7.0),
    "--health-check-endpoint": (["/ping"], "health.endpoint", "/ping"),
    "--disable-health-check": ([], "health.disable_health_check", True),
    "--remove-unhealthy-workers": ([], "health.remove_unhealthy_workers", True),
    "--no-remove-unhealthy-workers": ([], "health.remove_unhealthy_workers", False),
    "--worker-auto-recovery": ([], "health.remove_unhealthy_workers", True),
    "--no-worker-auto-recovery": ([], "health.remove_unhealthy_workers", False),
    "--service-discovery": ([], "discovery.service_discovery", True),
    "--selector": (["app=sglang", "tier=gpu"], "discovery.selector", ("app=sglang", "tier=gpu")),
    "--service-discovery-port": (["8000"], "discovery.service_discovery_port", 8000),
    "--service-discovery-namespace": (["inference"], "discovery.service_discovery_namespace", "inference"),
    "--prefill-selector": (["role=prefill"], "discovery.prefill_selector", ("role=prefill",)),
    "--decode-selector": (["role=decode"], "discovery.decode_selector", ("role=decode",)),
    "--model-id-from": (["label:model"], "discovery.model_id_from", "label:model"),
    "--discovery-check-interval-secs": (["15"], "discovery.discovery_check_interval_secs", 15.0),
    "--model-path": (["/models/m"], "model.model_path", "/models/m"),
    "--model": (["/models/n"], "model.model_path", "/models/n"),
    "--tokenizer-path": (["/models/t"], "model.tokenizer_path", "/models/t"),
    "--chat-template": (["chatml"], "model.chat_template", "chatml"),
    "--disable-tokenizer-autoload": ([], "model.disable_tokenizer_autoload", True),
    "--reasoning-parser": (["qwen3"], "model.reasoning_parser", "qwen3"),
    "--tool-call-parser": (["qwen"], "model.tool_call_parser", "qwen"),
    # history (issue 16)
    "--history-backend": (["memory"], "history.history_backend", "memory"),
    "--history-memory-max-responses": (["10"], "history.history_memory_max_responses", 10),
    "--history-memory-max-items": (["11"], "history.history_memory_max_items", 11),
    "--history-memory-retention-secs": (["12"], "history.history_memory_retention_secs", 12),
    "--postgres-db-url": (["postgresql://u@127.0.0.1/db"], "history.postgres_db_url", "postgresql://u@127.0.0.1/db"),
    "--postgres-pool-max": (["3"], "history.postgres_pool_max", 3),
    "--postgres-op-timeout-secs": (["4"], "history.postgres_op_timeout_secs", 4.0),
    "--redis-url": (["redis://127.0.0.1:1/0"], "history.redis_url", "redis://127.0.0.1:1/0"),
    "--redis-pool-max": (["5"], "history.redis_pool_max", 5),
    "--redis-retention-days": (["-1"], "history.redis_retention_days", -1),
    "--redis-op-timeout-secs": (["6"], "history.redis_op_timeout_secs", 6.0),
    # security (issue 14)
    "--api-key": (["k1"], "security.api_key", "k1"),
    "--tenant-api-key": (["acme:k2"], "security.tenant_api_key", ("acme:k2",)),
    "--control-plane-api-keys": (["a:ops:admin:k3"], "security.control_plane_api_keys", ("a:ops:admin:k3",)),
    "--control-plane-audit-enabled": ([], "security.control_plane_audit_enabled", True),
    "--jwt-issuer": (["https://idp.example"], "security.jwt_issuer", "https://idp.example"),
    "--jwt-audience": (["smg"], "security.jwt_audience", "smg"),
    "--jwt-jwks-uri": (["https://idp.example/jwks"], "security.jwt_jwks_uri", "https://idp.example/jwks"),
    "--jwt-role-mapping": (["Gateway.Admin=admin"], "security.jwt_role_mapping", ("Gateway.Admin=admin",)),
    "--tls-cert-path": (["/tls/cert.pem"], "security.tls_cert_path", "/tls/cert.pem"),
    "--tls-key-path": (["/tls/key.pem"], "security.tls_key_path", "/tls/key.pem"),
    "--client-cert-path": (["/tls/c.pem"], "security.client_cert_path", "/tls/c.pem"),
    "--client-key-path": (["/tls/c.key"], "security.client_key_path", "/tls/c.key"),
    "--ca-cert-paths": (["/tls/ca.pem"], "security.ca_cert_paths", ("/tls/ca.pem",)),
}


def _sample(nargs: str) -> list[str]:
    return [] if nargs == "0" else ["1"]


def _setting(config: GatewayConfig, path: str) -> object:
    section, name = path.split(".")
    return getattr(getattr(config, section), name)


def test_the_data_is_the_rust_gateways_list():
    flags = [flag for flag, _ in _rust_flags()]
    assert len(flags) > 200 and len(set(flags)) == len(flags)
    # smg's refusal table is drawn from the same list
    assert set(RUST_FLAGS) == set(flags)


@pytest.mark.parametrize(("flag", "nargs"), _rust_flags(), ids=[f for f, _ in _rust_flags()])
def test_rust_flag_is_accepted_with_its_meaning_or_refused_by_name(flag, nargs, capsys):
    parser = build_parser()
    if flag in ACCEPTED:
        values, path, expected = ACCEPTED[flag]
        args = parser.parse_args(["serve", flag, *values])
        config = GatewayConfig.load(args=args, environ={})
        assert _setting(config, path) == expected
        assert path in vars(args)  # the flag itself set it (not a default that happens to match)
        return
    with pytest.raises(SystemExit) as exc:
        parser.parse_args(["serve", flag, *_sample(nargs)])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert NOT_SUPPORTED.format(flag=flag) in err, (
        f"{flag} is accepted by smg serve: add it to ACCEPTED with the setting it sets"
    )
    assert err.count("\n") == 1  # one line


def test_every_accepted_entry_is_a_rust_flag():
    assert set(ACCEPTED) <= {flag for flag, _ in _rust_flags()}


def test_launch_is_serve():
    parser = build_parser()
    args = parser.parse_args(["launch", "--port", "4000"])
    assert GatewayConfig.load(args=args, environ={}).server.port == 4000
    assert args._run is parser.parse_args(["serve"])._run
