"""Worker-URL rules: scheme per mode, no query or fragment, the allow-list, the self-loop, redaction."""

from __future__ import annotations

import pytest

from smg.errors import BadRequest
from smg.security.errors import Forbidden
from smg.security.urls import (
    GRPC_SCHEMES,
    HTTP_SCHEMES,
    WorkerAllowList,
    parse_worker_url,
    redact,
    redact_text,
)


def test_redact_hides_user_info_only() -> None:
    assert redact("http://user:pw@host:8000/p") == "http://***@host:8000/p"
    assert redact("grpc://10.0.0.1:5000") == "grpc://10.0.0.1:5000"
    assert redact_text("worker http://u:p@a:1 and https://t@b failed") == "worker http://***@a:1 and https://***@b failed"


@pytest.mark.parametrize(("url", "schemes"), [
    ("http://host/path?x=", HTTP_SCHEMES), ("http://host/#frag", HTTP_SCHEMES), ("http://host?", HTTP_SCHEMES),
    ("ftp://host", HTTP_SCHEMES), ("grpc://host:1", HTTP_SCHEMES), ("http://host:1", GRPC_SCHEMES),
    ("http://ho st", HTTP_SCHEMES), ("http://host:99999", HTTP_SCHEMES), ("http:///path", HTTP_SCHEMES),
    ("http://host\r\nx", HTTP_SCHEMES), ("grpc://host:1/path", GRPC_SCHEMES), ("http://a\\@b", HTTP_SCHEMES),
])
def test_bad_worker_urls_are_400(url: str, schemes: tuple[str, ...]) -> None:
    with pytest.raises(BadRequest):
        parse_worker_url(url, schemes=schemes)


def test_a_good_url_keeps_its_path_as_a_prefix() -> None:
    w = parse_worker_url("https://User:pw@Worker.Example:8443/prefix/", schemes=HTTP_SCHEMES)
    assert (w.url, w.host, w.port, w.scheme) == ("https://User:pw@Worker.Example:8443/prefix", "worker.example", 8443, "https")
    assert parse_worker_url("grpc://[::1]:50051", schemes=GRPC_SCHEMES).host == "::1"


async def _check(allow: WorkerAllowList, url: str, listening=(("127.0.0.1", 30000),)) -> None:
    await allow.check(parse_worker_url(url, schemes=HTTP_SCHEMES + GRPC_SCHEMES), listening)


async def test_default_allows_the_start_up_hosts_and_loopback_only_with_a_loopback_worker() -> None:
    local = WorkerAllowList((), ["http://127.0.0.1:8000"])
    await _check(local, "http://127.0.0.1:9000")
    await _check(local, "http://localhost:9000")
    await _check(local, "http://[::1]:9000")
    for url in ("http://10.0.0.7:80", "http://169.254.169.254/latest", "http://example.com"):
        with pytest.raises(Forbidden):
            await _check(local, url)
    remote = WorkerAllowList((), ["http://10.1.2.3:8000", "grpc://gpu-1.internal:50051"])
    await _check(remote, "http://10.1.2.3:9000")
    await _check(remote, "grpc://gpu-1.internal:50052")
    for url in ("http://127.0.0.1:9000", "http://localhost:1", "http://10.1.2.4:8000"):
        with pytest.raises(Forbidden):
            await _check(remote, url)
    with pytest.raises(Forbidden):
        await _check(WorkerAllowList((), []), "http://127.0.0.1:1")  # no start-up worker: nothing


async def test_explicit_hosts_and_cidrs() -> None:
    allow = WorkerAllowList(["10.0.0.0/8", "gpu.example", "::1"], ["http://127.0.0.1:1"])
    await _check(allow, "http://10.200.0.1:8000")
    await _check(allow, "http://GPU.example:8000")
    await _check(allow, "http://[::1]:8000")
    for url in ("http://127.0.0.1:8000", "http://11.0.0.1", "http://other.example"):
        with pytest.raises(Forbidden):
            await _check(allow, url)  # explicit list: the start-up loopback worker adds nothing


async def test_user_info_does_not_pass_for_the_host() -> None:
    allow = WorkerAllowList(["gpu.example"], [])
    for url in ("http://gpu.example@10.0.0.1", "http://gpu.example:80@10.0.0.1:80", "http://u:p@10.0.0.1/gpu.example"):
        with pytest.raises(Forbidden):
            await _check(allow, url)
    await _check(allow, "http://10.0.0.1@gpu.example:8000")


async def test_star_allows_any_host_but_the_gateway() -> None:
    allow = WorkerAllowList(["*"], [])
    await _check(allow, "http://10.9.8.7:80")
    await _check(allow, "http://127.0.0.1:30001")
    with pytest.raises(Forbidden, match="this gateway"):
        await _check(allow, "http://127.0.0.1:30000")


async def test_the_gateway_itself_is_never_a_worker() -> None:
    allow = WorkerAllowList(["127.0.0.0/8", "localhost", "0.0.0.0/0"], [])
    for url in ("http://127.0.0.1:30000", "http://localhost:30000", "http://127.0.0.1:30000/v1"):
        with pytest.raises(Forbidden, match="this gateway"):
            await _check(allow, url)
    await _check(allow, "http://127.0.0.1:30001")
    # listening on every interface: any local address on the port is the gateway
    wildcard = (("0.0.0.0", 8080),)
    for url in ("http://127.0.0.1:8080", "http://127.0.0.2:8080", "http://localhost:8080"):
        with pytest.raises(Forbidden, match="this gateway"):
            await _check(allow, url, wildcard)
    await _check(allow, "http://192.0.2.1:8080", wildcard)  # TEST-NET: not this machine


@pytest.mark.parametrize("url", ["http://127.0.0.1:1/v1?x=", "http://127.0.0.1:1#f", "grpcs://127.0.0.1:1"])
async def test_start_up_workers_follow_the_same_rules(url: str) -> None:
    from smg.config import GatewayConfig
    from smg.http.state import AppState

    with pytest.raises(BadRequest):
        await AppState.start(GatewayConfig.from_mapping({"worker_urls": [url]}))


def test_log_records_are_redacted_whoever_logs_them(caplog) -> None:
    import logging

    from smg.security.urls import redact_logs

    redact_logs()
    redact_logs()  # idempotent
    caplog.set_level(logging.DEBUG)
    logging.getLogger("smg.router.health").info("worker %s: %s", "http://u:hunter2@10.0.0.1:8000", "failed")
    logging.getLogger("other").warning("probe of https://tok@example.com/x failed")
    logging.getLogger("other").info("mail %s and %d", "someone@example.com", 3)  # not a URL: untouched
    messages = [r.getMessage() for r in caplog.records]
    assert messages == ["worker http://***@10.0.0.1:8000: failed", "probe of https://***@example.com/x failed",
                        "mail someone@example.com and 3"]


async def test_a_start_up_worker_may_not_be_the_gateway_itself() -> None:
    from smg.config import GatewayConfig
    from smg.http.state import AppState

    with pytest.raises(ValueError, match="own address"):
        await AppState.start(GatewayConfig.from_mapping({"worker_urls": ["http://localhost:30123"], "port": 30123}))
