"""Anthropic endpoints: messages (JSON and SSE) and count_tokens."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from finops.devserver import _synth as s
from finops.devserver._reply import MARK, Reply, anthropic_error, fill, sse, template

# A block of the prompt in cache order: (identity for hashing, tokens, cache_control or None).
_Block = tuple[Any, int, Any]


def _blocks(body: Mapping[str, Any]) -> list[_Block]:
    """The prompt as Anthropic caches it: tools, then system, then messages, block by block."""
    out: list[_Block] = []

    def strip(block: Any) -> Any:
        # Moving a breakpoint must not change what the prefix *is*.
        if isinstance(block, Mapping) and "cache_control" in block:
            return {k: v for k, v in block.items() if k != "cache_control"}
        return block

    def control(block: Any) -> Any:
        return block.get("cache_control") if isinstance(block, Mapping) else None

    for tool in body.get("tools") or []:
        out.append((("tool", strip(tool)), s.tokens(s.canonical(strip(tool))), control(tool)))
    system = body.get("system")
    if isinstance(system, str):
        out.append((("system", system), s.tokens(system), None))
    elif isinstance(system, list):
        out.extend((("system", strip(b)), s.content_tokens([b]), control(b)) for b in system)
    for m in body.get("messages") or []:
        role = m.get("role") if isinstance(m, Mapping) else None
        content = m.get("content") if isinstance(m, Mapping) else m
        overhead = 4  # role markers, counted on the message's first block
        if isinstance(content, list) and content:
            for b in content:
                out.append(((role, strip(b)), overhead + s.content_tokens([b]), control(b)))
                overhead = 0
        else:
            out.append(((role, content), overhead + s.content_tokens(content), None))
    return out


def _cache(blocks: list[_Block], model: str, cache: s.PrefixCache) -> tuple[int, int, int]:
    """(cache read, 5m write, 1h write) tokens for a prompt with ``cache_control`` breakpoints.

    A breakpoint's prefix is written the first time it is seen and read afterwards. The read
    may match any earlier block boundary (the API looks back from each breakpoint), so a
    conversation whose breakpoint moves forward reads the old prefix and writes the new part.
    Tokens between breakpoints are written at the TTL of the breakpoint that ends them.
    """
    hashes = s.chain("msg:" + model, (ident for ident, _, _ in blocks))
    cum = 0
    boundaries: list[tuple[str, int]] = []
    points: list[tuple[str, int, str]] = []
    for key, (_, n, ctl) in zip(hashes, blocks, strict=True):
        cum += n
        boundaries.append((key, cum))
        if ctl and cum >= s.CACHE_MIN_TOKENS:
            ttl = ctl.get("ttl", "5m") if isinstance(ctl, Mapping) else "5m"
            points.append((key, cum, "1h" if ttl == "1h" else "5m"))
    if not points:
        return 0, 0, 0
    last = points[-1][1]
    lookups = [(k, n) for k, n in boundaries if s.CACHE_MIN_TOKENS <= n <= last]
    read = cache.lookup_and_add(lookups, remember=[k for k, _, _ in points])
    writes = {"5m": 0, "1h": 0}
    done = read
    for _, n, ttl in points:
        if n > done:
            writes[ttl] += n - done
            done = n
    return read, writes["5m"], writes["1h"]


def _thinking_budget(body: Mapping[str, Any]) -> int | None:
    thinking = body.get("thinking")
    if not isinstance(thinking, Mapping) or thinking.get("type") not in ("enabled", "adaptive"):
        return None
    budget = s.clamp_limit(thinking.get("budget_tokens"))
    return budget if budget is not None else 1_000_000


def count_tokens(body: Mapping[str, Any]) -> Reply:
    """``POST /v1/messages/count_tokens``."""
    if "model" not in body or "messages" not in body:
        return anthropic_error(400, "model and messages: field required", "invalid_request_error")
    return Reply(body={"input_tokens": 3 + sum(n for _, n, _ in _blocks(body))})


def messages(
    body: Mapping[str, Any], cache: s.PrefixCache, override: dict[str, Any] | None
) -> Reply:
    """``POST /v1/messages``: JSON, or the SSE sequence ``messages.stream`` accumulates."""
    for name in ("model", "max_tokens", "messages"):
        if name not in body:
            return anthropic_error(400, f"{name}: Field required", "invalid_request_error")
    model = str(body["model"])
    digest = s.digest(body)
    blocks = _blocks(body)
    total = 3 + sum(n for _, n, _ in blocks)
    budget = _thinking_budget(body)
    thinking_natural = 0 if budget is None else min(12 + int(digest[-2:], 16) % 19, budget)
    visible, thinking, truncated = s.split_output(
        s.natural_length(digest), thinking_natural, s.clamp_limit(body["max_tokens"])
    )
    words = s.reply_words(digest, natural=visible)
    output = visible + thinking
    if override is not None:
        usage = override
    else:
        read, write_5m, write_1h = _cache(blocks, model, cache)
        usage = {
            "input_tokens": total - read - write_5m - write_1h,
            "cache_creation_input_tokens": write_5m + write_1h,
            "cache_read_input_tokens": read,
            "cache_creation": {
                "ephemeral_5m_input_tokens": write_5m,
                "ephemeral_1h_input_tokens": write_1h,
            },
            "output_tokens": output,
            "service_tier": "standard",
        }
        if budget is not None:
            usage["output_tokens_details"] = {"thinking_tokens": thinking}
    content: list[dict[str, Any]] = []
    if budget is not None:
        thought = " ".join(s.reply_words(digest[::-1], natural=thinking))
        content.append({"type": "thinking", "thinking": thought, "signature": "sig_" + digest[:32]})
    content.append({"type": "text", "text": " ".join(words)})
    stop_reason = "max_tokens" if truncated else "end_turn"
    message = {
        "id": "msg_" + digest[:24],
        "type": "message",
        "role": "assistant",
        "model": s.snapshot(model),
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": usage,
    }
    if not body.get("stream"):
        return Reply(body=message)
    return Reply(events=_stream(message, content, words, usage, digest, override is not None))


def _stream(
    message: dict[str, Any],
    content: list[dict[str, Any]],
    words: list[str],
    usage: dict[str, Any],
    digest: str,
    scripted: bool,
) -> list[bytes]:
    # About one real stream in three reports larger input counts in message_delta than in
    # message_start; consumers must take the latest values, so the server does the same.
    updated = scripted or int(digest[4:6], 16) % 3 == 0
    start_usage = {**usage, "output_tokens": 1}
    start_usage.pop("output_tokens_details", None)
    if updated and not scripted and isinstance(usage.get("input_tokens"), int):
        start_usage["input_tokens"] = max(0, usage["input_tokens"] - 2)
    start = {**message, "content": [], "stop_reason": None, "usage": start_usage}
    events = [sse("message_start", {"type": "message_start", "message": start})]

    def block_event(kind: str, index: int, **payload: Any) -> None:
        events.append(sse(kind, {"type": kind, "index": index, **payload}))

    for index, block in enumerate(content):
        if block["type"] == "thinking":
            block_event(
                "content_block_start",
                index,
                content_block={"type": "thinking", "thinking": "", "signature": ""},
            )
            pieces = block["thinking"].split(" ")
            for i, piece in enumerate(pieces):
                text = piece if i == 0 else " " + piece
                block_event(
                    "content_block_delta", index, delta={"type": "thinking_delta", "thinking": text}
                )
            block_event(
                "content_block_delta",
                index,
                delta={"type": "signature_delta", "signature": block["signature"]},
            )
        else:
            block_event("content_block_start", index, content_block={"type": "text", "text": ""})
            kind = "content_block_delta"
            piece = template(
                kind, {"type": kind, "index": index, "delta": {"type": "text_delta", "text": MARK}}
            )
            events.extend(fill(piece, w if i == 0 else " " + w) for i, w in enumerate(words))
        block_event("content_block_stop", index)
    # The documented order puts a ping after the first content_block_start.
    events.insert(2, sse("ping", {"type": "ping"}))
    delta_usage: dict[str, Any] = {"output_tokens": usage.get("output_tokens", 0)}
    keys = ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
    if updated:
        delta_usage.update({k: usage[k] for k in keys if k in usage})
    for extra in ("server_tool_use", "output_tokens_details", "iterations"):
        if extra in usage:
            delta_usage[extra] = usage[extra]
    events.append(
        sse(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
                "usage": delta_usage,
            },
        )
    )
    events.append(sse("message_stop", {"type": "message_stop"}))
    return events
