"""Operating a ledger from outside the writers: connect, status, compact.

These are what ``finops ledger status`` / ``finops ledger compact`` and notebooks use. None
of them takes a lock that writers or other readers wait on (compaction takes the
compactors' own lock and skips if another compaction is running).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from finops.ledger.compact import CompactResult
from finops.ledger.compact import compact as _compact
from finops.ledger.layout import (
    SCHEMA_PREFIX,
    SEGMENT_PREFIX,
    compacted_sources,
    parts_dir_for,
    reader_lock,
)
from finops.ledger.spool import SUFFIX

__all__ = ["LedgerStatus", "compact", "connect", "status"]


def connect(path: str | Path) -> Any:
    """A DuckDB connection with the ledger's views (``calls``, ``spend_by_day``, ...).

    In-memory: it reads the Parquet parts directly and holds no file, so it works whoever
    has the catalog open, and writers never wait for it. Keep it open as long as you like;
    every query sees the rows published up to that moment. While it is open (until it is
    garbage-collected) compaction keeps the parts it replaced instead of deleting them, so
    no query on it can fail with ``Cannot open file``.
    """
    from finops.ledger.catalog import ensure_catalog, memory_catalog

    path = Path(path)
    if path.exists():  # an old single-file ledger is migrated on first contact
        ensure_catalog(path, parts_dir_for(path), timeout_s=2.0)
    return memory_catalog(parts_dir_for(path), hold_readers_lock=True)


@dataclass
class LedgerStatus:
    """Where a local ledger's rows are (``finops ledger status``)."""

    path: str
    spooled_rows: int = 0  #: rows in spool segments, not yet in parts
    spool_segments: int = 0
    spool_lag_s: float | None = None  #: age of the oldest spooled row (None: spool empty)
    segment_parts: int = 0  #: live one-segment parts (not compacted yet)
    segment_rows: int = 0
    compacted_parts: int = 0
    compacted_rows: int = 0
    replaced_parts: int = 0  #: compacted away, kept for running queries until deleted
    bytes: int = 0  #: parts on disk, replaced ones included
    newest_row: Any = None  #: the latest ``ts_end`` in the ledger
    catalog_exists: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def rows(self) -> int:
        """Rows readers see now."""
        return self.segment_rows + self.compacted_rows


def _first_row_end(path: Path) -> float | None:
    try:
        with path.open("rb") as fh:
            line = fh.readline()
        return float(json.loads(line)[4]) / 1e6  # ts_end, epoch microseconds
    except (OSError, ValueError, IndexError, TypeError):
        return None


def _spool_status(st: LedgerStatus, spool: Path, now: float) -> None:
    oldest: float | None = None
    for seg in sorted(spool.glob("*" + SUFFIX)) if spool.is_dir() else []:
        try:
            data = seg.read_bytes()
        except OSError:
            continue
        if not data:
            continue
        st.spool_segments += 1
        st.spooled_rows += data.count(b"\n")
        first = _first_row_end(seg)
        if first is not None:
            oldest = first if oldest is None else min(oldest, first)
    st.spool_lag_s = None if oldest is None else max(0.0, now - oldest)


def _postgres_status(url: str, spool_dir: str | Path | None) -> LedgerStatus:
    import psycopg

    st = LedgerStatus(path=url)
    if spool_dir is not None:
        _spool_status(st, Path(spool_dir), time.time())
    else:
        st.notes.append("pass --spool-dir to see this host's spooled rows")
    with psycopg.connect(url, connect_timeout=10) as con:
        row = con.execute(
            "SELECT count(*), max(ts_end), pg_total_relation_size('calls') FROM calls"
        ).fetchone()
    if row is not None:
        st.compacted_rows, st.newest_row, st.bytes = int(row[0]), row[1], int(row[2])
    st.catalog_exists = True
    st.notes.append("PostgreSQL: rows are in the table calls (shown as compacted)")
    return st


def status(path: str | Path, *, spool_dir: str | Path | None = None) -> LedgerStatus:
    """Spooled rows and lag, live and compacted parts, size, newest row of a ledger
    (a catalog path, or a ``postgresql://`` URL: then rows in the table, its size)."""
    import duckdb

    if isinstance(path, str) and path.startswith(("postgresql://", "postgres://")):
        return _postgres_status(path, spool_dir)
    path = Path(path)
    parts = parts_dir_for(path)
    spool = Path(spool_dir) if spool_dir is not None else Path(str(path) + ".spool")
    st = LedgerStatus(path=str(path), catalog_exists=path.exists())
    now = time.time()
    _spool_status(st, spool, now)
    if not parts.is_dir():
        st.notes.append(f"no parts directory {parts}")
        return st
    con = duckdb.connect(":memory:")
    lock = reader_lock(parts)  # no part this lists is deleted before it is read
    try:
        sources = compacted_sources(con, parts)
        excluded = {s for names in sources.values() for s in names}
        live: list[Path] = []
        for p in sorted(parts.glob("*.parquet")):
            try:
                st.bytes += p.stat().st_size
            except FileNotFoundError:
                continue
            if p.name in excluded:
                st.replaced_parts += 1
            elif not p.name.startswith(SCHEMA_PREFIX):
                live.append(p)
        if live:
            files = "[" + ", ".join("'" + str(p).replace("'", "''") + "'" for p in live) + "]"
            counts = con.execute(
                f"SELECT parse_filename(file_name), num_rows FROM parquet_file_metadata({files})"
            ).fetchall()
            for name, n in counts:
                if name.startswith(SEGMENT_PREFIX):
                    st.segment_parts += 1
                    st.segment_rows += int(n)
                else:
                    st.compacted_parts += 1
                    st.compacted_rows += int(n)
            [(st.newest_row,)] = con.execute(
                f"SELECT max(ts_end) FROM read_parquet({files}, union_by_name = true)"
            ).fetchall()
    finally:
        con.close()
        os.close(lock)
    return st


def compact(path: str | Path, *, grace_s: float = 300.0, min_age_s: float = 0.0) -> CompactResult:
    """Fold every small live part of the ledger at ``path`` into one (safe while writers run)."""
    import duckdb

    con = duckdb.connect(":memory:", config={"threads": 2})
    con.execute("SET enable_progress_bar = false")
    try:
        return _compact(con, parts_dir_for(Path(path)), grace_s=grace_s, min_age_s=min_age_s)
    finally:
        con.close()
