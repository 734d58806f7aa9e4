"""OpenAI endpoints: chat completions, responses, embeddings, models (JSON and SSE)."""

from __future__ import annotations

import base64
import hashlib
import struct
from collections.abc import Mapping
from typing import Any

from finops.devserver import _synth as s
from finops.devserver._reply import MARK, Reply, fill, openai_error, sse, template

CREATED = 1_700_000_000


def _prompt_cache(
    cache: s.PrefixCache, namespace: str, segments: list[tuple[Any, int]], model: str
) -> int:
    """Cached tokens for a prompt made of ``(segment, tokens)``: the longest prefix seen before."""
    hashes = s.chain(f"{namespace}:{model}", (seg for seg, _ in segments))
    prefixes: list[tuple[str, int]] = []
    total = 0
    for key, (_, n) in zip(hashes, segments, strict=True):
        total += n
        if total >= s.CACHE_MIN_TOKENS:
            prefixes.append((key, total))
    if not prefixes:
        return 0
    return s.openai_cached(cache.lookup_and_add(prefixes))


def _missing(body: Mapping[str, Any], *fields: str) -> Reply | None:
    for name in fields:
        if name not in body:
            return openai_error(
                400,
                f"Missing required parameter: '{name}'.",
                "invalid_request_error",
                "missing_required_parameter",
            )
    return None


# -- chat completions ------------------------------------------------------------------------


def chat(body: Mapping[str, Any], cache: s.PrefixCache, override: dict[str, Any] | None) -> Reply:
    """``POST /v1/chat/completions``."""
    bad = _missing(body, "model", "messages")
    if bad is not None:
        return bad
    model = str(body["model"])
    digest = s.digest(body)
    messages = body.get("messages") or []
    segments: list[tuple[Any, int]] = []
    if body.get("tools"):
        segments.append((body["tools"], sum(s.tokens(s.canonical(t)) for t in body["tools"])))
    if body.get("response_format"):
        segments.append((body["response_format"], s.tokens(s.canonical(body["response_format"]))))
    for m in messages:
        n = 3 + s.content_tokens(m.get("content")) + (1 if m.get("name") else 0)
        if m.get("tool_calls"):
            n += s.tokens(s.canonical(m["tool_calls"]))
        segments.append((m, n))
    prompt = 3 + sum(n for _, n in segments)  # +3: the reply is primed with <|assistant|>
    limit = s.clamp_limit(body.get("max_completion_tokens") or body.get("max_tokens"))
    visible, reasoning, truncated = s.split_output(
        s.natural_length(digest),
        s.reasoning_tokens(model, digest, body.get("reasoning_effort")),
        limit,
    )
    words = s.reply_words(digest, natural=visible)
    if override is not None:
        usage = override
    else:
        cached = _prompt_cache(cache, "chat", segments, model)
        usage = {
            "prompt_tokens": prompt,
            "completion_tokens": visible + reasoning,
            "total_tokens": prompt + visible + reasoning,
            "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": reasoning,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }
    finish = "length" if truncated else "stop"
    base = {
        "id": "chatcmpl-" + digest[:24],
        "created": CREATED,
        "model": s.snapshot(model),
        "service_tier": "default",
        "system_fingerprint": "fp_" + digest[24:34],
    }
    if not body.get("stream"):
        message: dict[str, Any] = {
            "role": "assistant",
            "content": " ".join(words),
            "refusal": None,
            "annotations": [],
        }
        choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": finish}
        return Reply(
            body={**base, "object": "chat.completion", "choices": [choice], "usage": usage}
        )

    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    # With include_usage every chunk carries "usage": null and one last chunk has the usage.
    tail = {"usage": None} if include_usage else {}
    chunk = {**base, "object": "chat.completion.chunk"}

    def delta(d: dict[str, Any], finish_reason: str | None = None) -> bytes:
        return sse(None, {**chunk, "choices": [_choice(d, finish_reason)], **tail})

    events = [delta({"role": "assistant", "content": "", "refusal": None})]
    piece = template(None, {**chunk, "choices": [_choice({"content": MARK})], **tail})
    events.extend(fill(piece, w if i == 0 else " " + w) for i, w in enumerate(words))
    events.append(delta({}, finish))
    if include_usage:
        events.append(sse(None, {**chunk, "choices": [], "usage": usage}))
    events.append(sse(None, "[DONE]"))
    return Reply(events=events)


