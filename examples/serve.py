"""Run the smg gateway from Python: the same thing ``smg serve`` does, as a library.

    python examples/serve.py                                  # two reference workers behind it
    python examples/serve.py --worker-urls http://127.0.0.1:8001 http://127.0.0.1:8002
    python examples/serve.py --config smg.toml                # any GatewayConfig setting

Then, in another shell: ``python examples/client.py --url http://127.0.0.1:30000``.
Ctrl-C drains in-flight requests and stops (and stops the reference workers it started).
"""

from __future__ import annotations

import argparse
import dataclasses

from smg.cli.serve import spawn_reference_workers
from smg.config import GatewayConfig
from smg.serve import run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--worker-urls", nargs="*", default=[], help="OpenAI-compatible workers")
    parser.add_argument("--config", help="a TOML or YAML GatewayConfig file")
    parser.add_argument("--port", type=int, default=30000)
    parser.add_argument("--policy", default="cache_aware")
    args = parser.parse_args()

    # One typed, frozen config: file, then SMG_* environment, then what this script sets.
    config = GatewayConfig.load(file=args.config)
    config = GatewayConfig.from_mapping(
        {"port": args.port, "policy": args.policy, "health_check_interval_secs": 5.0}, config
    )
    spawned = [] if args.worker_urls else spawn_reference_workers(2)
    urls = tuple(args.worker_urls) or tuple(w.url for w in spawned if w.url)
    config = dataclasses.replace(config, routing=dataclasses.replace(config.routing, worker_urls=urls))
    try:
        run(config, on_listening=lambda url: print(
            f"smg gateway on {url} -> {', '.join(urls)}\n"
            f"try: python examples/client.py --url {url}", flush=True))
    finally:
        for worker in spawned:
            worker.stop()


if __name__ == "__main__":
    main()
