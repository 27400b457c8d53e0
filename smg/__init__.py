"""smg: an LLM inference gateway with compiled hot paths.

The module path is the API: ``smg.router`` for routing, ``smg._fast`` for the kernels,
``smg.engine`` for the reference worker. This module holds only the version.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
