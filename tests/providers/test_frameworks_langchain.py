"""LangChain's Anthropic, Google and Bedrock models through ``fo.wrap(model)``, against the
local server with the real packages (``langchain-anthropic``, ``langchain-google-genai``,
``langchain-aws``; each test skips when its package is not installed)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import finops
from finops.devserver import DevServer
from finops_testing import bedrock_client, rows

SONNET = "us.anthropic.claude-sonnet-4-20250514-v1:0"


def _need(package: str) -> ModuleType:
    return pytest.importorskip(package, reason=f"{package} is not installed (the frameworks extra)")


def _tiny() -> finops.Budget:
    return finops.Budget(name="tiny", limit="0.000001", period="day")


def _run_all(llm: Any) -> None:
    """invoke, stream, ainvoke and astream once each."""
    assert llm.invoke("hello").content
    assert list(llm.stream("stream it"))

    async def run() -> None:
        assert (await llm.ainvoke("hello async")).content
        assert [c async for c in llm.astream("stream async")]

    asyncio.run(run())


def _check_four(got: list[dict[str, object]], provider: str, endpoint: str) -> None:
    assert len(got) == 4
    assert [r["stream"] for r in got] == [False, True, False, True]
    for row in got:
        assert (row["provider"], row["endpoint"], row["status"]) == (provider, endpoint, "ok")
        assert row["tags"] == {"team": "search"}
        assert row["pricing_status"] == "priced" and row["cost_total"] > 0  # type: ignore[operator]
        assert row["input_tokens"] and row["output_tokens"]


# -- langchain-anthropic ---------------------------------------------------------------------


def _anthropic(server: DevServer) -> Any:
    lc = _need("langchain_anthropic")
    return lc.ChatAnthropic(
        model="claude-sonnet-4-5", api_key="k", base_url=server.anthropic_base_url, max_retries=0
    )


def test_chat_anthropic_is_metered_with_tags(ledger_path: Path, devserver: DevServer) -> None:
    raw = _anthropic(devserver)
    before = raw._client  # built by the original before wrapping: must stay unmetered
    with finops.FinOps(ledger=ledger_path) as fo:
        llm = fo.wrap(raw)
        assert llm is not raw and type(llm) is type(raw)
        assert raw._client is before and llm._client is not before
        with finops.tags(team="search"):
            _run_all(llm)
        raw.invoke("not metered")
        got = rows(fo)
    _check_four(got, "anthropic", "messages")
    assert len(devserver.requests) == 5


def test_chat_anthropic_budget_refuses_before_the_network(
    ledger_path: Path, devserver: DevServer
) -> None:
    with finops.FinOps(ledger=ledger_path, budgets=[_tiny()]) as fo:
        llm = fo.wrap(_anthropic(devserver))
        with pytest.raises(finops.BudgetExceeded):
            llm.invoke("hello " * 40)
        with pytest.raises(finops.BudgetExceeded):
            asyncio.run(llm.ainvoke("hello " * 40))
    assert devserver.requests == []


def test_chat_anthropic_with_betas_runs_the_steps(ledger_path: Path, devserver: DevServer) -> None:
    """With ``betas=`` ChatAnthropic calls ``_client.beta.messages``: wrapped too."""
    lc = _need("langchain_anthropic")

    def llm(fo: finops.FinOps) -> Any:
        return fo.wrap(
            lc.ChatAnthropic(
                model="claude-sonnet-4-5",
                api_key="k",
                base_url=devserver.anthropic_base_url,
                max_retries=0,
                betas=["context-1m-2025-08-07"],
                # langchain-anthropic keeps one async httpx client per (base_url, timeout) for
                # the whole process (lru_cache); its pool is bound to the event loop of an
                # earlier test's asyncio.run, with or without finops: a timeout of its own
                default_request_timeout=31.0,
            )
        )

    with (
        finops.FinOps(ledger=ledger_path, budgets=[_tiny()]) as fo,
        pytest.raises(finops.BudgetExceeded),
    ):
        llm(fo).invoke("hello " * 40)
    assert devserver.requests == []
    with finops.FinOps(ledger=ledger_path.with_name("b.duckdb")) as fo:
        with finops.tags(team="search"):
            _run_all(llm(fo))
        got = rows(fo)
    _check_four(got, "anthropic", "messages")
    assert all(r.headers.get("anthropic-beta") for r in devserver.requests)


# -- langchain-google-genai ------------------------------------------------------------------


def _gemini(server: DevServer) -> Any:
    lc = _need("langchain_google_genai")
    return lc.ChatGoogleGenerativeAI(
        model="gemini-2.5-flash", api_key="k", base_url=server.url, max_retries=0
    )


def test_chat_google_genai_is_metered_with_tags(ledger_path: Path, devserver: DevServer) -> None:
    raw = _gemini(devserver)
    with finops.FinOps(ledger=ledger_path) as fo:
        llm = fo.wrap(raw)
        assert llm is not raw and llm.client is not raw.client
        assert llm._client_cleanup._client is llm.client  # closing the copy closes its own
        with finops.tags(team="search"):
            _run_all(llm)
        raw.invoke("not metered")
        got = rows(fo)
    _check_four(got, "google", "generate_content")
    assert len(devserver.requests) == 5


def test_google_embeddings_are_metered(ledger_path: Path, devserver: DevServer) -> None:
    lc = _need("langchain_google_genai")
    raw = lc.GoogleGenerativeAIEmbeddings(
        model="gemini-embedding-001", api_key="k", base_url=devserver.url
    )
    with finops.FinOps(ledger=ledger_path) as fo:
        emb = fo.wrap(raw)
        with finops.tags(team="search"):
            assert emb.embed_query("what does a ledger do?")
        [row] = rows(fo)
    assert (row["provider"], row["endpoint"], row["status"]) == ("google", "embed_content", "ok")
    assert row["tags"] == {"team": "search"} and row["cost_total"] > 0  # type: ignore[operator]


def test_chat_google_genai_budget_refuses_before_the_network(
    ledger_path: Path, devserver: DevServer
) -> None:
    with finops.FinOps(ledger=ledger_path, budgets=[_tiny()]) as fo:
        llm = fo.wrap(_gemini(devserver))
        with pytest.raises(finops.BudgetExceeded):
            llm.invoke("hello " * 40)
        with pytest.raises(finops.BudgetExceeded):
            list(llm.stream("hello " * 40))
    assert devserver.requests == []


# -- langchain-aws ---------------------------------------------------------------------------


def test_chat_bedrock_converse_is_metered_with_tags(
    ledger_path: Path, devserver: DevServer
) -> None:
    lc = _need("langchain_aws")
    raw = lc.ChatBedrockConverse(model=SONNET, client=bedrock_client(devserver))
    with finops.FinOps(ledger=ledger_path) as fo:
        llm = fo.wrap(raw)
        assert llm is raw  # botocore clients are metered in place
        with finops.tags(team="search"):
            _run_all(llm)
        got = rows(fo)
    _check_four(got, "aws", "converse")
    assert len(devserver.requests) == 4


def test_chat_bedrock_converse_takes_a_wrapped_client_and_refuses_over_budget(
    ledger_path: Path, devserver: DevServer
) -> None:
    lc = _need("langchain_aws")
    with finops.FinOps(ledger=ledger_path, budgets=[_tiny()]) as fo:
        llm = lc.ChatBedrockConverse(model=SONNET, client=fo.wrap(bedrock_client(devserver)))
        with pytest.raises(finops.BudgetExceeded):
            llm.invoke("hello " * 40)
        with pytest.raises(finops.BudgetExceeded):
            list(llm.stream("hello " * 40))
    assert devserver.requests == []


def test_not_a_langchain_model_is_refused(fo: finops.FinOps) -> None:
    with pytest.raises(TypeError, match="can wrap"):
        fo.wrap(object())
