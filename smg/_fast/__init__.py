"""Compiled kernels, each with a pure-Python twin that is its specification.

Every kernel ``X`` is three files: ``X.py`` (the chooser, imported by users),
``X_c.pyx`` (Cython) and ``X_py.py`` (pure Python, same API). The compiled module is
the default. Setting ``SMG_NO_EXTENSIONS=1`` selects the Python twins; it is the only
way to get them; a missing compiled module is an ImportError, never a silent fallback.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

__all__ = ["KERNELS", "NO_EXTENSIONS", "implementation", "kernel_report", "load"]

# every kernel, in the order `smg version` lists them
KERNELS = ("radix", "detok", "stops", "bpe", "grpcwire", "h2wire")

NO_EXTENSIONS = os.environ.get("SMG_NO_EXTENSIONS", "") not in ("", "0")

_chosen: dict[str, str] = {}


def load(kernel: str) -> ModuleType:
    """Import the implementation of ``kernel`` that this process uses.

    Returns ``smg._fast.<kernel>_py`` when ``SMG_NO_EXTENSIONS`` is set, else
    ``smg._fast.<kernel>_c``; a compiled module that cannot be imported raises an
    ImportError that says how to build it or how to ask for the Python twin.
    """
    if NO_EXTENSIONS:
        module = importlib.import_module(f"smg._fast.{kernel}_py")
        _chosen[kernel] = "python"
        return module
    try:
        module = importlib.import_module(f"smg._fast.{kernel}_c")
    except ImportError as exc:
        raise ImportError(
            f"smg._fast.{kernel}: the compiled kernel is not built ({exc}). "
            "Reinstall smg with a C compiler available (`pip install .`), or set "
            "SMG_NO_EXTENSIONS=1 to use the pure-Python implementation on purpose."
        ) from exc
    _chosen[kernel] = "cython"
    return module


def implementation() -> dict[str, str]:
    """Which implementation each kernel loaded so far uses: ``{"radix": "cython", ...}``.

    Kernels with a fallback of their own (``bpe`` falls back to HF ``tokenizers`` for
    tokenizer.json features it does not support) report it here too.
    """
    return dict(_chosen)


def _note(kernel: str, how: str) -> None:
    """Record a kernel's implementation (for kernels that choose at run time)."""
    _chosen[kernel] = how


def kernel_report() -> dict[str, str]:
    """Load every kernel and say which implementation each uses: ``{"radix": "cython",
    ...}``, or ``"not available: <why>"`` for one that cannot be imported."""
    report = {}
    for kernel in KERNELS:
        try:
            module = importlib.import_module(f"smg._fast.{kernel}")
        except ImportError as exc:
            report[kernel] = f"not available: {exc}"
            continue
        report[kernel] = getattr(module, "IMPLEMENTATION", "?")
    return report
