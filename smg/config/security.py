"""The ``security`` section of :class:`~smg.config.GatewayConfig`: who may call the gateway,
which workers it may be told to reach, and TLS on both sides.

Flag names are the Rust gateway's where it has the setting. Two differ on purpose:

- audit logging of control-plane changes is ON by default here. ``--control-plane-audit-enabled``
  (Rust's opt-in flag) is accepted and is the default; ``--disable-audit-logging`` (or
  ``--no-control-plane-audit-enabled``) turns it off. Either one off means off.
- a data-plane key (``--api-key``, ``--tenant-api-key``) never opens the control plane;
  only ``--control-plane-api-keys`` or a JWT do (Rust lets the shared ``--api-key`` in).
"""

from __future__ import annotations

import ipaddress
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

from smg.config.sections import opt

__all__ = ["SecuritySettings"]


def secret(default: Any, help: str, **meta: Any) -> Any:
    """A setting holding keys: as :func:`opt`, and left out of the dataclass's repr, so a
    logged or printed config never shows it."""
    return field(default=default, repr=False, metadata={"help": help, **meta})


def _https_or_loopback(url: str) -> bool:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "https":
        return True
    try:
        return parts.scheme == "http" and ipaddress.ip_address((parts.hostname or "").strip("[]")).is_loopback
    except ValueError:
        return parts.scheme == "http" and parts.hostname == "localhost"


@dataclass(frozen=True)
class SecuritySettings:
    """Authentication, the worker-URL allow-list and TLS."""

    api_key: str | None = secret(
        None, "data-plane key every inference route needs (Authorization: Bearer; x-api-key on /v1/messages)"
    )
    tenant_api_key: tuple[str, ...] = secret(
        (), "a tenant's data-plane key (repeatable); its requests carry tenant auth:TENANT", metavar="TENANT:KEY"
    )
    control_plane_api_keys: tuple[str, ...] = secret(
        (), "control-plane keys (role admin or user); without these or a JWT issuer the control plane "
        "is refused whenever a data-plane key is set", metavar="ID:NAME:ROLE:KEY"
    )
    control_plane_audit_enabled: bool = opt(
        True, "one audit log line (logger smg.audit) per control-plane change and refusal"
    )
    disable_audit_logging: bool = opt(False, "no audit log lines")
    jwt_issuer: str | None = opt(None, "OIDC issuer: control-plane Bearer JWTs must carry it as iss")
    jwt_audience: str | None = opt(None, "audience (aud) control-plane JWTs must carry")
    jwt_jwks_uri: str | None = opt(
        None, "JWKS URL of the issuer's signing keys (default: from <issuer>/.well-known/openid-configuration)"
    )
    jwt_role_claim: str = opt("roles", "JWT claim holding the caller's roles or groups")
    jwt_role_mapping: tuple[str, ...] = opt(
        (), "IdP role to gateway role (admin or user)", metavar="IDP_ROLE=ROLE"
    )
    worker_allow_hosts: tuple[str, ...] = opt(
        (), "hosts, IPs or CIDRs workers added at run time may be on, or '*' for any (default: the "
        "start-up workers' hosts, plus loopback only if one of them is on loopback)", metavar="HOST|CIDR"
    )
    public_health_metrics: bool = opt(
        False, "/health, /liveness, /readiness and /metrics answer without a credential when auth is on"
    )
    tls_cert_path: str | None = opt(None, "serve TLS with this certificate (PEM; with --tls-key-path)")
    tls_key_path: str | None = opt(None, "private key of --tls-cert-path (PEM)")
    client_cert_path: str | None = opt(None, "client certificate (PEM) for mTLS to https:// workers")
    client_key_path: str | None = opt(None, "private key of --client-cert-path (PEM)")
    ca_cert_paths: tuple[str, ...] = opt(
        (), "CA certificates (PEM) https:// workers' certificates are verified against, besides the system's"
    )

    @property
    def audit_enabled(self) -> bool:
        return self.control_plane_audit_enabled and not self.disable_audit_logging

    def validate(self) -> None:
        """Raise ValueError for settings that cannot work together (never naming a key)."""
        if (self.tls_cert_path is None) != (self.tls_key_path is None):
            raise ValueError("--tls-cert-path and --tls-key-path go together")
        if (self.client_cert_path is None) != (self.client_key_path is None):
            raise ValueError("--client-cert-path and --client-key-path go together")
        jwt = (self.jwt_issuer, self.jwt_audience)
        if any(jwt) and not all(jwt):
            raise ValueError("JWT control-plane auth needs both --jwt-issuer and --jwt-audience")
        for flag, url in (("--jwt-issuer", self.jwt_issuer), ("--jwt-jwks-uri", self.jwt_jwks_uri)):
            if url is not None and not _https_or_loopback(url):
                raise ValueError(f"{flag} must be an https:// URL (http:// only on loopback)")
        if self.api_key is not None and not self.api_key.strip():
            raise ValueError("--api-key is empty")
        from smg.security.keys import parse_control_plane_keys, parse_role_mapping, parse_tenant_keys

        parse_tenant_keys(self.tenant_api_key)
        parse_control_plane_keys(self.control_plane_api_keys)
        parse_role_mapping(self.jwt_role_mapping)
