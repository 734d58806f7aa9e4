"""The ledger in one process: round trip, migrations, replay, views, the hot path's promises."""

from __future__ import annotations

import contextlib
import dataclasses
import math
import threading
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from finops.errors import LedgerError, MigrationError
from finops.ledger import Ledger
from finops.ledger.migrations import MIGRATIONS
from finops.ledger.row import LedgerRow
from finops.ledger.spool import encode

NAMES = [f.name for f in dataclasses.fields(LedgerRow)]


def fetch_all(ledger: Ledger) -> dict[str, dict[str, object]]:
    rows = ledger.query(f"SELECT {', '.join(NAMES)} FROM calls")
    return {r[0]: dict(zip(NAMES, r, strict=True)) for r in rows}


def test_every_field_round_trips_exactly(tmp_path: Path, make_row):
    full = make_row(
        1,
        trace_id="trace",
        parent_id="parent",
        stream=True,
        error_type="RateLimitError",
        error_message='quote " backslash \\ newline \n tab \t',
        route_decision="downgrade:gpt-4o-mini",
        cache_status="miss",
        cache_write_5m_tokens=7,
        cache_write_1h_tokens=8,
        input_audio_tokens=9,
        cache_read_audio_tokens=10,
        reasoning_tokens=11,
        output_audio_tokens=12,
        server_tool_requests={"web_search": 2, "code_execution": 1},
        usage_estimated=True,
        usage_mismatch="prompt_tokens 10 != 9",
        cost_cache_write=Decimal("0.000000000001"),  # 1e-12: the smallest DECIMAL(38,12) step
        cost_tools=Decimal("0.01"),
        cost_steps=Decimal("1E-12"),
        counterfactual_cost=Decimal("12345678901234567890123456.123456789012"),
        currency="USD",
        est_input_tokens=1490,
        est_output_tokens_max=4096,
        est_cost_max=Decimal("0.5"),
        est_exact=False,
        budget_flags="warn:team-day",
        tags={"team": "search", "ünïcode": "✓ 日本", "empty": ""},
        prompt_text="héllo ✓ 🎉",
        response_text="x" * 10_000,
        finops_error="pricing: boom",
        ts_start=datetime(2026, 11, 20, 23, 59, 59, 999_999, tzinfo=UTC),
    )
    minimal = LedgerRow(
        row_id="min",
        call_id="c",
        attempt=0,
        ts_start=datetime(2026, 1, 1, tzinfo=UTC),
        ts_end=datetime(2026, 1, 1, tzinfo=UTC),
        latency_ms=0.0,
        provider="anthropic",
        endpoint="messages",
        status="blocked",
    )
    with Ledger(tmp_path / "l.duckdb") as ledger:
        ledger.append(full)
        ledger.append(minimal)
        assert ledger.flush(timeout_s=30)
        got = fetch_all(ledger)
    assert got["row-1"] == dataclasses.asdict(full)
    assert got["min"] == dataclasses.asdict(minimal)
    assert type(got["row-1"]["cost_total"]) is Decimal
    assert got["row-1"]["tags"]["ünïcode"] == "✓ 日本"  # type: ignore[index]


def test_non_utc_times_are_stored_as_the_same_instant(tmp_path: Path, make_row):
    from zoneinfo import ZoneInfo

    paris = datetime(2026, 11, 20, 10, 0, tzinfo=ZoneInfo("Europe/Paris"))
    with Ledger(tmp_path / "tz.duckdb") as ledger:
        ledger.append(make_row(1, ts_start=paris))
        assert ledger.flush(timeout_s=30)
        [(ts,)] = ledger.query("SELECT ts_start FROM calls")
    assert ts == paris and ts.astimezone(UTC).hour == 9


def test_append_never_raises_and_counts_what_it_drops(tmp_path: Path, make_row):
    ledger = Ledger(tmp_path / "b.duckdb")
    ledger.append(make_row(1, tags={"x": object()}))  # not JSON-serializable
    ledger.append("not a row")  # type: ignore[arg-type]
    ledger.append(make_row(2, latency_ms=math.nan))  # kept, latency stored as NULL
    assert ledger.dropped == 2
    assert ledger.flush(timeout_s=30)
    assert ledger.query("SELECT row_id, latency_ms FROM calls") == [("row-2", None)]
    ledger.close()
    ledger.close()  # idempotent
    ledger.append(make_row(3))  # after close: spooled for the next ledger, not raised
    assert ledger.dropped == 2
    with Ledger(tmp_path / "b.duckdb") as again:
        assert again.flush(timeout_s=30)
        assert sorted(r[0] for r in again.query("SELECT row_id FROM calls")) == ["row-2", "row-3"]


