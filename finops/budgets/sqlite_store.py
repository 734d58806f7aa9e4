"""Cross-process budget store on one machine: a SQLite file, ``BEGIN IMMEDIATE`` transactions.

Why SQLite: ``BEGIN IMMEDIATE`` takes the database's single write lock before the first
read, so "read spent and holds, compare with the limit, insert the hold" runs as one
serialized step across every thread and process that opens the file; no two callers can
both see the same room. WAL mode with ``synchronous=NORMAL`` keeps commits off ``fsync``
(a committed transaction survives ``kill -9``; only an OS crash can lose the last ones).

Amounts are INTEGER (nano-dollars or tokens), never REAL. Holds are rows with an expiry;
``reserved`` is the sum of live holds, computed inside the transaction, so a crashed
process's holds stop counting at their expiry without anyone cleaning up first.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from finops.budgets.store import (
    BudgetStore,
    CounterKey,
    CounterState,
    HoldRequest,
    ReserveOutcome,
    check,
)
from finops.errors import BudgetBackendUnavailable

__all__ = ["SQLiteStore"]

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS budget_counters (
    id TEXT PRIMARY KEY,
    budget TEXT NOT NULL,
    scope_key TEXT NOT NULL,
    period_start INTEGER NOT NULL,
    period_end INTEGER NOT NULL,
    spent INTEGER NOT NULL,
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS budget_counters_period ON budget_counters (budget, period_start);
CREATE TABLE IF NOT EXISTS budget_holds (
    counter TEXT NOT NULL,
    rid TEXT NOT NULL,
    amount INTEGER NOT NULL,
    expires REAL NOT NULL,
    PRIMARY KEY (counter, rid)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS budget_holds_expiry ON budget_holds (counter, expires);
"""

_CREATE = (
    "INSERT OR IGNORE INTO budget_counters "
    "(id, budget, scope_key, period_start, period_end, spent, created) "
    "VALUES (?, ?, ?, ?, ?, ?, ?)"
)
_PURGE = "DELETE FROM budget_holds WHERE counter = ? AND expires <= ?"
_STATE = (
    "SELECT spent, (SELECT COALESCE(SUM(amount), 0) FROM budget_holds WHERE counter = ?1), "
    "created FROM budget_counters WHERE id = ?1"
)
_HOLD = "INSERT OR REPLACE INTO budget_holds (counter, rid, amount, expires) VALUES (?, ?, ?, ?)"
_UNHOLD = "DELETE FROM budget_holds WHERE counter = ? AND rid = ?"
_CHARGE = "UPDATE budget_counters SET spent = spent + ? WHERE id = ?"


class SQLiteStore(BudgetStore):
    """Counters in a SQLite file shared by every process on the machine.

    Args:
        path: the database file (created with its tables if missing).
        busy_timeout_s: how long a writer waits for the lock before the store is
            considered unavailable (the manager then applies the fail policy).
    """

    def __init__(self, path: str | Path, *, busy_timeout_s: float = 30.0) -> None:
        self.path = Path(path)
        self.url = f"sqlite:///{self.path}"
        self.busy_timeout_s = busy_timeout_s
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._all_lock = threading.Lock()

    # -- connections -------------------------------------------------------------------
    def _conn(self) -> sqlite3.Connection:
        local = self._local
        conn: sqlite3.Connection | None = getattr(local, "conn", None)
        # A connection must not cross a fork: key it by process id as well as thread.
        if conn is not None and local.pid == os.getpid():
            return conn
        conn = sqlite3.connect(
            self.path,
            timeout=self.busy_timeout_s,
            isolation_level=None,  # we issue BEGIN IMMEDIATE / COMMIT ourselves
            check_same_thread=False,
        )
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.executescript(_SCHEMA)
        except BaseException:
            conn.close()
            raise
        local.conn, local.pid = conn, os.getpid()
        with self._all_lock:
            self._all.append(conn)
        return conn

    def _write(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``work`` in one ``BEGIN IMMEDIATE`` transaction; map I/O errors."""
        try:
            conn = self._conn()
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise self._unavailable(exc) from exc
        try:
            result = work(conn)
        except BaseException as exc:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                raise self._unavailable(exc) from exc
            raise
        try:
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise self._unavailable(exc) from exc
        return result

    def _unavailable(self, exc: BaseException) -> BudgetBackendUnavailable:
        return BudgetBackendUnavailable(
            f"budget store {self.url} cannot be used: {exc}. Check that the directory exists "
            "and is writable, or pick another budget_store."
        )

    # -- BudgetStore -------------------------------------------------------------------
    def exists(self, counter: CounterKey) -> bool:
        try:
            row = (
                self._conn()
                .execute("SELECT 1 FROM budget_counters WHERE id = ?", (counter.id,))
                .fetchone()
            )
        except sqlite3.Error as exc:
            raise self._unavailable(exc) from exc
        return row is not None

    def create(self, counter: CounterKey, spent: int, now: float) -> bool:
        def work(conn: sqlite3.Connection) -> bool:
            # Crashed processes' holds on counters nobody touches again: drop them here,
            # once per new counter, so the table stays small.
            conn.execute("DELETE FROM budget_holds WHERE expires <= ?", (now,))
            cur = conn.execute(_CREATE, (counter.id, *counter[:4], spent, now))
            return cur.rowcount == 1

        return self._write(work)

    def reserve(self, rid: str, requests: Sequence[HoldRequest], now: float) -> ReserveOutcome:
        def work(conn: sqlite3.Connection) -> ReserveOutcome:
            states = []
            for req in requests:
                cid = req.counter.id
                conn.execute(_PURGE, (cid, now))
                conn.execute(_CREATE, (cid, *req.counter[:4], 0, now))
                spent, reserved, _ = conn.execute(_STATE, (cid,)).fetchone()
                states.append((spent, reserved))
            outcome = check(requests, states)
            if outcome.kind == "ok":
                conn.executemany(
                    _HOLD, [(r.counter.id, rid, r.amount, r.expires) for r in requests]
                )
            return outcome

        return self._write(work)

    def settle(self, rid: str, actual: Sequence[tuple[CounterKey, int]], now: float) -> None:
        def work(conn: sqlite3.Connection) -> None:
            for counter, amount in actual:
                cid = counter.id
                conn.execute(_UNHOLD, (cid, rid))
                if amount:
                    conn.execute(_CREATE, (cid, *counter[:4], 0, now))
                    conn.execute(_CHARGE, (amount, cid))

        self._write(work)

    def snapshot(self, counters: Sequence[CounterKey], now: float) -> list[CounterState]:
        def work(conn: sqlite3.Connection) -> list[CounterState]:
            out = []
            for counter in counters:
                conn.execute(_PURGE, (counter.id, now))
                row = conn.execute(_STATE, (counter.id,)).fetchone()
                out.append(CounterState(0, 0, None) if row is None else CounterState(*row))
            return out

        return self._write(work)

    def scope_keys(self, budget: str, start: int) -> list[str]:
        try:
            rows = (
                self._conn()
                .execute(
                    "SELECT scope_key FROM budget_counters WHERE budget = ? AND period_start = ? "
                    "ORDER BY scope_key",
                    (budget, start),
                )
                .fetchall()
            )
        except sqlite3.Error as exc:
            raise self._unavailable(exc) from exc
        return [r[0] for r in rows]

    def close(self) -> None:
        with self._all_lock:
            conns, self._all = self._all, []
        for conn in conns:
            with contextlib.suppress(sqlite3.Error):
                conn.close()
        self._local = threading.local()
