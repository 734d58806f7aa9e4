"""The real ``openai`` SDK against the local server: chat, responses, embeddings, models."""

from __future__ import annotations

import base64
import struct

import openai
import pytest

from finops.devserver import DevServer

MSG = [{"role": "user", "content": "How do I keep LLM spend under control?"}]
LONG_SYSTEM = {"role": "system", "content": "Policy clause about refunds and budgets. " * 400}


# -- chat ------------------------------------------------------------------------------------


def test_chat_json_is_deterministic_with_consistent_usage(oai: openai.OpenAI):
    first = oai.chat.completions.create(model="gpt-4o", messages=MSG)
    second = oai.chat.completions.create(model="gpt-4o", messages=MSG)
    other = oai.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    assert first.model == "gpt-4o-2024-08-06"
    assert first.id == second.id and first.choices[0].message.content
    assert first.choices[0].message.content == second.choices[0].message.content
    assert other.choices[0].message.content != first.choices[0].message.content
    u = first.usage
    assert u is not None and u.prompt_tokens > 0 and u.completion_tokens > 0
    assert u.total_tokens == u.prompt_tokens + u.completion_tokens
    # Visible output tokens are the reply's words.
    assert u.completion_tokens == len(first.choices[0].message.content.split())
    assert first.choices[0].finish_reason == "stop"


def test_unknown_model_is_echoed(oai: openai.OpenAI):
    reply = oai.chat.completions.create(model="my-local-llama", messages=MSG)
    assert reply.model == "my-local-llama"


def test_chat_stream_without_include_usage_has_no_usage_chunk(oai: openai.OpenAI):
    want = oai.chat.completions.create(model="gpt-4o-mini", messages=MSG)
    chunks = list(oai.chat.completions.create(model="gpt-4o-mini", messages=MSG, stream=True))
    assert all(c.usage is None and c.choices for c in chunks)
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert text == want.choices[0].message.content
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert chunks[0].model == "gpt-4o-mini-2024-07-18"


