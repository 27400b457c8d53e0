"""Every bound on what the gateway keeps, as metrics (issue 15: bounded memory): the
limit, and where it is cheap to know, how much of it is in use. Appended to ``/metrics``
(smg.http.health); admission control reports its own (smg.http.admission).

- ``smg_bound{name}``: the limit (bytes, units or entries, as the name says);
- ``smg_bound_used{name}``: what is held now, for the bounds whose use is known here.
"""

from __future__ import annotations

from typing import Any

from smg.clients import http1
from smg.http import h1server

__all__ = ["render"]


def _rows(state: Any) -> list[tuple[str, int | None, int]]:
    config = state.config
    rows: list[tuple[str, int | None, int]] = [
        ("request_body_bytes", None, config.server.max_payload_size),
        ("request_head_bytes", None, h1server.MAX_HEAD),
        ("request_body_buffer_bytes", None, h1server.HIGH_WATER),
        ("upstream_response_head_bytes", None, http1.MAX_HEAD),
        ("upstream_idle_connections_per_worker", None, http1.MAX_IDLE),
    ]
    policies = state.router.policies() if state.router is not None else [state.policy]
    for n, policy in enumerate(policies):
        bounds = getattr(policy, "bounds", None)
        if bounds is None:
            continue
        suffix = "" if n == 0 else f"_{n}"
        rows += [(name + suffix, used, bound) for name, used, bound in bounds()]
        rows.append(("cache_aware_tree_units_per_worker" + suffix, None, policy.config.max_tree_size))
    return rows


def render(state: Any) -> bytes:
    rows = _rows(state)
    lines = ["# HELP smg_bound a bound on what the gateway keeps", "# TYPE smg_bound gauge"]
    lines += [f'smg_bound{{name="{name}"}} {bound}' for name, _, bound in rows]
    lines += ["# HELP smg_bound_used what the gateway keeps under a bound", "# TYPE smg_bound_used gauge"]
    lines += [f'smg_bound_used{{name="{name}"}} {used}' for name, used, _ in rows if used is not None]
    return ("\n".join(lines) + "\n").encode()
