"""The package surface: version, CLI entry point, kernel chooser."""

from __future__ import annotations

import subprocess
import sys

import pytest

import smg
from smg.cli import main


def test_version_command_prints_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["version"]) == 0
    assert capsys.readouterr().out.startswith(f"smg {smg.__version__}")


def test_no_command_prints_help_and_fails(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "usage: smg" in capsys.readouterr().err


def test_python_twin_is_only_chosen_when_asked() -> None:
    code = (
        "import smg._fast as f, sys; print(f.NO_EXTENSIONS)"
    )
    for env_value, expected in (("1", "True"), ("", "False")):
        out = subprocess.run(
            [sys.executable, "-c", code],
            env={"SMG_NO_EXTENSIONS": env_value, "PATH": ""},
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        assert out == expected


def test_missing_compiled_kernel_is_a_clear_import_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import smg._fast as fast

    monkeypatch.setattr(fast, "NO_EXTENSIONS", False)
    with pytest.raises(ImportError, match="SMG_NO_EXTENSIONS=1"):
        fast.load("no_such_kernel")
