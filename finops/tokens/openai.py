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
import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

from finops.tokens.counter import Counter, json_text
from finops.tokens.images import image_size, openai_image_tokens, openai_image_worst
from finops.tokens.models import ModelFamily

__all__ = ["chat_tokens", "embeddings_tokens", "responses_tokens", "tools_tokens"]

PER_MESSAGE = 3
PER_NAME = 1
REPLY_PRIMING = 3
# Fitted constants (data/models.json -> "openai"; each with the recorded calls supporting it,
# refitted by tests/fixtures/calibration/fit.py). Tool definitions are rendered the way the
# provider shows them to the model (a TypeScript namespace) and counted; the constants are
# what the rendering does not show.
K: dict[str, float] = {}
# Relative bounds of the approximated parts.
TOOLS_BOUND_VERIFIED = 0.10
TOOLS_BOUND = 0.25
CALLS_BOUND = 0.25
# Beyond CALLS_BOUND, what one tool call or tool result may cost more than estimated
# (gpt-4.1-mini via OpenRouter: +50 for a call/result pair where +22 was estimated).
CALL_SLACK = 16
DEFS_UPPER = 0.6  # tool definitions / schemas may cost up to 60% more than rendered (+ frames)
CHAT_BOUND = 0.10  # families where the chat format is not verified exact
# Documented maxima / typical values for what finops cannot see.
PDF_PAGE_TYPICAL = 250  # extracted text of a page (3 recorded 1-page PDFs: 51-197 tokens)
PDF_PAGE_MAX = 3000 + 1105  # dense text + the page image at high detail (2048x768 → 6 tiles)
RESPONSES_HIDDEN_MAX = 24
REASONING_CHARS_PER_TOKEN = 16
AUDIO_TOKENS_PER_S = 10  # gpt-4o audio input: ~1 token per 100 ms
AUDIO_TOKENS_PER_S_MAX = 50  # no recording: a wide documented-rate margin
_PDF_PAGE = re.compile(rb"/Type\s*/Page(?!s)")


def _load_constants() -> None:
    import json

    from finops.tokens.encodings import DATA_DIR

    data = json.loads((DATA_DIR / "models.json").read_text(encoding="utf-8"))["openai"]
    for key, spec in data["constants"].items():
        K[key] = float(spec["value"] if isinstance(spec, Mapping) else spec)


_load_constants()


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
        return _audio(c, data)
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
        # Remote or unreadable image: never fetched. A typical photo, bound by the most.
        most = openai_image_worst(rule, detail=detail)
        typical = openai_image_tokens(1024, 768, rule=rule, detail=detail)
        return c.upto(
            min(typical, most), most, "image size unknown (bound: the documented maximum)"
        )
    return openai_image_tokens(size[0], size[1], rule=rule, detail=detail)


def _audio(c: Counter, data: str) -> int:
    """Audio input: duration from a WAV header, else from the size at the lowest bit rate."""
    raw = _b64(data[:64])
    size = len(data) * 3 // 4
    seconds_typ = seconds_max = size / 1000  # ≥ 8 kbit/s for any compressed speech
    if raw is not None and raw[:4] == b"RIFF" and raw[8:12] == b"WAVE" and len(raw) >= 32:
        rate = int.from_bytes(raw[28:32], "little")  # bytes per second
        if rate > 0:
            seconds_typ = seconds_max = size / rate
    elif raw is not None:
        seconds_typ = size / 16_000  # 128 kbit/s MP3
    typical = max(1, math.ceil(seconds_typ * AUDIO_TOKENS_PER_S))
    most = math.ceil(seconds_max * AUDIO_TOKENS_PER_S_MAX) + 8
    return c.upto(typical, most, "audio (bound: 50 tokens a second)")


def _b64(text: str) -> bytes | None:
    try:
        return base64.b64decode(text[: len(text) - len(text) % 4])
    except (binascii.Error, ValueError):
        return None


def _file(c: Counter, spec: Any) -> int:
    data = ""
    if isinstance(spec, Mapping):
        data = str(spec.get("file_data") or "")
    pages = pdf_pages(data) if data else 0
    if pages:
        return c.upto(pages * PDF_PAGE_TYPICAL, pages * PDF_PAGE_MAX, "PDF input")
    # A file id or URL: pages unknown (OpenAI accepts up to 100 pages a file).
    return c.upto(PDF_PAGE_TYPICAL, 100 * PDF_PAGE_MAX, "file input of unknown size")


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


