"""Input tokens of OpenAI requests: chat completions, responses and embeddings.

Chat format (OpenAI cookbook, "How to count tokens with tiktoken"): every message costs 3
tokens plus its role and content, a ``name`` costs one more, and 3 tokens prime the reply.
This reproduces the provider's count exactly for text messages on the gpt-3.5/gpt-4/gpt-4o
families. Tool definitions follow the cookbook's function-schema formula (an estimate);
tool calls, tool results, structured-output schemas and the responses API's hidden tokens
use constants measured on recorded calls (docs/tokens.md). Images use the documented tile
or patch formula.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable, Mapping
from typing import Any

from finops.tokens.counter import Counter
from finops.tokens.images import image_size, openai_image_tokens, openai_image_worst
from finops.tokens.models import ModelFamily

__all__ = ["chat_tokens", "embeddings_tokens", "responses_tokens", "tools_tokens"]

PER_MESSAGE = 3
PER_NAME = 1
REPLY_PRIMING = 3
# Cookbook function-definition overheads ("counting tokens for chat completions with tools").
_TOOL_CONSTANTS = {
    "o200k_base": (7, 3, 3, -3, 3, 12),
    "cl100k_base": (10, 3, 3, -3, 3, 12),
}
# Measured on recorded calls (docs/tokens.md): the frame around one tool call and one tool
# result, beyond the tokens of their name, arguments and output. In chat the call sits in
# an assistant message that already paid its 3 + role tokens; in responses it is an item.
CHAT_TOOL_CALL_FRAME = 0
RESPONSES_TOOL_CALL_FRAME = 8
TOOL_RESULT_FRAME = 3
# Measured (1 call, gpt-4o-mini): a json_schema format costs its compact JSON tokens minus
# this much (the provider renders schemas slightly more compactly than JSON).
SCHEMA_FRAME = -6
# Relative bounds of the approximated parts: tool definitions on cookbook-verified families
# (gpt-3.5/4/4o) and on the others, tool calls included (measured -37% on gpt-4.1-mini).
TOOLS_BOUND_VERIFIED = 0.10
TOOLS_BOUND = 0.40
CALLS_BOUND = 0.25
CHAT_BOUND = 0.10  # families where the chat format is not verified exact
# PDF pages: text plus a page image; no public formula, so a generous per-page figure.
PDF_PAGE_TOKENS = 3000
_PDF_PAGE = re.compile(rb"/Type\s*/Page(?!s)")


def _part(c: Counter, fam: ModelFamily, part: Any) -> int:
    if isinstance(part, str):
        return c.text(part)
    if not isinstance(part, Mapping):
        return c.approx(c.json(part), 0.25, "unknown content part")
    kind = part.get("type")
    if kind in ("text", "input_text", "output_text"):
        return c.text(str(part.get("text") or ""))
    if kind == "refusal":
        return c.text(str(part.get("refusal") or ""))
    if kind in ("image_url", "input_image"):
        return _image(c, fam, part)
    if kind in ("file", "input_file"):
        return _file(c, part.get("file", part))
    if kind == "input_audio":
        audio = part.get("input_audio") or {}
        data = str(audio.get("data") or "") if isinstance(audio, Mapping) else ""
        # ~10 audio tokens a second; 16 kHz 16-bit mono WAV is 32 kB a second.
        return c.approx(max(1, len(data) * 3 // 4 // 3200), 1.0, "audio")
    return c.approx(c.json(part), 0.25, "unknown content part")


def _image(c: Counter, fam: ModelFamily, part: Mapping[str, Any]) -> int:
    spec = part.get("image_url", part)
    if isinstance(spec, Mapping):
        url = str(spec.get("url") or spec.get("image_url") or "")
        detail = str(spec.get("detail") or part.get("detail") or "auto")
    else:
        url, detail = str(spec or ""), str(part.get("detail") or "auto")
    rule = fam.image
    if rule is None:
        from finops.tokens.models import family_for

        rule = family_for("gpt-4o").image
        assert rule is not None
        c.approx(0, 0.25, "image on a model without a known image rule")
    if detail == "low" and rule.kind == "tile":
        return rule.base
    size = image_size(url) if url.startswith("data:") else None
    if size is None:
        # Remote or unreadable image: the most it can cost (never fetched).
        return c.approx(openai_image_worst(rule, detail=detail), 1.0, "image size unknown")
    return openai_image_tokens(size[0], size[1], rule=rule, detail=detail)


def _file(c: Counter, spec: Any) -> int:
    data = ""
    if isinstance(spec, Mapping):
        data = str(spec.get("file_data") or "")
    pages = pdf_pages(data) if data else 0
    return c.approx(max(1, pages) * PDF_PAGE_TOKENS, 1.0, "file input")


def pdf_pages(data: str) -> int:
    """Pages in a base64 PDF (or data URL), 0 if unreadable."""
    if data.startswith("data:"):
        data = data.partition(",")[2]
    try:
        raw = base64.b64decode(data[: len(data) - len(data) % 4])
    except (binascii.Error, ValueError):
        return 0
    return len(_PDF_PAGE.findall(raw))


def content_tokens(c: Counter, fam: ModelFamily, content: Any) -> int:
    """Tokens of a message's ``content``: a string or a list of parts."""
    if content is None:
        return 0
    if isinstance(content, str):
        return c.text(content)
    if isinstance(content, Iterable) and not isinstance(content, Mapping):
        return sum(_part(c, fam, p) for p in content)
    return _part(c, fam, content)


