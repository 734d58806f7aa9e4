"""``fo.wrap(aiobotocore bedrock-runtime client)`` against the local server, with the real
package (aioboto3's clients are aiobotocore clients).

aiobotocore pins botocore tightly (3.10.0: ``botocore>=1.43.115,<1.43.118``; aioboto3 15.5.0
needs aiobotocore 2.25.1, ``botocore<1.40.62``) and this project has botocore 1.44, so no
release resolves beside it: it is in no extra. Installed with ``--no-deps`` it works with
botocore 1.44.8 (these tests); they skip where it is absent.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

import finops
from finops.devserver import DevServer
from finops_testing import rows

session_mod = pytest.importorskip(
    "aiobotocore.session",
    reason="aiobotocore is not installed (it pins botocore below the installed 1.44)",
)

SONNET = "us.anthropic.claude-sonnet-4-20250514-v1:0"
MSG = [{"role": "user", "content": [{"text": "What does a ledger do?"}]}]
LONG = [{"role": "user", "content": [{"text": "hello " * 40}]}]


def _invoke_body(text: str) -> str:
    return json.dumps(
        {
            "anthropic_version": "bedrock-2023-05-31",
            "max_tokens": 100,
            "messages": [{"role": "user", "content": text}],
        }
    )


@asynccontextmanager
async def _client(server: DevServer) -> AsyncIterator[Any]:
    session = session_mod.get_session()
    async with session.create_client(
        "bedrock-runtime",
        endpoint_url=server.url,
        region_name="us-east-1",
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key="secret",
    ) as client:
        yield client


async def _stream_text(events: Any) -> tuple[str, dict[str, Any]]:
    text, meta = "", {}
    async for event in events:
        if "contentBlockDelta" in event:
            text += event["contentBlockDelta"]["delta"].get("text", "")
        if "metadata" in event:
            meta = event["metadata"]
    return text, meta


async def _all_four(client: Any, prompt: list[dict[str, Any]]) -> list[Any]:
    text = prompt[0]["content"][0]["text"]
    out: list[Any] = [await client.converse(modelId=SONNET, messages=prompt)]
    stream = await client.converse_stream(modelId=SONNET, messages=prompt)
    out.append(await _stream_text(stream["stream"]))
    invoked = await client.invoke_model(modelId=SONNET, body=_invoke_body(text))
    out.append(json.loads(await invoked["body"].read()))
    chunks = await client.invoke_model_with_response_stream(modelId=SONNET, body=_invoke_body(text))
    out.append([event async for event in chunks["body"]])
    return out


def test_async_client_is_metered_in_place_with_tags(
    ledger_path: Path, devserver: DevServer
) -> None:
    async def run() -> None:
        async with _client(devserver) as raw:
            with finops.FinOps(ledger=ledger_path) as fo:
                client = fo.wrap(raw)
                assert client is raw  # metered in place, as a boto3 client is
                with finops.tags(team="search"):
                    converse, (text, meta), invoked, chunks = await _all_four(client, MSG)
                got = rows(fo)
        assert text == converse["output"]["message"]["content"][0]["text"]
        assert meta["usage"] == converse["usage"]
        assert invoked["usage"]["output_tokens"] > 0 and chunks
        assert [(r["endpoint"], r["stream"]) for r in got] == [
            ("converse", False),
            ("converse", True),
            ("invoke_model", False),
            ("invoke_model", True),
        ]
        for row in got:
            assert (row["provider"], row["status"], row["pricing_status"]) == (
                "aws",
                "ok",
                "priced",
            )
            assert row["tags"] == {"team": "search"}
            assert row["cost_total"] > 0 and row["input_tokens"] and row["output_tokens"]  # type: ignore[operator]
        assert got[0]["output_tokens"] == converse["usage"]["outputTokens"]

    asyncio.run(run())
    assert len(devserver.requests) == 4


def test_async_client_budget_refuses_before_the_network(
    ledger_path: Path, devserver: DevServer
) -> None:
    budget = finops.Budget(name="tiny", limit="0.000001", period="day")

    async def run() -> None:
        async with _client(devserver) as raw:
            with finops.FinOps(ledger=ledger_path, budgets=[budget]) as fo:
                client = fo.wrap(raw)
                text = LONG[0]["content"][0]["text"]
                calls = [
                    lambda: client.converse(modelId=SONNET, messages=LONG),
                    lambda: client.converse_stream(modelId=SONNET, messages=LONG),
                    lambda: client.invoke_model(modelId=SONNET, body=_invoke_body(text)),
                    lambda: client.invoke_model_with_response_stream(
                        modelId=SONNET, body=_invoke_body(text)
                    ),
                ]
                for call in calls:
                    with pytest.raises(finops.BudgetExceeded):
                        await call()

    asyncio.run(run())
    assert devserver.requests == []


def test_concurrent_tasks_keep_their_own_tags(ledger_path: Path, devserver: DevServer) -> None:
    async def run() -> list[dict[str, object]]:
        async with _client(devserver) as raw:
            with finops.FinOps(ledger=ledger_path) as fo:
                client = fo.wrap(raw)

                async def one(team: str) -> None:
                    with finops.tags(team=team):
                        await client.converse(
                            modelId=SONNET, messages=[{"role": "user", "content": [{"text": team}]}]
                        )

                await asyncio.gather(*(one(f"t{i}") for i in range(6)))
                return rows(fo)

    got = asyncio.run(run())
    assert sorted(str(r["tags"]["team"]) for r in got) == [f"t{i}" for i in range(6)]  # type: ignore[index]
    assert all(r["status"] == "ok" and r["cost_total"] > 0 for r in got)  # type: ignore[operator]


def test_cache_hits_come_back_as_aiobotocore_types(ledger_path: Path, devserver: DevServer) -> None:
    """A hit is answered from ``before-send`` with an ``AioAWSResponse``: aiobotocore parses
    the stored bytes itself (a dict, an ``AioStreamingBody``, an ``AioEventStream``)."""
    from aiobotocore.eventstream import AioEventStream
    from aiobotocore.response import AioStreamingBody

    async def run() -> list[dict[str, object]]:
        async with _client(devserver) as raw:
            with finops.FinOps(ledger=ledger_path, cache=finops.Cache(store="memory")) as fo:
                client = fo.wrap(raw)
                first = await client.converse(modelId=SONNET, messages=MSG)
                again = await client.converse(modelId=SONNET, messages=MSG)
                assert again["output"] == first["output"]
                stream = await client.converse_stream(modelId=SONNET, messages=MSG)
                assert isinstance(stream["stream"]._inner, AioEventStream)
                text, meta = await _stream_text(stream["stream"])
                assert text == first["output"]["message"]["content"][0]["text"]
                assert meta["usage"] == first["usage"]
                body = _invoke_body("invoke me")
                live = await client.invoke_model(modelId=SONNET, body=body)
                assert isinstance(live["body"], AioStreamingBody)
                live_doc = json.loads(await live["body"].read())
                hit = await client.invoke_model(modelId=SONNET, body=body)
                assert isinstance(hit["body"], AioStreamingBody)
                assert json.loads(await hit["body"].read()) == live_doc
                return rows(fo)

    got = asyncio.run(run())
    assert sum(1 for r in devserver.requests if r.method == "POST") == 2
    assert [r["status"] for r in got] == ["ok", "cache_hit", "cache_hit", "ok", "cache_hit"]
    assert got[1]["cost_total"] == got[2]["cost_total"] == got[4]["cost_total"] == Decimal(0)
    assert got[1]["counterfactual_cost"] == got[0]["cost_total"]


def test_throttled_attempt_is_its_own_row(ledger_path: Path, devserver: DevServer) -> None:
    from finops.devserver import Fault

    devserver.inject(Fault.status(429))

    async def run() -> tuple[dict[str, Any], list[dict[str, object]]]:
        async with _client(devserver) as raw:
            with finops.FinOps(ledger=ledger_path) as fo:
                client = fo.wrap(raw)
                reply = await client.converse(modelId=SONNET, messages=MSG)
                return reply, rows(fo)

    reply, got = asyncio.run(run())
    assert reply["ResponseMetadata"]["RetryAttempts"] == 1 and len(devserver.requests) == 2
    assert [(r["attempt"], r["status"], r["http_status"], r["error_type"]) for r in got] == [
        (1, "error", 429, "http_429"),
        (2, "ok", 200, None),
    ]
    assert got[0]["call_id"] == got[1]["call_id"] and got[0]["cost_total"] is None
    assert got[1]["input_tokens"] == reply["usage"]["inputTokens"]


def test_failed_call_is_recorded_and_raises_the_sdk_error(
    ledger_path: Path, devserver: DevServer
) -> None:
    from finops.devserver import Fault

    devserver.inject(Fault.status(400))

    async def run() -> list[dict[str, object]]:
        async with _client(devserver) as raw:
            with finops.FinOps(ledger=ledger_path) as fo:
                client = fo.wrap(raw)
                with pytest.raises(client.exceptions.ValidationException):
                    await client.converse(modelId=SONNET, messages=MSG)
                return rows(fo)

    [row] = asyncio.run(run())
    assert (row["status"], row["http_status"], row["error_type"]) == ("error", 400, "http_400")
    assert str(row["error_message"]).startswith("ValidationException")
    assert row["cost_total"] is None


def test_async_caller_routed_to_bedrock_through_the_async_client(
    ledger_path: Path, devserver: DevServer
) -> None:
    """A cross-provider route from an async caller to ``aws:`` is sent through the wrapped
    aiobotocore client (awaited, not run in a thread)."""
    import openai

    haiku = "us.anthropic.claude-haiku-4-5-20251001-v1:0"
    routing = finops.Routing(
        routes=[finops.Route(source="o3", targets=[finops.RouteTarget(model=f"aws:{haiku}")])],
        strong_share=0.0,
    )

    async def run() -> tuple[Any, list[dict[str, object]]]:
        async with _client(devserver) as raw:
            with finops.FinOps(ledger=ledger_path, routing=routing) as fo:
                fo.wrap(raw)
                oc = fo.wrap(
                    openai.AsyncOpenAI(
                        api_key="k", base_url=devserver.openai_base_url, max_retries=0
                    )
                )
                reply = await oc.chat.completions.create(
                    model="o3", messages=[{"role": "user", "content": "hi"}], max_tokens=40
                )
                return reply, rows(fo)

    reply, got = asyncio.run(run())
    assert reply.choices[0].message.content
    assert [r.path for r in devserver.requests if r.method == "POST"] == [
        f"/model/{haiku.replace(':', '%3A')}/converse"
    ]
    [row] = [r for r in got if r["provider"] == "aws"]
    assert row["status"] == "ok" and row["cost_total"] > 0  # type: ignore[operator]