def test_chat_stream_include_usage_ends_with_a_usage_chunk(oai: openai.OpenAI):
    want = oai.chat.completions.create(model="gpt-4o-mini", messages=MSG)
    chunks = list(
        oai.chat.completions.create(
            model="gpt-4o-mini",
            messages=MSG,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    *body, last = chunks
    assert last.choices == [] and last.usage == want.usage
    assert all(c.usage is None and c.choices for c in body)


async def test_chat_async_json_and_stream(aoai: openai.AsyncOpenAI):
    reply = await aoai.chat.completions.create(model="gpt-4o", messages=MSG)
    stream = await aoai.chat.completions.create(
        model="gpt-4o", messages=MSG, stream=True, stream_options={"include_usage": True}
    )
    chunks = [c async for c in stream]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == (
        reply.choices[0].message.content
    )
    assert chunks[-1].usage == reply.usage


def test_max_tokens_caps_the_reply_and_the_reported_output(oai: openai.OpenAI):
    reply = oai.chat.completions.create(model="gpt-4o", messages=MSG, max_tokens=3)
    assert reply.usage is not None and reply.usage.completion_tokens == 3
    assert reply.choices[0].finish_reason == "length"
    reasoning = oai.chat.completions.create(model="o3-mini", messages=MSG, max_completion_tokens=20)
    assert reasoning.usage is not None and reasoning.usage.completion_tokens <= 20


def test_reasoning_tokens_are_included_in_completion_tokens(oai: openai.OpenAI):
    plain = oai.chat.completions.create(model="gpt-4o", messages=MSG).usage
    assert plain is not None and plain.completion_tokens_details is not None
    assert plain.completion_tokens_details.reasoning_tokens == 0
    for model in ("o1", "o3-mini", "o4-mini", "gpt-5", "gpt-5-mini"):
        reply = oai.chat.completions.create(model=model, messages=MSG)
        u = reply.usage
        assert u is not None and u.completion_tokens_details is not None
        reasoning = u.completion_tokens_details.reasoning_tokens or 0
        assert reasoning > 0
        visible = len((reply.choices[0].message.content or "").split())
        assert u.completion_tokens == visible + reasoning
    low = oai.chat.completions.create(model="o3-mini", messages=MSG, reasoning_effort="low")
    high = oai.chat.completions.create(model="o3-mini", messages=MSG, reasoning_effort="high")
    assert low.usage and high.usage and low.usage.completion_tokens_details
    assert high.usage.completion_tokens_details
    assert (
        low.usage.completion_tokens_details.reasoning_tokens
        < high.usage.completion_tokens_details.reasoning_tokens  # type: ignore[operator]
    )


def _cached(reply: object) -> int:
    usage = reply.usage  # type: ignore[attr-defined]
    return int(usage.prompt_tokens_details.cached_tokens)


def test_prompt_cache_reports_included_cached_tokens_for_a_reused_prefix(oai: openai.OpenAI):
    long = [LONG_SYSTEM, *MSG]
    first = oai.chat.completions.create(model="gpt-4o", messages=long)
    again = oai.chat.completions.create(model="gpt-4o", messages=long)
    assert _cached(first) == 0
    assert first.usage and again.usage and again.usage.prompt_tokens == first.usage.prompt_tokens
    cached = _cached(again)
    assert 1024 <= cached <= again.usage.prompt_tokens and (cached - 1024) % 128 == 0
    assert again.usage.prompt_tokens - cached < 128 + 20  # nearly all of it
    # Same long system prompt, new question: the system prefix is cached.
    follow = oai.chat.completions.create(
        model="gpt-4o", messages=[LONG_SYSTEM, {"role": "user", "content": "And refunds?"}]
    )
    assert 1024 <= _cached(follow) <= cached
    # Another model has its own cache; short prompts are never cached.
    assert _cached(oai.chat.completions.create(model="gpt-4o-mini", messages=long)) == 0
    oai.chat.completions.create(model="gpt-4o", messages=MSG)
    assert _cached(oai.chat.completions.create(model="gpt-4o", messages=MSG)) == 0


def test_reset_forgets_the_prompt_cache(oai: openai.OpenAI, devserver: DevServer):
    long = [LONG_SYSTEM, *MSG]
    oai.chat.completions.create(model="gpt-4o", messages=long)
    devserver.reset()
    assert _cached(oai.chat.completions.create(model="gpt-4o", messages=long)) == 0


def test_chat_with_raw_response_has_headers_and_parses(oai: openai.OpenAI):
    raw = oai.chat.completions.with_raw_response.create(model="gpt-4o", messages=MSG)
    assert raw.status_code == 200 and raw.headers["x-request-id"].startswith("req_")
    assert raw.parse().choices[0].message.content


def test_stream_with_raw_response(oai: openai.OpenAI):
    raw = oai.chat.completions.with_raw_response.create(model="gpt-4o", messages=MSG, stream=True)
    assert raw.headers["content-type"].startswith("text/event-stream")
    assert [c.choices[0].finish_reason for c in raw.parse()][-1] == "stop"


def test_missing_field_is_a_400_in_openai_shape(oai: openai.OpenAI):
    with pytest.raises(openai.BadRequestError) as info:
        oai.post("/chat/completions", body={"model": "gpt-4o"}, cast_to=object)
    assert info.value.status_code == 400
    assert info.value.body["type"] == "invalid_request_error"  # type: ignore[index]


def test_models_list(oai: openai.OpenAI):
    ids = [m.id for m in oai.models.list()]
    assert "gpt-4o" in ids and "claude-sonnet-4-5" in ids


# -- responses -------------------------------------------------------------------------------

_EVENT_ORDER = [
    "response.created",
    "response.in_progress",
    "response.output_item.added",
    "response.content_part.added",
    "response.output_text.delta",
    "response.output_text.done",
    "response.content_part.done",
    "response.output_item.done",
    "response.completed",
]


def test_responses_json(oai: openai.OpenAI):
    r = oai.responses.create(
        model="gpt-4.1-mini", input="Summarize finops.", instructions="Be brief"
    )
    assert r.model == "gpt-4.1-mini-2025-04-14" and r.status == "completed"
    assert r.output_text and r.usage is not None
    assert r.usage.total_tokens == r.usage.input_tokens + r.usage.output_tokens
    assert r.usage.output_tokens == len(r.output_text.split())
    assert r.usage.output_tokens_details.reasoning_tokens == 0


def test_responses_stream_event_sequence_and_usage(oai: openai.OpenAI):
    want = oai.responses.create(model="gpt-4.1-mini", input="hello")
    events = list(oai.responses.create(model="gpt-4.1-mini", input="hello", stream=True))
    kinds = [e.type for e in events]
    collapsed = [k for i, k in enumerate(kinds) if i == 0 or k != kinds[i - 1]]
    assert collapsed == _EVENT_ORDER
    assert [e.sequence_number for e in events] == list(range(len(events)))
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert deltas == want.output_text
    final = events[-1]
    assert final.type == "response.completed" and final.response.usage == want.usage


def test_responses_stream_helper(oai: openai.OpenAI):
    with oai.responses.stream(model="gpt-4.1-mini", input=[{"role": "user", "content": "hi"}]) as s:
        text = "".join(e.delta for e in s if e.type == "response.output_text.delta")
        final = s.get_final_response()
    assert final.output_text == text and final.usage is not None


async def test_responses_async_stream(aoai: openai.AsyncOpenAI):
    stream = await aoai.responses.create(model="gpt-4.1", input="hello", stream=True)
    events = [e async for e in stream]
    assert events[-1].type == "response.completed"


def test_responses_reasoning_model_has_a_reasoning_item(oai: openai.OpenAI):
    r = oai.responses.create(model="o4-mini", input="think", reasoning={"effort": "medium"})
    assert [o.type for o in r.output] == ["reasoning", "message"]
    assert r.usage is not None
    reasoning = r.usage.output_tokens_details.reasoning_tokens
    assert reasoning > 0 and r.usage.output_tokens == reasoning + len(r.output_text.split())
    events = list(oai.responses.create(model="o4-mini", input="think", stream=True))
    assert events[-1].type == "response.completed"
    assert events[-1].response.output[0].type == "reasoning"


def test_responses_max_output_tokens_gives_incomplete(oai: openai.OpenAI):
    r = oai.responses.create(model="gpt-4.1", input="hello", max_output_tokens=2)
    assert r.status == "incomplete" and r.incomplete_details is not None
    assert r.incomplete_details.reason == "max_output_tokens"
    assert r.usage is not None and r.usage.output_tokens == 2
    events = list(
        oai.responses.create(model="gpt-4.1", input="hello", max_output_tokens=2, stream=True)
    )
    assert events[-1].type == "response.incomplete"


def test_responses_prompt_cache(oai: openai.OpenAI):
    long = "Context paragraph on metering and pricing. " * 400
    first = oai.responses.create(model="gpt-4.1", instructions=long, input="q1")
    second = oai.responses.create(model="gpt-4.1", instructions=long, input="q2")
    assert first.usage and second.usage
    assert first.usage.input_tokens_details.cached_tokens == 0
    cached = second.usage.input_tokens_details.cached_tokens
    assert 1024 <= cached <= second.usage.input_tokens


# -- embeddings ------------------------------------------------------------------------------


def test_embeddings_float_base64_and_sdk_default_agree(oai: openai.OpenAI, devserver: DevServer):
    floats = oai.embeddings.create(
        model="text-embedding-3-small", input=["a", "b"], encoding_format="float"
    )
    assert [d.index for d in floats.data] == [0, 1]
    assert floats.usage.prompt_tokens == floats.usage.total_tokens == 2
    # The SDK asks for base64 by default and decodes it itself.
    default = oai.embeddings.create(model="text-embedding-3-small", input=["a", "b"])
    assert devserver.requests[-1].body["encoding_format"] == "base64"
    assert [d.embedding for d in default.data] == [d.embedding for d in floats.data]
    raw = oai.embeddings.with_raw_response.create(
        model="text-embedding-3-small", input="a", encoding_format="base64"
    )
    encoded = raw.http_response.json()["data"][0]["embedding"]
    decoded = list(struct.unpack("<8f", base64.b64decode(encoded)))
    assert decoded == floats.data[0].embedding


def test_embeddings_dimensions_and_token_input(oai: openai.OpenAI):
    r = oai.embeddings.create(model="text-embedding-3-large", input="hello", dimensions=256)
    assert len(r.data[0].embedding) == 256
    tokens = oai.embeddings.create(model="text-embedding-3-small", input=[1, 2, 3, 4])
    assert len(tokens.data) == 1 and tokens.usage.prompt_tokens == 4
