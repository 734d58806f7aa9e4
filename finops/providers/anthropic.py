"""Anthropic Messages wire format → :class:`~finops.usage.Usage`.

Arithmetic (verified, DESIGN.md §2): ``input_tokens`` *excludes* ``cache_read_input_tokens``
and ``cache_creation_input_tokens`` — the three add up. ``cache_creation`` splits writes into
``ephemeral_5m_input_tokens`` and ``ephemeral_1h_input_tokens`` (priced differently).
``output_tokens`` includes thinking. ``server_tool_use.web_search_requests`` is billed per
request. ``usage.iterations`` lists server-side sampling steps: the top-level counts sum only
the ``type: "message"`` steps; ``compaction`` and ``advisor_message`` steps are billed on top,
each at its own model's rates — they become :attr:`Usage.steps`.

Streams: ``message_start`` carries the first usage, ``message_delta`` carries cumulative
``output_tokens`` and may carry *updated* input counts; the latest value of each field wins.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from finops.providers.base import (
    Parsed,
    count,
    items,
    load_json,
    mapping,
    redact,
    require,
    sse_blocks,
    sse_data,
)
from finops.usage import StepUsage, Usage

__all__ = ["MessagesAdapter", "normalize_usage"]

_TOOL_FIELDS = {
    "web_search_requests": "web_search",
    "web_fetch_requests": "web_fetch",
    "code_execution_requests": "code_execution",
}


def _components(raw: Mapping[str, Any], notes: list[str], where: str = "") -> dict[str, Any]:
    def get(value: object, name: str) -> int:
        return count(value, where + name, notes)

    creation_total = get(raw.get("cache_creation_input_tokens"), "cache_creation_input_tokens")
    split = raw.get("cache_creation")
    if isinstance(split, Mapping):
        w5 = get(split.get("ephemeral_5m_input_tokens"), "cache_creation.ephemeral_5m_input_tokens")
        w1h = get(
            split.get("ephemeral_1h_input_tokens"), "cache_creation.ephemeral_1h_input_tokens"
        )
        if w5 + w1h != creation_total:
            notes.append(
                f"cache_creation split {w5}+{w1h} != cache_creation_input_tokens {creation_total}"
            )
    else:
        w5, w1h = creation_total, 0
    output = get(raw.get("output_tokens"), "output_tokens")
    # output_tokens includes thinking; newer responses say how much of it was thinking.
    thinking = get(
        mapping(raw.get("output_tokens_details")).get("thinking_tokens"),
        "output_tokens_details.thinking_tokens",
    )
    if thinking > output:
        notes.append(f"thinking_tokens {thinking} > output_tokens {output}")
        thinking = 0
    return {
        "input_tokens": get(raw.get("input_tokens"), "input_tokens"),
        "cache_read_tokens": get(raw.get("cache_read_input_tokens"), "cache_read_input_tokens"),
        "cache_write_5m_tokens": w5,
        "cache_write_1h_tokens": w1h,
        "output_tokens": output - thinking,
        "reasoning_tokens": thinking,
    }


def normalize_usage(raw: Mapping[str, Any], *, model: str | None = None) -> Usage:
    """Normalize an Anthropic ``usage`` object (including ``iterations``)."""
    notes: list[str] = []
    # Anthropic's usage carries no total to check against: the two core counts must be there.
    require(raw, ("input_tokens", "output_tokens"), notes)
    parts = _components(raw, notes)

    tools: dict[str, int] = {}
    for key, name in _TOOL_FIELDS.items():
        requests = count(
            mapping(raw.get("server_tool_use")).get(key), f"server_tool_use.{key}", notes
        )
        if requests:
            tools[name] = requests

    steps: list[StepUsage] = []
    iterations = raw.get("iterations")
    if isinstance(iterations, list) and iterations:
        message_sum = {k: 0 for k in parts}
        for i, item in enumerate(iterations):
            item = mapping(item)
            kind = str(item.get("type") or "message")
            step_parts = _components(item, notes, f"iterations[{i}].")
            if kind == "message":
                for k, v in step_parts.items():
                    message_sum[k] += v
                continue
            step_model = item.get("model")
            steps.append(
                StepUsage(
                    model=step_model if isinstance(step_model, str) else (model or ""),
                    kind=kind,
                    usage=Usage(**step_parts),
                )
            )
        if any(message_sum.values()) and message_sum != parts:
            notes.append(f"top-level usage {parts} != sum of message iterations {message_sum}")

    return Usage(
        **parts,
        server_tool_requests=tools,
        steps=tuple(steps),
        mismatch="; ".join(notes) or None,
    )


class MessagesAdapter:
    """``POST /v1/messages`` (JSON and SSE)."""

    def parse_json(self, body: Mapping[str, Any]) -> Parsed:
        """Parse a Message object (or an error object)."""
        model = body.get("model") if isinstance(body.get("model"), str) else None
        usage_raw = body.get("usage")
        text = [
            str(block.get("text"))
            for block in (mapping(b) for b in items(body.get("content")))
            if block.get("type") == "text" and isinstance(block.get("text"), str)
        ]
        error = mapping(body.get("error"))
        return Parsed(
            usage=normalize_usage(usage_raw, model=model)
            if isinstance(usage_raw, Mapping)
            else None,
            served_model=model,
            service_tier=_tier(usage_raw),
            output_text="".join(text),
            error_message=redact(str(error.get("message"))) if error.get("message") else None,
        )

    def stream_watcher(self, *, strip_usage_chunk: bool) -> _MessagesStream:
        """A watcher for one ``stream=True`` message."""
        return _MessagesStream()


def _tier(usage_raw: object) -> str | None:
    tier = mapping(usage_raw).get("service_tier")
    return tier if isinstance(tier, str) else None


class _MessagesStream:
    """Reads ``message_start`` (model, input usage), ``message_delta`` (output usage) and
    ``message_stop``; the text deltas are parsed only when the text is needed (a cut stream's
    estimate, or ``store_content``: ``want_text``)."""

    __slots__ = ("_deltas", "_model", "_stopped", "_text", "_usage_raw", "want_text")

    def __init__(self) -> None:
        self._usage_raw: dict[str, Any] = {}
        self._model: str | None = None
        self._text: list[str] = []
        self._deltas: list[bytes] = []  # text events not parsed yet (see read_body)
        self._stopped = False
        #: the text is wanted even for a whole stream (set by the meter with store_content)
        self.want_text = False

    def read_body(self, body: bytes) -> None:
        """Read a whole stream (as received): text events are kept unparsed until needed."""
        for block in sse_blocks(body):
            if b"content_block_delta" in block and not self.want_text:
                self._deltas.append(block)
                continue
            try:
                self.on_event(block)
            except Exception:  # a garbled event is the SDK's business
                continue

    def on_event(self, block: bytes) -> bool:
        if b"content_block_delta" in block:
            data = sse_data(block)
            if data is not None:
                delta = mapping(mapping(load_json(data)).get("delta"))
                for key in ("text", "thinking", "partial_json"):
                    value = delta.get(key)
                    if isinstance(value, str):
                        self._text.append(value)
        elif b"message_start" in block or b"message_delta" in block:
            data = sse_data(block)
            if data is not None:
                event = mapping(load_json(data))
                if event.get("type") == "message_start":
                    message = mapping(event.get("message"))
                    model = message.get("model")
                    self._model = model if isinstance(model, str) else None
                    self._usage_raw.update(mapping(message.get("usage")))
                elif event.get("type") == "message_delta":
                    # cumulative counts: the latest value of each field wins
                    self._usage_raw.update(
                        {k: v for k, v in mapping(event.get("usage")).items() if v is not None}
                    )
        elif b"message_stop" in block:
            self._stopped = True
        return True

    def result(self) -> Parsed:
        if self._deltas and (not self._stopped or not self._usage_raw):
            deltas, self._deltas = self._deltas, []  # the text of a cut stream is needed
            for block in deltas:
                try:
                    self.on_event(block)
                except Exception:
                    continue
        usage = normalize_usage(self._usage_raw, model=self._model) if self._usage_raw else None
        return Parsed(
            usage=usage,
            served_model=self._model,
            service_tier=_tier(self._usage_raw),
            output_text="".join(self._text),
            complete=self._stopped,
        )
