"""The metering transport at the byte level, with the real openai SDK over httpx2.MockTransport.

Rows go to a list sink here: what is under test is what the transport hands the SDK and the
rows it produces, not the ledger (tested in tests/ledger with real DuckDB files).
"""

from __future__ import annotations

import contextlib
import gzip
import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx2
import openai
import pytest

from finops.intercept.transport import AsyncMeteringTransport, MeteringTransport
from finops.ledger.row import LedgerRow
from finops.metering import Meter

MODEL = "gpt-4o-2024-08-06"


class ListSink:
    def __init__(self) -> None:
        self.rows: list[LedgerRow] = []

    def append(self, row: LedgerRow) -> None:
        self.rows.append(row)


class OneCentBook:
    """Prices every call at one cent (pricing is tested in tests/pricing)."""

    def price(self, **kw: Any) -> Any:
        class Cost:
            input = cache_read = cache_write = tools = steps = Decimal(0)
            output = total = Decimal("0.01")
            currency, price_version, status = "USD", "test", "priced"

        return Cost()


def chunk(content: str | None = None, usage: dict | None = None) -> dict:
    choices = [] if usage else [{"index": 0, "delta": {"content": content}, "finish_reason": None}]
    return {
        "id": "c1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": MODEL,
        "choices": choices,
        "usage": usage,
    }


USAGE = {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15}


def sse_body(events: list[dict], *, newline: str = "\n", done: bool = True) -> bytes:
    out = "".join(f"data: {json.dumps(e)}{newline}{newline}" for e in events)
    if done:
        out += f"data: [DONE]{newline}{newline}"
    return out.encode()


def completion() -> dict:
    return {
        "id": "x",
        "object": "chat.completion",
        "created": 1,
        "model": MODEL,
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}
        ],
        "usage": USAGE,
    }


def make(handler: Any, *, is_async: bool = False) -> tuple[Any, ListSink]:
    sink = ListSink()
    meter = Meter(
        sink=sink,
        pricebook=OneCentBook,
        unknown_model="zero_flagged",  # type: ignore[arg-type]
        store_content=False,
        clock=lambda: datetime.now(UTC),
    )
    hook = meter.hook("openai", api_url=None, price_provider="openai")
    if is_async:
        transport: Any = AsyncMeteringTransport(hook, inner=httpx2.MockTransport(handler))
        client: Any = openai.AsyncOpenAI(
            api_key="k",
            base_url="http://test/v1",
            max_retries=0,
            http_client=httpx2.AsyncClient(transport=transport),
        )
    else:
        transport = MeteringTransport(hook, inner=httpx2.MockTransport(handler))
        client = openai.OpenAI(
            api_key="k",
            base_url="http://test/v1",
            max_retries=0,
            http_client=httpx2.Client(transport=transport),
        )
    return client, sink


MSG: Any = [{"role": "user", "content": "hi"}]


def test_gzip_body_is_decoded_for_metering_and_for_the_sdk():
    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(
            200,
            headers={"content-encoding": "gzip", "content-type": "application/json"},
            content=gzip.compress(json.dumps(completion()).encode()),
        )

    client, sink = make(handler)
    reply = client.chat.completions.create(model="gpt-4o", messages=MSG)
    assert reply.choices[0].message.content == "ok"
    [row] = sink.rows
    assert (row.status, row.input_tokens, row.output_tokens) == ("ok", 12, 3)


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_sse_line_endings_and_chunk_boundaries(newline):
    body = sse_body([chunk("a"), chunk("b"), chunk(usage=USAGE)], newline=newline)

    def handler(request: httpx2.Request) -> httpx2.Response:
        pieces = [body[i : i + 7] for i in range(0, len(body), 7)]  # events split mid-way
        return httpx2.Response(
            200,
            headers={"content-type": "text/event-stream"},
            stream=httpx2.ByteStream(b"") if not pieces else _Pieces(pieces),
        )

    client, sink = make(handler)
    chunks = list(
        client.chat.completions.create(
            model="gpt-4o", messages=MSG, stream=True, stream_options={"include_usage": True}
        )
    )
    assert [c.choices[0].delta.content for c in chunks[:2]] == ["a", "b"]
    assert chunks[-1].usage is not None
    [row] = sink.rows
    assert (row.status, row.input_tokens, row.output_tokens) == ("ok", 12, 3)


class _Pieces(httpx2.SyncByteStream):
    def __init__(self, pieces: list[bytes]) -> None:
        self.pieces = pieces

    def __iter__(self) -> Any:
        yield from self.pieces


def test_last_event_without_blank_line_still_reaches_the_sdk_and_meter():
    body = sse_body([chunk("a"), chunk(usage=USAGE)], done=False) + b"data: [DONE]"

    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=body)

    client, sink = make(handler)
    chunks = list(
        client.chat.completions.create(
            model="gpt-4o", messages=MSG, stream=True, stream_options={"include_usage": True}
        )
    )
    assert len(chunks) == 2
    assert sink.rows[0].status == "ok"


