"""The DuckDB ledger: a crash-safe spool on the hot path, a background writer behind it.

Design (measured figures in docs/ledger.md):

* **Hot path** — :meth:`Ledger.append` serializes the row to one JSON line and appends it with a
  single ``os.write`` to this process's current *spool segment* (an ``O_APPEND`` file). Once
  ``os.write`` returns, the line is in the OS page cache: it survives ``kill -9`` of the
  process. Nothing else happens on the caller's thread: no DuckDB, no lock held for long.
* **Writer** — a daemon thread wakes every ``flush_interval_s`` (1 s; or on :meth:`flush`), *rotates*
  the segment (appends continue in a new file) and ingests the closed segments with DuckDB's
  own JSON reader in one transaction, then deletes them. The spool *is* the queue, so the
  writer does no per-row Python work.
* **Crash recovery** — every segment is ``flock``-ed by the process that writes it, until it has
  been ingested and deleted. On start (and from time to time) a ledger ingests the segments no
  live process holds — left by a crashed process — skipping ``row_id``s already in the table,
  so a row is never written twice.
* **Locked file** — DuckDB lets one process at a time open a file read-write. If another
  process holds it, segments stay on disk and the writer retries with backoff; ``append`` is
  unaffected and ``flush`` reports False.
* **Connection policy** — the writer keeps DuckDB open while rows keep arriving and closes it
  after ``idle_close_s`` without rows, so other processes (analysts, the CLI) can open the file
  while the application is idle.
* **Several processes** on one ledger: each has its own segments; whichever process holds the
  file ingests its own rows (and orphans); the others wait for it to be free.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import json
import logging
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

from finops.errors import LedgerError, MigrationError
from finops.ledger.migrations import COLUMN_TYPES, migrate
from finops.ledger.row import STATUSES, LedgerRow

__all__ = ["STATUSES", "Ledger", "LedgerRow"]

log = logging.getLogger("finops.ledger")

_FIELDS = tuple(f.name for f in fields(LedgerRow))
_MONEY = tuple(name for name, kind in COLUMN_TYPES.items() if kind.startswith("DECIMAL"))
_TIMES = ("ts_start", "ts_end")
_SUFFIX = ".jsonl"


def _encode(row: LedgerRow) -> bytes:
    """One JSON line; Decimals as strings (exact), datetimes as ISO 8601 with offset.

    ``None`` fields are left out (most are None on any given row; the reader fills them in),
    which halves the serialization cost on the caller's thread.
    """
    data = {}
    for name in _FIELDS:
        value = getattr(row, name)
        if value is not None:
            data[name] = value
    for name in _MONEY:
        value = data.get(name)
        if value is not None:
            data[name] = str(value)
    data["ts_start"] = row.ts_start.isoformat()
    data["ts_end"] = row.ts_end.isoformat()
    return _dumps(data).encode() + b"\n"


_dumps = json.JSONEncoder(separators=(",", ":")).encode


def _columns_spec() -> str:
    # DECIMAL columns are read as VARCHAR and cast exactly in SQL.
    spec = {
        name: ("VARCHAR" if kind.startswith("DECIMAL") else kind)
        for name, kind in COLUMN_TYPES.items()
    }
    return "{" + ", ".join(f"'{k}': '{v}'" for k, v in spec.items()) + "}"


_SELECT = ", ".join(
    f"CAST({name} AS {kind})" if kind.startswith("DECIMAL") else name
    for name, kind in COLUMN_TYPES.items()
)


class _Segment:
    """One spool file this process writes (or has closed and not yet ingested)."""

    __slots__ = ("fd", "path", "rows")

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # ours until ingested
        self.rows = 0

    def remove(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        os.close(self.fd)


class Ledger:
    """An append-only ledger of :class:`LedgerRow` in a DuckDB file.

    Args:
        path: the DuckDB file (created with its schema if missing).
        spool_dir: where spool segments live (default ``<path>.spool/``); must be on a local
            filesystem that supports ``flock``.
        flush_interval_s: how often the writer ingests the spool.
        idle_close_s: close the DuckDB file after this long without new rows.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        spool_dir: str | Path | None = None,
        flush_interval_s: float = 1.0,
        idle_close_s: float = 1.0,
        max_segment_rows: int = 200_000,
    ) -> None:
        self.path = Path(path)
        self.spool_dir = (
            Path(spool_dir) if spool_dir is not None else Path(str(self.path) + ".spool")
        )
        self.spool_dir.mkdir(parents=True, exist_ok=True)
        self.flush_interval_s = flush_interval_s
        self.idle_close_s = idle_close_s
        self.max_segment_rows = max_segment_rows
        self._prefix = f"{os.getpid()}-{os.urandom(4).hex()}-"
        self._seq = 0
        self._append_lock = threading.Lock()
        self._db_lock = threading.RLock()
        self._wake = threading.Condition(threading.Lock())
        self._segment = self._new_segment()
        self._closed_segments: list[_Segment] = []
        self._appended = 0  # rows appended (monotonic)
        self._ingested = 0  # rows of this process known to be in DuckDB
        self._flush_wanted = False
        self._con: Any = None
        self._last_rows_at = time.monotonic()
        self._last_error: str | None = None
        self._locked = False
        self._migrated = False
        self._stop = False
        self.dropped = 0  # rows that could not even be spooled (disk full...)
        self._thread = threading.Thread(target=self._run, name="finops-ledger-writer", daemon=True)
        self._try_open_and_recover()
        self._thread.start()
        atexit.register(self.close)

    # -- hot path ------------------------------------------------------------------------
    def append(self, row: LedgerRow) -> None:
        """Spool one row (crash-safe once this returns). Never blocks on DuckDB, never raises."""
        try:
            line = _encode(row)
        except Exception as exc:  # a row that cannot be encoded is logged, not raised
            self.dropped += 1
            log.error("finops ledger: cannot encode row %s: %r", getattr(row, "row_id", "?"), exc)
            return
        with self._append_lock:
            try:
                os.write(self._segment.fd, line)
            except OSError as exc:
                self.dropped += 1
                log.error("finops ledger: cannot write spool %s: %r", self._segment.path, exc)
                return
            self._segment.rows += 1
            self._appended += 1
            big = self._segment.rows >= self.max_segment_rows
        if big:
            with self._wake:
                self._wake.notify()

    # -- reading -------------------------------------------------------------------------
    def query(self, sql: str, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
        """Run SQL against the ledger (this process's connection) and fetch all rows."""
        with self._db_lock:
            con = self._connection()
            return list(con.execute(sql, list(params) if params is not None else None).fetchall())

    def connect(self, *, read_only: bool = True) -> Any:
        """A DuckDB cursor on the ledger for analysts in this process.

        The cursor shares this ledger's database instance (DuckDB refuses a second,
        differently-configured instance of one file in a process); ``read_only`` is accepted
        for symmetry with ``duckdb.connect`` — do not write through it.
        """
        del read_only
        with self._db_lock:
            return self._connection().cursor()

    # -- flushing ------------------------------------------------------------------------
    def flush(self, timeout_s: float | None = None) -> bool:
        """Wait until every row appended so far is in DuckDB. False on timeout or while the
        file is held by another process (the rows stay safe in the spool)."""
        target = self._appended
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while self._ingested < target:
            if self._stop:
                return False
            with self._wake:
                self._flush_wanted = True
                self._wake.notify()
            time.sleep(0.002)
            if self._locked and self._ingested < target:
                # give the writer one retry before reporting the lock
                time.sleep(0.05)
                if self._locked and self._ingested < target:
                    return False
            if deadline is not None and time.monotonic() > deadline:
                return False
        return True

    def close(self) -> None:
        """Flush (briefly), stop the writer and close DuckDB. Idempotent; rows that could not
        be written stay in the spool and are ingested by the next ledger on this file."""
        if self._stop:
            return
        with contextlib.suppress(Exception):
            self.flush(timeout_s=10)
        self._stop = True
        with self._wake:
            self._wake.notify()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout=10)
        with self._db_lock:
            if self._con is not None:
                with contextlib.suppress(Exception):
                    self._con.close()
                self._con = None
        with self._append_lock:
            segments = [*self._closed_segments, self._segment]
            self._closed_segments = []
        for seg in segments:
            if seg.rows == 0:
                seg.remove()
            else:  # not ingested: release the lock, leave the file for the next start
                os.close(seg.fd)
        with contextlib.suppress(Exception):
            atexit.unregister(self.close)

    @property
    def pending_rows(self) -> int:
        """Rows appended by this process and not yet in DuckDB."""
        return self._appended - self._ingested

    @property
    def last_error(self) -> str | None:
        """The writer's last failure (e.g. the file is locked), or None."""
        return self._last_error

    # -- internals -----------------------------------------------------------------------
    def _new_segment(self) -> _Segment:
        self._seq += 1
        return _Segment(self.spool_dir / f"{self._prefix}{self._seq:06d}{_SUFFIX}")

    def _connection(self) -> Any:
        """The open DuckDB connection (opened and migrated on demand); raises if locked."""
        if self._con is None:
            import duckdb

            try:
                # One DuckDB thread: ingest batches are small, and extra threads only compete
                # with the application for the machine's cores (it showed in call p99).
                con = duckdb.connect(str(self.path), config={"threads": 1})
            except duckdb.IOException as exc:
                self._locked = "lock" in str(exc).lower()
                raise LedgerError(
                    f"cannot open ledger {self.path}: {exc}. If another process holds it, rows "
                    f"wait in {self.spool_dir} until it is free."
                ) from exc
            self._locked = False
            if not self._migrated:
                try:
                    migrate(con)
                except MigrationError:
                    con.close()
                    raise
                self._migrated = True
            self._con = con
        return self._con

    def _try_open_and_recover(self) -> None:
        try:
            with self._db_lock:
                self._connection()
                self._ingest_orphans()
        except MigrationError:
            raise
        except Exception as exc:
            self._last_error = str(exc)
            log.warning("finops ledger: %s", exc)

    def _orphans(self) -> list[Path]:
        found = []
        for path in sorted(self.spool_dir.glob("*" + _SUFFIX)):
            if path.name.startswith(self._prefix):
                continue
            try:
                fd = os.open(path, os.O_RDONLY)
            except FileNotFoundError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)  # a live process still owns it
                continue
            os.close(fd)  # closing drops our probe lock; the owner is gone for good
            found.append(path)
        return found

    def _ingest_files(self, paths: list[Path], *, dedupe: bool) -> None:
        con = self._connection()
        files = [str(p) for p in paths if p.exists() and p.stat().st_size > 0]
        if not files:
            return
        source = (
            f"read_json({files!r}, format='newline_delimited', columns={_columns_spec()}, "
            f"ignore_errors=true)"
        )
        con.execute("BEGIN TRANSACTION")
        try:
            if dedupe:
                con.execute(
                    f"INSERT INTO calls SELECT {_SELECT} FROM {source} AS s "
                    f"WHERE s.row_id IS NOT NULL AND s.row_id NOT IN (SELECT row_id FROM calls)"
                )
            else:
                con.execute(f"INSERT INTO calls SELECT {_SELECT} FROM {source}")
            con.execute("COMMIT")
        except Exception:
            con.execute("ROLLBACK")
            raise

    def _ingest_orphans(self) -> None:
        orphans = self._orphans()
        if orphans:
            self._ingest_files(orphans, dedupe=True)
            for path in orphans:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
            log.info("finops ledger: recovered %d spool segment(s)", len(orphans))

    def _rotate(self) -> int:
        """Close the current segment for ingestion; returns the appended count it covers."""
        with self._append_lock:
            if self._segment.rows:
                self._closed_segments.append(self._segment)
                self._segment = self._new_segment()
            return self._appended

    def _cycle(self) -> None:
        covered = self._rotate()
        segments = list(self._closed_segments)
        if not segments:
            self._ingested = covered
            return
        with self._db_lock:
            self._ingest_files([s.path for s in segments], dedupe=False)
        with self._append_lock:
            self._closed_segments = self._closed_segments[len(segments) :]
        for seg in segments:
            seg.remove()
        self._ingested = covered
        self._last_rows_at = time.monotonic()
        self._last_error = None

    def _run(self) -> None:
        backoff = self.flush_interval_s
        next_orphan_scan = time.monotonic() + 30
        while True:
            with self._wake:
                if not self._stop and not self._flush_wanted:
                    self._wake.wait(timeout=backoff)
                self._flush_wanted = False
            try:
                self._cycle()
                if time.monotonic() > next_orphan_scan:
                    next_orphan_scan = time.monotonic() + 30
                    with self._db_lock:
                        self._ingest_orphans()
                backoff = self.flush_interval_s
                idle = time.monotonic() - self._last_rows_at > self.idle_close_s
                if idle and self._appended == self._ingested:
                    with self._db_lock:
                        if self._con is not None:
                            self._con.close()
                            self._con = None
            except Exception as exc:
                self._last_error = str(exc)
                backoff = min(max(backoff * 2, 0.05), 2.0)
                log.debug("finops ledger writer: %s (retrying in %.2fs)", exc, backoff)
            if self._stop:
                return
