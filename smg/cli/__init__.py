"""The ``smg`` command: ``smg serve``, ``smg worker``, ``smg version``.

Each subcommand lives in ``smg/cli/<name>.py`` with ``add_arguments(parser)`` and
``run(args) -> int``; its flags are generated from the typed config dataclass it builds
(see ``smg.cli.fields``), so a flag's default and help are written once.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from smg import __version__

# name -> (module, one-line help). Modules are imported only when their command runs.
COMMANDS: dict[str, tuple[str, str]] = {
    "serve": ("smg.cli.serve", "run the OpenAI-compatible gateway"),
    "worker": ("smg.cli.worker", "run the reference inference worker (gRPC and HTTP)"),
    "version": ("smg.cli.version", "print the version and which kernels are compiled"),
}


def _available() -> dict[str, tuple[str, str]]:
    found = {}
    for name, (module, help_) in COMMANDS.items():
        if importlib.util.find_spec(module) is not None:
            found[name] = (module, help_)
    return found


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="smg",
        description="smg: an LLM inference gateway (OpenAI-compatible) with compiled hot paths.",
    )
    parser.add_argument("--version", action="version", version=f"smg {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_) in _available().items():
        mod = importlib.import_module(module)
        p = sub.add_parser(name, help=help_, description=mod.__doc__)
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "_run", None) is None:
        parser.print_help(sys.stderr)
        return 2
    return int(args._run(args) or 0)
