"""Which cluster configuration discovery uses (smg.discovery.api_client)."""

from __future__ import annotations

import pytest

pytest.importorskip("kubernetes_asyncio")

from smg.discovery import api_client  # noqa: E402


async def test_a_kubeconfig_file(standin, kubeconfig):
    api = await api_client(kubeconfig)
    try:
        assert api.configuration.host == standin.url
        assert api.configuration.api_key["BearerToken"].endswith("stand-in-token")
    finally:
        await api.close()


async def test_in_cluster_config_inside_a_pod(tmp_path, monkeypatch):
    from kubernetes_asyncio.config import incluster_config

    from tests.unit.security._certs import make_pki

    token, ca = tmp_path / "token", make_pki(tmp_path).ca  # a real CA certificate, made here
    token.write_text("pod-token")
    monkeypatch.setattr(incluster_config, "SERVICE_TOKEN_FILENAME", str(token))
    monkeypatch.setattr(incluster_config, "SERVICE_CERT_FILENAME", str(ca))
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    api = await api_client(None)
    try:
        assert api.configuration.host == "https://10.96.0.1:443"
        assert api.configuration.ssl_ca_cert == str(ca)
        assert api.configuration.api_key["BearerToken"].endswith("pod-token")
    finally:
        await api.close()


async def test_a_missing_kubeconfig_is_an_error(tmp_path, monkeypatch):
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(Exception, match="(?i)config"):
        await api_client(str(tmp_path / "absent"))
