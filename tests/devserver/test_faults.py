"""Injected faults as the real SDKs see them, and exact usage scripting."""

from __future__ import annotations

import json
import time
from typing import Any

import anthropic
import httpx2
import openai
import pytest

from finops.devserver import DevServer, Fault

MSG = [{"role": "user", "content": "hello"}]
CLAUDE = "claude-haiku-4-5"


def _chat(client: openai.OpenAI, **kw: Any) -> Any:
    return client.chat.completions.create(**{"model": "gpt-4o-mini", "messages": MSG, **kw})


def _msg(client: anthropic.Anthropic, **kw: Any) -> Any:
    return client.messages.create(**{"model": CLAUDE, "max_tokens": 64, "messages": MSG, **kw})


# -- status faults and retries ---------------------------------------------------------------


@pytest.mark.parametrize("header", ["retry_after", "retry_after_ms"])
def test_sdk_retries_a_429_and_succeeds(oai: openai.OpenAI, devserver: DevServer, header: str):
    wait = {"retry_after": 0.01} if header == "retry_after" else {"retry_after_ms": 10}
    devserver.inject(Fault.status(429, **wait), times=1)
    started = time.perf_counter()
    reply = _chat(oai)
    assert reply.choices[0].message.content
    assert time.perf_counter() - started < 1.0  # the SDK honoured the short retry-after
    assert [r.path for r in devserver.requests] == ["/v1/chat/completions"] * 2


def test_429_headers_and_body_shape(oai: openai.OpenAI, devserver: DevServer):
    devserver.inject(Fault.status(429, retry_after=0.5, retry_after_ms=20))
    no_retry = oai.with_options(max_retries=0)
    with pytest.raises(openai.RateLimitError) as info:
        _chat(no_retry)
    assert info.value.response.headers["retry-after"] == "0.5"
    assert info.value.response.headers["retry-after-ms"] == "20"
    assert info.value.body["type"] == "rate_limit_error"  # type: ignore[index]


def test_500_exhausts_retries_openai(devserver: DevServer):
    client = openai.OpenAI(api_key="test", base_url=devserver.openai_base_url, max_retries=1)
    devserver.inject(Fault.status(500), times=2)
    with pytest.raises(openai.InternalServerError):
        _chat(client)
    assert len(devserver.requests) == 2


def test_500_exhausts_retries_anthropic(devserver: DevServer):
    client = anthropic.Anthropic(
        api_key="test", base_url=devserver.anthropic_base_url, max_retries=1
    )
    devserver.inject(Fault.status(500), times=2)
    with pytest.raises(anthropic.InternalServerError) as info:
        _msg(client)
    assert info.value.body["error"]["type"] == "api_error"  # type: ignore[index]
    assert len(devserver.requests) == 2


def test_anthropic_429_retried_and_529_overloaded(
    claude: anthropic.Anthropic, devserver: DevServer
):
    devserver.inject(Fault.status(429, retry_after=0.01))
    assert _msg(claude).content[0].text
    devserver.inject(Fault.status(529, retry_after_ms=5), times=3)
    with pytest.raises(anthropic.OverloadedError):
        _msg(claude)


async def test_async_clients_retry_too(
    aoai: openai.AsyncOpenAI, aclaude: anthropic.AsyncAnthropic, devserver: DevServer
):
    devserver.inject(Fault.status(429, retry_after_ms=5), times=2)
    reply = await aoai.chat.completions.create(model="gpt-4o", messages=MSG)  # type: ignore[arg-type]
    assert reply.choices and len(devserver.requests) == 3
    devserver.inject(Fault.status(429, retry_after_ms=5))
    message = await aclaude.messages.create(model=CLAUDE, max_tokens=64, messages=MSG)  # type: ignore[arg-type]
    assert message.content


# -- broken bodies ---------------------------------------------------------------------------


