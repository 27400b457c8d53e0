"""What a pod means (smg.discovery.pods) and the discovery settings (smg.config.discovery)."""

from __future__ import annotations

import pytest
from k8s_standin import pod

from smg.config import GatewayConfig
from smg.config.discovery import parse_model_id_from, parse_selector
from smg.discovery.pods import is_ready, pod_workers, selector_string


def workers(p, role="regular", port=80, scheme="http", model_from=None):
    return pod_workers(p, role=role, port=port, scheme=scheme, model_from=model_from)


def test_ready_means_running_ready_not_terminating_with_an_ip():
    assert is_ready(pod("a"))
    assert not is_ready(pod("a", ready=False))
    assert not is_ready(pod("a", phase="Pending"))
    assert not is_ready(pod("a", phase="Succeeded"))
    no_ip = pod("a")
    no_ip["status"]["podIP"] = None
    assert not is_ready(no_ip)
    terminating = pod("a")
    terminating["metadata"]["deletionTimestamp"] = "2026-12-07T00:00:00Z"
    assert not is_ready(terminating)
    no_conditions = pod("a")
    del no_conditions["status"]["conditions"]
    assert not is_ready(no_conditions)


def test_one_worker_on_the_discovery_port_and_none_when_not_ready():
    (w,) = workers(pod("a", "10.0.0.7"), port=8000)
    assert (w.url, w.role, w.pod, w.model_id, w.bootstrap_port) == ("http://10.0.0.7:8000", "regular", "default/a", None, None)
    assert dict(w.labels) == {"pod": "a", "namespace": "default"}
    assert workers(pod("a", ready=False)) == []


def test_worker_ports_annotation_gives_one_worker_per_port():
    p = pod("multi", "10.0.0.8", annotations={"smg.ai/worker-ports": "8000, 8001,bad,8002"})
    assert [w.url for w in workers(p, port=80)] == ["http://10.0.0.8:8000", "http://10.0.0.8:8001", "http://10.0.0.8:8002"]


def test_grpc_scheme_and_ipv6_host():
    (w,) = workers(pod("a", "fd00::5"), port=30001, scheme="grpc")
    assert w.url == "grpc://[fd00::5]:30001"


def test_bootstrap_port_annotation_on_prefill_pods_only():
    p = pod("p", annotations={"sglang.ai/bootstrap-port": "8998"})
    assert workers(p, role="prefill")[0].bootstrap_port == 8998
    assert workers(p, role="decode")[0].bootstrap_port is None
    assert workers(pod("p", annotations={"sglang.ai/bootstrap-port": "x"}), role="prefill")[0].bootstrap_port is None
    assert workers(pod("p"), role="prefill")[0].bootstrap_port is None


def test_model_id_from_namespace_label_annotation():
    p = pod("a", namespace="llama-70b", labels={"model": "m-label"}, annotations={"smg.ai/model": "m-ann"})
    assert workers(p, model_from=parse_model_id_from("namespace"))[0].model_id == "llama-70b"
    assert workers(p, model_from=parse_model_id_from("label:model"))[0].model_id == "m-label"
    assert workers(p, model_from=parse_model_id_from("annotation:smg.ai/model"))[0].model_id == "m-ann"
    assert workers(p, model_from=parse_model_id_from("label:missing"))[0].model_id is None


@pytest.mark.parametrize("spec", ["label", "label:", "annotations:x", "ns", ""])
def test_bad_model_id_from_is_refused(spec):
    with pytest.raises(ValueError, match="model-id-from"):
        parse_model_id_from(spec)


def test_selectors():
    assert parse_selector(("app=sglang", "tier = gpu")) == {"app": "sglang", "tier": "gpu"}
    assert selector_string({"tier": "gpu", "app": "sglang"}) == "app=sglang,tier=gpu"
    with pytest.raises(ValueError, match="key=value"):
        parse_selector(("app",))


def test_settings_from_flags_and_validation():
    c = GatewayConfig.from_mapping({"service_discovery": True, "selector": ["app=w"], "model_id_from": "namespace"})
    assert c.discovery.selectors(pd=False) == [("regular", {"app": "w"})]
    c.discovery.validate(pd=False)
    with pytest.raises(ValueError, match="--prefill-selector and --decode-selector"):
        c.discovery.validate(pd=True)
    pd = GatewayConfig.from_mapping({"service_discovery": True, "prefill_selector": ["r=p"], "decode_selector": ["r=d"]})
    assert pd.discovery.selectors(pd=True) == [("prefill", {"r": "p"}), ("decode", {"r": "d"})]
    with pytest.raises(ValueError, match="needs --selector"):
        GatewayConfig.from_mapping({"service_discovery": True}).discovery.validate(pd=False)
    assert not GatewayConfig().grpc_mode()
    assert GatewayConfig.from_mapping({"service_discovery": True, "discovery_scheme": "grpc"}).grpc_mode()


def test_bad_discovery_settings_stop_smg_serve_before_start():
    from smg.config.validate import problems

    assert "--service-discovery needs --selector key=value" in problems(
        GatewayConfig.from_mapping({"service_discovery": True}))
    bad = GatewayConfig.from_mapping({"service_discovery": True, "selector": ["a=b"], "model_id_from": "pod"})
    assert any("--model-id-from 'pod'" in p for p in problems(bad))
    assert problems(GatewayConfig.from_mapping({"service_discovery": True, "selector": ["a=b"]})) == []
