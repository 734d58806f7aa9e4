"""The DuckDB ledger (real files) and the finops CLI."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

import finops
from finops.cli import app
from finops.ledger import Ledger
from finops.ledger.row import LedgerRow

T0 = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)


def row(i: int, **kw: object) -> LedgerRow:
    base: dict[str, object] = dict(
        row_id=f"r{i}",
        call_id=f"c{i}",
        attempt=1,
        ts_start=T0 + timedelta(hours=i),
        ts_end=T0 + timedelta(hours=i, seconds=1),
        latency_ms=1000.0,
        provider="openai",
        endpoint="chat.completions",
        status="ok",
        requested_model="gpt-4o",
        served_model="gpt-4o-2024-08-06",
        input_tokens=100,
        cache_read_tokens=50,
        output_tokens=10,
        cost_total=Decimal("0.000123456789"),
        cost_input=Decimal("0.0001"),
        tags={"team": "search" if i % 2 else "ads", "feature": "f"},
        est_input_tokens=160,
    )
    base.update(kw)
    return LedgerRow(**base)  # type: ignore[arg-type]


def test_every_field_round_trips_exactly(tmp_path: Path):
    full = row(
        1,
        trace_id="t",
        parent_id="p",
        stream=True,
        http_status=200,
        error_type=None,
        server_tool_requests={"web_search": 2},
        usage_mismatch="x",
        cost_steps=Decimal("1e-12"),
        counterfactual_cost=Decimal("12345678.123456789012"),
        prompt_text="héllo ✓",
        budget_flags="warn:b",
        est_exact=False,
        est_cost_max=Decimal("0.5"),
    )
    ledger = Ledger(tmp_path / "l.duckdb")
    ledger.append(full)
    assert ledger.flush(timeout_s=30)
    names = [f.name for f in dataclasses.fields(LedgerRow)]
    [back] = ledger.query(f"SELECT {', '.join(names)} FROM calls")
    ledger.close()
    got = dict(zip(names, back, strict=True))
    want = dataclasses.asdict(full)
    assert got == want


def test_migrations_are_recorded_and_a_newer_schema_is_refused(tmp_path: Path):
    path = tmp_path / "m.duckdb"
    Ledger(path).close()
    Ledger(path).close()  # re-open: nothing to do
    con = duckdb.connect(str(path))
    names = [
        r[0] for r in con.execute("SELECT name FROM _finops_migrations ORDER BY name").fetchall()
    ]
    from finops.ledger.migrations import MIGRATIONS

    assert names[:2] == ["m001_calls", "m002_views"]
    assert names == sorted(name for name, _ in MIGRATIONS)
    con.execute("INSERT INTO _finops_migrations (name) VALUES ('m999_from_the_future')")
    con.close()
    # Ledger() opens no catalog (start-up, docs/ledger.md): flush() and query() refuse it.
    ledger = Ledger(path)
    with pytest.raises(finops.MigrationError, match="newer finops"):
        ledger.flush(timeout_s=30)
    with pytest.raises(finops.MigrationError, match="newer finops"):
        ledger.query("SELECT count(*) FROM calls")
    ledger.close()


def test_views_on_a_known_dataset(tmp_path: Path):
    ledger = Ledger(tmp_path / "v.duckdb")
    for i in range(4):
        ledger.append(row(i))
    ledger.append(row(9, status="blocked", cost_total=Decimal(0), tags={"team": "search"}))
    assert ledger.flush(timeout_s=30)
    [(model, calls, cost)] = ledger.query("SELECT model, calls, cost FROM spend_by_model")
    assert (model, calls, cost) == ("gpt-4o-2024-08-06", 4, Decimal("0.000493827156"))
    by_team = dict(
        ledger.query("SELECT value, sum(cost) FROM spend_by_tag WHERE tag = 'team' GROUP BY 1")
    )
    assert by_team == {"search": Decimal("0.000246913578"), "ads": Decimal("0.000246913578")}
    [(day, n)] = ledger.query("SELECT day, sum(calls) FROM spend_by_day GROUP BY 1")
    assert str(day) == "2026-11-20" and n == 4
    [(family, n, mean_err)] = ledger.query(
        "SELECT family, n, mean_rel_error FROM estimate_accuracy"
    )
    assert family == "gpt-4o" and n == 4 and abs(mean_err - 160 / 150 + 1) < 1e-9
    ledger.close()


def test_orphan_spool_is_replayed_once(tmp_path: Path):
    path, spool = tmp_path / "o.duckdb", tmp_path / "spool"
    ledger = Ledger(path, spool_dir=spool)
    ledger.append(row(1))
    assert ledger.flush(timeout_s=30)
    ledger.close()
    # A crashed process left a segment holding a row already ingested and a new one.
    from finops.ledger import _encode

    (spool / "99999-dead-000001.jsonl").write_bytes(_encode(row(1)) + _encode(row(2)) + b'{"torn')
    ledger = Ledger(path, spool_dir=spool)
    assert ledger.flush(timeout_s=30)
    ids = sorted(r[0] for r in ledger.query("SELECT row_id FROM calls"))
    ledger.close()
    assert ids == ["r1", "r2"]
    assert not list(spool.glob("*.jsonl"))


def test_append_never_raises_on_a_bad_row(tmp_path: Path):
    ledger = Ledger(tmp_path / "b.duckdb")
    ledger.append(row(1, tags={"x": object()}))  # not JSON-serializable
    assert ledger.dropped == 1
    ledger.close()


runner = CliRunner()


def test_cli_demo_report_and_help(tmp_path: Path):
    path = tmp_path / "demo.duckdb"
    result = runner.invoke(app, ["demo", "--ledger", str(path)])
    assert result.exit_code == 0, result.output
    assert "Spend by team and model" in result.output and "Budget stop" in result.output
    con = duckdb.connect(str(path), read_only=True)
    statuses = dict(con.execute("SELECT status, count(*) FROM calls GROUP BY 1").fetchall())
    teams = {r[0] for r in con.execute("SELECT DISTINCT tags['team'] FROM calls").fetchall()}
    cached = con.execute("SELECT sum(cache_read_tokens) FROM calls").fetchone()[0]
    saved = dict(con.execute("SELECT cause, sum(saved) FROM savings_by_cause GROUP BY 1").fetchall())
    providers = {r[0] for r in con.execute("SELECT DISTINCT provider FROM calls").fetchall()}
    routed = con.execute(
        "SELECT count(*) FROM calls WHERE route_decision LIKE 'route:%' AND status = 'ok'"
    ).fetchone()[0]
    con.close()
    assert statuses["ok"] >= 15 and statuses["blocked"] == 1 and statuses["error"] == 1  # one 429
    assert {"support", "search", "research"} <= teams and cached > 0
    assert statuses["cache_hit"] >= 3 and saved["cache"] > 0  # repeated questions
    assert routed >= 1 and saved["routing"] > 0  # easy questions sent to the cheaper model
    assert "Saved by cache" in result.output and "Saved by routing" in result.output
    assert {"openai", "anthropic"} <= providers
    if importlib.util.find_spec("boto3") and importlib.util.find_spec("google.genai"):
        assert len(providers) >= 4, providers  # Gemini and Bedrock beside them
    report = runner.invoke(app, ["report", "--ledger", str(path), "--by", "team"])
    assert report.exit_code == 0 and "research" in report.output
    assert runner.invoke(app, ["report", "--ledger", str(tmp_path / "none.duckdb")]).exit_code == 1
    assert runner.invoke(app, ["--help"]).exit_code == 0


def test_import_is_light():
    code = "import sys, finops; print(json.dumps(sorted(m for m in ('duckdb','openai','anthropic','tiktoken','genai_prices','pydantic') if m in sys.modules)))"
    out = os.popen(f'python -c "import json; {code}"').read()
    assert json.loads(out) == []
