"""The wrapped clients behave exactly like the raw ones, and every attempt becomes one row.

Real ``openai`` and ``anthropic`` SDKs against the local provider server on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
from decimal import Decimal
from typing import Any

import httpx2
import openai
import pytest

import finops
from finops.devserver import Fault
from finops.pricing import PriceBook
from finops_testing import rows

MSG = [{"role": "user", "content": "Write one line about ledgers."}]


def _strip(obj: Any) -> Any:
    """A response as plain data (ids and timestamps included: the server is deterministic)."""
    return obj.model_dump() if hasattr(obj, "model_dump") else obj


def _usage_of(row: dict[str, Any]) -> finops.Usage:
    return finops.Usage(
        input_tokens=row["input_tokens"],
        cache_read_tokens=row["cache_read_tokens"],
        cache_write_5m_tokens=row["cache_write_5m_tokens"],
        cache_write_1h_tokens=row["cache_write_1h_tokens"],
        input_audio_tokens=row["input_audio_tokens"],
        cache_read_audio_tokens=row["cache_read_audio_tokens"],
        output_tokens=row["output_tokens"],
        reasoning_tokens=row["reasoning_tokens"],
        output_audio_tokens=row["output_audio_tokens"],
        server_tool_requests=row["server_tool_requests"] or {},
    )


def _check_cost(row: dict[str, Any]) -> None:
    expected = PriceBook.default().price(
        provider=row["provider"],
        model=row["served_model"],
        usage=_usage_of(row),
        at=row["ts_start"],
    )
    assert row["pricing_status"] == "priced"
    assert row["cost_total"] == expected.total and row["cost_total"] > 0
    assert row["price_version"] == expected.price_version


# -- OpenAI ----------------------------------------------------------------------------------


def _chat(client: Any, **kw: Any) -> Any:
    return client.chat.completions.create(model="gpt-4o", messages=MSG, **kw)


def test_chat_sync_equals_raw_and_writes_one_priced_row(fo, raw_openai, devserver):
    wrapped = fo.wrap(raw_openai)
    got = _chat(wrapped, max_tokens=32)
    devserver.reset()
    want = _chat(raw_openai, max_tokens=32)
    assert type(got) is type(want)
    assert _strip(got) == _strip(want)
    [row] = rows(fo)
    assert row["status"] == "ok" and row["endpoint"] == "chat.completions"
    assert row["attempt"] == 1 and row["http_status"] == 200
    assert row["requested_model"] == "gpt-4o" and row["served_model"] == got.model
    assert row["input_tokens"] + row["cache_read_tokens"] == got.usage.prompt_tokens
    assert row["output_tokens"] + row["reasoning_tokens"] == got.usage.completion_tokens
    _check_cost(row)


def test_chat_stream_hides_the_injected_usage_chunk(fo, raw_openai, devserver):
    wrapped = fo.wrap(raw_openai)
    got = [c.model_dump() for c in _chat(wrapped, stream=True)]
    devserver.reset()
    want = [c.model_dump() for c in _chat(raw_openai, stream=True)]
    assert got == want  # no extra chunk, same content
    assert all(c["usage"] is None for c in got)
    body = devserver.requests[0].body if hasattr(devserver.requests[0], "body") else None
    del body
    [row] = rows(fo)
    assert row["status"] == "ok" and row["stream"] is True
    assert row["input_tokens"] > 0 and row["output_tokens"] > 0
    _check_cost(row)


def test_chat_stream_keeps_usage_chunk_when_caller_asked(fo, raw_openai):
    wrapped = fo.wrap(raw_openai)
    chunks = list(_chat(wrapped, stream=True, stream_options={"include_usage": True}))
    assert chunks[-1].usage is not None and chunks[-1].choices == []
    [row] = rows(fo)
    assert row["input_tokens"] + row["cache_read_tokens"] == chunks[-1].usage.prompt_tokens
    assert row["output_tokens"] + row["reasoning_tokens"] == chunks[-1].usage.completion_tokens


async def test_chat_async_stream_and_nonstream(fo, raw_async_openai, devserver):
    wrapped = fo.wrap(raw_async_openai)
    got = await wrapped.chat.completions.create(model="gpt-4o-mini", messages=MSG)
    devserver.reset()
    want = await raw_async_openai.chat.completions.create(model="gpt-4o-mini", messages=MSG)
    assert _strip(got) == _strip(want)
    stream = await wrapped.chat.completions.create(model="gpt-4o-mini", messages=MSG, stream=True)
    chunks = [c async for c in stream]
    assert chunks and all(c.usage is None for c in chunks)
    statuses = [(r["status"], r["stream"]) for r in rows(fo)]
    assert statuses == [("ok", False), ("ok", True)]


def test_reasoning_and_cached_tokens_are_separated(fo, raw_openai):
    wrapped = fo.wrap(raw_openai)
    long = [{"role": "system", "content": "policy " * 2000}, *MSG]
    first = wrapped.chat.completions.create(model="o3-mini", messages=long)
    second = wrapped.chat.completions.create(model="o3-mini", messages=long)
    r1, r2 = rows(fo)
    details = second.usage.prompt_tokens_details
    assert details is not None and details.cached_tokens and details.cached_tokens > 0
    assert r2["cache_read_tokens"] == details.cached_tokens
    assert r2["input_tokens"] == second.usage.prompt_tokens - details.cached_tokens
    reasoning = first.usage.completion_tokens_details.reasoning_tokens
    assert reasoning and r1["reasoning_tokens"] == reasoning
    assert r1["output_tokens"] == first.usage.completion_tokens - reasoning
    assert r2["cost_cache_read"] > 0
    _check_cost(r1)
    _check_cost(r2)


@pytest.mark.parametrize("stream", [False, True])
def test_responses_sync(fo, raw_openai, devserver, stream):
    wrapped = fo.wrap(raw_openai)
    got = wrapped.responses.create(model="gpt-4.1-mini", input="hello", stream=stream)
    got_data = [e.model_dump() for e in got] if stream else _strip(got)
    devserver.reset()
    want = raw_openai.responses.create(model="gpt-4.1-mini", input="hello", stream=stream)
    want_data = [e.model_dump() for e in want] if stream else _strip(want)
    assert got_data == want_data
    [row] = rows(fo)
    assert row["status"] == "ok" and row["endpoint"] == "responses"
    _check_cost(row)


async def test_responses_async_stream(fo, raw_async_openai):
    wrapped = fo.wrap(raw_async_openai)
    stream = await wrapped.responses.create(model="gpt-4.1-mini", input="hello", stream=True)
    events = [e async for e in stream]
    completed = [e for e in events if e.type == "response.completed"]
    [row] = rows(fo)
    assert (
        row["input_tokens"] + row["cache_read_tokens"] == completed[0].response.usage.input_tokens
    )


@pytest.mark.parametrize("is_async", [False, True])
def test_embeddings(fo, raw_openai, raw_async_openai, is_async):
    if is_async:
        wrapped = fo.wrap(raw_async_openai)
        got = asyncio.run(
            wrapped.embeddings.create(model="text-embedding-3-small", input=["a", "b"])
        )
    else:
        got = fo.wrap(raw_openai).embeddings.create(
            model="text-embedding-3-small", input=["a", "b"]
        )
    assert len(got.data) == 2
    [row] = rows(fo)
    assert row["endpoint"] == "embeddings" and row["input_tokens"] == got.usage.prompt_tokens
    assert row["output_tokens"] == 0
    _check_cost(row)


def test_with_raw_response_and_streaming_response(fo, raw_openai):
    wrapped = fo.wrap(raw_openai)
    raw = wrapped.chat.completions.with_raw_response.create(model="gpt-4o", messages=MSG)
    assert raw.http_response.status_code == 200
    parsed = raw.parse()
    assert isinstance(parsed, openai.types.chat.ChatCompletion)
    with wrapped.chat.completions.with_streaming_response.create(
        model="gpt-4o", messages=MSG
    ) as resp:
        assert resp.parse().choices
    assert [r["status"] for r in rows(fo)] == ["ok", "ok"]


# -- Anthropic -------------------------------------------------------------------------------


def _msg(client: Any, **kw: Any) -> Any:
    return client.messages.create(model="claude-sonnet-4-6", max_tokens=64, messages=MSG, **kw)


def test_messages_sync_equals_raw(fo, raw_anthropic, devserver):
    wrapped = fo.wrap(raw_anthropic)
    got = _msg(wrapped)
    devserver.reset()
    want = _msg(raw_anthropic)
    assert type(got) is type(want) and _strip(got) == _strip(want)
    [row] = rows(fo)
    assert row["provider"] == "anthropic" and row["endpoint"] == "messages"
    assert row["input_tokens"] == got.usage.input_tokens
    assert row["output_tokens"] + row["reasoning_tokens"] == got.usage.output_tokens
    _check_cost(row)


def test_messages_stream_create_and_stream_helper(fo, raw_anthropic, devserver):
    wrapped = fo.wrap(raw_anthropic)
    events = [e.model_dump() for e in _msg(wrapped, stream=True)]
    devserver.reset()
    assert events == [e.model_dump() for e in _msg(raw_anthropic, stream=True)]
    with finops.tags(team="helper"):
        manager = wrapped.messages.stream(model="claude-haiku-4-5", max_tokens=64, messages=MSG)
    with manager as stream:  # the request is sent here, outside the tags block
        final = stream.get_final_message()
    r1, r2 = rows(fo)
    assert r1["status"] == r2["status"] == "ok"
    assert r2["tags"] == {"team": "helper"}
    assert r2["output_tokens"] + r2["reasoning_tokens"] == final.usage.output_tokens
    _check_cost(r2)


async def test_messages_async(fo, raw_async_anthropic):
    wrapped = fo.wrap(raw_async_anthropic)
    got = await wrapped.messages.create(model="claude-sonnet-4-6", max_tokens=64, messages=MSG)
    async with wrapped.messages.stream(
        model="claude-sonnet-4-6", max_tokens=64, messages=MSG
    ) as stream:
        final = await stream.get_final_message()
    r1, r2 = rows(fo)
    assert r1["input_tokens"] == got.usage.input_tokens
    assert r2["output_tokens"] + r2["reasoning_tokens"] == final.usage.output_tokens


def test_anthropic_cache_write_and_read_are_additive(fo, raw_anthropic):
    wrapped = fo.wrap(raw_anthropic)
    system = [{"type": "text", "text": "rules " * 3000, "cache_control": {"type": "ephemeral"}}]
    first = _msg(wrapped, system=system)
    second = _msg(wrapped, system=system)
    r1, r2 = rows(fo)
    assert (
        first.usage.cache_creation_input_tokens
        and r1["cache_write_5m_tokens"] + r1["cache_write_1h_tokens"]
        == first.usage.cache_creation_input_tokens
    )
    assert second.usage.cache_read_input_tokens and r2["cache_read_tokens"] == (
        second.usage.cache_read_input_tokens
    )
    assert r2["input_tokens"] == second.usage.input_tokens  # not double counted
    _check_cost(r1)
    _check_cost(r2)


# -- retries, faults, bad input --------------------------------------------------------------


def test_429_then_200_gives_two_rows_under_one_call_id(fo, raw_openai, devserver):
    wrapped = fo.wrap(raw_openai)
    devserver.inject(Fault.status(429, retry_after=0.01), times=1)
    reply = _chat(wrapped)
    assert reply.choices
    r1, r2 = rows(fo)
    assert r1["call_id"] == r2["call_id"]
    assert (r1["attempt"], r1["status"], r1["http_status"]) == (1, "error", 429)
    assert (r2["attempt"], r2["status"], r2["http_status"]) == (2, "ok", 200)
    assert r1["cost_total"] is None and r2["cost_total"] > 0


def test_500_exhausted_raises_the_sdk_error_and_records_each_attempt(fo, devserver):
    wrapped = fo.wrap(openai.OpenAI(api_key="k", base_url=devserver.openai_base_url, max_retries=1))
    devserver.inject(Fault.status(500), times=2)
    with pytest.raises(openai.InternalServerError):
        _chat(wrapped)
    recorded = rows(fo)
    assert [(r["attempt"], r["status"], r["http_status"]) for r in recorded] == [
        (1, "error", 500),
        (2, "error", 500),
    ]
    assert len({r["call_id"] for r in recorded}) == 1


def _outcome(fn: Any) -> tuple[str, Any]:
    try:
        return "ok", fn()
    except Exception as exc:  # the exception type is what must match
        return "raised", type(exc)


@pytest.mark.parametrize("fault", ["garbage", "truncated_sse", "drop_stream"])
def test_broken_replies_behave_as_without_finops(fo, raw_openai, devserver, fault):
    wrapped = fo.wrap(raw_openai)
    stream = fault != "garbage"

    def run(client: Any) -> Any:
        result = _chat(client, stream=stream)
        return [c.model_dump() for c in result] if stream else _strip(result)

    devserver.inject(getattr(Fault, fault)(), times=1)
    got = _outcome(lambda: run(wrapped))
    devserver.inject(getattr(Fault, fault)(), times=1)
    want = _outcome(lambda: run(raw_openai))
    assert got[0] == want[0]
    if got[0] == "raised":
        assert got[1] is want[1]
    [row] = rows(fo)
    assert row["status"] == "error"
    assert row["error_type"] in ("unparseable_response", "truncated_stream") or row["error_type"]


def test_stream_closed_early_is_cancelled_with_what_was_produced(fo, raw_openai):
    wrapped = fo.wrap(raw_openai)
    stream = wrapped.chat.completions.create(
        model="gpt-4o", messages=MSG, stream=True, max_tokens=200
    )
    it = iter(stream)
    for _ in range(3):
        next(it)
    stream.close()
    [row] = rows(fo)
    assert row["status"] == "cancelled" and row["usage_estimated"] is True
    assert row["input_tokens"] > 0  # from the pre-call estimate
    assert row["output_tokens"] >= 1 and row["cost_total"] > 0


def test_unknown_model_policies(ledger_path, tmp_path, devserver):
    with finops.FinOps(ledger=ledger_path) as fo:
        client = fo.wrap(openai.OpenAI(api_key="k", base_url=devserver.openai_base_url))
        with pytest.warns(finops.UnknownModelWarning):
            client.chat.completions.create(model="acme-llm-9000", messages=MSG)
        [row] = rows(fo)
        assert row["pricing_status"] == "unknown_model" and row["cost_total"] == 0

    with finops.FinOps(ledger=tmp_path / "r.duckdb", unknown_model="raise") as fo:
        client = fo.wrap(openai.OpenAI(api_key="k", base_url=devserver.openai_base_url))
        devserver.reset()
        with pytest.raises(finops.UnknownModelError, match="acme-llm-9000"):
            client.chat.completions.create(model="acme-llm-9000", messages=MSG)
        assert devserver.requests == []  # refused before anything was sent

    with finops.FinOps(ledger=tmp_path / "f.duckdb", unknown_model="fallback:gpt-4o") as fo:
        client = fo.wrap(openai.OpenAI(api_key="k", base_url=devserver.openai_base_url))
        client.chat.completions.create(model="acme-llm-9000", messages=MSG)
        [row] = rows(fo)
        assert row["pricing_status"] == "fallback:gpt-4o" and row["cost_total"] > 0

    with pytest.raises(finops.ConfigError, match="fallback"):
        finops.FinOps(ledger=tmp_path / "x.duckdb", unknown_model="guess")


# -- tags, content, secrets ------------------------------------------------------------------


def test_tags_nest_and_follow_threads_tasks_and_calls(fo, raw_openai, raw_async_openai):
    client = fo.wrap(raw_openai)
    aclient = fo.wrap(raw_async_openai)
    with finops.tags(team="search", feature="a"):
        with finops.tags(feature="b", user="u1"):
            _chat(client, finops_tags={"agent": "x"})
        _chat(client)
        ctx = contextvars.copy_context()
        t = threading.Thread(target=ctx.run, args=(lambda: _chat(client),))
        t.start()
        t.join()

        async def main() -> None:
            async def one() -> None:
                await aclient.chat.completions.create(model="gpt-4o", messages=MSG)

            await asyncio.gather(asyncio.create_task(one()))

        asyncio.run(main())
    _chat(client)
    assert [r["tags"] for r in rows(fo)] == [
        {"team": "search", "feature": "b", "user": "u1", "agent": "x"},
        {"team": "search", "feature": "a"},
        {"team": "search", "feature": "a"},
        {"team": "search", "feature": "a"},
        {},
    ]


def test_secrets_never_stored_and_content_only_on_opt_in(tmp_path, devserver):
    secret = "sk-test-very-secret-key"
    for store in (False, True):
        path = tmp_path / f"c{store}.duckdb"
        with finops.FinOps(ledger=path, store_content=store) as fo:
            client = fo.wrap(openai.OpenAI(api_key=secret, base_url=devserver.openai_base_url))
            _chat(client)
            [row] = rows(fo)
            assert secret not in repr(row)
            assert len(row["request_hash"]) == 64
            assert (row["prompt_text"] is not None) is store
            assert (row["response_text"] is not None) is store
        for f in tmp_path.rglob("*"):
            if f.is_file():
                assert secret.encode() not in f.read_bytes(), f


def test_original_client_untouched_and_copies_stay_wrapped(fo, raw_openai):
    wrapped = fo.wrap(raw_openai)
    _chat(raw_openai)
    assert rows(fo) == []
    _chat(wrapped.with_options(timeout=30), finops_tags={"via": "with_options"})
    [row] = rows(fo)
    assert row["tags"] == {"via": "with_options"}


def test_resources_are_wrapped_when_first_used(fo, raw_openai, tmp_path):
    """wrap() imports no SDK resource module the application does not use (start-up cost),
    and every copy — with_options, copy, a copy of a copy, a new http_client — stays metered."""
    import subprocess
    import sys

    code = (
        "import sys, finops, openai\n"
        f"fo = finops.FinOps(ledger={str(tmp_path / 'l.duckdb')!r}, estimate='off')\n"
        "c = fo.wrap(openai.OpenAI(api_key='k'))\n"
        "assert isinstance(c, openai.OpenAI) and type(c).__name__ == 'OpenAI'\n"
        "assert 'openai.resources.responses.responses' not in sys.modules\n"
        "assert c.chat.completions.create.__finops_wrapped__\n"
        "assert 'openai.resources.responses.responses' not in sys.modules\n"
        "assert c.responses.create.__finops_wrapped__\n"
        "fo.close()\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    wrapped = fo.wrap(raw_openai)
    copies = [
        wrapped.with_options(timeout=30),
        wrapped.copy(max_retries=1).with_options(timeout=20),
        wrapped.with_options(http_client=httpx2.Client()),
    ]
    for i, client in enumerate(copies):
        _chat(client, finops_tags={"copy": str(i)})
    assert sorted(r["tags"]["copy"] for r in rows(fo)) == ["0", "1", "2"]


def test_custom_http_client_is_kept(fo, devserver):
    seen: list[str] = []
    http = httpx2.Client(event_hooks={"request": [lambda r: seen.append(str(r.url))]})
    client = fo.wrap(
        openai.OpenAI(api_key="k", base_url=devserver.openai_base_url, http_client=http)
    )
    _chat(client)
    assert seen and seen[0].endswith("/chat/completions")
    assert len(rows(fo)) == 1


def test_money_is_decimal(fo, raw_openai):
    _chat(fo.wrap(raw_openai))
    [row] = rows(fo)
    for key in ("cost_input", "cost_output", "cost_total"):
        assert isinstance(row[key], Decimal)


def test_malformed_price_file_never_breaks_the_call(tmp_path, devserver):
    import json as _json

    from finops.pricing import default_tables_dir

    tables = tmp_path / "tables"
    tables.mkdir()
    for f in default_tables_dir().glob("*.json"):
        (tables / f.name).write_text(f.read_text())
    (tables / "openai.json").write_text(_json.dumps({"provider": {"id": "openai"}, "models": "?"}))
    with finops.FinOps(ledger=tmp_path / "p.duckdb", prices=tables) as fo:
        client = fo.wrap(openai.OpenAI(api_key="k", base_url=devserver.openai_base_url))
        with pytest.warns(finops.MeteringWarning):
            reply = _chat(client)
        assert reply.choices[0].message.content
        [row] = rows(fo)
        assert row["status"] == "ok" and row["input_tokens"] > 0  # usage kept
        assert row["pricing_status"] == "error" and "openai.json" in row["finops_error"]
