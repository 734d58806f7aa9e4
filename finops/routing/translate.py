"""Can the target model serve this request, and what must change in the parameters?

Two pure functions over SDK keyword arguments:

- :func:`cannot_serve` returns why a target cannot take a request (tools, image or audio
  input, structured output, context length, max output), or ``None``. A request is never
  routed to a model that cannot serve it, and never to a model finops knows nothing about.
- :func:`translate` rewrites the keyword arguments for the target: ``max_tokens`` ↔
  ``max_completion_tokens``, ``reasoning_effort`` / ``reasoning={"effort"}``, Anthropic
  ``thinking`` (turned off, or dropped where the target has none), sampling parameters that
  reasoning models reject. Every parameter dropped or changed is returned so it can be
  recorded on the ledger row.

Capabilities come from ``finops/routing/data/capabilities.json``; context window and max
output from the price tables (``pricing/*.json`` through :class:`finops.pricing.PriceBook`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any, Protocol

from finops.routing.wires import (
    BEDROCK_ENDPOINTS,
    GEMINI_ENDPOINTS,
    bare_model,
    needs_bedrock,
    needs_gemini,
    translate_bedrock,
    translate_gemini,
)

__all__ = [
    "Capabilities",
    "Limits",
    "RequestNeeds",
    "Translation",
    "cannot_serve",
    "capabilities",
    "needs_of",
    "translate",
]

#: Sampling parameters OpenAI reasoning models reject (anything but the default).
_REASONING_REJECTS = ("temperature", "top_p", "presence_penalty", "frequency_penalty",
                      "logprobs", "top_logprobs", "logit_bias")
_EFFORT_ORDER = ("minimal", "low", "medium", "high")


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a model family accepts (see ``data/capabilities.json``)."""

    family: str
    provider: str
    tools: bool
    vision: bool
    audio: bool
    json_schema: bool
    reasoning: bool = False
    efforts: tuple[str, ...] = ()
    thinking: bool = False
    thinking_off: bool = True  # thinking can be turned off (not Gemini 2.5 Pro / 3)
    thinking_min: int = 0  # smallest thinking budget (Gemini 2.5 Pro: 128)
    thinking_levels: tuple[str, ...] = ()  # Gemini 3: thinking_level values, lowest first


@lru_cache(maxsize=1)
def _table() -> dict[str, Capabilities]:
    raw = json.loads(
        (resources.files("finops.routing") / "data" / "capabilities.json").read_text("utf-8")
    )
    out = {}
    for family, c in raw["families"].items():
        out[family] = Capabilities(
            family=family,
            provider=c["provider"],
            tools=c["tools"],
            vision=c["vision"],
            audio=c["audio"],
            json_schema=c["json_schema"],
            reasoning=c.get("reasoning", False),
            efforts=tuple(c.get("efforts", ())),
            thinking=c.get("thinking", False),
            thinking_off=c.get("thinking_off", True),
            thinking_min=c.get("thinking_min", 0),
            thinking_levels=tuple(c.get("thinking_levels", ())),
        )
    return out


@lru_cache(maxsize=512)
def capabilities(model: str) -> Capabilities | None:
    """Capabilities of ``model`` (longest matching family prefix), or None if unknown.

    Bedrock ids and ARNs (``us.anthropic.claude-...``, ``amazon.nova-lite-v1:0``) and Gemini
    resource names (``models/gemini-2.5-pro``) match by the name after their prefixes."""
    name = bare_model(model).lower()
    for prefix in ("openai/", "anthropic/"):
        name = name.removeprefix(prefix)
    best: Capabilities | None = None
    for family, caps in _table().items():
        if name.startswith(family) and (best is None or len(family) > len(best.family)):
            best = caps
    return best


@dataclass(frozen=True, slots=True)
class RequestNeeds:
    """What a request needs from whichever model serves it."""

    tools: bool = False
    images: bool = False
    audio: bool = False
    json_schema: bool = False
    input_tokens: int = 0  # rough upper estimate (characters / 3)
    max_output: int | None = None  # requested output limit, if any


