"""PolicyConfig: the one settings object every policy factory receives."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["PolicyConfig"]


@dataclass(frozen=True)
class PolicyConfig:
    """Routing policy settings. Defaults are SMG's CLI defaults (``main.rs``)."""

    cache_threshold: float = field(
        default=0.3,
        metadata={"help": "cache_aware: minimum prefix match ratio (strictly greater) to route by cache"},
    )
    balance_abs_threshold: int = field(
        default=64,
        metadata={"help": "cache_aware: load gap (max-min in-flight) above which the pool is imbalanced"},
    )
    balance_rel_threshold: float = field(
        default=1.5, metadata={"help": "cache_aware: ...and max load above min load times this"}
    )
    eviction_interval_secs: float = field(
        default=120.0,
        metadata={"help": "cache_aware: seconds between tree evictions (0 disables)", "flag": "--eviction-interval"},
    )
    max_tree_size: int = field(
        default=2**26, metadata={"help": "cache_aware: per-worker budget of cached chars or tokens"}
    )
    max_tree_total: int = field(
        default=0, metadata={"help": "cache_aware: budget of cached chars or tokens of every tree and worker "
                                     "together (0: sized to the machine, smg.router.policies.tree_budget)"}
    )
    block_size: int = field(default=16, metadata={"help": "cache_aware: token page size of the gRPC token tree"})
    balance_token_usage_threshold: float = field(
        default=1.0, metadata={"help": "cache_aware: KV usage spread that counts as imbalanced (1.0 disables)"}
    )
    overload_token_usage_threshold: float = field(
        default=1.0, metadata={"help": "cache_aware: KV usage of the hottest worker that counts as overload"}
    )
    miss_load_slack: int = field(
        default=2,
        metadata={"help": "cache_aware: on a miss, workers within this many requests of the least "
                          "loaded are candidates (chosen by their own partial match, then load)"},
    )
    session_capacity: int = field(
        default=65536, metadata={"help": "cache_aware: session keys and recent request keys remembered (LRU each)"}
    )
    prefix_tiebreak: bool = field(
        default=False,
        metadata={"help": "cache_aware: break ties among equally loaded workers on a miss by a stable "
                          "digest of the request's first 64 tokens / 256 chars instead of at random, so "
                          "several gateway processes or replicas send an unseen prefix to the same worker"},
    )
    prefix_token_count: int = field(default=256, metadata={"help": "prefix_hash: tokens hashed for the key"})
    load_factor: float = field(
        default=1.25, metadata={"help": "prefix_hash: ring worker kept while load <= mean * this"}
    )
    virtual_nodes: int = field(default=150, metadata={"help": "consistent_hashing: ring points per worker"})
    seed: int | None = field(default=None, metadata={"help": "seed of the policies' random choices (tests)"})

    def __post_init__(self) -> None:
        if not 0.0 <= self.cache_threshold <= 1.0:
            raise ValueError("cache_threshold must be in [0, 1]")
        if self.balance_abs_threshold < 0 or self.balance_rel_threshold < 1.0:
            raise ValueError("balance thresholds: abs must be >= 0 and rel >= 1")
        if self.block_size < 1 or self.virtual_nodes < 1 or self.prefix_token_count < 1:
            raise ValueError("block_size, virtual_nodes and prefix_token_count must be >= 1")
        if min(self.max_tree_size, self.max_tree_total, self.eviction_interval_secs, self.miss_load_slack) < 0:
            raise ValueError("max_tree_size, eviction_interval_secs and miss_load_slack must be >= 0")
        if self.load_factor <= 0:
            raise ValueError("load_factor must be > 0")
