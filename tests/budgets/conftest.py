"""Fixtures for the budget tests: an injectable clock, a real redis-server, store URLs."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # budget_testing, for tests and workers

from budget_testing import REDIS_SERVER, FakeClock, RedisServer


@pytest.fixture()
def clock() -> FakeClock:
    return FakeClock(datetime(2026, 3, 10, 12, 0, tzinfo=UTC))


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    if REDIS_SERVER is None:
        pytest.skip(
            "redis-server binary not found on PATH (apt-get install -y redis-server); "
            "the Redis budget store tests need a real server"
        )
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


@pytest.fixture()
def redis_url(redis_server: RedisServer) -> str:
    redis_server.flush()
    return redis_server.url


@pytest.fixture(params=["memory", "sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each store kind in turn (the manager tests run against all three)."""
    if request.param == "memory":
        return "memory"
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'budgets.db'}"
    return str(request.getfixturevalue("redis_url"))
