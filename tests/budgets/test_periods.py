"""Calendar-aligned periods in a time zone, and budgets rolling over with an injected clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from budget_testing import FakeClock

from finops.budgets import Budget, BudgetManager
from finops.budgets.periods import TOTAL_END, TOTAL_START, period_bounds
from finops.errors import BudgetExceeded

PARIS = ZoneInfo("Europe/Paris")
NEW_YORK = ZoneInfo("America/New_York")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def test_day_is_local_midnight_to_midnight() -> None:
    # 22:30 UTC on 10 March is 23:30 in Paris (UTC+1): still the 10th there.
    start, end = period_bounds("day", PARIS, utc(2026, 3, 10, 22, 30))
    assert (start, end) == (utc(2026, 3, 9, 23), utc(2026, 3, 10, 23))
    # 23:00 UTC is local midnight: the 11th begins.
    assert period_bounds("day", PARIS, utc(2026, 3, 10, 23))[0] == utc(2026, 3, 10, 23)


def test_dst_days_are_23_and_25_hours() -> None:
    start, end = period_bounds("day", PARIS, utc(2026, 3, 29, 12))  # spring forward
    assert end - start == timedelta(hours=23)
    start, end = period_bounds("day", PARIS, utc(2026, 10, 25, 12))  # fall back
    assert end - start == timedelta(hours=25)
    start, end = period_bounds("day", NEW_YORK, utc(2026, 3, 8, 12))
    assert (start, end) == (utc(2026, 3, 8, 5), utc(2026, 3, 9, 4))


def test_repeated_hour_at_fall_back_is_two_periods() -> None:
    first = period_bounds("hour", NEW_YORK, utc(2026, 11, 1, 5, 30))  # 01:30 EDT
    second = period_bounds("hour", NEW_YORK, utc(2026, 11, 1, 6, 30))  # 01:30 EST
    assert first == (utc(2026, 11, 1, 5), utc(2026, 11, 1, 6))
    assert second == (utc(2026, 11, 1, 6), utc(2026, 11, 1, 7))


def test_week_starts_monday_and_month_on_the_first() -> None:
    # Sunday 15 March 2026, 23:30 in Paris = 22:30 UTC: the week began Monday 9 March.
    assert period_bounds("week", PARIS, utc(2026, 3, 15, 22, 30)) == (
        utc(2026, 3, 8, 23),
        utc(2026, 3, 15, 23),
    )
    # 31 Dec 2026 20:00 in New York (01:00 UTC on 1 Jan): still December there.
    assert period_bounds("month", NEW_YORK, utc(2027, 1, 1, 1)) == (
        utc(2026, 12, 1, 5),
        utc(2027, 1, 1, 5),
    )
    # A month that contains the spring DST change is 1 hour shorter.
    start, end = period_bounds("month", PARIS, utc(2026, 3, 15))
    assert end - start == timedelta(days=31, hours=-1)
    assert period_bounds("total", PARIS, utc(2026, 3, 15)) == (TOTAL_START, TOTAL_END)


def test_naive_clock_is_rejected() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        period_bounds("day", PARIS, datetime(2026, 3, 15))


def _fill(manager: BudgetManager, tags: dict[str, str], amount: str) -> None:
    r = manager.reserve(tags=tags, cost=Decimal(amount), tokens=1)
    manager.settle(r, cost=Decimal(amount), tokens=1)


@pytest.mark.parametrize("store", ["memory", "sqlite"])
def test_day_rollover_in_paris(store: str, tmp_path: object) -> None:
    url = "memory" if store == "memory" else f"sqlite:///{tmp_path}/b.db"
    clock = FakeClock(datetime(2026, 3, 10, 22, 59, 59, tzinfo=UTC))  # 23:59:59 Paris
    manager = BudgetManager(
        [Budget(scope={"team": "search"}, limit="1.00", period="day", tz="Europe/Paris")],
        store=url,
        clock=clock,
    )
    tags = {"team": "search"}
    _fill(manager, tags, "1.00")
    with pytest.raises(BudgetExceeded) as info:
        manager.reserve(tags=tags, cost=Decimal("0.01"), tokens=1)
    assert "resets at 2026-03-11T00:00:00+01:00" in str(info.value)
    # A reservation made just before midnight and settled after it charges the old day.
    clock.advance(seconds=1)  # 00:00:00 in Paris: a fresh day
    r = manager.reserve(tags=tags, cost=Decimal("0.40"), tokens=1)
    manager.settle(r, cost=Decimal("0.40"), tokens=1)
    (row,) = manager.status()
    assert row.period_start == utc(2026, 3, 10, 23)
    assert row.spent == Decimal("0.4") and row.remaining == Decimal("0.6")
    # Midnight UTC is 01:00 in Paris: same Paris day, no reset.
    clock.now = utc(2026, 3, 11, 0, 0, 1)
    with pytest.raises(BudgetExceeded):
        manager.reserve(tags=tags, cost=Decimal("0.61"), tokens=1)
    manager.close()


def test_week_and_month_rollover_new_york() -> None:
    # Sunday 29 Nov 2026, 23:00 in New York = Monday 04:00 UTC.
    clock = FakeClock(utc(2026, 11, 30, 4, 0))
    week = Budget(name="week", limit="5", period="week", tz="America/New_York")
    month = Budget(name="month", limit="8", period="month", tz="America/New_York")
    manager = BudgetManager([week, month], clock=clock)
    _fill(manager, {}, "5")
    with pytest.raises(BudgetExceeded) as info:
        manager.reserve(tags={}, cost=Decimal("0.01"), tokens=0)
    assert info.value.budget == "week"
    clock.now = utc(2026, 11, 30, 5, 0)  # Monday 00:00 in New York: new week, same month
    _fill(manager, {}, "3")
    with pytest.raises(BudgetExceeded) as info:
        manager.reserve(tags={}, cost=Decimal("0.01"), tokens=0)
    assert info.value.budget == "month" and info.value.spent == Decimal(8)
    clock.now = utc(2026, 12, 1, 4, 59)  # 23:59 on 30 Nov in New York: still November
    with pytest.raises(BudgetExceeded):
        manager.reserve(tags={}, cost=Decimal("0.01"), tokens=0)
    clock.now = utc(2026, 12, 1, 5, 0)  # 1 December there
    _fill(manager, {}, "0.01")
    rows = {r.name: r for r in manager.status()}
    assert rows["month"].spent == Decimal("0.01")
    assert rows["month"].period_start == utc(2026, 12, 1, 5)
    assert rows["week"].spent == Decimal("3.01")
