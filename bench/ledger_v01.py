"""BASELINE ONLY: the single-file ledger as it was before issue 10 (finops 0.1), kept so that
bench/ledger.py can measure today's figures beside the old ones in the same run.

The DuckDB ledger: a crash-safe spool on the hot path, a background writer behind it.

Design (figures and reasons in docs/ledger.md):

* **Hot path** — :meth:`Ledger.append` encodes the row once (one JSON line, see
  :mod:`finops.ledger.spool`) and appends it with a single ``os.write`` to this process's
  current spool segment (an ``O_APPEND`` file). Once ``os.write`` returns the line is in the
  OS page cache: it survives ``kill -9`` of the process. The spool *is* the writer's queue:
  nothing else happens on the caller's thread (no DuckDB, no per-row object kept).
* **Writer** — a daemon thread wakes every ``flush_interval_s`` (or on :meth:`Ledger.flush`,
  or when a segment reaches ``max_batch`` rows), *rotates* the segment (appends continue in a
  new file), ingests the closed segments with DuckDB's JSON reader in one transaction, then
  deletes them. No per-row Python work happens in the writer.
* **Crash recovery** — each segment is ``flock``-ed by its writing process until ingested. On
  start (and every ``orphan_scan_s``) a ledger ingests the segments no live process holds,
  skipping ``row_id``s already in ``calls`` (anti-join), so nothing is written twice.
* **Several processes, locked file** — DuckDB lets one process open a file read-write. An
  ingester first takes ``flock`` on ``<ledger>.lock`` (cheap, no DuckDB open), then opens
  DuckDB. If either is held elsewhere, rows stay in the spool and the writer retries with
  backoff; ``append`` is unaffected and ``flush`` reports False.
* **Connection policy** — opening + closing the file costs ~40 ms here, so the writer keeps
  it open while rows keep coming, closes it after ``idle_close_s`` without rows, and also
  after holding it ``max_hold_s`` in a row (then stays away ``yield_s``) so that other
  finops processes and analysts get their turn even under steady traffic.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import logging
import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from finops.errors import LedgerError, MigrationError
from finops.ledger.migrations import migrate
from finops.ledger.row import LedgerRow
from finops.ledger.spool import SUFFIX, Segment, claim_orphans, encode, select_sql

__all__ = ["Ledger"]

log = logging.getLogger("finops.ledger")



class _Busy(Exception):
    """The ledger file is held elsewhere (another finops process, an analyst): retry later.

    ``cheap``: the conflict was seen on ``<ledger>.lock`` (a syscall to re-check), so the
    writer polls often instead of backing off, and does not miss the holder's release.
    """

    def __init__(self, message: str, *, cheap: bool = False) -> None:
        super().__init__(message)
        self.cheap = cheap


class Ledger:
    """An append-only ledger of :class:`LedgerRow` in a DuckDB file.

    Args:
        path: the DuckDB file (created with its schema if missing).
        spool_dir: where spool segments live (default ``<path>.spool/``); must be a local
            filesystem with ``flock``. Processes sharing a ledger must share the spool dir.
        flush_interval_s: how often the writer ingests the spool.
        max_batch: rows per spool segment; a full segment wakes the writer early, and one
            ingest transaction takes at most about this many rows (plus one segment).
        idle_close_s: close the DuckDB file after this long without new rows.
        max_hold_s: close it after holding it this long in a row, even under load ...
        yield_s: ... and stay away this long, so other writers and readers get a turn.
        orphan_scan_s: how often to look for segments left by dead processes.
        duckdb_threads: DuckDB worker threads for ingestion (1 keeps the writer from
            competing with the application for cores; more ingests faster).
        max_backoff_s: the longest wait between retries while the file is held elsewhere.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        spool_dir: str | Path | None = None,
        flush_interval_s: float = 0.2,
        max_batch: int = 200_000,
        idle_close_s: float = 1.0,
        max_hold_s: float = 5.0,
        yield_s: float = 0.5,
        orphan_scan_s: float = 30.0,
        duckdb_threads: int = 1,
        max_backoff_s: float = 2.0,
    ) -> None:
        self.path = Path(path)
        self.spool_dir = (
            Path(spool_dir) if spool_dir is not None else Path(str(self.path) + ".spool")
        )
        self.lock_path = Path(str(self.path) + ".lock")
        self.flush_interval_s = flush_interval_s
        self.max_batch = max(1, max_batch)
        self.idle_close_s = idle_close_s
        self.max_hold_s = max_hold_s
        self.yield_s = yield_s
        self.orphan_scan_s = orphan_scan_s
        self.duckdb_threads = duckdb_threads
        self.max_backoff_s = max_backoff_s
        self.dropped = 0  #: rows that could not be spooled (unencodable row, disk full, closed)

        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.spool_dir.mkdir(parents=True, exist_ok=True)
        self._prefix = f"{os.getpid()}-{os.urandom(4).hex()}-"
        self._seq = 0
        self._append_lock = threading.Lock()  # guards the current segment and the counters
        self._db_lock = threading.RLock()  # guards the DuckDB connection and the .lock fd
        self._cv = threading.Condition(threading.Lock())  # writer wake-ups and progress
        self._segment: Segment | None = self._new_segment()
        self._closed_segments: list[Segment] = []
        self._appended = 0  # rows spooled by this ledger (monotonic)
        self._ingested = 0  # of those, rows known to be in DuckDB
        self._cycles = 0  # writer cycles finished (flush waits for one after its request)
        self._busy = False  # the last cycle found the file held elsewhere
        self._wake_now = False
        self._stop = False
        self._closed = False
        self._con: Any = None
        self._lock_fd = -1
        self._held_since = 0.0
        self._last_used = time.monotonic()
        self._fatal: str | None = None  # e.g. the schema is newer than this finops
        self._next_orphan_scan = 0.0  # scan on the first cycle
        self._migrated = False
        self._last_error: str | None = None

        # Create/migrate the file now so that a too-new schema fails loudly at start-up, and
        # replay what dead processes left behind.
        try:
            with self._db_lock:
                self._acquire()
            self._replay_orphans()
        except _Busy as exc:  # someone else holds the file: the writer will retry
            self._busy = True
            self._last_error = str(exc)
        except MigrationError:
            self._abandon()
            raise
        except Exception as exc:
            self._abandon()
            raise LedgerError(f"cannot open ledger {self.path}: {exc}") from exc
        self._thread = threading.Thread(target=self._run, name="finops-ledger-writer", daemon=True)
        self._thread.start()
        atexit.register(self.close)

    # -- hot path ------------------------------------------------------------------------
    def append(self, row: LedgerRow) -> None:
        """Spool one row: crash-safe once this returns. Never blocks on DuckDB, never raises."""
        try:
            line = encode(row)
        except Exception as exc:  # a row that cannot be encoded is counted and logged
            self.dropped += 1
            log.error("finops ledger: cannot encode row %s: %r", getattr(row, "row_id", "?"), exc)
            return
        with self._append_lock:
            seg = self._segment
            if seg is None:
                self.dropped += 1
                log.error("finops ledger: append after close; row %s dropped", row.row_id)
                return
            try:
                os.write(seg.fd, line)
            except OSError as exc:
                self.dropped += 1
                log.error("finops ledger: cannot write spool %s: %r", seg.path, exc)
                return
            seg.rows += 1
            self._appended += 1
            full = seg.rows >= self.max_batch
        if full:
            with self._cv:
                self._wake_now = True
                self._cv.notify_all()

    # -- reading -------------------------------------------------------------------------
    def query(self, sql: str, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
        """Run SQL on the ledger through this process's connection; fetch all rows.

        Raises :class:`~finops.errors.LedgerError` while another process holds the file.
        Call :meth:`flush` first to see the rows appended so far.
        """
        with self._db_lock:
            try:
                con = self._acquire()
            except _Busy as exc:
                raise LedgerError(f"cannot read ledger {self.path}: {exc}") from exc
            self._last_used = time.monotonic()
            args = list(params) if params is not None else None
            return list(con.execute(sql, args).fetchall())

    def connect(self, *, read_only: bool = True, flush_timeout_s: float = 5.0) -> Any:
        """A new DuckDB connection to the ledger for analysis in this process (after a flush).

        ``read_only=True`` gives a read-only connection; while it is open this process's
        writer cannot write (DuckDB allows one configuration per file and process), so rows
        wait in the spool: close it when done. ``read_only=False`` shares the writer's
        database instance (writes go on); do not alter ``calls`` through it.
        """
        import duckdb

        self.flush(timeout_s=flush_timeout_s)
        with self._db_lock:
            if read_only:
                self._release()
                try:
                    return duckdb.connect(str(self.path), read_only=True)
                except duckdb.Error as exc:
                    raise LedgerError(f"cannot open ledger {self.path}: {exc}") from exc
            try:
                self._acquire()
            except _Busy as exc:
                raise LedgerError(f"cannot open ledger {self.path}: {exc}") from exc
            return duckdb.connect(str(self.path), config=self._config())

    # -- flushing ------------------------------------------------------------------------
    def flush(self, timeout_s: float | None = None) -> bool:
        """Block until every row appended before this call is in DuckDB.

        Returns False when ``timeout_s`` passes first, or as soon as the writer finds the
        file held by another process (the rows stay safe in the spool and are written
        later). A closed ledger returns whether everything it spooled was written.
        """
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        with self._append_lock:
            target = self._appended
        with self._cv:
            start_cycle = self._cycles
            if self._ingested >= target:
                return True
            if self._stop:
                return False
            self._wake_now = True
            self._cv.notify_all()
            while self._ingested < target:
                if self._stop or self._fatal is not None:
                    return False
                if self._busy and self._cycles > start_cycle:
                    return False
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._cv.wait(timeout=remaining)
            return True

    def close(self, *, timeout_s: float = 10.0) -> None:
        """Flush, stop the writer and close DuckDB. Idempotent.

        Rows that could not be written (file held elsewhere, timeout) stay in the spool; the
        next ledger opened on this file and spool ingests them.
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
        """Rows appended through this ledger and not yet in DuckDB."""
        return self._appended - self._ingested

    @property
    def last_error(self) -> str | None:
        """The writer's last failure (e.g. the file is held elsewhere), or None."""
        return self._last_error

    # -- internals -----------------------------------------------------------------------
    def _new_segment(self) -> Segment:
        self._seq += 1
        return Segment(self.spool_dir / f"{self._prefix}{self._seq:06d}{SUFFIX}")

    def _config(self) -> dict[str, Any]:
        return {"threads": self.duckdb_threads}

    def _acquire(self) -> Any:
        """The open connection, taking ``<ledger>.lock`` and opening DuckDB if needed.

        Raises _Busy if another ingester or another process holds the file.
        """
        if self._con is not None:
            return self._con
        if self._stop:  # closed: a writer cycle still running must not re-open the file
            raise _Busy(f"ledger {self.path} is closed")
        import duckdb

        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise _Busy(f"another finops process is writing {self.path}", cheap=True) from None
        try:
            con = duckdb.connect(str(self.path), config=self._config())
        except (duckdb.IOException, duckdb.ConnectionException) as exc:
            os.close(fd)
            raise _Busy(f"{self.path} is held by another process or connection: {exc}") from exc
        except BaseException:
            os.close(fd)
            raise
        if not self._migrated:
            try:
                migrate(con)
            except BaseException:
                con.close()
                os.close(fd)
                raise
            self._migrated = True
        self._con, self._lock_fd = con, fd
        self._held_since = time.monotonic()
        return con

    def _release(self) -> None:
        """Close DuckDB and drop ``<ledger>.lock`` (other processes may take the file)."""
        if self._con is not None:
            with contextlib.suppress(Exception):
                self._con.close()
            self._con = None
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1

    def _abandon(self) -> None:
        """Stop for good: close DuckDB, delete empty segments, unlock the others for replay."""
        with self._db_lock:
            self._release()
        with self._append_lock:
            segments = [*self._closed_segments]
            if self._segment is not None:
                segments.append(self._segment)
            self._segment = None
            self._closed_segments = []
        for seg in segments:
            if seg.rows == 0:
                seg.remove()
            else:
                seg.release()

    def _ingest(self, paths: list[Path], *, dedupe: bool) -> None:
        con = self._con
        select = select_sql(paths)
        if dedupe:
            sql = (
                f"INSERT INTO calls BY NAME SELECT * FROM ({select}) AS s "
                "WHERE NOT EXISTS (SELECT 1 FROM calls AS c WHERE c.row_id = s.row_id)"
            )
        else:
            sql = f"INSERT INTO calls BY NAME {select}"
        con.execute("BEGIN TRANSACTION")
        try:
            con.execute(sql)
            con.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(Exception):
                con.execute("ROLLBACK")
            raise

    def _replay_orphans(self) -> None:
        """Replay segments left by dead processes (acquires the file if there are any)."""
        self._next_orphan_scan = time.monotonic() + self.orphan_scan_s
        orphans = []
        for seg in claim_orphans(self.spool_dir, own_prefix=self._prefix):
            if os.fstat(seg.fd).st_size == 0:
                seg.remove()
            else:
                orphans.append(seg)
        if not orphans:
            return
        try:
            with self._db_lock:
                self._acquire()
                self._ingest([s.path for s in orphans], dedupe=True)
                self._last_used = time.monotonic()
        except BaseException:
            for seg in orphans:
                seg.release()
            self._next_orphan_scan = 0.0  # try again on the next cycle
            raise
        for seg in orphans:
            seg.remove()
        log.info("finops ledger: replayed %d spool segment(s) left behind", len(orphans))

    def _rotate(self) -> int:
        """Close the current segment for ingestion; returns the appended count it covers."""
        with self._append_lock:
            if self._segment is not None and self._segment.rows:
                self._closed_segments.append(self._segment)
                self._segment = self._new_segment()
            return self._appended

    def _cycle(self) -> float:
        """Ingest what is spooled; returns the delay before the next cycle."""
        covered = self._rotate()
        with self._append_lock:
            pending = list(self._closed_segments)
        if time.monotonic() >= self._next_orphan_scan:
            self._replay_orphans()
        if pending:
            with self._db_lock:
                self._acquire()
                while pending:
                    batch: list[Segment] = []
                    rows = 0
                    while pending and (not batch or rows + pending[0].rows <= self.max_batch):
                        rows += pending[0].rows
                        batch.append(pending.pop(0))
                    self._ingest([s.path for s in batch], dedupe=False)
                    with self._append_lock:
                        del self._closed_segments[: len(batch)]
                    for seg in batch:
                        seg.remove()
                self._last_used = time.monotonic()
        with self._cv:
            self._ingested = covered
            self._busy = False
            self._last_error = None
        with self._db_lock:
            now = time.monotonic()
            if self._con is not None and now - self._held_since > self.max_hold_s:
                self._release()  # let other writers and readers in before we take it again
                return self.yield_s
            if self._con is not None and now - self._last_used > self.idle_close_s:
                self._release()
        return self.flush_interval_s

    def _release_if_idle(self) -> None:
        with self._db_lock:
            if self._con is not None and time.monotonic() - self._last_used > self.idle_close_s:
                self._release()

    def _run(self) -> None:
        delay = self.flush_interval_s
        backoff = 0.0
        next_cycle = time.monotonic() + delay
        while True:
            with self._cv:
                while not self._stop and not self._wake_now:
                    wait_until = next_cycle
                    if self._con is not None:  # wake in time to let go of an idle file
                        wait_until = min(wait_until, self._last_used + self.idle_close_s + 0.001)
                    remaining = wait_until - time.monotonic()
                    if remaining <= 0:
                        break
                    self._cv.wait(timeout=remaining)
                woken = self._wake_now
                self._wake_now = False
                stopping = self._stop
            if not (woken or stopping) and time.monotonic() < next_cycle:
                self._release_if_idle()
                continue
            try:
                if self._fatal is None:
                    delay = self._cycle()
                    backoff = 0.0
                else:
                    delay = self.max_backoff_s
            except _Busy as exc:
                with self._cv:
                    self._busy = True
                    self._last_error = str(exc)
                backoff = min(max(backoff * 2, 0.05), self.max_backoff_s)
                delay = 0.05 if exc.cheap else backoff
                log.debug("finops ledger: %s (retrying in %.2fs)", exc, delay)
            except MigrationError as exc:  # retrying cannot help: say so once, loudly
                with self._cv:
                    self._fatal = self._last_error = str(exc)
                log.error("finops ledger: %s; rows stay in %s", exc, self.spool_dir)
            except Exception as exc:  # disk full, a DuckDB error: keep the spool, retry
                with self._cv:
                    self._last_error = f"{type(exc).__name__}: {exc}"
                backoff = min(max(backoff * 2, 0.05), self.max_backoff_s)
                delay = backoff
                log.warning("finops ledger writer: %s (retrying in %.2fs)", exc, delay)
            next_cycle = time.monotonic() + delay
            with self._cv:
                self._cycles += 1
                self._cv.notify_all()
            if stopping:
                return
