"""Who may call which route: the check :class:`~smg.http.middleware.Front` runs first.

Routes fall in three classes, by path alone (the same ``scope["path"]`` routing uses):

- **data plane**: ``/generate``, ``/rerank`` and everything under ``/v1/`` (but
  ``/v1/tokenizers``): with ``--api-key`` or ``--tenant-api-key`` set, a Bearer data-plane
  key is needed (``x-api-key`` too on ``/v1/messages``, the Anthropic route);
- **probes**: ``/health``, ``/liveness``, ``/readiness``, ``/metrics``: once any credential
  is configured, any valid one is needed, unless ``--public-health-metrics``;
- **control plane**: everything else (``/workers*``, ``/flush_cache``, ``/get_loads``,
  ``/parse/*``, unknown paths): a control-plane key or JWT; role ``user`` may only read
  (GET/HEAD), ``admin`` may change. With only data-plane keys configured, or with no
  credential at all on a non-loopback listener, the control plane refuses everyone.

No credential configured and a loopback listener: there is no guard at all (``Front``
pays nothing). A credential the gateway accepted is taken out of the request's headers,
so a gateway key never travels on to a worker; where the gateway asks for none (an open
data plane) the client's headers pass unchanged.
"""

from __future__ import annotations

import ipaddress
from typing import Literal

from starlette.types import Scope, Send

from smg.config.security import SecuritySettings
from smg.errors import SmgError, error_body
from smg.security.audit import audit
from smg.security.errors import Forbidden, Unauthorized
from smg.security.jwt import JwtVerifier, looks_like_jwt
from smg.security.keys import (
    KeyRing,
    Principal,
    parse_control_plane_keys,
    parse_role_mapping,
    parse_tenant_keys,
)

__all__ = ["ANONYMOUS", "Guard", "route_class"]

RouteClass = Literal["data", "probe", "control"]
ANONYMOUS = Principal("anonymous", "anonymous", "data", source="none")
PROBES = frozenset({"/health", "/liveness", "/readiness", "/metrics", "/health_generate"})
READ_METHODS = frozenset({"GET", "HEAD"})
_CREDENTIAL_HEADERS = (b"authorization", b"x-api-key")


