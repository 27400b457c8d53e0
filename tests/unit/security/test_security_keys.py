"""Key parsing and lookup: digests, constant-time comparison of every entry, no key in errors."""

from __future__ import annotations

import hmac

import pytest

from smg.config import SecuritySettings
from smg.security import keys
from smg.security.keys import KeyRing, Principal, parse_control_plane_keys, parse_role_mapping, parse_tenant_keys


def test_control_plane_keys_parse_like_the_rust_gateway() -> None:
    [(key, p)] = parse_control_plane_keys(["k1:Service Account:ADMIN:se:cr:et"])
    assert key == "se:cr:et" and p == Principal("k1", "Service Account", "admin", source="control_key")


@pytest.mark.parametrize("entry", ["k1:name:root:topsecret", "k1:name:topsecret", "k1:name:admin:"])
def test_bad_control_plane_entries_never_echo_the_key(entry: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_control_plane_keys([entry])
    assert "topsecret" not in str(info.value) and "root" not in str(info.value)


def test_tenant_keys_split_at_the_first_colon_and_trim() -> None:
    [(key, p)] = parse_tenant_keys([" team-a : k:ey "])
    assert key == "k:ey" and p.tenant == "auth:team-a" and p.role == "data"
    for bad in ("nocolon-secret", ":secret", "team:"):
        with pytest.raises(ValueError) as info:
            parse_tenant_keys([bad])
        assert "secret" not in str(info.value)


def test_role_mapping() -> None:
    assert parse_role_mapping(["Gateway.Admin=Admin", "g=user"]) == {"Gateway.Admin": "admin", "g": "user"}
    with pytest.raises(ValueError):
        parse_role_mapping(["Gateway.Admin=root"])
    with pytest.raises(ValueError):
        parse_role_mapping(["no-equals"])


def test_lookup_compares_every_entry_by_digest(monkeypatch) -> None:
    ring = KeyRing([(f"key-{i}", Principal(str(i), str(i), "data")) for i in range(5)])
    compared = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        compared.append((len(a), len(b)))
        return real(a, b)

    monkeypatch.setattr(keys.hmac, "compare_digest", spy)
    assert ring.lookup(b"key-0").id == "0"  # the first entry matches, the other four are still compared
    assert compared == [(32, 32)] * 5
    assert ring.lookup(b"key-9") is None and ring.lookup(b"") is None
    assert all(d not in repr(ring.digests()) for d in ("key-0", "key-1"))


def test_the_same_key_twice_is_refused() -> None:
    with pytest.raises(ValueError) as info:
        KeyRing([("same", Principal("a", "a", "data")), ("same", Principal("b", "b", "data"))])
    assert "same" not in str(info.value).replace("the same key", "")


def test_a_key_may_not_be_both_data_and_control() -> None:
    from smg.security.guard import Guard

    with pytest.raises(ValueError):
        Guard(SecuritySettings(api_key="shared", control_plane_api_keys=("a:b:admin:shared",)))


def test_settings_that_cannot_work_together() -> None:
    for bad in (SecuritySettings(tls_cert_path="c.pem"), SecuritySettings(client_key_path="k.pem"),
                SecuritySettings(jwt_issuer="https://idp"), SecuritySettings(api_key="  ")):
        with pytest.raises(ValueError):
            bad.validate()
    for url in ("http://idp.example", "ftp://idp.example", "http://10.0.0.1"):
        with pytest.raises(ValueError, match="https"):
            SecuritySettings(jwt_issuer=url, jwt_audience="a").validate()
    SecuritySettings(jwt_issuer="http://127.0.0.1:9", jwt_audience="a", jwt_jwks_uri="https://idp/keys").validate()
    assert SecuritySettings(disable_audit_logging=True).audit_enabled is False
    assert SecuritySettings(control_plane_audit_enabled=False).audit_enabled is False
    assert SecuritySettings().audit_enabled is True


def test_flags_and_environment_reach_the_settings() -> None:
    from smg.config import GatewayConfig

    config = GatewayConfig.from_env({"SMG_API_KEY": "k", "SMG_TENANT_API_KEY": "a:1,b:2",
                                     "SMG_WORKER_ALLOW_HOSTS": "10.0.0.0/8 workers.internal"})
    assert config.security.api_key == "k" and config.security.tenant_api_key == ("a:1", "b:2")
    assert config.security.worker_allow_hosts == ("10.0.0.0/8", "workers.internal")


def test_keys_stay_out_of_the_config_repr() -> None:
    from smg.config import GatewayConfig

    config = GatewayConfig.from_mapping({"api_key": "sk-hidden", "tenant_api_key": ["t:tk-hidden"],
                                         "control_plane_api_keys": ["a:b:admin:ck-hidden"]})
    assert "hidden" not in repr(config) and config.security.api_key == "sk-hidden"
