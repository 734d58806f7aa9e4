"""Fixtures of the cache tests: a real redis-server on a free port; the int8 MiniLM model
derived into a temporary directory (not the user's cache), shared by child processes."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from finops_testing import REDIS_SERVER, RedisServer


@pytest.fixture(scope="session", autouse=True)
def _model_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    old = os.environ.get("FINOPS_MODEL_DIR")
    os.environ["FINOPS_MODEL_DIR"] = str(tmp_path_factory.mktemp("models"))
    yield
    if old is None:
        os.environ.pop("FINOPS_MODEL_DIR", None)
    else:
        os.environ["FINOPS_MODEL_DIR"] = old


@pytest.fixture()
def redis_url(tmp_path: Path) -> Iterator[str]:
    if REDIS_SERVER is None:
        pytest.skip("redis-server is not installed")
    server = RedisServer(tmp_path)
    try:
        yield server.url
    finally:
        server.stop()
