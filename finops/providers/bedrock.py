"""AWS Bedrock runtime usage → :class:`~finops.usage.Usage`.

Converse / ConverseStream ``usage``: ``inputTokens`` *excludes* cache reads and writes, which
are additive (``cacheReadInputTokens``, ``cacheWriteInputTokens``; ``totalTokens`` is the sum
of all four). ConverseStream reports it in the final ``metadata`` event. InvokeModel reports
counts in response headers (``x-amzn-bedrock-input-token-count``, ``-output-token-count``,
``-cache-read-input-token-count``, ``-cache-write-input-token-count``), whatever the model's
body format. Model ids may be inference profiles (``us.``, ``eu.``, ``apac.``, ``global.``)
or ARNs; the aws price table resolves profiles, and :func:`model_id` reduces an ARN to the
id it names.
"""

from __future__ import annotations

import base64
import binascii
import json
import struct
from collections.abc import Mapping
from typing import Any

from finops.providers.base import INVALID, Parsed, StreamWatcher, as_int, count, require
from finops.usage import Usage

__all__ = [
    "EVENTSTREAM",
    "EventStreamFrames",
    "assemble_converse_events",
    "body_usage",
    "converse_usage",
    "encode_event",
    "header_usage",
    "invocation_usage",
    "model_id",
]


def model_id(model: object) -> str | None:
    """``arn:aws:bedrock:...:inference-profile/us.anthropic...`` → ``us.anthropic...``."""
    if not isinstance(model, str):
        return None
    if model.startswith("arn:"):
        return model.rsplit("/", 1)[-1]
    return model


def converse_usage(raw: Mapping[str, Any]) -> Usage:
    """Normalize a Converse ``usage`` object."""
    notes: list[str] = []
    require(raw, ("inputTokens", "outputTokens"), notes)
    usage = Usage(
        input_tokens=count(raw.get("inputTokens"), "inputTokens", notes),
        cache_read_tokens=count(raw.get("cacheReadInputTokens"), "cacheReadInputTokens", notes),
        cache_write_5m_tokens=count(
            raw.get("cacheWriteInputTokens"), "cacheWriteInputTokens", notes
        ),
        output_tokens=count(raw.get("outputTokens"), "outputTokens", notes),
    )
    total = raw.get("totalTokens")
    if total is not None and as_int(total) != usage.total_tokens:
        notes.append(f"totalTokens {total} != sum of parts {usage.total_tokens}")
    if notes:
        notes.sort(key=lambda n: not n.startswith(INVALID))
        return usage.with_flags(mismatch="; ".join(notes))
    return usage


def _header_int(headers: Mapping[str, str], name: str) -> int:
    value = headers.get(name)
    try:
        return int(value) if value is not None else 0
    except ValueError:
        return 0


def header_usage(headers: Mapping[str, str]) -> Usage | None:
    """Usage from InvokeModel's response headers (None if Bedrock sent none)."""
    lowered = {k.lower(): v for k, v in headers.items()}
    if "x-amzn-bedrock-input-token-count" not in lowered:
        return None
    return Usage(
        input_tokens=_header_int(lowered, "x-amzn-bedrock-input-token-count"),
        cache_read_tokens=_header_int(lowered, "x-amzn-bedrock-cache-read-input-token-count"),
        cache_write_5m_tokens=_header_int(lowered, "x-amzn-bedrock-cache-write-input-token-count"),
        output_tokens=_header_int(lowered, "x-amzn-bedrock-output-token-count"),
    )


