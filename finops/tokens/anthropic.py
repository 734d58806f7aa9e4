"""Calibrated estimate of Anthropic input tokens (no public Claude tokenizer exists).

Text is counted with ``o200k_base`` × the group's ``text_factor``; the hidden parts Anthropic
adds (message frames, the tool-use system prompt, the thinking prompt, server tools,
structured-output instructions, image and document frames) are per-group constants. Both
are data (``data/models.json`` → ``anthropic``): a *group* is a set of Claude models that
share a tokenizer and prompt templates (``claude-3``: Claude 2/3.x, ``claude-4``: 4.0–4.6,
``claude-next``: Opus 4.7 and later, a newer tokenizer not yet measured here). Each fitted
constant lists the recorded calls that support it; ``tests/fixtures/calibration/fit.py``
refits them on the train split. Never exact: once the response arrives, the provider's own
count replaces the estimate.

Every approximated part also records how much more the provider may bill for it
(:meth:`Counter.upto` / :meth:`Counter.approx`), so ``estimate + slack`` is an upper bound.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from finops.tokens.counter import Counter
from finops.tokens.encodings import DATA_DIR
from finops.tokens.images import ANTHROPIC_IMAGE_MAX, anthropic_image_tokens, image_size

__all__ = ["TEXT_BOUND", "AnthropicGroup", "group_for", "messages_tokens"]

TEXT_BOUND = 0.20  # stated relative bound of Claude text vs the calibrated o200k count
TOOL_DEF_UPPER = 2.5
THINKING_PROMPT_MAX = 29  # thinking={"type": "enabled"} on claude-4 (8 recorded calls)
PARTS_BOUND = 0.25  # tools, tool blocks, thinking, schemas, images of known size
# Documented maxima for what the request does not show (Anthropic docs: vision, PDF support,
# server tools). An image is resized to ≤ 1.15 MP (≤ ~1600 tokens); a PDF page costs its
# text (≤ ~3,000 tokens a dense page) plus a page image (≤ 1600).
PDF_PAGE_TYPICAL = 1500
PDF_PAGE_MAX = 3000 + ANTHROPIC_IMAGE_MAX
IMAGE_TYPICAL = 1200  # an image of unknown size (URL, file id): a typical photo
# Server tools run on Anthropic's side and feed their results back as input: web search
# results and fetched pages. The most one use may add (a page is truncated by the provider);
# without ``max_uses`` the bound assumes this many uses.
SERVER_TOOL_RESULT_MAX = 12_000
SERVER_TOOL_DEFAULT_USES = 5


@dataclass(frozen=True, slots=True)
class AnthropicGroup:
    """Constants of one Claude model group (see ``data/models.json``)."""

    name: str
    measured: bool
    text_factor: float  # Claude tokens per o200k token on prose
    text_upper: float  # the most Claude tokens per o200k token (ASCII text)
    base: int  # per request
    per_message: int
    system: int  # a system prompt's frame
    tool_prompt: int  # the tool-use system prompt (tool_choice auto / none)
    tool_prompt_forced: int  # tool_choice any / tool
    tool_def_factor: float  # per compact-JSON o200k token of a tool definition
    tool_def_frame: int  # per tool definition
    tool_use_frame: int
    tool_result_frame: int
    thinking_enabled: int
    thinking_adaptive: int
    thinking_block_frame: int
    schema_frame: int  # structured-output instructions beyond the schema's JSON
    task_budget: int  # output_config.task_budget instructions
    image_frame: int
    document_frame: int
    server_tools: Mapping[str, int]  # fixed prompt of each server tool (by type prefix)
    server_tool_unknown: int


@cache
def _groups() -> tuple[list[tuple[str, str]], dict[str, AnthropicGroup]]:
    data = json.loads((DATA_DIR / "models.json").read_text(encoding="utf-8"))["anthropic"]
    defaults = data["defaults"]
    groups: dict[str, AnthropicGroup] = {}
    for name, spec in data["groups"].items():
        merged = {**defaults, **{k: v for k, v in spec.items() if not k.startswith("_")}}
        if isinstance(merged.get("server_tools"), Mapping):
            merged["server_tools"] = dict(defaults["server_tools"], **spec.get("server_tools", {}))
        values = {
            k: (v["value"] if isinstance(v, Mapping) and "value" in v else v)
            for k, v in merged.items()
            if k in AnthropicGroup.__slots__
        }
        groups[name] = AnthropicGroup(name=name, **values)
    prefixes = sorted(data["prefixes"].items(), key=lambda kv: -len(kv[0]))
    for prefix, group in prefixes:
        if group not in groups:
            raise ValueError(f"models.json: anthropic prefix {prefix!r} names unknown {group!r}")
    return prefixes, groups


@cache
def group_for(model: str) -> AnthropicGroup:
    """The constants group of a Claude model id (unknown ids: the newest group)."""
    prefixes, groups = _groups()
    name = model.strip().lower().removeprefix("anthropic/")
    for prefix, group in prefixes:
        if name.startswith(prefix):
            return groups[group]
    return groups["claude-next"]


class _Walk:
    """One request's walk: the counter, the group, and whether thinking blocks count."""

    __slots__ = ("c", "g", "keep_thinking")

    def __init__(self, c: Counter, g: AnthropicGroup) -> None:
        self.c = c
        self.g = g
        self.keep_thinking = True

    def text(self, value: str) -> int:
        c = self.c
        n = c.text(value)
        if not n:
            return 0
        if c.bytes_mode:  # bytes bound every tokenizer's count already
            return n
        # Every Claude token stands for at least one UTF-8 byte: bytes cap both figures.
        size = len(value) if value.isascii() else len(value.encode())
        est = n if self.g.text_factor == 1.0 else min(size, math.ceil(n * self.g.text_factor))
        # ASCII text: text_upper per o200k token; any other character: its UTF-8 bytes.
        other = 0 if value.isascii() else size - len(value.encode("ascii", "ignore"))
        most = min(size, math.ceil(n * self.g.text_upper) + other)
        c.slack += max(0, most - est)
        return est

    def json(self, value: Any) -> int:
        return self.text(
            value
            if isinstance(value, str)
            else json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)
        )

    def block(self, block: Any) -> int:
        c, g = self.c, self.g
        if isinstance(block, str):
            return self.text(block)
        if not isinstance(block, Mapping):
            return c.approx(self.json(block), PARTS_BOUND, "unknown content block")
        kind = block.get("type")
        if kind == "text":
            return self.text(str(block.get("text") or ""))
        if kind == "image":
            return self.image(block.get("source"))
        if kind == "document":
            return self.document(block)
        if kind in ("tool_use", "server_tool_use"):
            n = self.text(str(block.get("name") or "")) + self.json(block.get("input") or {})
            return c.approx(n + g.tool_use_frame, PARTS_BOUND, "tool_use blocks")
        if kind == "tool_result":
            inner = block.get("content")
            n = self.text(inner) if isinstance(inner, str) else self.content(inner)
            return c.approx(n + g.tool_result_frame, PARTS_BOUND, "tool_result blocks")
        if kind == "thinking":
            n = self.text(str(block.get("thinking") or "")) + g.thinking_block_frame
            if not self.keep_thinking:  # earlier turns' thinking is stripped by the provider
                most = math.ceil(n * (1 + PARTS_BOUND))
                return c.upto(0, most, "thinking blocks of earlier turns (stripped)")
            return c.approx(n, PARTS_BOUND, "thinking blocks")
        if kind == "redacted_thinking":
            data = str(block.get("data") or "")
            # Encrypted: about 1 token per 3 base64 characters at most; typically far fewer.
            most = len(data) // 3 + g.thinking_block_frame
            # ~1 token per 10 characters (the recorded call: len/4 was +150%).
            typical = 0 if not self.keep_thinking else len(data) // 10 + g.thinking_block_frame
            return c.upto(typical, most, "redacted thinking")
        if kind in (
            "web_search_tool_result",
            "web_fetch_tool_result",
            "code_execution_tool_result",
        ):
            n = self.json(block.get("content"))
            return c.approx(n, 1.0, "server tool results")
        return c.approx(self.json(block), PARTS_BOUND, f"content block {kind}")

    def image(self, source: Any) -> int:
        c, g = self.c, self.g
        if isinstance(source, Mapping) and source.get("type") == "base64":
            size = image_size(str(source.get("data") or ""))
            if size is not None:
                n = anthropic_image_tokens(*size) - 7 + g.image_frame
                return c.approx(n, PARTS_BOUND, "images")
        # A URL or file id: the size is unknown and finops never fetches it.
        most = ANTHROPIC_IMAGE_MAX + g.image_frame
        return c.upto(IMAGE_TYPICAL, most, "image size unknown (bound: the documented maximum)")

    def document(self, block: Mapping[str, Any]) -> int:
        from finops.tokens.openai import pdf_pages

        c, g = self.c, self.g
        source = block.get("source")
        n = (
            g.document_frame
            + self.text(str(block.get("title") or ""))
            + self.text(str(block.get("context") or ""))
        )
        if isinstance(source, Mapping):
            kind = source.get("type")
            if kind == "text":
                return c.approx(
                    n + self.text(str(source.get("data") or "")), PARTS_BOUND, "documents"
                )
            if kind == "content":
                return c.approx(n + self.content(source.get("content")), PARTS_BOUND, "documents")
            if kind == "base64":
                data = str(source.get("data") or "")
                pages = max(1, pdf_pages(data))
                return c.upto(
                    n + pages * PDF_PAGE_TYPICAL,
                    n + pages * PDF_PAGE_MAX,
                    "PDF documents (bound: documented per-page maximum)",
                )
        # URL or file id: page count unknown; Anthropic accepts up to 100 pages.
        return c.upto(n + PDF_PAGE_TYPICAL, n + 100 * PDF_PAGE_MAX, "documents of unknown size")

    def content(self, content: Any) -> int:
        if content is None:
            return 0
        if isinstance(content, str):
            return self.text(content)
        if isinstance(content, Iterable) and not isinstance(content, Mapping):
            return sum(self.block(b) for b in content)
        return self.block(content)

    def tools(self, tools: list[Any], tool_choice: Any) -> int:
        c, g = self.c, self.g
        client_tools = 0
        total = 0
        for tool in tools:
            if not isinstance(tool, Mapping):
                continue
            kind = str(tool.get("type") or "custom")
            if kind == "custom" or "input_schema" in tool:
                client_tools += 1
                spec = {
                    k: v for k, v in tool.items() if k not in ("cache_control", "strict", "type")
                }
                # Rendered by the provider in its own format: o200k of the compact JSON × a
                # fitted factor (the text factor does not apply).
                raw = c.json(spec)
                n = math.ceil(raw * g.tool_def_factor) + g.tool_def_frame
                total += c.approx(n, PARTS_BOUND, "tool definitions")
                # Upper bound: up to 2.5 tokens per o200k token of the JSON (+ the frame);
                # a 15-tool request on claude-sonnet-4-5 needed 2.2.
                c.slack += max(0.0, TOOL_DEF_UPPER * raw + g.tool_def_frame - n * (1 + PARTS_BOUND))
                continue
            prompt = next((v for k, v in g.server_tools.items() if kind.startswith(k)), None)
            uses = tool.get("max_uses")
            uses = uses if isinstance(uses, int) and uses > 0 else SERVER_TOOL_DEFAULT_USES
            runs_server_side = not kind.startswith(("bash", "text_editor", "computer", "memory"))
            results = uses * SERVER_TOOL_RESULT_MAX if runs_server_side else 0
            if prompt is not None:
                total += c.upto(prompt, math.ceil(prompt * 1.25) + results, f"server tool {kind}")
            else:
                total += c.upto(
                    g.server_tool_unknown,
                    2 * g.server_tool_unknown + results,
                    f"server tool {kind} (prompt not measured)",
                )
        if client_tools:
            choice = tool_choice.get("type") if isinstance(tool_choice, Mapping) else None
            if choice == "none":
                prompt = g.tool_prompt
            elif choice in ("any", "tool"):
                prompt = g.tool_prompt_forced
            else:
                prompt = g.tool_prompt
            total += c.approx(prompt, PARTS_BOUND, "tool-use system prompt")
        return total


