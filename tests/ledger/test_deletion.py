"""Compaction never deletes a part under a finops reader (DuckDB's ``Cannot open file``):
deletions wait while a query through finops runs or a ``finops.ledger.connect()`` connection
is open, and happen at a later compaction."""

from __future__ import annotations

import gc
import subprocess
import sys
import time
from pathlib import Path

import duckdb

import finops.ledger
from finops.ledger import Ledger
from finops.ledger.compact import compact
from finops.ledger.layout import parts_dir_for, reading

ROOT = Path(__file__).resolve().parents[2]


def _ledger_with_parts(path: Path, make_row, n: int) -> None:
    with Ledger(path, flush_interval_s=3600, compact_interval_s=3600) as ledger:
        for i in range(n):  # one part per flush
            ledger.append(make_row(i))
            assert ledger.flush(timeout_s=30)


def _compact_later(parts: Path, *, seconds: float):
    """One compaction as if ``seconds`` had passed (replaced parts are due for deletion)."""
    con = duckdb.connect(":memory:")
    try:
        return compact(con, parts, min_parts=2, grace_s=0.0, clock=lambda: time.time() + seconds)
    finally:
        con.close()


def test_deletion_waits_for_finops_readers(tmp_path: Path, make_row) -> None:
    path = tmp_path / "d.duckdb"
    parts = parts_dir_for(path)
    _ledger_with_parts(path, make_row, 4)
    first = _compact_later(parts, seconds=0)
    assert first.merged_parts == 4 and first.deleted_parts == 0
    inputs = sorted(p.name for p in parts.glob("s-*.parquet"))
    assert len(inputs) == 4

    con = finops.ledger.connect(path)  # an analyst's connection: deletions wait for it
    later = _compact_later(parts, seconds=60)
    assert later.deleted_parts == 0 and later.deferred_parts == 4
    assert sorted(p.name for p in parts.glob("s-*.parquet")) == inputs
    assert con.execute("SELECT count(*), count(DISTINCT row_id) FROM calls").fetchone() == (4, 4)

    with reading(parts):  # what Ledger.query and `finops ledger status` hold per query
        del con
        gc.collect()
        assert _compact_later(parts, seconds=60).deferred_parts == 4

    done = _compact_later(parts, seconds=60)  # no reader left: the deferred deletions happen
    assert done.deleted_parts == 4 and not list(parts.glob("s-*.parquet"))
    assert first.new_part is not None  # its rows are all in the compacted part
    con = duckdb.connect(":memory:")
    assert con.execute(f"SELECT count(*) FROM '{parts / first.new_part}'").fetchone() == (4,)
    con.close()


_HOLDER = """
import sys, time
import finops.ledger
con = finops.ledger.connect(sys.argv[1])
print(con.execute("SELECT count(*) FROM calls").fetchone()[0], flush=True)
time.sleep(60)
"""


def test_a_reader_in_another_process_defers_deletion(tmp_path: Path, make_row) -> None:
    path = tmp_path / "p.duckdb"
    parts = parts_dir_for(path)
    _ledger_with_parts(path, make_row, 3)
    assert _compact_later(parts, seconds=0).merged_parts == 3
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(path)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "3"
        assert _compact_later(parts, seconds=60).deferred_parts == 3
    finally:
        holder.kill()
        holder.wait(timeout=30)
    assert _compact_later(parts, seconds=60).deleted_parts == 3
