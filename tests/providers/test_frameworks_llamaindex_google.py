"""LlamaIndex's ``GoogleGenAI`` LLM through ``fo.wrap(llm)``, against the local server.

``llama-index-llms-google-genai`` builds its ``google.genai.Client`` in its constructor and
keeps it in the private ``_client``; it takes no client argument, so wrapping the LLM is the
seam. The package pins ``google-genai<3`` (this project has google-genai 3.x), so it is not
in the ``dev`` extra: CI installs it with ``--no-deps`` (it works at run time with
google-genai 3.x) and this file skips where it is absent.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

import finops
from finops.devserver import DevServer
from finops_testing import rows

li = pytest.importorskip(
    "llama_index.llms.google_genai",
    reason="llama-index-llms-google-genai is not installed (it pins google-genai<3)",
)
from llama_index.core.llms import ChatMessage  # noqa: E402

PROMPT = "hello " * 40


def _llm(server: DevServer) -> Any:
    # max_tokens and context_window given: the constructor then fetches no model metadata
    return li.GoogleGenAI(
        model="gemini-2.5-flash",
        api_key="k",
        http_options={"base_url": server.url},
        max_tokens=256,
        context_window=100_000,
        max_retries=0,
    )


def _user(text: str) -> list[Any]:
    return [ChatMessage(role="user", content=text)]


def test_google_genai_llm_is_copied_metered_with_tags(
    ledger_path: Path, devserver: DevServer
) -> None:
    raw = _llm(devserver)
    with finops.FinOps(ledger=ledger_path) as fo:
        llm = fo.wrap(raw)
        assert llm is not raw and type(llm) is type(raw)
        assert llm._client is not raw._client

        async def run() -> None:
            assert (await llm.acomplete("async")).text
            stream = await llm.astream_chat(_user("stream async"))
            assert "".join([c.delta or "" async for c in stream])

        with finops.tags(team="rag"):
            assert llm.complete("What is a ledger?").text
            assert llm.chat(_user("hi")).message.content
            assert "".join(c.delta or "" for c in llm.stream_complete("stream it"))
            asyncio.run(run())
        raw.complete("not metered")
        got = rows(fo)
    assert len(got) == 5 and len(devserver.requests) == 6
    assert [r["stream"] for r in got] == [False, False, True, False, True]
    for row in got:
        assert (row["provider"], row["endpoint"], row["status"]) == (
            "google",
            "generate_content",
            "ok",
        )
        assert row["tags"] == {"team": "rag"} and row["pricing_status"] == "priced"
        assert row["cost_total"] > 0 and row["input_tokens"] and row["output_tokens"]  # type: ignore[operator]


def test_google_genai_llm_budget_refuses_before_the_network(
    ledger_path: Path, devserver: DevServer
) -> None:
    budget = finops.Budget(name="tiny", limit="0.000001", period="day")
    with finops.FinOps(ledger=ledger_path, budgets=[budget]) as fo:
        llm = fo.wrap(_llm(devserver))
        with pytest.raises(finops.BudgetExceeded):
            llm.complete(PROMPT)
        with pytest.raises(finops.BudgetExceeded):
            list(llm.stream_chat(_user(PROMPT)))

        async def run() -> None:
            with pytest.raises(finops.BudgetExceeded):
                await llm.acomplete(PROMPT)
            with pytest.raises(finops.BudgetExceeded):
                stream = await llm.astream_chat(_user(PROMPT))
                [c async for c in stream]

        asyncio.run(run())
    assert devserver.requests == []
