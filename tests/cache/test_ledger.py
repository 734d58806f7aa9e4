"""Migration m003_cache upgrades a ledger written before the cache columns existed."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import duckdb

from finops.ledger import Ledger
from finops.ledger.migrations import COLUMN_TYPES, m002_views
from finops.ledger.row import LedgerRow

_NEW = ("cache_entry_id", "cache_similarity", "cache_tier")


def test_old_ledger_gets_the_cache_columns(tmp_path: Path) -> None:
    path = tmp_path / "old.duckdb"
    con = duckdb.connect(str(path))
    columns = ", ".join(f"{n} {t}" for n, t in COLUMN_TYPES.items() if n not in _NEW)
    con.execute(f"CREATE TABLE calls ({columns})")
    m002_views(con)
    con.execute(
        "CREATE TABLE _finops_migrations (name VARCHAR PRIMARY KEY, applied_at TIMESTAMPTZ DEFAULT current_timestamp)"
    )
    con.execute("INSERT INTO _finops_migrations (name) VALUES ('m001_calls'), ('m002_views')")
    con.close()
    ledger = Ledger(path)
    now = datetime.now(UTC)
    ledger.append(
        LedgerRow(
            row_id="r1",
            call_id="c1",
            attempt=1,
            ts_start=now,
            ts_end=now,
            latency_ms=1.0,
            provider="openai",
            endpoint="chat.completions",
            status="cache_hit",
            cost_total=Decimal(0),
            counterfactual_cost=Decimal("0.0125"),
            cache_status="semantic_hit",
            cache_entry_id="e1",
            cache_similarity=0.93,
            cache_tier="memory",
        )
    )
    assert ledger.flush(timeout_s=30)
    assert ledger.query("SELECT cache_entry_id, cache_similarity, cache_tier FROM calls") == [
        ("e1", 0.93, "memory")
    ]
    assert ledger.query("SELECT cause, detail, calls, saved FROM savings_by_cause") == [
        ("cache", "semantic_hit", 1, Decimal("0.0125"))
    ]
    ledger.close()
