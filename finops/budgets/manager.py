"""``BudgetManager``: reserve → call → settle against every budget a call's tags match.

The flow of one call (DESIGN.md §1, steps 4 and 10)::

    r = manager.reserve(tags=..., cost=worst_case_usd, tokens=worst_case_tokens, model=m)
    #   raises finops.BudgetExceeded (send nothing) if a `raise` budget cannot hold it
    if r.downgrade_to:                       # a `downgrade` budget is full
        manager.release(r)
        r = manager.reserve(..., model=r.downgrade_to, allow_downgrade=False)  # re-estimated
    ... call the provider ...
    manager.settle(r, cost=actual_usd, tokens=actual_tokens)   # or release(r) if nothing ran

The store decides atomically (all matching budgets or none); this module turns budgets
and tags into counters, converts Decimal to integer store units, seeds new counters from
the ledger, applies the failure policy, and builds messages, warnings and status rows.
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
import warnings
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from finops.budgets.factory import open_store
from finops.budgets.model import Budget, usd_to_units
from finops.budgets.periods import period_bounds
from finops.budgets.store import (
    DOWNGRADE,
    ENFORCE,
    SOFT,
    BudgetStore,
    CounterKey,
    HoldRequest,
    counter_key,
)
from finops.errors import (
    BudgetBackendUnavailable,
    BudgetExceeded,
    BudgetWarning,
    ConfigError,
)

__all__ = ["BudgetEvent", "BudgetManager", "BudgetStatus", "Reservation"]

log = logging.getLogger("finops.budgets")

#: ``seed(budget, scope_key, period_start, period_end) -> (usd_spent, tokens_spent)``
SeedFn = Callable[[Budget, str, datetime, datetime], tuple[Decimal, int]]

_QUANT = Decimal("0.000001")
_ONE = Decimal(1)
_MIN_ELAPSED_S = 60.0  # burn rate over less than a minute is noise
_FINISH_LOCK = threading.Lock()


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _from_units(units: int, unit: str) -> Decimal:
    """Store units back to Decimal, without trailing zeros (``0.3``, not ``0.300000000``)."""
    if unit != "usd":
        return Decimal(units)
    amount = Decimal(units).scaleb(-9)
    return amount.quantize(_ONE) if amount == amount.to_integral_value() else amount.normalize()


def _fmt(amount: Decimal, unit: str) -> str:
    return f"${amount:,.6f}" if unit == "usd" else f"{int(amount):,} tokens"


@dataclass(frozen=True, slots=True)
class BudgetEvent:
    """A budget crossed by a call that was let through (``warn``, or ``downgrade``)."""

    budget: Budget
    scope: dict[str, str]  # concrete: "*" replaced by this counter's values
    scope_key: str
    period_start: datetime
    period_end: datetime
    limit: Decimal
    spent: Decimal
    reserved: Decimal
    requested: Decimal
    model: str | None
    tags: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class BudgetStatus:
    """One counter of one budget in its current period (``fo.budget_status()``)."""

    name: str
    scope: dict[str, str]
    scope_key: str
    period: str
    tz: str
    period_start: datetime
    period_end: datetime | None  # None for the "total" period
    unit: str
    action: str
    limit: Decimal
    spent: Decimal
    reserved: Decimal
    remaining: Decimal  # limit - spent - reserved (negative after an overshoot)
    burn_rate_per_hour: Decimal  # spent / hours elapsed in the period
    projected: Decimal | None  # spent + burn rate x hours left (None for "total")


class Reservation:
    """Budget held for one call. Pass it to :meth:`BudgetManager.settle` or ``release``.

    ``flags`` are ledger flags (``budget_warn:<name>``, ``budget_downgrade:<name>``,
    ``budget_unavailable:<name>``). ``downgrade_to`` is set when a ``downgrade`` budget is
    full: nothing is held then; release it and reserve again for that model with
    ``allow_downgrade=False``.
    """

    __slots__ = (
        "_expires",
        "_holds",
        "_state",
        "budgets",
        "cost",
        "downgrade_to",
        "flags",
        "id",
        "model",
        "tags",
        "tokens",
    )

    def __init__(
        self,
        *,
        rid: str,
        tags: Mapping[str, str],
        model: str | None,
        cost: Decimal,
        tokens: int,
        holds: tuple[tuple[CounterKey, bool], ...] = (),
        flags: list[str] | None = None,
        downgrade_to: str | None = None,
        expires: float | None = None,
    ) -> None:
        self.id = rid
        self.tags = tags
        self.model = model
        self.cost = cost
        self.tokens = tokens
        self._holds = holds
        self.budgets = tuple(counter.budget for counter, _ in holds)
        self.flags = flags or []
        self.downgrade_to = downgrade_to
        self._expires = expires
        self._state = "held"

    @property
    def expires_at(self) -> datetime | None:
        """When the earliest of its holds expires (None when nothing is held)."""
        return None if self._expires is None else datetime.fromtimestamp(self._expires, UTC)

    @property
    def done(self) -> bool:
        """True once settled or released."""
        return self._state != "held"

    def _finish(self, state: str) -> bool:
        with _FINISH_LOCK:  # uncontended in practice; one lock is cheaper than one each
            if self._state != "held":
                return False
            self._state = state
            return True

    def __repr__(self) -> str:
        return (
            f"Reservation(id={self.id!r}, budgets={self.budgets!r}, cost={self.cost}, "
            f"tokens={self.tokens}, flags={self.flags!r}, downgrade_to={self.downgrade_to!r}, "
            f"state={self._state!r})"
        )


class _Period:
    """One period of one budget and its counters; replaced whole at rollover so threads
    never see half-updated bounds."""

    __slots__ = ("counters", "end", "end_dt", "end_ts", "start", "start_dt", "start_ts")

    def __init__(self, start_dt: datetime, end_dt: datetime) -> None:
        self.start_dt, self.end_dt = start_dt, end_dt
        self.start_ts, self.end_ts = start_dt.timestamp(), end_dt.timestamp()
        self.start, self.end = int(self.start_ts), int(self.end_ts)
        self.counters: dict[str, CounterKey] = {}


_NO_PERIOD = _Period(datetime(1970, 1, 1, tzinfo=UTC), datetime(1970, 1, 1, tzinfo=UTC))


class _Rule:
    """A budget compiled for the hot path: plain attributes (pydantic private attributes go
    through ``__getattr__``) and the current period with its counters."""

    __slots__ = (
        "action",
        "budget",
        "downgrade_to",
        "fixed",
        "limit",
        "name",
        "period",
        "ttl",
        "usd",
        "wild",
    )

    def __init__(self, budget: Budget) -> None:
        self.budget = budget
        self.name = budget.name
        self.action = budget.action
        self.downgrade_to = budget.downgrade_to
        self.fixed = tuple(sorted((k, v) for k, v in budget.scope.items() if v != "*"))
        self.wild = any(v == "*" for v in budget.scope.values())
        self.usd = budget.unit == "usd"
        self.limit = budget.limit_units
        self.ttl = budget.reservation_ttl_s
        self.period = _NO_PERIOD

    def roll(self, now: datetime, ts: float) -> _Period:
        """The period containing ``now`` (computed only when the current one is over)."""
        period = self.period
        if period.start_ts <= ts < period.end_ts:
            return period
        period = _Period(*period_bounds(self.budget.period, self.budget.zone, now))
        self.period = period
        return period

    def counter(self, period: _Period, scope_key: str) -> CounterKey:
        """The counter of this scope key in ``period`` (cached)."""
        found = period.counters.get(scope_key)
        if found is None:
            found = counter_key(self.name, scope_key, period.start, period.end)
            if len(period.counters) < 10_000:  # bound memory for high-cardinality tags
                period.counters[scope_key] = found
        return found

    def match(self, period: _Period, tags: Mapping[str, str]) -> CounterKey | None:
        """This call's counter, or None if the tags do not match the scope."""
        for key, value in self.fixed:
            if tags.get(key) != value:
                return None
        if not self.wild:
            return self.counter(period, "")
        scope_key = self.budget.match(tags)
        return None if scope_key is None else self.counter(period, scope_key)


