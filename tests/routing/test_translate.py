"""Servability checks and parameter translation, one test per rule."""

from __future__ import annotations

from finops.routing.translate import (
    RequestNeeds,
    cannot_serve,
    capabilities,
    needs_of,
    translate,
)


class _Limits:
    def __init__(self, window: int | None, out: int | None) -> None:
        self.window, self.out = window, out

    def context_window(self, model: str) -> int | None:
        return self.window

    def max_output(self, model: str) -> int | None:
        return self.out


def _chat(**extra: object) -> dict[str, object]:
    return {"model": "o3", "messages": [{"role": "user", "content": "hi"}], **extra}


def test_capability_lookup_longest_prefix() -> None:
    mini = capabilities("gpt-4o-mini-2024-07-18")
    assert mini is not None and mini.family == "gpt-4o-mini"
    o3mini = capabilities("o3-mini")
    assert o3mini is not None and not o3mini.vision
    assert capabilities("my-own-model") is None


def test_tools_block_a_target_without_tools() -> None:
    needs = needs_of("chat.completions", _chat(tools=[{"type": "function", "function": {}}]))
    assert needs.tools
    assert cannot_serve("o1-mini", needs, None) == "tools"
    assert cannot_serve("gpt-4.1-mini", needs, None) is None


def test_image_input_blocks_a_text_only_target() -> None:
    msg = {"role": "user", "content": [
        {"type": "text", "text": "what is this"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
    ]}
    needs = needs_of("chat.completions", {"model": "o3", "messages": [msg]})
    assert needs.images
    assert cannot_serve("o3-mini", needs, None) == "image_input"
    anthropic = {"role": "user", "content": [{"type": "image", "source": {"type": "base64"}}]}
    assert needs_of("messages", {"messages": [anthropic]}).images
    assert cannot_serve("claude-3-5-haiku-latest", needs, None) == "image_input"


def test_audio_input_needs_an_audio_model() -> None:
    msg = {"role": "user", "content": [{"type": "input_audio", "input_audio": {"data": "x"}}]}
    needs = needs_of("chat.completions", {"messages": [msg]})
    assert cannot_serve("gpt-4.1-mini", needs, None) == "audio_input"


def test_json_schema_needs_structured_output() -> None:
    rf = {"type": "json_schema", "json_schema": {"name": "x", "schema": {}}}
    needs = needs_of("chat.completions", _chat(response_format=rf))
    assert needs.json_schema
    assert cannot_serve("gpt-3.5-turbo", needs, None) == "json_schema"
    assert cannot_serve("gpt-4o-mini", needs, None) is None
    resp = needs_of("responses", {"input": "x", "text": {"format": {"type": "json_schema"}}})
    assert resp.json_schema


def test_context_and_max_output_limits() -> None:
    long = needs_of("chat.completions", _chat(messages=[{"role": "user", "content": "x" * 30000}]))
    assert cannot_serve("gpt-4.1-mini", long, _Limits(8000, None)) == "context_length"
    assert cannot_serve("gpt-4.1-mini", long, _Limits(128000, None)) is None
    big_out = RequestNeeds(max_output=64000)
    assert cannot_serve("gpt-4.1-mini", big_out, _Limits(1_000_000, 32768)) == "max_output"


def test_unknown_target_is_never_served() -> None:
    assert cannot_serve("mystery-1", RequestNeeds(), None) == "unknown_target"


def test_to_reasoning_model_moves_max_tokens_and_drops_sampling() -> None:
    tr = translate("chat.completions", {"model": "gpt-4.1", "max_tokens": 100,
                                        "temperature": 0.2, "messages": []}, model="o4-mini")
    assert tr.kwargs["max_completion_tokens"] == 100 and "max_tokens" not in tr.kwargs
    assert "temperature" in tr.dropped and "temperature" not in tr.kwargs


def test_effort_minimal_maps_to_low_where_unsupported() -> None:
    tr = translate("chat.completions", _chat(), model="o3", reasoning_effort="minimal")
    assert tr.kwargs["reasoning_effort"] == "low"
    tr5 = translate("chat.completions", _chat(model="gpt-5"), model="gpt-5",
                    reasoning_effort="minimal")
    assert tr5.kwargs["reasoning_effort"] == "minimal"


def test_reasoning_to_plain_model_drops_reasoning_effort() -> None:
    tr = translate("chat.completions", _chat(reasoning_effort="high", max_completion_tokens=50),
                   model="gpt-4.1-mini")
    assert "reasoning_effort" not in tr.kwargs and "reasoning_effort" in tr.dropped
    assert tr.kwargs["max_completion_tokens"] == 50
    r = translate("responses", {"model": "o3", "input": "x", "reasoning": {"effort": "high"}},
                  model="gpt-4.1-mini")
    assert "reasoning" not in r.kwargs


def test_responses_effort_is_set_in_reasoning_object() -> None:
    r = translate("responses", {"model": "gpt-5", "input": "x", "temperature": 0.3},
                  model="gpt-5", reasoning_effort="low")
    assert r.kwargs["reasoning"] == {"effort": "low"} and "temperature" in r.dropped


def test_anthropic_thinking_off_and_unsupported() -> None:
    kw = {"model": "claude-opus-4-1", "max_tokens": 4000,
          "thinking": {"type": "enabled", "budget_tokens": 2000}, "messages": []}
    off = translate("messages", kw, model="claude-opus-4-1", thinking_off=True)
    assert "thinking" not in off.kwargs and off.dropped == ("thinking",)
    haiku = translate("messages", kw, model="claude-3-5-haiku-latest")
    assert "thinking" not in haiku.kwargs
    sonnet = translate("messages", kw, model="claude-sonnet-4-5")
    assert sonnet.kwargs["thinking"]["budget_tokens"] == 2000
