"""OpenAI wire formats → :class:`~finops.usage.Usage`.

Arithmetic (verified, DESIGN.md §2): ``prompt_tokens`` *includes*
``prompt_tokens_details.cached_tokens`` (and audio tokens); ``completion_tokens`` *includes*
``completion_tokens_details.reasoning_tokens`` (and audio tokens). The Responses API has the
same shape under ``input_tokens`` / ``output_tokens``. So the uncached input is
``prompt - cached - audio - cache_write`` and the visible output is
``completion - reasoning - audio``. A negative remainder means the provider's numbers do not
add up: the row is flagged with ``mismatch`` and the component is recorded as 0.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
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
from finops.providers.hosts import host_cost
from finops.usage import Usage

__all__ = ["ChatAdapter", "EmbeddingsAdapter", "ResponsesAdapter", "normalize_usage"]


def _remainder(total: int, parts: int, what: str, notes: list[str]) -> int:
    rest = total - parts
    if rest < 0:
        notes.append(f"{what}: components ({parts}) exceed the reported total ({total})")
        return 0
    return rest


def normalize_usage(
    raw: Mapping[str, Any],
    *,
    responses_api: bool = False,
    required: tuple[str, ...] | None = None,
) -> Usage:
    """Normalize an OpenAI ``usage`` object (chat, completions, responses or embeddings).

    Counts that are not whole numbers in range are read as 0 and flagged (``mismatch``
    starting with ``invalid usage``); so are missing ``required`` counts (default: the
    input and output totals of the endpoint).
    """
    notes: list[str] = []
    if responses_api:
        names = ("input_tokens", "output_tokens")
        in_details = mapping(raw.get("input_tokens_details"))
        out_details = mapping(raw.get("output_tokens_details"))
        in_label, out_label = "input_tokens_details", "output_tokens_details"
    else:
        names = ("prompt_tokens", "completion_tokens")
        in_details = mapping(raw.get("prompt_tokens_details"))
        out_details = mapping(raw.get("completion_tokens_details"))
        in_label, out_label = "prompt_tokens_details", "completion_tokens_details"
    require(raw, names if required is None else required, notes)
    total_in = count(raw.get(names[0]), names[0], notes)
    total_out = count(raw.get(names[1]), names[1], notes)

    def detail(details: Mapping[str, Any], label: str, key: str) -> int:
        return count(details.get(key), f"{label}.{key}", notes)

    cached = detail(in_details, in_label, "cached_tokens")
    if not cached and "prompt_cache_hit_tokens" in raw:
        # DeepSeek: prompt_tokens = prompt_cache_hit_tokens + prompt_cache_miss_tokens
        cached = count(raw.get("prompt_cache_hit_tokens"), "prompt_cache_hit_tokens", notes)
    elif not cached and "num_cached_tokens" in raw:  # Mistral
        cached = count(raw.get("num_cached_tokens"), "num_cached_tokens", notes)
    audio_in = detail(in_details, in_label, "audio_tokens")
    # Some OpenAI-compatible hosts report prompt-cache writes; OpenAI itself bills none.
    cache_write = detail(in_details, in_label, "cache_write_tokens") or detail(
        in_details, in_label, "cache_creation_tokens"
    )
    # Cached audio, where reported, is part of cached_tokens.
    cached_details = mapping(in_details.get("cached_tokens_details"))
    cached_audio = min(detail(cached_details, "cached_tokens_details", "audio_tokens"), cached)
    reasoning = detail(out_details, out_label, "reasoning_tokens")
    audio_out = detail(out_details, out_label, "audio_tokens")

    uncached_in = _remainder(total_in, cached + cache_write, "input", notes)
    text_in = _remainder(uncached_in, audio_in, "input audio", notes)
    text_out = _remainder(total_out, reasoning + audio_out, "output", notes)

    reported_total = raw.get("total_tokens")
    if reported_total is not None and count(reported_total, "total_tokens", notes) != (
        total_in + total_out
    ):
        notes.append(f"total_tokens {reported_total} != input {total_in} + output {total_out}")

    return Usage(
        input_tokens=text_in,
        cache_read_tokens=cached - cached_audio,
        cache_read_audio_tokens=cached_audio,
        cache_write_5m_tokens=cache_write,
        input_audio_tokens=audio_in,
        output_tokens=text_out,
        reasoning_tokens=reasoning,
        output_audio_tokens=audio_out,
        mismatch="; ".join(notes) or None,
    )


def _error_message(body: Mapping[str, Any]) -> str | None:
    err = body.get("error")
    if isinstance(err, Mapping):
        msg = err.get("message")
        return redact(str(msg)) if msg is not None else None
    if isinstance(err, str):
        return redact(err)
    return None


def _tier(value: object) -> str | None:
    return value if isinstance(value, str) else None


class ChatAdapter:
    """``POST /v1/chat/completions`` (JSON and SSE)."""

    def parse_json(self, body: Mapping[str, Any]) -> Parsed:
        """Parse a chat completion object."""
        usage_raw = body.get("usage")
        text_parts: list[str] = []
        for choice in items(body.get("choices")):
            message = mapping(mapping(choice).get("message"))
            content = message.get("content")
            if isinstance(content, str):
                text_parts.append(content)
        if not isinstance(usage_raw, Mapping):  # old Groq: usage only under x_groq
            usage_raw = mapping(body.get("x_groq")).get("usage")
        cost, detail = host_cost(usage_raw) if isinstance(usage_raw, Mapping) else (None, None)
        return Parsed(
            usage=normalize_usage(usage_raw) if isinstance(usage_raw, Mapping) else None,
            served_model=body.get("model") if isinstance(body.get("model"), str) else None,
            service_tier=_tier(body.get("service_tier")),
            output_text="".join(text_parts),
            error_message=_error_message(body),
            host_cost=cost,
            host_cost_detail=detail,
        )

    def stream_watcher(self, *, strip_usage_chunk: bool) -> _ChatStream:
        """A watcher for one ``stream=True`` chat completion."""
        return _ChatStream(strip_usage_chunk)


_USAGE_MARKERS = (b'"usage":{', b'"usage": {')
# With include_usage every other chunk carries ``"usage": null`` (a key after the first: an
# unescaped ``,"`` is never inside a JSON string, so these bytes are always that key).
_USAGE_NULLS = (b',"usage":null', b', "usage": null')


class _ChatStream:
    """Finds the usage chunk (``choices: []``, ``usage: {...}``) and the served model.

    Chunks are parsed only when needed: the first one (for the model), the one carrying
    usage, and — only if the stream ends without usage — all of them, to recover the text
    produced so far for an estimate.
    """

    __slots__ = ("_blocks", "_cost", "_memo", "_model", "_strip", "_tier", "_usage", "done")

    def __init__(self, strip_usage_chunk: bool) -> None:
        self._strip = strip_usage_chunk
        self._memo: tuple[bytes, Mapping[str, Any]] | None = None  # the event keep() parsed
        self._reset()

    def _reset(self) -> None:
        self._blocks: list[bytes] = []
        self._model: str | None = None
        self._tier: str | None = None
        self._usage: Usage | None = None
        self._cost: tuple[Decimal | None, str | None] = (None, None)
        self.done = False

    @property
    def drop_markers(self) -> tuple[bytes, ...]:
        """Bytes every event :meth:`keep` may drop contains (the transport asks it only
        about events with one): the usage chunk finops asked for, when it hides it."""
        return _USAGE_MARKERS if self._strip else ()

    @property
    def unset_fields(self) -> tuple[bytes, ...]:
        """Bytes the transport cuts from every event the SDK sees, when finops injected
        ``include_usage``: the ``"usage": null`` the provider then adds to each chunk (the
        application's own request would have got chunks without it)."""
        return _USAGE_NULLS if self._strip else ()

    def keep(self, block: bytes) -> bool:
        """Whether the SDK may see this event: False for the usage chunk (``choices: []``
        and a ``usage`` object) when finops injected ``include_usage``. Learns nothing:
        what the stream says is read at its end (:meth:`read_body`)."""
        if not self._strip or (_USAGE_MARKERS[0] not in block and _USAGE_MARKERS[1] not in block):
            return True
        chunk = self._parse(block)
        if chunk is not None:
            self._memo = (block, chunk)  # read again at the end: parsed once
        return chunk is None or not isinstance(chunk.get("usage"), Mapping) or bool(
            chunk.get("choices")
        )

    def _parse(self, block: bytes) -> Mapping[str, Any] | None:
        memo = self._memo
        if memo is not None and memo[0] == block:
            return memo[1]
        data = sse_data(block)
        if data is None or data == b"[DONE]":
            return None
        return mapping(load_json(data))

    def on_event(self, block: bytes) -> bool:
        """Read one event; returns whether the SDK may see it (see :meth:`keep`)."""
        # Fast path: an ordinary content chunk once the model is known needs no parsing now
        # (its text is only needed if the stream ends without usage; see result()).
        if (
            self._model is not None
            and _USAGE_MARKERS[0] not in block
            and _USAGE_MARKERS[1] not in block
        ):
            if b"[DONE]" in block:
                self.done = True
            else:
                self._blocks.append(block)
            return True
        data = sse_data(block)
        if data is None:
            return True
        if data == b"[DONE]":
            self.done = True
            return True
        chunk = self._parse(block) or {}
        if self._model is None and isinstance(chunk.get("model"), str) and chunk["model"]:
            self._model = chunk["model"]
            self._tier = _tier(chunk.get("service_tier"))
        usage_raw = chunk.get("usage")
        if not isinstance(usage_raw, Mapping):
            # Groq streams (before include_usage) carry usage only in x_groq.usage
            usage_raw = mapping(chunk.get("x_groq")).get("usage")
            if isinstance(usage_raw, Mapping):
                self._usage = normalize_usage(usage_raw)
        else:
            self._usage = normalize_usage(usage_raw)
            self._cost = host_cost(usage_raw)
            if self._strip and not chunk.get("choices"):
                return False
        self._blocks.append(block)
        return True

    def read_body(self, body: bytes) -> None:
        """Read a whole stream (as received): the first event (the model), the last one
        carrying usage and the ``[DONE]`` mark are found directly; only a stream without
        usage (its text is needed) or an unusual one is read event by event."""
        if b"\r" not in body:
            try:
                if self._read_direct(body):
                    return
            except Exception:  # read it event by event instead (garbled events skipped)
                pass
            self._reset()
        for block in sse_blocks(body):
            try:
                self.on_event(block)
            except Exception:  # a garbled event is the SDK's business
                continue

    def journal_event(self, body: bytes) -> bytes | None:
        """The JSON of the stream's usage chunk, when a row can be rebuilt from it alone:
        found by byte search (the last event with a ``usage`` object, a single ``data:``
        line, followed by ``[DONE]``), a JSON object with ``choices: []`` (so no text) and a
        ``usage`` object; parsed once (the one :meth:`keep` hid is not parsed again). The
        served model is read from it too (every chat chunk names it). None otherwise."""
        if b"\r" in body:
            return None
        at = max(body.rfind(_USAGE_MARKERS[0]), body.rfind(_USAGE_MARKERS[1]))
        if at < 0:
            return None
        start = body.rfind(b"\n\n", 0, at)
        start = 0 if start < 0 else start + 2
        end = body.find(b"\n\n", at)
        if end < 0 or b"[DONE]" not in body[end:]:
            return None
        block = body[start:end]
        if not block.startswith(b"data:") or b"\n" in block:
            return None
        memo = self._memo
        chunk = memo[1] if memo is not None and memo[0] == block else None
        data = block[5:].strip()
        if chunk is None:
            chunk = mapping(load_json(data))
        if chunk.get("choices") or not isinstance(chunk.get("usage"), Mapping):
            return None
        if not isinstance(chunk.get("model"), str) or not chunk["model"]:
            return None
        return data if data.startswith(b"{") and data.endswith(b"}") else None

    def _read_direct(self, body: bytes) -> bool:
        first_end = body.find(b"\n\n")
        if first_end <= 0:
            return False
        self.on_event(body[:first_end])
        if self._model is None:
            return False
        at = max(body.rfind(_USAGE_MARKERS[0]), body.rfind(_USAGE_MARKERS[1]))
        if at > first_end:
            start = body.rfind(b"\n\n", 0, at) + 2
            end = body.find(b"\n\n", at)
            self.on_event(body[start:end] if end >= 0 else body[start:].rstrip(b"\n"))
        if self._usage is None:
            return False
        self.done = self.done or b"[DONE]" in body[first_end:]
        return True

    def result(self) -> Parsed:
        text: list[str] = []
        if self._usage is None:  # only then is the text needed (estimate of what was produced)
            for block in self._blocks:
                data = sse_data(block)
                try:
                    chunk = mapping(load_json(data)) if data else {}
                except ValueError:
                    continue
                for choice in items(chunk.get("choices")):
                    delta = mapping(mapping(choice).get("delta"))
                    content = delta.get("content")
                    if isinstance(content, str):
                        text.append(content)
        return Parsed(
            usage=self._usage,
            served_model=self._model,
            service_tier=self._tier,
            output_text="".join(text) if text else None,
            complete=self.done and self._usage is not None,
            host_cost=self._cost[0],
            host_cost_detail=self._cost[1],
        )


class ResponsesAdapter:
    """``POST /v1/responses`` (JSON and SSE; usage arrives in ``response.completed``)."""

    def parse_json(self, body: Mapping[str, Any]) -> Parsed:
        """Parse a Response object."""
        usage_raw = body.get("usage")
        usage = (
            normalize_usage(usage_raw, responses_api=True)
            if isinstance(usage_raw, Mapping)
            else None
        )
        tools: dict[str, int] = {}
        text: list[str] = []
        for item in items(body.get("output")):
            item = mapping(item)
            kind = item.get("type")
            if kind in ("web_search_call", "file_search_call"):
                name = str(kind)[: -len("_call")]
                tools[name] = tools.get(name, 0) + 1
            elif kind == "message":
                for part in items(item.get("content")):
                    part = mapping(part)
                    if part.get("type") == "output_text" and isinstance(part.get("text"), str):
                        text.append(part["text"])
        if usage is not None and tools:
            usage = Usage(**{**_fields(usage), "server_tool_requests": tools})
        cost, detail = host_cost(usage_raw) if isinstance(usage_raw, Mapping) else (None, None)
        return Parsed(
            usage=usage,
            served_model=body.get("model") if isinstance(body.get("model"), str) else None,
            service_tier=_tier(body.get("service_tier")),
            output_text="".join(text),
            error_message=_error_message(body),
            host_cost=cost,
            host_cost_detail=detail,
        )

    def stream_watcher(self, *, strip_usage_chunk: bool) -> _ResponsesStream:
        """A watcher for one ``stream=True`` response."""
        return _ResponsesStream(self)


_TERMINAL = (b"response.completed", b"response.incomplete", b"response.failed")


class _ResponsesStream:
    __slots__ = ("_adapter", "_final", "_model", "_text")

    def __init__(self, adapter: ResponsesAdapter) -> None:
        self._adapter = adapter
        self._final: Parsed | None = None
        self._model: str | None = None
        self._text: list[str] = []

    def on_event(self, block: bytes) -> bool:
        data = sse_data(block)
        if data is None:
            return True
        if any(name in block for name in _TERMINAL):
            event = mapping(load_json(data))
            if event.get("type") in (
                "response.completed",
                "response.incomplete",
                "response.failed",
            ):
                self._final = self._adapter.parse_json(mapping(event.get("response")))
        elif b"output_text.delta" in block:
            delta = mapping(load_json(data)).get("delta")
            if isinstance(delta, str):
                self._text.append(delta)
        elif self._model is None and b"response.created" in block:
            response = mapping(mapping(load_json(data)).get("response"))
            model = response.get("model")
            self._model = model if isinstance(model, str) else None
        return True

    def result(self) -> Parsed:
        if self._final is not None:
            return self._final
        return Parsed(served_model=self._model, output_text="".join(self._text), complete=False)


class EmbeddingsAdapter:
    """``POST /v1/embeddings`` (JSON only; embeddings never stream)."""

    def parse_json(self, body: Mapping[str, Any]) -> Parsed:
        """Parse an embeddings list object."""
        usage_raw = body.get("usage")
        usage = None
        if isinstance(usage_raw, Mapping):
            usage = normalize_usage(
                {
                    "prompt_tokens": usage_raw.get("prompt_tokens"),
                    "total_tokens": usage_raw.get("total_tokens"),
                },
                required=("prompt_tokens",),
            )
        return Parsed(
            usage=usage,
            served_model=body.get("model") if isinstance(body.get("model"), str) else None,
            error_message=_error_message(body),
        )

    def stream_watcher(self, *, strip_usage_chunk: bool) -> _ResponsesStream:
        """Embeddings do not stream; an SSE reply is watched like a Responses stream."""
        return _ResponsesStream(ResponsesAdapter())


def _fields(usage: Usage) -> dict[str, Any]:
    return {name: getattr(usage, name) for name in Usage.__dataclass_fields__}
