"""The :class:`Ledger`: a crash-safe spool on the hot path, a background writer behind it.

* **Hot path** — :meth:`Ledger.append` encodes the row once (one JSON line, see
  :mod:`finops.ledger.spool`) and appends it with a single ``os.write`` to this process's
  current spool segment (an ``O_APPEND`` file). Once ``os.write`` returns the line is in the
  OS page cache: it survives ``kill -9`` of the process. Nothing else happens on the
  caller's thread.
* **Writer** — a daemon thread wakes every ``flush_interval_s`` (or on :meth:`Ledger.flush`,
  or when a segment reaches ``max_batch`` rows), *rotates* the segment (appends continue in
  a new file), hands the closed segments to the store (:mod:`finops.ledger.stores`: a
  Parquet part per segment in the local layout, a ``COPY`` in PostgreSQL), then deletes
  them. Every process writes its own parts: no process waits for another, and no writer
  ever holds the file analysts open.
* **Crash recovery** — each segment is ``flock``-ed by its writing process until ingested.
  On start and every ``orphan_scan_s`` a ledger ingests the segments no live process holds
  (left by a process killed with ``kill -9``), skipping those already landed, so nothing is
  written twice.
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import hashlib
import logging
import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from finops.errors import ConfigError, LedgerError, MigrationError
from finops.ledger.row import LedgerRow
from finops.ledger.spool import SUFFIX, Segment, claim_orphans, encode
from finops.ledger.stores import DirectoryStore, Store

__all__ = ["Ledger", "is_postgres_url"]

log = logging.getLogger("finops.ledger")


def is_postgres_url(path: object) -> bool:
    """True for a ``postgresql://`` / ``postgres://`` ledger location (the multi-host mode)."""
    return isinstance(path, str) and path.startswith(("postgresql://", "postgres://"))


