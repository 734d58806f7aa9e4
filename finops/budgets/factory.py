"""``open_store(url)``: pick a budget store implementation from a URL.

Kept apart from :mod:`finops.budgets.store` (the interface) so that the implementations
import the interface and nothing imports them back: no import cycle.
"""

from __future__ import annotations

from finops.budgets.store import BudgetStore, MemoryStore
from finops.errors import ConfigError

__all__ = ["open_store"]


def open_store(url: str | BudgetStore) -> BudgetStore:
    """A store from a URL: ``"memory"``, ``"sqlite:///relative.db"``,
    ``"sqlite:////absolute/path.db"``, ``"redis://host:port/db"`` (needs the ``[redis]``
    extra), or an existing :class:`BudgetStore` (returned as is)."""
    if isinstance(url, BudgetStore):
        return url
    if not isinstance(url, str):
        raise ConfigError(f"budget_store must be a URL string, got {url!r}")
    if url in ("memory", "memory://", ""):
        return MemoryStore()
    if url.startswith("sqlite://"):
        from finops.budgets.sqlite_store import SQLiteStore

        path = url[len("sqlite://") :]
        if not path.startswith("/") or path == "/":
            raise ConfigError(
                f"budget_store {url!r}: write sqlite:///relative/path.db or "
                "sqlite:////absolute/path.db"
            )
        return SQLiteStore(path[1:])
    if url.startswith(("redis://", "rediss://", "unix://")):
        from finops.budgets.redis_store import RedisStore

        return RedisStore(url)
    raise ConfigError(
        f"budget_store {url!r} is not supported: use 'memory', 'sqlite:///budgets.db' or "
        "'redis://127.0.0.1:6379/0'"
    )