def test_connection_error_is_recorded_and_the_sdk_error_raised():
    def handler(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.ConnectError("refused", request=request)

    client, sink = make(handler)
    with pytest.raises(openai.APIConnectionError):
        client.chat.completions.create(model="gpt-4o", messages=MSG)
    [row] = sink.rows
    assert row.status == "error" and row.error_type == "ConnectError" and row.http_status is None


def test_non_generation_endpoints_pass_through_unmetered():
    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, json={"object": "list", "data": []})

    client, sink = make(handler)
    client.models.list()
    assert sink.rows == []


async def test_async_stream_closed_early_is_cancelled():
    body = sse_body([chunk("a"), chunk("b"), chunk("c"), chunk(usage=USAGE)])

    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=body)

    client, sink = make(handler, is_async=True)
    stream = await client.chat.completions.create(model="gpt-4o", messages=MSG, stream=True)
    await stream.close()
    [row] = sink.rows
    assert row.status in ("cancelled", "ok")  # a fully buffered body may already be complete


def test_metering_failure_never_reaches_the_caller(recwarn):
    class BrokenBook:
        def price(self, **kw: Any) -> Any:
            raise RuntimeError("price table exploded")

    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, json=completion())

    sink = ListSink()
    meter = Meter(
        sink=sink,
        pricebook=BrokenBook,
        unknown_model="zero_flagged",  # type: ignore[arg-type]
        store_content=False,
        clock=lambda: datetime.now(UTC),
    )
    hook = meter.hook("openai", api_url=None, price_provider="openai")
    client = openai.OpenAI(
        api_key="k",
        base_url="http://test/v1",
        http_client=httpx2.Client(
            transport=MeteringTransport(hook, inner=httpx2.MockTransport(handler))
        ),
    )
    assert (
        client.chat.completions.create(model="gpt-4o", messages=MSG).choices[0].message.content
        == "ok"
    )
    [row] = sink.rows
    assert row.pricing_status == "error" and "price table exploded" in (row.finops_error or "")
    assert row.input_tokens == 12  # usage kept even though pricing failed


class _StripAttempt:
    """An attempt whose chat stream hides the usage chunk (finops injected include_usage)."""

    capture = False
    served = None

    def __init__(self) -> None:
        self.finished: dict[str, Any] = {}

    def watcher(self, response: httpx2.Response) -> Any:
        from finops.providers import adapter_for

        adapter = adapter_for("openai", "chat.completions")
        assert adapter is not None
        return adapter.stream_watcher(strip_usage_chunk=True)

    def finish(self, **kw: Any) -> None:
        self.finished = kw


def _cuts(body: bytes, how: str) -> list[bytes]:
    events = [e + b"\n\n" for e in body.split(b"\n\n") if e]
    if how == "one_event_each":
        return events
    if how == "usage_with_done":
        return [*events[:-2], events[-2] + events[-1]]
    if how == "whole_body":
        return [body]
    return [body[i : i + 7] for i in range(0, len(body), 7)]  # "cut_mid_event"


@pytest.mark.parametrize("how", ["one_event_each", "usage_with_done", "whole_body", "cut_mid_event"])
def test_tee_hides_only_the_injected_usage_chunk_however_the_bytes_are_cut(how):
    from finops.intercept.transport import _Watch

    body = sse_body([chunk("a"), chunk("b"), chunk(usage=USAGE)])
    attempt = _StripAttempt()
    watch = _Watch(attempt, httpx2.Response(200))  # type: ignore[arg-type]
    out = b"".join(watch.feed(piece) for piece in _cuts(body, how)) + watch.tail()
    watch.end("complete")
    # the SDK never sees the usage chunk, nor the "usage": null include_usage adds to the
    # others: the events are those of a request without include_usage
    plain = [{k: v for k, v in chunk(c).items() if k != "usage"} for c in ("a", "b")]
    assert out == sse_body(plain)
    parsed = attempt.finished["watcher"].result()
    assert (parsed.usage.input_tokens, parsed.usage.output_tokens) == (12, 3)
    assert parsed.served_model == MODEL and parsed.complete


def test_tee_reads_a_stream_once_at_its_end_whatever_the_chunks():
    """The whole-body read gives the same result as reading the stream event by event."""
    from finops.providers import adapter_for

    adapter = adapter_for("openai", "chat.completions")
    assert adapter is not None
    for body in (
        sse_body([chunk("a"), chunk("b"), chunk(usage=USAGE)]),
        sse_body([chunk("a"), chunk("b")]),  # no usage: the text is read for an estimate
        sse_body([chunk("a"), chunk(usage=USAGE)], newline="\r\n"),
        sse_body([chunk("a"), chunk(usage=USAGE)], done=False) + b'data: {"cut',
    ):
        whole = adapter.stream_watcher(strip_usage_chunk=False)
        whole.read_body(body)  # type: ignore[attr-defined]
        each = adapter.stream_watcher(strip_usage_chunk=False)
        for block in body.replace(b"\r\n", b"\n").split(b"\n\n"):
            if block.strip():
                with contextlib.suppress(ValueError):
                    each.on_event(block)
        assert whole.result() == each.result()
