"""A custom routing policy, registered by name.

``TierPolicy`` sends a request to the workers whose ``tier`` label matches the request's
``x-tier`` header (say "premium" traffic to the big GPUs) and picks the least loaded of
them; requests without the header, or with no matching worker, may go anywhere.

Once registered, the policy is created by name like the built-in ones
(``create_policy("tier", config)``), so a gateway configured with ``--policy tier``
would use it too, provided this module is imported first.
"""

from __future__ import annotations

import argparse
from collections import Counter
from collections.abc import Sequence

from smg.router import (
    Policy,
    PolicyConfig,
    RequestInfo,
    Router,
    Worker,
    WorkerRegistry,
    create_policy,
    register_policy,
)
from smg.router.policies import least_loaded


class TierPolicy(Policy):
    name = "tier"

    def __init__(self, config: PolicyConfig) -> None:
        super().__init__()
        self.config = config

    def select(self, workers: Sequence[Worker], request: RequestInfo) -> Worker | None:
        if not workers:
            return None
        tier = request.headers.get("x-tier")
        matching = [w for w in workers if tier is not None and w.labels.get("tier") == tier]
        return least_loaded(matching or workers)


register_policy("tier", TierPolicy)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=30)
    args = parser.parse_args(argv)

    registry = WorkerRegistry([
        Worker("http://127.0.0.1:8001", labels={"tier": "premium"}),
        Worker("http://127.0.0.1:8002", labels={"tier": "premium"}),
        Worker("http://127.0.0.1:8003", labels={"tier": "batch"}),
    ])
    router = Router(registry, create_policy("tier"))
    served: Counter = Counter()
    in_flight = []
    for i in range(args.requests):
        tier = ("premium", "batch", None)[i % 3]
        request = RequestInfo(text=f"request {i}", headers={"x-tier": tier} if tier else {})
        worker = router.select(request)
        worker.begin()  # a real server calls worker.end(success) when the response is done
        in_flight.append(worker)
        served[(tier or "-", worker.url)] += 1
    for worker in in_flight:
        worker.end(True)
    for (tier, url), n in sorted(served.items()):
        print(f"x-tier={tier:8} -> {url}: {n}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
