"""The canonical cache key of a request: everything that changes the answer, nothing else.

A key is the SHA-256 of a canonical JSON document (sorted keys, no whitespace) built from
the endpoint, the tenant and the SDK keyword arguments of the call. Left out, because they
do not change the answer: ``stream``, ``stream_options``, ``user``, ``metadata``,
``cache_control`` (anywhere in messages, system blocks or tools), ``store``,
``service_tier``, prompt-cache hints and the SDK's transport options (``timeout``,
``extra_query``). Everything else — model, every message/system/instructions item, tools,
``tool_choice``, ``response_format``/``text``, sampling parameters, ``seed``, ``n``,
reasoning/thinking settings, ``betas`` and ``anthropic-beta``/``openai-beta`` headers — is in.
A one-block text content list and the plain string it stands for give the same key.

What competitors got wrong (DESIGN.md §7): keying only the last message (GPTCache),
forgetting tools or ``response_format`` (LiteLLM #12234, #19575), keying on ``user`` or
``metadata`` so identical prompts never hit. Two tenants never share a key: the tenant is
part of the hashed document and the prefix of the stored key.

The *context key* (semantic cache) is the same document with the text of the last user turn
taken out: two requests whose context keys are equal differ only in that text.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["EXCLUDED", "RequestKey", "Uncacheable", "canonical", "request_key"]

#: Top-level keyword arguments that never change the answer.
EXCLUDED = frozenset(
    {
        "stream",
        "stream_options",
        "user",
        "metadata",
        "store",
        "service_tier",
        "prompt_cache_key",
        "prompt_cache_retention",
        "safety_identifier",
        "timeout",
        "extra_query",
        "extra_headers",
        "extra_body",
    }
)
#: Gemini ``config`` fields that never change the answer (transport, billing labels, the
#: SDK's client-side function-calling loop settings).
GEMINI_CONFIG_EXCLUDED = frozenset(
    {"http_options", "labels", "automatic_function_calling", "should_return_http_response"}
)
#: Bedrock request members that never change the answer (request metadata, latency tier,
#: service tier); ``cachePoint`` blocks are left out wherever they are.
BEDROCK_EXCLUDED = frozenset(
    {
        "requestMetadata",
        "performanceConfig",
        "performanceConfigLatency",
        "serviceTier",
        "input",  # InvokeModel's body text: keyed as parsed JSON under "body"
        "max_tokens",  # derived from inferenceConfig / the body
    }
)
#: Request headers (from ``extra_headers``) that do change the answer.
ANSWER_HEADERS = ("anthropic-beta", "openai-beta")
_KEY_VERSION = 1


class Uncacheable(Exception):
    """The request cannot be keyed safely (e.g. Gemini tools given as Python callables: the
    SDK runs its own call-and-execute loop, several requests per call)."""


@dataclass(frozen=True, slots=True)
class RequestKey:
    """The keys of one request.

    Attributes:
        exact: the store key: ``"<tenant>:<sha256 hex>"``.
        context: key of everything but the last user turn's text (semantic index shard);
            None when the request has no plain-text last user turn (or is embeddings).
        text: the last user turn's text (what the semantic cache compares), or None.
        tenant: the tenant namespace ("" when none).
    """

    exact: str
    context: str | None
    text: str | None
    tenant: str


def _plain(value: Any) -> Any:
    """JSON-able form of an SDK argument (pydantic models, classes, sentinels)."""
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for k, v in value.items():
            if k == "cache_control" or _is_sentinel(v):
                continue
            out[str(k)] = _plain(v)
        return out
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, type):  # e.g. a pydantic model given as response_format
        schema = getattr(value, "model_json_schema", None)
        if callable(schema):
            return {"$schema_of": value.__name__, "schema": _plain(schema())}
        return {"$type": f"{value.__module__}.{value.__qualname__}"}
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return _plain(dump(exclude_none=True))
    if isinstance(value, bytes):
        return {"$bytes": hashlib.sha256(value).hexdigest()}
    return repr(value)


def _is_sentinel(value: Any) -> bool:
    return type(value).__name__ in ("NotGiven", "Omit")


def _text_content(content: Any) -> Any:
    """``[{"type": "text", "text": x}]`` is the same prompt as ``x``."""
    if (
        isinstance(content, list)
        and len(content) == 1
        and isinstance(content[0], dict)
        and set(content[0]) == {"type", "text"}
        and content[0]["type"] in ("text", "input_text")
    ):
        return content[0]["text"]
    return content


def _normalize_messages(items: Any) -> Any:
    if not isinstance(items, list):
        return items
    out = []
    for item in items:
        if isinstance(item, dict) and "content" in item:
            item = {**item, "content": _text_content(item["content"])}
        out.append(item)
    return out


def canonical(endpoint: str, kwargs: Mapping[str, Any], *, wire: str = "") -> dict[str, Any]:
    """The answer-relevant part of a call's keyword arguments, in plain JSON types.

    ``wire`` selects the request shape: ``"google"`` (google-genai ``model``/``contents``/
    ``config``), ``"aws"`` (Bedrock Converse / InvokeModel parameters), else the OpenAI and
    Anthropic SDKs' keyword arguments.
    """
    if wire == "google":
        return _gemini_canonical(kwargs)
    if wire == "aws":
        return _bedrock_canonical(endpoint, kwargs)
    body: dict[str, Any] = {}
    extra_body = kwargs.get("extra_body")
    merged = dict(kwargs)
    if isinstance(extra_body, Mapping):
        merged.update(extra_body)
    for name, value in merged.items():
        if name in EXCLUDED or name.startswith("finops_") or _is_sentinel(value):
            continue
        body[name] = _plain(value)
    for name in ("messages", "input"):
        if name in body:
            body[name] = _normalize_messages(body[name])
    if "system" in body:
        body["system"] = _text_content(body["system"])
    headers = kwargs.get("extra_headers")
    if isinstance(headers, Mapping):
        for name, value in headers.items():
            if str(name).lower() in ANSWER_HEADERS and not _is_sentinel(value):
                body["$header:" + str(name).lower()] = str(value)
    return body


# -- Gemini (google-genai) ---------------------------------------------------------------


def _gemini_model(model: Any) -> Any:
    if isinstance(model, str) and model.startswith(("projects/", "publishers/", "models/")):
        return model.rsplit("/", 1)[-1]
    return model


def _is_content(item: Any) -> bool:
    if isinstance(item, Mapping):
        return "parts" in item or "role" in item
    return type(item).__name__ == "Content" and hasattr(item, "parts")


def _gemini_part(part: Any) -> Any:
    if isinstance(part, str):
        return {"text": part}
    try:
        from google.genai import types

        if isinstance(part, Mapping):
            part = types.Part.model_validate(dict(part))
        if isinstance(part, types.Part):
            return part.model_dump(mode="json", exclude_none=True)
    except ImportError:  # pragma: no cover - the SDK is there when a genai client is wrapped
        pass
    except ValueError:
        pass
    return _plain(part)


def _gemini_content(item: Any) -> Any:
    try:
        from google.genai import types

        content = types.Content.model_validate(dict(item)) if isinstance(item, Mapping) else item
        if isinstance(content, types.Content):
            out = content.model_dump(mode="json", exclude_none=True)
            out.setdefault("role", "user")
            return _gemini_text_parts(out)
    except ImportError:  # pragma: no cover
        pass
    except ValueError:
        pass
    return _plain(item)


def _gemini_text_parts(content: dict[str, Any]) -> dict[str, Any]:
    parts = content.get("parts")
    if isinstance(parts, list):
        content["parts"] = [_plain(p) for p in parts]
    return content


def _gemini_contents(contents: Any) -> Any:
    """The SDK's own reading of ``contents``: a string, a part, a content or a list of them
    is a list of contents (loose parts grouped into one user turn)."""
    if contents is None:
        return None
    items = list(contents) if isinstance(contents, (list, tuple)) else [contents]
    out: list[Any] = []
    loose: list[Any] = []
    for item in items:
        if _is_content(item):
            if loose:
                out.append({"role": "user", "parts": loose})
                loose = []
            out.append(_gemini_content(item))
        else:
            loose.append(_gemini_part(item))
    if loose:
        out.append({"role": "user", "parts": loose})
    return out


def _gemini_config(config: Any) -> Any:
    if config is None:
        return None
    tools = config.get("tools") if isinstance(config, Mapping) else getattr(config, "tools", None)
    for tool in tools or ():
        if not isinstance(tool, Mapping) and (
            callable(tool) or type(tool).__name__ not in ("Tool", "ToolDict")
        ):
            raise Uncacheable("tools given as Python callables or sessions")
    data: Any = config
    try:
        from google.genai import types

        if isinstance(config, Mapping):
            data = types.GenerateContentConfig.model_validate(dict(config))
        if isinstance(data, types.GenerateContentConfig):
            data = data.model_dump(mode="json", exclude_none=True)
    except ImportError:  # pragma: no cover
        pass
    except ValueError:
        data = config
    plain = _plain(data)
    if isinstance(plain, dict):
        plain = {k: v for k, v in plain.items() if k not in GEMINI_CONFIG_EXCLUDED}
        if "system_instruction" in plain:
            system = _gemini_contents(plain["system_instruction"])
            plain["system_instruction"] = system[0] if isinstance(system, list) else system
            if isinstance(plain["system_instruction"], dict):
                plain["system_instruction"].pop("role", None)
    return plain


def _gemini_canonical(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = {}
    for name, value in kwargs.items():
        if name.startswith("finops_") or _is_sentinel(value):
            continue
        if name == "model":
            body[name] = _gemini_model(value)
        elif name == "contents":
            body[name] = _gemini_contents(value)
        elif name == "config":
            config = _gemini_config(value)
            if config:
                body[name] = config
        else:
            body[name] = _plain(value)
    return body


# -- Bedrock (boto3 bedrock-runtime) --------------------------------------------------------


def _no_cache_points(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _no_cache_points(v) for k, v in value.items() if k != "cachePoint"}
    if isinstance(value, list):
        return [
            _no_cache_points(v)
            for v in value
            if not (isinstance(v, Mapping) and set(v) == {"cachePoint"})
        ]
    return value


def _bedrock_canonical(endpoint: str, kwargs: Mapping[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = {}
    for name, value in kwargs.items():
        if name in BEDROCK_EXCLUDED or name.startswith("finops_") or value is None:
            continue
        body[name] = _no_cache_points(_plain(value))
    raw = kwargs.get("input")
    if endpoint == "invoke_model" and raw is not None:
        try:
            body["body"] = _plain(json.loads(raw))  # cache_control left out at any depth
        except (TypeError, ValueError):
            text = raw if isinstance(raw, (bytes, str)) else repr(raw)
            data = text.encode() if isinstance(text, str) else text
            body["body"] = {"$bytes": hashlib.sha256(data).hexdigest()}
    return body


def _digest(doc: Any) -> str:
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


#: Placeholder for the compared text in the context-key document.
_LAST = "$last_user_text"


def _split_last_user_text(
    endpoint: str, body: dict[str, Any], wire: str = ""
) -> tuple[dict[str, Any], str] | None:
    """(body without the last user turn's text, that text), or None if there is none.

    The same rules on every wire: only a last turn from the user made of one plain text
    (no image, document, audio, tool result or second part) is compared, and a request that
    declares tools is never served semantically (a tool call's arguments come from the exact
    words of the question). Gemini: ``contents[-1]`` with ``role="user"`` and one
    ``{"text": ...}`` part; Bedrock Converse: ``messages[-1]`` with one ``{"text": ...}``
    block; InvokeModel: the body's ``messages[-1]`` (Anthropic's string or one ``text``
    block, Nova's one ``{"text": ...}`` block).
    """
    if endpoint in ("embeddings", "embed_content"):
        return None
    if wire == "google":
        return _split_gemini(body)
    if wire == "aws":
        return _split_bedrock(endpoint, body)
    if body.get("tools") or body.get("functions"):
        return None
    if endpoint == "responses" and isinstance(body.get("input"), str):
        return {**body, "input": _LAST}, body["input"]
    key = "input" if endpoint == "responses" else "messages"
    items = body.get(key)
    if not isinstance(items, list) or not items:
        return None
    last = items[-1]
    if not isinstance(last, dict) or last.get("role") != "user":
        return None
    content = last.get("content")
    if not isinstance(content, str):
        return None
    rest = [*items[:-1], {**last, "content": _LAST}]
    return {**body, key: rest}, content


def _one_text(blocks: Any, *, typed: bool = False) -> str | None:
    """The text of a block list holding exactly one plain text block, else None."""
    if isinstance(blocks, str) and typed:
        return blocks  # Anthropic's string content
    if not isinstance(blocks, list) or len(blocks) != 1 or not isinstance(blocks[0], dict):
        return None
    block = blocks[0]
    text = block.get("text")
    if not isinstance(text, str):
        return None
    if set(block) == {"text"} or (
        typed and set(block) == {"type", "text"} and block["type"] == "text"
    ):
        return text
    return None


def _split_gemini(body: dict[str, Any]) -> tuple[dict[str, Any], str] | None:
    config = body.get("config")
    if isinstance(config, dict) and config.get("tools"):
        return None
    contents = body.get("contents")
    if not isinstance(contents, list) or not contents or not isinstance(contents[-1], dict):
        return None
    last = contents[-1]
    if last.get("role", "user") != "user":
        return None
    text = _one_text(last.get("parts"))
    if text is None:
        return None
    rest = [*contents[:-1], {**last, "parts": _LAST}]
    return {**body, "contents": rest}, text


def _split_messages(messages: Any, *, typed: bool) -> tuple[list[Any], str] | None:
    if not isinstance(messages, list) or not messages or not isinstance(messages[-1], dict):
        return None
    last = messages[-1]
    if last.get("role") != "user":
        return None
    text = _one_text(last.get("content"), typed=typed)
    if text is None:
        return None
    return [*messages[:-1], {**last, "content": _LAST}], text


def _split_bedrock(endpoint: str, body: dict[str, Any]) -> tuple[dict[str, Any], str] | None:
    if body.get("toolConfig") or body.get("tools"):  # the request view names it ``tools``
        return None
    if endpoint == "invoke_model":
        inner = body.get("body")
        if not isinstance(inner, dict) or inner.get("tools") or inner.get("toolConfig"):
            return None
        split = _split_messages(inner.get("messages"), typed=True)
        if split is None:
            return None
        rest, text = split
        return {**body, "body": {**inner, "messages": rest}}, text
    split = _split_messages(body.get("messages"), typed=False)
    if split is None:
        return None
    rest, text = split
    return {**body, "messages": rest}, text


def request_key(
    *, wire: str, endpoint: str, kwargs: Mapping[str, Any], tenant: str = ""
) -> RequestKey:
    """The exact key, the context key and the compared text of one call."""
    body = canonical(endpoint, kwargs, wire=wire)
    head = {"v": _KEY_VERSION, "wire": wire, "endpoint": endpoint, "tenant": tenant}
    exact = f"{tenant}:{_digest({**head, 'body': body})}"
    split = _split_last_user_text(endpoint, body, wire)
    if split is None:
        return RequestKey(exact=exact, context=None, text=None, tenant=tenant)
    rest, text = split
    context = f"{tenant}:{_digest({**head, 'context': rest})}"
    return RequestKey(exact=exact, context=context, text=text, tenant=tenant)
