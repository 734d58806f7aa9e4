"""Fixtures for the hardening tests: captured provider bodies, helpers on sys.path."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # hostile_testing, for tests and workers

from hostile_testing import Body, capture_bodies

from finops.devserver import DevServer


@pytest.fixture(scope="session")
def bodies(server: DevServer) -> dict[str, Body]:
    return capture_bodies(server)
