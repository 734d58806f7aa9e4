"""Replay for the Gemini and Bedrock wire formats (see :mod:`finops.cache.replay`).

Gemini ``generateContent``: the stored answer is the JSON ``GenerateContentResponse`` or the
``:streamGenerateContent?alt=sse`` events as received. A stream request served from JSON gets
SSE in Google's framing (``data: {...}\\r\\n\\r\\n``): text parts in pieces, the last chunk
with ``finishReason`` and ``usageMetadata``; a non-stream request served from a recorded
stream gets one response with the candidates' parts merged and the last usage.

Bedrock ``Converse`` / ``ConverseStream``: the stored answer is always the Converse JSON
(a ConverseStream's events are assembled into it as they pass to the caller, by
:func:`finops.providers.bedrock.assemble_converse_events`). A stream
request gets AWS's binary event-stream framing (``application/vnd.amazon.eventstream``, each
message with its prelude, headers and CRC32s — what botocore's ``EventStream`` parses):
``messageStart``, ``contentBlockStart`` (tool use), ``contentBlockDelta`` pieces,
``contentBlockStop``, ``messageStop``, ``metadata`` (usage, metrics).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

from finops.providers.bedrock import encode_event

__all__ = [
    "EVENTSTREAM",
    "assemble_gemini",
    "complete_converse",
    "complete_gemini",
    "encode_event",
    "synthesize_converse",
    "synthesize_gemini",
]

EVENTSTREAM = "application/vnd.amazon.eventstream"
_PIECE = 24


def _pieces(text: str) -> list[str]:
    return [text[i : i + _PIECE] for i in range(0, len(text), _PIECE)] if text else []


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


# -- Gemini ----------------------------------------------------------------------------------


def complete_gemini(answer: Any) -> bool:
    """A whole, successful GenerateContentResponse: candidates, each with a finish reason."""
    if not isinstance(answer, Mapping) or answer.get("error") is not None:
        return False
    candidates = answer.get("candidates")
    return (
        isinstance(candidates, list)
        and bool(candidates)
        and all(isinstance(c, Mapping) and c.get("finishReason") for c in candidates)
        and isinstance(answer.get("usageMetadata"), Mapping)
    )


def synthesize_gemini(answer: Mapping[str, Any]) -> bytes:
    """SSE bytes of a stored GenerateContentResponse, in Google's stream format."""
    return b"".join(_gemini_chunks(answer))


def _gemini_chunks(answer: Mapping[str, Any]) -> Iterator[bytes]:
    head = {k: answer[k] for k in ("modelVersion", "responseId", "createTime") if k in answer}

    def chunk(candidates: list[dict[str, Any]], **more: Any) -> bytes:
        return b"data: " + _dumps({"candidates": candidates, **head, **more}) + b"\r\n\r\n"

    candidates = [c for c in answer.get("candidates") or [] if isinstance(c, Mapping)]
    for position, cand in enumerate(candidates):
        index = cand.get("index", position)
        content = cand.get("content") or {}
        role = content.get("role", "model")
        for part in content.get("parts") or []:
            text = part.get("text") if isinstance(part, Mapping) else None
            if isinstance(text, str) and set(part) <= {"text", "thought"}:
                for piece in _pieces(text):
                    new = {**part, "text": piece}
                    yield chunk([{"content": {"role": role, "parts": [new]}, "index": index}])
            else:
                yield chunk([{"content": {"role": role, "parts": [part]}, "index": index}])
    last: list[dict[str, Any]] = []
    for position, cand in enumerate(candidates):
        rest = {k: v for k, v in cand.items() if k != "content"}
        rest.setdefault("index", position)
        role = (cand.get("content") or {}).get("role", "model")
        last.append({"content": {"role": role, "parts": [{"text": ""}]}, **rest})
    more = {k: answer[k] for k in ("usageMetadata", "promptFeedback") if k in answer}
    yield chunk(last, **more)


def _sse_data(body: bytes) -> Iterator[str]:
    text = body.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")
    for block in text.split("\n\n"):
        data = [
            line[5:].removeprefix(" ") for line in block.split("\n") if line.startswith("data:")
        ]
        if data:
            yield "\n".join(data)


