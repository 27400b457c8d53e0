"""API keys: who a presented key belongs to, decided in constant time.

Keys are kept only as SHA-256 digests. A presented key is hashed once and compared with
:func:`hmac.compare_digest` against every stored digest (no early exit), so neither the
key's bytes nor which entry matched shows in the time taken. Parse errors never quote
the entry: it holds a secret.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

__all__ = [
    "KeyRing",
    "Principal",
    "Role",
    "parse_control_plane_keys",
    "parse_role_mapping",
    "parse_tenant_keys",
]

Role = Literal["admin", "user", "data"]
ROLES = ("admin", "user")


@dataclass(frozen=True, slots=True)
class Principal:
    """Who made a request. ``role`` "data" is a data-plane key: never a control-plane caller."""

    id: str
    name: str
    role: Role
    tenant: str | None = None  # "auth:<tenant_id>" for a tenant key, as the Rust gateway names it
    source: str = "api_key"  # api_key | tenant_key | control_key | jwt
    label: str = field(default="", compare=False)  # the metrics label: tenant, key id, or "jwt"

    def __post_init__(self) -> None:
        label = self.tenant or ("jwt" if self.source == "jwt" else self.describe())
        object.__setattr__(self, "label", label)

    def describe(self) -> str:
        return f"{self.source}:{self.id}"


def digest(key: str | bytes) -> bytes:
    return hashlib.sha256(key.encode("utf-8", "surrogateescape") if isinstance(key, str) else key).digest()


class KeyRing:
    """Digests of keys and the principal each one stands for."""

    __slots__ = ("_entries",)

    def __init__(self, entries: Iterable[tuple[str, Principal]] = ()) -> None:
        self._entries: list[tuple[bytes, Principal]] = []
        seen: set[bytes] = set()
        for key, principal in entries:
            d = digest(key)
            if d in seen:
                raise ValueError(f"the same key is given twice (second time for {principal.describe()})")
            seen.add(d)
            self._entries.append((d, principal))

    def __bool__(self) -> bool:
        return bool(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def lookup(self, presented: bytes) -> Principal | None:
        """The principal whose key is ``presented``, or None; every entry is compared."""
        d = digest(presented)
        found = None
        for stored, principal in self._entries:
            if hmac.compare_digest(stored, d):
                found = principal
        return found

    def digests(self) -> set[bytes]:
        return {d for d, _ in self._entries}


def parse_tenant_keys(values: Iterable[str]) -> list[tuple[str, Principal]]:
    """``tenant_id:key`` (split at the first ``:``, both parts trimmed, as Rust does)."""
    out = []
    for value in values:
        tenant, sep, key = value.partition(":")
        tenant, key = tenant.strip(), key.strip()
        if not sep or not tenant or not key:
            raise ValueError("invalid --tenant-api-key value: expected 'tenant_id:key' with both parts non-empty")
        out.append((key, Principal(tenant, tenant, "data", tenant=f"auth:{tenant}", source="tenant_key")))
    return out


def parse_control_plane_keys(values: Iterable[str]) -> list[tuple[str, Principal]]:
    """``id:name:role:key``, role admin or user (the key may itself hold ``:``)."""
    out = []
    for value in values:
        parts = value.split(":", 3)
        if len(parts) != 4 or not parts[3]:
            raise ValueError("invalid control-plane API key entry: expected 'id:name:role:key'")
        key_id, name, role, key = parts
        role = role.lower()
        if role not in ROLES:
            raise ValueError("invalid control-plane API key role: must be 'admin' or 'user'")
        out.append((key, Principal(key_id, name, role, source="control_key")))  # type: ignore[arg-type]
    return out


def parse_role_mapping(values: Iterable[str]) -> dict[str, Role]:
    """``idp_role=gateway_role`` entries, gateway role admin or user."""
    mapping: dict[str, Role] = {}
    for value in values:
        idp, sep, role = value.partition("=")
        if not sep or not idp:
            raise ValueError(f"invalid --jwt-role-mapping {value!r}: expected 'idp_role=gateway_role'")
        if role.lower() not in ROLES:
            raise ValueError(f"invalid gateway role {role!r} in --jwt-role-mapping: must be 'admin' or 'user'")
        mapping[idp] = role.lower()  # type: ignore[assignment]
    return mapping
