"""The local layout: catalog views over Parquet parts, compaction, old ledgers, status, CLI."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from finops.cli import app
from finops.ledger import Ledger, compact, connect, status
from finops.ledger.layout import ACTIVATION_MS, parts_dir_for
from finops.ledger.migrations import migrate
from finops.ledger.spool import encode, select_sql


def _fill(path: Path, make_row, batches: int, per: int, start: int = 0) -> None:
    with Ledger(path, flush_interval_s=3600, compact_interval_s=3600) as ledger:
        for b in range(batches):
            for i in range(per):
                ledger.append(make_row(start + b * per + i))
            assert ledger.flush(timeout_s=30)  # one part per flush


def test_one_part_per_flush_and_compaction_keeps_every_row_once(tmp_path: Path, make_row):
    path = tmp_path / "c.duckdb"
    _fill(path, make_row, batches=6, per=50)
    parts = parts_dir_for(path)
    assert len(list(parts.glob("s-*.parquet"))) == 6
    result = compact(path, grace_s=3600)
    assert result.merged_parts == 6 and result.rows == 300
    # Replaced parts stay on disk (for queries that listed them) but out of the view.
    assert len(list(parts.glob("s-*.parquet"))) == 6
    con = duckdb.connect(str(path), read_only=True)
    assert con.execute("SELECT count(*), count(DISTINCT row_id) FROM calls").fetchone() == (
        300,
        300,
    )
    st = status(path)
    assert (st.compacted_parts, st.compacted_rows, st.segment_parts, st.replaced_parts) == (
        1,
        300,
        0,
        6,
    )
    # A second level: new parts and the compacted one fold together; grace 0 deletes what
    # was replaced once the replacement is in effect.
    _fill(path, make_row, batches=2, per=10, start=1000)
    result = compact(path, grace_s=0)
    assert result.merged_parts == 3 and result.rows == 320
    assert con.execute("SELECT count(*), count(DISTINCT row_id) FROM calls").fetchone() == (
        320,
        320,
    )
    assert compact(path, grace_s=0).deleted_parts == 0  # not in effect yet
    time.sleep(ACTIVATION_MS / 1000 + 0.3)
    result = compact(path, grace_s=0)
    assert result.deleted_parts >= 3
    assert not list(parts.glob("s-*.parquet"))
    assert con.execute("SELECT count(*), count(DISTINCT row_id) FROM calls").fetchone() == (
        320,
        320,
    )
    con.close()


@pytest.mark.slow
def test_reads_never_fail_or_double_count_while_compacting(tmp_path: Path, make_row):
    path = tmp_path / "r.duckdb"
    ledger = Ledger(
        path,
        flush_interval_s=0.02,
        compact_interval_s=0.05,
        compact_min_parts=4,
        compact_min_age_s=0.0,
        grace_s=60,
    )
    assert ledger.flush(timeout_s=30)  # the catalog file exists from the writer's first cycle
    stop = threading.Event()
    bad: list[object] = []

    def read() -> None:
        con = duckdb.connect(str(path), read_only=True)
        last = 0
        while not stop.is_set():
            try:
                n, distinct = con.execute(
                    "SELECT count(*), count(DISTINCT row_id) FROM calls"
                ).fetchone()
                if n != distinct or n < last:
                    bad.append((n, distinct, last))
                last = n
            except duckdb.Error as exc:  # pragma: no cover - what the test is for
                bad.append(exc)
        con.close()

    reader = threading.Thread(target=read)
    reader.start()
    for i in range(1500):
        ledger.append(make_row(i))
        if i % 25 == 0:
            time.sleep(0.01)
    # Keep writing while compacted parts take effect (ACTIVATION_MS after publication).
    deadline = time.monotonic() + ACTIVATION_MS / 1000 + 2
    i = 1500
    while time.monotonic() < deadline:
        ledger.append(make_row(i))
        i += 1
        time.sleep(0.01)
    assert ledger.flush(timeout_s=30)
    time.sleep(0.5)
    stop.set()
    reader.join()
    [(n,)] = ledger.query("SELECT count(DISTINCT row_id) FROM calls")
    ledger.close()
    assert not bad, bad[:3]
    assert n == i
    compacted = [p for p in parts_dir_for(path).glob("c-1*.parquet")]
    assert compacted, "no automatic compaction ran"
    st = status(path)
    assert st.replaced_parts > 0 and st.rows == i


def test_an_old_single_file_ledger_migrates_forward(tmp_path: Path, make_row):
    path = tmp_path / "old.duckdb"
    spool = tmp_path / "rows.jsonl"
    from finops.ledger.spool import encode

    spool.write_bytes(b"".join(encode(make_row(i)) for i in range(20)))
    con = duckdb.connect(str(path))  # what finops 0.1 wrote: a table `calls` in the file
    migrate(con)  # the migrations of the time (and any added since) on a table
    con.execute(f"INSERT INTO calls BY NAME {select_sql([spool])}")
    con.close()
    with Ledger(path) as ledger:
        ledger.append(make_row(100))
        assert ledger.flush(timeout_s=30)
        [(n,)] = ledger.query("SELECT count(*) FROM calls")
        [(m,)] = ledger.query("SELECT sum(attempts) FROM spend_by_model")
    assert n == m == 21
    con = duckdb.connect(str(path), read_only=True)
    kinds = dict(
        con.execute(
            "SELECT table_name, table_type FROM information_schema.tables "
            "WHERE table_name IN ('calls', 'spend_by_day')"
        ).fetchall()
    )
    assert kinds == {"calls": "VIEW", "spend_by_day": "VIEW"}
    assert con.execute("SELECT count(*) FROM calls").fetchone() == (21,)
    con.close()


def test_connect_and_status_and_cli(tmp_path: Path, make_row):
    path = tmp_path / "s.duckdb"
    _fill(path, make_row, batches=3, per=5)
    spool = Path(str(path) + ".spool")
    from finops.ledger.spool import encode

    (spool / "77777-dead0000-000001.jsonl").write_bytes(encode(make_row(500)))
    with connect(path) as con:
        assert con.execute("SELECT count(*) FROM calls").fetchone() == (15,)
    st = status(path)
    assert (st.rows, st.segment_parts, st.spooled_rows, st.spool_segments) == (15, 3, 1, 1)
    assert st.spool_lag_s is not None and st.spool_lag_s > 0
    runner = CliRunner()
    out = runner.invoke(app, ["ledger", "status", "--ledger", str(path)])
    assert out.exit_code == 0, out.output
    assert "15 visible" in out.output and "1 rows in 1 segment" in out.output
    out = runner.invoke(app, ["ledger", "compact", "--ledger", str(path)])
    assert out.exit_code == 0 and "merged 3 parts" in out.output, out.output
    out = runner.invoke(app, ["ledger", "status", "--ledger", str(path), "--json"])
    assert '"compacted_rows": 15' in out.output
    report = runner.invoke(app, ["report", "--ledger", str(path)])
    assert report.exit_code == 0 and "gpt-4o" in report.output


def _columns(part: Path) -> set[str]:
    con = duckdb.connect()
    try:
        rows = con.execute(f"DESCRIBE SELECT * FROM read_parquet('{part}')").fetchall()
    finally:
        con.close()
    return {str(r[0]) for r in rows}


def test_tags_stay_json_text_in_fresh_parts_and_read_as_a_map(tmp_path: Path, make_row):
    """The ingest fast path stores ``tags`` as its JSON text (``_tags_json``); the ``calls``
    view and compaction build the MAP. A part written the old way (a MAP) reads the same,
    alone and merged with new ones, and a tags value that is not an object reads as NULL."""
    path = tmp_path / "t.duckdb"
    parts = parts_dir_for(path)
    _fill(path, make_row, batches=2, per=3)
    fresh = sorted(parts.glob("s-*.parquet"))
    assert len(fresh) == 2
    assert "_tags_json" in _columns(fresh[0]) and "tags" not in _columns(fresh[0])
    # A part from an older finops: tags as a MAP.
    spool = tmp_path / "old.jsonl"
    spool.write_bytes(
        b"".join(encode(make_row(i, tags={"team": "old", "k": f"v{i}"})) for i in (10, 11))
    )
    con = duckdb.connect()
    con.execute(f"COPY ({select_sql([spool])}) TO '{parts / 's-old.parquet'}' (FORMAT parquet)")
    con.close()
    # A line whose tags is not an object (a hand-edited or foreign spool line).
    bad = encode(make_row(12)).replace(b'{"team":"search","feature":"f0"}', b'"not an object"')
    assert bad != encode(make_row(12))
    (tmp_path / "t.duckdb.spool" / "4242-deadbeef-000001.jsonl").write_bytes(bad)

    def read(con: duckdb.DuckDBPyConnection) -> dict[str, object]:
        rows = con.execute("SELECT row_id, tags FROM calls ORDER BY row_id").fetchall()
        return dict(rows)

    expected: dict[str, object] = {f"row-{i}": make_row(i).tags for i in range(6)}
    expected |= {f"row-{i}": {"team": "old", "k": f"v{i}"} for i in (10, 11)}
    expected["row-12"] = None
    with Ledger(path) as ledger:  # replays the foreign line
        assert ledger.flush(timeout_s=30)
        raw = duckdb.connect(str(path), read_only=True)
        assert read(raw) == expected
        assert raw.execute(
            "SELECT tags['team'], count(*) FROM calls GROUP BY 1 ORDER BY 1"
        ).fetchall() == [("old", 2), ("search", 6), (None, 1)]
        raw.close()
    result = compact(path, grace_s=3600)
    assert result.merged_parts == 4 and result.rows == 9
    merged = parts / str(result.new_part)
    assert "tags" in _columns(merged) and "_tags_json" not in _columns(merged)
    time.sleep(ACTIVATION_MS / 1000 + 0.3)  # the compacted part is in effect
    raw = duckdb.connect(str(path), read_only=True)
    assert read(raw) == expected
    raw.close()


def test_a_catalog_with_an_older_view_gets_the_current_one(tmp_path: Path, make_row):
    """A catalog whose ``calls`` view predates the text columns (no ``view`` version
    recorded) is brought up to date by the next writer, so raw readers see ``tags``."""
    path = tmp_path / "v.duckdb"
    _fill(path, make_row, batches=1, per=2)
    con = duckdb.connect(str(path))
    old_view = con.execute("SELECT sql FROM duckdb_views() WHERE view_name = 'calls'").fetchone()
    assert old_view is not None and "_tags_json" in old_view[0]
    con.execute("DELETE FROM _finops_layout WHERE key = 'view'")
    con.execute(
        "CREATE OR REPLACE VIEW calls AS SELECT * EXCLUDE (_tags_json, filename) "
        f"FROM read_parquet('{parts_dir_for(path).resolve()}/*.parquet', union_by_name = true, "
        "filename = true)"
    )
    con.close()
    _fill(path, make_row, batches=1, per=2, start=2)
    raw = duckdb.connect(str(path), read_only=True)
    got = raw.execute("SELECT count(*), count(tags) FROM calls").fetchone()
    raw.close()
    assert got == (4, 4)


def test_a_lone_one_segment_part_is_folded_once_it_is_old(tmp_path: Path, make_row):
    """The automatic (tiered) compaction folds a one-segment part (tags still text) even
    alone once it is ``SEGMENT_MAX_AGE_S`` old, so tags queries do not keep paying for it."""
    from finops.ledger.compact import SEGMENT_MAX_AGE_S
    from finops.ledger.compact import compact as tiered_compact

    path = tmp_path / "lone.duckdb"
    _fill(path, make_row, batches=1, per=5)
    parts = parts_dir_for(path)
    con = duckdb.connect()
    try:
        young = tiered_compact(con, parts, min_parts=16, tiered=True)
        assert young.merged_parts == 0 and young.skipped
        old = tiered_compact(
            con, parts, min_parts=16, tiered=True, clock=lambda: time.time() + SEGMENT_MAX_AGE_S
        )
        assert old.merged_parts == 1 and old.rows == 5
        assert "tags" in _columns(parts / str(old.new_part))
    finally:
        con.close()


def test_a_filesystem_without_hard_links_gets_copies(tmp_path: Path, make_row, monkeypatch):
    """Some network and FUSE mounts refuse hard links (EPERM): the link directories then get
    complete copies, so rows still land and raw readers still see each one once."""
    import errno
    import os

    from finops.ledger import layout

    def no_links(src: object, dst: object) -> None:
        raise OSError(errno.EPERM, "Operation not permitted", str(dst))

    monkeypatch.setattr(layout.os, "link", no_links)
    path = tmp_path / "nolinks.duckdb"
    _fill(path, make_row, batches=3, per=20)
    parts = parts_dir_for(path)
    assert (parts / layout.LAYOUT_FILE).exists()
    canonical = {p.name for p in parts.glob("*.parquet")}
    assert len(canonical) >= 3
    for d in layout.LINK_DIRS:
        copies = list((parts / d).glob("*.parquet"))
        assert {c.name for c in copies} == canonical
        assert all(os.stat(c).st_nlink == 1 for c in copies)  # copies, not links
    assert not list(parts.rglob("*.tmp"))
    con = duckdb.connect(str(path), read_only=True)
    assert con.execute("SELECT count(*), count(DISTINCT row_id) FROM calls").fetchone() == (60, 60)
    con.close()
    assert compact(path, grace_s=3600).rows == 60
    con = duckdb.connect(str(path), read_only=True)
    assert con.execute("SELECT count(*), count(DISTINCT row_id) FROM calls").fetchone() == (60, 60)
    con.close()
