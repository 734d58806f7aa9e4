"""LlamaIndex LLMs other than OpenAI's, against the local server with the real packages:
``llama-index-llms-bedrock-converse`` (takes ``client=``; ``fo.wrap(llm)`` works too) and
``llama-index-llms-anthropic`` (builds its own clients: ``fo.wrap(llm)`` is the seam). Each
test skips when its package is not installed; neither is in an extra (``llama-index-core``
pulls nltk, SQLAlchemy and pillow), see docs/providers.md."""

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


def _need(module: str, package: str) -> ModuleType:
    return pytest.importorskip(module, reason=f"{package} is not installed")


def _converse(client: Any) -> Any:
    li = _need("llama_index.llms.bedrock_converse", "llama-index-llms-bedrock-converse")
    return li.BedrockConverse(model=SONNET, client=client, region_name="us-east-1", max_tokens=64)


def test_bedrock_converse_with_a_wrapped_client(ledger_path: Path, devserver: DevServer) -> None:
    with finops.FinOps(ledger=ledger_path) as fo:
        llm = _converse(fo.wrap(bedrock_client(devserver)))
        with finops.tags(team="search"):
            assert llm.complete("hello").text
            assert list(llm.stream_complete("stream it"))

            async def run() -> None:
                assert (await llm.acomplete("hello async")).text
                # without aioboto3, LlamaIndex streams async from the sync client in
                # loop.run_in_executor, which does not carry context variables (tags)
                assert [c async for c in await llm.astream_complete("stream async")]

            asyncio.run(run())
        got = rows(fo)
    assert [r["stream"] for r in got] == [False, True, False, True]
    for row in got:
        assert (row["provider"], row["endpoint"], row["status"]) == ("aws", "converse", "ok")
        assert row["pricing_status"] == "priced" and row["cost_total"] > 0  # type: ignore[operator]
    assert [r["tags"] for r in got[:3]] == [{"team": "search"}] * 3
    assert len(devserver.requests) == 4


def test_bedrock_converse_wrapped_in_place_and_budgeted(
    ledger_path: Path, devserver: DevServer
) -> None:
    budget = finops.Budget(name="tiny", limit="0.000001", period="day")
    with finops.FinOps(ledger=ledger_path, budgets=[budget]) as fo:
        raw = _converse(bedrock_client(devserver))
        llm = fo.wrap(raw)
        assert llm is raw  # a boto3 client is metered in place
        with pytest.raises(finops.BudgetExceeded):
            llm.complete("hello " * 40)
        with pytest.raises(finops.BudgetExceeded):
            list(llm.stream_complete("hello " * 40))
    assert devserver.requests == []


def _anthropic(server: DevServer) -> Any:
    li = _need("llama_index.llms.anthropic", "llama-index-llms-anthropic")
    return li.Anthropic(
        model="claude-sonnet-4-5",
        api_key="k",
        base_url=server.anthropic_base_url,
        max_retries=0,
        max_tokens=64,
    )


def _usable(llm: Any) -> None:
    """llama-index-llms-anthropic 0.12.3 cannot build a request with anthropic 2.x (it calls
    the ``MessageParam`` Union): skip the calls then, with or without finops."""
    from llama_index.core.llms import ChatMessage
    from llama_index.llms.anthropic.utils import messages_to_anthropic_messages

    try:
        messages_to_anthropic_messages([ChatMessage(role="user", content="hi")])
    except TypeError as exc:
        pytest.skip(f"this llama-index-llms-anthropic does not work with this anthropic: {exc}")


def test_anthropic_llm_is_copied_with_wrapped_clients(
    ledger_path: Path, devserver: DevServer
) -> None:
    raw = _anthropic(devserver)
    before = (raw._client, raw._aclient)
    with finops.FinOps(ledger=ledger_path) as fo:
        llm = fo.wrap(raw)
        assert llm is not raw and type(llm) is type(raw)
        assert (raw._client, raw._aclient) == before  # the original is untouched
        assert llm._client is not before[0] and llm._aclient is not before[1]
        assert llm._client.messages.create.__finops_wrapped__  # what the LLM calls
        _usable(llm)
        with finops.tags(team="search"):
            assert llm.complete("hello").text
            assert list(llm.stream_complete("stream it"))
            assert asyncio.run(llm.acomplete("hello async")).text
        got = rows(fo)
    assert [r["stream"] for r in got] == [False, True, False]
    assert all(r["tags"] == {"team": "search"} and r["cost_total"] > 0 for r in got)  # type: ignore[operator]


def test_anthropic_llm_budget_refuses_before_the_network(
    ledger_path: Path, devserver: DevServer
) -> None:
    budget = finops.Budget(name="tiny", limit="0.000001", period="day")
    with finops.FinOps(ledger=ledger_path, budgets=[budget]) as fo:
        llm = fo.wrap(_anthropic(devserver))
        _usable(llm)
        with pytest.raises(finops.BudgetExceeded):
            llm.complete("hello " * 40)
    assert devserver.requests == []


def test_an_llm_without_clients_is_refused_with_advice(fo: finops.FinOps) -> None:
    li = _need("llama_index.llms.bedrock_converse", "llama-index-llms-bedrock-converse")
    llm = li.BedrockConverse(model=SONNET, client=object(), region_name="us-east-1")
    with pytest.raises(TypeError, match="pass wrapped clients to its constructor"):
        fo.wrap(llm)
