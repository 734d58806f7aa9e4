"""BudgetManager semantics, run against every store (memory, SQLite file, real Redis)."""

from __future__ import annotations

import asyncio
import warnings
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from budget_testing import FakeClock, free_port

from finops.budgets import Budget, BudgetEvent, BudgetManager, MemoryStore
from finops.budgets.store import CounterKey
from finops.errors import BudgetBackendUnavailable, BudgetExceeded, BudgetWarning, ConfigError

D = Decimal
TEAM = {"team": "search"}


def status_of(manager: BudgetManager, name: str, scope_key: str = "") -> tuple[Decimal, Decimal]:
    for row in manager.status():
        if row.name == name and row.scope_key == scope_key:
            return row.spent, row.reserved
    raise AssertionError(f"no status row for {name} {scope_key}")


def test_reserve_refuse_settle_release(store_url: str, clock: FakeClock) -> None:
    budget = Budget(scope=TEAM, limit="1.00", period="day", tz="Europe/Paris")
    manager = BudgetManager([budget], store=store_url, clock=clock)
    first = manager.reserve(tags={**TEAM, "user": "u1"}, cost=D("0.6"), tokens=100, model="gpt-4o")
    assert first.budgets == ("team=search/day",) and not first.flags and first.expires_at
    with pytest.raises(BudgetExceeded) as info:
        manager.reserve(tags=TEAM, cost=D("0.5"), tokens=100)
    exc = info.value
    assert (exc.budget, exc.scope, exc.period, exc.unit) == ("team=search/day", TEAM, "day", "usd")
    assert (exc.limit, exc.spent, exc.reserved, exc.requested) == (D("1.00"), 0, D("0.6"), D("0.5"))
    assert exc.remaining == D("0.4")
    assert "team=search/day" in str(exc) and "raise `limit`" in str(exc)
    assert "Nothing was sent" in str(exc)

    manager.settle(first, cost=D("0.3"), tokens=80)
    manager.settle(first, cost=D("0.3"), tokens=80)  # idempotent
    manager.release(first)  # no effect after settle
    assert first.done
    assert status_of(manager, "team=search/day") == (D("0.3"), 0)

    exact = manager.reserve(tags=TEAM, cost=D("0.7"), tokens=1)  # fits to the nano-dollar
    with pytest.raises(BudgetExceeded):
        manager.reserve(tags=TEAM, cost=D("0.000000001"), tokens=0)
    manager.release(exact)
    assert status_of(manager, "team=search/day") == (D("0.3"), 0)
    other = manager.reserve(tags={"team": "ads"}, cost=D("99"), tokens=1)
    assert other.budgets == () and other.expires_at is None
    manager.settle(other, cost=D("99"), tokens=1)  # matched nothing: nothing to charge
    manager.close()


def test_all_or_nothing_across_budgets(store_url: str, clock: FakeClock) -> None:
    team = Budget(scope=TEAM, limit="1.00", period="day")
    user = Budget(scope={"user": "*"}, limit="0.50", period="hour")
    manager = BudgetManager([team, user], store=store_url, clock=clock)
    tags = {**TEAM, "user": "u1"}
    manager.reserve(tags=tags, cost=D("0.4"), tokens=1)
    with pytest.raises(BudgetExceeded) as info:
        manager.reserve(tags=tags, cost=D("0.2"), tokens=1)
    assert info.value.budget == "user=*/hour" and info.value.scope == {"user": "u1"}
    # The team budget could hold it, but nothing was held there for the refused call.
    assert status_of(manager, "team=search/day") == (0, D("0.4"))
    # Another user has its own counter.
    manager.reserve(tags={**TEAM, "user": "u2"}, cost=D("0.5"), tokens=1)
    assert status_of(manager, "user=*/hour", "user=u2") == (0, D("0.5"))
    assert {r.scope_key for r in manager.status() if r.name == "user=*/hour"} == {
        "user=u1",
        "user=u2",
    }


def test_tokens_budget(store_url: str, clock: FakeClock) -> None:
    budget = Budget(scope={"agent": "*"}, limit=1000, unit="tokens", period="hour")
    manager = BudgetManager([budget], store=store_url, clock=clock)
    r = manager.reserve(tags={"agent": "a1"}, cost=D("5"), tokens=600)
    with pytest.raises(BudgetExceeded) as info:
        manager.reserve(tags={"agent": "a1"}, cost=D("0"), tokens=401)
    assert info.value.unit == "tokens" and info.value.requested == 401
    assert "401 tokens" in str(info.value)
    manager.settle(r, cost=D("5"), tokens=450)  # e.g. a cancelled stream: input + output so far
    manager.reserve(tags={"agent": "a1"}, cost=D("0"), tokens=550)
    assert status_of(manager, budget.name, "agent=a1") == (450, 550)
    manager.reserve(tags={"agent": "a2"}, cost=D("0"), tokens=1000)


