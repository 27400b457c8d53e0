"""Cheap checks on the repository's shape that keep CI from failing in odd ways."""

from __future__ import annotations

import collections
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_test_module_basenames_are_unique() -> None:
    # tests/ has no packages (rootdir imports), so two test_x.py files collide.
    names = collections.Counter(
        p.name for p in (ROOT / "tests").rglob("test_*.py") if "__pycache__" not in p.parts
    )
    assert [n for n, c in names.items() if c > 1] == []


def test_no_module_over_500_lines() -> None:
    big = []
    for p in (ROOT / "smg").rglob("*.py*"):
        if p.suffix not in (".py", ".pyx") or "_proto" in p.parts:
            continue
        lines = p.read_text(encoding="utf-8").count("\n")
        if lines > 500:
            big.append((str(p.relative_to(ROOT)), lines))
    assert big == []
