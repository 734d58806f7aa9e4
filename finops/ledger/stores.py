"""Where a writer puts ingested spool segments: a local parts directory, or PostgreSQL.

A store turns closed spool segments into rows readers can see, idempotently: ingesting a
segment twice (a replay after a crash between ingest and delete) never adds a row twice.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from finops.ledger.catalog import CatalogStatus, ensure_catalog, memory_catalog
from finops.ledger.compact import CompactResult, compact
from finops.ledger.layout import (
    DEFAULT_MAX_QUERY_S,
    SEGMENT_PREFIX,
    TEXT_COLUMNS,
    parts_dir_for,
    publish_part,
    reading,
)
from finops.ledger.spool import select_sql

__all__ = ["DirectoryStore", "Store"]


def _vanished_file(exc: Exception) -> bool:
    """DuckDB's error for a file that was listed by a glob and gone when it was opened."""
    text = str(exc)
    return "Cannot open file" in text or "No such file" in text


def _one_segment(seg: Path, strict: bool) -> str:
    return select_sql([seg], strict=strict, text_columns=TEXT_COLUMNS)


log = logging.getLogger("finops.ledger")


class Store(Protocol):
    """What the writer needs from a ledger backend."""

    def ingest(self, segments: list[Path], *, replay: bool) -> None:
        """Make the rows of these closed spool segments visible (all or raise)."""

    def query(self, sql: str, params: list[Any] | None) -> list[tuple[Any, ...]]:
        """Run SQL against the ledger's views."""

    def maintain(self) -> None:
        """Periodic upkeep on the writer thread (compaction, catalog checks)."""

    def close(self) -> None:
        """Release connections."""


class DirectoryStore:
    """The local layout (see :mod:`finops.ledger.layout`): one Parquet part per segment."""

    def __init__(
        self,
        path: Path,
        *,
        threads: int = 1,
        compact_interval_s: float = 10.0,
        compact_min_parts: int = 16,
        compact_min_age_s: float = 2.0,
        grace_s: float = 300.0,
        sync: bool = True,
        max_query_s: float = DEFAULT_MAX_QUERY_S,
    ) -> None:
        self.path = path
        self.parts = parts_dir_for(path)
        self.compact_interval_s = compact_interval_s
        self.compact_min_parts = compact_min_parts
        self.compact_min_age_s = compact_min_age_s
        self.grace_s = grace_s
        self.sync = sync
        self.max_query_s = max_query_s
        self.catalog: CatalogStatus = ensure_catalog(path, self.parts, max_query_s=max_query_s)
        self._next_catalog_check = time.monotonic() + 5.0
        self._next_compact = time.monotonic() + compact_interval_s
        self._wcon = memory_catalog(self.parts, threads=threads)
        self._rcon: Any = None
        self._threads = threads
        self._rlock = threading.Lock()
        self.last_compaction: CompactResult | None = None

    def ingest(self, segments: list[Path], *, replay: bool) -> None:
        """Publish segments as a Parquet part.

        Normal ingest: one part per segment, ``s-<segment name>.parquet``. A replay (what a
        dead process left) is idempotent by ``row_id``: rows already in the ledger and
        repeated rows are left out, all segments go into one part.
        """
        if not replay:
            for seg in segments:
                dest = self.parts / f"{SEGMENT_PREFIX}{seg.stem}.parquet"
                self._publish(functools.partial(_one_segment, seg), dest)
            return

        def select(strict: bool) -> str:
            return (
                f"SELECT * FROM ({select_sql(segments, strict=strict, text_columns=TEXT_COLUMNS)}) "
                "AS s "
                "WHERE s.row_id NOT IN (SELECT row_id FROM calls WHERE row_id IS NOT NULL) "
                "QUALIFY row_number() OVER (PARTITION BY s.row_id) = 1"
            )

        dest = (
            self.parts / f"{SEGMENT_PREFIX}replay-{segments[0].stem}-{os.urandom(3).hex()}.parquet"
        )
        with reading(self.parts):  # the anti-join reads the parts
            [(n,)] = self._wcon.execute(f"SELECT count(*) FROM ({select(False)})").fetchall()
            if n:
                self._publish(select, dest)

    def _publish(self, select: Callable[[bool], str], dest: Path) -> None:
        """Publish ``select(True)`` (plain CASTs, the fast form); if a malformed value makes
        it raise, publish ``select(False)`` (TRY_CASTs: that value becomes NULL)."""
        import duckdb

        try:
            publish_part(self._wcon, select(True), dest, sync=self.sync)
        except (duckdb.DataError, duckdb.InvalidInputException) as exc:
            log.info(
                "finops ledger: a malformed value in %s (%s); ingested with TRY_CAST",
                dest.name,
                exc,
            )
            publish_part(self._wcon, select(False), dest, sync=self.sync)

    def query(self, sql: str, params: list[Any] | None) -> list[tuple[Any, ...]]:
        """Run SQL in this process's in-memory reader (views over the parts, no file lock)."""
        import duckdb

        with self._rlock:
            if self._rcon is None:
                self._rcon = memory_catalog(self.parts, threads=self._threads)
            with reading(self.parts):  # compaction deletes no part while this runs
                try:
                    return list(self._rcon.execute(sql, params).fetchall())
                except duckdb.IOException as exc:
                    # A part deleted by a compactor that takes no readers' lock (an older
                    # finops): the next listing no longer has it.
                    if not _vanished_file(exc):
                        raise
                return list(self._rcon.execute(sql, params).fetchall())

    def cursor(self) -> Any:
        """A new in-memory connection with the ledger's views (for analysis in-process);
        compaction defers deletions while it is open (see :func:`memory_catalog`)."""
        return memory_catalog(self.parts, hold_readers_lock=True)

    def compact(self, **kw: Any) -> CompactResult:
        """Run one compaction now (see :func:`finops.ledger.compact.compact`)."""
        kw.setdefault("grace_s", self.grace_s)
        self.last_compaction = compact(self._wcon, self.parts, **kw)
        return self.last_compaction

    def maintain(self) -> None:
        now = time.monotonic()
        if not self.catalog.ready and now >= self._next_catalog_check:
            self._next_catalog_check = now + 5.0
            self.catalog = ensure_catalog(
                self.path, self.parts, timeout_s=0.5, max_query_s=self.max_query_s
            )
        if now >= self._next_compact:
            self._next_compact = now + self.compact_interval_s
            self.compact(
                min_parts=self.compact_min_parts, min_age_s=self.compact_min_age_s, tiered=True
            )

    def close(self) -> None:
        self._wcon.close()
        with self._rlock:
            if self._rcon is not None:
                self._rcon.close()
                self._rcon = None
