"""LlamaIndex and the OpenAI Agents SDK with wrapped clients, against the local server.

Both packages are optional: ``llama-index-llms-openai`` 0.8 pins ``openai<3`` (this project
needs ``openai>=3``) and ``openai-agents`` pulls in a web stack (mcp, starlette, uvicorn), so
neither is in the ``dev`` extra and these tests are skipped where they are not importable.
"""

from __future__ import annotations

from pathlib import Path

import openai
import pytest

import finops
from finops.devserver import DevServer
from finops_testing import rows


def _clients(fo: finops.FinOps, server: DevServer) -> tuple[object, object]:
    sync = fo.wrap(openai.OpenAI(api_key="sk-test", base_url=server.openai_base_url, max_retries=0))
    aio = fo.wrap(
        openai.AsyncOpenAI(api_key="sk-test", base_url=server.openai_base_url, max_retries=0)
    )
    return sync, aio


# -- LlamaIndex ------------------------------------------------------------------------------


def _llama() -> object:
    return pytest.importorskip(
        "llama_index.llms.openai",
        reason="llama-index-llms-openai is not installed (it pins openai<3)",
    )


async def test_llamaindex_openai_client_seam(ledger_path: Path, devserver: DevServer) -> None:
    li = _llama()
    from llama_index.core.llms import ChatMessage

    with finops.FinOps(ledger=ledger_path) as fo:
        sync, aio = _clients(fo, devserver)
        llm = li.OpenAI(  # type: ignore[attr-defined]
            model="gpt-4o-mini", api_key="sk-test", openai_client=sync, async_openai_client=aio
        )
        with finops.tags(team="rag"):
            assert llm.complete("What is a ledger?").text
            assert llm.chat([ChatMessage(role="user", content="hi")]).message.content
            streamed = "".join(c.delta or "" for c in llm.stream_complete("stream it"))
            assert streamed
            assert (await llm.acomplete("async")).text
        got = rows(fo)
    assert len(got) == 4 and len(devserver.requests) == 4
    assert all(r["tags"] == {"team": "rag"} and r["cost_total"] > 0 for r in got)
    assert [r["stream"] for r in got] == [False, False, True, False]


def test_llamaindex_budget_refuses_before_the_network(
    ledger_path: Path, devserver: DevServer
) -> None:
    li = _llama()
    budget = finops.Budget(name="tiny", limit="0.000001", period="day")
    with finops.FinOps(ledger=ledger_path, budgets=[budget]) as fo:
        sync, aio = _clients(fo, devserver)
        llm = li.OpenAI(  # type: ignore[attr-defined]
            model="gpt-4o-mini", api_key="sk-test", openai_client=sync, async_openai_client=aio,
            max_retries=0,
        )
        with pytest.raises(finops.BudgetExceeded):
            llm.complete("hello " * 40)
    assert devserver.requests == []


# -- OpenAI Agents SDK -----------------------------------------------------------------------


def _agents() -> object:
    agents = pytest.importorskip("agents", reason="openai-agents is not installed")
    agents.set_tracing_disabled(True)  # type: ignore[attr-defined]  # no export to OpenAI
    return agents


async def test_agents_chat_completions_model(ledger_path: Path, devserver: DevServer) -> None:
    agents = _agents()
    with finops.FinOps(ledger=ledger_path) as fo:
        _, aio = _clients(fo, devserver)
        model = agents.OpenAIChatCompletionsModel(model="gpt-4o-mini", openai_client=aio)  # type: ignore[attr-defined]
        agent = agents.Agent(name="helper", instructions="Be brief.", model=model)  # type: ignore[attr-defined]
        with finops.tags(team="agents"):
            result = await agents.Runner.run(agent, "What is a ledger?")  # type: ignore[attr-defined]
        assert result.final_output
        got = rows(fo)
    assert len(got) == 1 and got[0]["endpoint"] == "chat.completions"
    assert got[0]["tags"] == {"team": "agents"} and got[0]["cost_total"] > 0


async def test_agents_default_client_responses(ledger_path: Path, devserver: DevServer) -> None:
    agents = _agents()
    with finops.FinOps(ledger=ledger_path) as fo:
        _, aio = _clients(fo, devserver)
        agents.set_default_openai_client(aio, use_for_tracing=False)  # type: ignore[attr-defined]
        agents.set_default_openai_api("responses")  # type: ignore[attr-defined]
        try:
            agent = agents.Agent(name="helper", instructions="Be brief.", model="gpt-4o-mini")  # type: ignore[attr-defined]
            with finops.tags(team="agents"):
                result = await agents.Runner.run(agent, "What is a ledger?")  # type: ignore[attr-defined]
            assert result.final_output
            streamed = agents.Runner.run_streamed(agent, "Stream it")  # type: ignore[attr-defined]
            async for _ in streamed.stream_events():
                pass
        finally:
            agents.set_default_openai_client(  # type: ignore[attr-defined]
                openai.AsyncOpenAI(api_key="unused", base_url=devserver.openai_base_url),
                use_for_tracing=False,
            )
        got = rows(fo)
    assert [r["endpoint"] for r in got] == ["responses", "responses"]
    assert [r["stream"] for r in got] == [False, True]
    assert all(r["cost_total"] > 0 for r in got) and got[0]["tags"] == {"team": "agents"}


async def test_agents_budget_refuses_before_the_network(
    ledger_path: Path, devserver: DevServer
) -> None:
    agents = _agents()
    budget = finops.Budget(name="tiny", limit="0.000001", period="day")
    with finops.FinOps(ledger=ledger_path, budgets=[budget]) as fo:
        _, aio = _clients(fo, devserver)
        model = agents.OpenAIChatCompletionsModel(model="gpt-4o-mini", openai_client=aio)  # type: ignore[attr-defined]
        agent = agents.Agent(name="helper", model=model)  # type: ignore[attr-defined]
        with pytest.raises(finops.BudgetExceeded):
            await agents.Runner.run(agent, "hello " * 40)  # type: ignore[attr-defined]
    assert devserver.requests == []
