"""The real ``anthropic`` SDK against the local server: messages JSON, SSE, stream helper."""

from __future__ import annotations

from typing import Any

import anthropic
import pytest

MODEL = "claude-haiku-4-5"
MSG = [{"role": "user", "content": "Name two ways to cut LLM costs."}]
RULES = "Rule: answer briefly, cite the ledger, never guess a price. " * 120  # ~1.8k tokens


def _create(client: anthropic.Anthropic, **kw: Any) -> Any:
    return client.messages.create(**{"model": MODEL, "max_tokens": 256, "messages": MSG, **kw})


def test_messages_json(claude: anthropic.Anthropic):
    first = _create(claude)
    again = _create(claude)
    assert first.model == "claude-haiku-4-5-20251001" and first.id == again.id
    assert first.content[0].type == "text" and first.content[0].text == again.content[0].text
    assert first.stop_reason == "end_turn"
    u = first.usage
    assert u.input_tokens > 0 and u.output_tokens == len(first.content[0].text.split())
    assert u.cache_read_input_tokens == 0 and u.cache_creation_input_tokens == 0


def test_max_tokens_caps_the_reply(claude: anthropic.Anthropic):
    reply = _create(claude, max_tokens=2)
    assert reply.stop_reason == "max_tokens" and reply.usage.output_tokens == 2


