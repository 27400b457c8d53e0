"""Print smg's version and which implementation each compiled kernel uses."""

from __future__ import annotations

import argparse
import platform

from smg import __version__
from smg._fast import NO_EXTENSIONS, kernel_report


def add_arguments(parser: argparse.ArgumentParser) -> None:
    del parser  # no options


def run(args: argparse.Namespace) -> int:
    """Loads all six kernels (not only those imported so far); exit status 1 when one of
    them cannot be loaded."""
    del args
    print(f"smg {__version__} (Python {platform.python_version()})")
    if NO_EXTENSIONS:
        print("kernels: pure-Python twins (SMG_NO_EXTENSIONS is set)")
    else:
        print("kernels:")
    report = kernel_report()
    width = max(map(len, report))
    for kernel, how in report.items():
        print(f"  {kernel:<{width}}  {how}")
    return 0 if all(not how.startswith("not available") for how in report.values()) else 1