def test_migrations_fresh_reopen_and_newer_schema(tmp_path: Path, make_row):
    path = tmp_path / "m.duckdb"
    Ledger(path).close()
    con = duckdb.connect(str(path))
    first = con.execute("SELECT name, applied_at FROM _finops_migrations ORDER BY name").fetchall()
    con.close()
    assert [name for name, _ in first] == [name for name, _ in MIGRATIONS]

    Ledger(path).close()  # re-open: nothing applied again
    con = duckdb.connect(str(path))
    again = con.execute("SELECT name, applied_at FROM _finops_migrations ORDER BY name").fetchall()
    columns = [r[0] for r in con.execute("DESCRIBE calls").fetchall()]
    types = dict(
        con.execute(
            "SELECT column_name, data_type FROM duckdb_columns() WHERE table_name = 'calls'"
        ).fetchall()
    )
    con.execute("INSERT INTO _finops_migrations (name) VALUES ('m999_from_the_future')")
    con.close()
    assert again == first
    assert columns == NAMES  # exactly the LedgerRow fields, in order
    assert types["cost_total"] == "DECIMAL(38,12)"
    assert types["tags"] == "MAP(VARCHAR, VARCHAR)"
    assert types["server_tool_requests"] == "MAP(VARCHAR, BIGINT)"
    assert types["ts_start"] == "TIMESTAMP WITH TIME ZONE"

    # The catalog is opened by the writer, not by Ledger(): a ledger written by a newer
    # finops never breaks the caller's start or calls; flush() and query() raise it, and
    # the rows wait in the spool for a finops that can write them.
    ledger = Ledger(path, flush_interval_s=0.05)
    ledger.append(make_row(1))
    with pytest.raises(MigrationError, match=r"newer finops.*m999_from_the_future"):
        ledger.flush(timeout_s=30)
    with pytest.raises(MigrationError, match=r"newer finops"):
        ledger.query("SELECT count(*) FROM calls")
    assert ledger.last_error is not None and "m999_from_the_future" in ledger.last_error
    ledger.close()
    assert len(list((tmp_path / "m.duckdb.spool").glob("*.jsonl"))) == 1  # the row waits
    con = duckdb.connect(str(path), read_only=True)
    assert con.execute("SELECT count(*) FROM calls").fetchone() == (0,)  # nothing written
    con.close()


def test_replay_is_idempotent_by_row_id(tmp_path: Path, make_row):
    path, spool = tmp_path / "r.duckdb", tmp_path / "spool"
    with Ledger(path, spool_dir=spool) as ledger:
        for i in range(3):
            ledger.append(make_row(i))
        assert ledger.flush(timeout_s=30)
    # A process died after COMMIT but before deleting its segment; another left a new row and
    # a torn last line (a partial write).
    (spool / "4242-deadbeef-000001.jsonl").write_bytes(
        b"".join(encode(make_row(i)) for i in range(3))
    )
    (spool / "4243-deadbeef-000007.jsonl").write_bytes(
        encode(make_row(2)) + encode(make_row(3)) + encode(make_row(4))[:40]
    )
    (spool / "4244-deadbeef-000002.jsonl").write_bytes(b"")  # empty: just deleted
    with Ledger(path, spool_dir=spool) as ledger:
        assert ledger.flush(timeout_s=30)
        counts = dict(ledger.query("SELECT row_id, count(*) FROM calls GROUP BY 1"))
    assert counts == {"row-0": 1, "row-1": 1, "row-2": 1, "row-3": 1}
    assert not list(spool.glob("*.jsonl"))


class _OpenRecorder(Ledger):
    """A Ledger that notes which thread opened its store (the real DuckDB store)."""

    opened_on: list[str]

    def _open_store(self, **kw: object) -> object:  # type: ignore[override]
        self.opened_on.append(threading.current_thread().name)
        return super()._open_store(**kw)


