"""Control-plane JWTs (OIDC): signature by the issuer's JWKS, ``iss``, ``aud``, ``exp``.

The JWKS comes over HTTP(S) from ``--jwt-jwks-uri`` or, without it, from the issuer's
``/.well-known/openid-configuration``. Keys are cached by ``kid``; an unknown ``kid``
refetches the set, but at most once per :data:`REFRESH_SECS`, so made-up tokens cannot
turn the gateway into a load generator against the identity provider. Only asymmetric
algorithms are accepted (no ``none``, no HMAC with a public key as the secret). Fetches
run in a thread: the event loop never waits on the network.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from collections.abc import Mapping
from typing import Any

import jwt

from smg.security.errors import Forbidden, Unauthorized
from smg.security.keys import Principal, Role

__all__ = ["JwtVerifier", "looks_like_jwt"]

ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")
REFRESH_SECS = 30.0
FETCH_TIMEOUT_SECS = 5.0
LEEWAY_SECS = 30
MAX_JWKS_BYTES = 1 << 20


def looks_like_jwt(token: bytes) -> bool:
    return token.count(b".") == 2 and token.startswith(b"ey")


def _fetch_json(url: str) -> Any:
    if not url.startswith(("https://", "http://")):
        raise ValueError("JWKS and OIDC discovery URLs must be http(s)")
    req = urllib.request.Request(url, headers={"Accept": "application/json"})
    with urllib.request.urlopen(req, timeout=FETCH_TIMEOUT_SECS) as resp:  # noqa: S310 - scheme checked above
        return json.loads(resp.read(MAX_JWKS_BYTES))


class JwtVerifier:
    def __init__(self, *, issuer: str, audience: str, jwks_uri: str | None, role_claim: str,
                 role_mapping: Mapping[str, Role]) -> None:
        self.issuer = issuer
        self.audience = audience
        self.jwks_uri = jwks_uri
        self.role_claim = role_claim
        self.role_mapping = dict(role_mapping)
        self._keys: dict[str | None, jwt.PyJWK] = {}
        self._fetched_at = float("-inf")
        self._lock = asyncio.Lock()

    async def verify(self, token: bytes) -> Principal:
        """The principal the token names, or :class:`Unauthorized`/:class:`Forbidden`."""
        text = token.decode("ascii", "replace")
        try:
            header = jwt.get_unverified_header(text)
        except jwt.PyJWTError:
            raise Unauthorized("invalid bearer token") from None
        alg = header.get("alg")
        if alg not in ALGORITHMS:
            raise Unauthorized("bearer token signed with an algorithm that is not accepted")
        key = await self._key(header.get("kid"))
        try:
            claims = jwt.decode(
                text, key.key, algorithms=[alg], audience=self.audience, issuer=self.issuer,
                leeway=LEEWAY_SECS, options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthorized("bearer token has expired") from None
        except jwt.InvalidAudienceError:
            raise Unauthorized("bearer token is for another audience") from None
        except jwt.InvalidIssuerError:
            raise Unauthorized("bearer token is from another issuer") from None
        except jwt.PyJWTError:
            raise Unauthorized("invalid bearer token") from None
        role = self._role(claims.get(self.role_claim))
        subject = str(claims.get("sub") or "unknown")
        if role is None:
            raise Forbidden("bearer token grants no gateway role")
        name = str(claims.get("preferred_username") or claims.get("email") or subject)
        return Principal(subject, name, role, source="jwt")

    def _role(self, claim: object) -> Role | None:
        values = [claim] if isinstance(claim, str) else claim if isinstance(claim, list) else []
        roles = set()
        for value in values:
            if not isinstance(value, str):
                continue
            mapped = self.role_mapping.get(value) or (value.lower() if value.lower() in ("admin", "user") else None)
            if mapped is not None:
                roles.add(mapped)
        return "admin" if "admin" in roles else "user" if "user" in roles else None

    async def _key(self, kid: str | None) -> jwt.PyJWK:
        key = self._find(kid)
        if key is not None:
            return key
        async with self._lock:
            key = self._find(kid)
            if key is None and time.monotonic() - self._fetched_at >= REFRESH_SECS:
                self._fetched_at = time.monotonic()
                try:
                    self._keys = await asyncio.to_thread(self._load)
                except (OSError, ValueError, jwt.PyJWTError):
                    raise Unauthorized("the issuer's signing keys could not be fetched") from None
                key = self._find(kid)
        if key is None:
            raise Unauthorized("bearer token signed by an unknown key")
        return key

    def _find(self, kid: str | None) -> jwt.PyJWK | None:
        if kid is None and len(self._keys) == 1:
            return next(iter(self._keys.values()))
        return self._keys.get(kid)

    def _load(self) -> dict[str | None, jwt.PyJWK]:
        uri = self.jwks_uri
        if uri is None:
            config = _fetch_json(self.issuer.rstrip("/") + "/.well-known/openid-configuration")
            uri = config.get("jwks_uri") if isinstance(config, dict) else None
            if not isinstance(uri, str):
                raise ValueError("OIDC discovery names no jwks_uri")
            if uri.startswith("http://") and not self.issuer.startswith("http://"):
                raise ValueError("an https issuer's discovery may not send the JWKS fetch to plain http")
            self.jwks_uri = uri
        data = _fetch_json(uri)
        keys: dict[str | None, jwt.PyJWK] = {}
        for jwk in data.get("keys", []) if isinstance(data, dict) else []:
            if not isinstance(jwk, dict) or jwk.get("kty") == "oct" or jwk.get("use", "sig") != "sig":
                continue  # symmetric keys are never accepted from a JWKS
            try:
                keys[jwk.get("kid")] = jwt.PyJWK(jwk)
            except jwt.PyJWTError:
                continue
        return keys
