"""``finops budgets``: limit, spent, reserved, remaining and burn rate of every budget.

A thin shell over :meth:`finops.budgets.BudgetManager.status` (or ``FinOps.budget_status``
when the store is ``memory`` and the spend has to come from the ledger).
"""

from __future__ import annotations

import json
import tomllib
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    from finops.budgets import BudgetStatus

__all__ = ["register", "resolve_store", "show_budgets"]


def _amount(value: Decimal | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "usd":
        return f"${value:,.4f}"
    return f"{value:,.0f}"


def resolve_store(config: Path, settings: dict[str, Any], override: str | None) -> str:
    """The budget store URL: ``--store``, else ``[finops] budget_store``, else ``memory``.

    A relative ``sqlite:///`` path in the file is relative to the file (like the ledger).
    """
    if override:
        return override
    store = settings.get("budget_store", "memory")
    if not isinstance(store, str):
        raise typer.BadParameter(f"[finops] budget_store must be a string, got {store!r}")
    if store.startswith("sqlite:///") and not store.startswith("sqlite:////"):
        store = "sqlite:///" + str((config.parent / store[len("sqlite:///") :]).resolve())
    return store


def show_budgets(config: Path, store: str | None = None) -> list[BudgetStatus]:
    """The current status rows for the budgets in ``config``."""
    from finops.budgets import BudgetManager, load_budgets
    from finops.errors import ConfigError

    try:
        data = tomllib.loads(config.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file {config} does not exist (pass --config)") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {config} is not valid TOML: {exc}") from None
    budgets = load_budgets(data)
    settings = dict(data.get("finops", {}))
    url = resolve_store(config, settings, store)
    if url == "memory" and settings.get("ledger"):
        # Nothing outlives a process in the memory store: the ledger is the record.
        import finops

        with finops.FinOps.from_config(config) as fo:
            return fo.budget_status()
    manager = BudgetManager(budgets, store=url)
    try:
        return manager.status()
    finally:
        manager.close()


def register(app: typer.Typer) -> None:
    """Add the ``budgets`` command to the ``finops`` CLI."""

    @app.command("budgets")
    def budgets(
        config: Path = typer.Option(
            Path("finops.toml"), "--config", "-c", help="TOML file with [[budgets]]."
        ),
        store: str | None = typer.Option(
            None, "--store", help="Budget store URL (default: [finops] budget_store)."
        ),
        as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    ) -> None:
        """Show limit, spent, reserved, remaining and burn rate of every budget."""
        from rich.console import Console
        from rich.markup import escape
        from rich.table import Table

        from finops.errors import FinOpsError

        console = Console(width=max(Console().width, 160))  # a table needs room
        try:
            rows = show_budgets(config, store)
        except FinOpsError as exc:
            console.print(f"[red]{exc}[/red]")
            raise typer.Exit(code=1) from None
        if as_json:
            payload = [
                {
                    k: (str(v) if isinstance(v, Decimal) else v)
                    for k, v in {
                        "name": r.name,
                        "scope": r.scope,
                        "period": r.period,
                        "period_start": r.period_start.isoformat(),
                        "period_end": r.period_end.isoformat() if r.period_end else None,
                        "unit": r.unit,
                        "action": r.action,
                        "limit": r.limit,
                        "spent": r.spent,
                        "reserved": r.reserved,
                        "remaining": r.remaining,
                        "burn_rate_per_hour": r.burn_rate_per_hour,
                        "projected": r.projected,
                    }.items()
                }
                for r in rows
            ]
            typer.echo(json.dumps(payload, indent=2))
            return
        if not rows:
            console.print(f"No budgets in {config}.")
            return
        table = Table(title=f"Budgets — {config}")
        for name, justify in (
            ("budget", "left"),
            ("period", "left"),
            ("limit", "right"),
            ("spent", "right"),
            ("reserved", "right"),
            ("remaining", "right"),
            ("burn/h", "right"),
            ("projected", "right"),
            ("action", "left"),
        ):
            # Names and periods stay on one line: a wrapped budget name is hard to read.
            table.add_column(name, justify=justify, no_wrap=name in ("budget", "period"))  # type: ignore[arg-type]
        for r in rows:
            label = f"{r.name} [{r.scope_key}]" if r.scope_key else r.name
            if r.period == "total":
                period = "total"
            else:
                start = r.period_start.astimezone(_zone(r.tz)).strftime("%m-%d %H:%M")
                period = f"{r.period} {start} {r.tz}"
            remaining = _amount(r.remaining, r.unit)
            if r.remaining <= 0:
                remaining = f"[red]{remaining}[/red]"
            table.add_row(
                escape(label),
                period,
                _amount(r.limit, r.unit),
                _amount(r.spent, r.unit),
                _amount(r.reserved, r.unit),
                remaining,
                _amount(r.burn_rate_per_hour, r.unit),
                _amount(r.projected, r.unit),
                r.action,
            )
        console.print(table)


def _zone(name: str) -> Any:
    from zoneinfo import ZoneInfo

    return ZoneInfo(name)