def body_usage(body: Mapping[str, Any]) -> Usage | None:
    """Usage from an InvokeModel response body, for the model families Bedrock serves:
    Anthropic (``usage.input_tokens``, additive cache counts), Amazon Nova
    (``usage.inputTokens``), Meta Llama / Mistral (``prompt_token_count`` /
    ``generation_token_count``). None when the body carries none."""
    usage = body.get("usage")
    if isinstance(usage, Mapping):
        if "input_tokens" in usage:
            return Usage(
                input_tokens=as_int(usage.get("input_tokens")),
                cache_read_tokens=as_int(usage.get("cache_read_input_tokens")),
                cache_write_5m_tokens=as_int(usage.get("cache_creation_input_tokens")),
                output_tokens=as_int(usage.get("output_tokens")),
            )
        if "inputTokens" in usage:
            return converse_usage(
                {
                    "inputTokens": usage.get("inputTokens"),
                    "outputTokens": usage.get("outputTokens"),
                    "cacheReadInputTokens": usage.get("cacheReadInputTokenCount"),
                    "cacheWriteInputTokens": usage.get("cacheWriteInputTokenCount"),
                }
            )
    if "prompt_token_count" in body:
        return Usage(
            input_tokens=as_int(body.get("prompt_token_count")),
            output_tokens=as_int(body.get("generation_token_count")),
        )
    return None


def invocation_usage(metrics: Mapping[str, Any]) -> Usage:
    """``amazon-bedrock-invocationMetrics`` of the last InvokeModelWithResponseStream chunk."""
    return Usage(
        input_tokens=as_int(metrics.get("inputTokenCount")),
        cache_read_tokens=as_int(metrics.get("cacheReadInputTokenCount")),
        cache_write_5m_tokens=as_int(metrics.get("cacheWriteInputTokenCount")),
        output_tokens=as_int(metrics.get("outputTokenCount")),
    )


#: Content type of AWS's binary event stream.
EVENTSTREAM = "application/vnd.amazon.eventstream"


def _event_header(name: str, value: str) -> bytes:
    raw_name, raw_value = name.encode(), value.encode()
    return (
        bytes([len(raw_name)]) + raw_name + b"\x07" + struct.pack(">H", len(raw_value)) + raw_value
    )


def encode_event(event_type: str, payload: Mapping[str, Any]) -> bytes:
    """One AWS event-stream message (prelude with lengths and CRC32, headers, JSON payload,
    CRC32): the framing botocore's EventStream parser reads and :class:`EventStreamFrames`
    decodes. Used by the cache's ConverseStream replay and by the DevServer."""
    headers = (
        _event_header(":event-type", event_type)
        + _event_header(":content-type", "application/json")
        + _event_header(":message-type", "event")
    )
    body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
    total = 12 + len(headers) + len(body) + 4
    prelude = struct.pack(">II", total, len(headers))
    prelude += struct.pack(">I", binascii.crc32(prelude) & 0xFFFFFFFF)
    message = prelude + headers + body
    return message + struct.pack(">I", binascii.crc32(message) & 0xFFFFFFFF)


class EventStreamFrames:
    """Decodes AWS event-stream frames (InvokeModelWithResponseStream, as the
    ``AnthropicBedrock`` client receives them) and shows each ``chunk``'s base64 payload, a
    provider event in JSON, to an SSE stream watcher as ``event:``/``data:`` blocks. The
    bytes reach the SDK untouched. The last chunk's ``amazon-bedrock-invocationMetrics``
    (what Bedrock bills) override the counts in the events."""

    __slots__ = ("_buffer", "_inner", "_metrics")

    def __init__(self, inner: StreamWatcher) -> None:
        self._inner = inner
        self._buffer = b""
        self._metrics: Mapping[str, Any] | None = None

    def feed_bytes(self, chunk: bytes) -> None:
        """Take raw bytes; dispatch every complete frame."""
        buffer = self._buffer + chunk
        while len(buffer) >= 12:
            total, headers_len = struct.unpack(">II", buffer[:8])
            if total < 16 or len(buffer) < total:
                break
            frame, buffer = buffer[:total], buffer[total:]
            payload = frame[12 + headers_len : total - 4]
            try:
                event = json.loads(payload)
                raw = event.get("bytes") if isinstance(event, Mapping) else None
                if not isinstance(raw, str):
                    continue
                data = base64.b64decode(raw)
                decoded = json.loads(data)
            except ValueError:
                continue
            if isinstance(decoded, Mapping):
                metrics = decoded.get("amazon-bedrock-invocationMetrics")
                if isinstance(metrics, Mapping):
                    self._metrics = metrics
                name = str(decoded.get("type", ""))
                self._inner.on_event(b"event: " + name.encode() + b"\ndata: " + data)
        self._buffer = buffer

    def read_body(self, body: bytes) -> None:
        """Take a whole stream's bytes (the transport reads a stream once, at its end)."""
        self.feed_bytes(body)

    def on_event(self, block: bytes) -> bool:
        """Not an SSE stream: nothing to split."""
        return True

    def result(self) -> Parsed:
        """The inner watcher's result, with Bedrock's billed counts where reported."""
        parsed = self._inner.result()
        if self._metrics is not None:
            usage = invocation_usage(self._metrics)
            if parsed.usage is not None and parsed.usage.steps:
                usage = Usage(
                    **{
                        **{f: getattr(usage, f) for f in Usage.__dataclass_fields__},
                        "steps": parsed.usage.steps,
                    }
                )
            parsed.usage = usage
        return parsed


