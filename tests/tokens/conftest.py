"""Fixtures for the token tests: the real price book."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture(scope="session")
def pricebook() -> Any:
    from finops.pricing import PriceBook

    return PriceBook.default()
