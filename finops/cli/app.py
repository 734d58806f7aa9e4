"""The ``finops`` Typer app: the top-level commands and the sub-command modules it loads.

finops demo                     run the demo workload against the local server
finops report [--by team]       spend from a ledger
finops serve-fake               run the local OpenAI/Anthropic-compatible server
finops tokens / estimate        count tokens, worst-case cost of a request
finops budgets                  budget status
"""

from __future__ import annotations

import importlib
from decimal import Decimal
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

__all__ = ["app", "main"]

app = typer.Typer(
    name="finops",
    help="Price every LLM call and keep spend under control.",
    no_args_is_help=True,
    add_completion=False,
)
console = Console()


def _money(value: object) -> str:
    amount = Decimal(str(value or 0))
    return f"${amount:,.6f}"


@app.command()
def demo(
    ledger: Path = typer.Option(Path("finops.duckdb"), help="DuckDB ledger file to write."),
    keep: bool = typer.Option(
        False, help="Append to an existing ledger instead of starting fresh."
    ),
) -> None:
    """Run a realistic workload through wrapped OpenAI and Anthropic clients (local server)."""
    from finops.demo import run_demo

    result = run_demo(ledger=ledger, fresh=not keep)
    table = Table(title=f"Spend by team and model — {result.ledger}")
    for name, justify in (
        ("team", "left"),
        ("model", "left"),
        ("attempts", "right"),
        ("tokens", "right"),
        ("cost (USD)", "right"),
    ):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for team, model, attempts, tokens, cost in result.by_team_model:
        table.add_row(team, model, str(attempts), f"{tokens:,}", _money(cost))
    table.add_row("[b]total[/b]", "", str(result.rows), "", f"[b]{_money(result.total_cost)}[/b]")
    console.print(table)
    statuses = ", ".join(f"{k}: {v}" for k, v in result.statuses.items())
    console.print(f"{result.calls} calls → {result.rows} ledger rows ({statuses})")
    for cause, detail, calls, saved in result.savings:
        console.print(f"[green]Saved by {cause}[/green] ({detail}): {calls} calls, {_money(saved)}")
    if result.budget_stop:
        console.print(f"[yellow]Budget stop:[/yellow] {result.budget_stop}")
    console.print(
        f"Query it: [b]finops report --ledger {result.ledger}[/b] or duckdb {result.ledger}"
    )


@app.command()
def report(
    ledger: Path = typer.Option(Path("finops.duckdb"), help="DuckDB ledger file to read."),
    by: str = typer.Option("model", help="Group by: model, day, or a tag name (team, feature...)."),
) -> None:
    """Print spend from a ledger, grouped by model, day or a tag."""
    from finops.analytics import spend_report

    if not ledger.exists():
        console.print(f"[red]No ledger at {ledger}.[/red] Run `finops demo` or pass --ledger.")
        raise typer.Exit(code=1)
    header, rows = spend_report(ledger, by=by)
    table = Table(title=f"Spend by {by} — {ledger}")
    for i, name in enumerate(header):
        table.add_column(name, justify="left" if i == 0 else "right")
    for row in rows:
        table.add_row(
            *[
                _money(v) if h.startswith("cost") else str(v)
                for h, v in zip(header, row, strict=True)
            ]
        )
    console.print(table)


@app.command("serve-fake")
def serve_fake(
    host: str = typer.Option("127.0.0.1", help="Address to bind (loopback only by default)."),
    port: int = typer.Option(8765, help="Port to listen on."),
) -> None:
    """Run the local OpenAI/Anthropic-compatible provider server until Ctrl-C."""
    from finops.devserver import serve_forever

    console.print(
        f"OpenAI base_url: http://{host}:{port}/v1   Anthropic base_url: http://{host}:{port}"
    )
    serve_forever(host=host, port=port)


#: Sub-command modules; each has ``register(app)``. A new command group is a module + a line.
SUBCOMMANDS: tuple[str, ...] = (
    "finops.cli.tokens",
    "finops.cli.budgets",
    "finops.cli.cache",
    "finops.cli.ledger",
    "finops.cli.routing",
)

for _module in SUBCOMMANDS:
    try:
        importlib.import_module(_module).register(app)
    except ModuleNotFoundError as _missing:  # a sub-command whose module is not installed
        if _missing.name != _module:
            raise


def main() -> None:
    """Entry point of the ``finops`` console script."""
    app()
