"""``smg serve --help`` is written for people, ``smg version`` lists every kernel, and
the checks ``smg serve`` runs before it starts say what is wrong in one line."""

from __future__ import annotations

import pathlib
import re

import pytest

from smg._fast import KERNELS, NO_EXTENSIONS
from smg.cli import build_parser, main
from smg.config import GatewayConfig, RoutingConfig
from smg.config.validate import check_worker_url, problems, warnings
from smg.parsers.reasoning import REASONING_PARSERS
from smg.parsers.tools import TOOL_PARSERS
from smg.router import policy_names


@pytest.fixture(scope="module")
def serve_help() -> str:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    return sub.choices["serve"].format_help()


def test_groups_have_headings_in_words(serve_help):
    for heading in ("Server:", "Routing:", "Retries:", "Circuit breaker:", "Health checks:",
                    "Prefill/decode:", "Model and tokenizer (gRPC mode):"):
        assert f"\n{heading}\n" in serve_help
    assert not re.search(r"\b\w+(Config|Settings)\b", serve_help)  # no class names


def test_every_choice_is_listed(serve_help):
    flat = " ".join(serve_help.split())
    for name in (*policy_names(), *REASONING_PARSERS, *TOOL_PARSERS, "uvicorn", "hypercorn"):
        assert re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", flat.replace("- ", "-")), name
    assert "consistent_hashing" in policy_names()


def test_defaults_as_typed_and_no_double_negatives(serve_help):
    assert "--no-disable" not in serve_help
    assert "('" not in serve_help and "()" not in serve_help  # no Python tuples
    assert "(default: x-request-id x-correlation-id x-trace-id request-id)" in " ".join(serve_help.split())
    flat = " ".join(serve_help.split())
    assert "time given to in-flight requests on exit (default: 180)" in flat  # not 180.0


def test_description_explains_both_modes_plainly(serve_help):
    description = serve_help.split("\noptions:")[0]
    assert "Proxy mode" in description and "gRPC mode" in description
    assert "--worker-urls http://" in description and "--worker-urls grpc://" in description
    assert "``" not in description and "::" not in description  # not reST


def test_workers_flag_counts_gateway_processes(serve_help):
    text = " ".join(serve_help.split())
    assert "--workers WORKERS gateway processes serving the port (not inference workers)" in text


def test_version_lists_all_six_kernels(capsys):
    assert main(["version"]) == 0
    out = capsys.readouterr().out
    expected = "python" if NO_EXTENSIONS else "cython"
    assert KERNELS == ("radix", "detok", "stops", "bpe", "grpcwire", "h2wire")
    for kernel in KERNELS:
        assert re.search(rf"^\s+{kernel}\s+{expected}$", out, re.M), out


@pytest.mark.parametrize(("url", "why"), [
    ("127.0.0.1:8000", "has no scheme"),
    ("ftp://127.0.0.1:8000", "the scheme must be"),
    ("http://", "names no host"),
    ("http://127.0.0.1:8000/v1?x=", "query or fragment"),
    ("http://127.0.0.1:8000#frag", "query or fragment"),
    ("http://127.0.0.1:99999", "malformed"),
])
def test_bad_worker_urls_are_refused(url, why):
    assert why in (check_worker_url(url) or "")


@pytest.mark.parametrize("url", ["http://127.0.0.1:8000", "https://[::1]:8443/prefix", "grpc://localhost:30001"])
def test_good_worker_urls_pass(url):
    assert check_worker_url(url) is None


def test_problems_name_each_bad_setting():
    config = GatewayConfig(routing=RoutingConfig(worker_urls=("localhost:1",), policy="manual"))
    found = problems(config)
    assert any("has no scheme" in p for p in found)
    assert any(p.startswith("--policy:") and "manual" in p for p in found)
    assert problems(GatewayConfig(routing=RoutingConfig(worker_urls=("http://127.0.0.1:1",)))) == []


def test_grpc_mode_tokenizer_that_cannot_load_is_a_problem(tmp_path: pathlib.Path):
    from smg.config import ModelSettings

    config = GatewayConfig(routing=RoutingConfig(worker_urls=("grpc://127.0.0.1:1",)),
                           model=ModelSettings(tokenizer_path=str(tmp_path / "missing")))
    (found,) = problems(config)
    assert found.startswith("--tokenizer-path") and "cannot load a tokenizer" in found


def test_unknown_smg_variables_and_grpc_only_flags_in_proxy_mode_warn():
    from smg.config import ModelSettings

    config = GatewayConfig(routing=RoutingConfig(worker_urls=("http://127.0.0.1:1",)),
                           model=ModelSettings(reasoning_parser="qwen3"))
    found = warnings(config, {"SMG_PORT": "1", "SMG_NO_EXTENSIONS": "1", "SMG_TYPO_KEY": "x"})
    assert "SMG_TYPO_KEY names no smg setting and is ignored" in found
    assert not any("SMG_PORT" in w or "SMG_NO_EXTENSIONS" in w for w in found)
    assert any(w.startswith("--reasoning-parser only applies in gRPC mode") for w in found)
    grpc = GatewayConfig(routing=RoutingConfig(worker_urls=("grpc://127.0.0.1:1",)),
                         model=ModelSettings(reasoning_parser="qwen3"))
    assert warnings(grpc, {}) == []


def test_bad_config_file_is_one_line(tmp_path: pathlib.Path):
    bad = tmp_path / "smg.yaml"
    bad.write_text("port: [\n")
    with pytest.raises(ValueError) as exc:
        GatewayConfig.from_file(bad)
    assert "is not valid YAML (line" in str(exc.value) and "\n" not in str(exc.value)
    bad_toml = tmp_path / "smg.toml"
    bad_toml.write_text("port = \n")
    with pytest.raises(ValueError, match="is not valid TOML"):
        GatewayConfig.from_file(bad_toml)


def test_usage_errors_are_one_line(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["serve", "--policy", "nope"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown name 'nope'; choose one of: " in err
    assert all(name in err for name in policy_names())  # (other tests may have registered more)