def messages_tokens(c: Counter, body: Mapping[str, Any]) -> int:
    """Estimated input tokens of an Anthropic ``messages.create`` request."""
    g = group_for(str(body.get("model") or ""))
    w = _Walk(c, g)
    total = g.base
    system = body.get("system")
    if system:
        total += g.system + w.content(system)
    messages = [m for m in body.get("messages") or () if isinstance(m, Mapping)]
    # Thinking blocks of earlier assistant turns are stripped, except in the tool loop that
    # the last user turn continues (its tool_result answers the last assistant turn).
    last_assistant = max(
        (i for i, m in enumerate(messages) if m.get("role") == "assistant"), default=-1
    )
    continues_tools = bool(messages) and _has_tool_result(messages[-1])
    for i, message in enumerate(messages):
        if message.get("role") == "assistant":
            w.keep_thinking = i == last_assistant and continues_tools
        total += g.per_message + w.content(message.get("content"))
    w.keep_thinking = True
    tools = body.get("tools")
    if tools:
        total += w.tools(list(tools), body.get("tool_choice"))
    thinking = body.get("thinking")
    if isinstance(thinking, Mapping):
        kind = thinking.get("type")
        if kind in ("enabled", "adaptive"):
            value = g.thinking_enabled if kind == "enabled" else g.thinking_adaptive
            # Bounded by the largest thinking prompt measured on any group (+25%).
            most = math.ceil(max(value, THINKING_PROMPT_MAX) * (1 + PARTS_BOUND))
            total += c.upto(value, most, "thinking prompt")
    config = body.get("output_config")
    config = config if isinstance(config, Mapping) else {}
    fmt = config.get("format")
    if fmt is None:
        fmt = body.get("output_format")  # the beta spelling
    if isinstance(fmt, Mapping) and fmt.get("schema") is not None:
        n = w.json(fmt["schema"]) + g.schema_frame
        total += c.approx(n, PARTS_BOUND, "structured output instructions")
    if config.get("task_budget") is not None:
        total += c.upto(g.task_budget, 2 * g.task_budget, "task budget instructions")
    # Claude's tokenizer is not public: even plain text is an estimate.
    c.approx(0, TEXT_BOUND if g.measured else 0.35, f"Claude tokenizer ({g.name}) approximated")
    return total


def _has_tool_result(message: Mapping[str, Any]) -> bool:
    content = message.get("content")
    if not isinstance(content, list):
        return False
    return any(isinstance(b, Mapping) and b.get("type") == "tool_result" for b in content)
