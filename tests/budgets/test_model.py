"""Budget definitions: validation, defaults, names, matching, TOML loading and its errors."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from budget_testing import TOML

import finops
from finops.budgets import Budget, load_budgets
from finops.errors import ConfigError


def test_design_shapes_and_defaults() -> None:
    day = finops.Budget(scope={"team": "search"}, limit="50.00", period="day", tz="Europe/Paris")
    assert day.limit == Decimal("50.00") and isinstance(day.limit, Decimal)
    assert day.unit == "usd" and day.action == "raise"
    assert day.on_unavailable == "fail_closed"
    assert day.name == "team=search/day"
    assert day.limit_units == 50 * 10**9

    agents = finops.Budget(
        scope={"agent": "*"},
        limit=200_000,
        unit="tokens",
        period="hour",
        action="downgrade",
        downgrade_to="gpt-4o-mini",
    )
    assert agents.name == "agent=*/hour/tokens"
    assert agents.on_unavailable == "fail_open"
    assert agents.limit_units == 200_000

    warn = Budget(limit="1", period="month", action="warn")
    assert warn.name == "global/month" and warn.on_unavailable == "fail_open"
    assert Budget(limit="1", period="day", on_unavailable="fail_open").on_unavailable == "fail_open"


def test_budget_is_frozen_and_keyword_only() -> None:
    budget = Budget(limit="1", period="day")
    with pytest.raises(Exception, match="frozen"):
        budget.limit = Decimal(2)  # type: ignore[misc]
    with pytest.raises(TypeError):
        Budget({"team": "x"}, "1", "day")  # type: ignore[call-arg,misc]


def test_matching_rules() -> None:
    team = Budget(scope={"team": "search"}, limit="1", period="day")
    assert team.match({"team": "search", "user": "u1"}) == ""
    assert team.match({"team": "ads"}) is None
    assert team.match({}) is None

    both = Budget(scope={"team": "search", "feature": "summaries"}, limit="1", period="day")
    assert both.match({"team": "search", "feature": "summaries"}) == ""
    assert both.match({"team": "search"}) is None  # all keys must match

    per_agent = Budget(scope={"agent": "*", "team": "search"}, limit="1", period="day")
    assert per_agent.match({"team": "search", "agent": "a1"}) == "agent=a1"
    assert per_agent.match({"team": "search"}) is None  # no agent tag: no match
    assert per_agent.match({"team": "ads", "agent": "a1"}) is None

    glob = Budget(scope={}, limit="1", period="day")
    assert glob.match({}) == "" and glob.match({"anything": "x"}) == ""

    odd = Budget(scope={"user": "*"}, limit="1", period="day")
    key = odd.match({"user": "a|b%c"})
    assert key is not None and "|" not in key.partition("=")[2]
    assert odd.concrete_scope(key) == {"user": "a|b%c"}


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"limit": "1", "period": "day", "tz": "Mars/Olympus_Mons"}, "not a known IANA time zone"),
        ({"limit": "1", "period": "daily"}, "period"),
        ({"limit": "abc", "period": "day"}, "is not a number"),
        ({"limit": "-1", "period": "day"}, ">= 0"),
        ({"limit": "10.5", "period": "day", "unit": "tokens"}, "whole-number"),
        ({"limit": "1", "period": "day", "action": "downgrade"}, "downgrade_to"),
        ({"limit": "1", "period": "day", "downgrade_to": "gpt-4o-mini"}, "only used with"),
        ({"limit": "1", "period": "day", "reservation_ttl_s": 0}, "reservation_ttl_s"),
        ({"limit": "1", "period": "day", "colour": "red"}, "not a budget setting"),
        ({"limit": "1"}, "period: is required"),
        ({"limit": "1", "period": "day", "scope": {"team": ""}}, "needs a value"),
        ({"limit": "1", "period": "day", "name": "a|b"}, "must not contain"),
    ],
)
def test_invalid_budgets_raise_config_error(kwargs: dict[str, object], needle: str) -> None:
    with pytest.raises(ConfigError, match="invalid budget") as info:
        Budget(**kwargs)  # type: ignore[arg-type]
    assert needle in str(info.value)


def test_limit_accepts_numbers_and_strings_without_float_error() -> None:
    assert Budget(limit=0.1, period="day").limit == Decimal("0.1")  # TOML floats: via repr
    assert Budget(limit="$1_000.25", period="day").limit == Decimal("1000.25")
    assert Budget(limit=Decimal("0.000000001"), period="day").limit_units == 1
    # Sub-nano limits round down: the store never allows more than the limit.
    assert Budget(limit=Decimal("0.0000000019"), period="day").limit_units == 1





def test_load_budgets_from_path_and_dict(tmp_path: Path) -> None:
    import tomllib

    path = tmp_path / "finops.toml"
    path.write_text(TOML)
    budgets = load_budgets(path)
    assert [b.name for b in budgets] == ["team=search/day", "agents", "global/month"]
    assert budgets[0].tz == "Europe/Paris" and budgets[0].limit == Decimal("50.00")
    assert budgets[1].unit == "tokens" and budgets[1].downgrade_to == "gpt-4o-mini"
    assert budgets[2].limit == Decimal("1000.5") and budgets[2].action == "warn"
    assert load_budgets(tomllib.loads(TOML)) == budgets
    assert load_budgets({"budgets": [dict(limit="1", period="day")]})[0].name == "global/day"
    assert load_budgets(str(path)) == budgets


def test_load_budgets_errors_name_file_and_entry(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(
        '[[budgets]]\nlimit = "1"\nperiod = "day"\n\n'
        '[[budgets]]\nscope = { team = "x" }\nlimit = "1"\nperiod = "day"\ntz = "Europe/Pariss"\n'
    )
    with pytest.raises(ConfigError) as info:
        load_budgets(path)
    message = str(info.value)
    assert str(path) in message and "budgets[1]" in message
    assert "Europe/Pariss" in message and "team=x/day" in message

    path.write_text(
        '[[budgets]]\nlimit = "1"\nperiod = "day"\n[[budgets]]\nlimit = "2"\nperiod = "day"\n'
    )
    with pytest.raises(ConfigError, match=r"budgets\[1\] has the same name 'global/day'"):
        load_budgets(path)

    path.write_text("[[budgets]\nlimit=")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_budgets(path)
    with pytest.raises(ConfigError, match="does not exist"):
        load_budgets(tmp_path / "missing.toml")
    with pytest.raises(ConfigError, match="array of tables"):
        load_budgets({"budgets": "oops"})
