"""A stream read once at its end (``read_body``, what the transport does) says what the
same stream read event by event says: usage, model, completeness, and the text wherever it
is needed (a cut stream's estimate, ``store_content``)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from finops.providers import adapter_for
from finops.providers.base import sse_blocks


def _sse(events: list[tuple[str | None, dict[str, Any]]], newline: str = "\n") -> bytes:
    out = []
    for name, data in events:
        head = f"event: {name}{newline}" if name else ""
        out.append(f"{head}data: {json.dumps(data)}{newline}{newline}")
    return "".join(out).encode()


def _each(watcher: Any, body: bytes) -> Any:
    for block in sse_blocks(body):
        try:
            watcher.on_event(block)
        except ValueError:
            continue
    return watcher.result()


def _gemini(text: str, usage: dict[str, Any] | None, finish: bool) -> dict[str, Any]:
    cand: dict[str, Any] = {"content": {"parts": [{"text": text}], "role": "model"}, "index": 0}
    if finish:
        cand["finishReason"] = "STOP"
    out: dict[str, Any] = {"candidates": [cand], "modelVersion": "gemini-2.0-flash"}
    if usage is not None:
        out["usageMetadata"] = usage
    return out


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
@pytest.mark.parametrize("cut", [False, True])
def test_gemini_read_body_equals_event_by_event(newline, cut):
    events = [
        (None, _gemini("Hello ", {"promptTokenCount": 3}, False)),
        (None, _gemini("world", {"promptTokenCount": 3, "candidatesTokenCount": 2}, not cut)),
    ]
    body = _sse(events, newline)
    if cut:
        body += b'data: {"candidates": [{"content"'
    adapter = adapter_for("google", "generate_content")
    assert adapter is not None
    whole = adapter.stream_watcher(strip_usage_chunk=False)
    whole.read_body(body)  # type: ignore[attr-defined]
    each = _each(adapter.stream_watcher(strip_usage_chunk=False), body)
    got = whole.result()
    assert (got.usage, got.served_model, got.complete) == (
        each.usage,
        each.served_model,
        each.complete,
    )
    assert got.usage is not None and got.usage.output_tokens == 2
    assert got.complete is not cut


def _anthropic(stop: bool) -> bytes:
    usage = {"input_tokens": 10, "output_tokens": 1}
    events: list[tuple[str | None, dict[str, Any]]] = [
        ("message_start", {"type": "message_start", "message": {"model": "claude-x", "usage": usage}}),
        ("content_block_delta", {"type": "content_block_delta", "delta": {"text": "Hi "}}),
        ("content_block_delta", {"type": "content_block_delta", "delta": {"text": "there"}}),
    ]
    if stop:
        events += [
            ("message_delta", {"type": "message_delta", "usage": {"output_tokens": 7}}),
            ("message_stop", {"type": "message_stop"}),
        ]
    return _sse(events)


@pytest.mark.parametrize("stop", [True, False])
@pytest.mark.parametrize("want_text", [True, False])
def test_anthropic_read_body_parses_text_only_when_needed(stop, want_text):
    adapter = adapter_for("anthropic", "messages")
    assert adapter is not None
    body = _anthropic(stop)
    whole = adapter.stream_watcher(strip_usage_chunk=False)
    whole.want_text = want_text  # type: ignore[attr-defined]
    whole.read_body(body)  # type: ignore[attr-defined]
    got = whole.result()
    each = _each(adapter.stream_watcher(strip_usage_chunk=False), body)
    assert (got.usage, got.served_model, got.complete) == (
        each.usage,
        each.served_model,
        each.complete,
    )
    # the text is there when the row needs it: a cut stream (estimate) or store_content
    assert got.output_text == ("Hi there" if want_text or not stop else "")
