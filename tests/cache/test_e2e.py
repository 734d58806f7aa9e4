"""The cache in the call path: real OpenAI (chat, responses) and Anthropic SDKs, sync and
async, stream and non-stream, against the local server; hits send no request."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import anthropic
import httpx2
import openai
import pytest

import finops
from finops.devserver import DevServer
from finops.devserver.faults import Fault
from finops_testing import rows

CHAT = {
    "model": "gpt-4o-mini",
    "messages": [{"role": "user", "content": "Explain the ledger in two lines."}],
}
RESP = {"model": "gpt-5-mini", "input": "Explain the ledger in two lines."}
MSG = {
    "model": "claude-sonnet-4-5",
    "max_tokens": 200,
    "messages": [{"role": "user", "content": "Explain the ledger in two lines."}],
}


@pytest.fixture()
def cfo(tmp_path: Path) -> Iterator[finops.FinOps]:
    f = finops.FinOps(
        ledger=tmp_path / "l.duckdb",
        cache=finops.Cache(store=f"diskcache://{tmp_path / 'cache'}", memory_tier="8MB"),
    )
    yield f
    f.close()


def _posts(server: DevServer) -> int:
    return sum(1 for r in server.requests if r.method == "POST")


def _oai(fo: finops.FinOps, server: DevServer) -> openai.OpenAI:
    return fo.wrap(openai.OpenAI(api_key="sk-test", base_url=server.openai_base_url, max_retries=0))


def _ant(fo: finops.FinOps, server: DevServer) -> anthropic.Anthropic:
    return fo.wrap(
        anthropic.Anthropic(
            api_key="sk-ant-test", base_url=server.anthropic_base_url, max_retries=0
        )
    )


def _chat_stream(client: openai.OpenAI, **kw: Any) -> tuple[list[Any], Any]:
    chunks = list(client.chat.completions.create(**CHAT, stream=True, **kw))
    return [c.model_dump() for c in chunks], chunks


def test_chat_exact_hit_non_stream(cfo: finops.FinOps, devserver: DevServer) -> None:
    client = _oai(cfo, devserver)
    first = client.chat.completions.create(**CHAT)
    assert _posts(devserver) == 1
    again = client.chat.completions.create(**{**CHAT, "user": "someone-else"})
    assert _posts(devserver) == 1, "a hit must send no request"
    assert again.model_dump() == first.model_dump()
    r = rows(cfo)
    assert [x["status"] for x in r] == ["ok", "cache_hit"]
    assert [x["cache_status"] for x in r] == ["miss", "exact_hit"]
    assert r[1]["cost_total"] == 0 and r[1]["counterfactual_cost"] == r[0]["cost_total"] > 0
    assert r[1]["cache_entry_id"] == r[0]["cache_entry_id"] is not None
    assert r[1]["cache_tier"] == "memory"
    assert r[1]["input_tokens"] == r[0]["input_tokens"]
    saved = cfo.ledger.query("SELECT cause, calls, saved FROM savings_by_cause")
    assert saved == [("cache", 1, r[0]["cost_total"])]


@pytest.mark.parametrize("ask_usage", [True, False])
def test_chat_stream_hit_replays_the_same_chunks(
    cfo: finops.FinOps, devserver: DevServer, ask_usage: bool
) -> None:
    client = _oai(cfo, devserver)
    kw: dict[str, Any] = {"stream_options": {"include_usage": True}} if ask_usage else {}
    original, _ = _chat_stream(client, **kw)
    replayed, _ = _chat_stream(client, **kw)
    assert _posts(devserver) == 1
    assert replayed == original
    if ask_usage:
        assert replayed[-1]["usage"] is not None
    else:
        assert all(c["choices"] for c in replayed)  # the injected usage chunk stays hidden
    r = rows(cfo)
    assert r[1]["status"] == "cache_hit" and r[1]["counterfactual_cost"] == r[0]["cost_total"] > 0


def test_chat_stream_served_from_json_and_json_from_stream(
    cfo: finops.FinOps, devserver: DevServer
) -> None:
    client = _oai(cfo, devserver)
    answer = client.chat.completions.create(**CHAT)
    chunks = list(
        client.chat.completions.create(**CHAT, stream=True, stream_options={"include_usage": True})
    )
    assert _posts(devserver) == 1
    assert (
        "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        == answer.choices[0].message.content
    )
    assert chunks[-1].usage == answer.usage
    other = {**CHAT, "messages": [{"role": "user", "content": "Another question entirely?"}]}
    streamed = list(
        client.chat.completions.create(**other, stream=True, stream_options={"include_usage": True})
    )
    as_json = client.chat.completions.create(**other)
    assert _posts(devserver) == 2
    assert as_json.choices[0].message.content == "".join(
        c.choices[0].delta.content or "" for c in streamed if c.choices
    )
    assert as_json.usage == streamed[-1].usage


def test_responses_sync_stream_and_non_stream(cfo: finops.FinOps, devserver: DevServer) -> None:
    client = _oai(cfo, devserver)
    events = [e.model_dump() for e in client.responses.create(**RESP, stream=True)]
    again = [e.model_dump() for e in client.responses.create(**RESP, stream=True)]
    assert again == events
    final = client.responses.create(**RESP)
    assert _posts(devserver) == 1
    assert final.usage is not None and final.usage.model_dump() == events[-1]["response"]["usage"]
    with client.responses.stream(**RESP) as s:
        assert s.get_final_response().output_text == final.output_text
    assert _posts(devserver) == 1


def test_anthropic_sync_stream_and_non_stream(cfo: finops.FinOps, devserver: DevServer) -> None:
    client = _ant(cfo, devserver)
    with client.messages.stream(**MSG) as s:
        texts = list(s.text_stream)
        original = s.get_final_message()
    with client.messages.stream(**MSG) as s:
        assert list(s.text_stream) == texts
        replayed = s.get_final_message()
    assert replayed.usage == original.usage
    plain = client.messages.create(**MSG)
    assert plain.usage == original.usage and plain.content[0].text == "".join(texts)  # type: ignore[union-attr]
    events = [e.model_dump() for e in client.messages.create(**MSG, stream=True)]
    assert events[-1]["type"] == "message_stop"
    assert _posts(devserver) == 1
    r = rows(cfo)
    assert [x["cache_status"] for x in r] == ["miss", "exact_hit", "exact_hit", "exact_hit"]
    assert all(x["counterfactual_cost"] == r[0]["cost_total"] for x in r[1:])


async def test_async_clients(cfo: finops.FinOps, devserver: DevServer) -> None:
    oai = cfo.wrap(
        openai.AsyncOpenAI(api_key="sk-test", base_url=devserver.openai_base_url, max_retries=0)
    )
    ant = cfo.wrap(
        anthropic.AsyncAnthropic(
            api_key="sk-ant-test", base_url=devserver.anthropic_base_url, max_retries=0
        )
    )
    a = [c.model_dump() async for c in await oai.chat.completions.create(**CHAT, stream=True)]
    b = [c.model_dump() async for c in await oai.chat.completions.create(**CHAT, stream=True)]
    assert a == b
    r1 = [e.model_dump() async for e in await oai.responses.create(**RESP, stream=True)]
    r2 = await oai.responses.create(**RESP)
    assert r2.usage is not None and r2.usage.model_dump() == r1[-1]["response"]["usage"]
    m1 = await ant.messages.create(**MSG)
    async with ant.messages.stream(**MSG) as s:
        m2 = await s.get_final_message()
    assert m2.usage == m1.usage
    assert _posts(devserver) == 3


def test_bypass_refresh_and_scope(tmp_path: Path, devserver: DevServer) -> None:
    fo = finops.FinOps(
        ledger=tmp_path / "l.duckdb",
        cache=finops.Cache(store="memory", scope={"feature": "faq"}, tenant="team"),
    )
    try:
        client = _oai(fo, devserver)
        client.chat.completions.create(**CHAT)  # out of scope: not cached
        client.chat.completions.create(**CHAT)
        assert _posts(devserver) == 2
        with finops.tags(feature="faq", team="a"):
            client.chat.completions.create(**CHAT)
            client.chat.completions.create(**CHAT)
            assert _posts(devserver) == 3
            client.chat.completions.create(**CHAT, finops_cache=False)
            assert _posts(devserver) == 4
            client.chat.completions.create(**CHAT, finops_cache="refresh")
            assert _posts(devserver) == 5
            client.chat.completions.create(**CHAT)
            assert _posts(devserver) == 5
        with finops.tags(feature="faq", team="b"):  # another tenant never shares a hit
            client.chat.completions.create(**CHAT)
            assert _posts(devserver) == 6
        statuses = [x["cache_status"] for x in rows(fo)]
        assert statuses == [
            None,
            None,
            "miss",
            "exact_hit",
            "bypass",
            "refresh",
            "exact_hit",
            "miss",
        ]
        refreshed = rows(fo)
        assert (
            refreshed[6]["cache_entry_id"] == refreshed[5]["cache_entry_id"]
        )  # the refreshed entry
    finally:
        fo.close()


@pytest.mark.parametrize(
    "fault", [Fault.status(429, retry_after=0), Fault.status(500), Fault.status(529)]
)
def test_errors_are_never_stored(cfo: finops.FinOps, devserver: DevServer, fault: Fault) -> None:
    client = _oai(cfo, devserver)
    devserver.inject(fault)
    with pytest.raises(openai.APIStatusError):
        client.chat.completions.create(**CHAT)
    client.chat.completions.create(**CHAT)
    assert _posts(devserver) == 2, "the error was not served"


@pytest.mark.parametrize("kind", ["truncated_sse", "drop_stream"])
def test_cut_streams_are_never_stored(cfo: finops.FinOps, devserver: DevServer, kind: str) -> None:
    client = _oai(cfo, devserver)
    devserver.inject(Fault(kind=kind, after=2))
    with contextlib.suppress(openai.APIError, httpx2.HTTPError):  # a cut stream may just end
        for _ in client.chat.completions.create(**CHAT, stream=True):
            pass
    list(client.chat.completions.create(**CHAT, stream=True))
    assert _posts(devserver) == 2


def test_cancelled_stream_is_never_stored(cfo: finops.FinOps, devserver: DevServer) -> None:
    client = _oai(cfo, devserver)
    stream = client.chat.completions.create(**CHAT, stream=True)
    next(iter(stream))
    stream.close()
    list(client.chat.completions.create(**CHAT, stream=True))
    assert _posts(devserver) == 2


def test_hit_is_never_refused_by_a_budget(tmp_path: Path, devserver: DevServer) -> None:
    store = f"diskcache://{tmp_path / 'shared'}"
    warm = finops.FinOps(ledger=tmp_path / "a.duckdb", cache=finops.Cache(store=store))
    try:
        _oai(warm, devserver).chat.completions.create(**CHAT)
    finally:
        warm.close()
    tight = finops.FinOps(
        ledger=tmp_path / "b.duckdb",
        cache=finops.Cache(store=store),
        budgets=[finops.Budget(limit=Decimal("0.000000001"), period="day")],
    )
    try:
        client = _oai(tight, devserver)
        with pytest.raises(finops.BudgetExceeded):  # a miss is refused before the network
            client.chat.completions.create(
                **{**CHAT, "messages": [{"role": "user", "content": "new"}]}
            )
        hit = client.chat.completions.create(**CHAT)  # a hit reserves nothing
        assert hit.choices[0].message.content
        assert _posts(devserver) == 1
        assert [r["status"] for r in rows(tight)] == ["blocked", "cache_hit"]
        assert tight.budget_status()[0].spent == 0
    finally:
        tight.close()


def test_from_config_reads_the_cache_table(tmp_path: Path, devserver: DevServer) -> None:
    (tmp_path / "finops.toml").write_text(
        '[finops]\nledger = "l.duckdb"\n[cache]\nstore = "diskcache://c"\nttl = "1h"\nmemory_tier = 0\n'
    )
    fo = finops.FinOps.from_config(tmp_path / "finops.toml")
    try:
        assert "cache" in fo.steps
        client = _oai(fo, devserver)
        client.chat.completions.create(**CHAT)
        client.chat.completions.create(**CHAT)
        assert _posts(devserver) == 1
        assert (tmp_path / "c").is_dir()
        assert rows(fo)[1]["cache_tier"] == "store"
    finally:
        fo.close()


def test_embeddings_exact_hit(cfo: finops.FinOps, devserver: DevServer) -> None:
    client = _oai(cfo, devserver)
    first = client.embeddings.create(model="text-embedding-3-small", input=["a", "b"])
    again = client.embeddings.create(model="text-embedding-3-small", input=["a", "b"], user="x")
    other = client.embeddings.create(model="text-embedding-3-small", input=["a", "b"], dimensions=8)
    assert again.model_dump() == first.model_dump() and len(other.data[0].embedding) == 8
    assert _posts(devserver) == 2
    assert [r["cache_status"] for r in rows(cfo)] == ["miss", "exact_hit", "miss"]
