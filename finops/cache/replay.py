"""Answers between their two wire shapes: a JSON body and the SSE stream of the same answer.

Gemini and Bedrock Converse forms live in :mod:`finops.cache.wires`.

The cache stores the complete answer bytes as received (JSON, or SSE including the usage
chunk). A stream request served from a JSON answer gets SSE synthesized here in the
endpoint's real wire format; a non-stream request served from a recorded stream gets the
JSON body assembled from its events. Usage is carried over unchanged either way.

:func:`complete_json` and :func:`assemble` also decide what may be stored at all: only a
complete, successful answer (no error event, no cut-off stream, no HTTP error).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from finops.cache import wires

__all__ = ["assemble", "complete_json", "events", "synthesize"]

_PIECE = 24  # characters per synthesized text delta


def _sse(event: str | None, data: Any) -> bytes:
    payload = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {payload}\n\n".encode()


def _pieces(text: str) -> list[str]:
    if not text:
        return []
    return [text[i : i + _PIECE] for i in range(0, len(text), _PIECE)]


def events(body: bytes) -> Iterator[tuple[str | None, str]]:
    """(event name, data) of each SSE event in ``body``."""
    text = body.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")
    for block in text.split("\n\n"):
        name: str | None = None
        data: list[str] = []
        for line in block.split("\n"):
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].removeprefix(" "))
        if data:
            yield name, "\n".join(data)


# -- JSON -> SSE -------------------------------------------------------------------------


def synthesize(endpoint: str, answer: dict[str, Any]) -> bytes:
    """SSE bytes of a stored JSON answer, in the wire format of ``endpoint``."""
    if endpoint == "chat.completions":
        return b"".join(_chat_events(answer))
    if endpoint == "responses":
        return b"".join(_responses_events(answer))
    if endpoint == "messages":
        return b"".join(_anthropic_events(answer))
    if endpoint == "generate_content":
        return wires.synthesize_gemini(answer)
    if endpoint == "converse":
        return wires.synthesize_converse(answer)
    raise ValueError(f"endpoint {endpoint!r} has no stream form")


def _chat_events(answer: dict[str, Any]) -> Iterator[bytes]:
    base = {
        "id": answer.get("id", ""),
        "object": "chat.completion.chunk",
        "created": answer.get("created", 0),
        "model": answer.get("model", ""),
    }
    for extra in ("system_fingerprint", "service_tier"):
        if answer.get(extra) is not None:
            base[extra] = answer[extra]

    def chunk(index: int, delta: dict[str, Any], finish: str | None = None, **more: Any) -> bytes:
        choice = {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}
        choice.update(more)
        return _sse(None, {**base, "choices": [choice]})

    for choice in answer.get("choices", []):
        index = choice.get("index", 0)
        message = choice.get("message") or {}
        first = "" if isinstance(message.get("content"), str) else None
        yield chunk(
            index, {"role": message.get("role", "assistant"), "content": first, "refusal": None}
        )
        for piece in _pieces(message.get("content") or ""):
            yield chunk(index, {"content": piece})
        for piece in _pieces(message.get("refusal") or ""):
            yield chunk(index, {"refusal": piece})
        for position, call in enumerate(message.get("tool_calls") or []):
            function = call.get("function") or {}
            yield chunk(
                index,
                {
                    "tool_calls": [
                        {
                            "index": position,
                            "id": call.get("id"),
                            "type": call.get("type", "function"),
                            "function": {"name": function.get("name"), "arguments": ""},
                        }
                    ]
                },
            )
            for piece in _pieces(function.get("arguments") or ""):
                yield chunk(
                    index, {"tool_calls": [{"index": position, "function": {"arguments": piece}}]}
                )
        yield chunk(index, {}, choice.get("finish_reason") or "stop")
    if answer.get("usage") is not None:
        yield _sse(None, {**base, "choices": [], "usage": answer["usage"]})
    yield _sse(None, "[DONE]")


def _responses_events(answer: dict[str, Any]) -> Iterator[bytes]:
    seq = 0

    def ev(kind: str, **payload: Any) -> bytes:
        nonlocal seq
        out = _sse(kind, {"type": kind, "sequence_number": seq, **payload})
        seq += 1
        return out

    start = {**answer, "status": "in_progress", "output": [], "usage": None}
    start.pop("output_text", None)
    yield ev("response.created", response=start)
    yield ev("response.in_progress", response=start)
    for position, item in enumerate(answer.get("output") or []):
        item_id = item.get("id", "")
        kind = item.get("type")
        if kind == "message":
            yield ev(
                "response.output_item.added",
                output_index=position,
                item={**item, "status": "in_progress", "content": []},
            )
            for ci, part in enumerate(item.get("content") or []):
                if part.get("type") == "output_text":
                    empty = {**part, "text": ""}
                    yield ev(
                        "response.content_part.added",
                        item_id=item_id,
                        output_index=position,
                        content_index=ci,
                        part=empty,
                    )
                    for piece in _pieces(part.get("text") or ""):
                        yield ev(
                            "response.output_text.delta",
                            item_id=item_id,
                            output_index=position,
                            content_index=ci,
                            delta=piece,
                            logprobs=[],
                        )
                    yield ev(
                        "response.output_text.done",
                        item_id=item_id,
                        output_index=position,
                        content_index=ci,
                        text=part.get("text") or "",
                        logprobs=[],
                    )
                else:
                    yield ev(
                        "response.content_part.added",
                        item_id=item_id,
                        output_index=position,
                        content_index=ci,
                        part=part,
                    )
                yield ev(
                    "response.content_part.done",
                    item_id=item_id,
                    output_index=position,
                    content_index=ci,
                    part=part,
                )
        elif kind == "function_call":
            yield ev(
                "response.output_item.added",
                output_index=position,
                item={**item, "arguments": "", "status": "in_progress"},
            )
            for piece in _pieces(item.get("arguments") or ""):
                yield ev(
                    "response.function_call_arguments.delta",
                    item_id=item_id,
                    output_index=position,
                    delta=piece,
                )
            yield ev(
                "response.function_call_arguments.done",
                item_id=item_id,
                output_index=position,
                arguments=item.get("arguments") or "",
            )
        else:
            yield ev("response.output_item.added", output_index=position, item=item)
        yield ev("response.output_item.done", output_index=position, item=item)
    final = "response.incomplete" if answer.get("status") == "incomplete" else "response.completed"
    yield ev(final, response=answer)


def _anthropic_events(answer: dict[str, Any]) -> Iterator[bytes]:
    usage = dict(answer.get("usage") or {})
    start = {**answer, "content": [], "stop_reason": None, "stop_sequence": None}
    start["usage"] = {**usage, "output_tokens": min(1, int(usage.get("output_tokens") or 0))}
    yield _sse("message_start", {"type": "message_start", "message": start})
    for index, block in enumerate(answer.get("content") or []):
        kind = block.get("type")
        if kind == "text":
            yield _sse(
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": index,
                    "content_block": {**block, "text": ""},
                },
            )
            for piece in _pieces(block.get("text") or ""):
                delta = {"type": "text_delta", "text": piece}
                yield _sse(
                    "content_block_delta",
                    {"type": "content_block_delta", "index": index, "delta": delta},
                )
        elif kind in ("tool_use", "server_tool_use") and isinstance(block.get("input"), dict):
            yield _sse(
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": index,
                    "content_block": {**block, "input": {}},
                },
            )
            raw = json.dumps(block["input"], separators=(",", ":"))
            for piece in _pieces(raw):
                delta = {"type": "input_json_delta", "partial_json": piece}
                yield _sse(
                    "content_block_delta",
                    {"type": "content_block_delta", "index": index, "delta": delta},
                )
        elif kind == "thinking":
            empty = {**block, "thinking": "", "signature": ""}
            yield _sse(
                "content_block_start",
                {"type": "content_block_start", "index": index, "content_block": empty},
            )
            for piece in _pieces(block.get("thinking") or ""):
                delta = {"type": "thinking_delta", "thinking": piece}
                yield _sse(
                    "content_block_delta",
                    {"type": "content_block_delta", "index": index, "delta": delta},
                )
            if block.get("signature"):
                delta = {"type": "signature_delta", "signature": block["signature"]}
                yield _sse(
                    "content_block_delta",
                    {"type": "content_block_delta", "index": index, "delta": delta},
                )
        else:
            yield _sse(
                "content_block_start",
                {"type": "content_block_start", "index": index, "content_block": block},
            )
        yield _sse("content_block_stop", {"type": "content_block_stop", "index": index})
    final: dict[str, Any] = {
        "stop_reason": answer.get("stop_reason"),
        "stop_sequence": answer.get("stop_sequence"),
    }
    yield _sse("message_delta", {"type": "message_delta", "delta": final, "usage": usage})
    yield _sse("message_stop", {"type": "message_stop"})


# -- SSE -> JSON -------------------------------------------------------------------------


def assemble(endpoint: str, body: bytes) -> dict[str, Any] | None:
    """The JSON answer of a recorded stream; None if the stream is not a complete answer."""
    try:
        if endpoint == "chat.completions":
            return _assemble_chat(body)
        if endpoint == "responses":
            return _assemble_responses(body)
        if endpoint == "messages":
            return _assemble_anthropic(body)
        if endpoint == "generate_content":
            return wires.assemble_gemini(body)
    except (ValueError, KeyError, TypeError, AttributeError, IndexError):
        return None
    return None


def _assemble_chat(body: bytes) -> dict[str, Any] | None:
    head: dict[str, Any] | None = None
    choices: dict[int, dict[str, Any]] = {}
    usage = None
    done = False
    for _, data in events(body):
        if data.strip() == "[DONE]":
            done = True
            continue
        chunk = json.loads(data)
        if "error" in chunk:
            return None
        if head is None:
            head = chunk
        if chunk.get("usage") is not None:
            usage = chunk["usage"]
        for c in chunk.get("choices") or []:
            slot = choices.setdefault(
                c.get("index", 0),
                {
                    "role": "assistant",
                    "content": None,
                    "refusal": None,
                    "tools": {},
                    "finish": None,
                },
            )
            delta = c.get("delta") or {}
            if delta.get("role"):
                slot["role"] = delta["role"]
            for field in ("content", "refusal"):
                if delta.get(field) is not None:
                    slot[field] = (slot[field] or "") + delta[field]
            for call in delta.get("tool_calls") or []:
                tool = slot["tools"].setdefault(
                    call.get("index", 0),
                    {"id": None, "type": "function", "name": None, "arguments": ""},
                )
                if call.get("id"):
                    tool["id"] = call["id"]
                if call.get("type"):
                    tool["type"] = call["type"]
                function = call.get("function") or {}
                if function.get("name"):
                    tool["name"] = function["name"]
                tool["arguments"] += function.get("arguments") or ""
            if c.get("finish_reason"):
                slot["finish"] = c["finish_reason"]
    if (
        head is None
        or not done
        or not choices
        or any(s["finish"] is None for s in choices.values())
    ):
        return None
    out_choices = []
    for index in sorted(choices):
        slot = choices[index]
        message: dict[str, Any] = {
            "role": slot["role"],
            "content": slot["content"],
            "refusal": slot["refusal"],
        }
        if slot["tools"]:
            message["tool_calls"] = [
                {
                    "id": t["id"],
                    "type": t["type"],
                    "function": {"name": t["name"], "arguments": t["arguments"]},
                }
                for _, t in sorted(slot["tools"].items())
            ]
        out_choices.append(
            {"index": index, "message": message, "logprobs": None, "finish_reason": slot["finish"]}
        )
    answer: dict[str, Any] = {
        "id": head.get("id", ""),
        "object": "chat.completion",
        "created": head.get("created", 0),
        "model": head.get("model", ""),
        "choices": out_choices,
        "usage": usage,
    }
    for extra in ("system_fingerprint", "service_tier"):
        if head.get(extra) is not None:
            answer[extra] = head[extra]
    return answer


def _assemble_responses(body: bytes) -> dict[str, Any] | None:
    final: dict[str, Any] | None = None
    for name, data in events(body):
        event = json.loads(data)
        kind = event.get("type") or name
        if kind in ("error", "response.failed"):
            return None
        if kind in ("response.completed", "response.incomplete"):
            final = event.get("response")
    if not isinstance(final, dict):
        return None
    return final


def _assemble_anthropic(body: bytes) -> dict[str, Any] | None:
    message: dict[str, Any] | None = None
    blocks: dict[int, dict[str, Any]] = {}
    partial: dict[int, str] = {}
    stopped = False
    for name, data in events(body):
        event = json.loads(data)
        kind = event.get("type") or name
        if kind == "error":
            return None
        if kind == "message_start":
            message = dict(event["message"])
        elif kind == "content_block_start":
            blocks[event["index"]] = dict(event["content_block"])
        elif kind == "content_block_delta":
            block = blocks[event["index"]]
            delta = event["delta"]
            dtype = delta.get("type")
            if dtype == "text_delta":
                block["text"] = block.get("text", "") + delta["text"]
            elif dtype == "input_json_delta":
                partial[event["index"]] = partial.get(event["index"], "") + delta["partial_json"]
            elif dtype == "thinking_delta":
                block["thinking"] = block.get("thinking", "") + delta["thinking"]
            elif dtype == "signature_delta":
                block["signature"] = delta["signature"]
            elif dtype == "citations_delta":
                block.setdefault("citations", []).append(delta["citation"])
        elif kind == "message_delta" and message is not None:
            message.update(event.get("delta") or {})
            usage = dict(message.get("usage") or {})
            usage.update({k: v for k, v in (event.get("usage") or {}).items() if v is not None})
            message["usage"] = usage
        elif kind == "message_stop":
            stopped = True
    if message is None or not stopped:
        return None
    for index, raw in partial.items():
        blocks[index]["input"] = json.loads(raw) if raw else {}
    message["content"] = [blocks[i] for i in sorted(blocks)]
    return message


def complete_json(endpoint: str, answer: Any) -> bool:
    """Whether a JSON answer is a complete, successful one (worth storing)."""
    if not isinstance(answer, dict) or answer.get("error") is not None:
        return False
    if endpoint == "chat.completions":
        choices = answer.get("choices")
        return (
            isinstance(choices, list)
            and bool(choices)
            and all(isinstance(c, dict) and c.get("finish_reason") for c in choices)
        )
    if endpoint == "responses":
        return answer.get("status") in ("completed", "incomplete")
    if endpoint == "messages":
        return answer.get("type") == "message" and answer.get("stop_reason") is not None
    if endpoint == "embeddings":
        return isinstance(answer.get("data"), list) and bool(answer["data"])
    if endpoint == "generate_content":
        return wires.complete_gemini(answer)
    if endpoint == "embed_content":  # Gemini: embedContent / batchEmbedContents / Vertex
        return any(bool(answer.get(k)) for k in ("embedding", "embeddings", "predictions"))
    if endpoint == "converse":
        return wires.complete_converse(answer)
    if endpoint == "invoke_model":  # the model's own body (Anthropic, Nova, Llama, ...)
        if answer.get("type") == "message":
            return answer.get("stop_reason") is not None
        return bool(answer) and set(answer) != {"message"}
    return False