def _tool_call(c: Counter, name: Any, arguments: Any, frame: int) -> int:
    n = c.text(str(name or "")) + c.json(arguments if arguments is not None else "")
    return c.approx(n + frame, CALLS_BOUND, "tool calls")


def chat_tokens(c: Counter, fam: ModelFamily, body: Mapping[str, Any]) -> int:
    """Prompt tokens of a chat completions request (messages, tools, response format)."""
    total = REPLY_PRIMING
    for message in body.get("messages") or ():
        if not isinstance(message, Mapping):
            continue
        total += PER_MESSAGE
        for key, value in message.items():
            if key == "content":
                total += content_tokens(c, fam, value)
            elif key == "role":
                total += c.text(str(value))
            elif key == "name":
                total += c.text(str(value)) + PER_NAME
            elif key == "tool_calls":
                for call in value or ():
                    fn = call.get("function") if isinstance(call, Mapping) else None
                    if isinstance(fn, Mapping):
                        total += _tool_call(
                            c, fn.get("name"), fn.get("arguments"), CHAT_TOOL_CALL_FRAME
                        )
                    elif isinstance(call, Mapping):  # custom tools carry "custom": {input}
                        total += c.approx(c.json(call), CALLS_BOUND, "tool calls")
            elif key == "function_call" and isinstance(value, Mapping):
                total += _tool_call(
                    c, value.get("name"), value.get("arguments"), CHAT_TOOL_CALL_FRAME
                )
            elif key == "refusal" and isinstance(value, str):
                total += c.text(value)
            # tool_call_id, id, audio ids: metadata the model does not read as text.
        if message.get("role") == "tool":
            total += c.approx(TOOL_RESULT_FRAME, CALLS_BOUND, "tool results")
    tools = body.get("tools") or body.get("functions") or ()
    total += tools_tokens(c, fam, tools)
    total += _response_format(c, body.get("response_format"))
    _unverified(c, fam)
    return total


def _unverified(c: Counter, fam: ModelFamily) -> None:
    if fam.chat_exact:
        return
    c.approx(0, CHAT_BOUND, f"chat format not verified for {fam.name}")
    if any(n.startswith("tool") for n in c.notes):
        c.approx(0, TOOLS_BOUND, f"tools on {fam.name}")


def _response_format(c: Counter, fmt: Any) -> int:
    if not isinstance(fmt, Mapping) or fmt.get("type") != "json_schema":
        return 0
    spec = fmt.get("json_schema", fmt)
    schema = spec.get("schema") if isinstance(spec, Mapping) else None
    if schema is None:
        return 0
    return c.approx(max(0, c.json(schema) + SCHEMA_FRAME), 0.25, "structured output schema")