def route_class(path: str) -> RouteClass:
    if path in PROBES:
        return "probe"
    if path in ("/generate", "/rerank") or (path.startswith("/v1/") and not path.startswith("/v1/tokenizers")):
        return "data"
    return "control"


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class Guard:
    def __init__(self, settings: SecuritySettings, *, listen_host: str = "127.0.0.1") -> None:
        settings.validate()
        data = [(settings.api_key, Principal("api-key", "api-key", "data"))] if settings.api_key else []
        data += parse_tenant_keys(settings.tenant_api_key)
        self.data = KeyRing(data)
        self.control = KeyRing(parse_control_plane_keys(settings.control_plane_api_keys))
        if self.data.digests() & self.control.digests():
            raise ValueError("a control-plane key may not also be a data-plane key")
        self.jwt: JwtVerifier | None = None
        if settings.jwt_issuer and settings.jwt_audience:
            self.jwt = JwtVerifier(
                issuer=settings.jwt_issuer, audience=settings.jwt_audience, jwks_uri=settings.jwt_jwks_uri,
                role_claim=settings.jwt_role_claim, role_mapping=parse_role_mapping(settings.jwt_role_mapping),
            )
        self.audit = settings.audit_enabled
        self.tally: dict[tuple[str, str, str], int] = {}  # (route class, caller, outcome) -> requests
        any_credential = bool(self.data or self.control or self.jwt)
        self.public_probes = settings.public_health_metrics or not any_credential
        if self.control or self.jwt:
            self.control_mode = "keys"
        elif self.data or not _is_loopback(listen_host):
            self.control_mode = "deny"
        else:
            self.control_mode = "open"

    @classmethod
    def build(cls, settings: SecuritySettings, *, listen_host: str = "127.0.0.1") -> Guard | None:
        """The guard, or None when nothing needs guarding (no credential, loopback only)."""
        guard = cls(settings, listen_host=listen_host)
        if not guard.data and guard.public_probes and guard.control_mode == "open":
            return None
        return guard

    async def admit(self, scope: Scope, send: Send) -> bool:
        """Let the request on (True), or answer 401/403 itself (False)."""
        path = scope["path"]
        kind = route_class(path)
        if kind == "probe" and self.public_probes:
            return True
        token = _credential(scope["headers"], path.startswith("/v1/messages"))
        method = scope.get("method", "GET")  # a WebSocket handshake is a GET
        try:
            if kind == "data":  # the hot case, decided without another coroutine
                principal = self._lookup(self.data, token, "API key") if self.data else ANONYMOUS
            else:
                principal = await self._principal(kind, token, method)
        except SmgError as exc:
            if kind == "control":  # the refused caller, when the key is a known one
                known = (self.data.lookup(token) or self.control.lookup(token)) if token is not None else None
                audit(self.audit, known, method, path, exc.status_code)
            key = (kind, "-", str(exc.status_code))
            self.tally[key] = self.tally.get(key, 0) + 1
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})  # policy violation: 403 to the client
            else:
                await _send_refusal(send, exc)
            return False
        key = (kind, principal.label, "allowed")  # JWT callers as one label: no unbounded series
        self.tally[key] = self.tally.get(key, 0) + 1
        scope["smg.principal"] = principal
        if principal.tenant is not None:
            scope["smg.tenant"] = principal.tenant
        if token is not None and principal is not ANONYMOUS:  # a key the gateway used is not passed on
            scope["headers"] = [(k, v) for k, v in scope["headers"] if k not in _CREDENTIAL_HEADERS]
        return True

    async def _principal(self, kind: RouteClass, token: bytes | None, method: str) -> Principal:
        """A probe's or control-plane route's caller (JWTs are verified here)."""
        if kind == "probe":
            if token is not None and self.jwt is not None and looks_like_jwt(token):
                return await self.jwt.verify(token)
            found = self.data.lookup(token) if token is not None else None
            return found or self._lookup(self.control, token, "credential")
        if self.control_mode == "open":
            return ANONYMOUS
        if self.control_mode == "deny":
            raise Forbidden("the control plane is disabled: configure --control-plane-api-keys or "
                            "--jwt-issuer to use it")
        if token is not None and self.jwt is not None and looks_like_jwt(token):
            principal = await self.jwt.verify(token)
        else:
            if token is not None and self.data.lookup(token) is not None:
                raise Forbidden("a data-plane API key cannot use the control plane")
            principal = self._lookup(self.control, token, "control-plane credential")
        if principal.role != "admin" and method not in READ_METHODS:
            raise Forbidden("this route needs the admin role")
        return principal

    def metrics(self) -> bytes:
        """``smg_auth_requests_total`` in the Prometheus text format (appended to /metrics)."""
        lines = ["# HELP smg_auth_requests_total requests by route class, caller (tenant or key id) and "
                 "auth outcome", "# TYPE smg_auth_requests_total counter"]
        for (kind, caller, outcome), n in sorted(self.tally.items()):
            lines.append(f'smg_auth_requests_total{{route="{kind}",caller="{_label(caller)}",'
                         f'outcome="{outcome}"}} {n}')
        return ("\n".join(lines) + "\n").encode()

    @staticmethod
    def _lookup(ring: KeyRing, token: bytes | None, what: str) -> Principal:
        if token is None:
            raise Unauthorized(f"missing {what}: send Authorization: Bearer <key>")
        principal = ring.lookup(token)
        if principal is None:
            raise Unauthorized(f"invalid {what}")
        return principal


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _credential(headers: list[tuple[bytes, bytes]], anthropic: bool) -> bytes | None:
    for name, value in headers:
        if name == b"authorization":
            scheme, _, token = value.strip().partition(b" ")
            if scheme.lower() == b"bearer" and token.strip():
                return token.strip()
        elif anthropic and name == b"x-api-key" and value.strip():
            return value.strip()
    return None


async def _send_refusal(send: Send, exc: SmgError) -> None:
    body = error_body(exc.status_code, exc.message, exc.error_type)
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    if exc.status_code == 401:
        headers.append((b"www-authenticate", b'Bearer realm="smg"'))
    await send({"type": "http.response.start", "status": exc.status_code, "headers": headers})
    await send({"type": "http.response.body", "body": body})
