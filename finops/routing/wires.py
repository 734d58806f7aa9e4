"""Servability and parameter translation for the Gemini and Bedrock request shapes.

The route step sees each SDK's own keyword arguments: google-genai's ``model`` /
``contents`` / ``config`` (endpoint ``generate_content``), and for Bedrock the view the
botocore hooks build (``model``, ``messages``, ``system``, ``tools`` = ``toolConfig``,
``max_tokens``, ``inferenceConfig``, ``additionalModelRequestFields``, and for InvokeModel
the body text as ``input``). What is rewritten there is written back into the request.

* **Gemini**: thinking is ``config.thinking_config``. ``thinking="off"`` sets
  ``thinking_budget=0`` where the target can turn thinking off (2.5 Flash, Flash-Lite), the
  target's minimum budget where it cannot (2.5 Pro: 128), ``thinking_level="low"`` on
  Gemini 3; a target without thinking (2.0, 1.5) loses ``thinking_config``.
  ``reasoning_effort`` maps to a budget the way Google's OpenAI-compatible endpoint does
  (low 1,024, medium 8,192; minimal = off or the minimum).
* **Bedrock**: the model id keeps the request's inference-profile prefix (``us.``, ``eu.``,
  ``apac.``, ``global.``...) when the target names none. ``thinking="off"`` or a target
  without extended thinking removes ``thinking`` from ``additionalModelRequestFields``
  (Converse) or from the body (InvokeModel). Routing between vendors (Claude ↔ Nova) is
  refused as ``cross_provider``: their InvokeModel bodies differ.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

__all__ = [
    "BEDROCK_ENDPOINTS",
    "GEMINI_ENDPOINTS",
    "bare_model",
    "bedrock_target",
    "is_bedrock_id",
    "needs_bedrock",
    "needs_gemini",
    "translate_bedrock",
    "translate_gemini",
]

GEMINI_ENDPOINTS = frozenset({"generate_content"})
BEDROCK_ENDPOINTS = frozenset({"converse", "invoke_model"})

_GEO = re.compile(r"^(?P<geo>(?:us|eu|apac|global|us-gov|jp|au|ca)\.)")
_VENDOR = re.compile(
    r"^(?:(?:us|eu|apac|global|us-gov|jp|au|ca)\.)?"
    r"(?:anthropic|amazon|meta|mistral|cohere|ai21|deepseek|openai|qwen|writer|twelvelabs)\."
)
_EFFORT_BUDGET = {"low": 1024, "medium": 8192}


def bare_model(model: str) -> str:
    """``us.anthropic.claude-...``, an ARN, or ``models/gemini-...`` → the family name."""
    name = model.rsplit("/", 1)[-1] if model.startswith(("arn:", "models/", "publishers/")) else model
    return _VENDOR.sub("", name)


def bedrock_target(requested: str, target: str) -> str:
    """The target id as Bedrock takes it: the request's inference-profile prefix is kept
    when the target names none (``us.anthropic.claude-opus-4-1...`` → ``us.`` + target)."""
    if target.startswith("arn:") or _GEO.match(target):
        return target
    source = requested.rsplit("/", 1)[-1]
    geo = _GEO.match(source)
    return geo.group("geo") + target if geo and _VENDOR.match(target) else target


def is_bedrock_id(model: str) -> bool:
    """Whether ``model`` names a Bedrock model (vendor prefix, or an ARN)."""
    return model.startswith("arn:") or bool(_VENDOR.match(model))


# -- what a request needs ------------------------------------------------------------------


def _plain(value: Any) -> Any:
    dump = getattr(value, "model_dump", None)
    if callable(dump) and not isinstance(value, type):
        try:
            return dump(exclude_none=True)
        except Exception:  # a config holding callables: read its fields one by one
            pass
    return value


def _config(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    config = kwargs.get("config")
    if config is None:
        return {}
    if isinstance(config, Mapping):
        return dict(config)
    fields = getattr(type(config), "model_fields", None)
    if fields:
        return {name: getattr(config, name) for name in fields if getattr(config, name) is not None}
    return {}


def _get(config: Mapping[str, Any], snake: str) -> Any:
    camel = re.sub(r"_([a-z])", lambda m: m.group(1).upper(), snake)
    return config.get(snake, config.get(camel))


def _gemini_parts(contents: Any) -> list[Any]:
    items = contents if isinstance(contents, (list, tuple)) else [contents]
    parts: list[Any] = []
    for item in items:
        item = _plain(item)
        if isinstance(item, Mapping) and ("parts" in item or "role" in item):
            parts.extend(_plain(p) for p in item.get("parts") or ())
        elif item is not None:
            parts.append(item)
    return parts


def needs_gemini(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """Fields of :class:`~finops.routing.translate.RequestNeeds` for a generate_content call."""
    config = _config(kwargs)
    images = audio = False
    chars = 0
    system = _get(config, "system_instruction")
    for part in _gemini_parts(kwargs.get("contents")) + _gemini_parts(system):
        if isinstance(part, str):
            chars += len(part)
            continue
        if not isinstance(part, Mapping):
            images = True  # a PIL image, a file handle: media
            continue
        if isinstance(part.get("text"), str):
            chars += len(part["text"])
        media = _plain(_get(part, "inline_data") or _get(part, "file_data"))
        if isinstance(media, Mapping):
            mime = str(_get(media, "mime_type") or "")
            if mime.startswith("audio/"):
                audio = True
            else:
                images = True  # image/*, application/pdf, video/*
    tools = bool(_get(config, "tools"))
    schema = (
        _get(config, "response_schema") is not None
        or _get(config, "response_json_schema") is not None
    )
    limit = _get(config, "max_output_tokens")
    return {
        "tools": tools,
        "images": images,
        "audio": audio,
        "json_schema": schema,
        "input_tokens": chars // 3 + 1,
        "max_output": limit if isinstance(limit, int) else None,
    }


def _bedrock_body(kwargs: Mapping[str, Any]) -> dict[str, Any] | None:
    raw = kwargs.get("input")
    if raw is None:
        return None
    try:
        body = json.loads(raw)
    except (TypeError, ValueError):
        return None
    return body if isinstance(body, dict) else None


def needs_bedrock(endpoint: str, kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """Fields of :class:`~finops.routing.translate.RequestNeeds` for a Bedrock call."""
    images = False
    chars = 0
    tools = bool(kwargs.get("tools"))
    messages: Any = kwargs.get("messages")
    system: Any = kwargs.get("system")
    body = _bedrock_body(kwargs) if endpoint == "invoke_model" else None
    if body is not None:
        messages = body.get("messages", messages)
        system = body.get("system", system)
        tools = tools or bool(body.get("tools") or body.get("toolConfig"))
    for message in messages or ():
        content = message.get("content") if isinstance(message, Mapping) else None
        blocks = [content] if isinstance(content, str) else content or ()
        for block in blocks:
            if isinstance(block, str):
                chars += len(block)
            elif isinstance(block, Mapping):
                if isinstance(block.get("text"), str):
                    chars += len(block["text"])
                if any(k in block for k in ("image", "document", "video")) or block.get(
                    "type"
                ) in ("image", "document"):
                    images = True
    if system is not None:
        chars += len(json.dumps(system, default=str))
    if tools:
        chars += len(json.dumps(kwargs.get("tools"), default=str))
    limit = kwargs.get("max_tokens")
    return {
        "tools": tools,
        "images": images,
        "audio": False,
        "json_schema": kwargs.get("outputConfig") is not None,
        "input_tokens": chars // 3 + 1,
        "max_output": limit if isinstance(limit, int) else None,
    }


# -- translation ---------------------------------------------------------------------------


def translate_gemini(
    out: dict[str, Any],
    caps: Any,
    *,
    reasoning_effort: str | None,
    thinking_off: bool,
    dropped: list[str],
    changed: list[str],
) -> None:
    """Rewrite ``out['config']``'s thinking settings for the target (in place)."""
    config = out.get("config")
    current = _plain(_get(_config(out), "thinking_config")) if config is not None else None
    thinking: dict[str, Any] | None = dict(current) if isinstance(current, Mapping) else None
    key = "thinking_config"
    if caps is None or not caps.thinking:
        if thinking is not None:
            _set_config(out, key, None)
            dropped.append("thinking_config")
        return
    want: dict[str, Any] | None = None
    levels = tuple(getattr(caps, "thinking_levels", ()) or ())
    if thinking_off or reasoning_effort == "minimal":
        if levels:
            want = {"thinking_level": levels[0]}
        elif caps.thinking_off:
            want = {"thinking_budget": 0}
        else:
            want = {"thinking_budget": caps.thinking_min or 128}
    elif reasoning_effort in _EFFORT_BUDGET:
        want = (
            {"thinking_level": levels[0]}
            if levels
            else {"thinking_budget": max(_EFFORT_BUDGET[reasoning_effort], caps.thinking_min)}
        )
    if want is None:
        return
    merged = {
        k: v
        for k, v in (thinking or {}).items()
        if k not in ("thinking_budget", "thinkingBudget", "thinking_level", "thinkingLevel")
    }
    merged.update(want)
    _set_config(out, key, merged)
    changed.append("thinking_config." + next(iter(want)))


