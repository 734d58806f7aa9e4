"""Request shapes: OpenAI cookbook examples reproduced exactly, tools, images, responses,
embeddings and Anthropic messages."""

from __future__ import annotations

import base64
import struct
import zlib
from typing import Any

import pytest

from finops.tokens import count_tokens, estimate_request, family_for, openai_image_tokens
from finops.tokens.anthropic import group_for
from finops.tokens.images import anthropic_image_tokens, image_size

# The OpenAI cookbook "How to count tokens with tiktoken" example conversation.
COOKBOOK = [
    {
        "role": "system",
        "content": "You are a helpful, pattern-following assistant that translates corporate "
        "jargon into plain English.",
    },
    {
        "role": "system",
        "name": "example_user",
        "content": "New synergies will help drive top-line growth.",
    },
    {
        "role": "system",
        "name": "example_assistant",
        "content": "Things working well together will increase revenue.",
    },
    {
        "role": "system",
        "name": "example_user",
        "content": "Let's circle back when we have more bandwidth to touch base on "
        "opportunities for increased leverage.",
    },
    {
        "role": "system",
        "name": "example_assistant",
        "content": "Let's talk later when we're less busy about how to do better.",
    },
    {
        "role": "user",
        "content": "This late pivot means we don't have time to boil the ocean for the client "
        "deliverable.",
    },
]
# The cookbook's tool example ("counting tokens for chat completions with tool calls").
WEATHER_TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_current_weather",
            "description": "Get the current weather in a given location",
            "parameters": {
                "type": "object",
                "properties": {
                    "location": {
                        "type": "string",
                        "description": "The city and state, e.g. San Francisco, CA",
                    },
                    "unit": {
                        "type": "string",
                        "description": "The unit of temperature to return",
                        "enum": ["celsius", "fahrenheit"],
                    },
                },
                "required": ["location"],
            },
        },
    }
]
WEATHER_MESSAGES = [
    {
        "role": "system",
        "content": "You are a helpful assistant that can answer to questions about the weather.",
    },
    {"role": "user", "content": "What's the weather like in San Francisco?"},
]


def _chat(model: str, **body: Any) -> Any:
    return estimate_request(
        provider="openai", endpoint="chat.completions", body={"model": model, **body}
    )


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("gpt-3.5-turbo", 129),
        ("gpt-4-0613", 129),
        ("gpt-4", 129),
        ("gpt-4o", 124),
        ("gpt-4o-mini", 124),
        ("gpt-4o-2024-08-06", 124),
    ],
)
def test_cookbook_messages_exact(model: str, expected: int) -> None:
    # The counts the cookbook shows for these models, confirmed by the OpenAI API there.
    assert count_tokens(model=model, messages=COOKBOOK) == expected
    est = _chat(model, messages=COOKBOOK)
    assert est.input_tokens == expected
    assert est.exact and est.error_bound == 0.0


def test_cookbook_estimate_is_exact_and_unflagged() -> None:
    est = _chat("gpt-4o", messages=COOKBOOK, max_tokens=100)
    assert (est.exact, est.error_bound, est.fallback) == (True, 0.0, False)
    assert est.method == "o200k_base:chat.completions" and est.family == "gpt-4o"


def test_name_costs_its_tokens_plus_one() -> None:
    base = [{"role": "user", "content": "Hello there"}]
    named = [{"role": "user", "content": "Hello there", "name": "example_user"}]
    name_tokens = count_tokens(model="gpt-4o", text="example_user")
    assert count_tokens(model="gpt-4o", messages=named) == (
        count_tokens(model="gpt-4o", messages=base) + name_tokens + 1
    )
    # Message overheads: 3 per message + role + content, + 3 priming the reply.
    assert count_tokens(model="gpt-4o", messages=base) == 3 + 1 + 2 + 3


@pytest.mark.parametrize(
    ("model", "expected"),
    [("gpt-3.5-turbo", 105), ("gpt-4", 105), ("gpt-4o", 101), ("gpt-4o-mini", 101)],
)
def test_cookbook_tools_within_bound(model: str, expected: int) -> None:
    est = _chat(model, messages=WEATHER_MESSAGES, tools=WEATHER_TOOLS)
    assert abs(est.input_tokens - expected) <= est.error_bound * expected
    # The cookbook's own figures, within 4% (the constants are fitted on hundreds of recorded
    # calls now, not on these two examples).
    assert abs(est.input_tokens - expected) <= 0.04 * expected
    assert not est.exact and est.error_bound == pytest.approx(0.10)
    assert "tool definitions" in est.notes


