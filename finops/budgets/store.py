"""The budget store interface and the in-process store (``open_store`` is in factory.py).

A store keeps, per *counter* (one budget × one scope value × one period), the settled
``spent`` amount and the *holds* of calls in flight (reservation id → amount, expiry).
Amounts are integers: nano-dollars (1e-9 USD) or tokens. Every method that decides
(``reserve``) is atomic across all the counters it is given: it holds in all of them or
in none. Expired holds stop counting and are removed lazily by the next operation on
their counter. Stores raise :class:`finops.BudgetBackendUnavailable` when they cannot be
reached; policy (fail closed / open) is the manager's business, not the store's.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, NamedTuple

__all__ = [
    "DOWNGRADE",
    "ENFORCE",
    "SOFT",
    "BudgetStore",
    "CounterKey",
    "CounterState",
    "HoldRequest",
    "MemoryStore",
    "ReserveOutcome",
    "counter_key",
]

#: Hold modes. ``ENFORCE``: refuse everything if this counter cannot hold the amount.
#: ``SOFT``: hold anyway and report it as over (warn budgets). ``DOWNGRADE``: hold nothing
#: anywhere and report the counter (the caller switches to a cheaper model).
ENFORCE = "e"
SOFT = "s"
DOWNGRADE = "d"

#: Counters are kept this long after their period ends, so late settles still land and
#: ``status`` can show the previous period.
GRACE_S = 7 * 86400


class CounterKey(NamedTuple):
    """One counter: budget name, scope key, period ``[start, end)`` in unix seconds, and
    its stable text id (``name|scope_key|start``), the key in persistent stores. Build it
    with :func:`counter_key`."""

    budget: str
    scope_key: str
    start: int
    end: int
    id: str


def counter_key(budget: str, scope_key: str, start: int, end: int) -> CounterKey:
    """A :class:`CounterKey` with its id filled in."""
    return CounterKey(budget, scope_key, start, end, f"{budget}|{scope_key}|{start}")


class HoldRequest(NamedTuple):
    """Hold ``amount`` on ``counter`` unless ``spent + reserved + amount > limit``."""

    counter: CounterKey
    amount: int
    limit: int
    mode: str  # ENFORCE | SOFT | DOWNGRADE
    expires: float  # unix seconds


class CounterState(NamedTuple):
    """What a counter holds now (expired holds excluded)."""

    spent: int
    reserved: int
    created: float | None  # unix seconds the counter was first created; None if absent


@dataclass(slots=True)
class ReserveOutcome:
    """Result of :meth:`BudgetStore.reserve`.

    ``kind`` is ``ok`` (held everywhere), ``refused`` (an ENFORCE counter was full; nothing
    held) or ``downgrade`` (a DOWNGRADE counter was full; nothing held). ``index``,
    ``spent`` and ``reserved`` describe that counter. ``overs`` lists the SOFT (and, when
    held, DOWNGRADE-as-soft) requests that went over: ``(index, spent, reserved)`` before
    this hold.
    """

    kind: Literal["ok", "refused", "downgrade"]
    index: int = -1
    spent: int = 0
    reserved: int = 0
    overs: list[tuple[int, int, int]] = field(default_factory=list)


class BudgetStore(ABC):
    """Where counters live. Implementations: memory, SQLite, Redis."""

    #: the URL it was opened from (for messages)
    url: str = ""

    @abstractmethod
    def exists(self, counter: CounterKey) -> bool:
        """Whether the counter has been created (by any process sharing the store)."""

    @abstractmethod
    def create(self, counter: CounterKey, spent: int, now: float) -> bool:
        """Create the counter with ``spent`` unless it exists; True if this call created it."""

    @abstractmethod
    def reserve(self, rid: str, requests: Sequence[HoldRequest], now: float) -> ReserveOutcome:
        """Atomically check every request and hold all of them, or none."""

    @abstractmethod
    def settle(self, rid: str, actual: Sequence[tuple[CounterKey, int]], now: float) -> None:
        """Drop ``rid``'s holds on these counters (if still there) and add ``actual`` to spent."""

    def release(self, rid: str, counters: Sequence[CounterKey], now: float) -> None:
        """Drop ``rid``'s holds without charging anything."""
        self.settle(rid, [(c, 0) for c in counters], now)

    @abstractmethod
    def snapshot(self, counters: Sequence[CounterKey], now: float) -> list[CounterState]:
        """Spent and live reserved amounts of these counters."""

    @abstractmethod
    def scope_keys(self, budget: str, start: int) -> list[str]:
        """Every scope key with a counter for this budget and period start."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""


def check(requests: Sequence[HoldRequest], states: Sequence[tuple[int, int]]) -> ReserveOutcome:
    """The decision shared by the Python stores (the Redis Lua script mirrors it).

    A DOWNGRADE counter that is full wins (nothing is held, the caller retries on a cheaper
    model); then an ENFORCE counter that is full refuses; otherwise everything is held and
    full SOFT counters are reported.
    """
    refused: tuple[int, int, int] | None = None
    overs: list[tuple[int, int, int]] = []
    for i, req in enumerate(requests):
        spent, reserved = states[i]
        if spent + reserved + req.amount <= req.limit:
            continue
        if req.mode == DOWNGRADE:
            return ReserveOutcome("downgrade", i, spent, reserved)
        if req.mode == ENFORCE:
            if refused is None:
                refused = (i, spent, reserved)
        else:
            overs.append((i, spent, reserved))
    if refused is not None:
        return ReserveOutcome("refused", *refused)
    return ReserveOutcome("ok", overs=overs)


_OK = ReserveOutcome("ok")  # shared: callers only read it


class _Counter:
    __slots__ = ("created", "end", "holds", "next_expiry", "reserved", "spent")

    def __init__(self, spent: int, now: float, end: int) -> None:
        self.spent = spent
        self.reserved = 0
        self.holds: dict[str, tuple[int, float]] = {}
        self.next_expiry = float("inf")
        self.created = now
        self.end = end

    def purge(self, now: float) -> None:
        if now < self.next_expiry:
            return
        nxt = float("inf")
        for rid, (amount, expires) in list(self.holds.items()):
            if expires <= now:
                del self.holds[rid]
                self.reserved -= amount
            elif expires < nxt:
                nxt = expires
        self.next_expiry = nxt


class MemoryStore(BudgetStore):
    """Counters in this process's memory, under one lock (threads and asyncio tasks).

    The lock is held for a few microseconds and never across I/O, so calling it from an
    event loop is fine. Nothing survives the process: the manager's ``seed`` callback
    restores spend from the ledger on the first use of each counter.
    """

    def __init__(self) -> None:
        self.url = "memory"
        self._lock = threading.Lock()
        self._counters: dict[str, _Counter] = {}
        self._scopes: dict[tuple[str, int], dict[str, None]] = {}
        self._created_since_gc = 0

    def _get(self, counter: CounterKey, now: float) -> _Counter:
        state = self._counters.get(counter.id)
        if state is None:
            state = self._counters[counter.id] = _Counter(0, now, counter.end)
            self._scopes.setdefault((counter.budget, counter.start), {})[counter.scope_key] = None
            self._created_since_gc += 1
            if self._created_since_gc >= 1024:
                self._gc(now)
        return state

    def _gc(self, now: float) -> None:
        # Old periods' counters would otherwise accumulate for the life of the process.
        self._created_since_gc = 0
        for cid, state in list(self._counters.items()):
            if state.end + GRACE_S < now and not state.holds:
                del self._counters[cid]
        for key, scopes in list(self._scopes.items()):
            for scope_key in list(scopes):
                if f"{key[0]}|{scope_key}|{key[1]}" not in self._counters:
                    del scopes[scope_key]
            if not scopes:
                del self._scopes[key]

    def exists(self, counter: CounterKey) -> bool:
        return counter.id in self._counters

    def create(self, counter: CounterKey, spent: int, now: float) -> bool:
        with self._lock:
            if counter.id in self._counters:
                return False
            self._get(counter, now).spent = spent
            return True

    def reserve(self, rid: str, requests: Sequence[HoldRequest], now: float) -> ReserveOutcome:
        with self._lock:
            states = []
            fits = True
            for req in requests:
                state = self._counters.get(req.counter.id) or self._get(req.counter, now)
                if now >= state.next_expiry:
                    state.purge(now)
                if state.spent + state.reserved + req.amount > req.limit:
                    fits = False
                states.append(state)
            if not fits:  # rare path: let the shared rule decide (downgrade/refuse/soft)
                outcome = check(requests, [(s.spent, s.reserved) for s in states])
                if outcome.kind != "ok":
                    return outcome
            else:
                outcome = _OK
            for req, state in zip(requests, states, strict=True):
                state.holds[rid] = (req.amount, req.expires)
                state.reserved += req.amount
                if req.expires < state.next_expiry:
                    state.next_expiry = req.expires
            return outcome

    def settle(self, rid: str, actual: Sequence[tuple[CounterKey, int]], now: float) -> None:
        with self._lock:
            for counter, amount in actual:
                state = self._get(counter, now)
                hold = state.holds.pop(rid, None)
                if hold is not None:
                    state.reserved -= hold[0]
                state.spent += amount

    def snapshot(self, counters: Sequence[CounterKey], now: float) -> list[CounterState]:
        with self._lock:
            out = []
            for counter in counters:
                state = self._counters.get(counter.id)
                if state is None:
                    out.append(CounterState(0, 0, None))
                else:
                    state.purge(now)
                    out.append(CounterState(state.spent, state.reserved, state.created))
            return out

    def scope_keys(self, budget: str, start: int) -> list[str]:
        with self._lock:
            return list(self._scopes.get((budget, start), ()))