def test_drop_stream_raises_in_the_sdk_iterator(
    oai: openai.OpenAI, claude: anthropic.Anthropic, devserver: DevServer
):
    devserver.inject(Fault.drop_stream(after=3))
    received = []
    with pytest.raises(openai.APIConnectionError):
        for chunk in _chat(oai, stream=True):
            received.append(chunk)
    assert len(received) == 3
    devserver.inject(Fault.drop_stream(after=4))
    with (
        pytest.raises(httpx2.RemoteProtocolError),
        claude.messages.stream(model=CLAUDE, max_tokens=64, messages=MSG) as stream,  # type: ignore[arg-type]
    ):
        stream.get_final_message()
    # The connection is gone but the server is fine.
    assert _chat(oai).choices


def test_drop_on_a_json_reply_is_a_connection_error(devserver: DevServer):
    client = openai.OpenAI(api_key="test", base_url=devserver.openai_base_url, max_retries=0)
    devserver.inject(Fault.drop_stream())
    with pytest.raises(openai.APIConnectionError):
        _chat(client)


def test_truncated_sse_ends_cleanly_without_final_events(
    oai: openai.OpenAI, claude: anthropic.Anthropic, devserver: DevServer
):
    devserver.inject(Fault.truncated_sse(after=3))
    chunks = list(_chat(oai, stream=True, stream_options={"include_usage": True}))
    assert len(chunks) == 3 and all(c.usage is None for c in chunks)
    devserver.inject(Fault.truncated_sse(after=4))
    with claude.messages.stream(model=CLAUDE, max_tokens=64, messages=MSG) as stream:  # type: ignore[arg-type]
        partial = stream.get_final_message()
    assert partial.stop_reason is None  # message_delta never came
    devserver.inject(Fault.truncated_sse(after=2))
    events = list(oai.responses.create(model="gpt-4.1", input="x", stream=True))
    assert [e.type for e in events] == ["response.created", "response.in_progress"]


def test_garbage_body(oai: openai.OpenAI, devserver: DevServer):
    devserver.inject(Fault.garbage())
    with pytest.raises(json.JSONDecodeError):
        _chat(oai)


def test_slow_delays_the_reply_and_the_events(oai: openai.OpenAI, devserver: DevServer):
    devserver.inject(Fault.slow(0.2))
    started = time.perf_counter()
    _chat(oai)
    assert time.perf_counter() - started >= 0.2
    devserver.inject(Fault.slow(0, per_event=0.02))
    started = time.perf_counter()
    chunks = list(_chat(oai, stream=True))
    assert time.perf_counter() - started >= 0.02 * len(chunks)


def test_timeout_on_a_slow_reply(devserver: DevServer):
    client = openai.OpenAI(
        api_key="test", base_url=devserver.openai_base_url, max_retries=0, timeout=0.1
    )
    devserver.inject(Fault.slow(0.5))
    with pytest.raises(openai.APITimeoutError):
        _chat(client)


def test_a_reply_abandoned_before_reset_does_not_take_the_next_usage(
    oai: openai.OpenAI, devserver: DevServer
):
    impatient = openai.OpenAI(
        api_key="test", base_url=devserver.openai_base_url, max_retries=0, timeout=0.1
    )
    devserver.inject(Fault.slow(0.4))
    with pytest.raises(openai.APITimeoutError):
        _chat(impatient)
    devserver.reset()  # the next test starts; the slow handler is still asleep
    usage = {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}
    devserver.next_usage(usage)
    time.sleep(0.5)  # the abandoned handler wakes up and answers nobody
    assert _chat(oai).usage.model_dump(exclude_none=True) == usage  # type: ignore[union-attr]