def test_warn_lets_the_call_through(store_url: str, clock: FakeClock) -> None:
    events: list[BudgetEvent] = []
    budget = Budget(scope=TEAM, limit="1.00", period="day", action="warn")
    manager = BudgetManager([budget], store=store_url, clock=clock, on_warn=events.append)
    ok = manager.reserve(tags=TEAM, cost=D("0.8"), tokens=1)
    assert ok.flags == [] and events == []
    with pytest.warns(BudgetWarning, match="team=search/day"):
        over = manager.reserve(tags=TEAM, cost=D("0.5"), tokens=1, model="gpt-4o")
    assert over.flags == ["budget_warn:team=search/day"]
    (event,) = events
    assert (event.spent, event.reserved, event.requested) == (0, D("0.8"), D("0.5"))
    assert event.model == "gpt-4o" and event.scope == TEAM
    manager.settle(ok, cost=D("0.8"), tokens=1)
    manager.settle(over, cost=D("0.5"), tokens=1)
    assert status_of(manager, budget.name) == (D("1.3"), 0)  # a warn budget records the truth
    row = manager.status()[0]
    assert row.remaining == D("-0.3")


def test_on_warn_errors_are_not_raised(clock: FakeClock) -> None:
    def boom(event: BudgetEvent) -> None:
        raise RuntimeError("callback bug")

    manager = BudgetManager(
        [Budget(limit="0", period="day", action="warn")], clock=clock, on_warn=boom
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BudgetWarning)
        assert manager.reserve(tags={}, cost=D("1"), tokens=1).flags == ["budget_warn:global/day"]


def test_downgrade_flow(store_url: str, clock: FakeClock) -> None:
    agents = Budget(
        scope={"agent": "*"},
        limit=1000,
        unit="tokens",
        period="hour",
        action="downgrade",
        downgrade_to="gpt-4o-mini",
    )
    hard = Budget(name="hard", limit="1.00", period="day")
    manager = BudgetManager([agents, hard], store=store_url, clock=clock)
    tags = {"agent": "a1"}
    first = manager.reserve(tags=tags, cost=D("0.1"), tokens=800, model="gpt-4o")
    assert first.downgrade_to is None
    manager.settle(first, cost=D("0.1"), tokens=800)

    big = manager.reserve(tags=tags, cost=D("0.5"), tokens=500, model="gpt-4o")
    assert big.downgrade_to == "gpt-4o-mini" and big.budgets == ()
    assert big.flags == ["budget_downgrade:agent=*/hour/tokens"]
    assert status_of(manager, "hard") == (D("0.1"), 0)  # nothing held for the first try
    manager.release(big)
    cheap = manager.reserve(
        tags=tags, cost=D("0.03"), tokens=500, model="gpt-4o-mini", allow_downgrade=False
    )
    assert cheap.downgrade_to is None and cheap.flags == ["budget_downgrade:agent=*/hour/tokens"]
    assert set(cheap.budgets) == {"agent=*/hour/tokens", "hard"}
    # Already on the cheaper model: flagged, never bounced again.
    again = manager.reserve(tags=tags, cost=D("0.03"), tokens=500, model="gpt-4o-mini")
    assert again.downgrade_to is None
    # raise budgets still apply to the downgraded call.
    with pytest.raises(BudgetExceeded) as info:
        manager.reserve(tags=tags, cost=D("0.9"), tokens=10, model="gpt-4o-mini")
    assert info.value.budget == "hard"


def test_expired_reservations_stop_counting(store_url: str, clock: FakeClock) -> None:
    budget = Budget(scope=TEAM, limit="1.00", period="day", reservation_ttl_s=10)
    manager = BudgetManager([budget], store=store_url, clock=clock)
    stale = manager.reserve(tags=TEAM, cost=D("1.00"), tokens=1)
    assert stale.expires_at == datetime(2026, 3, 10, 12, 0, 10, tzinfo=UTC)
    clock.advance(seconds=9.9)
    with pytest.raises(BudgetExceeded):
        manager.reserve(tags=TEAM, cost=D("0.01"), tokens=1)
    clock.advance(seconds=0.2)  # the holder crashed; its hold has expired
    assert status_of(manager, budget.name) == (0, 0)
    fresh = manager.reserve(tags=TEAM, cost=D("0.5"), tokens=1)
    # A late settle of the expired reservation still records what was spent.
    manager.settle(stale, cost=D("0.25"), tokens=1)
    assert status_of(manager, budget.name) == (D("0.25"), D("0.5"))
    manager.settle(fresh, cost=D("0.5"), tokens=1)
    with pytest.raises(BudgetExceeded) as info:
        manager.reserve(tags=TEAM, cost=D("0.26"), tokens=1)
    assert info.value.spent == D("0.75")