def _tool_call(c: Counter, name: Any, arguments: Any, frame: float) -> int:
    n = c.text(str(name or "")) + c.json(arguments if arguments is not None else "")
    c.slack += CALL_SLACK
    return c.approx(max(0, n + round(frame)), CALLS_BOUND, "tool calls")


def _bytes_slack(c: Counter, n: int) -> None:
    """Widen the upper bound by ``n``: constants fitted, not read from the provider."""
    c.slack += n


def chat_tokens(c: Counter, fam: ModelFamily, body: Mapping[str, Any]) -> int:
    """Prompt tokens of a chat completions request (messages, tools, response format)."""
    total = REPLY_PRIMING + fam.reply_extra
    has_system = False
    for message in body.get("messages") or ():
        if not isinstance(message, Mapping):
            continue
        total += PER_MESSAGE
        if message.get("role") in ("system", "developer"):
            has_system = True
        for key, value in message.items():
            if key == "content":
                n = content_tokens(c, fam, value)
                if message.get("role") == "tool":  # rendered with escaping: up to +15%
                    c.slack += 0.15 * n
                total += n
            elif key == "role":
                total += c.text(str(value))
            elif key == "name":
                total += c.text(str(value)) + PER_NAME
            elif key == "tool_calls":
                for call in value or ():
                    fn = call.get("function") if isinstance(call, Mapping) else None
                    if isinstance(fn, Mapping):
                        total += _tool_call(
                            c, fn.get("name"), fn.get("arguments"), K["chat_tool_call_frame"]
                        )
                    elif isinstance(call, Mapping):  # custom tools carry "custom": {input}
                        total += c.approx(c.json(call), CALLS_BOUND, "tool calls")
            elif key == "function_call" and isinstance(value, Mapping):
                total += _tool_call(
                    c, value.get("name"), value.get("arguments"), K["chat_tool_call_frame"]
                )
            elif key == "refusal" and isinstance(value, str):
                total += c.text(value)
            # tool_call_id, id, audio ids: metadata the model does not read as text.
        if message.get("role") == "tool":
            c.slack += CALL_SLACK
            total += c.approx(round(K["tool_result_frame"]), CALLS_BOUND, "tool results")
    tools = body.get("tools") or body.get("functions") or ()
    n_tools = tools_tokens(c, fam, tools, chat=True)
    if n_tools and has_system:
        n_tools += round(K["tools_with_system"])
    total += n_tools
    total += _response_format(c, body.get("response_format"))
    total += _server_options(c, body)
    _unverified(c, fam, total)
    return total


def _server_options(c: Counter, body: Mapping[str, Any]) -> int:
    if body.get("web_search_options") is None:
        return 0
    prompt = round(K["web_search_prompt"])
    # Search-preview models add the search results to the input.
    return c.upto(prompt, 2 * prompt + 8000, "web search (results unknown before the call)")