def test_tool_calls_and_results_are_counted_without_ids() -> None:
    call_id = "call_1EYWDzueHEp8OsB8jJSEp7WB"
    turn = [
        {"role": "user", "content": "What is 1231 * 2331?"},
        {
            "role": "assistant",
            "tool_calls": [
                {
                    "type": "function",
                    "id": call_id,
                    "function": {"name": "multiply", "arguments": '{"a": 1231, "b": 2331}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": call_id, "content": "2869461"},
    ]
    with_ids = count_tokens(model="gpt-4o", messages=turn)
    turn[2]["tool_call_id"] = "x"
    assert count_tokens(model="gpt-4o", messages=turn) == with_ids  # ids are not model text
    args = count_tokens(model="gpt-4o", text='{"a": 1231, "b": 2331}')
    assert with_ids > 3 + 3 * 3 + args


def test_multipart_content_equals_joined_text() -> None:
    parts = [{"type": "text", "text": "Hello"}, {"type": "text", "text": " world"}]
    as_parts = count_tokens(model="gpt-4o", messages=[{"role": "user", "content": parts}])
    assert as_parts == 3 + 1 + 1 + 1 + 3


def _png(width: int, height: int) -> str:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    rows = b"".join(b"\x00" + b"\x00" * width for _ in range(height))
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(rows))
    return base64.b64encode(png + chunk(b"IEND", b"")).decode()


def test_image_tile_formula_documented_examples() -> None:
    rule = family_for("gpt-4o").image
    assert rule is not None
    # OpenAI's vision guide: 1024×1024 high → 765; 2048×4096 → 1105; low detail → 85.
    assert openai_image_tokens(1024, 1024, rule=rule) == 765
    assert openai_image_tokens(2048, 4096, rule=rule) == 1105
    assert openai_image_tokens(4096, 8192, rule=rule, detail="low") == 85
    patch = family_for("gpt-4.1-mini").image
    assert patch is not None and patch.kind == "patch"
    # The patch example: 1024×1024 → 1024 patches; 1800×2400 → 1452 patches (× multiplier).
    assert openai_image_tokens(1024, 1024, rule=patch) == round(1024 * 1.62 + 0.5)
    assert openai_image_tokens(1800, 2400, rule=patch) == -(-1452 * 162 // 100)


def test_image_in_message_uses_its_real_size() -> None:
    url = "data:image/png;base64," + _png(1024, 1024)
    content = [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": url, "detail": "high"}},
    ]
    est = _chat("gpt-4o", messages=[{"role": "user", "content": content}])
    text_only = count_tokens(
        model="gpt-4o", messages=[{"role": "user", "content": "What is this?"}]
    )
    assert est.input_tokens == text_only + 765
    assert est.exact  # the size was read from the image itself
    remote = [{"type": "image_url", "image_url": {"url": "https://example.invalid/cat.png"}}]
    est = _chat("gpt-4o", messages=[{"role": "user", "content": remote}])
    assert not est.exact and any(n.startswith("image size unknown") for n in est.notes)
    assert est.input_tokens == 3 + 1 + 85 + 170 * 4 + 3  # a typical 1024 x 768 photo
    assert est.input_tokens_max == 3 + 1 + 85 + 170 * 8 + 3  # the worst case of a tile image


def test_image_size_sniffing() -> None:
    assert image_size(_png(166, 282)) == (166, 282)
    gif = base64.b64encode(b"GIF89a" + struct.pack("<HH", 640, 480) + b"\x00" * 20).decode()
    assert image_size("data:image/gif;base64," + gif) == (640, 480)
    jpeg = (
        b"\xff\xd8"
        + b"\xff\xe0"
        + struct.pack(">H", 16)
        + b"JFIF\x00"
        + b"\x00" * 9
        + b"\xff\xc0"
        + struct.pack(">HBHH", 17, 8, 600, 800)
        + b"\x00" * 10
    )
    assert image_size(base64.b64encode(jpeg).decode()) == (800, 600)
    webp = b"RIFF" + b"\x00" * 4 + b"WEBPVP8X" + b"\x00" * 8 + (1919).to_bytes(3, "little")
    webp += (1079).to_bytes(3, "little") + b"\x00" * 4
    assert image_size(base64.b64encode(webp).decode()) == (1920, 1080)
    assert image_size("data:image/png;base64,@@@") is None
    assert image_size("not an image at all") is None


def test_responses_shapes() -> None:
    def resp(**body: Any) -> int:
        return estimate_request(
            provider="openai", endpoint="responses", body={"model": "gpt-5", **body}
        ).input_tokens

    as_chat = count_tokens(model="gpt-5", messages=[{"role": "user", "content": "say hi"}])
    assert resp(input="say hi") == as_chat
    assert resp(input=[{"role": "user", "content": "say hi"}]) == as_chat
    parts = [{"role": "user", "content": [{"type": "input_text", "text": "say hi"}]}]
    assert resp(input=parts) == as_chat
    instr = count_tokens(model="gpt-5", text="Be terse.")
    assert resp(input="say hi", instructions="Be terse.") == as_chat + 3 + 1 + instr
    with_call = resp(
        input=[
            {"role": "user", "content": "say hi"},
            {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "c1", "output": "done"},
        ]
    )
    assert with_call > as_chat + 10
    # The responses API sometimes bills hidden tokens: not exact, bounded.
    mini = count_tokens(model="gpt-4o-mini", messages=[{"role": "user", "content": "say hi"}])
    est = estimate_request(
        provider="openai", endpoint="responses", body={"model": "gpt-4o-mini", "input": "say hi"}
    )
    assert est.input_tokens == mini and not est.exact and est.input_tokens_max >= mini + 16


def test_embeddings_shapes() -> None:
    def emb(value: Any, model: str = "text-embedding-3-small") -> Any:
        return estimate_request(
            provider="openai", endpoint="embeddings", body={"model": model, "input": value}
        )

    one = count_tokens(model="text-embedding-3-small", text="The food was delicious")
    est = emb("The food was delicious")
    assert (est.input_tokens, est.output_tokens_max, est.exact) == (one, 0, True)
    assert est.method == "cl100k_base:embeddings"
    assert emb(["The food was delicious", "hi"]).input_tokens == one + 1
    assert emb([1, 2, 3, 4]).input_tokens == 4
    assert emb([[1, 2], [3, 4, 5]]).input_tokens == 5
    assert (
        count_tokens(model="text-embedding-3-large", input=["a b", "c"], endpoint="embeddings") == 3
    )


def test_anthropic_shapes() -> None:
    def ant(**body: Any) -> Any:
        return estimate_request(
            provider="anthropic",
            endpoint="messages",
            body={"model": "claude-sonnet-4-5", "max_tokens": 1024, **body},
        )

    g = group_for("claude-sonnet-4-5")
    user = [{"role": "user", "content": "Two names for a pet pelican, be brief"}]
    plain = ant(messages=user)
    assert abs(plain.input_tokens - 17) <= 1  # the provider's count on the recorded call
    assert not plain.exact and plain.error_bound == pytest.approx(0.20)
    assert plain.method == "anthropic-calibrated:o200k_base"
    assert plain.input_tokens_max > plain.input_tokens
    n = plain.input_tokens
    blocks = [{"role": "user", "content": [{"type": "text", "text": user[0]["content"]}]}]
    assert ant(messages=blocks).input_tokens == n
    system = ant(messages=user, system="You are terse.")
    sys_blocks = ant(messages=user, system=[{"type": "text", "text": "You are terse."}])
    assert system.input_tokens == sys_blocks.input_tokens > n
    thinking = ant(messages=user, thinking={"type": "enabled", "budget_tokens": 1024})
    assert thinking.input_tokens == n + g.thinking_enabled
    tool = {"name": "t", "description": "d", "input_schema": {"type": "object"}}
    auto = ant(messages=user, tools=[tool]).input_tokens
    forced = ant(messages=user, tools=[tool], tool_choice={"type": "any"}).input_tokens
    assert auto - forced == g.tool_prompt - g.tool_prompt_forced and auto > n + 300
    image = {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": _png(1000, 1000)},
    }
    with_image = ant(messages=[{"role": "user", "content": [image]}])
    assert with_image.input_tokens == g.base + g.per_message + 1334 + g.image_frame
    assert anthropic_image_tokens(1000, 1000) == 1334 + 7
    doc = {
        "type": "document",
        "source": {"type": "text", "media_type": "text/plain", "data": "Hello document"},
    }
    assert ant(messages=[{"role": "user", "content": [doc]}]).input_tokens > 7
    budget = ant(messages=user, output_config={"task_budget": {"type": "tokens", "total": 2000}})
    assert budget.input_tokens == n + g.task_budget
    assert budget.input_tokens_max >= n + 2 * g.task_budget
    assert abs(count_tokens(model="claude-haiku-4-5", messages=user) - 17) <= 1