def assemble_converse_events(items: list[Mapping[str, Any]]) -> dict[str, Any] | None:
    """The Converse answer of ConverseStream events as botocore parsed them; None if the
    stream is not complete (no ``messageStop`` / ``metadata``) or holds binary members."""
    role = "assistant"
    blocks: dict[int, dict[str, Any]] = {}
    tool_input: dict[int, str] = {}
    answer: dict[str, Any] = {}
    stopped = have_meta = False
    for event in items:
        if "messageStart" in event:
            role = event["messageStart"].get("role", role)
        elif "contentBlockStart" in event:
            start = event["contentBlockStart"]
            tool = (start.get("start") or {}).get("toolUse")
            if tool is not None:
                blocks[start.get("contentBlockIndex", 0)] = {"toolUse": dict(tool)}
        elif "contentBlockDelta" in event:
            delta_event = event["contentBlockDelta"]
            index = delta_event.get("contentBlockIndex", 0)
            delta = delta_event.get("delta") or {}
            if "text" in delta:
                block = blocks.setdefault(index, {"text": ""})
                block["text"] = block.get("text", "") + delta["text"]
            elif "toolUse" in delta:
                blocks.setdefault(index, {"toolUse": {}})
                tool_input[index] = tool_input.get(index, "") + delta["toolUse"].get("input", "")
            elif "reasoningContent" in delta:
                block = blocks.setdefault(index, {"reasoningContent": {"reasoningText": {}}})
                text = block["reasoningContent"].setdefault("reasoningText", {})
                part = delta["reasoningContent"]
                if "text" in part:
                    text["text"] = text.get("text", "") + part["text"]
                if "signature" in part:
                    text["signature"] = part["signature"]
                if "redactedContent" in part:
                    return None  # binary: not stored
        elif "contentBlockStop" in event:
            continue
        elif "messageStop" in event:
            stopped = True
            answer["stopReason"] = event["messageStop"].get("stopReason")
            extra = event["messageStop"].get("additionalModelResponseFields")
            if extra is not None:
                answer["additionalModelResponseFields"] = extra
        elif "metadata" in event:
            have_meta = True
            meta = event["metadata"]
            for key, value in meta.items():
                answer[key] = value
        else:
            return None  # an exception event or one finops does not know
    if not (stopped and have_meta):
        return None
    for index, raw in tool_input.items():
        blocks[index]["toolUse"]["input"] = json.loads(raw) if raw else {}
    answer["output"] = {"message": {"role": role, "content": [blocks[i] for i in sorted(blocks)]}}
    try:
        json.dumps(answer)
    except (TypeError, ValueError):
        return None
    return answer if answer.get("stopReason") and isinstance(answer.get("usage"), Mapping) else None
