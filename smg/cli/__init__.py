"""The ``smg`` command: ``smg serve`` (alias ``smg launch``), ``smg worker``, ``smg version``.

Each subcommand lives in ``smg/cli/<name>.py`` with ``add_arguments(parser)`` and
``run(args) -> int``; its flags are generated from the typed config dataclass it builds
(see ``smg.cli.fields``), so a flag's default and help are written once. A usage error
is one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
from collections.abc import Sequence
from typing import NoReturn

from smg import __version__

# name -> (module, one-line help, aliases). Modules are imported only when their command runs.
COMMANDS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "serve": ("smg.cli.serve", "run the OpenAI-compatible gateway (alias: launch, as in Rust SMG)", ("launch",)),
    "worker": ("smg.cli.worker", "run the reference inference worker (gRPC and HTTP)", ()),
    "version": ("smg.cli.version", "print the version and which implementation each kernel uses", ()),
}


class Parser(argparse.ArgumentParser):
    """argparse with a one-line error: no usage dump of a hundred flags above it."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see: {self.prog} --help)\n")


def _available() -> dict[str, tuple[str, str, tuple[str, ...]]]:
    return {name: spec for name, spec in COMMANDS.items() if importlib.util.find_spec(spec[0]) is not None}


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="smg",
        description="smg: an LLM inference gateway (OpenAI-compatible) with compiled hot paths.",
    )
    parser.add_argument("--version", "-V", action="version", version=f"smg {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for name, (module, help_, aliases) in _available().items():
        mod = importlib.import_module(module)
        p = sub.add_parser(name, aliases=list(aliases), help=help_, description=mod.__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False)
        p.prog = f"smg {name}"
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
