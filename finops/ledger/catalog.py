"""The catalog: the DuckDB file analysts open, holding views over the Parquet parts.

Migrations (:mod:`finops.ledger.migrations`) are written against a *table* ``calls``
(``m001`` creates it, later ones may ``ALTER`` it and create views on it). :func:`install`
keeps that contract on every layout: before pending migrations run it turns the ``calls``
view back into an (empty) table with the recorded columns, runs them, then moves any rows
the table holds (an old single-file ledger) into a Parquet part and makes ``calls`` a view
over the parts again. The views the migrations create (``spend_by_day``, ...) bind to
``calls`` by name, so they read the parts too.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import time
import weakref
from pathlib import Path
from typing import Any

from finops.errors import MigrationError
from finops.ledger.layout import (
    COMPACTED_PREFIX,
    DEFAULT_MAX_QUERY_S,
    VIEW_VERSION,
    ensure_schema_seed,
    link_window_ms,
    publish_part,
    reader_lock,
    sync_links,
    view_sql,
)
from finops.ledger.migrations import MIGRATIONS, migrate

__all__ = ["CatalogStatus", "ensure_catalog", "install", "pending_migrations"]

log = logging.getLogger("finops.ledger")

_SCHEMA_TABLE = "_finops_calls_schema"
_LAYOUT_TABLE = "_finops_layout"
LEGACY_PART = f"{COMPACTED_PREFIX}legacy.parquet"
#: The storage format new catalog files are written in (readable by DuckDB >= 1.0).
CATALOG_STORAGE = "v1.0.0"


def _calls_kind(con: Any) -> str | None:
    row = con.execute(
        "SELECT table_type FROM information_schema.tables "
        "WHERE table_schema = 'main' AND table_name = 'calls'"
    ).fetchone()
    return None if row is None else str(row[0])


def _has_table(con: Any, name: str) -> bool:
    row = con.execute(
        "SELECT count(*) FROM information_schema.tables "
        "WHERE table_schema = 'main' AND table_name = ?",
        [name],
    ).fetchone()
    return bool(row and row[0])


def pending_migrations(con: Any) -> list[str]:
    """Names of the migrations not applied yet; raises MigrationError for a newer ledger."""
    if not _has_table(con, "_finops_migrations"):
        return [name for name, _ in MIGRATIONS]
    done = {r[0] for r in con.execute("SELECT name FROM _finops_migrations").fetchall()}
    known = {name for name, _ in MIGRATIONS}
    newer = sorted(done - known)
    if newer:
        raise MigrationError(
            f"this ledger was written by a newer finops (unknown migrations: {', '.join(newer)}); "
            f"upgrade finops to read it, or use a new ledger file"
        )
    return [name for name, _ in MIGRATIONS if name not in done]


def _recorded(con: Any, key: str) -> str | None:
    if not _has_table(con, _LAYOUT_TABLE):
        return None
    row = con.execute(f"SELECT value FROM {_LAYOUT_TABLE} WHERE key = ?", [key]).fetchone()
    return None if row is None else str(row[0])


def _view_current(con: Any, parts: Path) -> bool:
    return (
        _calls_kind(con) == "VIEW"
        and _recorded(con, "parts") == str(parts.resolve())
        and _recorded(con, "view") == VIEW_VERSION
    )


def is_current(con: Any, parts: Path) -> bool:
    """True when nothing needs doing: migrated, ``calls`` is a view over ``parts``."""
    return not pending_migrations(con) and _view_current(con, parts)


def columns_of(con: Any) -> list[tuple[str, str]]:
    """(name, type) of the ledger's columns, in order."""
    table = "calls" if _calls_kind(con) == "BASE TABLE" else _SCHEMA_TABLE
    return [(str(r[0]), str(r[1])) for r in con.execute(f"DESCRIBE {table}").fetchall()]


