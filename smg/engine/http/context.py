"""What every endpoint of one worker shares: built once in ``create_app``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from smg._fast.detok import DetokTable
from smg.engine.http.text import detok_table

__all__ = ["WorkerContext"]


@dataclass
class WorkerContext:
    engine: Any  # smg.engine.core.Engine
    tokenizer: Any  # smg.tokenizer.Tokenizer
    table: DetokTable  # the tokenizer's detok byte table
    model: str  # the served model name
    inflight: dict[str, Any] = field(default_factory=dict)  # request rid -> Run

    @classmethod
    def for_engine(cls, engine: Any) -> WorkerContext:
        tok = engine.tokenizer
        return cls(engine, tok, detok_table(tok), engine.config.model)