class Limits(Protocol):
    """Where context window and max output come from (a PriceBook adapter in production)."""

    def context_window(self, model: str) -> int | None: ...  # pragma: no cover

    def max_output(self, model: str) -> int | None: ...  # pragma: no cover


def _walk_parts(messages: Any) -> tuple[bool, bool, int]:
    images = audio = False
    chars = 0
    if not isinstance(messages, (list, tuple)):
        return images, audio, len(str(messages)) if messages is not None else 0
    for m in messages:
        content = m.get("content") if isinstance(m, Mapping) else m
        if isinstance(content, str):
            chars += len(content)
            continue
        if not isinstance(content, (list, tuple)):
            chars += len(json.dumps(content, default=str)) if content is not None else 0
            continue
        for part in content:
            if not isinstance(part, Mapping):
                chars += len(str(part))
                continue
            kind = str(part.get("type", ""))
            if kind in ("image_url", "input_image", "image") or (
                kind == "document" and part.get("source", {}).get("type") != "text"
            ):
                images = True
            elif kind in ("input_audio", "audio"):
                audio = True
            elif kind == "input_file":
                images = True  # PDFs and other files need a vision-capable model
            chars += len(str(part.get("text", ""))) if "text" in part else 0
    return images, audio, chars


def needs_of(endpoint: str, kwargs: Mapping[str, Any]) -> RequestNeeds:
    """Inspect SDK keyword arguments (chat.completions, responses, messages; Gemini's
    generate_content; Bedrock's converse / invoke_model view)."""
    if endpoint in GEMINI_ENDPOINTS:
        return RequestNeeds(**needs_gemini(kwargs))
    if endpoint in BEDROCK_ENDPOINTS:
        return RequestNeeds(**needs_bedrock(endpoint, kwargs))
    messages = kwargs.get("messages", kwargs.get("input"))
    images, audio, chars = _walk_parts(messages)
    system = kwargs.get("system", kwargs.get("instructions"))
    if system is not None:
        chars += len(system) if isinstance(system, str) else len(json.dumps(system, default=str))
    tools = bool(kwargs.get("tools")) or bool(kwargs.get("functions"))
    if tools:
        chars += len(json.dumps(kwargs.get("tools") or kwargs.get("functions"), default=str))
    rf = kwargs.get("response_format")
    text_fmt = kwargs.get("text")
    json_schema = (
        isinstance(rf, Mapping) and rf.get("type") == "json_schema"
    ) or (
        isinstance(text_fmt, Mapping)
        and isinstance(text_fmt.get("format"), Mapping)
        and text_fmt["format"].get("type") == "json_schema"
    ) or kwargs.get("output_format") is not None or (
        rf is not None and not isinstance(rf, Mapping)  # a pydantic class given to .parse()
    )
    if "modalities" in kwargs and "audio" in (kwargs.get("modalities") or ()):
        audio = True
    max_out = None
    for key in ("max_completion_tokens", "max_tokens", "max_output_tokens"):
        value = kwargs.get(key)
        if isinstance(value, int):
            max_out = value
            break
    return RequestNeeds(
        tools=tools,
        images=images,
        audio=audio,
        json_schema=bool(json_schema),
        input_tokens=chars // 3 + 1,
        max_output=max_out,
    )


def cannot_serve(
    target_model: str, needs: RequestNeeds, limits: Limits | None
) -> str | None:
    """Why ``target_model`` cannot serve a request with ``needs``; None when it can."""
    caps = capabilities(target_model)
    if caps is None:
        return "unknown_target"
    if needs.tools and not caps.tools:
        return "tools"
    if needs.images and not caps.vision:
        return "image_input"
    if needs.audio and not caps.audio:
        return "audio_input"
    if needs.json_schema and not caps.json_schema and caps.provider == "openai":
        return "json_schema"
    if limits is not None:
        window = limits.context_window(target_model)
        out = limits.max_output(target_model)
        if window is not None and needs.input_tokens + (needs.max_output or 0) > window:
            return "context_length"
        if out is not None and needs.max_output is not None and needs.max_output > out:
            return "max_output"
    return None


