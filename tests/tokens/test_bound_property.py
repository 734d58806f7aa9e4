"""Property: on any generated request, the bound never falls below the estimate's upper end.

Generated requests mix text (any Unicode), system prompts, multi-turn history, tool
definitions with random schemas, tool calls and results, images by URL and inline,
audio, PDFs, thinking, task budgets, structured output and server tools. For each:
``estimate <= input_tokens_max <= mode="bound"``, the media finops cannot see are bounded
by their documented maxima, and adding a part to a request never lowers its bound.
"""

from __future__ import annotations

import base64
import struct
import zlib
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from finops.tokens import estimate_request
from finops.tokens.images import ANTHROPIC_IMAGE_MAX

TEXT = st.text(max_size=200)
NAME = st.from_regex(r"[a-z][a-z0-9_]{0,15}", fullmatch=True)


def _png(width: int, height: int) -> str:
    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    raw = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")
    return base64.b64encode(raw).decode()


SCHEMA_TYPES = st.sampled_from(["string", "integer", "number", "boolean"])


@st.composite
def schema(draw: Any) -> dict[str, Any]:
    props = draw(st.dictionaries(NAME, st.fixed_dictionaries({"type": SCHEMA_TYPES}), max_size=5))
    for value in props.values():
        if draw(st.booleans()):
            value["description"] = draw(TEXT)
        if value["type"] == "string" and draw(st.booleans()):
            value["enum"] = draw(st.lists(NAME, min_size=1, max_size=4))
    out: dict[str, Any] = {"type": "object", "properties": props}
    if props and draw(st.booleans()):
        out["required"] = sorted(props)[:1]
    return out


@st.composite
def openai_part(draw: Any) -> Any:
    kind = draw(st.sampled_from(["text", "image_url", "image_data", "audio", "file"]))
    if kind == "text":
        return {"type": "text", "text": draw(TEXT)}
    if kind == "image_url":
        detail = draw(st.sampled_from(["auto", "low", "high"]))
        return {
            "type": "image_url",
            "image_url": {"url": "https://example.invalid/x.png", "detail": detail},
        }
    if kind == "image_data":
        w, h = draw(st.integers(1, 5000)), draw(st.integers(1, 5000))
        return {"type": "image_url", "image_url": {"url": "data:image/png;base64," + _png(w, h)}}
    if kind == "audio":
        data = base64.b64encode(b"\x00" * draw(st.integers(0, 20000))).decode()
        return {"type": "input_audio", "input_audio": {"data": data, "format": "mp3"}}
    return {"type": "file", "file": {"file_id": "file-abc"}}


@st.composite
def openai_chat(draw: Any) -> dict[str, Any]:
    model = draw(
        st.sampled_from(
            ["gpt-4o", "gpt-4o-mini", "gpt-4.1-nano", "gpt-5", "o3-mini", "gpt-3.5-turbo", "acme-1"]
        )
    )
    messages: list[dict[str, Any]] = []
    if draw(st.booleans()):
        messages.append({"role": "system", "content": draw(TEXT)})
    for _ in range(draw(st.integers(1, 4))):
        content: Any = (
            draw(TEXT) if draw(st.booleans()) else draw(st.lists(openai_part(), max_size=3))
        )
        messages.append({"role": "user", "content": content})
        if draw(st.booleans()):
            call = {
                "id": "c1",
                "type": "function",
                "function": {"name": draw(NAME), "arguments": draw(TEXT)},
            }
            messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
            messages.append({"role": "tool", "tool_call_id": "c1", "content": draw(TEXT)})
    body: dict[str, Any] = {"model": model, "messages": messages}
    if draw(st.booleans()):
        body["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": draw(NAME),
                    "description": draw(TEXT),
                    "parameters": draw(schema()),
                },
            }
            for _ in range(draw(st.integers(1, 3)))
        ]
    if draw(st.booleans()):
        body["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "out", "schema": draw(schema())},
        }
    if draw(st.booleans()):
        body["web_search_options"] = {}
    return body


@st.composite
def anthropic_block(draw: Any) -> Any:
    kind = draw(st.sampled_from(["text", "image_url", "image_data", "pdf", "redacted"]))
    if kind == "text":
        return {"type": "text", "text": draw(TEXT)}
    if kind == "image_url":
        return {"type": "image", "source": {"type": "url", "url": "https://example.invalid/x.png"}}
    if kind == "image_data":
        w, h = draw(st.integers(1, 8000)), draw(st.integers(1, 8000))
        return {
            "type": "image",
            "source": {"type": "base64", "media_type": "image/png", "data": _png(w, h)},
        }
    if kind == "pdf":
        return {
            "type": "document",
            "source": {"type": "url", "url": "https://example.invalid/x.pdf"},
        }
    return {"type": "text", "text": draw(TEXT)}


