"""The wheel users install holds what smg runs, and nothing of its build.

CI builds the sdist and, from it, the wheel, and points ``SMG_WHEEL`` at the wheel (or
the folder holding it); without it the test is skipped, except under CI, where a wheel
that cannot be found fails the run.
"""

from __future__ import annotations

import os
import pathlib
import zipfile

import pytest

from smg._fast import KERNELS

ROOT = pathlib.Path(__file__).resolve().parents[2]
BUILD_INPUTS = (".pyx", ".pxd", ".c", ".h", ".pyc", ".html", ".o")


def _wheel() -> pathlib.Path | None:
    given = os.environ.get("SMG_WHEEL")
    if not given:
        return None
    path = pathlib.Path(given)
    if path.is_dir():
        wheels = sorted(path.glob("smg-*.whl"))
        return wheels[-1] if wheels else None
    return path if path.is_file() else None


@pytest.fixture(scope="module")
def names() -> list[str]:
    wheel = _wheel()
    if wheel is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must set SMG_WHEEL to the built wheel (got {os.environ.get('SMG_WHEEL')!r})")
        pytest.skip("SMG_WHEEL is not set (CI builds the wheel and sets it)")
    with zipfile.ZipFile(wheel) as zf:
        return zf.namelist()


def test_every_kernel_is_compiled_in(names):
    for kernel in KERNELS:
        compiled = [n for n in names if n.startswith(f"smg/_fast/{kernel}_c.") and n.endswith(".so")]
        assert len(compiled) == 1, (kernel, compiled)
        assert f"smg/_fast/{kernel}_py.py" in names and f"smg/_fast/{kernel}.py" in names


def test_templates_stubs_and_typing_marker(names):
    templates = sorted(p.name for p in (ROOT / "smg" / "tokenizer" / "templates").glob("*.jinja"))
    assert templates
    for t in templates:
        assert f"smg/tokenizer/templates/{t}" in names
    for proto in ("common", "sglang_scheduler", "vllm_engine"):
        for suffix in ("_pb2.py", "_pb2.pyi"):
            assert f"smg/_proto/{proto}{suffix}" in names
    assert "smg/_proto/sglang_scheduler_pb2_grpc.py" in names and "smg/_proto/vllm_engine_pb2_grpc.py" in names
    assert "smg/py.typed" in names


def test_every_module_of_the_source_tree_is_in_it(names):
    source = {str(p.relative_to(ROOT)) for p in (ROOT / "smg").rglob("*.py") if "__pycache__" not in p.parts}
    assert source - set(names) == set()


def test_no_build_leftovers(names):
    leftovers = [n for n in names if n.endswith(BUILD_INPUTS) or "__pycache__" in n]
    assert leftovers == []
    assert all(n.startswith(("smg/", "smg-")) for n in names), [n for n in names if not n.startswith("smg")]


def test_the_smg_command_is_declared(names):
    wheel = _wheel()
    assert wheel is not None
    with zipfile.ZipFile(wheel) as zf:
        entry = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
        text = zf.read(entry).decode()
    assert "smg = smg.cli:main" in text