@dataclass(frozen=True, slots=True)
class Translation:
    """Keyword arguments for the target plus what was dropped or changed (for the row)."""

    kwargs: dict[str, Any]
    dropped: tuple[str, ...]
    changed: tuple[str, ...]


def _effort_for(caps: Capabilities, wanted: str) -> str | None:
    if wanted in caps.efforts:
        return wanted
    # the nearest supported effort at or above the wanted one ("minimal" → "low" on o3)
    start = _EFFORT_ORDER.index(wanted) if wanted in _EFFORT_ORDER else 0
    for effort in _EFFORT_ORDER[start:]:
        if effort in caps.efforts:
            return effort
    return None


def translate(
    endpoint: str,
    kwargs: Mapping[str, Any],
    *,
    model: str,
    reasoning_effort: str | None = None,
    thinking_off: bool = False,
) -> Translation:
    """Rewrite ``kwargs`` so ``model`` accepts them (see the module docstring)."""
    out = dict(kwargs)
    dropped: list[str] = []
    changed: list[str] = []
    if out.get("model") != model:
        out["model"] = model
        changed.append("model")
    caps = capabilities(model)
    if endpoint in GEMINI_ENDPOINTS:
        translate_gemini(
            out,
            caps,
            reasoning_effort=reasoning_effort,
            thinking_off=thinking_off,
            dropped=dropped,
            changed=changed,
        )
        return Translation(out, tuple(dropped), tuple(changed))
    if endpoint in BEDROCK_ENDPOINTS:
        translate_bedrock(endpoint, out, caps, thinking_off=thinking_off, dropped=dropped)
        return Translation(out, tuple(dropped), tuple(changed))
    if endpoint == "messages":
        thinking = out.get("thinking")
        enabled = isinstance(thinking, Mapping) and thinking.get("type") in ("enabled", "adaptive")
        if enabled and (thinking_off or caps is None or not caps.thinking):
            out.pop("thinking")
            dropped.append("thinking")
        return Translation(out, tuple(dropped), tuple(changed))

    reasoning = caps is not None and caps.reasoning
    if endpoint == "chat.completions":
        if reasoning:
            if "max_tokens" in out:
                out["max_completion_tokens"] = out.pop("max_tokens")
                changed.append("max_tokens->max_completion_tokens")
            for key in _REASONING_REJECTS:
                if key in out and not (key == "temperature" and out[key] == 1):
                    out.pop(key)
                    dropped.append(key)
            if reasoning_effort is not None and caps is not None:
                effort = _effort_for(caps, reasoning_effort)
                if effort is not None and out.get("reasoning_effort") != effort:
                    out["reasoning_effort"] = effort
                    changed.append("reasoning_effort")
                elif effort is None and "reasoning_effort" in out:
                    out.pop("reasoning_effort")
                    dropped.append("reasoning_effort")
            elif "reasoning_effort" in out and caps is not None:
                effort = _effort_for(caps, str(out["reasoning_effort"]))
                if effort is None:
                    out.pop("reasoning_effort")
                    dropped.append("reasoning_effort")
                elif effort != out["reasoning_effort"]:
                    out["reasoning_effort"] = effort
                    changed.append("reasoning_effort")
        elif "reasoning_effort" in out:
            out.pop("reasoning_effort")
            dropped.append("reasoning_effort")
    elif endpoint == "responses":
        if reasoning:
            for key in ("temperature", "top_p"):
                if key in out and out[key] != 1:
                    out.pop(key)
                    dropped.append(key)
            if reasoning_effort is not None and caps is not None:
                effort = _effort_for(caps, reasoning_effort)
                current = dict(out.get("reasoning") or {})
                if effort is not None and current.get("effort") != effort:
                    current["effort"] = effort
                    out["reasoning"] = current
                    changed.append("reasoning.effort")
        elif "reasoning" in out:
            out.pop("reasoning")
            dropped.append("reasoning")
    return Translation(out, tuple(dropped), tuple(changed))