def test_raw_sse_event_sequence(claude: anthropic.Anthropic):
    want = _create(claude)
    events = list(_create(claude, stream=True))
    kinds = [e.type for e in events]  # the SDK drops pings
    assert kinds[:2] == ["message_start", "content_block_start"]
    assert kinds[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert set(kinds[2:-3]) == {"content_block_delta"}
    raw = claude.messages.with_raw_response.create(
        model=MODEL, max_tokens=256, messages=MSG, stream=True
    )
    names = [
        line.split(": ", 1)[1]
        for line in raw.http_response.read().decode().splitlines()
        if line.startswith("event: ")
    ]
    assert names[:3] == ["message_start", "content_block_start", "ping"]
    assert [n for n in names if n != "ping"] == kinds
    text = "".join(e.delta.text for e in events if e.type == "content_block_delta")
    assert text == want.content[0].text
    start, delta = events[0], events[-2]
    assert start.message.usage.output_tokens == 1
    assert delta.usage.output_tokens == want.usage.output_tokens
    assert delta.delta.stop_reason == "end_turn"


def test_stream_helper_final_message_equals_json(claude: anthropic.Anthropic):
    want = _create(claude)
    with claude.messages.stream(model=MODEL, max_tokens=256, messages=MSG) as stream:
        texts = list(stream.text_stream)
        final = stream.get_final_message()
    assert "".join(texts) == want.content[0].text == final.content[0].text
    assert final.usage == want.usage and final.stop_reason == "end_turn"
    with claude.messages.stream(model=MODEL, max_tokens=256, messages=MSG) as stream:
        assert stream.get_final_text() == want.content[0].text


async def test_async_json_and_stream_helper(aclaude: anthropic.AsyncAnthropic):
    want = await aclaude.messages.create(model=MODEL, max_tokens=256, messages=MSG)
    async with aclaude.messages.stream(model=MODEL, max_tokens=256, messages=MSG) as stream:
        final = await stream.get_final_message()
    assert final.content[0].text == want.content[0].text and final.usage == want.usage
    raw = await aclaude.messages.create(model=MODEL, max_tokens=256, messages=MSG, stream=True)
    kinds = [e.type async for e in raw]
    assert kinds[-1] == "message_stop"


def test_about_a_third_of_streams_update_input_counts_in_message_delta(
    claude: anthropic.Anthropic,
):
    updated = 0
    n = 60
    for i in range(n):
        messages = [{"role": "user", "content": f"question number {i}"}]
        events = list(_create(claude, messages=messages, stream=True))
        start, delta = events[0].message.usage, events[-2].usage
        if delta.input_tokens is not None:
            updated += 1
            assert delta.input_tokens >= start.input_tokens
        with claude.messages.stream(model=MODEL, max_tokens=256, messages=messages) as s:
            final = s.get_final_message().usage
        # The stream helper takes the latest counts: they equal the non-streamed reply's.
        assert final == _create(claude, messages=messages).usage
    assert 0.15 * n <= updated <= 0.55 * n


def test_thinking_blocks_count_in_output_tokens(claude: anthropic.Anthropic):
    thinking = {"type": "enabled", "budget_tokens": 2048}
    reply = _create(claude, max_tokens=4096, thinking=thinking)
    assert [b.type for b in reply.content] == ["thinking", "text"]
    thought, text = reply.content[0].thinking, reply.content[1].text
    assert thought and reply.content[0].signature
    visible = len(text.split())
    assert reply.usage.output_tokens == visible + len(thought.split())
    assert reply.usage.output_tokens_details is not None
    assert reply.usage.output_tokens_details.thinking_tokens == len(thought.split())
    events = list(_create(claude, max_tokens=4096, thinking=thinking, stream=True))
    delta_kinds = [e.delta.type for e in events if e.type == "content_block_delta"]
    assert delta_kinds[0] == "thinking_delta" and "signature_delta" in delta_kinds
    assert delta_kinds[-1] == "text_delta"
    with claude.messages.stream(
        model=MODEL, max_tokens=4096, messages=MSG, thinking=thinking
    ) as stream:
        final = stream.get_final_message()
    assert final.content[0].thinking == thought and final.usage == reply.usage


def _system(ttl: str | None = None) -> list[dict[str, Any]]:
    control: dict[str, Any] = {"type": "ephemeral"}
    if ttl:
        control["ttl"] = ttl
    return [{"type": "text", "text": RULES, "cache_control": control}]


def test_cache_write_then_read_additive_to_input(claude: anthropic.Anthropic):
    total = claude.messages.count_tokens(model=MODEL, system=_system(), messages=MSG).input_tokens
    first = _create(claude, system=_system()).usage
    second = _create(claude, system=_system(), messages=[{"role": "user", "content": "Other?"}])
    assert first.cache_creation_input_tokens and first.cache_creation_input_tokens >= 1024
    assert first.cache_creation is not None
    assert first.cache_creation.ephemeral_5m_input_tokens == first.cache_creation_input_tokens
    assert first.cache_creation.ephemeral_1h_input_tokens == 0
    assert first.cache_read_input_tokens == 0
    # Additive: the three parts add up to the whole prompt.
    assert first.input_tokens + first.cache_creation_input_tokens == total
    u = second.usage
    assert u.cache_read_input_tokens == first.cache_creation_input_tokens
    assert u.cache_creation_input_tokens == 0 and u.input_tokens < 50


def test_cache_ttl_1h(claude: anthropic.Anthropic):
    u = _create(claude, system=_system("1h")).usage
    assert u.cache_creation is not None
    assert u.cache_creation.ephemeral_1h_input_tokens == u.cache_creation_input_tokens > 0
    assert u.cache_creation.ephemeral_5m_input_tokens == 0


def test_moving_breakpoint_reads_old_prefix_and_writes_the_new_part(claude: anthropic.Anthropic):
    turn1 = [
        {
            "role": "user",
            "content": [{"type": "text", "text": RULES, "cache_control": {"type": "ephemeral"}}],
        }
    ]
    first = _create(claude, messages=turn1).usage
    turn2 = [
        {"role": "user", "content": [{"type": "text", "text": RULES}]},
        {"role": "assistant", "content": "Noted."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Now a question.", "cache_control": {"type": "ephemeral"}}
            ],
        },
    ]
    second = _create(claude, messages=turn2).usage
    assert first.cache_creation_input_tokens > 0
    assert second.cache_read_input_tokens == first.cache_creation_input_tokens
    assert 0 < second.cache_creation_input_tokens < 30


def test_short_prefix_is_not_cached(claude: anthropic.Anthropic):
    system = [{"type": "text", "text": "short", "cache_control": {"type": "ephemeral"}}]
    for _ in range(2):
        u = _create(claude, system=system).usage
        assert u.cache_creation_input_tokens == 0 and u.cache_read_input_tokens == 0


def test_with_raw_response_and_missing_field(claude: anthropic.Anthropic):
    raw = claude.messages.with_raw_response.create(model=MODEL, max_tokens=64, messages=MSG)
    assert raw.headers["request-id"].startswith("req_")
    assert raw.parse().content[0].text
    with pytest.raises(anthropic.BadRequestError) as info:
        claude.post("/v1/messages", body={"model": MODEL, "messages": MSG}, cast_to=object)
    assert info.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]
