"""Calibrated estimate of Anthropic input tokens (no public Claude tokenizer exists).

Text is counted with ``o200k_base`` × :data:`TEXT_FACTOR`, and the hidden parts Anthropic adds
(message frames, the tool-use system prompt, the thinking prompt, server tools, structured
output, image frames) are constants fitted on real recorded calls
(``/work/shared/data/tokens/anthropic_recorded.jsonl``, claude sonnet/haiku/opus 4.x). How
each constant was fitted and the measured error are in ``docs/tokens.md``. Never exact:
once the response arrives, the provider's own count replaces the estimate.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from finops.tokens.counter import Counter
from finops.tokens.images import ANTHROPIC_IMAGE_MAX, anthropic_image_tokens, image_size
from finops.tokens.openai import PDF_PAGE_TOKENS, pdf_pages

__all__ = ["TEXT_BOUND", "messages_tokens"]

# -- calibration (docs/tokens.md §Anthropic) -------------------------------------------------
BASE = 3  # fitted: one user text message = o200k(text) + 7
PER_MESSAGE = 4
TEXT_FACTOR = 1.0  # short English prompts matched o200k exactly (9 of 9 text-only calls)
THINKING_ENABLED = 29  # thinking={"type": "enabled"}: +29 on sonnet-4-5 and haiku-4-5
THINKING_ADAPTIVE = 17  # thinking={"type": "adaptive"}: +17 on opus-4-6
TOOL_PROMPT = 512  # tool-use system prompt (haiku-4-5, tool_choice auto)
TOOL_PROMPT_FORCED = TOOL_PROMPT - 33  # tool_choice any/tool: Anthropic documents 33 fewer
TOOL_USE_FRAME = 19  # an assistant tool_use block, beyond its name and JSON input
TOOL_RESULT_FRAME = 19  # a user tool_result block, beyond its content
THINKING_BLOCK_FRAME = 10  # a thinking block replayed in a tool loop, beyond its text
SCHEMA_FRAME = 162  # output_config.format json_schema, beyond the schema's JSON tokens
DOCUMENT_FRAME = 10
# Server tools: their hidden prompt (measured for web_search); others are unknown.
SERVER_TOOL_PROMPTS = {"web_search": 2010}
SERVER_TOOL_UNKNOWN = 1000
# Relative error bounds stated for each part (docs/tokens.md).
TEXT_BOUND = 0.20  # o200k vs Claude's tokenizer on longer or non-English text (a prior)
PARTS_BOUND = 0.25  # tools, tool blocks, thinking, schemas, images of known size
UNKNOWN_BOUND = 1.0  # remote images, PDFs, server tools without a measured prompt


def _text(c: Counter, value: str) -> int:
    n = c.text(value)
    return n if TEXT_FACTOR == 1.0 else int(n * TEXT_FACTOR + 0.999)


def _block(c: Counter, block: Any) -> int:
    if isinstance(block, str):
        return _text(c, block)
    if not isinstance(block, Mapping):
        return c.approx(c.json(block), PARTS_BOUND, "unknown content block")
    kind = block.get("type")
    if kind == "text":
        return _text(c, str(block.get("text") or ""))
    if kind == "image":
        return _image(c, block.get("source"))
    if kind == "document":
        return _document(c, block)
    if kind in ("tool_use", "server_tool_use"):
        n = c.text(str(block.get("name") or "")) + c.json(block.get("input") or {})
        return c.approx(n + TOOL_USE_FRAME, PARTS_BOUND, "tool_use blocks")
    if kind == "tool_result":
        inner = block.get("content")
        n = _text(c, inner) if isinstance(inner, str) else content_tokens(c, inner)
        return c.approx(n + TOOL_RESULT_FRAME, PARTS_BOUND, "tool_result blocks")
    if kind == "thinking":
        n = _text(c, str(block.get("thinking") or ""))
        return c.approx(n + THINKING_BLOCK_FRAME, PARTS_BOUND, "thinking blocks")
    if kind == "redacted_thinking":
        data = str(block.get("data") or "")
        return c.approx(len(data) // 4 + THINKING_BLOCK_FRAME, UNKNOWN_BOUND, "redacted thinking")
    if kind == "web_search_tool_result":
        return c.approx(c.json(block.get("content")), UNKNOWN_BOUND, "web search results")
    return c.approx(c.json(block), PARTS_BOUND, f"content block {kind}")


def _image(c: Counter, source: Any) -> int:
    if isinstance(source, Mapping) and source.get("type") == "base64":
        size = image_size(str(source.get("data") or ""))
        if size is not None:
            return c.approx(anthropic_image_tokens(*size), PARTS_BOUND, "images")
    # A URL or file id: the size is unknown and finops never fetches it. The most it costs.
    return c.approx(ANTHROPIC_IMAGE_MAX, UNKNOWN_BOUND, "image size unknown")


def _document(c: Counter, block: Mapping[str, Any]) -> int:
    source = block.get("source")
    n = (
        DOCUMENT_FRAME
        + _text(c, str(block.get("title") or ""))
        + _text(c, str(block.get("context") or ""))
    )
    if isinstance(source, Mapping):
        kind = source.get("type")
        if kind == "text":
            return c.approx(n + _text(c, str(source.get("data") or "")), PARTS_BOUND, "documents")
        if kind == "content":
            return c.approx(n + content_tokens(c, source.get("content")), PARTS_BOUND, "documents")
        if kind == "base64":
            pages = pdf_pages(str(source.get("data") or ""))
            return c.approx(n + max(1, pages) * PDF_PAGE_TOKENS, UNKNOWN_BOUND, "PDF documents")
    return c.approx(n + PDF_PAGE_TOKENS, UNKNOWN_BOUND, "documents of unknown size")


def content_tokens(c: Counter, content: Any) -> int:
    """Tokens of a ``content`` (string or list of blocks) or ``system`` value."""
    if content is None:
        return 0
    if isinstance(content, str):
        return _text(c, content)
    if isinstance(content, Iterable) and not isinstance(content, Mapping):
        return sum(_block(c, b) for b in content)
    return _block(c, content)


def _tools(c: Counter, tools: list[Any], tool_choice: Any) -> int:
    client_tools = 0
    total = 0
    for tool in tools:
        if not isinstance(tool, Mapping):
            continue
        kind = str(tool.get("type") or "custom")
        if kind == "custom" or "input_schema" in tool:
            client_tools += 1
            total += c.json({k: v for k, v in tool.items() if k != "cache_control"})
            continue
        name = str(tool.get("name") or kind)
        known = SERVER_TOOL_PROMPTS.get(name)
        if known is not None:
            total += c.approx(known, PARTS_BOUND, f"server tool {name}")
        else:
            total += c.approx(SERVER_TOOL_UNKNOWN, UNKNOWN_BOUND, f"server tool {name}")
    if client_tools:
        forced = isinstance(tool_choice, Mapping) and tool_choice.get("type") in ("any", "tool")
        total += TOOL_PROMPT_FORCED if forced else TOOL_PROMPT
        c.approx(0, PARTS_BOUND, "tool definitions")
    return total


def messages_tokens(c: Counter, body: Mapping[str, Any]) -> int:
    """Estimated input tokens of an Anthropic ``messages.create`` request."""
    total = BASE
    system = body.get("system")
    if system:
        total += PER_MESSAGE + content_tokens(c, system)
    for message in body.get("messages") or ():
        if isinstance(message, Mapping):
            total += PER_MESSAGE + content_tokens(c, message.get("content"))
    tools = body.get("tools")
    if tools:
        total += _tools(c, list(tools), body.get("tool_choice"))
    thinking = body.get("thinking")
    if isinstance(thinking, Mapping):
        kind = thinking.get("type")
        if kind == "enabled":
            total += c.approx(THINKING_ENABLED, PARTS_BOUND, "thinking prompt")
        elif kind == "adaptive":
            total += c.approx(THINKING_ADAPTIVE, PARTS_BOUND, "thinking prompt")
    config = body.get("output_config")
    fmt = config.get("format") if isinstance(config, Mapping) else None
    if fmt is None:
        fmt = body.get("output_format")  # the beta spelling
    if isinstance(fmt, Mapping) and fmt.get("schema") is not None:
        n = c.json(fmt["schema"]) + SCHEMA_FRAME
        total += c.approx(n, PARTS_BOUND, "structured output schema")
    # Claude's tokenizer is not public: even plain text is an estimate.
    c.approx(0, TEXT_BOUND, "Claude tokenizer approximated by o200k_base")
    return total
