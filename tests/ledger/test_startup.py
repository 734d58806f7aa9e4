"""Start-up: ``FinOps(...)`` + ``wrap`` import no DuckDB and open no catalog; the writer
does that on its first cycle. Configuration mistakes found without DuckDB still raise at
construction. And the typed ingest fast path falls back to TRY_CAST for a malformed value."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from finops.errors import ConfigError
from finops.ledger import Ledger
from finops.ledger.spool import encode

ROOT = Path(__file__).resolve().parents[2]

_CHILD = """
import json, sys
import openai
import finops
fo = finops.FinOps(ledger=sys.argv[1])
client = fo.wrap(openai.OpenAI(api_key="sk-test", base_url=sys.argv[2]))
client.chat.completions
before = "duckdb" in sys.modules
client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
flushed = fo.flush(timeout_s=60)
rows = fo.ledger.query("SELECT count(*) FROM calls")[0][0]
fo.close()
print(json.dumps({"before": before, "flushed": flushed, "rows": rows}))
"""


def test_construction_and_wrap_import_no_duckdb(tmp_path: Path, devserver) -> None:
    """A fresh interpreter: DuckDB is not imported by FinOps() + wrap (the writer opens the
    store once there is a row, a flush or close, or ``orphan_scan_s`` after start);
    flush() opens the catalog and the row is there."""
    path = tmp_path / "s.duckdb"
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, str(path), devserver.url + "/v1"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["before"] is False, "FinOps() + wrap imported duckdb"
    assert result["flushed"] is True and result["rows"] == 1
    con = duckdb.connect(str(path), read_only=True)  # the catalog exists after flush()
    assert con.execute("SELECT count(*) FROM calls").fetchone() == (1,)
    con.close()


def test_a_location_that_cannot_work_raises_config_error_at_construction(tmp_path: Path) -> None:
    not_duckdb = tmp_path / "notes.txt"
    not_duckdb.write_text("these are my notes, not a ledger\n")
    with pytest.raises(ConfigError, match="is not a DuckDB file"):
        Ledger(not_duckdb)
    with pytest.raises(ConfigError, match="is a directory"):
        Ledger(tmp_path)
    assert not list(tmp_path.glob("*.spool/*.jsonl"))  # nothing left behind


def test_a_malformed_value_becomes_null_and_the_batch_lands(tmp_path: Path, make_row) -> None:
    """The fast path uses plain CASTs; a value they reject makes the writer redo that batch
    with TRY_CAST, so the value is NULL and every other value and row is kept."""
    path, spool = tmp_path / "m.duckdb", tmp_path / "spool"
    with Ledger(path, spool_dir=spool, flush_interval_s=0.05) as ledger:
        ledger.append(make_row(1))
        ledger.append(make_row(2, input_tokens="12x"))  # type: ignore[arg-type]
        assert ledger.flush(timeout_s=30)
        got = dict(ledger.query("SELECT row_id, input_tokens FROM calls ORDER BY row_id"))
        assert got == {"row-1": 1000, "row-2": None}
        [(tags, cost)] = ledger.query("SELECT tags, cost_output FROM calls WHERE row_id = 'row-2'")
        assert tags == make_row(2).tags and str(cost) == "0.002000000000"
    # The same through a replayed segment (what a dead process left).
    good = encode(make_row(3))
    bad = encode(make_row(4)).replace(b'"0.002"', b'"zero point two"')
    assert bad != encode(make_row(4))
    (spool / "4242-deadbeef-000001.jsonl").write_bytes(good + bad)
    with Ledger(path, spool_dir=spool) as ledger:
        assert ledger.flush(timeout_s=30)
        got = dict(ledger.query("SELECT row_id, cost_output FROM calls ORDER BY row_id"))
    assert set(got) == {"row-1", "row-2", "row-3", "row-4"}
    assert got["row-4"] is None and str(got["row-3"]) == "0.002000000000"


def _old_duckdb_cli() -> list[str] | None:
    """The DuckDB CLI of the ``duckdb-cli`` package (1.5.x here), when installed."""
    import importlib.util

    spec = importlib.util.find_spec("duckdb_cli")
    if spec is None or not spec.submodule_search_locations:
        return None
    binary = Path(next(iter(spec.submodule_search_locations))) / "duckdb"
    return [str(binary)] if binary.exists() else None


def test_a_new_catalog_opens_in_older_duckdb(tmp_path: Path, make_row) -> None:
    """New catalog files use DuckDB's v1.0 storage format (header version 64), which every
    DuckDB from 1.0 on reads; checked with an older CLI when ``duckdb-cli`` is installed."""
    path = tmp_path / "old.duckdb"
    with Ledger(path) as ledger:
        ledger.append(make_row(1, tags={"team": "search"}))
        assert ledger.flush(timeout_s=30)
    header = path.read_bytes()[:20]
    assert header[8:12] == b"DUCK" and int.from_bytes(header[12:20], "little") == 64
    cli = _old_duckdb_cli()
    if cli is None:
        pytest.skip("duckdb-cli is not installed (pip install duckdb-cli==1.5.6)")
    out = subprocess.run(
        [*cli, "-readonly", "-csv", "-noheader", str(path),
         "SELECT count(*), any_value(tags['team']), sum(cost) FROM calls, spend_by_day"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().split(",")[:2] == ["1", "search"]