def _unverified(c: Counter, fam: ModelFamily, total: int) -> None:
    if fam.chat_exact:
        return
    c.approx(0, CHAT_BOUND, f"chat format not verified for {fam.name}")
    _bytes_slack(c, 2 + total // 50)


def _response_format(c: Counter, fmt: Any) -> int:
    if not isinstance(fmt, Mapping):
        return 0
    kind = fmt.get("type")
    if kind == "json_object":
        return c.approx(0, 0.25, "json mode")
    if kind != "json_schema":
        return 0
    spec = fmt.get("json_schema", fmt)
    schema = spec.get("schema") if isinstance(spec, Mapping) else None
    if schema is None:
        return 0
    name = str(spec.get("name") or "") if isinstance(spec, Mapping) else ""
    desc = str(spec.get("description") or "") if isinstance(spec, Mapping) else ""
    body = round(render_schema_tokens(c, schema) * K["schema_factor"])
    n = max(0, c.text(name) + c.text(desc) + body + round(K["schema_frame"]))
    c.slack += n * (DEFS_UPPER - 0.15) + 24
    return c.approx(n, 0.15, "structured output schema")


def render_schema_tokens(c: Counter, schema: Any) -> int:
    """Tokens of a JSON schema as the provider shows it: its TypeScript-like rendering."""
    return c.json(schema)


def tools_tokens(c: Counter, fam: ModelFamily, tools: Iterable[Any], *, chat: bool = True) -> int:
    """Tool definitions rendered as the provider's ``namespace functions`` (flagged)."""
    tools = list(tools)
    if not tools:
        return 0
    total = 0
    lines = ["namespace functions {", ""]
    n_funcs = 0
    for tool in tools:
        if not isinstance(tool, Mapping):
            continue
        kind = tool.get("type", "function")
        if kind != "function":  # built-in tools (web_search, file_search, ...): hidden prompts
            total += _builtin_tool(c, str(kind), tool)
            continue
        fn = tool.get("function", tool)
        if not isinstance(fn, Mapping):
            continue
        n_funcs += 1
        desc = str(fn.get("description") or "")
        if desc:
            lines.extend("// " + d for d in desc.splitlines())
        params = fn.get("parameters")
        props = params.get("properties") if isinstance(params, Mapping) else None
        name = str(fn.get("name") or "")
        if isinstance(props, Mapping) and props:
            assert isinstance(params, Mapping)
            lines.append(f"type {name} = (_: {{")
            lines.append(_ts_props(params, 0, params))
            lines.append("}) => any;")
        else:
            lines.append(f"type {name} = () => any;")
        lines.append("")
    if n_funcs:
        lines.append("} // namespace functions")
        n = c.text("\n".join(lines)) + round(K.get("tools_extra." + fam.name, 0.0))
        n += round(K["tools_base" if chat else "responses_tools_base"])
        n += round(K["tools_per_tool"] * n_funcs)
        bound = TOOLS_BOUND_VERIFIED if fam.chat_exact else TOOLS_BOUND
        total += c.approx(n, bound, "tool definitions")
        # Upper bound: the rendering is not the provider's; measured up to -35% on test calls.
        c.slack += n * (DEFS_UPPER - bound) + 8 * n_funcs
    return total


def _builtin_tool(c: Counter, kind: str, tool: Mapping[str, Any]) -> int:
    if kind.startswith("web_search"):
        prompt = round(K["web_search_prompt"])
        return c.upto(prompt, 2 * prompt + 8000, f"built-in tool {kind} (results unknown)")
    if kind in (
        "file_search",
        "code_interpreter",
        "computer_use_preview",
        "image_generation",
        "mcp",
        "local_shell",
        "shell",
        "apply_patch",
    ):
        n = c.json(tool) + 100
        return c.upto(n, 4 * n + 8000, f"built-in tool {kind} (hidden prompt and results)")
    n = c.json(tool)
    return c.upto(n, 4 * n + 2000, f"built-in tool {kind}")


def _ts_props(obj: Mapping[str, Any], indent: int, root: Any) -> str:
    props = obj.get("properties")
    if not isinstance(props, Mapping):
        return ""
    required = obj.get("required")
    required = set(required) if isinstance(required, list) else set()
    pad = " " * indent
    out = []
    for key, prop in props.items():
        prop = prop if isinstance(prop, Mapping) else {}
        desc = prop.get("description")
        if desc and indent < 2:
            out.append(f"{pad}// {desc}")
        mark = "" if key in required else "?"
        line = f"{pad}{key}{mark}: {_ts_type(prop, indent, root)},"
        if "default" in prop:  # rendered as a trailing comment
            line += f" // default: {json_text(prop['default'])}"
        out.append(line)
    return "\n".join(out)


def _ts_type(prop: Mapping[str, Any], indent: int, root: Any, depth: int = 0) -> str:
    if depth > 8:
        return "any"
    ref = prop.get("$ref")
    if isinstance(ref, str) and isinstance(root, Mapping):
        target: Any = root
        for part in ref.lstrip("#/").split("/"):
            target = target.get(part) if isinstance(target, Mapping) else None
        if isinstance(target, Mapping):
            return _ts_type(target, indent, root, depth + 1)
        return "any"
    enum = prop.get("enum")
    if isinstance(enum, list) and enum:
        return " | ".join(json_text(v) for v in enum)
    for key in ("anyOf", "oneOf", "allOf"):
        alts = prop.get(key)
        if isinstance(alts, list) and alts:
            sep = " & " if key == "allOf" else " | "
            return sep.join(
                _ts_type(a if isinstance(a, Mapping) else {}, indent, root, depth + 1) for a in alts
            )
    kind = prop.get("type")
    if isinstance(kind, list):
        return " | ".join(_ts_type({**prop, "type": k}, indent, root, depth + 1) for k in kind)
    if kind == "object" or "properties" in prop:
        inner = _ts_props(prop, indent + 2, root)
        return "{\n" + inner + "\n" + " " * indent + "}" if inner else "object"
    if kind == "array":
        items = prop.get("items")
        if isinstance(items, Mapping):
            return _ts_type(items, indent, root, depth + 1) + "[]"
        return "any[]"
    if kind in ("integer", "number"):
        return "number"
    if isinstance(kind, str):
        return kind
    return "any"


def responses_tokens(c: Counter, fam: ModelFamily, body: Mapping[str, Any]) -> int:
    """Input tokens of a responses request (instructions, input items, tools, text format)."""
    total = REPLY_PRIMING + fam.reply_extra
    instructions = body.get("instructions")
    has_system = False
    if isinstance(instructions, str) and instructions:
        total += PER_MESSAGE + 1 + c.text(instructions)  # a developer message
        has_system = True
    items = body.get("input")
    if isinstance(items, str):
        total += PER_MESSAGE + 1 + c.text(items)
    elif isinstance(items, Iterable):
        listed = [i for i in items if isinstance(i, Mapping)]
        kept = _kept_reasoning(listed)
        for index, item in enumerate(listed):
            if item.get("role") in ("system", "developer"):
                has_system = True
            if index in kept:
                total += _reasoning(c, item, kept=True)
            else:
                total += _response_item(c, fam, item)
    n_tools = tools_tokens(c, fam, body.get("tools") or (), chat=False)
    if n_tools and has_system:
        n_tools += round(K["tools_with_system"])
    total += n_tools
    text = body.get("text")
    fmt = text.get("format") if isinstance(text, Mapping) else None
    total += _response_format(c, fmt)
    if fam.responses_extra:
        total += c.approx(fam.responses_extra, 0.25, f"responses API frame for {fam.name}")
    # Some responses calls carry hidden tokens the request does not show (+11 on "say hi",
    # gpt-4o-mini, 6 recorded calls of one project): not estimated, but bounded.
    c.slack += RESPONSES_HIDDEN_MAX
    c.exact = False
    c.bound = max(c.bound, min(1.0, RESPONSES_HIDDEN_MAX / max(total, 1)))
    if "responses API: hidden tokens bounded" not in c.notes:
        c.notes.append("responses API: hidden tokens bounded")
    if body.get("previous_response_id") or body.get("conversation"):
        # The stored conversation is billed as input too; finops cannot see it.
        c.upto(0, 0, "previous_response_id: stored context not counted")
        c.slack += 4000
        c.bound = max(c.bound, 1.0)
    _unverified(c, fam, total)
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
            K["responses_tool_call_frame"],
        )
    if kind in ("function_call_output", "custom_tool_call_output"):
        out = item.get("output")
        n = c.text(out) if isinstance(out, str) else content_tokens(c, fam, out)
        frame = round(K["tool_result_frame"]) + PER_MESSAGE
        c.slack += CALL_SLACK
        return c.approx(n + frame, CALLS_BOUND, "tool results")
    if kind == "reasoning":
        return _reasoning(c, item, kept=False)
    if kind == "item_reference":
        c.slack += 4000
        return c.approx(0, 1.0, "item references (stored server-side)")
    return c.approx(c.json(item), 0.5, f"input item {kind}")


def _kept_reasoning(items: list[Mapping[str, Any]]) -> set[int]:
    """Reasoning items the provider keeps: those of the current tool loop (followed by a
    function call before the next user message). Earlier turns' reasoning is dropped."""
    kept: set[int] = set()
    pending: list[int] = []
    for index, item in enumerate(items):
        kind = item.get("type", "message")
        if kind == "reasoning":
            pending.append(index)
        elif kind in ("function_call", "custom_tool_call"):
            kept.update(pending)
            pending = []
        elif item.get("role") == "user":
            pending = []
    return kept


def _reasoning(c: Counter, item: Mapping[str, Any], *, kept: bool) -> int:
    # Encrypted reasoning: its size is the only proxy (recorded gpt-5.5 tool loops: ~16
    # base64 characters a token); the most it may cost is one token per 3 characters.
    summary = " ".join(
        str(s.get("text", "")) for s in item.get("summary") or () if isinstance(s, Mapping)
    )
    enc = str(item.get("encrypted_content") or "")
    most = c.text(summary) + len(enc) // 3 + 8
    typical = len(enc) // REASONING_CHARS_PER_TOKEN if kept else 0
    return c.upto(min(typical, most), most, "reasoning items")


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
