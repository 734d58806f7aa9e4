"""Gemini wire format (Gemini API and Vertex AI) → :class:`~finops.usage.Usage`.

``usageMetadata`` arithmetic (Google's docs, checked against recorded responses):
``promptTokenCount`` *includes* ``cachedContentTokenCount``; ``toolUsePromptTokenCount``
(the results of built-in tools fed back to the model) is extra input, billed as input;
``candidatesTokenCount`` is the visible output and *excludes* ``thoughtsTokenCount``
(thinking, billed as output); ``totalTokenCount`` = prompt + tool-use prompt + candidates +
thoughts. ``promptTokensDetails`` / ``cacheTokensDetails`` / ``candidatesTokensDetails`` split
counts by modality (``AUDIO`` is priced separately). The >200k prices of Gemini 2.5 Pro apply
by prompt size, which the price book's tiers handle from the total input.

Streams (``:streamGenerateContent?alt=sse``) repeat ``usageMetadata`` in every chunk, growing;
the last one carries the final counts, so the latest value wins. The stream is complete when
a candidate carries a ``finishReason``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from finops.providers.base import (
    INVALID,
    Parsed,
    as_int,
    count,
    load_json,
    mapping,
    require,
    sse_blocks,
    sse_data,
)
from finops.usage import Usage

__all__ = ["EmbedAdapter", "GenerateAdapter", "normalize_usage"]


def _modality(details: object, name: str) -> int:
    if not isinstance(details, list):
        return 0
    return sum(
        as_int(mapping(d).get("tokenCount"))
        for d in details
        if str(mapping(d).get("modality", "")).upper() == name
    )


def normalize_usage(raw: Mapping[str, Any]) -> Usage:
    """Normalize a Gemini ``usageMetadata`` object."""
    notes: list[str] = []
    require(raw, ("promptTokenCount",), notes)

    def get(name: str) -> int:
        return count(raw.get(name), name, notes)

    prompt = get("promptTokenCount")
    cached = get("cachedContentTokenCount")
    tool_prompt = get("toolUsePromptTokenCount")
    candidates = get("candidatesTokenCount")
    thoughts = get("thoughtsTokenCount")
    audio_in = _modality(raw.get("promptTokensDetails"), "AUDIO")
    audio_cached = min(_modality(raw.get("cacheTokensDetails"), "AUDIO"), cached)
    audio_out = min(_modality(raw.get("candidatesTokensDetails"), "AUDIO"), candidates)
    uncached = prompt - cached
    if uncached < 0:
        notes.append(f"cachedContentTokenCount {cached} > promptTokenCount {prompt}")
        uncached = 0
    audio_uncached = max(0, min(audio_in - audio_cached, uncached))
    total = raw.get("totalTokenCount")
    expected = prompt + tool_prompt + candidates + thoughts
    if total is not None and as_int(total) != expected:
        notes.append(f"totalTokenCount {total} != prompt+tool+candidates+thoughts {expected}")
    return Usage(
        input_tokens=uncached - audio_uncached + tool_prompt,
        cache_read_tokens=cached - audio_cached,
        cache_read_audio_tokens=audio_cached,
        input_audio_tokens=audio_uncached,
        output_tokens=candidates - audio_out,
        reasoning_tokens=thoughts,
        output_audio_tokens=audio_out,
        mismatch="; ".join(sorted(notes, key=lambda n: not n.startswith(INVALID))) or None,
    )


def _text(body: Mapping[str, Any]) -> tuple[str, bool]:
    parts: list[str] = []
    finished = False
    for cand in body.get("candidates") or ():
        cand = mapping(cand)
        if cand.get("finishReason"):
            finished = True
        for part in mapping(cand.get("content")).get("parts") or ():
            text = mapping(part).get("text")
            if isinstance(text, str) and not mapping(part).get("thought"):
                parts.append(text)
    return "".join(parts), finished


def _error(body: Mapping[str, Any]) -> str | None:
    err = body.get("error")
    if isinstance(err, Mapping) and err.get("message") is not None:
        return str(err["message"])
    return None


def _model(body: Mapping[str, Any]) -> str | None:
    model = body.get("modelVersion")
    return model if isinstance(model, str) and model else None


class GenerateAdapter:
    """``:generateContent`` (JSON) and ``:streamGenerateContent?alt=sse`` (SSE)."""

    def parse_json(self, body: Mapping[str, Any]) -> Parsed:
        """Parse a GenerateContentResponse (or, for a stream sent as JSON, an array)."""
        usage_raw = body.get("usageMetadata")
        text, _ = _text(body)
        tools = _grounding(body)
        usage = normalize_usage(usage_raw) if isinstance(usage_raw, Mapping) else None
        if usage is not None and tools:
            usage = Usage(**{**_fields(usage), "server_tool_requests": tools})
        return Parsed(
            usage=usage,
            served_model=_model(body),
            output_text=text,
            error_message=_error(body),
        )

    def stream_watcher(self, *, strip_usage_chunk: bool) -> _GenerateStream:
        """A watcher for one streamed generateContent."""
        return _GenerateStream()


class _GenerateStream:
    """Keeps the raw events; JSON is parsed only in :meth:`result` — the last event with
    ``usageMetadata`` (counts grow, the latest wins) and, for the text of a cut stream, the
    rest. Watching a chunk costs two substring checks; a whole stream read at its end
    (:meth:`read_body`) is split into events only if those are needed."""

    __slots__ = ("_blocks", "_body", "_finished", "_last_usage")

    def __init__(self) -> None:
        self._blocks: list[bytes] = []
        self._body: bytes | None = None  # a whole stream not yet split into events
        self._last_usage: bytes | None = None
        self._finished = False

    def on_event(self, block: bytes) -> bool:
        self._blocks.append(block)
        if b'"usageMetadata"' in block:
            self._last_usage = block
        if b'"finishReason"' in block:
            self._finished = True
        return True

    def read_body(self, body: bytes) -> None:
        """Read a whole stream (as received, ``\\r\\n`` framing or not)."""
        at = body.rfind(b'"usageMetadata"')
        if at < 0 or b"groundingMetadata" in body:
            for block in sse_blocks(body):
                self.on_event(block)
            return
        start = max(  # the blank line before it: LF, CRLF or CR line ends
            body.rfind(b"\n\n", 0, at) + 2,
            body.rfind(b"\n\r\n", 0, at) + 3,
            body.rfind(b"\r\r", 0, at) + 2,
            0,
        )
        ends = [i for i in (body.find(sep, at) for sep in (b"\n\n", b"\r\n\r\n", b"\r\r")) if i >= 0]
        event = sse_blocks(body[start : min(ends)] if ends else body[start:])
        self._last_usage = event[-1] if event else None
        self._finished = b'"finishReason"' in body
        self._body = body

    def _events(self) -> list[bytes]:
        if self._body is not None:
            self._blocks, self._body = sse_blocks(self._body), None
        return self._blocks

    def result(self) -> Parsed:
        usage: Usage | None = None
        model: str | None = None
        tools: dict[str, int] = {}
        if self._last_usage is not None:
            data = sse_data(self._last_usage)
            chunk = mapping(load_json(data)) if data else {}
            raw = chunk.get("usageMetadata")
            usage = normalize_usage(raw) if isinstance(raw, Mapping) else None
            model = _model(chunk)
        text: list[str] = []
        finished = False
        if usage is None or model is None or self._body is None:
            for block in self._events():
                if usage is not None and model is not None and b"groundingMetadata" not in block:
                    continue  # text is only needed for a stream without usage
                data = sse_data(block)
                try:
                    chunk = mapping(load_json(data)) if data else {}
                except ValueError:
                    continue
                model = model or _model(chunk)
                part, done = _text(chunk)
                text.append(part)
                finished = finished or done
                tools.update(_grounding(chunk))
        if usage is not None and tools:
            usage = Usage(**{**_fields(usage), "server_tool_requests": tools})
        return Parsed(
            usage=usage,
            served_model=model,
            output_text="".join(text) if text else None,
            complete=(self._finished or finished) and usage is not None,
        )


def _grounding(body: Mapping[str, Any]) -> dict[str, int]:
    """Grounded answers (Google Search) are billed per grounded prompt: count one per
    response whose candidate carries search queries."""
    for cand in body.get("candidates") or ():
        meta = mapping(mapping(cand).get("groundingMetadata"))
        if meta.get("webSearchQueries"):
            return {"web_search": 1}
    return {}


class EmbedAdapter:
    """``:embedContent`` / ``:batchEmbedContents``: the Gemini API reports no usage for
    embeddings (Vertex reports ``statistics.token_count`` per prediction), so the row's input
    tokens come from finops' estimate of the request (flagged ``usage_estimated``)."""

    def parse_json(self, body: Mapping[str, Any]) -> Parsed:
        """Parse an embeddings response."""
        usage_raw = body.get("usageMetadata")
        usage = None
        if isinstance(usage_raw, Mapping):
            usage = Usage(input_tokens=as_int(usage_raw.get("promptTokenCount")))
        tokens = sum(
            as_int(mapping(mapping(p).get("statistics")).get("token_count"))
            for p in body.get("predictions") or ()
        )
        if usage is None and tokens:
            usage = Usage(input_tokens=tokens)
        return Parsed(usage=usage, served_model=None, error_message=_error(body))

    def stream_watcher(self, *, strip_usage_chunk: bool) -> _GenerateStream:
        """Embeddings do not stream."""
        return _GenerateStream()


def _fields(usage: Usage) -> dict[str, Any]:
    return {name: getattr(usage, name) for name in Usage.__dataclass_fields__}