def tools_tokens(c: Counter, fam: ModelFamily, tools: Iterable[Any]) -> int:
    """The cookbook's function-definition formula (an estimate, flagged)."""
    tools = list(tools)
    if not tools:
        return 0
    func_init, prop_init, prop_key, enum_init, enum_item, func_end = _TOOL_CONSTANTS.get(
        fam.tools_encoding, _TOOL_CONSTANTS["o200k_base"]
    )
    total = 0
    for tool in tools:
        if not isinstance(tool, Mapping):
            continue
        kind = tool.get("type", "function")
        if kind != "function":  # built-in tools (web_search, file_search, ...): hidden prompts
            total += c.approx(c.json(tool), 1.0, f"built-in tool {kind}")
            continue
        fn = tool.get("function", tool)
        if not isinstance(fn, Mapping):
            continue
        total += func_init
        desc = str(fn.get("description") or "").removesuffix(".")
        total += c.text(f"{fn.get('name', '')}:{desc}")
        params = fn.get("parameters")
        props = params.get("properties") if isinstance(params, Mapping) else None
        if isinstance(props, Mapping) and props:
            total += prop_init
            for key, prop in props.items():
                total += prop_key
                prop = prop if isinstance(prop, Mapping) else {}
                enum = prop.get("enum")
                if isinstance(enum, list):
                    total += enum_init
                    for item in enum:
                        total += enum_item + c.text(str(item))
                p_desc = str(prop.get("description") or "").removesuffix(".")
                p_type = prop.get("type", "")
                if not isinstance(p_type, str):  # e.g. ["string", "null"] or a nested schema
                    p_type = c_json_type(p_type)
                total += c.text(f"{key}:{p_type}:{p_desc}")
                nested = {k: v for k, v in prop.items() if k in ("properties", "items", "anyOf")}
                if nested:  # the cookbook formula ignores nested schemas; count their JSON
                    total += c.json(nested)
    total += func_end
    bound = TOOLS_BOUND_VERIFIED if fam.chat_exact else TOOLS_BOUND
    return c.approx(total, bound, "tool definitions")


def c_json_type(value: Any) -> str:
    """A type union such as ``["string", "null"]`` written the way the schema renders it."""
    if isinstance(value, list):
        return " | ".join(str(v) for v in value)
    return str(value)


def responses_tokens(c: Counter, fam: ModelFamily, body: Mapping[str, Any]) -> int:
    """Input tokens of a responses request (instructions, input items, tools, text format)."""
    total = REPLY_PRIMING
    instructions = body.get("instructions")
    if isinstance(instructions, str) and instructions:
        total += PER_MESSAGE + 1 + c.text(instructions)  # a developer message
    items = body.get("input")
    if isinstance(items, str):
        total += PER_MESSAGE + 1 + c.text(items)
    elif isinstance(items, Iterable):
        for item in items:
            if isinstance(item, Mapping):
                total += _response_item(c, fam, item)
    total += tools_tokens(c, fam, body.get("tools") or ())
    text = body.get("text")
    fmt = text.get("format") if isinstance(text, Mapping) else None
    total += _response_format(c, fmt)
    if fam.responses_extra:
        total += c.approx(fam.responses_extra, 0.25, f"responses API frame for {fam.name}")
    _unverified(c, fam)
    return total


def _response_item(c: Counter, fam: ModelFamily, item: Mapping[str, Any]) -> int:
    kind = item.get("type", "message")
    if kind == "message" or (kind is None and "role" in item):
        return (
            PER_MESSAGE
            + c.text(str(item.get("role") or ""))
            + content_tokens(c, fam, item.get("content"))
        )
    if kind in ("function_call", "custom_tool_call"):
        return _tool_call(
            c,
            item.get("name"),
            item.get("arguments", item.get("input")),
            RESPONSES_TOOL_CALL_FRAME,
        )
    if kind in ("function_call_output", "custom_tool_call_output"):
        out = item.get("output")
        n = c.text(out) if isinstance(out, str) else content_tokens(c, fam, out)
        return c.approx(n + TOOL_RESULT_FRAME + PER_MESSAGE, CALLS_BOUND, "tool results")
    if kind == "reasoning":
        # Encrypted reasoning carried between turns: its size is the best available proxy.
        summary = " ".join(
            str(s.get("text", "")) for s in item.get("summary") or () if isinstance(s, Mapping)
        )
        enc = str(item.get("encrypted_content") or "")
        return c.approx(c.text(summary) + len(enc) // 4, 1.0, "reasoning items")
    if kind == "item_reference":
        return c.approx(0, 1.0, "item references (stored server-side)")
    return c.approx(c.json(item), 0.5, f"input item {kind}")


def embeddings_tokens(c: Counter, value: Any) -> int:
    """Tokens of an embeddings ``input``: a string, a list of strings, or token arrays."""
    if isinstance(value, str):
        return c.text(value)
    if not isinstance(value, Iterable) or isinstance(value, Mapping):
        return 0
    items = list(value)
    if items and all(isinstance(x, int) and not isinstance(x, bool) for x in items):
        return len(items)  # one array of token ids
    total = 0
    for x in items:
        if isinstance(x, str):
            total += c.text(x)
        elif isinstance(x, Iterable):
            total += len(list(x))
    return total
