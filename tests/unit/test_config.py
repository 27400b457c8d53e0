"""GatewayConfig: defaults, file (TOML/YAML), SMG_* environment and CLI layers."""

from __future__ import annotations

import argparse
import dataclasses

import pytest

from smg.cli.fields import add_dataclass_arguments
from smg.config import GatewayConfig


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_dataclass_arguments(parser, GatewayConfig)
    return parser.parse_args(argv)


def test_defaults_follow_smg():
    c = GatewayConfig()
    assert c.server.port == 30000 and c.server.server == "uvicorn"
    assert c.routing.policy == "cache_aware" and c.routing.cache_threshold == 0.3
    assert (c.routing.balance_abs_threshold, c.routing.balance_rel_threshold) == (64, 1.5)
    assert c.retry.max_retries == 5 and c.breaker.failure_threshold == 10
    assert (c.health.failure_threshold, c.health.success_threshold, c.health.interval_secs) == (3, 2, 60.0)
    assert c.server.max_payload_size == 512 * 1024 * 1024


def test_config_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        GatewayConfig().server.port = 1  # type: ignore[misc]


def test_smg_flag_names_are_generated():
    ns = parse([
        "--worker-urls", "http://a", "http://b", "--policy", "round_robin", "--host", "127.0.0.2",
        "--port", "8080", "--cache-threshold", "0.5", "--balance-abs-threshold", "8",
        "--balance-rel-threshold", "2.0", "--max-tree-size", "1000", "--eviction-interval-secs", "5",
        "--retry-max-retries", "3", "--cb-failure-threshold", "4", "--health-check-interval-secs", "0.5",
        "--health-failure-threshold", "1", "--disable-health-check", "--server", "hypercorn",
    ])
    c = GatewayConfig.load(args=ns, environ={})
    assert c.routing.worker_urls == ("http://a", "http://b")
    assert (c.routing.policy, c.server.host, c.server.port, c.server.server) == ("round_robin", "127.0.0.2", 8080, "hypercorn")
    assert (c.routing.cache_threshold, c.routing.balance_abs_threshold, c.routing.balance_rel_threshold) == (0.5, 8, 2.0)
    assert (c.routing.max_tree_size, c.routing.eviction_interval_secs) == (1000, 5.0)
    assert (c.retry.max_retries, c.breaker.failure_threshold) == (3, 4)
    assert (c.health.interval_secs, c.health.failure_threshold, c.health.disable_health_check) == (0.5, 1, True)


def test_unknown_server_is_refused_by_the_parser():
    with pytest.raises(SystemExit):
        parse(["--server", "gunicorn"])


def test_toml_file_sections_and_flat_keys(tmp_path):
    path = tmp_path / "smg.toml"
    path.write_text(
        'policy = "power_of_two"\nretry_max_retries = 2\n\n'
        '[server]\nport = 9000\n\n[routing]\nworker_urls = ["http://w1", "http://w2"]\n\n'
        '[health]\ninterval_secs = 1\n'
    )
    c = GatewayConfig.from_file(path)
    assert c.routing.policy == "power_of_two" and c.retry.max_retries == 2
    assert c.server.port == 9000 and c.routing.worker_urls == ("http://w1", "http://w2")
    assert c.health.interval_secs == 1.0 and isinstance(c.health.interval_secs, float)


def test_yaml_file(tmp_path):
    path = tmp_path / "smg.yaml"
    path.write_text("server:\n  port: 7000\nworker-urls: [http://x]\ncb-failure-threshold: 2\n")
    c = GatewayConfig.from_file(path)
    assert (c.server.port, c.routing.worker_urls, c.breaker.failure_threshold) == (7000, ("http://x",), 2)


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ({"no_such_setting": 1}, "unknown setting"),
        ({"server": {"nope": 1}}, "unknown setting"),
        ({"port": "eighty"}, "port"),
        ({"port": True}, "port"),
        ({"worker_urls": 5}, "worker_urls"),
        ({"max_payload_size": 1.5}, "max_payload_size"),
        ({"server": "hypercorn2"}, "server"),
    ],
)
def test_bad_settings_are_clear_errors(data, match):
    with pytest.raises(ValueError, match=match):
        GatewayConfig.from_mapping(data)


def test_bad_file_suffix(tmp_path):
    path = tmp_path / "smg.ini"
    path.write_text("x")
    with pytest.raises(ValueError, match="toml"):
        GatewayConfig.from_file(path)


def test_environment_variables():
    env = {"SMG_PORT": "1234", "SMG_WORKER_URLS": "http://a, http://b", "SMG_DISABLE_RETRIES": "true",
           "SMG_HEALTH_CHECK_INTERVAL_SECS": "0.25", "UNRELATED": "x"}
    c = GatewayConfig.from_env(env)
    assert c.server.port == 1234 and c.routing.worker_urls == ("http://a", "http://b")
    assert c.retry.disable_retries is True and c.health.interval_secs == 0.25
    with pytest.raises(ValueError, match="boolean"):
        GatewayConfig.from_env({"SMG_DISABLE_RETRIES": "maybe"})


def test_layers_compose_file_then_env_then_cli(tmp_path):
    path = tmp_path / "smg.toml"
    path.write_text("port = 1\npolicy = 'random'\nretry_max_retries = 7\n")
    env = {"SMG_PORT": "2", "SMG_POLICY": "least_load"}
    c = GatewayConfig.load(file=path, environ=env, args=parse(["--port", "3"]))
    assert c.server.port == 3  # CLI beats env beats file
    assert c.routing.policy == "least_load"  # env beats file
    assert c.retry.max_retries == 7  # file beats defaults
    assert c.server.host == "127.0.0.1"  # untouched default


def test_router_configs_are_derived():
    c = GatewayConfig.from_mapping({"disable_retries": True, "disable_circuit_breaker": True,
                                    "disable_health_check": True, "cache_threshold": 0.7})
    assert c.retry.to_router().max_retries == 1
    assert c.breaker.to_router().enabled is False
    assert c.health.to_router().enabled is False
    assert c.policy_config().cache_threshold == 0.7


def test_sqlite_history_lives_under_xdg_data_home_or_the_given_dir(monkeypatch, tmp_path):
    from smg.config import HistorySettings

    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert HistorySettings().sqlite_dir() == str(tmp_path / "xdg" / "smg")
    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert HistorySettings().sqlite_dir() == str(tmp_path / "home" / ".local" / "share" / "smg")
    assert HistorySettings(data_dir="~/h").sqlite_dir() == str(tmp_path / "home" / "h")
