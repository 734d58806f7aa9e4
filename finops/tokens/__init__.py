"""Token counts and worst-case cost *before* a call is sent, offline.

* OpenAI: exact BPE counts with the bundled ``o200k_base`` / ``cl100k_base`` encodings and the
  OpenAI cookbook's chat overheads (3 tokens per message, +1 per ``name``, +3 priming the reply);
  tool definitions with the cookbook's function-schema formula (an estimate: ±10% for the
  gpt-4o family, flagged); images with the documented tile formula (85 + 170 per 512 px tile).
* Anthropic: no public tokenizer exists. finops counts with ``o200k_base`` and adds
  per-message and tool-prompt overheads calibrated on real recorded calls (docs/tokens.md):
  text-only prompts matched exactly; with tools or attachments the bound is ±25%.
* ``mode="bound"``: a guaranteed upper bound without tokenizing (a BPE token is at least one
  UTF-8 byte), for the hot path when a request is large.

Every :class:`Estimate` says whether it is exact, its relative error bound and its method.
"""

from __future__ import annotations

import base64
import json
import math
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any, Protocol

from finops.tokens.encodings import encoding_for_model, get_encoding
from finops.usage import Usage

__all__ = ["Estimate", "PriceBookLike", "count_tokens", "estimate_request", "image_tokens"]

# OpenAI cookbook: "How to count tokens with tiktoken" (chat format overheads).
_PER_MESSAGE = 3
_PER_NAME = 1
_REPLY_PRIMING = 3
# OpenAI cookbook: function-definition overheads (gpt-4o family / older models).
_TOOL_OVERHEADS = {
    "o200k_base": {
        "func_init": 7,
        "prop_init": 3,
        "prop_key": 3,
        "enum_init": -3,
        "enum_item": 3,
        "func_end": 12,
    },
    "cl100k_base": {
        "func_init": 10,
        "prop_init": 3,
        "prop_key": 3,
        "enum_init": -3,
        "enum_item": 3,
        "func_end": 12,
    },
}
# Anthropic calibration (docs/tokens.md): o200k text + 4 per message + 3 per request; the tool
# use system prompt Anthropic documents for Claude 4 models (346 tokens) plus tool schemas.
_ANTHROPIC_PER_MESSAGE = 4
_ANTHROPIC_BASE = 3
_ANTHROPIC_TOOL_PROMPT = 346
_ANTHROPIC_TOOL_FACTOR = 1.5
_ANTHROPIC_IMAGE_MAX = 1600  # tokens ≈ width*height/750, capped by Anthropic's resize
_DEFAULT_MAX_OUTPUT = 4096
# a tile-formula image whose size is unknown: the worst case (2048x768 → 8 tiles)
_IMAGE_WORST = 85 + 170 * 8


class PriceBookLike(Protocol):
    """What estimates need from :class:`finops.pricing.PriceBook`."""

    def price(
        self,
        *,
        provider: str | None,
        model: str,
        usage: Usage,
        at: datetime,
        unknown: str = "zero_flagged",
    ) -> Any:
        """Price usage (``.total`` Decimal, ``.status``)."""

    def max_output_tokens(self, *, provider: str | None, model: str) -> int | None:
        """The model's maximum output, if known."""


@dataclass(frozen=True, slots=True)
class Estimate:
    """Worst-case tokens and cost of one request, known before it is sent."""

    input_tokens: int
    output_tokens_max: int
    cost_max: Decimal | None
    exact: bool
    error_bound: float  # relative bound of input_tokens (0.0 when exact)
    method: str
    model: str
    fallback: bool = False  # the model was unknown: encoding or price from a fallback

    @property
    def tokens_max(self) -> int:
        """Input plus maximum output."""
        return self.input_tokens + self.output_tokens_max


# -- counting ----------------------------------------------------------------------------------


class _Counter:
    """Counts with one encoding; tracks whether anything was approximated."""

    __slots__ = ("bound", "enc", "exact", "name")

    def __init__(self, encoding: str) -> None:
        self.name = encoding
        self.enc = get_encoding(encoding)
        self.exact = True
        self.bound = 0.0

    def text(self, value: str) -> int:
        if not value:
            return 0
        if len(value) <= _MEMO_MAX_CHARS:  # system prompts and history repeat across calls
            return _memo_count(self.name, value)
        return len(self.enc.encode(value, disallowed_special=()))

    def approx(self, tokens: int, bound: float) -> int:
        self.exact = False
        self.bound = max(self.bound, bound)
        return tokens


