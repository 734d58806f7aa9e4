"""Helpers shared by the budget tests and their worker script (importable by name)."""

from __future__ import annotations

from datetime import datetime, timedelta

from finops_testing import REDIS_SERVER, RedisServer, free_port

__all__ = ["REDIS_SERVER", "TOML", "FakeClock", "RedisServer", "free_port"]

#: A finops.toml with three budgets (a team/day USD limit, per-agent downgrading token
#: limits, a monthly warn budget), shared by the model and CLI tests.
TOML = """
[finops]
budget_store = "sqlite:///budgets.db"

[[budgets]]
scope = { team = "search" }
limit = "50.00"
period = "day"
tz = "Europe/Paris"

[[budgets]]
name = "agents"
scope = { agent = "*" }
limit = 200_000
unit = "tokens"
period = "hour"
action = "downgrade"
downgrade_to = "gpt-4o-mini"

[[budgets]]
limit = 1000.5
period = "month"
action = "warn"
"""


class FakeClock:
    """A clock the test moves by hand (timezone-aware)."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)
