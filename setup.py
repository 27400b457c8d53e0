"""Build the compiled kernels in smg/_fast.

Every ``smg/_fast/*_c.pyx`` becomes an extension ``smg._fast.<name>_c``. Environment:

- ``SMG_NO_EXTENSIONS=1``: a pure-Python build (no extensions; ``smg._fast`` then uses the
  ``*_py`` twins, which is what the user asked for).
- ``SMG_DEBUG_BUILD=1``: ``-O0 -g`` instead of ``-O3``.
- ``SMG_CYTHON_ANNOTATE=1``: write Cython's HTML annotation next to each ``.pyx``.
- ``SMG_BUILD_ONLY=radix,detok``: build only these kernels (a quicker rebuild while
  working on one of them).
"""

from __future__ import annotations

import glob
import os
import sys

from setuptools import Extension, setup

NO_EXTENSIONS = os.environ.get("SMG_NO_EXTENSIONS", "") not in ("", "0")
DEBUG = os.environ.get("SMG_DEBUG_BUILD", "") not in ("", "0")


def _extensions() -> list[Extension]:
    from Cython.Build import cythonize

    cflags = ["-O0", "-g"] if DEBUG else ["-O3", "-DNDEBUG"]
    cflags += ["-Wno-unused-function", "-Wno-unreachable-code"]
    only = {k.strip() for k in os.environ.get("SMG_BUILD_ONLY", "").split(",") if k.strip()}
    exts = []
    for pyx in sorted(glob.glob("smg/_fast/*_c.pyx")):
        if only and os.path.basename(pyx)[: -len("_c.pyx")] not in only:
            continue
        name = pyx[:-4].replace("/", ".")
        exts.append(
            Extension(
                name,
                [pyx],
                include_dirs=["smg/_fast/include"],
                extra_compile_args=cflags,
                language="c",
            )
        )
    return cythonize(
        exts,
        compiler_directives={"language_level": "3", "embedsignature": True},
        annotate=os.environ.get("SMG_CYTHON_ANNOTATE", "") not in ("", "0"),
        nthreads=os.cpu_count() or 1,
    )


if NO_EXTENSIONS:
    print("smg: pure-Python build (SMG_NO_EXTENSIONS set)", file=sys.stderr)
    setup(ext_modules=[])
else:
    print("smg: accelerated build (Cython kernels in smg/_fast)", file=sys.stderr)
    setup(ext_modules=_extensions())
