"""``smg worker``: flags generated from WorkerConfig, clear errors for bad settings."""

from __future__ import annotations

import dataclasses

import pytest

from smg.cli import main
from smg.engine.config import WorkerConfig


def test_help_documents_every_config_field(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["worker", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for f in dataclasses.fields(WorkerConfig):
        assert "--" + f.name.replace("_", "-") in out, f.name
    assert "x-smg-fault" in out and "smg worker ready:" in out


def test_flags_build_the_config() -> None:
    import argparse

    from smg.cli.fields import dataclass_from_args
    from smg.cli.worker import add_arguments

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    ns = parser.parse_args(["--grpc-proto", "vllm", "--kv-block-size", "32", "--fault", "stall"])
    cfg = dataclass_from_args(WorkerConfig, ns)
    assert (cfg.grpc_proto, cfg.kv_block_size, cfg.fault, cfg.port) == ("vllm", 32, "stall", 30001)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--fault", "meteor"], "unknown fault"),
        (["--mode", "script"], "needs --script"),
        (["--kv-block-size", "0"], "kv_block_size"),
    ],
)
def test_bad_settings_exit_2_with_a_message(argv, message, capsys) -> None:
    assert main(["worker", *argv]) == 2
    assert message in capsys.readouterr().err


def test_missing_tokenizer_is_one_clear_line(capsys, tmp_path) -> None:
    assert main(["worker", "--port", "0", "--tokenizer", str(tmp_path / "nope")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("smg worker: ") and "Traceback" not in err
