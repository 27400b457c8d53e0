"""Control-plane JWTs against a JWKS endpoint served in the test (keys made with cryptography)."""

from __future__ import annotations

import time

import jwt
import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route

from smg.serve import ServerThread
from tests.unit.security._authlib import call

AUDIENCE = "smg-gateway"


class Idp:
    """An identity provider: an RSA signing key, its JWKS and an OIDC discovery document."""

    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.issuer = ""
        self.jwks_hits = 0

    def app(self) -> Starlette:
        async def discovery(request):
            return Response(orjson.dumps({"issuer": self.issuer, "jwks_uri": self.issuer + "/keys"}),
                            media_type="application/json")

        async def keys(request):
            self.jwks_hits += 1
            jwk = orjson.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
            return Response(orjson.dumps({"keys": [{**jwk, "kid": "k1", "use": "sig", "alg": "RS256"}]}),
                            media_type="application/json")

        return Starlette(routes=[Route("/.well-known/openid-configuration", discovery), Route("/keys", keys)])

    def token(self, *, key=None, kid: str = "k1", alg: str = "RS256", **claims) -> str:
        now = int(time.time())
        body = {"iss": self.issuer, "aud": AUDIENCE, "sub": "alice", "iat": now, "exp": now + 300,
                "roles": ["Gateway.Admin"], **claims}
        body = {k: v for k, v in body.items() if v is not None}
        return jwt.encode(body, key or self.key, algorithm=alg, headers={"kid": kid})


@pytest.fixture
def idp(servers) -> Idp:
    provider = Idp()
    thread = ServerThread(provider.app())
    servers.threads.append(thread)
    provider.issuer = thread.start()
    return provider


@pytest.fixture
def gateway(servers, idp):
    stub = servers.stub("a")
    return servers.gateway(worker_urls=[stub.url], jwt_issuer=idp.issuer, jwt_audience=AUDIENCE,
                           jwt_role_mapping=["Gateway.Admin=admin", "Gateway.Reader=user"])


async def test_a_valid_admin_token_manages_workers(gateway, idp):
    token = idp.token()
    status, body, _ = await call("GET", gateway + "/workers", key=token)
    assert status == 200 and body["total"] == 1
    status, _, _ = await call("POST", gateway + "/flush_cache", {}, key=token)
    assert status == 200
    assert idp.jwks_hits == 1  # discovered once, then cached


async def test_a_reader_token_may_only_read(gateway, idp):
    token = idp.token(roles=["Gateway.Reader"])
    assert (await call("GET", gateway + "/workers", key=token))[0] == 200
    assert (await call("POST", gateway + "/flush_cache", {}, key=token))[0] == 403
    status, body, _ = await call("GET", gateway + "/workers", key=idp.token(roles=["Other"]))
    assert status == 403 and "no gateway role" in body["error"]["message"]


@pytest.mark.parametrize("bad", ["issuer", "audience", "expired", "signature", "unknown_kid", "hs256", "none",
                                 "no_exp", "garbage"])
async def test_bad_tokens_are_refused(gateway, idp, bad):
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = {
        "issuer": lambda: idp.token(iss="https://evil.example"),
        "audience": lambda: idp.token(aud="someone-else"),
        "expired": lambda: idp.token(exp=int(time.time()) - 3600),
        "signature": lambda: idp.token(key=other),
        "unknown_kid": lambda: idp.token(key=other, kid="k2"),
        # the public key as an HMAC secret: the classic algorithm-confusion forgery
        "hs256": lambda: jwt.encode({"iss": idp.issuer, "aud": AUDIENCE, "exp": int(time.time()) + 60,
                                     "roles": ["Gateway.Admin"]}, "a-shared-secret-that-is-long-enough",
                                    algorithm="HS256", headers={"kid": "k1"}),
        "none": lambda: jwt.encode({"iss": idp.issuer, "aud": AUDIENCE, "exp": int(time.time()) + 60,
                                    "roles": ["Gateway.Admin"]}, None, algorithm="none"),
        "no_exp": lambda: idp.token(exp=None),
        "garbage": lambda: "eyJhbGciOi.not-a.token",
    }[bad]()
    status, body, headers = await call("POST", gateway + "/flush_cache", {}, key=token)
    assert status == 401, body
    assert body["error"]["type"] == "authentication_error" and token not in repr(body)


async def test_unknown_key_ids_do_not_hammer_the_jwks(gateway, idp):
    other = ec.generate_private_key(ec.SECP256R1())
    for i in range(5):
        assert (await call("GET", gateway + "/workers", key=idp.token(key=other, alg="ES256", kid=f"x{i}")))[0] == 401
    assert idp.jwks_hits == 1  # one refetch per 30 s at most


async def test_explicit_jwks_uri_and_tokens_on_data_routes(servers, idp):
    stub = servers.stub("a")
    gw = servers.gateway(worker_urls=[stub.url], jwt_issuer=idp.issuer, jwt_audience=AUDIENCE,
                         jwt_jwks_uri=idp.issuer + "/keys", jwt_role_claim="groups",
                         jwt_role_mapping=["ops=admin"])
    assert (await call("GET", gw + "/get_loads", key=idp.token(groups=["ops"])))[0] == 200
    assert (await call("GET", gw + "/get_loads", key=idp.token()))[0] == 403  # roles is not the claim here
    # JWT auth is for the control plane: with no data-plane key the data plane stays open
    status, _, _ = await call("POST", gw + "/v1/chat/completions",
                              {"model": "stub-model", "messages": [{"role": "user", "content": "x"}]})
    assert status == 200


async def test_a_token_opens_the_probes_too(gateway, idp):
    assert (await call("GET", gateway + "/metrics"))[0] == 401
    assert (await call("GET", gateway + "/metrics", key=idp.token(roles=["Gateway.Reader"])))[0] == 200
    assert (await call("GET", gateway + "/readiness", key=idp.token(aud="other")))[0] == 401
