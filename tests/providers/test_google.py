"""The real google-genai SDK → finops → DevServer (Gemini wire format)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

import finops
from finops.devserver import DevServer
from finops.pricing import PriceBook
from finops.providers.google import normalize_usage
from finops.usage import Usage
from finops_testing import rows

genai = pytest.importorskip("google.genai")
types = pytest.importorskip("google.genai.types")


def _client(server: DevServer, **kw: object) -> object:
    return genai.Client(api_key="test-key", http_options={"base_url": server.url, **kw})  # type: ignore[arg-type]


def _cost(row: dict[str, object]) -> Decimal:
    usage = Usage(
        input_tokens=row["input_tokens"],  # type: ignore[arg-type]
        cache_read_tokens=row["cache_read_tokens"],  # type: ignore[arg-type]
        output_tokens=row["output_tokens"],  # type: ignore[arg-type]
        reasoning_tokens=row["reasoning_tokens"],  # type: ignore[arg-type]
    )
    return (
        PriceBook.default()
        .price(
            provider="google",
            model=str(row["served_model"]),
            usage=usage,
            at=row["ts_start"],  # type: ignore[arg-type]
        )
        .total
    )


def test_usage_arithmetic() -> None:
    usage = normalize_usage(
        {
            "promptTokenCount": 1000,
            "cachedContentTokenCount": 600,
            "toolUsePromptTokenCount": 50,
            "candidatesTokenCount": 80,
            "thoughtsTokenCount": 120,
            "totalTokenCount": 1250,
            "promptTokensDetails": [
                {"modality": "TEXT", "tokenCount": 900},
                {"modality": "AUDIO", "tokenCount": 100},
            ],
            "cacheTokensDetails": [{"modality": "AUDIO", "tokenCount": 40}],
        }
    )
    assert usage.mismatch is None
    assert usage.cache_read_tokens == 560 and usage.cache_read_audio_tokens == 40
    assert usage.input_audio_tokens == 60 and usage.input_tokens == 400 - 60 + 50
    assert usage.output_tokens == 80 and usage.reasoning_tokens == 120
    assert usage.total_input_tokens == 1050 and usage.total_output_tokens == 200
    bad = normalize_usage({"promptTokenCount": 5, "candidatesTokenCount": 1, "totalTokenCount": 9})
    assert bad.mismatch is not None


def test_long_context_tier() -> None:
    book = PriceBook.default()
    at = book.price(
        provider="google", model="gemini-2.5-pro", usage=Usage(input_tokens=1), at=_now()
    )
    small = book.price(
        provider="google", model="gemini-2.5-pro", usage=Usage(input_tokens=200_000), at=_now()
    ).total
    big = book.price(
        provider="google", model="gemini-2.5-pro", usage=Usage(input_tokens=200_001), at=_now()
    ).total
    assert at.status == "priced" and small == Decimal("0.25") and big > 2 * small * Decimal("0.99")


def _now():  # type: ignore[no-untyped-def]
    from datetime import UTC, datetime

    return datetime(2026, 11, 1, tzinfo=UTC)


def test_generate_sync_and_stream(ledger_path: Path, devserver: DevServer) -> None:
    raw = _client(devserver)
    with finops.FinOps(ledger=ledger_path) as fo:
        client = fo.wrap(raw)
        assert client is not raw
        reply = client.models.generate_content(  # type: ignore[attr-defined]
            model="gemini-2.5-flash", contents="What does a ledger do?"
        )
        assert isinstance(reply, types.GenerateContentResponse) and reply.text
        chunks = list(
            client.models.generate_content_stream(  # type: ignore[attr-defined]
                model="models/gemini-2.0-flash",
                contents=[{"role": "user", "parts": [{"text": "hi"}]}],
                config=types.GenerateContentConfig(max_output_tokens=50, temperature=0),
            )
        )
        assert len(chunks) > 1 and all(isinstance(c, types.GenerateContentResponse) for c in chunks)
        got = rows(fo)
    assert [r["endpoint"] for r in got] == ["generate_content", "generate_content"]
    assert [r["stream"] for r in got] == [False, True]
    assert all(r["provider"] == "google" and r["status"] == "ok" for r in got)
    assert got[0]["reasoning_tokens"] > 0  # thoughts, billed as output
    for row in got:
        assert row["pricing_status"] == "priced" and row["cost_total"] == _cost(row) > 0
    assert not any(HEADER in r.headers for r in devserver.requests)


HEADER = "x-finops-call"


async def test_async_generate_stream_and_embed(ledger_path: Path, devserver: DevServer) -> None:
    with finops.FinOps(ledger=ledger_path) as fo:
        client = fo.wrap(_client(devserver))
        reply = await client.aio.models.generate_content(  # type: ignore[attr-defined]
            model="gemini-2.5-pro", contents="hello", config={"system_instruction": "be brief"}
        )
        assert reply.usage_metadata.prompt_token_count > 0
        stream = await client.aio.models.generate_content_stream(  # type: ignore[attr-defined]
            model="gemini-2.5-flash", contents="stream please"
        )
        text = "".join([c.text or "" async for c in stream])
        assert text
        emb = await client.aio.models.embed_content(  # type: ignore[attr-defined]
            model="gemini-embedding-001", contents="embed this text"
        )
        assert emb.embeddings and emb.embeddings[0].values
        got = rows(fo)
    assert [r["endpoint"] for r in got] == ["generate_content", "generate_content", "embed_content"]
    assert all(r["status"] == "ok" for r in got)
    assert got[0]["cost_total"] == _cost(got[0]) > 0
    assert got[2]["usage_estimated"] and got[2]["input_tokens"] > 0


def test_cached_and_tool_tokens_priced(ledger_path: Path, devserver: DevServer) -> None:
    usage = {
        "promptTokenCount": 5000,
        "cachedContentTokenCount": 4096,
        "toolUsePromptTokenCount": 10,
        "candidatesTokenCount": 7,
        "thoughtsTokenCount": 30,
        "totalTokenCount": 5047,
    }
    devserver.next_usage(usage)
    with finops.FinOps(ledger=ledger_path) as fo:
        fo.wrap(_client(devserver)).models.generate_content(  # type: ignore[attr-defined]
            model="gemini-2.5-flash", contents="x"
        )
        [row] = rows(fo)
    assert (row["input_tokens"], row["cache_read_tokens"]) == (914, 4096)
    assert (row["output_tokens"], row["reasoning_tokens"]) == (7, 30)
    assert row["cost_total"] == _cost(row) and row["cost_cache_read"] > 0


def test_budget_refuses_before_the_network(ledger_path: Path, devserver: DevServer) -> None:
    budget = finops.Budget(name="tiny", limit="0.000001", period="day")
    with finops.FinOps(ledger=ledger_path, budgets=[budget]) as fo:
        client = fo.wrap(_client(devserver))
        with pytest.raises(finops.BudgetExceeded):
            client.models.generate_content(model="gemini-2.5-pro", contents="hello " * 50)  # type: ignore[attr-defined]
        with pytest.raises(finops.BudgetExceeded):
            list(
                client.models.generate_content_stream(  # type: ignore[attr-defined]
                    model="gemini-2.5-pro", contents="hello"
                )
            )
        got = rows(fo)
    assert devserver.requests == []
    assert [r["status"] for r in got] == ["blocked", "blocked"]


def test_vertex_paths_are_metered(ledger_path: Path, devserver: DevServer) -> None:
    raw = genai.Client(
        vertexai=True,
        project="p",
        location="us-central1",
        credentials=_Creds(),
        http_options={"base_url": devserver.url},
    )
    with finops.FinOps(ledger=ledger_path) as fo:
        fo.wrap(raw).models.generate_content(model="gemini-2.5-flash", contents="hi")  # type: ignore[attr-defined]
        [row] = rows(fo)
    [req] = devserver.requests
    assert "/projects/p/locations/us-central1/publishers/google/models/" in req.path
    assert row["provider"] == "google" and row["cost_total"] == _cost(row) > 0


class _Creds:
    """Minimal google.auth credentials (no network)."""

    token = "t"
    expired = False
    valid = True
    quota_project_id = None

    def refresh(self, request: object) -> None:
        pass

    def before_request(self, request: object, method: str, url: str, headers: dict) -> None:  # type: ignore[type-arg]
        headers["authorization"] = "Bearer t"

    def apply(self, headers: dict, token: str | None = None) -> None:  # type: ignore[type-arg]
        headers["authorization"] = "Bearer t"


def test_a_replay_transport_in_client_args_is_kept(ledger_path: Path) -> None:
    import httpx2

    body = {
        "candidates": [
            {"content": {"parts": [{"text": "hi"}], "role": "model"}, "finishReason": "STOP"}
        ],
        "usageMetadata": {"promptTokenCount": 21, "candidatesTokenCount": 3, "totalTokenCount": 24},
        "modelVersion": "gemini-2.0-flash",
    }
    seen: list[str] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(str(request.url))
        return httpx2.Response(200, json=body)

    raw = genai.Client(
        api_key="k", http_options={"client_args": {"transport": httpx2.MockTransport(handler)}}
    )
    with finops.FinOps(ledger=ledger_path) as fo:
        fo.wrap(raw).models.generate_content(model="gemini-2.0-flash", contents="hi")  # type: ignore[attr-defined]
        [row] = rows(fo)
    assert seen and seen[0].startswith("https://generativelanguage.googleapis.com/")
    assert row["provider"] == "google" and row["input_tokens"] == 21
    assert row["cost_total"] == _cost(row) > 0


def test_garbage_usage_is_flagged() -> None:
    from finops.providers.bedrock import converse_usage

    bad = normalize_usage({"promptTokenCount": "12", "candidatesTokenCount": -3})
    assert bad.mismatch is not None and bad.mismatch.startswith("invalid usage")
    assert bad.input_tokens == 0 and bad.output_tokens == 0
    missing = converse_usage({"outputTokens": 2})
    assert missing.mismatch is not None and missing.mismatch.startswith("invalid usage")


def test_non_stream_call_is_named_without_a_header(ledger_path: Path, devserver: DevServer) -> None:
    """A non-stream method sends before it returns, a stream while it is iterated: either
    way the call is named in a context variable, not a per-request ``http_options`` header
    (which costs google-genai a deep copy). The application's own per-request headers still
    go out; the name does not outlive the call nor reach another wrapped client's requests."""
    import httpx2

    from finops.intercept.calls import SENDING

    seen: list[bool] = []  # at each request: is a call named in SENDING?
    own = httpx2.Client(
        event_hooks={"request": [lambda _r: seen.append(SENDING.get() is not None)]}
    )
    with finops.FinOps(ledger=ledger_path) as fo:
        one = fo.wrap(_client(devserver))
        two = fo.wrap(_client(devserver, httpx_client=own))
        one.models.generate_content(  # type: ignore[attr-defined]
            model="gemini-2.5-flash",
            contents="hi",
            config={"http_options": {"headers": {"x-app": "1"}}, "max_output_tokens": 8},
        )
        assert SENDING.get() is None
        two.models.generate_content(model="gemini-2.0-flash", contents="hi")  # type: ignore[attr-defined]
        assert list(two.models.generate_content_stream(model="gemini-2.0-flash", contents="s"))  # type: ignore[attr-defined]
        assert SENDING.get() is None
        got = rows(fo)
    assert [(r["requested_model"], r["stream"]) for r in got] == [
        ("gemini-2.5-flash", False),
        ("gemini-2.0-flash", False),
        ("gemini-2.0-flash", True),
    ]
    assert all(r["status"] == "ok" and r["cost_total"] == _cost(r) > 0 for r in got)
    assert seen == [True, True]  # the stream's request is sent when it is iterated
    assert devserver.requests[0].headers.get("x-app") == "1"
    assert not any(HEADER in r.headers for r in devserver.requests)
    own.close()