def test_faults_queue_in_order_and_per_request_header_leaves_the_queue(
    oai: openai.OpenAI, devserver: DevServer
):
    no_retry = oai.with_options(max_retries=0)
    devserver.inject(Fault.status(500))
    devserver.inject(Fault.status(503))
    with pytest.raises(openai.RateLimitError):
        _chat(no_retry, extra_headers={"x-finops-fault": "429"})
    with pytest.raises(openai.InternalServerError) as first:
        _chat(no_retry)
    with pytest.raises(openai.InternalServerError) as second:
        _chat(no_retry)
    assert (first.value.status_code, second.value.status_code) == (500, 503)
    assert _chat(no_retry).choices
    with pytest.raises(openai.APIConnectionError):
        list(_chat(no_retry, stream=True, extra_headers={"x-finops-fault": "drop_stream:1"}))
    chunks = list(_chat(no_retry, stream=True, extra_headers={"x-finops-fault": "truncated_sse:2"}))
    assert len(chunks) == 2


def test_fault_header_parsing():
    assert Fault.from_header("429") == Fault.status(429, retry_after=0.01)
    assert Fault.from_header("429:2") == Fault.status(429, retry_after=2.0)
    assert Fault.from_header("500").retry_after is None
    assert Fault.from_header("slow:0.5") == Fault.slow(0.5)
    assert Fault.from_header("drop_stream:3") == Fault.drop_stream(3)
    assert Fault.from_header("garbage") == Fault.garbage()
    with pytest.raises(ValueError):
        Fault.from_header("explode")


# -- usage scripting -------------------------------------------------------------------------


def test_next_usage_openai_exact_shape(oai: openai.OpenAI, devserver: DevServer):
    usage = {
        "prompt_tokens": 2000,
        "completion_tokens": 300,
        "total_tokens": 2300,
        "prompt_tokens_details": {"cached_tokens": 1920, "audio_tokens": 40},
        "completion_tokens_details": {"reasoning_tokens": 100, "audio_tokens": 50},
    }
    devserver.next_usage(usage)
    devserver.inject(Fault.status(429, retry_after=0.01))  # a retried error does not eat it
    raw = oai.chat.completions.with_raw_response.create(model="gpt-4o", messages=MSG)
    assert raw.http_response.json()["usage"] == usage
    assert raw.parse().usage.prompt_tokens_details.audio_tokens == 40  # type: ignore[union-attr]
    devserver.next_usage(usage)
    chunks = list(_chat(oai, stream=True, stream_options={"include_usage": True}))
    assert chunks[-1].usage.model_dump(exclude_none=True) == usage  # type: ignore[union-attr]
    assert _chat(oai).usage.prompt_tokens < 2000  # used once only


def test_next_usage_anthropic_iterations_and_server_tools(
    claude: anthropic.Anthropic, devserver: DevServer
):
    usage = {
        "input_tokens": 220,
        "output_tokens": 90,
        "cache_read_input_tokens": 0,
        "cache_creation_input_tokens": 0,
        "server_tool_use": {"web_search_requests": 3},
        "iterations": [
            {"type": "compaction", "input_tokens": 55196, "output_tokens": 1200},
            {"type": "message", "input_tokens": 220, "output_tokens": 90},
        ],
    }
    devserver.next_usage(usage, times=2)
    raw = claude.messages.with_raw_response.create(model=CLAUDE, max_tokens=64, messages=MSG)
    assert raw.http_response.json()["usage"] == usage
    assert raw.parse().usage.server_tool_use.web_search_requests == 3  # type: ignore[union-attr]
    stream = claude.messages.with_raw_response.create(
        model=CLAUDE, max_tokens=64, messages=MSG, stream=True
    )
    frames = [
        json.loads(line[6:])
        for line in stream.http_response.read().decode().splitlines()
        if line.startswith("data: ")
    ]
    [delta] = [f for f in frames if f["type"] == "message_delta"]
    assert delta["usage"]["iterations"] == usage["iterations"]
    assert delta["usage"]["server_tool_use"] == {"web_search_requests": 3}
    assert delta["usage"]["input_tokens"] == 220 and delta["usage"]["output_tokens"] == 90