def assemble_gemini(body: bytes) -> dict[str, Any] | None:
    """One GenerateContentResponse from a recorded stream; None if it is not complete."""
    merged: dict[int, dict[str, Any]] = {}
    head: dict[str, Any] = {}
    for data in _sse_data(body):
        chunk = json.loads(data)
        if not isinstance(chunk, Mapping) or "error" in chunk:
            return None
        for key, value in chunk.items():
            if key != "candidates":
                head[key] = value
        for position, cand in enumerate(chunk.get("candidates") or []):
            index = cand.get("index", position)
            slot = merged.setdefault(index, {"content": {"role": "model", "parts": []}})
            content = cand.get("content") or {}
            if content.get("role"):
                slot["content"]["role"] = content["role"]
            parts: list[dict[str, Any]] = slot["content"]["parts"]
            for part in content.get("parts") or []:
                text = part.get("text")
                if (
                    isinstance(text, str)
                    and parts
                    and set(part) <= {"text", "thought"}
                    and set(parts[-1]) <= {"text", "thought"}
                    and bool(parts[-1].get("thought")) == bool(part.get("thought"))
                ):
                    parts[-1] = {**parts[-1], "text": parts[-1].get("text", "") + text}
                elif not (isinstance(text, str) and text == "" and set(part) == {"text"}):
                    parts.append(dict(part))
            for key, value in cand.items():
                if key != "content":
                    slot[key] = value
    answer = {"candidates": [merged[i] for i in sorted(merged)], **head}
    return answer if complete_gemini(answer) else None


# -- Bedrock Converse --------------------------------------------------------------------------


def complete_converse(answer: Any) -> bool:
    """A whole Converse answer: an output message and a stop reason."""
    if not isinstance(answer, Mapping):
        return False
    output = answer.get("output")
    return (
        isinstance(output, Mapping)
        and isinstance(output.get("message"), Mapping)
        and bool(answer.get("stopReason"))
        and isinstance(answer.get("usage"), Mapping)
    )


def synthesize_converse(answer: Mapping[str, Any]) -> bytes:
    """ConverseStream event-stream bytes of a stored Converse answer."""
    return b"".join(_converse_events(answer))


def _converse_events(answer: Mapping[str, Any]) -> Iterator[bytes]:
    message = (answer.get("output") or {}).get("message") or {}
    yield encode_event("messageStart", {"role": message.get("role", "assistant")})
    for index, block in enumerate(message.get("content") or []):
        if "text" in block:
            for piece in _pieces(str(block["text"])):
                yield encode_event(
                    "contentBlockDelta", {"contentBlockIndex": index, "delta": {"text": piece}}
                )
        elif "toolUse" in block:
            tool = block["toolUse"]
            start = {k: tool[k] for k in ("toolUseId", "name") if k in tool}
            yield encode_event(
                "contentBlockStart",
                {"contentBlockIndex": index, "start": {"toolUse": start}},
            )
            raw = json.dumps(tool.get("input", {}), separators=(",", ":"))
            for piece in _pieces(raw):
                yield encode_event(
                    "contentBlockDelta",
                    {"contentBlockIndex": index, "delta": {"toolUse": {"input": piece}}},
                )
        elif "reasoningContent" in block:
            reasoning = block["reasoningContent"].get("reasoningText") or {}
            for piece in _pieces(str(reasoning.get("text", ""))):
                yield encode_event(
                    "contentBlockDelta",
                    {"contentBlockIndex": index, "delta": {"reasoningContent": {"text": piece}}},
                )
            if reasoning.get("signature"):
                delta = {"reasoningContent": {"signature": reasoning["signature"]}}
                yield encode_event(
                    "contentBlockDelta", {"contentBlockIndex": index, "delta": delta}
                )
        yield encode_event("contentBlockStop", {"contentBlockIndex": index})
    stop: dict[str, Any] = {"stopReason": answer.get("stopReason")}
    if answer.get("additionalModelResponseFields") is not None:
        stop["additionalModelResponseFields"] = answer["additionalModelResponseFields"]
    yield encode_event("messageStop", stop)
    meta: dict[str, Any] = {"usage": answer.get("usage") or {}}
    meta["metrics"] = answer.get("metrics") or {"latencyMs": 0}
    for extra in ("trace", "performanceConfig", "serviceTier"):
        if answer.get(extra) is not None:
            meta[extra] = answer[extra]
    yield encode_event("metadata", meta)
