"""What ``finops cache stats|clear`` do, as library functions (the CLI is a thin shell)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from finops.cache.config import Cache, parse_duration
from finops.cache.entry import Entry
from finops.cache.store import open_store

__all__ = ["CacheStats", "cache_stats", "clear_cache"]


@dataclass
class CacheStats:
    """Store volume, and from the ledger: lookups by status and tier, money saved by tag."""

    store: str
    entries: int
    bytes: int
    lookups: dict[str, int] = field(default_factory=dict)  # cache_status -> rows
    hits_by_tier: dict[str, int] = field(default_factory=dict)  # memory | store -> rows
    saved: Decimal = Decimal(0)
    saved_by_tag: list[tuple[str, str, int, Decimal]] = field(default_factory=list)

    @property
    def hit_rate(self) -> float | None:
        """Hits / (hits + misses + refreshes); None before any lookup."""
        hits = self.lookups.get("exact_hit", 0) + self.lookups.get("semantic_hit", 0)
        total = hits + self.lookups.get("miss", 0) + self.lookups.get("refresh", 0)
        return hits / total if total else None


def cache_stats(config: Cache, ledger: str | Path | None = None) -> CacheStats:
    """Entries and size of the store; with a ledger, hit rate, tiers and savings."""
    store = open_store(config.store, max_bytes=config.max_bytes)
    try:
        entries, size = store.volume()
    finally:
        store.close()
    stats = CacheStats(store=config.store, entries=entries, bytes=size)
    if ledger is None or not Path(ledger).exists():
        return stats
    import duckdb

    with duckdb.connect(str(ledger), read_only=True) as con:
        try:
            rows: list[Any] = con.execute(
                "SELECT cache_status, cache_tier, count(DISTINCT call_id) FROM calls"
                " WHERE cache_status IS NOT NULL GROUP BY ALL"
            ).fetchall()
        except duckdb.Error:  # a ledger from before the cache columns
            return stats
        for status, tier, n in rows:
            stats.lookups[status] = stats.lookups.get(status, 0) + int(n)
            if status in ("exact_hit", "semantic_hit") and tier:
                stats.hits_by_tier[tier] = stats.hits_by_tier.get(tier, 0) + int(n)
        saved = con.execute(
            "SELECT coalesce(sum(counterfactual_cost - coalesce(cost_total, 0)), 0)"
            " FROM calls WHERE status = 'cache_hit'"
        ).fetchone()
        stats.saved = Decimal(str(saved[0])) if saved else Decimal(0)
        by_tag = con.execute(
            "SELECT e.key, e.value, count(DISTINCT call_id),"
            " coalesce(sum(counterfactual_cost - coalesce(cost_total, 0)), 0) AS saved"
            " FROM (SELECT *, unnest(map_entries(tags)) AS e FROM calls WHERE status = 'cache_hit')"
            " GROUP BY ALL ORDER BY saved DESC, 1, 2"
        ).fetchall()
        stats.saved_by_tag = [(k, v, int(n), Decimal(str(s))) for k, v, n, s in by_tag]
    return stats


def clear_cache(
    config: Cache,
    *,
    tenant: str | None = None,
    older_than: str | float | None = None,
    now: float | None = None,
) -> int:
    """Delete entries (of one tenant value, or older than a duration); returns how many.

    ``tenant`` is the tenant tag's value (``"a"`` for ``tenant="team"``) or a full
    namespace (``"team=a"``).
    """
    prefix = ""
    if tenant is not None:
        namespace = (
            tenant if "=" in tenant or config.tenant is None else f"{config.tenant}={tenant}"
        )
        prefix = namespace + ":"
    cutoff = None
    if older_than is not None:
        age = parse_duration(older_than)
        assert age is not None
        cutoff = (time.time() if now is None else now) - age
    store = open_store(config.store, max_bytes=config.max_bytes)
    removed = 0
    try:
        for key in list(store.keys(prefix)):
            if cutoff is not None:
                data = store.get(key)
                if data is None:
                    continue
                try:
                    if Entry.decode(data, with_body=False).created >= cutoff:
                        continue
                except (ValueError, KeyError):
                    pass  # not an entry: clear it
            store.delete(key)
            removed += 1
    finally:
        store.close()
    return removed