class Ledger:
    """An append-only ledger of :class:`LedgerRow` that many processes write and read at once.

    Args:
        path: the ledger: a catalog file path such as ``"finops.duckdb"`` (local layout,
            created with its schema if missing; an old single-file ledger is migrated), or
            a ``postgresql://user@host/db`` URL (multi-host mode, see docs/ledger.md).
        spool_dir: where spool segments live (default ``<path>.spool/``; for a PostgreSQL
            URL ``./.finops-spool/<hash of the URL>``); must be a local filesystem with
            ``flock``. Processes on one host sharing a ledger should share the spool dir:
            then a survivor ingests what a killed process left.
        flush_interval_s: how often the writer ingests the spool (rows are visible to
            readers within about this long, plus the ingest time).
        max_batch: rows per spool segment; a full segment wakes the writer early.
        orphan_scan_s: how often to look for segments left by dead processes.
        duckdb_threads: DuckDB worker threads for ingestion.
        max_backoff_s: the longest wait between retries after a failed ingest.
        compact_interval_s: how often this process tries an automatic compaction.
        compact_min_parts: parts of one size class that trigger an automatic compaction.
        compact_min_age_s: parts younger than this are left for the next compaction.
        grace_s: how long a part that was compacted away stays on disk for running queries.
        max_query_s: the longest query a raw DuckDB reader of the catalog may run without
            seeing ``Cannot open file`` (fixed when the ledger's parts directory is created;
            a deleted part leaves the views' listing within ~4x this long).
        sync: fsync each part before publishing it (survives power loss, ~1 ms a part).
        max_backlog_bytes: rows kept in memory while the spool cannot be written.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        spool_dir: str | Path | None = None,
        flush_interval_s: float = 0.5,
        max_batch: int = 200_000,
        orphan_scan_s: float = 5.0,
        duckdb_threads: int = 1,
        max_backoff_s: float = 2.0,
        compact_interval_s: float = 10.0,
        compact_min_parts: int = 16,
        compact_min_age_s: float = 2.0,
        grace_s: float = 300.0,
        max_query_s: float = 300.0,
        sync: bool = True,
        max_backlog_bytes: int = 64 * 1024 * 1024,
        **_legacy: Any,
    ) -> None:
        unknown = set(_legacy) - {"idle_close_s", "max_hold_s", "yield_s"}
        if unknown:
            raise ConfigError(f"Ledger() got unknown options: {', '.join(sorted(unknown))}")
        self.url: str | None = str(path) if is_postgres_url(path) else None
        if self.url is not None:
            digest = hashlib.sha256(self.url.encode()).hexdigest()[:12]
            self.path = Path(".finops-spool") / digest
            default_spool = self.path
        else:
            self.path = Path(path)
            default_spool = Path(str(self.path) + ".spool")
        self.spool_dir = Path(spool_dir) if spool_dir is not None else default_spool
        self.flush_interval_s = flush_interval_s
        self.max_batch = max(1, max_batch)
        self.orphan_scan_s = orphan_scan_s
        self.max_backoff_s = max_backoff_s
        self.dropped = 0  #: rows that could not be spooled (unencodable row, disk full, closed)

        if self.url is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self.spool_dir.mkdir(parents=True, exist_ok=True)
        self._prefix = f"{os.getpid()}-{os.urandom(4).hex()}-"
        self._seq = 0
        self._append_lock = threading.Lock()  # guards the current segment and the counters
        self._store_lock = threading.RLock()  # guards the store (writer vs. query/compact)
        self._cv = threading.Condition(threading.Lock())  # writer wake-ups and progress
        self._segment: Segment | None = self._new_segment()
        self._closed_segments: list[Segment] = []
        self._backlog: collections.deque[bytes] = collections.deque()
        self._backlog_bytes = 0
        self.max_backlog_bytes = max_backlog_bytes
        self._torn = False
        self._warned_write = False
        self._warned_closed = False
        self._appended = 0  # rows spooled by this ledger (monotonic)
        self._ingested = 0  # of those, rows known to be in the store
        self._cycles = 0
        self._failing = False
        self._wake_now = False
        self._stop = False
        self._closed = False
        self._fatal: str | None = None
        self._next_orphan_scan = 0.0
        self._last_error: str | None = None
        self._flush_hooks: list[Any] = []
        self._replayed = False  # the first look for dead processes' segments has been made
        # replay_orphans() / adopt() requests, and how many of them a finished look covers
        # (a look covers the requests made before it started claiming segments)
        self._replay_wanted = 0
        self._replay_done = 0
        # The store (DuckDB, the catalog, PostgreSQL) is opened by the writer's first cycle
        # or the first query, not here: `import duckdb` and the catalog check cost ~150 ms
        # that a process start should not pay (docs/ledger.md "Start-up"). What can be
        # checked without DuckDB is checked now and raises ConfigError.
        self._check_location()
        self._store: Store | None = None
        self._store_wanted = False  # a flush() or query() is waiting for the store
        self._store_due = time.monotonic() + orphan_scan_s  # open by then in any case
        self._store_kw: dict[str, Any] = {
            "duckdb_threads": duckdb_threads,
            "compact_interval_s": compact_interval_s,
            "compact_min_parts": compact_min_parts,
            "compact_min_age_s": compact_min_age_s,
            "grace_s": grace_s,
            "max_query_s": max_query_s,
            "sync": sync,
        }
        self._thread = threading.Thread(target=self._run, name="finops-ledger-writer", daemon=True)
        self._thread.start()
        atexit.register(self.close)

    def _check_location(self) -> None:
        """ConfigError for a ledger location that cannot work, found without DuckDB."""
        if self.url is not None:
            import importlib.util

            if importlib.util.find_spec("psycopg") is None:
                self._abandon()
                raise LedgerError(
                    "a postgresql:// ledger needs psycopg: pip install 'finops[postgres]'"
                )
            return
        problem = None
        if self.path.is_dir():
            problem = "is a directory: give a file path, e.g. " + str(self.path / "finops.duckdb")
        elif self.path.exists():
            try:
                with self.path.open("rb") as fh:
                    head = fh.read(12)
            except OSError as exc:
                problem = f"cannot be read ({exc.strerror})"
            else:
                # A DuckDB database file has the magic bytes "DUCK" at offset 8.
                if head and head[8:12] != b"DUCK":
                    problem = (
                        "is not a DuckDB file: give the path of a finops ledger, or a new file name"
                    )
        if problem is not None:
            self._abandon()
            raise ConfigError(f"ledger={str(self.path)!r} {problem}")

    @property
    def store(self) -> Store:
        """The backend behind the writer, opened on first need (see :meth:`_ensure_store`)."""
        return self._ensure_store()

    def _ensure_store(self) -> Store:
        """Open the store if it is not open yet: the writer's first cycle, or a query.

        A :class:`MigrationError` (a ledger written by a newer finops) is final: logged once,
        kept in :attr:`last_error`, raised by :meth:`flush` and :meth:`query`; rows stay in
        the spool. Other failures are raised as :class:`LedgerError` and retried later.
        """
        with self._store_lock:
            store = self._store
            if store is not None:
                return store
            if self._fatal is not None:
                raise MigrationError(self._fatal)
            try:
                store = self._open_store(**self._store_kw)
            except MigrationError as exc:
                with self._cv:
                    self._fatal = self._last_error = str(exc)
                    self._cv.notify_all()
                log.error("finops ledger: %s; rows stay in %s", exc, self.spool_dir)
                raise
            except LedgerError as exc:
                self._last_error = str(exc)
                raise
            except Exception as exc:
                self._last_error = f"cannot open ledger {self.url or self.path}: {exc}"
                raise LedgerError(self._last_error) from exc
            self._store = store
            return store

    def _open_store(self, **kw: Any) -> Store:
        if self.url is not None:
            from finops.ledger.postgres import PostgresStore

            return PostgresStore(self.url)
        return DirectoryStore(
            self.path,
            threads=kw["duckdb_threads"],
            compact_interval_s=kw["compact_interval_s"],
            compact_min_parts=kw["compact_min_parts"],
            compact_min_age_s=kw["compact_min_age_s"],
            grace_s=kw["grace_s"],
            sync=kw["sync"],
            max_query_s=kw["max_query_s"],
        )

    # -- hot path ------------------------------------------------------------------------
    def append(self, row: LedgerRow) -> None:
        """Spool one row: crash-safe once this returns. Never blocks on the store, never raises.

        If the spool cannot be written (disk full, file size limit), the row waits in a
        bounded in-memory backlog (``max_backlog_bytes``) and is spooled by the next write
        that succeeds. After :meth:`close` a row still goes to a spool segment of its own,
        left for the next ledger on this spool (or a live process) to ingest.
        """
        try:
            line = encode(row)
        except Exception as exc:  # a row that cannot be encoded is counted and logged
            self.dropped += 1
            log.error("finops ledger: cannot encode row %s: %r", getattr(row, "row_id", "?"), exc)
            return
        with self._append_lock:
            if self._segment is None:
                self._append_after_close(line, row.row_id)
                return
            if self._backlog and not self._drain_locked():
                self._hold_locked(line, row.row_id)
                return
            if not self._write_locked(line):
                self._hold_locked(line, row.row_id)
                return
            full = self._segment is not None and self._segment.rows >= self.max_batch
        if full:
            with self._cv:
                self._wake_now = True
                self._cv.notify_all()

    def _write_locked(self, line: bytes) -> bool:
        """One line to the current segment; False (and a fresh segment next time) on failure."""
        seg = self._segment
        if seg is None:
            return False
        if self._torn:
            try:
                fresh = self._new_segment()
            except OSError:
                return False
            if seg.rows:
                self._closed_segments.append(seg)
            else:
                seg.remove()
            self._segment = seg = fresh
            self._torn = False
        try:
            written = os.write(seg.fd, line)
        except OSError as exc:
            self._torn = True  # a failed write may have left part of the line behind
            if not self._warned_write:
                self._warned_write = True
                log.warning(
                    "finops ledger: cannot write spool %s: %r (rows held in memory)", seg.path, exc
                )
            return False
        if written != len(line):
            self._torn = True  # the torn tail is skipped by the reader; rewrite the row
            return False
        seg.rows += 1
        self._appended += 1
        self._warned_write = False
        return True

    def _hold_locked(self, line: bytes, row_id: str) -> None:
        if self._backlog_bytes + len(line) > self.max_backlog_bytes:
            self.dropped += 1
            log.error("finops ledger: spool unwritable and backlog full; row %s dropped", row_id)
            return
        self._backlog.append(line)
        self._backlog_bytes += len(line)

    def _drain_locked(self) -> bool:
        """Spool the backlog (oldest first); True when it is empty."""
        while self._backlog:
            if not self._write_locked(self._backlog[0]):
                return False
            self._backlog_bytes -= len(self._backlog.popleft())
        return True

    def add_flush_hook(self, hook: Any) -> None:
        """Call ``hook(timeout_s)`` at the start of every :meth:`flush` (and so of
        :meth:`close`): a meter that builds rows off the caller's thread appends them then."""
        self._flush_hooks.append(hook)

    def adopt(self, rows: Sequence[LedgerRow]) -> None:
        """Record rows that may already be in the ledger (rebuilt after a crash).

        They go to a spool segment of their own, left unlocked (crash-safe once this
        returns), and the writer thread ingests them through the idempotent orphan replay (a
        row whose ``row_id`` already landed is left out). Nothing is opened on the caller's
        thread: a ``FinOps(...)`` after a crash starts as fast as a clean one, and every
        :meth:`flush` called after this returns waits for that replay.
        """
        lines = []
        for row in rows:
            try:
                lines.append(encode(row))
            except Exception as exc:
                self.dropped += 1
                log.error("finops ledger: cannot encode row %s: %r", row.row_id, exc)
        if not lines:
            return
        # not this ledger's prefix: its own orphan scan must pick the segment up
        path = self.spool_dir / f"{os.getpid()}-{os.urandom(4).hex()}-000000{SUFFIX}"
        try:
            seg = Segment(path)
        except FileNotFoundError:
            self.spool_dir.mkdir(parents=True, exist_ok=True)
            seg = Segment(path)
        try:
            data = memoryview(b"".join(lines))
            while data:
                data = data[os.write(seg.fd, data) :]
        finally:
            seg.release()  # unlocked: an orphan, replayed with dedup by row_id
        self.replay_orphans()

    def replay_orphans(self) -> None:
        """Have the writer thread ingest what dead processes left in the spool at once
        (it also looks every ``orphan_scan_s``). Returns without waiting and opens nothing
        on the caller's thread; a :meth:`flush` called after this waits for that look."""
        with self._cv:
            self._replay_wanted += 1
            self._next_orphan_scan = 0.0
            self._wake_now = True
            self._cv.notify_all()

    def _append_after_close(self, line: bytes, row_id: str) -> None:
        if not self._warned_closed:
            self._warned_closed = True
            log.warning(
                "finops ledger: append after close(); rows go to the spool for the next "
                "ledger on %s to ingest",
                self.spool_dir,
            )
        try:
            seg = self._new_segment()
        except OSError as exc:
            self.dropped += 1
            log.error("finops ledger: append after close; row %s dropped: %r", row_id, exc)
            return
        try:
            os.write(seg.fd, line)
        except OSError as exc:
            self.dropped += 1
            log.error("finops ledger: append after close; row %s dropped: %r", row_id, exc)
            seg.remove()
            return
        seg.release()  # unlocked: an orphan that any live or later ledger replays

    # -- reading -------------------------------------------------------------------------
    def query(self, sql: str, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
        """Run SQL on the ledger's views (``calls``, ``spend_by_day``, ...); fetch all rows.

        Local layout: DuckDB SQL in an in-memory reader of this process (it holds no file,
        so it never blocks writers or analysts). PostgreSQL: the server's SQL, with ``?``
        placeholders. Call :meth:`flush` first to see the rows appended so far.
        """
        args = list(params) if params is not None else None
        try:
            return self.store.query(sql, args)
        except (MigrationError, LedgerError):
            raise
        except Exception as exc:
            if type(exc).__module__.startswith(("duckdb", "psycopg")):
                raise LedgerError(f"cannot read ledger {self.url or self.path}: {exc}") from exc
            raise

    def connect(self, *, read_only: bool = True, flush_timeout_s: float = 5.0) -> Any:
        """A new DuckDB connection with the ledger's views, after a flush (local layout).

        The connection is in-memory: it reads the Parquet parts and holds no lock, so
        writers go on while it is open. ``read_only`` is accepted for compatibility.
        """
        del read_only
        self.flush(timeout_s=flush_timeout_s)
        if not isinstance(self.store, DirectoryStore):
            raise LedgerError("connect() is for the local layout; use psycopg for PostgreSQL")
        return self.store.cursor()

    # -- flushing ------------------------------------------------------------------------
    def flush(self, timeout_s: float | None = None) -> bool:
        """Block until every row appended before this call is visible to readers.

        Returns False when ``timeout_s`` passes first, or as soon as an ingest attempt after
        this call failed (the rows stay safe in the spool and are written later). A closed
        ledger returns whether everything it spooled was written.
        """
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        for hook in list(self._flush_hooks):  # rows still being built off the caller's thread
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            with contextlib.suppress(Exception):
                hook(remaining)
        with self._append_lock:
            if self._backlog and self._segment is not None:
                self._drain_locked()
            if self._backlog:
                return False  # the spool cannot be written: rows wait in memory
            target = self._appended
        with self._cv:
            start_cycle = self._cycles
            if self._fatal is not None:
                raise MigrationError(self._fatal)
            wanted = self._replay_wanted
            if self._ingested >= target and self._store is not None and self._replayed_for(wanted):
                return True
            if self._stop:
                return self._ingested >= target
            self._store_wanted = True
            self._wake_now = True
            self._cv.notify_all()
            # Done when the rows are in and the store is open (readers can open the catalog).
            while self._ingested < target or self._store is None or not self._replayed_for(wanted):
                if self._fatal is not None:
                    raise MigrationError(self._fatal)
                if self._stop:
                    return False
                if self._failing and self._cycles > start_cycle + 1:
                    return False
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._cv.wait(timeout=remaining)
            return True

    def _replayed_for(self, wanted: int) -> bool:
        """The first look for orphans was made, and a look that began after the first
        ``wanted`` replay requests has finished."""
        return self._replayed and self._replay_done >= wanted

    def compact(self, **kw: Any) -> Any:
        """Compact the parts now (local layout); see :func:`finops.ledger.compact.compact`."""
        if not isinstance(self.store, DirectoryStore):
            return None
        with self._store_lock:
            return self.store.compact(**kw)

    def close(self, *, timeout_s: float = 10.0) -> None:
        """Flush, stop the writer and close the store. Idempotent.

        Rows that could not be written stay in the spool; any ledger opened on the same
        spool later (or running now in another process) ingests them.
        """
        with self._append_lock:
            if self._closed:
                return
            self._closed = True
        with contextlib.suppress(Exception):
            self.flush(timeout_s=timeout_s)
        with self._cv:
            self._stop = True
            self._cv.notify_all()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout=timeout_s)
        self._abandon()
        with contextlib.suppress(Exception):
            atexit.unregister(self.close)

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def pending_rows(self) -> int:
        """Rows appended through this ledger and not yet visible to readers."""
        return self._appended - self._ingested

    @property
    def last_error(self) -> str | None:
        """The writer's last failure (e.g. the database is unreachable), or None."""
        return self._last_error

    # -- internals -----------------------------------------------------------------------
    def _new_segment(self) -> Segment:
        self._seq += 1
        path = self.spool_dir / f"{self._prefix}{self._seq:06d}{SUFFIX}"
        try:
            return Segment(path)
        except FileNotFoundError:  # the spool directory was deleted under us: recreate it
            self.spool_dir.mkdir(parents=True, exist_ok=True)
            log.warning("finops ledger: spool directory %s was missing; recreated", self.spool_dir)
            return Segment(path)

    def _revive_locked(self, seg: Segment) -> Segment:
        """A closed segment whose file was deleted (its directory removed under us): copy
        what it holds, read back through our descriptor, into a new segment."""
        if seg.fd < 0 or os.fstat(seg.fd).st_nlink > 0:
            return seg
        fresh = self._new_segment()
        data = seg.read()
        view = memoryview(data)
        while view:
            view = view[os.write(fresh.fd, view) :]
        fresh.rows = seg.rows
        seg.release()
        return fresh

    def _abandon(self) -> None:
        """Stop for good: close the store, delete empty segments, unlock the others."""
        store = getattr(self, "_store", None)
        if store is not None:
            with self._store_lock, contextlib.suppress(Exception):
                store.close()
                self._store = None  # a later query() opens a fresh reader
        with self._append_lock:
            if self._backlog and self._segment is not None:
                self._drain_locked()  # what reaches the spool now is replayed later
            segments = [*self._closed_segments]
            if self._segment is not None:
                segments.append(self._segment)
            self._segment = None
            self._closed_segments = []
            if self._backlog:
                self.dropped += len(self._backlog)
                log.error("finops ledger: %d rows never reached the spool", len(self._backlog))
                self._backlog.clear()
                self._backlog_bytes = 0
        for seg in segments:
            if seg.rows == 0:
                seg.remove()
            else:
                seg.release()

    def _replay_orphans(self) -> None:
        """Ingest segments left by dead processes, skipping those that already landed."""
        self._next_orphan_scan = time.monotonic() + self.orphan_scan_s
        with self._cv:
            covers = self._replay_wanted  # requests made before this look claims segments
        orphans = []
        for seg in claim_orphans(self.spool_dir, own_prefix=self._prefix):
            if os.fstat(seg.fd).st_size == 0:
                seg.remove()
            else:
                orphans.append(seg)
        if not orphans:
            self._mark_replayed(covers)
            return
        try:
            with self._store_lock:
                self.store.ingest([s.path for s in orphans], replay=True)
        except BaseException:
            for seg in orphans:
                seg.release()
            self._next_orphan_scan = 0.0  # try again on the next cycle
            raise
        for seg in orphans:
            seg.remove()
        self._mark_replayed(covers)
        log.info("finops ledger: replayed %d spool segment(s) left behind", len(orphans))

    def _mark_replayed(self, covers: int) -> None:
        with self._cv:
            self._replayed = True
            self._replay_done = max(self._replay_done, covers)
            self._cv.notify_all()

    def _rotate(self) -> int:
        with self._append_lock:
            if self._backlog:
                self._drain_locked()
            if self._segment is not None and self._segment.rows:
                self._closed_segments.append(self._segment)
                self._segment = self._new_segment()
            return self._appended

    def _needs_store(self, stopping: bool) -> bool:
        """Whether this cycle must open the store: rows to write, a flush or close waiting,
        segments a dead process left, or ``orphan_scan_s`` since start. Until then DuckDB is
        not imported at all (a process start pays nothing for it)."""
        if stopping or self._store_wanted or self._appended or self._backlog:
            return True
        if time.monotonic() >= self._store_due:
            return True
        with contextlib.suppress(OSError):
            for path in self.spool_dir.glob("*" + SUFFIX):
                if not path.name.startswith(self._prefix):
                    return True
        return False

    def _cycle(self, *, stopping: bool = False) -> None:
        if self._store is None:
            if not self._needs_store(stopping):
                return
            self._ensure_store()
        covered = self._rotate()
        with self._append_lock:
            self._closed_segments = [self._revive_locked(s) for s in self._closed_segments]
            pending = list(self._closed_segments)
        with self._store_lock:
            if pending:
                self.store.ingest([s.path for s in pending], replay=False)
                with self._append_lock:
                    del self._closed_segments[: len(pending)]
                for seg in pending:
                    seg.remove()
        # Segments dead processes left are replayed before waiters are told, so a flush()
        # on a freshly (re)started ledger also covers them (the store opens lazily now, so
        # there is no replay at construction). A failed replay does not hold back this
        # process's own rows: it is raised after they are announced, and retried.
        replay_error: Exception | None = None
        if time.monotonic() >= self._next_orphan_scan:
            try:
                self._replay_orphans()
            except Exception as exc:
                replay_error = exc
        with self._cv:
            self._ingested = covered
            self._failing = False
            self._last_error = None
            self._cv.notify_all()
        if replay_error is not None:
            raise replay_error
        with self._store_lock:
            self.store.maintain()

    def _run(self) -> None:
        backoff = 0.0
        delay = self.flush_interval_s
        while True:
            with self._cv:
                deadline = time.monotonic() + delay
                while not self._stop and not self._wake_now:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._cv.wait(timeout=remaining)
                self._wake_now = False
                stopping = self._stop
            if stopping:  # a last look for what dead processes left, before we go too
                self._next_orphan_scan = 0.0
            try:
                if self._fatal is None:
                    self._cycle(stopping=stopping)
                backoff = 0.0
                delay = self.flush_interval_s if self._fatal is None else self.max_backoff_s
            except MigrationError as exc:  # retrying cannot help: say so once, loudly
                with self._cv:
                    known = self._fatal is not None
                    self._fatal = self._last_error = str(exc)
                if not known:
                    log.error("finops ledger: %s; rows stay in %s", exc, self.spool_dir)
            except Exception as exc:  # disk full, server down: keep the spool, retry
                with self._cv:
                    self._failing = True
                    self._last_error = f"{type(exc).__name__}: {exc}"
                backoff = min(max(backoff * 2, 0.05), self.max_backoff_s)
                delay = backoff
                log.warning("finops ledger writer: %s (retrying in %.2fs)", exc, delay)
            with self._cv:
                self._cycles += 1
                self._cv.notify_all()
            if stopping:
                return
