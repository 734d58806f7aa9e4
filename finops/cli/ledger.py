"""``finops ledger status`` / ``finops ledger compact``: where a ledger's rows are, and folding
its small parts together (safe while writers run). Thin shells over :mod:`finops.ledger`."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import typer

__all__ = ["register"]

_LEDGER = typer.Option(
    "finops.duckdb", "--ledger", "-l", help="Ledger catalog file (or a postgresql:// URL)."
)


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:,.1f} {unit}" if unit != "B" else f"{n} B"
        value /= 1024
    return f"{n} B"  # pragma: no cover


def register(app: typer.Typer) -> None:
    """Add the ``ledger`` command group to the ``finops`` CLI."""
    group = typer.Typer(help="Inspect and maintain a live ledger.", no_args_is_help=True)

    @group.command("status")
    def status(
        ledger: str = _LEDGER,
        spool_dir: Path | None = typer.Option(None, help="Spool directory (default: next to it)."),
        as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    ) -> None:
        """Rows spooled (and their lag), in per-segment parts and compacted parts; size."""
        from finops.ledger import status as ledger_status

        st = ledger_status(ledger, spool_dir=spool_dir)
        if as_json:
            data = asdict(st)
            data["rows"] = st.rows
            typer.echo(json.dumps(data, default=str, indent=2))
            return
        lag = "-" if st.spool_lag_s is None else f"{st.spool_lag_s:.1f} s"
        typer.echo(f"ledger      {st.path}" + ("" if st.catalog_exists else " (no catalog yet)"))
        typer.echo(f"rows        {st.rows:,} visible to readers; newest row {st.newest_row}")
        typer.echo(
            f"spooled     {st.spooled_rows:,} rows in {st.spool_segments} segment(s), lag {lag}"
        )
        typer.echo(f"segments    {st.segment_rows:,} rows in {st.segment_parts} part(s)")
        typer.echo(f"compacted   {st.compacted_rows:,} rows in {st.compacted_parts} part(s)")
        typer.echo(f"replaced    {st.replaced_parts} part(s) awaiting deletion")
        typer.echo(f"size        {_size(st.bytes)}")
        for note in st.notes:
            typer.echo(f"note        {note}")

    @group.command("compact")
    def compact(
        ledger: str = _LEDGER,
        grace_s: float = typer.Option(
            300.0, help="Keep replaced parts this long for queries that are running."
        ),
    ) -> None:
        """Fold the small parts into one now (safe while writers and readers run)."""
        from finops.ledger import compact as ledger_compact

        if ledger.startswith(("postgresql://", "postgres://")):
            typer.echo("PostgreSQL ledgers need no compaction (the server vacuums).")
            return
        if not Path(ledger).exists():
            typer.echo(f"No ledger at {ledger}.", err=True)
            raise typer.Exit(code=1)
        result = ledger_compact(ledger, grace_s=grace_s)
        if result.new_part:
            typer.echo(
                f"merged {result.merged_parts} parts into {result.new_part} ({result.rows:,} rows)"
            )
        else:
            typer.echo(f"nothing to merge ({result.skipped})")
        typer.echo(f"deleted {result.deleted_parts} replaced part(s)")

    app.add_typer(group, name="ledger")