def _set_config(out: dict[str, Any], key: str, value: Any) -> None:
    config = out.get("config")
    camel = re.sub(r"_([a-z])", lambda m: m.group(1).upper(), key)
    if config is None:
        if value is not None:
            out["config"] = {key: value}
        return
    if isinstance(config, Mapping):
        new = {k: v for k, v in config.items() if k not in (key, camel)}
        if value is not None:
            new[key] = value
        out["config"] = new
        return
    copy = getattr(config, "model_copy", None)
    if callable(copy):
        if value is not None:
            from google.genai import types

            value = types.ThinkingConfig.model_validate(value)
        out["config"] = copy(update={key: value})


def translate_bedrock(
    endpoint: str,
    out: dict[str, Any],
    caps: Any,
    *,
    thinking_off: bool,
    dropped: list[str],
) -> None:
    """Drop extended thinking where the target has none or it is turned off (in place)."""
    if not (thinking_off or caps is None or not caps.thinking):
        return
    if endpoint == "invoke_model":
        body = _bedrock_body(out)
        if body is not None and "thinking" in body:
            body.pop("thinking")
            out["input"] = json.dumps(body)
            dropped.append("thinking")
        return
    extra = out.get("additionalModelRequestFields")
    if isinstance(extra, Mapping) and "thinking" in extra:
        out["additionalModelRequestFields"] = {k: v for k, v in extra.items() if k != "thinking"}
        dropped.append("thinking")
