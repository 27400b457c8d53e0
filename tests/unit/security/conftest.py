"""Fixtures for the security tests: the stub workers and gateways of tests/unit/http."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.unit.http.conftest import Servers


@pytest.fixture
def servers() -> Iterator[Servers]:
    s = Servers()
    yield s
    s.close()
