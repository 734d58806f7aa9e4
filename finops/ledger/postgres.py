"""The multi-host mode: the ledger in PostgreSQL (``Ledger("postgresql://...")``).

Each host keeps its own local spool (the hot path is the same ``os.write``); its writer
thread converts closed segments with DuckDB (the same reader as the local layout) to CSV
and streams them with ``COPY`` into a staging table, then
``INSERT ... ON CONFLICT (row_id) DO NOTHING`` into ``calls`` in one transaction: an ingest
repeated after a crash adds nothing. PostgreSQL's MVCC lets analysts hold connections and
long transactions open without ever blocking writers.

Schema: ``calls`` has one column per :class:`~finops.ledger.row.LedgerRow` field
(``tags`` is an ``hstore``, so ``tags['team']`` reads as in DuckDB;
``server_tool_requests`` is ``jsonb``); a new field becomes ``ALTER TABLE ... ADD COLUMN
IF NOT EXISTS`` on the next start. The analyst views (``spend_by_day``, ``spend_by_tag``,
``spend_by_model``, ``savings_by_cause``, ``estimate_accuracy``) have the same names and columns as in DuckDB.
Needs the ``hstore`` extension (in PostgreSQL's contrib, created here if the user may).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
from pathlib import Path
from typing import Any

from finops.errors import LedgerError
from finops.ledger.migrations import (
    COLUMN_TYPES,
    SAVINGS_CACHE_ROWS,
    SAVINGS_MEASURES,
    SAVINGS_ROUTING_ROWS,
)
from finops.ledger.spool import select_sql

__all__ = ["PG_TYPES", "PostgresStore"]


def _pg_type(name: str, kind: str) -> str:
    if kind.startswith("DECIMAL"):
        return "NUMERIC(38, 12)"
    if kind == "MAP(VARCHAR, VARCHAR)":
        return "hstore"
    if kind.startswith("MAP"):
        return "jsonb"
    return {"DOUBLE": "double precision", "VARCHAR": "text"}.get(kind, kind)


#: PostgreSQL type of every ``calls`` column.
PG_TYPES: dict[str, str] = {n: _pg_type(n, k) for n, k in COLUMN_TYPES.items()}

_INPUT = (
    "coalesce(input_tokens,0) + coalesce(cache_read_tokens,0) + coalesce(cache_write_5m_tokens,0)"
    " + coalesce(cache_write_1h_tokens,0) + coalesce(input_audio_tokens,0)"
    " + coalesce(cache_read_audio_tokens,0)"
)
_OUTPUT = (
    "coalesce(output_tokens,0) + coalesce(reasoning_tokens,0) + coalesce(output_audio_tokens,0)"
)
_SPEND = "status IN ('ok', 'cancelled', 'error', 'cache_hit')"

VIEWS = {
    "spend_by_day": f"""
        SELECT (ts_start AT TIME ZONE 'UTC')::date AS day, provider,
               coalesce(served_model, requested_model) AS model,
               count(DISTINCT call_id) AS calls, count(*) AS attempts,
               sum({_INPUT}) AS input_tokens, sum({_OUTPUT}) AS output_tokens,
               coalesce(sum(cost_total), 0) AS cost
        FROM calls WHERE {_SPEND} GROUP BY 1, 2, 3""",
    "spend_by_tag": f"""
        SELECT e.key AS tag, e.value AS value, (ts_start AT TIME ZONE 'UTC')::date AS day,
               count(DISTINCT call_id) AS calls, count(*) AS attempts,
               sum({_INPUT}) AS input_tokens, sum({_OUTPUT}) AS output_tokens,
               coalesce(sum(cost_total), 0) AS cost
        FROM calls CROSS JOIN LATERAL each(tags) AS e(key, value)
        WHERE {_SPEND} GROUP BY 1, 2, 3""",
    "spend_by_model": f"""
        SELECT provider, coalesce(served_model, requested_model) AS model,
               count(DISTINCT call_id) AS calls, count(*) AS attempts,
               sum({_INPUT}) AS input_tokens, sum({_OUTPUT}) AS output_tokens,
               coalesce(sum(cost_total), 0) AS cost,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY latency_ms) AS median_latency_ms
        FROM calls WHERE {_SPEND} GROUP BY 1, 2""",
    "savings_by_cause": f"""
        SELECT (ts_start AT TIME ZONE 'UTC')::date AS day,
               'cache' AS cause, cache_status AS detail,
               {SAVINGS_MEASURES}
        FROM calls WHERE {SAVINGS_CACHE_ROWS} GROUP BY 1, 2, 3, 4
        UNION ALL
        SELECT (ts_start AT TIME ZONE 'UTC')::date AS day,
               'routing' AS cause, requested_model AS detail,
               {SAVINGS_MEASURES}
        FROM calls WHERE {SAVINGS_ROUTING_ROWS}
        GROUP BY 1, 2, 3, 4""",
    "estimate_accuracy": f"""
        WITH e AS (
            SELECT regexp_replace(coalesce(served_model, requested_model),
                                  '-(\\d{{4}}-\\d{{2}}-\\d{{2}}|\\d{{8}})$', '') AS family,
                   est_exact,
                   (est_input_tokens - ({_INPUT}))::float8 / ({_INPUT}) AS rel_error
            FROM calls
            WHERE status = 'ok' AND est_input_tokens IS NOT NULL AND ({_INPUT}) > 0
              AND NOT usage_estimated
        )
        SELECT family, est_exact, count(*) AS n,
               avg(rel_error) AS mean_rel_error,
               avg(abs(rel_error)) AS mean_abs_rel_error,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY abs(rel_error)) AS median_abs_rel_error,
               percentile_cont(0.95) WITHIN GROUP (ORDER BY abs(rel_error)) AS p95_abs_rel_error,
               max(abs(rel_error)) AS max_abs_rel_error
        FROM e GROUP BY 1, 2 ORDER BY family""",
}


def _casts() -> str:
    out = []
    for name, kind in PG_TYPES.items():
        if kind == "hstore":
            out.append(
                f"(SELECT coalesce(hstore(array_agg(j.key), array_agg(j.value)), ''::hstore) "
                f"FROM jsonb_each_text(s.{name}::jsonb) AS j) AS {name}"
            )
        else:
            out.append(f"s.{name}::{kind}")
    return ", ".join(out)


class PostgresStore:
    """Ingest spool segments into PostgreSQL; run readers' SQL there."""

    def __init__(self, url: str) -> None:
        try:
            import psycopg
        except ModuleNotFoundError as exc:
            raise LedgerError(
                "a postgresql:// ledger needs psycopg: pip install 'finops[postgres]'"
            ) from exc
        import duckdb

        self.url = url
        self._psycopg = psycopg
        self._lock = threading.Lock()
        self._duck = duckdb.connect(":memory:", config={"threads": 1})
        self._duck.execute("SET enable_progress_bar = false")  # not on the app's stdout
        self._con: Any = None
        self._reader: Any = None
        self._setup()

    def _connect(self) -> Any:
        con = self._psycopg.connect(self.url, autocommit=True, connect_timeout=10)
        with contextlib.suppress(Exception):
            from psycopg.types import TypeInfo
            from psycopg.types.hstore import register_hstore

            info = TypeInfo.fetch(con, "hstore")
            if info is not None:
                register_hstore(info, con)
        return con

    def _writer(self) -> Any:
        if self._con is None or self._con.closed:
            self._con = self._connect()
        return self._con

    def _setup(self) -> None:
        """Create what is missing (table, columns, views). DDL only when something is
        missing: an analyst's open transaction on ``calls`` would make it wait."""
        con = self._psycopg.connect(self.url, autocommit=True, connect_timeout=10)
        try:
            have = {
                r[0]
                for r in con.execute(
                    "SELECT column_name FROM information_schema.columns "
                    "WHERE table_schema = current_schema() AND table_name = 'calls'"
                ).fetchall()
            }
            views = {
                r[0]
                for r in con.execute(
                    "SELECT viewname FROM pg_views WHERE schemaname = current_schema()"
                ).fetchall()
            }
            if set(PG_TYPES) <= have and set(VIEWS) <= views:
                return
            with con.transaction():
                con.execute("SET LOCAL lock_timeout = '10s'")
                con.execute("SELECT pg_advisory_xact_lock(4242017)")  # one set-up at a time
                con.execute("CREATE EXTENSION IF NOT EXISTS hstore")
                cols = ", ".join(f"{n} {t}" for n, t in PG_TYPES.items() if n != "row_id")
                con.execute(f"CREATE TABLE IF NOT EXISTS calls (row_id text PRIMARY KEY, {cols})")
                for name, kind in PG_TYPES.items():
                    if name not in have:
                        con.execute(f"ALTER TABLE calls ADD COLUMN IF NOT EXISTS {name} {kind}")
                con.execute("CREATE INDEX IF NOT EXISTS calls_ts_start ON calls (ts_start)")
                for name, sql in VIEWS.items():
                    con.execute(f"CREATE OR REPLACE VIEW {name} AS {sql}")
        finally:
            con.close()

    def ingest(self, segments: list[Path], *, replay: bool) -> None:
        """COPY the segments into a staging table, then insert the rows not there yet."""
        del replay  # always idempotent by row_id
        maps = [n for n, t in PG_TYPES.items() if t in ("hstore", "jsonb")]
        replace = ", ".join(f"to_json({n}) AS {n}" for n in maps)
        fd, tmp = tempfile.mkstemp(prefix="finops-pg-", suffix=".csv")
        os.close(fd)
        try:
            self._duck.execute(
                f"COPY (SELECT * REPLACE ({replace}) FROM ({select_sql(segments)})) "
                f"TO '{tmp}' (FORMAT csv, HEADER false, nullstr '\\N')"
            )
            names = ", ".join(PG_TYPES)
            con = self._writer()
            try:
                with con.transaction():
                    con.execute(
                        "CREATE TEMP TABLE IF NOT EXISTS finops_stage ("
                        + ", ".join(f"{n} text" for n in PG_TYPES)
                        + ") ON COMMIT DELETE ROWS"
                    )
                    with (
                        con.cursor().copy(
                            f"COPY finops_stage ({names}) FROM STDIN (FORMAT csv, NULL '\\N')"
                        ) as copy,
                        open(tmp, "rb") as fh,
                    ):
                        while chunk := fh.read(1 << 20):
                            copy.write(chunk)
                    con.execute(
                        f"INSERT INTO calls ({names}) SELECT {_casts()} FROM finops_stage AS s "
                        "ON CONFLICT (row_id) DO NOTHING"
                    )
            except Exception:
                with contextlib.suppress(Exception):
                    con.close()
                self._con = None
                raise
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)

    def query(self, sql: str, params: list[Any] | None) -> list[tuple[Any, ...]]:
        """Run PostgreSQL SQL (``?`` placeholders accepted) on a reader connection."""
        if params:
            sql = sql.replace("%", "%%").replace("?", "%s")
        with self._lock:
            if self._reader is None or self._reader.closed:
                self._reader = self._connect()
            try:
                return list(self._reader.execute(sql, params or None).fetchall())
            except self._psycopg.OperationalError:
                self._reader = None
                raise

    def maintain(self) -> None:
        """Nothing to do: PostgreSQL vacuums itself."""

    def close(self) -> None:
        for con in (self._con, self._reader):
            if con is not None:
                with contextlib.suppress(Exception):
                    con.close()
        self._con = self._reader = None
        self._duck.close()
