"""PD pair selection: role-filtered pools, a policy per pool, exclusion, rooms."""

from __future__ import annotations

from smg.router import HealthStatus, LoadReport, RequestInfo, Worker, WorkerRegistry, WorkerRole, create_policy
from smg.router.pd import (
    ROOM_BITS_GRPC,
    PDRouter,
    bootstrap_host,
    new_room,
    new_rooms,
)


def _registry(n_prefill: int = 2, n_decode: int = 2, n_regular: int = 1, model: str | None = None) -> WorkerRegistry:
    reg = WorkerRegistry()
    for i in range(n_prefill):
        reg.add(Worker(f"http://10.0.0.{i + 1}:30000", role=WorkerRole.PREFILL, bootstrap_port=8998 + i, model_id=model))
    for i in range(n_decode):
        reg.add(Worker(f"http://10.0.1.{i + 1}:30000", role=WorkerRole.DECODE, model_id=model))
    for i in range(n_regular):
        reg.add(Worker(f"http://10.0.2.{i + 1}:30000", model_id=model))
    return reg


def test_pairs_come_from_the_right_pools() -> None:
    reg = _registry()
    pd = PDRouter(reg, create_policy("round_robin"), create_policy("round_robin"))
    seen_p, seen_d = set(), set()
    for _ in range(8):
        pair = pd.select_pair(RequestInfo(text="hello"))
        assert pair is not None
        assert pair.prefill.role is WorkerRole.PREFILL
        assert pair.decode.role is WorkerRole.DECODE
        seen_p.add(pair.prefill.url)
        seen_d.add(pair.decode.url)
    # round robin over each pool separately: both members of both pools are used
    assert seen_p == {w.url for w in reg.available(role=WorkerRole.PREFILL)}
    assert seen_d == {w.url for w in reg.available(role=WorkerRole.DECODE)}


def test_each_pool_uses_its_own_policy() -> None:
    reg = _registry(n_prefill=3, n_decode=3)
    decode_ws = reg.available(role=WorkerRole.DECODE)
    busy = {w.id for w in decode_ws[:2]}
    for w in decode_ws:
        if w.id in busy:
            w.load = 50
    pd = PDRouter(reg, create_policy("consistent_hash"), create_policy("least_load"))
    info = RequestInfo(text="same session", user="alice")
    pairs = [pd.select_pair(info) for _ in range(5)]
    assert len({p.prefill.id for p in pairs}) == 1  # consistent hash: one prefill worker per user
    assert all(p.decode.id == decode_ws[2].id for p in pairs)  # least load: the idle decode worker


def test_exclusion_moves_both_legs_until_a_pool_is_exhausted() -> None:
    reg = _registry(n_prefill=2, n_decode=3)
    pd = PDRouter(reg, create_policy("random"), create_policy("random"))
    first = pd.select_pair(RequestInfo())
    second = pd.select_pair(RequestInfo(), exclude=first.ids)
    assert second.prefill.id != first.prefill.id
    assert second.decode.id != first.decode.id
    # every prefill worker tried: they are candidates again rather than failing the request
    third = pd.select_pair(RequestInfo(), exclude=[*first.ids, *second.ids])
    assert third.prefill.id in {first.prefill.id, second.prefill.id}
    assert third.decode.id not in {first.decode.id, second.decode.id}


def test_unavailable_pool_names_the_missing_role() -> None:
    reg = _registry(n_prefill=1, n_decode=1, model="m")
    pd = PDRouter(reg, create_policy("random"), create_policy("random"))
    assert pd.select_pair(RequestInfo(model="other")) is None
    reg.available(role=WorkerRole.DECODE)[0].status = HealthStatus.NOT_READY
    assert pd.select_pair(RequestInfo(model="m")) is None
    reason = pd.unavailable_reason(RequestInfo(model="m"))
    assert "decode" in reason and "prefill" not in reason and "'m'" in reason
    reg.available(role=WorkerRole.PREFILL)[0].status = HealthStatus.FAILED
    assert "prefill or decode" in pd.unavailable_reason(RequestInfo(model="m"))


def test_regular_workers_are_never_paired() -> None:
    reg = _registry(n_prefill=0, n_decode=1, n_regular=3)
    pd = PDRouter(reg, create_policy("random"), create_policy("random"))
    assert pd.select_pair(RequestInfo()) is None


def test_load_reports_reach_the_pool_policy() -> None:
    reg = _registry(n_prefill=1, n_decode=1)
    calls = []

    class Spy(type(create_policy("random"))):
        def on_load_report(self, worker, report):
            calls.append((self.tag, worker.role))

    p, d = Spy(), Spy()
    p.tag, d.tag = "p", "d"
    pd = PDRouter(reg, p, d)
    for w in reg.all():
        if w.role is not WorkerRole.REGULAR:
            pd.on_load_report(w, LoadReport(running=3))
            assert w.load_report.running == 3
    assert sorted(calls) == [("d", WorkerRole.DECODE), ("p", WorkerRole.PREFILL)]


def test_pair_bootstrap_fields() -> None:
    reg = _registry(n_prefill=1, n_decode=1, n_regular=0)
    pair = PDRouter(reg, create_policy("random"), create_policy("random")).select_pair(RequestInfo())
    assert pair.bootstrap_host == "10.0.0.1"
    assert pair.bootstrap_port == 8998
    assert bootstrap_host("grpc://[::1]:5000") == "::1"
    assert bootstrap_host("127.0.0.1:5000") == "127.0.0.1"


def test_rooms_are_fresh_and_in_range() -> None:
    grpc_rooms = [new_room(ROOM_BITS_GRPC) for _ in range(2000)]
    assert all(0 <= r <= 2**31 - 1 for r in grpc_rooms)
    assert len(set(grpc_rooms)) > 1990  # random, not a counter stuck on a value
    assert max(grpc_rooms) > 2**30  # the whole int32 range is used
    batch = new_rooms(64)
    assert len(set(batch)) == 64 and all(0 <= r < 2**63 for r in batch)
