"""``finops budgets``: the status table and JSON from a TOML config and a shared store."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import typer
from budget_testing import TOML
from typer.testing import CliRunner

from finops.budgets import BudgetManager, load_budgets
from finops.cli.budgets import register

CONFIG = TOML



def make_app() -> typer.Typer:
    app = typer.Typer()
    register(app)

    @app.command()
    def other() -> None:  # a second command so typer keeps "budgets" as a sub-command
        """Unused."""

    return app


def test_budgets_table_and_json(tmp_path: Path) -> None:
    config = tmp_path / "finops.toml"
    config.write_text(CONFIG)
    # Another process spent from the shared store (relative path: next to the config).
    manager = BudgetManager(load_budgets(config), store=f"sqlite:///{tmp_path / 'budgets.db'}")
    tags = {"team": "search", "agent": "planner"}
    r = manager.reserve(tags=tags, cost=Decimal("12.5"), tokens=30_000)
    manager.settle(r, cost=Decimal("12.5"), tokens=25_000)
    manager.reserve(tags=tags, cost=Decimal("2"), tokens=1_000)
    manager.close()

    runner = CliRunner()
    result = runner.invoke(make_app(), ["budgets", "--config", str(config)])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "team=search/day" in out and "agents [agent=planner]" in out
    for text in ("$50.0000", "$12.5000", "$2.0000", "$35.5000", "200,000", "25,000", "174,000"):
        assert text in out, text

    result = runner.invoke(make_app(), ["budgets", "-c", str(config), "--json"])
    assert result.exit_code == 0, result.output
    rows = {row["name"]: row for row in json.loads(result.output)}
    search = rows["team=search/day"]
    assert (search["limit"], search["spent"], search["reserved"], search["remaining"]) == (
        "50.00",
        "12.5",
        "2",
        "35.50",
    )
    assert rows["agents"]["scope"] == {"agent": "planner"}
    assert rows["agents"]["spent"] == "25000"


def test_budgets_store_override_and_errors(tmp_path: Path) -> None:
    config = tmp_path / "finops.toml"
    config.write_text(CONFIG)
    runner = CliRunner()
    result = runner.invoke(make_app(), ["budgets", "-c", str(config), "--store", "memory"])
    assert result.exit_code == 0, result.output
    assert "$0.0000" in result.output

    result = runner.invoke(make_app(), ["budgets", "-c", str(tmp_path / "nope.toml")])
    assert result.exit_code == 1 and "does not exist" in result.output

    config.write_text('[[budgets]]\nlimit = "1"\nperiod = "fortnight"\n')
    result = runner.invoke(make_app(), ["budgets", "-c", str(config)])
    assert result.exit_code == 1 and "fortnight" in result.output
