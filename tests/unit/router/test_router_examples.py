"""The examples run end to end (short, bounded runs) and show what they claim."""

from __future__ import annotations

import importlib.util
import pathlib
import re

EXAMPLES = pathlib.Path(__file__).resolve().parents[3] / "examples"


def load(name: str):
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_embed_router_proxies_through_real_servers(capsys):
    example = load("embed_router")
    assert example.main(["--policy", "round_robin", "--requests", "6"]) == 0
    rows = re.findall(r"(backend-\d): (\d+) requests", capsys.readouterr().out)
    assert rows == [(f"backend-{i}", "2") for i in range(3)]


def test_embed_router_sticky_policy(capsys):
    example = load("embed_router")
    assert example.main(["--policy", "consistent_hash", "--requests", "12"]) == 0
    rows = re.findall(r"(backend-\d): (\d+) requests \(users: ([^)]*)\)", capsys.readouterr().out)
    users = [u for *_, listed in rows for u in listed.split(", ")]
    assert sorted(users) == [f"user-{i}" for i in range(6)]  # each user on exactly one backend
    assert sum(int(n) for _, n, _ in rows) == 12


def test_custom_policy_registered_by_name(capsys):
    example = load("custom_policy")
    from smg.router import create_policy, policy_names

    assert "tier" in policy_names() and isinstance(create_policy("tier"), example.TierPolicy)
    assert example.main(["--requests", "12"]) == 0
    out = capsys.readouterr().out
    routed = re.findall(r"x-tier=(\S+)\s+-> (\S+): (\d+)", out)
    premium = {url for tier, url, _ in routed if tier == "premium"}
    batch = {url for tier, url, _ in routed if tier == "batch"}
    assert premium and premium <= {"http://127.0.0.1:8001", "http://127.0.0.1:8002"}
    assert batch == {"http://127.0.0.1:8003"}
    assert sum(int(n) for *_, n in routed) == 12
