"""The routing columns on a ledger created before they existed (migration m005_routing)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import duckdb

from finops.ledger import Ledger
from finops.ledger.migrations import COLUMN_TYPES
from finops.ledger.row import LedgerRow

NEW = ("route_score", "route_policy", "route_cpu_us", "counterfactual_estimated")


def test_old_ledger_gets_routing_columns_and_savings_view(tmp_path: Path) -> None:
    path = tmp_path / "old.duckdb"
    con = duckdb.connect(str(path))
    old = {k: v for k, v in COLUMN_TYPES.items() if k not in NEW}
    con.execute("CREATE TABLE calls (" + ", ".join(f"{k} {v}" for k, v in old.items()) + ")")
    con.execute("CREATE TABLE _finops_migrations (name VARCHAR PRIMARY KEY, "
                "applied_at TIMESTAMPTZ DEFAULT current_timestamp)")
    con.execute("INSERT INTO _finops_migrations (name) VALUES ('m001_calls'), ('m002_views')")
    con.close()
    now = datetime(2026, 12, 1, tzinfo=UTC)
    ledger = Ledger(path)
    try:
        ledger.append(LedgerRow(
            row_id="r1", call_id="c1", attempt=1, ts_start=now, ts_end=now, latency_ms=1.0,
            provider="openai", endpoint="chat.completions", status="ok",
            requested_model="o3", served_model="gpt-4.1-mini",
            route_decision="route:score<threshold->gpt-4.1-mini", route_score=-0.2,
            route_policy="default@x", route_cpu_us=310.0, cost_total=Decimal("0.001"),
            counterfactual_cost=Decimal("0.004"), counterfactual_estimated=True))
        assert ledger.flush(timeout_s=30)
        [(score, policy, cpu, est)] = ledger.query(
            "SELECT route_score, route_policy, route_cpu_us, counterfactual_estimated FROM calls")
        assert (score, policy, cpu, est) == (-0.2, "default@x", 310.0, True)
        [(cause, saved, estimated, router_us)] = ledger.query(
            "SELECT cause, saved, estimated, router_cpu_us FROM savings_by_cause")
        assert cause == "routing" and saved == Decimal("0.003") and estimated
        assert router_us == 310.0
    finally:
        ledger.close()
