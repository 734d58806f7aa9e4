"""langchain-openai beyond ``ChatOpenAI.invoke``: every SDK resource method the chat model
calls (a streamed ``response_format`` goes through ``client.beta.chat.completions.stream``,
structured output through ``with_raw_response.parse``, ``use_responses_api`` through
``responses``), and ``OpenAIEmbeddings`` / ``AzureOpenAIEmbeddings`` through ``fo.wrap``,
with the real package against the local server (skips when ``langchain-openai`` is absent)."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx2
import pytest
from pydantic import BaseModel

import finops
from finops.devserver import DevServer
from finops.tokens import encodings
from finops_testing import rows

lc = pytest.importorskip("langchain_openai", reason="langchain-openai is not installed")

JSON = {"type": "json_object"}


class Answer(BaseModel):
    answer: str


def _tiny() -> finops.Budget:
    return finops.Budget(name="tiny", limit="0.000001", period="day")


# langchain-openai keeps one async httpx client per (base_url, timeout) for the whole process
# (lru_cache); its pool is bound to the event loop of the asyncio.run that first used it, with
# or without finops: each chat model gets a timeout of its own.
_timeouts = itertools.count(41)


def _chat(server: DevServer, **kw: Any) -> Any:
    return lc.ChatOpenAI(
        model="gpt-4o-mini",
        api_key="k",
        base_url=server.openai_base_url,
        max_retries=0,
        timeout=float(next(_timeouts)),
        **kw,
    )


def _refused(call: Callable[[], Any]) -> None:
    with pytest.raises(finops.BudgetExceeded):
        call()


# -- ChatOpenAI: every resource method runs the steps ----------------------------------------


def test_streamed_response_format_and_structured_output_refused_before_the_network(
    ledger_path: Path, devserver: DevServer
) -> None:
    """``stream(response_format=...)`` calls ``root_client.beta.chat.completions.stream``
    (and ``astream`` the async root's): budgets refuse them, sync and async, with nothing
    sent; so do both structured-output methods."""
    prompt = "hello " * 40
    with finops.FinOps(ledger=ledger_path, budgets=[_tiny()]) as fo:
        llm = fo.wrap(_chat(devserver))

        async def astream(**kw: Any) -> list[Any]:
            return [c async for c in llm.astream(prompt, **kw)]

        _refused(lambda: list(llm.stream(prompt, response_format=Answer)))
        _refused(lambda: list(llm.stream(prompt, response_format=JSON)))
        _refused(lambda: asyncio.run(astream(response_format=Answer)))
        for method in ("json_schema", "function_calling"):
            structured = llm.with_structured_output(Answer, method=method)
            _refused(lambda s=structured: s.invoke(prompt))
            _refused(lambda s=structured: asyncio.run(s.ainvoke(prompt)))
            _refused(lambda s=structured: list(s.stream(prompt)))
    assert devserver.requests == []


def test_streamed_response_format_is_metered_with_tags(
    ledger_path: Path, devserver: DevServer
) -> None:
    raw = _chat(devserver)
    with finops.FinOps(ledger=ledger_path) as fo:
        llm = fo.wrap(raw)

        async def astream() -> list[Any]:
            return [c async for c in llm.astream("stream async", response_format=JSON)]

        with finops.tags(team="search"):
            assert list(llm.stream("stream it", response_format=JSON))
            assert asyncio.run(astream())
        list(raw.stream("not metered", response_format=JSON))
        got = rows(fo)
    assert len(got) == 2 and len(devserver.requests) == 3
    assert all(r.body["response_format"] == JSON for r in devserver.requests)
    for row in got:
        assert (row["provider"], row["endpoint"], row["stream"]) == (
            "openai",
            "chat.completions",
            True,
        )
        assert row["tags"] == {"team": "search"} and row["pricing_status"] == "priced"
        assert row["cost_total"] > 0 and row["input_tokens"] and row["output_tokens"]  # type: ignore[operator]


@pytest.mark.parametrize(
    "options",
    [{"include_response_headers": True}, {"use_responses_api": True}],
    ids=["raw-response", "responses-api"],
)
def test_other_resource_methods_are_metered_and_budgeted(
    ledger_path: Path, devserver: DevServer, options: dict[str, Any]
) -> None:
    """``include_response_headers`` calls ``client.with_raw_response.create``;
    ``use_responses_api`` calls ``root_client.responses`` (plain, raw and streamed)."""
    endpoint = "responses" if options.get("use_responses_api") else "chat.completions"
    with finops.FinOps(ledger=ledger_path, budgets=[_tiny()]) as fo:
        llm = fo.wrap(_chat(devserver, **options))
        _refused(lambda: llm.invoke("hello " * 40))
        _refused(lambda: list(llm.stream("hello " * 40)))
        _refused(lambda: asyncio.run(llm.ainvoke("hello " * 40)))
    assert devserver.requests == []

    with finops.FinOps(ledger=ledger_path.with_name("b.duckdb")) as fo:
        llm = fo.wrap(_chat(devserver, **options))

        async def run() -> None:
            assert (await llm.ainvoke("hello async")).content
            assert [c async for c in llm.astream("stream async")]

        with finops.tags(team="search"):
            assert llm.invoke("hello").content
            assert list(llm.stream("stream it"))
            asyncio.run(run())
        got = rows(fo)
    assert [r["stream"] for r in got] == [False, True, False, True]
    for row in got:
        assert (row["endpoint"], row["tags"], row["pricing_status"]) == (
            endpoint,
            {"team": "search"},
            "priced",
        )
        assert row["cost_total"] > 0  # type: ignore[operator]


# -- OpenAIEmbeddings / AzureOpenAIEmbeddings ------------------------------------------------


@pytest.fixture()
def tiktoken_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """OpenAIEmbeddings tokenizes with tiktoken, which downloads ``cl100k_base`` on first
    use: give tiktoken's cache the same ranks from finops' bundled file (tiktoken checks
    them against its own expected hash)."""
    url = "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"
    data = (encodings.DATA_DIR / "cl100k_base.bpe").read_bytes()
    cache = tmp_path / "tiktoken-cache"
    cache.mkdir()
    text = encodings.tiktoken_text(encodings.decode_ranks(data))
    (cache / hashlib.sha1(url.encode()).hexdigest()).write_bytes(text)
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(cache))


def _embeddings(server: DevServer, **kw: Any) -> Any:
    return lc.OpenAIEmbeddings(
        model="text-embedding-3-small",
        api_key="k",
        base_url=server.openai_base_url,
        max_retries=0,
        **kw,
    )


def _embed_all(emb: Any) -> None:
    assert emb.embed_query("what does a ledger do?")
    assert len(emb.embed_documents(["first document", "second document"])) == 2

    async def run() -> None:
        assert await emb.aembed_query("async query")
        assert len(await emb.aembed_documents(["third", "fourth"])) == 2

    asyncio.run(run())


def _check_embedding_rows(got: list[dict[str, object]], provider: str) -> None:
    assert len(got) == 4
    for row in got:
        assert (row["provider"], row["endpoint"], row["status"]) == (provider, "embeddings", "ok")
        assert row["tags"] == {"team": "search"} and row["pricing_status"] == "priced"
        assert row["cost_total"] > 0 and row["input_tokens"]  # type: ignore[operator]
        assert row["output_tokens"] == 0


@pytest.mark.parametrize("tokenized", [False, True], ids=["text", "token-arrays"])
def test_openai_embeddings_are_metered_with_tags(
    ledger_path: Path, devserver: DevServer, tokenized: bool, request: pytest.FixtureRequest
) -> None:
    """The default (``check_embedding_ctx_length=True``) sends tiktoken token arrays;
    ``False`` sends the text: both are priced from the request's tokens."""
    if tokenized:
        request.getfixturevalue("tiktoken_offline")
    raw = _embeddings(devserver, check_embedding_ctx_length=tokenized)
    with finops.FinOps(ledger=ledger_path) as fo:
        emb = fo.wrap(raw)
        assert emb is not raw and type(emb) is type(raw)
        assert emb.client is not raw.client and emb.async_client is not raw.async_client
        with finops.tags(team="search"):
            _embed_all(emb)
        raw.embed_query("not metered")
        got = rows(fo)
    _check_embedding_rows(got, "openai")
    assert len(devserver.requests) == 5
    first = devserver.requests[0].body["input"]
    assert isinstance(first[0], list) if tokenized else first == ["what does a ledger do?"]


def test_openai_embeddings_budget_refuses_before_the_network(
    ledger_path: Path, devserver: DevServer
) -> None:
    long = "ledger " * 200
    with finops.FinOps(
        ledger=ledger_path, budgets=[finops.Budget(name="tiny", limit="0.0000001", period="day")]
    ) as fo:
        emb = fo.wrap(_embeddings(devserver, check_embedding_ctx_length=False))
        _refused(lambda: emb.embed_query(long))
        _refused(lambda: emb.embed_documents([long, long]))
        _refused(lambda: asyncio.run(emb.aembed_query(long)))
        _refused(lambda: asyncio.run(emb.aembed_documents([long])))
    assert devserver.requests == []


def test_azure_openai_embeddings_are_metered(
    ledger_path: Path,
    devserver: DevServer,
    redirect: httpx2.Client,
    aredirect: httpx2.AsyncClient,
) -> None:
    raw = lc.AzureOpenAIEmbeddings(
        model="text-embedding-3-small",
        azure_deployment="text-embedding-3-small",
        azure_endpoint="https://my-res.openai.azure.com",
        api_key="k",
        api_version="2024-10-21",
        max_retries=0,
        check_embedding_ctx_length=False,
        http_client=redirect,
        http_async_client=aredirect,
    )
    with finops.FinOps(ledger=ledger_path) as fo:
        emb = fo.wrap(raw)
        with finops.tags(team="search"):
            _embed_all(emb)
        got = rows(fo)
    _check_embedding_rows(got, "azure")
    assert all("/openai/deployments/" in r.path for r in devserver.requests)


def test_an_embeddings_client_can_be_handed_in(ledger_path: Path, devserver: DevServer) -> None:
    """``OpenAIEmbeddings(client=...)`` keeps a given resource: a wrapped client's works."""
    import openai

    with finops.FinOps(ledger=ledger_path) as fo:
        client = fo.wrap(openai.OpenAI(api_key="k", base_url=devserver.openai_base_url))
        emb = _embeddings(devserver, client=client.embeddings, check_embedding_ctx_length=False)
        with finops.tags(team="search"):
            assert emb.embed_query("hello")
        [row] = rows(fo)
    assert row["tags"] == {"team": "search"} and row["cost_total"] > 0  # type: ignore[operator]