_MEMO_MAX_CHARS = 8192


@lru_cache(maxsize=8192)
def _memo_count(encoding: str, value: str) -> int:
    return len(get_encoding(encoding).encode(value, disallowed_special=()))


def image_tokens(width: int, height: int, *, detail: str = "auto") -> int:
    """OpenAI's documented image cost: 85 base + 170 per 512 px tile after resizing."""
    if detail == "low":
        return 85
    scale = min(1.0, 2048 / max(width, height))
    w, h = width * scale, height * scale
    scale = min(1.0, 768 / min(w, h))
    w, h = w * scale, h * scale
    return 85 + 170 * math.ceil(w / 512) * math.ceil(h / 512)


def _png_size(url: str) -> tuple[int, int] | None:
    """Width and height of a base64 data-URL PNG (no network: remote images are not fetched)."""
    if not url.startswith("data:image/png;base64,"):
        return None
    try:
        head = base64.b64decode(url[22 : 22 + 44])
        width, height = struct.unpack(">II", head[16:24])
        return int(width), int(height)
    except (ValueError, struct.error):
        return None


def _openai_part(c: _Counter, part: Any) -> int:
    if isinstance(part, str):
        return c.text(part)
    if not isinstance(part, Mapping):
        return c.approx(c.text(json.dumps(part, default=str)), 0.1)
    kind = part.get("type")
    if kind in ("text", "input_text", "output_text"):
        return c.text(str(part.get("text", "")))
    if kind in ("image_url", "input_image"):
        spec = part.get("image_url", part)
        url = spec.get("url", "") if isinstance(spec, Mapping) else str(spec)
        detail = str(
            (spec.get("detail") if isinstance(spec, Mapping) else None)
            or part.get("detail")
            or "auto"
        )
        size = _png_size(url)
        if detail == "low":
            return 85
        if size is not None:
            return image_tokens(*size, detail=detail)
        return c.approx(_IMAGE_WORST, 1.0)  # size unknown: the worst case, flagged
    if kind in ("input_audio", "file", "input_file"):
        return c.approx(c.text(json.dumps(part, default=str)) // 4, 1.0)
    return c.approx(c.text(json.dumps(part, default=str)), 0.1)


def _openai_content(c: _Counter, content: Any) -> int:
    if content is None:
        return 0
    if isinstance(content, str):
        return c.text(content)
    if isinstance(content, Iterable):
        return sum(_openai_part(c, p) for p in content)
    return c.text(str(content))


def _openai_tools(c: _Counter, tools: Iterable[Any]) -> int:
    """The cookbook's function-definition formula (an estimate, flagged)."""
    tools = list(tools)
    if not tools:
        return 0
    o = _TOOL_OVERHEADS.get(c.name, _TOOL_OVERHEADS["o200k_base"])
    total = 0
    for tool in tools:
        fn = tool.get("function", tool) if isinstance(tool, Mapping) else {}
        total += o["func_init"]
        desc = str(fn.get("description") or "").removesuffix(".")
        total += c.text(f"{fn.get('name', '')}:{desc}")
        props = (fn.get("parameters") or {}).get("properties") or {}
        if props:
            total += o["prop_init"]
            for key, prop in props.items():
                total += o["prop_key"]
                prop = prop if isinstance(prop, Mapping) else {}
                if "enum" in prop:
                    total += o["enum_init"]
                    for item in prop["enum"]:
                        total += o["enum_item"] + c.text(str(item))
                p_desc = str(prop.get("description") or "").removesuffix(".")
                total += c.text(f"{key}:{prop.get('type', '')}:{p_desc}")
    total += o["func_end"]
    return c.approx(total, 0.10)


def _chat_messages(c: _Counter, messages: Iterable[Any]) -> int:
    total = _REPLY_PRIMING
    for message in messages:
        if not isinstance(message, Mapping):
            continue
        total += _PER_MESSAGE
        for key, value in message.items():
            if key == "content":
                total += _openai_content(c, value)
            elif key == "tool_calls":
                for call in value or ():
                    fn = call.get("function", {}) if isinstance(call, Mapping) else {}
                    total += c.approx(
                        c.text(str(fn.get("name", ""))) + c.text(str(fn.get("arguments", ""))) + 3,
                        0.1,
                    )
            elif isinstance(value, str):
                total += c.text(value)
                if key == "name":
                    total += _PER_NAME
    return total


def _responses_input(c: _Counter, body: Mapping[str, Any]) -> int:
    total = 0
    if body.get("instructions"):
        total += _PER_MESSAGE + c.text(str(body["instructions"]))
    items = body.get("input")
    if isinstance(items, str):
        total += _PER_MESSAGE + c.text(items)
    elif isinstance(items, Iterable):
        for item in items:
            if not isinstance(item, Mapping):
                continue
            kind = item.get("type", "message")
            if kind == "message" or "role" in item:
                total += (
                    _PER_MESSAGE
                    + c.text(str(item.get("role", "")))
                    + _openai_content(c, item.get("content"))
                )
            elif kind == "function_call":
                total += c.approx(
                    c.text(str(item.get("name", ""))) + c.text(str(item.get("arguments", ""))) + 3,
                    0.1,
                )
            elif kind == "function_call_output":
                total += c.approx(c.text(str(item.get("output", ""))) + 3, 0.1)
            else:
                total += c.approx(c.text(json.dumps(item, default=str)), 0.2)
    tools = body.get("tools") or ()
    return total + _REPLY_PRIMING + _openai_tools(c, tools)


def _embeddings_input(c: _Counter, value: Any) -> int:
    if isinstance(value, str):
        return c.text(value)
    if isinstance(value, Iterable):
        items = list(value)
        if items and all(isinstance(x, int) for x in items):
            return len(items)  # one array of token ids
        return sum(len(x) if isinstance(x, list) else c.text(str(x)) for x in items)
    return 0


def _anthropic_block(c: _Counter, block: Any) -> int:
    if isinstance(block, str):
        return c.text(block)
    if not isinstance(block, Mapping):
        return c.approx(c.text(json.dumps(block, default=str)), 0.25)
    kind = block.get("type")
    if kind == "text":
        return c.text(str(block.get("text", "")))
    if kind == "image":
        return c.approx(_ANTHROPIC_IMAGE_MAX, 1.0)
    if kind == "document":
        return c.approx(c.text(json.dumps(block.get("source", {}), default=str)) // 2, 1.0)
    if kind == "tool_use":
        return c.approx(
            c.text(str(block.get("name", ""))) + c.text(json.dumps(block.get("input"))) + 10, 0.25
        )
    if kind == "tool_result":
        inner = block.get("content")
        return c.approx(
            (c.text(inner) if isinstance(inner, str) else _anthropic_content(c, inner)) + 10, 0.25
        )
    if kind in ("thinking", "redacted_thinking"):
        return c.approx(c.text(str(block.get("thinking", block.get("data", "")))), 0.25)
    return c.approx(c.text(json.dumps(block, default=str)), 0.25)


def _anthropic_content(c: _Counter, content: Any) -> int:
    if content is None:
        return 0
    if isinstance(content, str):
        return c.text(content)
    return sum(_anthropic_block(c, b) for b in content)


def _anthropic_messages(c: _Counter, body: Mapping[str, Any]) -> int:
    total = _ANTHROPIC_BASE
    total += _anthropic_content(c, body.get("system"))
    for message in body.get("messages") or ():
        if isinstance(message, Mapping):
            total += _ANTHROPIC_PER_MESSAGE + _anthropic_content(c, message.get("content"))
    tools = list(body.get("tools") or ())
    if tools:
        schema = sum(c.text(json.dumps(t, default=str)) for t in tools)
        total += c.approx(_ANTHROPIC_TOOL_PROMPT + int(schema * _ANTHROPIC_TOOL_FACTOR), 0.25)
    # The Anthropic count is o200k-based, not Anthropic's tokenizer: never exact.
    c.exact = False
    c.bound = max(c.bound, 0.10)
    return total


def count_tokens(
    *,
    model: str,
    messages: Iterable[Any] | None = None,
    tools: Iterable[Any] | None = None,
    text: str | None = None,
    provider: str = "openai",
) -> int:
    """Input tokens of a chat request (``messages`` + ``tools``) or of plain ``text``.

    OpenAI models use their exact encoding; Anthropic models (``provider="anthropic"``) use the
    calibrated estimator. For the full picture (exactness, worst-case cost) use
    :func:`estimate_request`.
    """
    encoding, _known = encoding_for_model(model)
    c = _Counter(encoding)
    if text is not None and messages is None:
        return c.text(text)
    if provider == "anthropic":
        return _anthropic_messages(
            c, {"messages": list(messages or ()), "tools": list(tools or ())}
        )
    return _chat_messages(c, messages or ()) + _openai_tools(c, tools or ())


# -- estimates ---------------------------------------------------------------------------------

_TEXT_KEYS = ("messages", "input", "system", "instructions", "tools")


def _utf8_bound(body: Mapping[str, Any]) -> int:
    """A guaranteed upper bound: every BPE token covers at least one UTF-8 byte."""
    size = 0
    for key in _TEXT_KEYS:
        value = body.get(key)
        if value is not None:
            size += (
                len(value.encode())
                if isinstance(value, str)
                else len(json.dumps(value, default=str).encode())
            )
    return size + 64


def _max_output(
    provider: str, endpoint: str, model: str, body: Mapping[str, Any], book: PriceBookLike | None
) -> tuple[int, bool]:
    if endpoint == "embeddings":
        return 0, True
    for key in ("max_completion_tokens", "max_tokens", "max_output_tokens"):
        value = body.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value, True
    if book is not None:
        known = book.max_output_tokens(provider=provider, model=model)
        if known is not None:
            return known, True
    return _DEFAULT_MAX_OUTPUT, False


def estimate_request(
    *,
    provider: str,
    endpoint: str,
    body: Mapping[str, Any],
    pricebook: PriceBookLike | None = None,
    mode: str = "exact",
    unknown_model: str = "fallback",
    at: datetime | None = None,
) -> Estimate:
    """Worst-case input tokens, output tokens and cost of one request before it is sent.

    ``body`` is what the SDK would send (the keyword arguments of the SDK method).
    ``mode``: ``"exact"`` tokenizes; ``"bound"`` returns a cheap guaranteed upper bound.
    ``unknown_model``: ``"fallback"`` (default) prices an unknown model as a reference model
    of the same provider and flags the estimate; ``"zero"`` leaves ``cost_max`` None.
    """
    model = str(body.get("model") or "")
    encoding, known = encoding_for_model(model)
    if mode == "bound":
        n_in, exact, bound, method = _utf8_bound(body), False, 3.0, "bound:utf8-bytes"
    else:
        c = _Counter(encoding)
        if endpoint == "embeddings":
            n_in = _embeddings_input(c, body.get("input"))
        elif endpoint == "responses":
            n_in = _responses_input(c, body)
        elif provider == "anthropic" or endpoint == "messages":
            n_in = _anthropic_messages(c, body)
        else:
            n_in = _chat_messages(c, body.get("messages") or ()) + _openai_tools(
                c, body.get("tools") or ()
            )
        exact, bound = c.exact, c.bound
        method = f"{'calibrated-o200k' if provider == 'anthropic' else encoding}:{endpoint}"
    fallback = not known and provider == "openai"
    out_max, out_known = _max_output(provider, endpoint, model, body, pricebook)
    fallback = fallback or not out_known
    cost: Decimal | None = None
    if pricebook is not None:
        usage = Usage(input_tokens=n_in, output_tokens=out_max)
        when = at or datetime.now(UTC)
        priced = pricebook.price(provider=provider, model=model, usage=usage, at=when)
        if getattr(priced, "status", "priced") == "unknown_model":
            fallback = True
            if unknown_model == "fallback":
                reference = "claude-sonnet-4-5" if provider == "anthropic" else "gpt-4o"
                priced = pricebook.price(provider=provider, model=reference, usage=usage, at=when)
                cost = priced.total
        else:
            cost = priced.total
    return Estimate(
        input_tokens=n_in,
        output_tokens_max=out_max,
        cost_max=cost,
        exact=exact and known,
        error_bound=bound if known else max(bound, 0.25),
        method=method,
        model=model,
        fallback=fallback,
    )
