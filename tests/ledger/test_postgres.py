"""The multi-host mode against a real PostgreSQL started by the test session."""

from __future__ import annotations

import dataclasses
import subprocess
from pathlib import Path

import pytest

from finops.ledger import Ledger
from finops.ledger.row import LedgerRow

HOST = """
import sys
sys.path.insert(0, sys.argv[4])
from conftest import make_row
from finops.ledger import Ledger
url, spool, prefix = sys.argv[1], sys.argv[2], sys.argv[3]
ledger = Ledger(url, spool_dir=spool, flush_interval_s=0.1)
for i in range(300):
    ledger.append(make_row(i, row_id=f"{prefix}-{i}", tags={"host": prefix, "team": "t"}))
assert ledger.flush(timeout_s=30)
ledger.close()
print("done", flush=True)
"""


def test_round_trip_and_views(postgres_url: str, tmp_path: Path, make_row):
    names = [f.name for f in dataclasses.fields(LedgerRow)]
    full = make_row(
        1,
        row_id="pg-rt",
        error_message='quote " \\ \n newline',
        tags={"a": "✓"},
        server_tool_requests={"web_search": 2},
        prompt_text="",
    )
    with Ledger(postgres_url, spool_dir=tmp_path / "spool") as ledger:
        ledger.append(full)
        assert ledger.flush(timeout_s=30)
        [back] = ledger.query(f"SELECT {', '.join(names)} FROM calls WHERE row_id = ?", ["pg-rt"])
        got = dict(zip(names, back, strict=True))
        assert got == dataclasses.asdict(full)
        [(n,)] = ledger.query("SELECT count(*) FROM calls WHERE tags[?] = ?", ["a", "✓"])
        assert n == 1
        for view in (
            "spend_by_day",
            "spend_by_tag",
            "spend_by_model",
            "savings_by_cause",
            "estimate_accuracy",
        ):
            ledger.query(f"SELECT * FROM {view}")


@pytest.mark.slow
def test_two_hosts_with_separate_spools_write_one_ledger(postgres_url: str, tmp_path: Path, spawn):
    import psycopg

    tests = str(Path(__file__).parent)
    analyst = psycopg.connect(postgres_url, autocommit=False)  # holds a transaction open
    analyst.execute("SELECT count(*) FROM calls").fetchone()
    procs = [
        spawn(HOST, postgres_url, str(tmp_path / f"spool-{h}"), h, tests, stdout=subprocess.PIPE)
        for h in ("hostA", "hostB")
    ]
    for proc in procs:
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0 and "done" in out
    analyst.rollback()
    rows = dict(
        analyst.execute(
            "SELECT tags['host'], count(*) FROM calls WHERE row_id LIKE 'host%%' GROUP BY 1"
        ).fetchall()
    )
    [(dups,)] = analyst.execute("SELECT count(*) - count(DISTINCT row_id) FROM calls").fetchall()
    by_tag = dict(
        analyst.execute(
            "SELECT value, sum(attempts) FROM spend_by_tag WHERE tag = 'host' GROUP BY 1"
        ).fetchall()
    )
    analyst.close()
    assert rows == {"hostA": 300, "hostB": 300}
    assert dups == 0
    assert by_tag == {"hostA": 300, "hostB": 300}


def test_finops_with_a_postgres_ledger(postgres_url: str, tmp_path: Path, devserver, monkeypatch):
    import openai

    import finops

    monkeypatch.chdir(tmp_path)
    with finops.FinOps(ledger=postgres_url, spool_dir=tmp_path / "fo-spool") as fo:
        client = fo.wrap(openai.OpenAI(api_key="k", base_url=devserver.openai_base_url))
        client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "pg"}],
            finops_tags={"team": "pg-e2e"},
        )
        assert fo.flush(timeout_s=30)
        [(n,)] = fo.ledger.query("SELECT count(*) FROM calls WHERE tags[?] = ?", ["team", "pg-e2e"])
    assert n == 1
    assert not (tmp_path / "postgresql:").exists()  # the URL is not taken for a path
    from typer.testing import CliRunner

    from finops.cli import app

    out = CliRunner().invoke(app, ["ledger", "status", "--ledger", postgres_url])
    assert out.exit_code == 0, out.output
    assert "visible to readers" in out.output and "PostgreSQL" in out.output
