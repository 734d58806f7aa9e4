"""Frameworks that build their own client: LangChain ChatOpenAI, against the local server."""

from __future__ import annotations

from pathlib import Path

import pytest

import finops
from finops.devserver import DevServer
from finops_testing import rows

lc = pytest.importorskip("langchain_openai")


def _llm(server: DevServer) -> object:
    return lc.ChatOpenAI(
        model="gpt-4o-mini", api_key="k", base_url=server.openai_base_url, max_retries=0
    )


async def test_chat_openai_is_metered_with_tags(ledger_path: Path, devserver: DevServer) -> None:
    raw = _llm(devserver)
    with finops.FinOps(ledger=ledger_path) as fo:
        llm = fo.wrap(raw)
        assert llm is not raw and raw.root_client is not llm.root_client  # type: ignore[attr-defined]
        with finops.tags(team="search"):
            assert llm.invoke("hello").content  # type: ignore[attr-defined]
            chunks = [c async for c in llm.astream("stream it")]  # type: ignore[attr-defined]
            assert chunks
        raw.invoke("not metered")  # type: ignore[attr-defined]
        got = rows(fo)
    assert len(got) == 2
    assert all(r["tags"] == {"team": "search"} and r["cost_total"] > 0 for r in got)
    assert [r["stream"] for r in got] == [False, True]


def test_chat_openai_budget_refuses_before_the_network(
    ledger_path: Path, devserver: DevServer
) -> None:
    budget = finops.Budget(name="tiny", limit="0.000001", period="day")
    with finops.FinOps(ledger=ledger_path, budgets=[budget]) as fo:
        llm = fo.wrap(_llm(devserver))
        with pytest.raises(finops.BudgetExceeded):
            llm.invoke("hello " * 40)  # type: ignore[attr-defined]
    assert devserver.requests == []
