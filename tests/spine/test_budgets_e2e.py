"""Budgets through the wrapped SDK clients: refusals happen before anything is sent."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import anthropic
import openai
import pytest

import finops
from finops_testing import rows

MSG = [{"role": "user", "content": "Summarize the quarterly report."}]


def _client(fo: finops.FinOps, server) -> openai.OpenAI:
    return fo.wrap(openai.OpenAI(api_key="k", base_url=server.openai_base_url, max_retries=0))


def test_over_budget_raises_before_any_request_and_records_a_blocked_row(devserver, tmp_path: Path):
    budget = finops.Budget(scope={"team": "search"}, limit="0.002", period="day", tz="Europe/Paris")
    with finops.FinOps(ledger=tmp_path / "b.duckdb", budgets=[budget]) as fo:
        client = _client(fo, devserver)
        sent = 0
        with finops.tags(team="search"), pytest.raises(finops.BudgetExceeded) as info:
            for _ in range(100):
                before = len(devserver.requests)
                client.chat.completions.create(model="gpt-4o", messages=MSG, max_tokens=50)
                assert len(devserver.requests) == before + 1
                sent += 1
        refused_at = len(devserver.requests)
        assert refused_at == sent  # the refused call never reached the server
        exc = info.value
        assert exc.scope == {"team": "search"} and exc.period == "day"
        assert exc.limit == Decimal("0.002")
        assert exc.spent + exc.reserved + exc.requested > exc.limit
        assert "search" in str(exc) and "limit" in str(exc)

        all_rows = rows(fo)
        ok = [r for r in all_rows if r["status"] == "ok"]
        blocked = [r for r in all_rows if r["status"] == "blocked"]
        assert len(ok) == sent and len(blocked) == 1
        assert sum(r["cost_total"] for r in ok) <= Decimal("0.002")
        assert blocked[0]["cost_total"] == 0 and blocked[0]["counterfactual_cost"] > 0
        [status] = fo.budget_status()
        assert status.spent == sum(r["cost_total"] for r in ok) and status.reserved == 0

        with finops.tags(team="other"):  # other teams are not affected
            client.chat.completions.create(model="gpt-4o", messages=MSG, max_tokens=50)


def test_token_budget_and_per_agent_scopes(devserver, tmp_path: Path):
    budget = finops.Budget(scope={"agent": "*"}, limit=400, unit="tokens", period="hour")
    with finops.FinOps(ledger=tmp_path / "t.duckdb", budgets=[budget]) as fo:
        client = _client(fo, devserver)
        with finops.tags(agent="a"), pytest.raises(finops.BudgetExceeded):
            for _ in range(50):
                client.chat.completions.create(model="gpt-4o-mini", messages=MSG, max_tokens=100)
        with finops.tags(agent="b"):  # a separate counter
            client.chat.completions.create(model="gpt-4o-mini", messages=MSG, max_tokens=100)
        client.chat.completions.create(
            model="gpt-4o-mini", messages=MSG, max_tokens=100
        )  # no agent


def test_downgrade_sends_the_call_to_the_cheaper_model(devserver, tmp_path: Path):
    budget = finops.Budget(
        scope={}, limit="0.0005", period="day", action="downgrade", downgrade_to="gpt-4o-mini"
    )
    with finops.FinOps(ledger=tmp_path / "d.duckdb", budgets=[budget]) as fo:
        client = _client(fo, devserver)
        reply = client.chat.completions.create(model="gpt-4o", messages=MSG, max_tokens=100)
        assert reply.model.startswith("gpt-4o-mini")
        assert devserver.requests[-1].body["model"] == "gpt-4o-mini"
        [row] = rows(fo)
        assert row["requested_model"] == "gpt-4o-mini"
        assert row["route_decision"] == "budget_downgrade:gpt-4o->gpt-4o-mini"


def test_warn_budget_lets_calls_through_and_flags_the_row(devserver, tmp_path: Path):
    seen = []
    budget = finops.Budget(scope={}, limit="0.000001", period="day", action="warn")
    with finops.FinOps(
        ledger=tmp_path / "w.duckdb", budgets=[budget], on_budget_warn=lambda *a: seen.append(a)
    ) as fo:
        client = _client(fo, devserver)
        with pytest.warns(finops.BudgetWarning):
            for _ in range(3):
                client.chat.completions.create(model="gpt-4o", messages=MSG, max_tokens=20)
        flagged = [r for r in rows(fo) if r["budget_flags"]]
        assert flagged and all("warn" in r["budget_flags"] for r in flagged)
        assert seen


def test_a_restarted_process_does_not_get_a_fresh_budget(devserver, tmp_path: Path):
    ledger = tmp_path / "r.duckdb"
    budget = finops.Budget(scope={"team": "x"}, limit="0.002", period="day")
    with finops.FinOps(ledger=ledger, budgets=[budget]) as fo:
        client = _client(fo, devserver)
        with finops.tags(team="x"), pytest.raises(finops.BudgetExceeded):
            for _ in range(100):
                client.chat.completions.create(model="gpt-4o", messages=MSG, max_tokens=50)
    with finops.FinOps(ledger=ledger, budgets=[budget]) as fo:  # memory store, fresh process state
        client = _client(fo, devserver)
        before = len(devserver.requests)
        with finops.tags(team="x"), pytest.raises(finops.BudgetExceeded):
            client.chat.completions.create(model="gpt-4o", messages=MSG, max_tokens=50)
        assert len(devserver.requests) == before


def test_cancelled_stream_settles_what_was_used(devserver, tmp_path: Path):
    budget = finops.Budget(scope={}, limit="1.00", period="day")
    with finops.FinOps(ledger=tmp_path / "s.duckdb", budgets=[budget]) as fo:
        claude = fo.wrap(anthropic.Anthropic(api_key="k", base_url=devserver.anthropic_base_url))
        stream = claude.messages.create(
            model="claude-haiku-4-5", max_tokens=4000, messages=MSG, stream=True
        )
        for i, _event in enumerate(stream):
            if i == 3:
                break
        stream.close()
        [row] = rows(fo)
        assert row["status"] == "cancelled"
        [status] = fo.budget_status()
        assert status.reserved == 0
        assert status.spent == row["cost_total"] > 0


def test_from_config_toml(devserver, tmp_path: Path):
    config = tmp_path / "finops.toml"
    config.write_text(
        """
[finops]
ledger = "cfg.duckdb"
budget_store = "sqlite:///budgets.db"

[[budgets]]
scope = { team = "search" }
limit = "0.002"
period = "day"
tz = "Europe/Paris"
""",
        encoding="utf-8",
    )
    with finops.FinOps.from_config(config) as fo:
        client = _client(fo, devserver)
        with finops.tags(team="search"), pytest.raises(finops.BudgetExceeded):
            for _ in range(100):
                client.chat.completions.create(model="gpt-4o", messages=MSG, max_tokens=50)
    assert (tmp_path / "cfg.duckdb").exists() and (tmp_path / "budgets.db").exists()
    bad = tmp_path / "bad.toml"
    bad.write_text('[[budgets]]\nlimit = "x"\n', encoding="utf-8")
    with pytest.raises(finops.ConfigError, match="budget"):
        finops.FinOps.from_config(bad)