@st.composite
def anthropic_messages(draw: Any) -> dict[str, Any]:
    model = draw(
        st.sampled_from(
            [
                "claude-3-5-haiku-20241022",
                "claude-sonnet-4-5",
                "claude-opus-4-6",
                "claude-opus-4-7",
                "claude-haiku-4-5",
            ]
        )
    )
    messages: list[dict[str, Any]] = []
    for _ in range(draw(st.integers(1, 3))):
        content: Any = (
            draw(TEXT)
            if draw(st.booleans())
            else draw(st.lists(anthropic_block(), min_size=1, max_size=3))
        )
        messages.append({"role": "user", "content": content})
        if draw(st.booleans()):
            blocks: list[Any] = [{"type": "text", "text": draw(TEXT)}]
            if draw(st.booleans()):
                blocks.insert(0, {"type": "thinking", "thinking": draw(TEXT), "signature": "x"})
            if draw(st.booleans()):
                blocks.insert(
                    0,
                    {
                        "type": "redacted_thinking",
                        "data": draw(st.text("abcdef0123", max_size=400)),
                    },
                )
            blocks.append(
                {"type": "tool_use", "id": "t1", "name": draw(NAME), "input": {"q": draw(TEXT)}}
            )
            messages.append({"role": "assistant", "content": blocks})
            messages.append(
                {
                    "role": "user",
                    "content": [
                        {"type": "tool_result", "tool_use_id": "t1", "content": draw(TEXT)}
                    ],
                }
            )
    body: dict[str, Any] = {"model": model, "max_tokens": 1024, "messages": messages}
    if draw(st.booleans()):
        body["system"] = draw(TEXT)
    if draw(st.booleans()):
        body["tools"] = [
            {"name": draw(NAME), "description": draw(TEXT), "input_schema": draw(schema())}
            for _ in range(draw(st.integers(1, 3)))
        ]
        body["tool_choice"] = {"type": draw(st.sampled_from(["auto", "any", "none"]))}
    if draw(st.booleans()):
        body.setdefault("tools", []).append(
            {
                "type": "web_search_20250305",
                "name": "web_search",
                "max_uses": draw(st.integers(1, 5)),
            }
        )
    if draw(st.booleans()):
        body["thinking"] = draw(
            st.sampled_from([{"type": "enabled", "budget_tokens": 2048}, {"type": "adaptive"}])
        )
    config: dict[str, Any] = {}
    if draw(st.booleans()):
        config["task_budget"] = {"type": "tokens", "total": 4000}
    if draw(st.booleans()):
        config["format"] = {"type": "json_schema", "schema": draw(schema())}
    if config:
        body["output_config"] = config
    return body


def _check(provider: str, endpoint: str, body: dict[str, Any]) -> Any:
    est = estimate_request(provider=provider, endpoint=endpoint, body=body)
    bound = estimate_request(provider=provider, endpoint=endpoint, body=body, mode="bound")
    assert est.input_tokens <= est.input_tokens_max <= bound.input_tokens
    assert bound.input_tokens_max == bound.input_tokens
    return est


SETTINGS = settings(
    max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)


@SETTINGS
@given(openai_chat())
def test_openai_chat_bound_holds(body: dict[str, Any]) -> None:
    est = _check("openai", "chat.completions", body)
    # Adding a user message never lowers the bound.
    more = {**body, "messages": [*body["messages"], {"role": "user", "content": "and?"}]}
    assert (
        estimate_request(provider="openai", endpoint="chat.completions", body=more).input_tokens_max
        >= est.input_tokens_max
    )


@SETTINGS
@given(openai_chat())
def test_openai_responses_bound_holds(body: dict[str, Any]) -> None:
    items = [
        m
        for m in body["messages"]
        if m["role"] in ("user", "system") and isinstance(m["content"], str)
    ]
    _check(
        "openai",
        "responses",
        {"model": body["model"], "input": items or "hi", "tools": body.get("tools", [])},
    )


@SETTINGS
@given(anthropic_messages())
def test_anthropic_bound_holds(body: dict[str, Any]) -> None:
    est = _check("anthropic", "messages", body)
    more = {**body, "messages": [*body["messages"], {"role": "user", "content": "and?"}]}
    assert (
        estimate_request(provider="anthropic", endpoint="messages", body=more).input_tokens_max
        >= est.input_tokens_max
    )


@SETTINGS
@given(st.integers(0, 4))
def test_unseen_media_bounded_by_documented_maxima(n: int) -> None:
    image = {"type": "image", "source": {"type": "url", "url": "https://example.invalid/x.png"}}
    body = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 10,
        "messages": [{"role": "user", "content": [image] * n or "hi"}],
    }
    est = estimate_request(provider="anthropic", endpoint="messages", body=body)
    assert est.input_tokens_max >= n * ANTHROPIC_IMAGE_MAX
    url = {
        "type": "image_url",
        "image_url": {"url": "https://example.invalid/x.png", "detail": "high"},
    }
    chat = {"model": "gpt-4o", "messages": [{"role": "user", "content": [url] * n or "hi"}]}
    est = estimate_request(provider="openai", endpoint="chat.completions", body=chat)
    assert est.input_tokens_max >= n * (85 + 170 * 8)  # 2048 x 768 at high detail


def test_audio_and_task_budget_are_bounded() -> None:
    # 2 s of 16 kHz 16-bit mono WAV: duration from the header, 50 tokens a second at most.
    rate = 32_000
    header = (
        b"RIFF"
        + struct.pack("<I", 36 + 2 * rate)
        + b"WAVEfmt "
        + struct.pack("<IHHIIHH", 16, 1, 1, 16_000, rate, 2, 16)
    )
    wav = base64.b64encode(header + b"data" + struct.pack("<I", 2 * rate) + b"\0" * 2 * rate)
    part = {"type": "input_audio", "input_audio": {"data": wav.decode(), "format": "wav"}}
    body = {"model": "gpt-4o-audio-preview", "messages": [{"role": "user", "content": [part]}]}
    est = estimate_request(provider="openai", endpoint="chat.completions", body=body)
    assert est.input_tokens >= 20 and est.input_tokens_max >= 100 and not est.exact
    # Anthropic adds its own instructions for a task budget: estimated and bounded.
    msgs = [{"role": "user", "content": "hi"}]
    plain = {"model": "claude-opus-4-7", "max_tokens": 100, "messages": msgs}
    budget = {**plain, "output_config": {"task_budget": {"type": "tokens", "total": 4000}}}
    a = estimate_request(provider="anthropic", endpoint="messages", body=plain)
    b = estimate_request(provider="anthropic", endpoint="messages", body=budget)
    assert b.input_tokens_max >= a.input_tokens_max + 53 - 19  # the recorded gap