def test_seed_counts_ledger_spend_after_restart(tmp_path: Path, clock: FakeClock) -> None:
    calls: list[tuple[str, str, datetime, datetime]] = []

    def seed(budget: Budget, scope_key: str, start: datetime, end: datetime) -> tuple[D, int]:
        calls.append((budget.name, scope_key, start, end))
        return D("0.9"), 0  # what the ledger says was already spent today

    budget = Budget(scope=TEAM, limit="1.00", period="day", tz="Europe/Paris")
    for _restart in range(2):  # memory store: every new process seeds from the ledger
        manager = BudgetManager([budget], clock=clock, seed=seed)
        with pytest.raises(BudgetExceeded) as info:
            manager.reserve(tags=TEAM, cost=D("0.2"), tokens=1)
        assert info.value.spent == D("0.9")
        manager.reserve(tags=TEAM, cost=D("0.1"), tokens=1)
    assert (
        calls
        == [
            (
                "team=search/day",
                "",
                datetime(2026, 3, 9, 23, tzinfo=UTC),
                datetime(2026, 3, 10, 23, tzinfo=UTC),
            )
        ]
        * 2
    )

    # Persistent store: the counter survives, so only the first process seeds.
    calls.clear()
    url = f"sqlite:///{tmp_path / 'b.db'}"
    first = BudgetManager([budget], store=url, clock=clock, seed=seed)
    r = first.reserve(tags=TEAM, cost=D("0.05"), tokens=1)
    first.settle(r, cost=D("0.05"), tokens=1)
    first.close()
    second = BudgetManager([budget], store=url, clock=clock, seed=seed)
    assert status_of(second, budget.name) == (D("0.95"), 0)
    assert len(calls) == 1
    clock.advance(days=1)  # a new period is a new counter: seeded again
    second.reserve(tags=TEAM, cost=D("0.05"), tokens=1)
    assert len(calls) == 2 and calls[1][2] == datetime(2026, 3, 10, 23, tzinfo=UTC)


def test_seed_failure_follows_the_failure_policy(clock: FakeClock) -> None:
    broken = True

    def seed(budget: Budget, scope_key: str, start: datetime, end: datetime) -> tuple[D, int]:
        if broken:
            raise OSError("ledger locked")
        return D("0.5"), 0

    hard = Budget(scope=TEAM, limit="1", period="day")
    soft = Budget(scope=TEAM, limit="1", period="month", on_unavailable="fail_open")
    manager = BudgetManager([hard, soft], clock=clock, seed=seed)
    with pytest.raises(BudgetBackendUnavailable, match="fail_closed"):
        manager.reserve(tags=TEAM, cost=D("0.1"), tokens=1)
    open_only = BudgetManager([soft], clock=clock, seed=seed)
    r = open_only.reserve(tags=TEAM, cost=D("0.1"), tokens=1)
    assert r.flags == ["budget_unavailable:team=search/month"]
    broken = False  # the ledger is back: the counter is seeded then
    with pytest.raises(BudgetExceeded) as info:
        manager.reserve(tags=TEAM, cost=D("0.6"), tokens=1)
    assert info.value.spent == D("0.5")


def test_status_burn_rate_and_projection(store_url: str) -> None:
    clock = FakeClock(datetime(2026, 3, 10, 11, 0, tzinfo=UTC))  # 12:00 in Paris
    budget = Budget(scope=TEAM, limit="50", period="day", tz="Europe/Paris")
    manager = BudgetManager([budget], store=store_url, clock=clock)
    r = manager.reserve(tags=TEAM, cost=D("7"), tokens=1)
    manager.settle(r, cost=D("6"), tokens=1)
    manager.reserve(tags=TEAM, cost=D("2"), tokens=1)
    (row,) = manager.status()
    assert (row.limit, row.spent, row.reserved, row.remaining) == (D(50), D(6), D(2), D(42))
    assert row.burn_rate_per_hour == D("0.5")  # $6 over 12 hours
    assert row.projected == D("12")  # 0.5/h over the full 24 h
    assert row.period_start == datetime(2026, 3, 9, 23, tzinfo=UTC)
    assert row.unit == "usd" and row.action == "raise" and row.tz == "Europe/Paris"


