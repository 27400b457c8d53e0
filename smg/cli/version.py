"""Print smg's version and which implementation each compiled kernel uses."""

from __future__ import annotations

import argparse
import importlib

from smg import __version__

KERNELS = ("radix", "detok", "stops", "bpe")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    del parser  # no options


def run(args: argparse.Namespace) -> int:
    del args
    print(f"smg {__version__}")
    for kernel in KERNELS:
        try:
            mod = importlib.import_module(f"smg._fast.{kernel}")
        except ModuleNotFoundError:
            continue
        except ImportError as exc:
            print(f"  {kernel}: not available ({exc})")
            continue
        print(f"  {kernel}: {getattr(mod, 'IMPLEMENTATION', '?')}")
    return 0
