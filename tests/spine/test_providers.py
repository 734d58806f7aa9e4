"""Usage normalization: every provider shape lands in disjoint components, no double counting."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from finops.providers import classify
from finops.providers.anthropic import MessagesAdapter
from finops.providers.anthropic import normalize_usage as anthropic_usage
from finops.providers.openai import ChatAdapter, ResponsesAdapter
from finops.providers.openai import normalize_usage as openai_usage

FIXTURES = Path(__file__).parent.parent / "fixtures"


def sse(*events: tuple[str | None, dict]) -> list[bytes]:
    out = []
    for name, data in events:
        head = f"event: {name}\n" if name else ""
        out.append(f"{head}data: {json.dumps(data)}".encode())
    return out


def test_openai_cached_tokens_are_included_in_prompt_tokens_not_added():
    u = openai_usage(
        {
            "prompt_tokens": 2006,
            "completion_tokens": 300,
            "total_tokens": 2306,
            "prompt_tokens_details": {"cached_tokens": 1920, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 256, "audio_tokens": 0},
        }
    )
    assert (u.input_tokens, u.cache_read_tokens) == (86, 1920)
    assert (u.output_tokens, u.reasoning_tokens) == (44, 256)
    assert u.total_input_tokens == 2006 and u.total_output_tokens == 300
    assert u.mismatch is None


def test_openai_audio_tokens_split_out_of_text():
    u = openai_usage(
        {
            "prompt_tokens": 100,
            "completion_tokens": 80,
            "total_tokens": 180,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 60},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 50},
        }
    )
    assert (u.input_tokens, u.input_audio_tokens, u.output_tokens, u.output_audio_tokens) == (
        40,
        60,
        30,
        50,
    )


def test_openai_inconsistent_numbers_are_flagged_not_fixed():
    u = openai_usage(
        {
            "prompt_tokens": 10,
            "completion_tokens": 5,
            "total_tokens": 99,
            "prompt_tokens_details": {"cached_tokens": 50},
        }
    )
    assert u.mismatch is not None and "total_tokens" in u.mismatch and "input" in u.mismatch
    assert u.input_tokens == 0 and u.cache_read_tokens == 50


def test_responses_api_usage_and_builtin_tool_calls():
    parsed = ResponsesAdapter().parse_json(
        {
            "model": "gpt-4.1-2025-04-14",
            "output": [
                {"type": "web_search_call", "id": "ws_1", "status": "completed"},
                {"type": "web_search_call", "id": "ws_2", "status": "completed"},
                {"type": "message", "content": [{"type": "output_text", "text": "hello"}]},
            ],
            "usage": {
                "input_tokens": 120,
                "input_tokens_details": {"cached_tokens": 100},
                "output_tokens": 30,
                "output_tokens_details": {"reasoning_tokens": 10},
                "total_tokens": 150,
            },
        }
    )
    u = parsed.usage
    assert u is not None
    assert (u.input_tokens, u.cache_read_tokens, u.output_tokens, u.reasoning_tokens) == (
        20,
        100,
        20,
        10,
    )
    assert dict(u.server_tool_requests) == {"web_search": 2}
    assert parsed.output_text == "hello" and parsed.served_model == "gpt-4.1-2025-04-14"


def test_anthropic_cache_fields_are_additive_and_ttls_split():
    u = anthropic_usage(
        {
            "input_tokens": 50,
            "cache_read_input_tokens": 1000,
            "cache_creation_input_tokens": 300,
            "cache_creation": {"ephemeral_5m_input_tokens": 100, "ephemeral_1h_input_tokens": 200},
            "output_tokens": 70,
        }
    )
    assert (
        u.input_tokens,
        u.cache_read_tokens,
        u.cache_write_5m_tokens,
        u.cache_write_1h_tokens,
    ) == (
        50,
        1000,
        100,
        200,
    )
    assert u.total_input_tokens == 1350 and u.mismatch is None


def test_anthropic_bad_cache_split_is_flagged():
    u = anthropic_usage(
        {
            "input_tokens": 1,
            "cache_creation_input_tokens": 300,
            "cache_creation": {"ephemeral_5m_input_tokens": 100, "ephemeral_1h_input_tokens": 100},
            "output_tokens": 1,
        }
    )
    assert u.mismatch and "cache_creation" in u.mismatch


def test_anthropic_iterations_bill_compaction_and_advisor_steps_on_top():
    u = anthropic_usage(
        {
            "input_tokens": 220,
            "output_tokens": 80,
            "server_tool_use": {"web_search_requests": 3},
            "iterations": [
                {"type": "compaction", "input_tokens": 55196, "output_tokens": 1200},
                {
                    "type": "advisor_message",
                    "model": "claude-opus-4-1",
                    "input_tokens": 900,
                    "output_tokens": 150,
                },
                {"type": "message", "input_tokens": 220, "output_tokens": 80},
            ],
        },
        model="claude-sonnet-4-5-20250929",
    )
    assert u.input_tokens == 220 and u.mismatch is None
    assert [(s.kind, s.model, s.usage.input_tokens) for s in u.steps] == [
        ("compaction", "claude-sonnet-4-5-20250929", 55196),
        ("advisor_message", "claude-opus-4-1", 900),
    ]
    assert dict(u.server_tool_requests) == {"web_search": 3}


def test_anthropic_thinking_tokens_reported_as_reasoning():
    u = anthropic_usage(
        {"input_tokens": 598, "output_tokens": 92, "output_tokens_details": {"thinking_tokens": 53}}
    )
    assert (u.output_tokens, u.reasoning_tokens, u.total_output_tokens) == (39, 53, 92)


@pytest.mark.parametrize("line", (FIXTURES / "anthropic_recorded.jsonl").read_text().splitlines())
def test_recorded_anthropic_streams_take_the_latest_message_delta(line):
    rec = json.loads(line)
    start, delta = rec["usage"]["message_start"], rec["usage"]["message_delta"]
    watcher = MessagesAdapter().stream_watcher(strip_usage_chunk=False)
    for block in sse(
        (
            "message_start",
            {"type": "message_start", "message": {"model": rec["response_model"], "usage": start}},
        ),
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": "x"},
            },
        ),
        ("message_delta", {"type": "message_delta", "delta": {}, "usage": delta}),
        ("message_stop", {"type": "message_stop"}),
    ):
        assert watcher.on_event(block) is True
    parsed = watcher.result()
    assert parsed.complete and parsed.served_model == rec["response_model"]
    u = parsed.usage
    assert u is not None
    assert u.input_tokens == delta.get("input_tokens", start["input_tokens"])
    assert u.total_output_tokens == delta["output_tokens"]
    web = delta.get("server_tool_use", {}).get("web_search_requests", 0)
    assert dict(u.server_tool_requests) == ({"web_search": web} if web else {})


@pytest.mark.parametrize("line", (FIXTURES / "openai_recorded.jsonl").read_text().splitlines())
def test_recorded_openai_usage_components_add_up(line):
    rec = json.loads(line)
    raw = rec["usage"]
    responses = rec["endpoint"] == "/responses"
    u = openai_usage(raw, responses_api=responses)
    total_in = raw["input_tokens" if responses else "prompt_tokens"]
    total_out = raw["output_tokens" if responses else "completion_tokens"]
    assert u.total_input_tokens == total_in
    assert u.total_output_tokens == total_out
    assert u.mismatch is None


def test_chat_stream_strips_only_the_injected_usage_chunk():
    watcher = ChatAdapter().stream_watcher(strip_usage_chunk=True)
    blocks = [
        *sse(
            (
                None,
                {
                    "model": "gpt-4o-2024-08-06",
                    "choices": [{"delta": {"content": "a"}}],
                    "usage": None,
                },
            ),
            (
                None,
                {
                    "model": "gpt-4o-2024-08-06",
                    "choices": [],
                    "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6},
                },
            ),
        ),
        b"data: [DONE]",
    ]
    kept = [watcher.on_event(b) for b in blocks]
    assert kept == [True, False, True]
    parsed = watcher.result()
    assert parsed.complete and parsed.usage is not None and parsed.usage.input_tokens == 5


def test_chat_stream_without_usage_recovers_the_produced_text():
    watcher = ChatAdapter().stream_watcher(strip_usage_chunk=True)
    for block in sse(
        (None, {"model": "m", "choices": [{"delta": {"content": "Hello "}}], "usage": None}),
        (None, {"model": "m", "choices": [{"delta": {"content": "world"}}], "usage": None}),
    ):
        watcher.on_event(block)
    parsed = watcher.result()
    assert not parsed.complete and parsed.usage is None and parsed.output_text == "Hello world"


@pytest.mark.parametrize(
    ("path", "endpoint"),
    [
        ("/v1/chat/completions", "chat.completions"),
        ("/openai/deployments/x/chat/completions", "chat.completions"),
        ("/v1/responses", "responses"),
        ("/v1/embeddings", "embeddings"),
        ("/v1/messages", "messages"),
        ("/v1/messages/count_tokens", None),
        ("/v1/models", None),
    ],
)
def test_classify(path, endpoint):
    assert classify(path) == endpoint