def test_fail_closed_and_fail_open_with_redis_down(clock: FakeClock) -> None:
    pytest.importorskip("redis")
    url = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    hard = Budget(scope=TEAM, limit="1", period="day")
    manager = BudgetManager([hard], store=url, clock=clock)
    with pytest.raises(BudgetBackendUnavailable) as info:
        manager.reserve(tags=TEAM, cost=D("0.1"), tokens=1)
    assert url in str(info.value) and "fail_open" in str(info.value)

    soft = Budget(scope=TEAM, limit="1", period="day", on_unavailable="fail_open")
    warn = Budget(scope=TEAM, limit="1", period="month", action="warn")  # fail_open default
    manager = BudgetManager([soft, warn], store=url, clock=clock)
    r = manager.reserve(tags=TEAM, cost=D("0.1"), tokens=1)
    assert r.flags == ["budget_unavailable:team=search/day", "budget_unavailable:team=search/month"]
    manager.settle(r, cost=D("0.1"), tokens=1)  # nothing held: never raises
    assert manager.reserve(tags={"team": "other"}, cost=D("1"), tokens=1).flags == []


def test_fail_closed_and_fail_open_with_sqlite_unusable(tmp_path: Path, clock: FakeClock) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where a directory should be")
    url = f"sqlite:///{blocker / 'budgets.db'}"
    manager = BudgetManager([Budget(limit="1", period="day")], store=url, clock=clock)
    with pytest.raises(BudgetBackendUnavailable, match="cannot be used"):
        manager.reserve(tags={}, cost=D("0.1"), tokens=1)
    manager = BudgetManager(
        [Budget(limit="1", period="day", on_unavailable="fail_open")], store=url, clock=clock
    )
    assert manager.reserve(tags={}, cost=D("0.1"), tokens=1).flags == [
        "budget_unavailable:global/day"
    ]


class FlakyStore(MemoryStore):
    """A real memory store whose settles can be made to fail, like a network blip."""

    down = False

    def settle(self, rid: str, actual: object, now: float) -> None:  # type: ignore[override]
        if self.down:
            raise BudgetBackendUnavailable("store down")
        super().settle(rid, actual, now)  # type: ignore[arg-type]


def test_settle_during_outage_is_retried(clock: FakeClock) -> None:
    store = FlakyStore()
    manager = BudgetManager([Budget(limit="1", period="day")], store=store, clock=clock)
    r = manager.reserve(tags={}, cost=D("0.5"), tokens=1)
    store.down = True
    manager.settle(r, cost=D("0.4"), tokens=1)  # logged and queued, not raised
    store.down = False
    later = manager.reserve(tags={}, cost=D("0.1"), tokens=1)  # flushes the queued settle
    assert status_of(manager, "global/day") == (D("0.4"), D("0.1"))
    manager.settle(later, cost=D("0.1"), tokens=1)


def test_asyncio_tasks_share_one_budget(clock: FakeClock) -> None:
    manager = BudgetManager([Budget(limit="1", period="day")], clock=clock)
    outcomes: list[Decimal] = []

    async def call(i: int) -> None:
        try:
            r = manager.reserve(tags={}, cost=D("0.03"), tokens=1)
        except BudgetExceeded:
            outcomes.append(D(-1))
            return
        await asyncio.sleep(0.001 * (i % 3))
        manager.settle(r, cost=D("0.02"), tokens=1)
        outcomes.append(D("0.02"))

    async def main() -> None:
        await asyncio.gather(*(call(i) for i in range(200)))

    asyncio.run(main())
    charged = sum((o for o in outcomes if o > 0), D(0))
    assert len(outcomes) == 200 and outcomes.count(D(-1)) > 0
    assert status_of(manager, "global/day") == (charged, 0)
    assert charged <= D(1)


def test_manager_arguments_are_checked() -> None:
    with pytest.raises(ConfigError, match="two budgets are named"):
        BudgetManager([Budget(limit="1", period="day"), Budget(limit="2", period="day")])
    with pytest.raises(ConfigError, match="not supported"):
        BudgetManager([], store="postgres://x")
    with pytest.raises(ConfigError, match="relative"):
        BudgetManager([], store="sqlite://budgets.db")
    manager = BudgetManager([Budget(limit="1", period="day")])
    with pytest.raises(ValueError, match=">= 0"):
        manager.reserve(tags={}, cost=D("-1"), tokens=1)


def test_counter_ids_are_stable() -> None:
    from finops.budgets.store import counter_key

    key = counter_key("team=search/day", "", 100, 200)
    assert isinstance(key, CounterKey) and key.id == "team=search/day||100"