def test_adopt_after_a_crash_opens_nothing_on_the_callers_thread(tmp_path: Path, make_row):
    """Rows rebuilt after a crash (``adopt``) are spooled on the caller's thread and replayed
    by the writer: the caller neither opens DuckDB nor waits for the replay, and every
    flush() after adopt() covers them, deduplicated by row_id."""
    path, spool = tmp_path / "a.duckdb", tmp_path / "spool"
    with Ledger(path, spool_dir=spool) as first:
        first.append(make_row(0))
        assert first.flush(timeout_s=30)
    _OpenRecorder.opened_on = []
    ledger = _OpenRecorder(path, spool_dir=spool, flush_interval_s=3600, orphan_scan_s=3600)
    try:
        ledger.adopt([make_row(0), make_row(1), make_row(2)])  # row-0 already landed
        ledger.replay_orphans()
        assert threading.current_thread().name not in _OpenRecorder.opened_on
        assert ledger.flush(timeout_s=30)
        assert _OpenRecorder.opened_on == ["finops-ledger-writer"]
        counts = dict(ledger.query("SELECT row_id, count(*) FROM calls GROUP BY 1"))
        assert counts == {"row-0": 1, "row-1": 1, "row-2": 1}
        # A later adoption is covered by the next flush too, although the first look ran.
        ledger.adopt([make_row(3)])
        assert ledger.flush(timeout_s=30)
        assert ledger.query("SELECT count(*) FROM calls WHERE row_id = 'row-3'") == [(1,)]
    finally:
        ledger.close()
    assert not list(spool.glob("*.jsonl"))


def test_segments_of_a_live_process_are_not_replayed(tmp_path: Path, make_row):
    path, spool = tmp_path / "live.duckdb", tmp_path / "spool"
    first = Ledger(path, spool_dir=spool, flush_interval_s=3600)
    first.append(make_row(1))  # spooled, locked by `first`, not ingested yet
    first.close(timeout_s=0)  # stops without flushing: the segment is left for replay
    assert len(list(spool.glob("*.jsonl"))) == 1

    live = Ledger(path, spool_dir=spool, flush_interval_s=3600, idle_close_s=0.05)
    live.append(make_row(2))
    other = Ledger(path, spool_dir=spool, orphan_scan_s=0.05)
    try:
        # `other` replayed first's orphan, but must leave `live`'s locked segment alone.
        deadline = time.monotonic() + 10
        ids: list[str] = []
        while time.monotonic() < deadline and "row-1" not in ids:
            time.sleep(0.05)
            with contextlib.suppress(LedgerError):  # `live` may hold the file for a moment
                ids = [r[0] for r in other.query("SELECT row_id FROM calls")]
        assert ids == ["row-1"]
    finally:
        other.close()
    assert live.flush(timeout_s=30)
    assert sorted(r[0] for r in live.query("SELECT row_id FROM calls")) == ["row-1", "row-2"]
    live.close()


def test_max_batch_splits_segments_and_transactions(tmp_path: Path, make_row):
    with Ledger(tmp_path / "mb.duckdb", max_batch=7, flush_interval_s=3600) as ledger:
        for i in range(50):
            ledger.append(make_row(i))
        assert ledger.flush(timeout_s=30)
        assert ledger.pending_rows == 0
        [(n, distinct)] = ledger.query("SELECT count(*), count(DISTINCT row_id) FROM calls")
    assert n == distinct == 50


def test_flush_waits_only_for_rows_before_the_call_and_closes_idle_file(tmp_path: Path, make_row):
    path = tmp_path / "idle.duckdb"
    ledger = Ledger(path, idle_close_s=0.1, flush_interval_s=0.05)
    ledger.append(make_row(1))
    assert ledger.flush(timeout_s=30)
    # Idle: the writer lets go of the file, so another process (an analyst) can open it.
    deadline = time.monotonic() + 10
    while True:
        try:
            con = duckdb.connect(str(path), read_only=True)
            break
        except duckdb.Error:
            assert time.monotonic() < deadline, "the writer never released an idle ledger"
            time.sleep(0.05)
    con.close()
    ledger.close()


def test_an_open_connection_never_stops_the_writer(tmp_path: Path, make_row):
    path = tmp_path / "c.duckdb"
    with Ledger(path, flush_interval_s=0.05) as ledger:
        ledger.append(make_row(1))
        con = ledger.connect()
        catalog = duckdb.connect(str(path), read_only=True)  # what an analyst opens
        assert con.execute("SELECT count(*) FROM calls").fetchone() == (1,)
        assert catalog.execute("SELECT count(*) FROM calls").fetchone() == (1,)
        with pytest.raises(duckdb.Error):
            con.execute("DELETE FROM calls")  # a view over immutable parts
        for i in range(2, 5):
            ledger.append(make_row(i))
            assert ledger.flush(timeout_s=5)  # both connections stay open
            assert con.execute("SELECT count(*) FROM calls").fetchone() == (i,)
            assert catalog.execute("SELECT count(*) FROM calls").fetchone() == (i,)
        con.close()
        catalog.close()


def day(i: int) -> datetime:
    return datetime(2026, 11, 1, 12, tzinfo=UTC) + timedelta(days=i)