def install(
    con: Any, parts: Path, *, export: bool = True, max_query_s: float = DEFAULT_MAX_QUERY_S
) -> list[str]:
    """Bring the schema on ``con`` up to date with ``calls`` a view over ``parts``.

    ``export``: move rows found in a ``calls`` table (an old single-file ledger) into the
    part ``c-legacy.parquet``. ``max_query_s``: for a ledger whose link directories do not
    exist yet, the longest query a raw reader may run (see
    :func:`finops.ledger.layout.link_window_ms`). Returns the migrations applied now.
    """
    pending = pending_migrations(con)
    applied: list[str] = []
    if pending:
        if _calls_kind(con) == "VIEW":
            con.execute("DROP VIEW calls")
            con.execute(f"CREATE TABLE calls AS SELECT * FROM {_SCHEMA_TABLE}")
        applied = migrate(con)
    if _calls_kind(con) == "BASE TABLE":
        if export:
            [(n,)] = con.execute("SELECT count(*) FROM calls").fetchall()
            if n:
                # A fixed name: if we crash before the DROP below, the retry overwrites it.
                publish_part(con, "SELECT * FROM calls", parts / LEGACY_PART)
                log.info("finops ledger: moved %d rows of the old ledger table into %s", n, parts)
        con.execute("BEGIN TRANSACTION")
        con.execute(f"CREATE OR REPLACE TABLE {_SCHEMA_TABLE} AS SELECT * FROM calls LIMIT 0")
        con.execute("DROP TABLE calls")
        con.execute("COMMIT")
    columns = columns_of(con)
    link_window_ms(parts, max_query_s=max_query_s)  # the link directories exist
    ensure_schema_seed(con, parts, columns)
    sync_links(parts)  # a ledger from before the link directories: link its parts
    if not _view_current(con, parts):
        con.execute("BEGIN TRANSACTION")
        con.execute(f"CREATE OR REPLACE VIEW calls AS {view_sql(parts, columns)}")
        con.execute(
            f"CREATE TABLE IF NOT EXISTS {_LAYOUT_TABLE} (key VARCHAR PRIMARY KEY, value VARCHAR)"
        )
        con.execute(
            f"INSERT OR REPLACE INTO {_LAYOUT_TABLE} VALUES ('parts', ?), ('view', ?)",
            [str(parts.resolve()), VIEW_VERSION],
        )
        con.execute("COMMIT")
    return applied


class CatalogStatus:
    """What :func:`ensure_catalog` found: ``ready`` (current), or why it could not check."""

    def __init__(self, ready: bool, note: str = "") -> None:
        self.ready = ready
        self.note = note


def ensure_catalog(
    path: Path,
    parts: Path,
    *,
    timeout_s: float = 10.0,
    max_query_s: float = DEFAULT_MAX_QUERY_S,
) -> CatalogStatus:
    """Create or migrate the catalog file ``path`` if it needs it; never holds it for long.

    A read-only look first (which coexists with analysts' read-only connections); only when
    something must change is the file opened read-write, under ``<path>.lock`` so that
    finops processes starting together take turns. If an analyst holds the file read-write
    (``duckdb finops.duckdb`` in the CLI does), nothing can be checked now: writers go on
    writing parts (the views pick them up) and the catalog is checked again later.
    Raises MigrationError when the ledger was written by a newer finops.
    """
    import duckdb

    parts.mkdir(parents=True, exist_ok=True)
    link_window_ms(parts, max_query_s=max_query_s)
    if path.exists():
        try:
            with duckdb.connect(str(path), read_only=True) as con:
                if is_current(con, parts):
                    return CatalogStatus(True)
        except (duckdb.IOException, duckdb.ConnectionException) as exc:
            if "lock" not in str(exc).lower():
                raise
    fd = os.open(str(path) + ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    return CatalogStatus(False, "another finops process is migrating the catalog")
                time.sleep(0.02)
        try:
            # A new catalog is written in DuckDB's v1.0 storage format: it holds only views
            # and two small tables, and so any DuckDB from 1.0 on (an analyst's older CLI)
            # can open it. An existing file keeps the format it has.
            config: dict[str, Any] = (
                {} if path.exists() else {"storage_compatibility_version": CATALOG_STORAGE}
            )
            con = duckdb.connect(str(path), config=config)
        except (duckdb.IOException, duckdb.ConnectionException) as exc:
            if "lock" not in str(exc).lower():
                raise
            return CatalogStatus(False, f"the catalog is open read-write elsewhere: {exc}")
        try:
            install(con, parts, max_query_s=max_query_s)
        finally:
            con.close()
        return CatalogStatus(True)
    finally:
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def memory_catalog(parts: Path, *, threads: int = 1, hold_readers_lock: bool = False) -> Any:
    """An in-memory DuckDB connection with the ledger's views over ``parts`` (no file lock).

    ``hold_readers_lock``: hold the readers' lock (:data:`finops.ledger.layout.READERS_LOCK`)
    shared until the connection is garbage-collected, so compaction defers deleting
    replaced parts meanwhile (an analyst's connection, whose queries finops cannot wrap).
    """
    import duckdb

    # No progress bar: DuckDB would draw one on the application's stdout during a long
    # ingest or compaction (it did, for a 200,000-row segment).
    con = duckdb.connect(":memory:", config={"threads": threads})
    con.execute("SET enable_progress_bar = false")
    if hold_readers_lock:
        fd = reader_lock(parts)
        weakref.finalize(con, os.close, fd)
    install(con, parts, export=False)
    return con
