"""The demo workload behind ``finops demo``: real SDK clients, the local provider server.

Runs a realistic mixed workload (chat, streams, responses, embeddings, Anthropic messages and
message streams, prompt-cache hits, a reasoning model, a retried 429) through wrapped
``openai`` and ``anthropic`` clients against :class:`finops.devserver.DevServer` on 127.0.0.1,
with finops' exact-answer cache and the offline router turned on, writes every attempt to a
DuckDB ledger and returns the spend summary and what the cache and routing saved. No API key,
no network.
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


_FAQ = (
    "What is the capital of France?",
    "Which planet is known as the red planet?",
    "Translate 'thank you' into Spanish.",
    "A train leaves at 3:40 pm and travels 270 km at 90 km/h, then waits 25 minutes and "
    "travels another 180 km at 120 km/h. At what time does it arrive? Show each step.",
    "Prove that the square root of 2 is irrational, then generalize the argument to the "
    "square root of any prime number.",
    "Who wrote 'Pride and Prejudice'?",
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
    #: (cause, detail, calls, saved USD) from the ``savings_by_cause`` view
    savings: list[tuple[str, str, int, Decimal]] = field(default_factory=list)


def run_demo(*, ledger: str | Path = "finops.duckdb", fresh: bool = True) -> DemoResult:
    """Run the workload and summarize the ledger. ``fresh`` deletes an old demo ledger first."""
    import anthropic
    import openai

    from finops.devserver import DevServer, Fault

    path = Path(ledger)
    if fresh:  # the catalog file, its Parquet parts and spool (docs/ledger.md)
        import shutil

        for old in (path, path.with_name(path.name + ".wal")):
            old.unlink(missing_ok=True)
        for folder in (path.with_name(path.name + ".parts"), path.with_name(path.name + ".spool")):
            shutil.rmtree(folder, ignore_errors=True)
    result = DemoResult(ledger=path)
    research_budget = finops.Budget(
        scope={"team": "research"}, limit=str(_RESEARCH_LIMIT), period="day", tz="Europe/Paris"
    )
    routing = finops.Routing(
        routes=[
            finops.Route(source="o3-mini", targets=[finops.RouteTarget(model="gpt-4.1-mini")]),
        ],
        keep_quality=0.95,
    )
    with (
        DevServer() as server,
        finops.FinOps(
            ledger=path,
            budgets=[research_budget],
            cache=finops.Cache(store="memory"),  # exact repeats are answered without a call
            routing=routing,
        ) as fo,
    ):
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

        # Easy and hard questions sent to a reasoning model: the router keeps the hard ones on
        # o3-mini and sends the easy ones to gpt-4.1-mini (the ledger says which and why).
        with finops.tags(team="search", feature="faq"):
            for question in _FAQ:
                oai.chat.completions.create(
                    model="o3-mini",
                    messages=[{"role": "user", "content": question}],
                    max_completion_tokens=1000,
                )
                result.calls += 1

        with finops.tags(team="search", feature="summaries"):
            for _ in range(3):
                oai.responses.create(model="gpt-4.1-mini", input="Summarize: finops meters calls.")
                result.calls += 1
            oai.embeddings.create(model="text-embedding-3-small", input=["books", "shipping"])
            result.calls += 1
            server.inject(Fault.status(429, retry_after=0.01), times=1)
            oai.chat.completions.create(  # 429, then retried (a new question: not cached)
                model="gpt-4o-mini",
                messages=[{"role": "user", "content": "Has order #5678 shipped?"}],
            )
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

        # More providers, when their SDKs are installed (the `google` and `bedrock` extras):
        # Gemini through google-genai and Claude on AWS Bedrock, metered the same way.
        with finops.tags(team="docs", feature="translate"):
            gemini = _gemini(fo, server.url)
            if gemini is not None:
                gemini.models.generate_content(
                    model="gemini-2.5-flash", contents="Translate 'ledger' into French."
                )
                result.calls += 1
            bedrock = _bedrock(fo, server.url)
            if bedrock is not None:
                bedrock.converse(
                    modelId="us.anthropic.claude-sonnet-4-20250514-v1:0",
                    messages=[{"role": "user", "content": [{"text": "Define a ledger."}]}],
                )
                result.calls += 1

        fo.flush()
        _summarize(fo, result)
    return result


def _gemini(fo: finops.FinOps, url: str) -> Any:
    try:
        from google import genai
    except ImportError:  # pip install 'finops[google]'
        return None
    return fo.wrap(genai.Client(api_key="demo", http_options={"base_url": url}))


def _bedrock(fo: finops.FinOps, url: str) -> Any:
    try:
        import boto3  # noqa: F401
    except ImportError:  # pip install 'finops[bedrock]'
        return None
    from finops.devserver import bedrock_client

    return fo.wrap(bedrock_client(url))


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
    result.savings = [
        (str(cause), str(detail or "-"), int(calls), Decimal(saved))
        for cause, detail, calls, saved in fo.ledger.query(
            "SELECT cause, detail, sum(calls), coalesce(sum(saved), 0) FROM savings_by_cause"
            " GROUP BY ALL ORDER BY cause, detail"
        )
    ]
    result.statuses = {
        str(s): int(n)
        for s, n in fo.ledger.query(
            "SELECT status, count(*) FROM calls GROUP BY status ORDER BY status"
        )
    }
