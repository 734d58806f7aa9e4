"""Exact cache hits for Gemini through the real google-genai SDK (sync and aio, stream and
not): the SDK's own types come back, the DevServer gets no request for a hit, and the key
follows docs/cache.md's include / exclude rules for the Gemini request shape."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

import finops
from finops.cache.key import Uncacheable, request_key
from finops.devserver import DevServer
from finops_testing import rows

genai = pytest.importorskip("google.genai")
types = pytest.importorskip("google.genai.types")

MODEL = "gemini-2.5-flash"


def _client(server: DevServer) -> object:
    return genai.Client(api_key="test-key", http_options={"base_url": server.url})  # type: ignore[arg-type]


def _fo(ledger: Path) -> finops.FinOps:
    return finops.FinOps(ledger=ledger, cache=finops.Cache(store="memory"))


def _posts(server: DevServer) -> int:
    return sum(1 for r in server.requests if r.method == "POST")


def test_exact_hit_sync_json_and_stream(ledger_path: Path, devserver: DevServer) -> None:
    with _fo(ledger_path) as fo:
        client = fo.wrap(_client(devserver))
        models = client.models  # type: ignore[attr-defined]
        config = types.GenerateContentConfig(temperature=0, max_output_tokens=64)
        first = models.generate_content(model=MODEL, contents="What is a ledger?", config=config)
        assert _posts(devserver) == 1
        # same request, other spellings: resource name, content list, dict config
        again = models.generate_content(
            model=f"models/{MODEL}",
            contents=[{"role": "user", "parts": [{"text": "What is a ledger?"}]}],
            config={"temperature": 0, "max_output_tokens": 64},
        )
        assert _posts(devserver) == 1  # served from the cache: nothing sent
        assert isinstance(again, types.GenerateContentResponse)
        assert again.text == first.text and again.usage_metadata == first.usage_metadata
        # a stream request served from the stored JSON answer: a real stream of chunks
        chunks = list(
            models.generate_content_stream(model=MODEL, contents="What is a ledger?", config=config)
        )
        assert _posts(devserver) == 1
        assert len(chunks) > 1 and all(isinstance(c, types.GenerateContentResponse) for c in chunks)
        assert "".join(c.text or "" for c in chunks) == first.text
        assert chunks[-1].candidates[0].finish_reason == first.candidates[0].finish_reason
        # another parameter: a miss
        models.generate_content(
            model=MODEL,
            contents="What is a ledger?",
            config=types.GenerateContentConfig(temperature=1, max_output_tokens=64),
        )
        assert _posts(devserver) == 2
        got = rows(fo)
    assert [r["cache_status"] for r in got] == ["miss", "exact_hit", "exact_hit", "miss"]
    assert [r["status"] for r in got] == ["ok", "cache_hit", "cache_hit", "ok"]
    miss, hit, stream_hit = got[0], got[1], got[2]
    assert hit["cost_total"] == stream_hit["cost_total"] == Decimal(0)
    assert hit["counterfactual_cost"] == miss["cost_total"] > 0
    assert stream_hit["counterfactual_cost"] == miss["cost_total"]
    assert hit["provider"] == "google" and hit["reasoning_tokens"] == miss["reasoning_tokens"]


def test_stream_stored_then_served_as_json_and_stream(
    ledger_path: Path, devserver: DevServer
) -> None:
    with _fo(ledger_path) as fo:
        models = fo.wrap(_client(devserver)).models  # type: ignore[attr-defined]
        live = list(models.generate_content_stream(model=MODEL, contents="Stream me, please"))
        assert _posts(devserver) == 1
        text = "".join(c.text or "" for c in live)
        replayed = list(models.generate_content_stream(model=MODEL, contents="Stream me, please"))
        whole = models.generate_content(model=MODEL, contents="Stream me, please")
        assert _posts(devserver) == 1
        assert "".join(c.text or "" for c in replayed) == text == whole.text
        assert whole.usage_metadata == live[-1].usage_metadata
        got = rows(fo)
    assert [r["cache_status"] for r in got] == ["miss", "exact_hit", "exact_hit"]
    assert got[1]["counterfactual_cost"] == got[2]["counterfactual_cost"] == got[0]["cost_total"]


async def test_exact_hit_aio(ledger_path: Path, devserver: DevServer) -> None:
    with _fo(ledger_path) as fo:
        aio = fo.wrap(_client(devserver)).aio.models  # type: ignore[attr-defined]
        first = await aio.generate_content(model=MODEL, contents="async ledger")
        second = await aio.generate_content(model=MODEL, contents="async ledger")
        stream = [c async for c in await aio.generate_content_stream(model=MODEL, contents="async ledger")]
        assert _posts(devserver) == 1
        assert isinstance(second, types.GenerateContentResponse) and second.text == first.text
        assert "".join(c.text or "" for c in stream) == first.text
        emb1 = await aio.embed_content(model="gemini-embedding-001", contents="vector me")
        emb2 = await aio.embed_content(model="gemini-embedding-001", contents="vector me")
        assert _posts(devserver) == 2
        assert emb1.embeddings[0].values == emb2.embeddings[0].values
        got = rows(fo)
    assert [r["cache_status"] for r in got] == ["miss", "exact_hit", "exact_hit", "miss", "exact_hit"]


def test_errors_are_not_stored(ledger_path: Path, devserver: DevServer) -> None:
    from finops.devserver import Fault

    with _fo(ledger_path) as fo:
        models = fo.wrap(_client(devserver)).models  # type: ignore[attr-defined]
        devserver.inject(Fault.status(429))
        with pytest.raises(Exception):  # noqa: B017 - the SDK's own ClientError
            models.generate_content(
                model=MODEL,
                contents="rate limited",
                config=types.GenerateContentConfig(http_options=types.HttpOptions(retry_options=None)),
            )
        models.generate_content(model=MODEL, contents="rate limited")
        assert _posts(devserver) == 2  # the 429 was not kept
        got = rows(fo)
    assert got[-1]["cache_status"] == "miss" and got[-1]["status"] == "ok"


def _key(**kwargs: object) -> str:
    return request_key(wire="google", endpoint="generate_content", kwargs=kwargs).exact


def test_key_rules_for_gemini() -> None:
    base = {"model": MODEL, "contents": "hi", "config": {"temperature": 0.2}}
    k = _key(**base)
    # left out: transport options, labels, the SDK's client-side function-calling settings
    assert _key(**{**base, "config": {"temperature": 0.2, "labels": {"team": "a"}}}) == k
    assert (
        _key(
            **{
                **base,
                "config": types.GenerateContentConfig(
                    temperature=0.2, http_options=types.HttpOptions(timeout=5000)
                ),
            }
        )
        == k
    )
    assert _key(model=f"models/{MODEL}", contents=[types.Part(text="hi")], config=base["config"]) == k
    # kept: everything that changes the answer
    for change in (
        {"model": "gemini-2.5-pro"},
        {"contents": "hello"},
        {"config": {"temperature": 0.3}},
        {"config": {"temperature": 0.2, "system_instruction": "be brief"}},
        {"config": {"temperature": 0.2, "thinking_config": {"thinking_budget": 0}}},
        {"config": {"temperature": 0.2, "response_mime_type": "application/json"}},
        {"config": {"temperature": 0.2, "tools": [{"google_search": {}}]}},
        {"config": {"temperature": 0.2, "safety_settings": [
            {"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}]}},
        {"config": {"temperature": 0.2, "cached_content": "cachedContents/abc"}},
    ):
        assert _key(**{**base, **change}) != k, change

    def tool(x: int) -> int:
        return x

    with pytest.raises(Uncacheable):
        _key(**{**base, "config": {"tools": [tool]}})


def test_callable_tools_are_bypassed(ledger_path: Path, devserver: DevServer) -> None:
    def lookup(city: str) -> str:
        """Look a city up."""
        return city

    with _fo(ledger_path) as fo:
        models = fo.wrap(_client(devserver)).models  # type: ignore[attr-defined]
        config = types.GenerateContentConfig(
            tools=[lookup],
            automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
        )
        models.generate_content(model=MODEL, contents="weather?", config=config)
        models.generate_content(model=MODEL, contents="weather?", config=config)
        assert _posts(devserver) == 2
        got = rows(fo)
    assert [r["cache_status"] for r in got] == ["bypass", "bypass"]