def test_views_on_a_known_dataset(tmp_path: Path, make_row):
    rows = [
        # day 0: two openai calls (one retried: two attempts, the 429 costs nothing)
        make_row(
            1,
            call_id="A",
            attempt=1,
            status="error",
            http_status=429,
            input_tokens=None,
            cache_read_tokens=None,
            output_tokens=None,
            cost_total=None,
            ts_start=day(0),
            tags={"team": "search"},
        ),
        make_row(
            2,
            call_id="A",
            attempt=2,
            ts_start=day(0),
            cost_total=Decimal("0.010000000001"),
            input_tokens=100,
            cache_read_tokens=50,
            output_tokens=10,
            est_input_tokens=165,
            tags={"team": "search"},
        ),
        make_row(
            3,
            call_id="B",
            ts_start=day(0),
            cost_total=Decimal("0.02"),
            input_tokens=200,
            cache_read_tokens=0,
            output_tokens=20,
            est_input_tokens=180,
            tags={"team": "ads", "env": "prod"},
        ),
        # day 1: an anthropic call with cache writes + a blocked call + a cache hit
        make_row(
            4,
            call_id="C",
            ts_start=day(1),
            provider="anthropic",
            endpoint="messages",
            requested_model="claude-sonnet-4-5",
            served_model="claude-sonnet-4-5-20250929",
            input_tokens=10,
            cache_read_tokens=0,
            cache_write_5m_tokens=80,
            cache_write_1h_tokens=10,
            output_tokens=5,
            cost_total=Decimal("0.3"),
            est_input_tokens=90,
            tags={"team": "search"},
        ),
        make_row(
            5,
            call_id="D",
            ts_start=day(1),
            status="blocked",
            attempt=0,
            cost_total=Decimal("9"),
            tags={"team": "search"},
        ),
        make_row(
            6,
            call_id="E",
            ts_start=day(1),
            status="cache_hit",
            cost_total=Decimal("0"),
            input_tokens=100,
            cache_read_tokens=0,
            output_tokens=10,
            counterfactual_cost=Decimal("0.01"),
            tags={"team": "ads"},
        ),
    ]
    with Ledger(tmp_path / "v.duckdb") as ledger:
        for r in rows:
            ledger.append(r)
        assert ledger.flush(timeout_s=30)
        by_day = ledger.query(
            "SELECT day, provider, model, calls, attempts, input_tokens, output_tokens, cost "
            "FROM spend_by_day ORDER BY day, provider"
        )
        by_tag = ledger.query(
            "SELECT tag, value, day, calls, cost FROM spend_by_tag ORDER BY day, tag, value"
        )
        by_model = ledger.query(
            "SELECT provider, model, calls, cost FROM spend_by_model ORDER BY provider"
        )
        accuracy = ledger.query(
            "SELECT family, n, mean_rel_error, median_abs_rel_error, p95_abs_rel_error "
            "FROM estimate_accuracy ORDER BY family"
        )
    d0, d1 = day(0).date(), day(1).date()
    assert by_day == [
        (d0, "openai", "gpt-4o-2024-08-06", 2, 3, 350, 30, Decimal("0.030000000001")),
        (d1, "anthropic", "claude-sonnet-4-5-20250929", 1, 1, 100, 5, Decimal("0.3")),
        (d1, "openai", "gpt-4o-2024-08-06", 1, 1, 100, 10, Decimal("0")),  # the cache hit
    ]
    assert by_tag == [
        ("env", "prod", d0, 1, Decimal("0.02")),
        ("team", "ads", d0, 1, Decimal("0.02")),
        ("team", "search", d0, 1, Decimal("0.010000000001")),
        ("team", "ads", d1, 1, Decimal("0")),
        ("team", "search", d1, 1, Decimal("0.3")),  # the blocked row is not spend
    ]
    assert by_model == [
        ("anthropic", "claude-sonnet-4-5-20250929", 1, Decimal("0.3")),
        ("openai", "gpt-4o-2024-08-06", 3, Decimal("0.030000000001")),
    ]
    # relative errors: openai (165-150)/150 = 0.1, (180-200)/200 = -0.1; anthropic 90/100-1
    (fam_a, n_a, mean_a, med_a, p95_a), (fam_o, n_o, mean_o, med_o, p95_o) = accuracy
    assert (fam_a, n_a) == ("claude-sonnet-4-5", 1)
    assert mean_a == pytest.approx(-0.1) and med_a == pytest.approx(0.1)
    assert p95_a == pytest.approx(0.1)
    assert (fam_o, n_o) == ("gpt-4o", 2)
    assert mean_o == pytest.approx(0.0) and med_o == pytest.approx(0.1)
    assert p95_o == pytest.approx(0.1)
