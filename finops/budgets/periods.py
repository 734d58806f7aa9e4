"""Calendar-aligned budget periods in a time zone.

A day budget in ``Europe/Paris`` runs from local midnight to the next local midnight, so a
DST day is 23 or 25 hours long. Weeks start on Monday (ISO 8601), months on the 1st.
``hour`` periods follow the local wall clock too (this matters only for zones whose offset
is not a whole number of hours). ``total`` is one period that never ends.

All instants returned are timezone-aware UTC datetimes; callers compare them with the
(injectable) clock's time, never with wall-clock strings.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

__all__ = ["TOTAL_END", "TOTAL_START", "period_bounds"]

#: Bounds of the ``total`` period (one counter for all time).
TOTAL_START = datetime(1970, 1, 1, tzinfo=UTC)
TOTAL_END = datetime(9999, 1, 1, tzinfo=UTC)


def _local_midnight(day: date, zone: ZoneInfo) -> datetime:
    # fold=0 on a non-existent local midnight (a DST gap at 00:00, e.g. America/Santiago)
    # resolves to the pre-transition offset, which is the real first instant of the day.
    return datetime(day.year, day.month, day.day, tzinfo=zone).astimezone(UTC)


def period_bounds(period: str, zone: ZoneInfo, now: datetime) -> tuple[datetime, datetime]:
    """The ``[start, end)`` of the period containing ``now`` (aware), as UTC datetimes."""
    if period == "total":
        return TOTAL_START, TOTAL_END
    if now.tzinfo is None:
        raise ValueError("budget clock must return a timezone-aware datetime")
    local = now.astimezone(zone)
    if period == "hour":
        # Keep ``fold`` so the repeated hour of a DST fall-back is its own period.
        start = local.replace(minute=0, second=0, microsecond=0).astimezone(UTC)
        return start, start + timedelta(hours=1)
    today = local.date()
    if period == "day":
        first, nxt = today, today + timedelta(days=1)
    elif period == "week":
        first = today - timedelta(days=today.weekday())
        nxt = first + timedelta(days=7)
    elif period == "month":
        first = today.replace(day=1)
        nxt = date(first.year + first.month // 12, first.month % 12 + 1, 1)
    else:
        raise ValueError(f"unknown budget period {period!r}")
    return _local_midnight(first, zone), _local_midnight(nxt, zone)