def _choice(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
    return {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}


# -- responses -------------------------------------------------------------------------------


def responses(
    body: Mapping[str, Any], cache: s.PrefixCache, override: dict[str, Any] | None
) -> Reply:
    """``POST /v1/responses``: JSON, or the SSE sequence the SDK's stream helpers expect."""
    bad = _missing(body, "model")
    if bad is not None:
        return bad
    model = str(body["model"])
    digest = s.digest(body)
    segments: list[tuple[Any, int]] = []
    if body.get("tools"):
        segments.append((body["tools"], sum(s.tokens(s.canonical(t)) for t in body["tools"])))
    if body.get("instructions"):
        segments.append((body["instructions"], 3 + s.tokens(str(body["instructions"]))))
    items = body.get("input")
    if isinstance(items, list):
        for item in items:
            content = item.get("content", item) if isinstance(item, Mapping) else item
            segments.append((item, 3 + s.content_tokens(content)))
    elif items is not None:
        segments.append((items, 3 + s.content_tokens(items)))
    prompt = 4 + sum(n for _, n in segments)
    effort = (
        (body.get("reasoning") or {}).get("effort")
        if isinstance(body.get("reasoning"), Mapping)
        else None
    )
    visible, reasoning, truncated = s.split_output(
        s.natural_length(digest),
        s.reasoning_tokens(model, digest, effort),
        s.clamp_limit(body.get("max_output_tokens")),
    )
    words = s.reply_words(digest, natural=visible)
    text = " ".join(words)
    if override is not None:
        usage = override
    else:
        cached = _prompt_cache(cache, "resp", segments, model)
        usage = {
            "input_tokens": prompt,
            "input_tokens_details": {"cached_tokens": cached},
            "output_tokens": visible + reasoning,
            "output_tokens_details": {"reasoning_tokens": reasoning},
            "total_tokens": prompt + visible + reasoning,
        }
    rid, mid, rsid = "resp_" + digest[:24], "msg_" + digest[24:48], "rs_" + digest[40:64]
    status = "incomplete" if truncated else "completed"
    part = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
    message = {
        "id": mid,
        "type": "message",
        "status": status,
        "role": "assistant",
        "content": [part],
    }
    output: list[dict[str, Any]] = []
    if reasoning:
        output.append({"id": rsid, "type": "reasoning", "summary": [], "status": "completed"})
    output.append(message)
    response = {
        "id": rid,
        "object": "response",
        "created_at": CREATED,
        "status": status,
        "background": False,
        "error": None,
        "incomplete_details": {"reason": "max_output_tokens"} if truncated else None,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "metadata": body.get("metadata") or {},
        "model": s.snapshot(model),
        "output": output,
        "parallel_tool_calls": True,
        "previous_response_id": body.get("previous_response_id"),
        "reasoning": {"effort": effort, "summary": None},
        "service_tier": "default",
        "store": True,
        "temperature": 1.0,
        "text": {"format": {"type": "text"}, "verbosity": "medium"},
        "tool_choice": "auto",
        "tools": [],
        "top_p": 1.0,
        "truncation": "disabled",
        "usage": usage,
        "user": None,
    }
    if not body.get("stream"):
        return Reply(body=response)

    events: list[bytes] = []

    def ev(kind: str, **payload: Any) -> None:
        events.append(sse(kind, {"type": kind, "sequence_number": len(events), **payload}))

    pending = {
        **response,
        "status": "in_progress",
        "output": [],
        "usage": None,
        "incomplete_details": None,
    }
    ev("response.created", response=pending)
    ev("response.in_progress", response=pending)
    index = 0
    if reasoning:
        ev(
            "response.output_item.added",
            output_index=0,
            item={**output[0], "status": "in_progress"},
        )
        ev("response.output_item.done", output_index=0, item=output[0])
        index = 1
    ids = {"item_id": mid, "output_index": index, "content_index": 0}
    ev(
        "response.output_item.added",
        output_index=index,
        item={**message, "status": "in_progress", "content": []},
    )
    ev("response.content_part.added", **ids, part={**part, "text": ""})
    kind = "response.output_text.delta"
    piece = template(
        kind, {"type": kind, "sequence_number": MARK, **ids, "delta": MARK, "logprobs": []}
    )
    for i, word in enumerate(words):
        events.append(fill(piece, len(events), word if i == 0 else " " + word))
    ev("response.output_text.done", **ids, text=text, logprobs=[])
    ev("response.content_part.done", **ids, part=part)
    ev("response.output_item.done", output_index=index, item=message)
    ev("response.incomplete" if truncated else "response.completed", response=response)
    return Reply(events=events)


# -- embeddings ------------------------------------------------------------------------------

_DEFAULT_DIMENSIONS = 8  # small on purpose: the server is used to time finops, not JSON


def _vector(item: Any, dimensions: int) -> list[float]:
    seed = s.canonical(item).encode()
    raw = b""
    block = 0
    while len(raw) < dimensions:
        raw += hashlib.sha256(seed + block.to_bytes(4, "little")).digest()
        block += 1
    return [(b - 128) / 128.0 for b in raw[:dimensions]]


def embeddings(body: Mapping[str, Any], override: dict[str, Any] | None) -> Reply:
    """``POST /v1/embeddings`` (``encoding_format`` float or base64, ``dimensions``)."""
    bad = _missing(body, "model", "input")
    if bad is not None:
        return bad
    raw_input = body["input"]
    # A list of ints is one pre-tokenized input; a list of anything else is a batch.
    if isinstance(raw_input, list) and raw_input and not isinstance(raw_input[0], int):
        inputs: list[Any] = raw_input
    else:
        inputs = [raw_input]
    n_tokens = sum(len(x) if isinstance(x, list) else s.tokens(str(x)) for x in inputs)
    dimensions = min(int(body.get("dimensions") or _DEFAULT_DIMENSIONS), 4096)
    data = []
    for i, item in enumerate(inputs):
        vector = _vector(item, dimensions)
        encoded: Any = vector
        if body.get("encoding_format") == "base64":
            encoded = base64.b64encode(struct.pack(f"<{dimensions}f", *vector)).decode()
        data.append({"object": "embedding", "index": i, "embedding": encoded})
    usage = (
        override if override is not None else {"prompt_tokens": n_tokens, "total_tokens": n_tokens}
    )
    return Reply(
        body={
            "object": "list",
            "data": data,
            "model": s.snapshot(str(body["model"])),
            "usage": usage,
        }
    )


def models() -> Reply:
    """``GET /v1/models``: the models the server knows by alias."""
    data = [
        {"id": alias, "object": "model", "created": CREATED, "owned_by": "finops-devserver"}
        for alias in s.SNAPSHOTS
    ]
    return Reply(body={"object": "list", "data": data})