class BudgetManager:
    """Checks, holds and charges budgets for calls, in one store.

    Args:
        budgets: the budgets (names must be unique).
        store: ``"memory"`` (this process), ``"sqlite:///budgets.db"`` (processes on this
            machine), ``"redis://127.0.0.1:6379/0"`` (hosts), or a :class:`BudgetStore`.
        clock: returns the current time, timezone-aware (default: UTC now). Periods and
            reservation expiry follow it.
        on_warn: called with a :class:`BudgetEvent` when a ``warn`` budget is crossed
            (exceptions from it are logged, never raised).
        seed: ``seed(budget, scope_key, period_start, period_end) -> (usd, tokens)``, the
            spend already recorded (in the ledger) for that counter. Called when this
            manager meets a counter the store does not have yet: with the memory store,
            once per counter per process (so a restart does not get a fresh budget); with
            SQLite/Redis, only when the counter is new in the shared store (they keep spend
            themselves). The result becomes the counter's starting ``spent``.

    Thread-safe; the calls are synchronous and short (memory: microseconds, SQLite: tens
    of microseconds unless another process holds the lock, Redis: one round trip each), so
    they may be called from asyncio code directly.
    """

    def __init__(
        self,
        budgets: Iterable[Budget],
        *,
        store: str | BudgetStore = "memory",
        clock: Callable[[], datetime] | None = None,
        on_warn: Callable[[BudgetEvent], Any] | None = None,
        seed: SeedFn | None = None,
    ) -> None:
        self.budgets: tuple[Budget, ...] = tuple(budgets)
        names: set[str] = set()
        for budget in self.budgets:
            if not isinstance(budget, Budget):
                raise ConfigError(f"budgets must be finops.Budget objects, got {budget!r}")
            if budget.name in names:
                raise ConfigError(
                    f"two budgets are named {budget.name!r}; give one of them name='...'"
                )
            names.add(budget.name)
        self.store = open_store(store)
        self._rules = [_Rule(b) for b in self.budgets]
        self._clock = clock or _utc_now
        self._on_warn = on_warn
        self._seed = seed
        self._seen: set[str] = set()
        self._rid_prefix = os.urandom(8).hex()
        self._rid_seq = itertools.count(1)
        self._seed_lock = threading.Lock()
        self._pending: deque[tuple[str, list[tuple[CounterKey, int]]]] = deque(maxlen=100_000)
        self._pending_lock = threading.Lock()

    # -- helpers ---------------------------------------------------------------------
    def _ensure(self, rule: _Rule, counter: CounterKey, now: float) -> None:
        """Make sure the counter exists in the store, seeded from the ledger if new."""
        with self._seed_lock:
            if counter.id in self._seen:
                return
            if not self.store.exists(counter):
                spent = 0
                if self._seed is not None:
                    start = datetime.fromtimestamp(counter.start, UTC)
                    end = datetime.fromtimestamp(counter.end, UTC)
                    usd, tokens = self._seed(rule.budget, counter.scope_key, start, end)
                    spent = usd_to_units(Decimal(usd)) if rule.usd else int(tokens)
                self.store.create(counter, spent, now)
            if len(self._seen) > 100_000:  # a cache of "exists": safe to forget
                self._seen.clear()
            self._seen.add(counter.id)

    def _unavailable(self, budgets: list[Budget], exc: BaseException, flags: list[str]) -> None:
        closed = [b.name for b in budgets if b.on_unavailable == "fail_closed"]
        if closed:
            raise BudgetBackendUnavailable(
                f"budget store {self.store.url} is unavailable ({exc}); the call was refused "
                f"because budget(s) {', '.join(repr(n) for n in closed)} are fail_closed. "
                "Fix the store, or set on_unavailable='fail_open' on the budget to let calls "
                "through (uncounted) while it is down."
            ) from exc
        log.warning(
            "budget store %s unavailable (%s); letting the call through (fail_open)",
            self.store.url,
            exc,
        )
        flags.extend(f"budget_unavailable:{b.name}" for b in budgets)

    def _flush_pending(self) -> None:
        with self._pending_lock:
            items = list(self._pending)
            self._pending.clear()
        for i, (rid, actual) in enumerate(items):
            try:
                self.store.settle(rid, actual, self._clock().timestamp())
            except BudgetBackendUnavailable:
                with self._pending_lock:
                    self._pending.extendleft(reversed(items[i:]))
                return

    # -- the call path ---------------------------------------------------------------
    def reserve(
        self,
        *,
        tags: Mapping[str, str],
        cost: Decimal | int | str,
        tokens: int,
        model: str | None = None,
        allow_downgrade: bool = True,
    ) -> Reservation:
        """Hold the worst-case ``cost`` (USD) and ``tokens`` in every budget the tags match.

        All-or-nothing across budgets. Raises :class:`finops.BudgetExceeded` if a ``raise``
        budget cannot hold it, :class:`finops.BudgetBackendUnavailable` if the store is
        down and a matching budget is ``fail_closed``. A full ``warn`` budget lets the call
        through (flagged, ``on_warn``, :class:`finops.BudgetWarning`). A full ``downgrade``
        budget returns an empty reservation with ``downgrade_to`` set, unless
        ``allow_downgrade=False`` or ``model`` already is that cheaper model: then the
        budget is only flagged (a downgraded call is never refused by its own downgrade
        budget; ``raise`` budgets still apply).
        """
        if not isinstance(cost, Decimal):
            cost = Decimal(str(cost))
        if cost < 0 or tokens < 0:
            raise ValueError(f"cost and tokens must be >= 0, got {cost} and {tokens}")
        now_dt = self._clock()
        now = now_dt.timestamp()
        # Unique across processes and hosts (random prefix + pid) and cheap (a counter).
        rid = f"{self._rid_prefix}{os.getpid():x}.{next(self._rid_seq)}"
        if self._pending:
            self._flush_pending()

        matched: list[tuple[_Rule, CounterKey]] = []
        for rule in self._rules:
            counter = rule.match(rule.roll(now_dt, now), tags)
            if counter is not None:
                matched.append((rule, counter))
        if not matched:
            return Reservation(rid=rid, tags=tags, model=model, cost=cost, tokens=tokens)

        flags: list[str] = []
        seen = self._seen
        for _, counter in matched:
            if counter.id not in seen:
                matched = self._ensure_all(matched, now, flags)
                break

        usd = usd_to_units(cost)
        requests = []
        expires = float("inf")
        for rule, counter in matched:
            if now + rule.ttl < expires:
                expires = now + rule.ttl
            action = rule.action
            if action == "raise":
                mode = ENFORCE
            elif action == "warn" or not allow_downgrade or model == rule.downgrade_to:
                mode = SOFT
            else:
                mode = DOWNGRADE
            requests.append(
                HoldRequest(counter, usd if rule.usd else tokens, rule.limit, mode, now + rule.ttl)
            )
        if not requests:
            return Reservation(
                rid=rid, tags=tags, model=model, cost=cost, tokens=tokens, flags=flags
            )
        try:
            outcome = self.store.reserve(rid, requests, now)
        except BudgetBackendUnavailable as exc:
            self._unavailable([rule.budget for rule, _ in matched], exc, flags)
            return Reservation(
                rid=rid, tags=tags, model=model, cost=cost, tokens=tokens, flags=flags
            )

        if outcome.kind == "refused":
            rule, counter = matched[outcome.index]
            raise self._exceeded(
                rule, counter, outcome.spent, outcome.reserved, requests[outcome.index].amount
            )
        if outcome.kind == "downgrade":
            budget = matched[outcome.index][0].budget
            flags.append(f"budget_downgrade:{budget.name}")
            log.info(
                "budget %r is full: downgrading %s -> %s", budget.name, model, budget.downgrade_to
            )
            return Reservation(
                rid=rid,
                tags=tags,
                model=model,
                cost=cost,
                tokens=tokens,
                flags=flags,
                downgrade_to=budget.downgrade_to,
            )
        for index, spent, reserved in outcome.overs:
            self._over(matched[index], spent, reserved, requests[index].amount, model, tags, flags)
        return Reservation(
            rid=rid,
            tags=tags,
            model=model,
            cost=cost,
            tokens=tokens,
            holds=tuple((counter, rule.usd) for rule, counter in matched),
            flags=flags,
            expires=expires,
        )

    def _ensure_all(
        self, matched: list[tuple[_Rule, CounterKey]], now: float, flags: list[str]
    ) -> list[tuple[_Rule, CounterKey]]:
        """Create (and seed) counters not seen yet; apply the failure policy to failures."""
        ready = []
        failed: list[Budget] = []
        error: BaseException | None = None
        for rule, counter in matched:
            if counter.id not in self._seen:
                try:
                    self._ensure(rule, counter, now)
                except Exception as exc:  # the store is down, or the ledger seed failed
                    failed.append(rule.budget)
                    error = error or exc
                    continue
            ready.append((rule, counter))
        if error is not None:
            self._unavailable(failed, error, flags)
        return ready

    def _over(
        self,
        item: tuple[_Rule, CounterKey],
        spent: int,
        reserved: int,
        amount: int,
        model: str | None,
        tags: Mapping[str, str],
        flags: list[str],
    ) -> None:
        rule, counter = item
        budget = rule.budget
        if budget.action == "downgrade":  # already on the cheaper model: flag only
            flags.append(f"budget_downgrade:{budget.name}")
            return
        flags.append(f"budget_warn:{budget.name}")
        self._warn(
            BudgetEvent(
                budget=budget,
                scope=budget.concrete_scope(counter.scope_key),
                scope_key=counter.scope_key,
                period_start=datetime.fromtimestamp(counter.start, UTC),
                period_end=datetime.fromtimestamp(counter.end, UTC),
                limit=budget.limit,
                spent=_from_units(spent, budget.unit),
                reserved=_from_units(reserved, budget.unit),
                requested=_from_units(amount, budget.unit),
                model=model,
                tags=tags,
            )
        )

    def settle(self, reservation: Reservation, *, cost: Decimal | int | str, tokens: int) -> None:
        """Charge the actual ``cost`` and ``tokens`` and release the rest of the hold.

        Idempotent (a second settle or release of the same reservation does nothing). A
        reservation that already expired is still charged: the spend happened. A cancelled
        stream settles input plus the output produced. The actual amount is charged even
        if it is more than was reserved (the estimate was wrong; later calls see it). If
        the store is unreachable the charge is logged and retried on the next operation
        (never raised: the call already ran).
        """
        if not reservation._holds or not reservation._finish("settled"):
            return
        if not isinstance(cost, Decimal):
            cost = Decimal(str(cost))
        usd = usd_to_units(cost) if cost > 0 else 0
        toks = max(int(tokens), 0)
        self._apply(
            reservation.id,
            [(counter, usd if is_usd else toks) for counter, is_usd in reservation._holds],
        )

    def release(self, reservation: Reservation) -> None:
        """Give the hold back without charging (the call failed before using tokens)."""
        if not reservation._holds or not reservation._finish("released"):
            return
        self._apply(reservation.id, [(counter, 0) for counter, _ in reservation._holds])

    def _apply(self, rid: str, actual: list[tuple[CounterKey, int]]) -> None:
        try:
            if self._pending:
                self._flush_pending()
            self.store.settle(rid, actual, self._clock().timestamp())
        except BudgetBackendUnavailable as exc:
            log.warning("budget settle deferred, store unavailable: %s", exc)
            with self._pending_lock:
                self._pending.append((rid, actual))

    # -- messages ----------------------------------------------------------------------
    def _exceeded(
        self, rule: _Rule, counter: CounterKey, spent: int, reserved: int, requested: int
    ) -> BudgetExceeded:
        budget = rule.budget
        unit = budget.unit
        spent_d = _from_units(spent, unit)
        reserved_d = _from_units(reserved, unit)
        requested_d = _from_units(requested, unit)
        scope = budget.concrete_scope(counter.scope_key)
        scope_text = ", ".join(f"{k}={v}" for k, v in sorted(scope.items())) or "all calls"
        if budget.period == "total":
            when = "it never resets (period 'total')"
        else:
            reset = datetime.fromtimestamp(counter.end, budget.zone).isoformat()
            when = f"the {budget.period} resets at {reset}"
        message = (
            f"budget {budget.name!r} ({scope_text}, {_fmt(budget.limit, unit)} per "
            f"{budget.period}) cannot hold this call: it needs up to {_fmt(requested_d, unit)} "
            f"but {_fmt(spent_d, unit)} is spent and {_fmt(reserved_d, unit)} reserved by calls "
            f"in flight ({_fmt(budget.limit - spent_d - reserved_d, unit)} left). Nothing was "
            f"sent to the provider. To change it, raise `limit` of Budget(name={budget.name!r}) "
            f"(or its [[budgets]] entry in finops.toml), lower max_tokens, or wait: {when}."
        )
        return BudgetExceeded(
            message,
            budget=budget.name,
            scope=scope,
            period=budget.period,
            unit=unit,
            limit=budget.limit,
            spent=spent_d,
            reserved=reserved_d,
            requested=requested_d,
        )

    def _warn(self, event: BudgetEvent) -> None:
        unit = event.budget.unit
        message = (
            f"budget {event.budget.name!r} crossed: {_fmt(event.spent, unit)} spent + "
            f"{_fmt(event.reserved, unit)} reserved + {_fmt(event.requested, unit)} for this "
            f"call > limit {_fmt(event.limit, unit)} per {event.budget.period}; "
            "the call goes ahead (action='warn')"
        )
        log.warning(message)
        warnings.warn(message, BudgetWarning, stacklevel=4)
        if self._on_warn is not None:
            try:
                self._on_warn(event)
            except Exception:
                log.exception("on_warn callback failed for budget %r", event.budget.name)

    # -- status ------------------------------------------------------------------------
    def status(self) -> list[BudgetStatus]:
        """Limit, spent, reserved, remaining and burn rate of each budget's current period.

        Budgets without ``"*"`` give one row each; ``"*"`` budgets give one row per value
        the store has a counter for in this period (none before the first call).
        """
        now_dt = self._clock()
        now = now_dt.timestamp()
        out: list[BudgetStatus] = []
        for rule in self._rules:
            period = rule.roll(now_dt, now)
            budget = rule.budget
            keys = self.store.scope_keys(rule.name, period.start) if rule.wild else [""]
            counters = [rule.counter(period, k) for k in keys]
            for counter in counters:
                if counter.id not in self._seen:
                    self._ensure(rule, counter, now)
            states = self.store.snapshot(counters, now)
            total = budget.period == "total"
            for counter, state in zip(counters, states, strict=True):
                spent = _from_units(state.spent, budget.unit)
                reserved = _from_units(state.reserved, budget.unit)
                since = (state.created or now) if total else period.start_ts
                hours = Decimal(repr(max(now - since, _MIN_ELAPSED_S) / 3600))
                burn = (spent / hours).quantize(_QUANT)
                projected = None
                if not total:
                    left = Decimal(repr(max(period.end_ts - now, 0.0) / 3600))
                    projected = (spent + burn * left).quantize(_QUANT)
                out.append(
                    BudgetStatus(
                        name=budget.name,
                        scope=budget.concrete_scope(counter.scope_key),
                        scope_key=counter.scope_key,
                        period=budget.period,
                        tz=budget.tz,
                        period_start=period.start_dt,
                        period_end=None if total else period.end_dt,
                        unit=budget.unit,
                        action=budget.action,
                        limit=budget.limit,
                        spent=spent,
                        reserved=reserved,
                        remaining=budget.limit - spent - reserved,
                        burn_rate_per_hour=burn,
                        projected=projected,
                    )
                )
        return out

    def close(self) -> None:
        """Close the store's connections (deferred settles are tried once more first)."""
        if self._pending:
            self._flush_pending()
        self.store.close()
