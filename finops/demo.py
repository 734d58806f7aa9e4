"""The demo workload behind ``finops demo``: real SDK clients, the local provider server.

Runs a realistic mixed workload (chat, streams, responses, embeddings, Anthropic messages and
message streams, prompt-cache hits, a reasoning model, a retried 429) through wrapped
``openai`` and ``anthropic`` clients against :class:`finops.devserver.DevServer` on 127.0.0.1,
writes every attempt to a DuckDB ledger and returns the spend summary. No API key, no network.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import finops

__all__ = ["DemoResult", "run_demo"]

_LONG_CONTEXT = (
    "You are the support assistant of an online bookshop. Answer in two sentences. "
    "Policies: returns within 30 days; free shipping over 40 EUR; gift wrap 3 EUR. " * 40
)


# Small enough that the demo's research loop reaches it after a few calls.
_RESEARCH_LIMIT = Decimal("0.10")


@dataclass
class DemoResult:
    """What the demo did and what it cost."""

    ledger: Path
    calls: int = 0
    rows: int = 0
    total_cost: Decimal = Decimal(0)
    by_team_model: list[tuple[str, str, int, int, Decimal]] = field(default_factory=list)
    statuses: dict[str, int] = field(default_factory=dict)
    budget_stop: str | None = None


def run_demo(*, ledger: str | Path = "finops.duckdb", fresh: bool = True) -> DemoResult:
    """Run the workload and summarize the ledger. ``fresh`` deletes an old demo ledger first."""
    import anthropic
    import openai

    from finops.devserver import DevServer, Fault

    path = Path(ledger)
    if fresh:
        for old in (path, path.with_name(path.name + ".wal")):
            old.unlink(missing_ok=True)
    result = DemoResult(ledger=path)
    research_budget = finops.Budget(
        scope={"team": "research"}, limit=str(_RESEARCH_LIMIT), period="day", tz="Europe/Paris"
    )
    with DevServer() as server, finops.FinOps(ledger=path, budgets=[research_budget]) as fo:
        oai = fo.wrap(openai.OpenAI(api_key="demo", base_url=server.openai_base_url, max_retries=2))
        claude = fo.wrap(anthropic.Anthropic(api_key="demo", base_url=server.anthropic_base_url))
        user: Any = [{"role": "user", "content": "Where is my order #1234?"}]

        with finops.tags(team="support", feature="chat"):
            for i in range(6):
                msgs: Any = [
                    {"role": "system", "content": _LONG_CONTEXT},
                    {"role": "user", "content": f"Question {i % 3}: can I return a book?"},
                ]
                oai.chat.completions.create(model="gpt-4o", messages=msgs)  # repeats hit the cache
                result.calls += 1
            for chunk in oai.chat.completions.create(
                model="gpt-4o-mini", messages=user, stream=True
            ):
                del chunk
            result.calls += 1

        with finops.tags(team="search", feature="summaries"):
            for _ in range(3):
                oai.responses.create(model="gpt-4.1-mini", input="Summarize: finops meters calls.")
                result.calls += 1
            oai.embeddings.create(model="text-embedding-3-small", input=["books", "shipping"])
            result.calls += 1
            server.inject(Fault.status(429, retry_after=0.01), times=1)
            oai.chat.completions.create(model="gpt-4o-mini", messages=user)  # 429, then retried
            result.calls += 1

        with finops.tags(team="research", feature="analysis", agent="planner"):
            oai.chat.completions.create(  # reasoning tokens
                model="o3-mini", messages=user, max_completion_tokens=2000
            )
            claude.messages.create(
                model="claude-sonnet-4-6",
                max_tokens=512,
                system=[
                    {"type": "text", "text": _LONG_CONTEXT, "cache_control": {"type": "ephemeral"}}
                ],
                messages=[{"role": "user", "content": "Plan a reading list."}],
            )
            with claude.messages.stream(
                model="claude-haiku-4-5",
                max_tokens=256,
                messages=[{"role": "user", "content": "Two names for a pelican"}],
            ) as stream:
                stream.get_final_message()
            result.calls += 3
            # The research team's daily budget: keep asking until finops refuses a call
            # *before* it is sent (the worst case no longer fits), then stop.
            try:
                for i in range(200):
                    claude.messages.create(
                        model="claude-sonnet-4-6",
                        max_tokens=4000,
                        system=[
                            {
                                "type": "text",
                                "text": _LONG_CONTEXT,
                                "cache_control": {"type": "ephemeral"},
                            }
                        ],
                        messages=[{"role": "user", "content": f"Summarize paper #{i}."}],
                    )
                    result.calls += 1
            except finops.BudgetExceeded as stop:
                result.budget_stop = (
                    f"{stop.budget}: limit {stop.limit} USD, spent {stop.spent}, "
                    f"this call needed up to {stop.requested} — refused before sending"
                )
                result.calls += 1

        fo.flush()
        _summarize(fo, result)
    return result


def _summarize(fo: finops.FinOps, result: DemoResult) -> None:
    rows = fo.ledger.query(
        "SELECT coalesce(tags['team'], '-') AS team, coalesce(served_model, requested_model) AS model,"
        " count(*) AS attempts,"
        " sum(coalesce(input_tokens,0)+coalesce(cache_read_tokens,0)+coalesce(cache_write_5m_tokens,0)"
        "     +coalesce(cache_write_1h_tokens,0)+coalesce(output_tokens,0)+coalesce(reasoning_tokens,0))"
        " AS tokens, coalesce(sum(cost_total), 0) AS cost"
        " FROM calls GROUP BY ALL ORDER BY team, model"
    )
    result.by_team_model = [
        (str(t), str(m), int(a), int(k or 0), Decimal(c)) for t, m, a, k, c in rows
    ]
    result.rows = sum(r[2] for r in result.by_team_model)
    result.total_cost = sum((r[4] for r in result.by_team_model), Decimal(0))
    result.statuses = {
        str(s): int(n)
        for s, n in fo.ledger.query(
            "SELECT status, count(*) FROM calls GROUP BY status ORDER BY status"
        )
    }
