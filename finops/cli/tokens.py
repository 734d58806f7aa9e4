"""``finops tokens`` and ``finops estimate``: offline token counts and worst-case cost.

A thin shell over :func:`finops.tokens.count_tokens` and
:func:`finops.tokens.estimate_request`; ``register(app)`` adds the two commands.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

__all__ = ["guess_endpoint", "register"]


def guess_endpoint(body: Mapping[str, Any]) -> tuple[str, str]:
    """(provider, endpoint) a request body most likely belongs to."""
    model = str(body.get("model") or "").lower()
    if model.startswith("claude") or ("system" in body and "messages" in body):
        return "anthropic", "messages"
    if "messages" in body:
        return "openai", "chat.completions"
    if "embedding" in model or "dimensions" in body or "encoding_format" in body:
        return "openai", "embeddings"
    return "openai", "responses"


def _read(source: str) -> str:
    if source == "-":
        return sys.stdin.read()
    return Path(source).read_text(encoding="utf-8")


def _load_body(source: str) -> dict[str, Any]:
    text = source
    if source == "-" or not source.lstrip().startswith("{"):
        try:
            text = _read(source)
        except OSError as exc:
            raise typer.BadParameter(f"cannot read a JSON request from {source}: {exc}") from exc
    try:
        body = json.loads(text)
    except ValueError as exc:
        raise typer.BadParameter(f"{source} is not a JSON request body: {exc}") from exc
    if not isinstance(body, dict):
        raise typer.BadParameter("the request must be a JSON object (the SDK's arguments)")
    return body


def _explain(console: Console, source: str, provider: str | None, endpoint: str | None) -> None:
    from finops.tokens.explain import explain_request

    body = _load_body(source)
    guessed = guess_endpoint(body)
    est, parts = explain_request(
        provider=provider or guessed[0], endpoint=endpoint or guessed[1], body=body
    )
    table = Table(title=f"Estimate breakdown — {est.model or '(no model)'} ({est.method})")
    table.add_column("part")
    table.add_column("kind")
    table.add_column("tokens", justify="right")
    table.add_column("up to", justify="right")
    for part in parts:
        table.add_row(part.label, part.kind, f"{part.tokens:,}", f"{part.tokens_max:,}")
    accuracy = "exact" if est.exact else f"estimated ±{est.error_bound:.0%}"
    table.add_row("total", accuracy, f"{est.input_tokens:,}", f"{est.input_tokens_max:,}")
    console.print(table)
    if est.notes:
        console.print("notes: " + "; ".join(est.notes))


def register(app: typer.Typer) -> None:
    """Add the ``tokens`` and ``estimate`` commands to the ``finops`` CLI."""
    console = Console()

    @app.command("tokens")
    def tokens(
        text: str = typer.Argument(..., help="Text to count ('-' reads standard input)."),
        model: str = typer.Option("gpt-4o", help="Model whose encoding counts the text."),
        explain: bool = typer.Option(
            False,
            "--explain",
            help="TEXT is a JSON request body (a file, '-' or inline JSON): show its estimate "
            "part by part (framing, each message, tools, schema, media, provider-added).",
        ),
        provider: str | None = typer.Option(None, help="With --explain: openai or anthropic."),
        endpoint: str | None = typer.Option(None, help="With --explain: the endpoint."),
    ) -> None:
        """Count the tokens of TEXT offline (no chat framing), or --explain a request."""
        from finops.tokens import count_tokens, family_for

        if explain:
            _explain(console, text, provider, endpoint)
            return
        value = sys.stdin.read() if text == "-" else text
        n = count_tokens(model=model, text=value)
        fam = family_for(model)
        flag = "" if fam.known else "  (unknown model: fallback encoding)"
        console.print(f"{n} tokens  model={model}  encoding={fam.encoding}{flag}")

    @app.command("estimate")
    def estimate(
        request_json: str = typer.Argument(
            ..., help="JSON request body (SDK keyword arguments); '-' reads standard input."
        ),
        provider: str | None = typer.Option(None, help="openai or anthropic (default: guess)."),
        endpoint: str | None = typer.Option(
            None, help="chat.completions, responses, embeddings or messages (default: guess)."
        ),
        bound: bool = typer.Option(False, help="Cheap upper bound instead of exact counting."),
        price: bool = typer.Option(True, help="Price the worst case with the default tables."),
        explain: bool = typer.Option(False, "--explain", help="Show the estimate part by part."),
    ) -> None:
        """Worst-case tokens and cost of a request before it is sent."""
        from finops.tokens import estimate_request

        if explain:
            _explain(console, request_json, provider, endpoint)
            return

        try:
            body = json.loads(_read(request_json))
        except (OSError, ValueError) as exc:
            raise typer.BadParameter(
                f"cannot read a JSON request from {request_json}: {exc}"
            ) from exc
        if not isinstance(body, dict):
            raise typer.BadParameter("the request must be a JSON object (the SDK's arguments)")
        guessed = guess_endpoint(body)
        book = None
        if price:
            from finops.pricing import PriceBook

            book = PriceBook.default()
        est = estimate_request(
            provider=provider or guessed[0],
            endpoint=endpoint or guessed[1],
            body=body,
            pricebook=book,
            mode="bound" if bound else "exact",
        )
        table = Table(title=f"Estimate — {est.model or '(no model)'}", show_header=False)
        accuracy = "exact" if est.exact else f"estimated ±{est.error_bound:.0%}"
        cost = "n/a" if est.cost_max is None else f"${est.cost_max:,.6f}"
        for key, value in (
            ("input tokens", f"{est.input_tokens:,} ({accuracy})"),
            ("input tokens, upper bound", f"{est.input_tokens_max:,}"),
            ("max output tokens", f"{est.output_tokens_max:,}"),
            ("worst-case cost", cost),
            ("method", f"{est.method} (family {est.family})"),
            ("fallback", "yes" if est.fallback else "no"),
            ("notes", "; ".join(est.notes) or "-"),
        ):
            table.add_row(key, value)
        console.print(table)
