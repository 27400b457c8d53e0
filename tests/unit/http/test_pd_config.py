"""PD settings: SMG's flags (``--prefill URL [BOOTSTRAP_PORT|none]`` repeatable), the
environment form, and the errors of a malformed or incomplete PD configuration."""

from __future__ import annotations

import argparse

import pytest

from smg.cli.fields import add_dataclass_arguments
from smg.config import GatewayConfig, PDSettings
from smg.http.state import AppState


def _parse(*argv: str) -> GatewayConfig:
    parser = argparse.ArgumentParser()
    add_dataclass_arguments(parser, GatewayConfig)
    return GatewayConfig.load(args=parser.parse_args(argv), environ={})


def test_flags_as_smg_spells_them() -> None:
    c = _parse("--pd-disaggregation", "--prefill", "http://p1:30000", "8998", "--prefill", "http://p2:30000",
               "none", "--prefill", "http://p3:30000", "--decode", "http://d1:30000", "--decode", "http://d2:30000",
               "--prefill-policy", "cache_aware", "--decode-policy", "power_of_two", "--pd-style", "vllm")
    assert c.pd.pd_disaggregation and c.pd.pd_style == "vllm"
    assert c.pd.prefill_workers() == [("http://p1:30000", 8998), ("http://p2:30000", None), ("http://p3:30000", None)]
    assert c.pd.decode == ("http://d1:30000", "http://d2:30000")
    assert (c.pd.prefill_policy, c.pd.decode_policy) == ("cache_aware", "power_of_two")
    assert not c.grpc_mode()
    assert _parse("--pd-disaggregation", "--decode", "grpc://127.0.0.1:1").grpc_mode()


def test_environment_form() -> None:
    c = GatewayConfig.from_env({"SMG_PD_DISAGGREGATION": "1", "SMG_PREFILL": "http://a:1,9000,http://b:2",
                                "SMG_DECODE": "http://c:3"})
    assert c.pd.prefill_workers() == [("http://a:1", 9000), ("http://b:2", None)]


@pytest.mark.parametrize("bad", [("8998", "http://a:1"), ("http://a:1", "eight")])
def test_malformed_prefill_list(bad) -> None:
    with pytest.raises(ValueError, match="--prefill"):
        PDSettings(prefill=bad).prefill_workers()


async def test_pd_workers_without_the_flag_are_refused() -> None:
    config = GatewayConfig(pd=PDSettings(prefill=("http://127.0.0.1:9",), decode=("http://127.0.0.1:9",)))
    with pytest.raises(ValueError, match="need --pd-disaggregation"):
        await AppState.start(config)