def test_interleaved_streams_are_named_per_step(ledger_path: Path, devserver: DevServer) -> None:
    """A stream's requests are sent while it is iterated: each step of its iterator names
    its own call (never the whole iteration), so two streams iterated in turn, and another
    client's call made between their chunks, each get their own row — no ad-hoc row, no
    row with another call's tags — and the application's code between chunks sees no name."""
    from finops.intercept.calls import SENDING

    with finops.FinOps(ledger=ledger_path) as fo:
        one = fo.wrap(_client(devserver))
        two = fo.wrap(_client(devserver))
        a = one.models.generate_content_stream(  # type: ignore[attr-defined]
            model="gemini-2.0-flash", contents="stream a", finops_tags={"s": "a"}
        )
        b = one.models.generate_content_stream(  # type: ignore[attr-defined]
            model="gemini-2.5-flash", contents="stream b", finops_tags={"s": "b"}
        )
        first_b = next(b)  # b's request goes out first
        assert SENDING.get() is None
        first_a = next(a)
        assert SENDING.get() is None
        two.models.generate_content(  # type: ignore[attr-defined]
            model="gemini-2.5-pro", contents="between", finops_tags={"s": "c"}
        )
        rest_a, rest_b = list(a), list(b)
        assert SENDING.get() is None
        assert first_a.text is not None and first_b.text is not None and rest_a and rest_b
        got = rows(fo)
    assert sorted((r["tags"]["s"], r["requested_model"], r["stream"]) for r in got) == [
        ("a", "gemini-2.0-flash", True),
        ("b", "gemini-2.5-flash", True),
        ("c", "gemini-2.5-pro", False),
    ]
    assert all(r["status"] == "ok" and r["cost_total"] == _cost(r) > 0 for r in got)
    assert not any(HEADER in r.headers for r in devserver.requests)


async def test_concurrent_async_streams_are_named_per_step(
    ledger_path: Path, devserver: DevServer
) -> None:
    """The same for ``aio`` streams consumed by concurrent tasks."""
    import asyncio

    from finops.intercept.calls import SENDING

    with finops.FinOps(ledger=ledger_path) as fo:
        aio = fo.wrap(_client(devserver)).aio.models  # type: ignore[attr-defined]

        async def consume(tag: str, model: str) -> int:
            stream = await aio.generate_content_stream(
                model=model, contents=f"stream {tag}", finops_tags={"s": tag}
            )
            n = 0
            async for _ in stream:
                assert SENDING.get() is None
                n += 1
                await asyncio.sleep(0)  # let the other task step its stream
            return n

        counts = await asyncio.gather(
            consume("a", "gemini-2.0-flash"), consume("b", "gemini-2.5-flash")
        )
        assert all(n > 1 for n in counts)
        got = rows(fo)
    assert sorted((r["tags"]["s"], r["requested_model"]) for r in got) == [
        ("a", "gemini-2.0-flash"),
        ("b", "gemini-2.5-flash"),
    ]
    assert all(r["status"] == "ok" and r["stream"] for r in got)
    assert not any(HEADER in r.headers for r in devserver.requests)
