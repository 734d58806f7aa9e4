"""Routing across providers: one request and its answer between two SDKs' wire shapes.

A route target may name another provider's model with a ``provider:`` prefix
(``"anthropic:claude-haiku-4-5"``, ``"openai:gpt-4.1-mini"``, ``"google:gemini-2.5-flash"``,
``"aws:us.anthropic.claude-haiku-4-5-20251001-v1:0"``, or the label of any OpenAI-compatible
host the user wrapped, ``"groq:llama-3.1-8b-instant"``). Such a request is read into a
neutral :class:`Conversation` (system text, user/assistant text turns, max tokens,
temperature, top-p, stop sequences), written in the target's shape, sent through the
target's *wrapped* client (its own estimate, budget reservation at the target's price, cache
and row), and the target's answer is written back in the caller's wire JSON, which the
caller's SDK parses itself (so the caller gets a ``ChatCompletion`` from a Claude answer, a
``Message`` from a GPT one, and real stream objects for ``stream=True``).

Only what translates without loss is routed. Refused (``no_route:cannot_serve:<why>``):
tools / functions / tool choice, ``response_format`` and other structured output, any
non-text content (images, audio, documents, tool results), ``n > 1``, log-probabilities,
predicted outputs, audio output, the Responses and embeddings endpoints, ``.stream()`` /
``.parse()`` helpers. Parameters with no counterpart that do not change what is asked
(``seed``, penalties, ``top_k``, ``reasoning_effort`` / ``thinking``, ``metadata``,
``user``, ``service_tier``, ``logit_bias``...) are dropped and recorded on the row.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "CALLER_ENDPOINTS",
    "PROVIDER_ALIASES",
    "Answer",
    "CannotTranslate",
    "Conversation",
    "answer_of",
    "caller_error",
    "caller_json",
    "read_request",
    "split_target",
    "target_kwargs",
]

#: The caller endpoints a cross-provider route can answer (their SDKs parse JSON and SSE).
CALLER_ENDPOINTS = {
    "openai": "chat.completions",
    "anthropic": "messages",
    "google": "generate_content",
    "aws": "converse",
}
#: Spellings of the four SDK families' price providers in a ``provider:model`` target.
PROVIDER_ALIASES = {
    "openai": "openai",
    "anthropic": "anthropic",
    "google": "google",
    "gemini": "google",
    "aws": "aws",
    "bedrock": "aws",
}
#: max_tokens for an Anthropic/Bedrock target when the caller set none (Anthropic requires
#: one): the target's maximum output, at most this (the Anthropic SDK refuses a non-stream
#: request whose max_tokens could take over 10 minutes); 4,096 when the maximum is unknown.
MAX_TOKENS_CAP = 16384
DEFAULT_MAX_TOKENS = 4096

# OpenAI chat parameters that translate, are harmless to drop, or refuse the route.
_OPENAI_KEEP = frozenset(
    {
        "model",
        "messages",
        "max_tokens",
        "max_completion_tokens",
        "temperature",
        "top_p",
        "stop",
        "stream",
        "stream_options",
        "n",
    }
)
_OPENAI_DROP = frozenset(
    {
        "seed",
        "presence_penalty",
        "frequency_penalty",
        "reasoning_effort",
        "user",
        "metadata",
        "store",
        "service_tier",
        "logit_bias",
        "prompt_cache_key",
        "prompt_cache_retention",
        "safety_identifier",
        "verbosity",
        "extra_body",
    }
)
_OPENAI_REFUSE = {
    "tools": "tools",
    "functions": "tools",
    "tool_choice": "tools",
    "function_call": "tools",
    "parallel_tool_calls": "tools",
    "response_format": "json_schema",
    "logprobs": "logprobs",
    "top_logprobs": "logprobs",
    "modalities": "audio",
    "audio": "audio",
    "prediction": "prediction",
    "web_search_options": "web_search",
}
_ANTHROPIC_KEEP = frozenset(
    {
        "model",
        "messages",
        "system",
        "max_tokens",
        "temperature",
        "top_p",
        "stop_sequences",
        "stream",
    }
)
_ANTHROPIC_DROP = frozenset(
    {
        "top_k",
        "metadata",
        "thinking",
        "service_tier",
        "betas",
        "inference_geo",
        "extra_body",
        "cache_control",
        "diagnostics",
        "speed",
        "user_profile_id",
        "workspace_id",
    }
)
_ANTHROPIC_REFUSE = {
    "tools": "tools",
    "tool_choice": "tools",
    "mcp_servers": "tools",
    "container": "tools",
    "output_format": "json_schema",
    "output_config": "json_schema",
}
# google-genai GenerateContentConfig fields (snake or camel case).
_GEMINI_KEEP = frozenset(
    {"system_instruction", "temperature", "top_p", "max_output_tokens", "stop_sequences"}
)
_GEMINI_SILENT = frozenset(
    {"http_options", "should_return_http_response", "labels", "automatic_function_calling"}
)
_GEMINI_DROP = frozenset(
    {
        "top_k",
        "seed",
        "presence_penalty",
        "frequency_penalty",
        "thinking_config",
        "safety_settings",
        "media_resolution",
        "service_tier",
        "store",
        "routing_config",
        "model_selection_config",
        "enable_enhanced_civic_answers",
        "model_armor_config",
    }
)
_GEMINI_REFUSE = {
    "tools": "tools",
    "tool_config": "tools",
    "response_schema": "json_schema",
    "response_json_schema": "json_schema",
    "response_logprobs": "logprobs",
    "logprobs": "logprobs",
    "cached_content": "cached_content",
    "speech_config": "audio",
    "audio_timestamp": "audio",
    "audio_transcription_config": "audio",
    "image_config": "image",
    "continuation_token": "continuation",
    "automatic_continuation": "continuation",
    "generation_output_config": "json_schema",
}
# Bedrock Converse members, as the botocore hooks' request view names them.
_BEDROCK_SILENT = frozenset(
    {
        "model",
        "messages",
        "system",
        "max_tokens",
        "inferenceConfig",
        "requestMetadata",
        "contentType",
        "accept",
        "trace",
    }
)
_BEDROCK_DROP = frozenset(
    {
        "additionalModelRequestFields",
        "additionalModelResponseFieldPaths",
        "performanceConfig",
        "serviceTier",
    }
)
_BEDROCK_REFUSE = {
    "tools": "tools",
    "toolConfig": "tools",
    "outputConfig": "json_schema",
    "guardrailConfig": "guardrail",
    "promptVariables": "prompt_variables",
}
# SDK transport options: not part of the request, never forwarded.
_TRANSPORT = frozenset({"extra_headers", "extra_query", "timeout"})

_FINISH_TO_OPENAI = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "stop": "stop",
    "length": "length",
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "refusal": "content_filter",
    "SAFETY": "content_filter",
    "content_filtered": "content_filter",
    "guardrail_intervened": "content_filter",
    "model_context_window_exceeded": "length",
}
_FINISH_TO_GEMINI = {
    "stop": "STOP",
    "end_turn": "STOP",
    "stop_sequence": "STOP",
    "length": "MAX_TOKENS",
    "max_tokens": "MAX_TOKENS",
    "content_filter": "SAFETY",
    "refusal": "SAFETY",
    "content_filtered": "SAFETY",
    "guardrail_intervened": "SAFETY",
    "model_context_window_exceeded": "MAX_TOKENS",
    "STOP": "STOP",
    "MAX_TOKENS": "MAX_TOKENS",
}
_FINISH_TO_CONVERSE = {
    "stop": "end_turn",
    "length": "max_tokens",
    "content_filter": "content_filtered",
    "end_turn": "end_turn",
    "stop_sequence": "stop_sequence",
    "max_tokens": "max_tokens",
    "refusal": "content_filtered",
    "STOP": "end_turn",
    "MAX_TOKENS": "max_tokens",
    "SAFETY": "content_filtered",
}
_FINISH_TO_ANTHROPIC = {
    "stop": "end_turn",
    "length": "max_tokens",
    "content_filter": "refusal",
    "end_turn": "end_turn",
    "stop_sequence": "stop_sequence",
    "max_tokens": "max_tokens",
    "STOP": "end_turn",
    "MAX_TOKENS": "max_tokens",
    "SAFETY": "refusal",
    "content_filtered": "refusal",
    "guardrail_intervened": "refusal",
    "model_context_window_exceeded": "max_tokens",
}


class CannotTranslate(Exception):
    """The request has something the other wire cannot say; ``reason`` is recorded."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(slots=True)
class Conversation:
    """A text-only chat request, in no provider's shape."""

    turns: list[tuple[str, str]]  # ("user" | "assistant", text), in order
    system: str | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop: list[str] = field(default_factory=list)
    stream: bool = False
    dropped: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Answer:
    """What the target answered, in no provider's shape."""

    text: str
    finish: str  # the target's own stop/finish reason
    input_tokens: int  # all input tokens, cached ones included
    output_tokens: int  # all output tokens, reasoning included
    cache_read: int = 0
    cache_write: int = 0
    model: str = ""
    id: str = ""


def split_target(model: str | None, known: frozenset[str] = frozenset()) -> tuple[str | None, str]:
    """``"anthropic:claude-haiku-4-5"`` → ``("anthropic", "claude-haiku-4-5")``; a model
    without a provider prefix (or with an unknown one, like ``ft:`` fine-tunes) → ``(None,
    model)``. ``known`` adds host labels of wrapped clients (``groq``, ``mistral``...)."""
    if not model or ":" not in model:
        return None, model or ""
    head, _, rest = model.partition(":")
    provider = PROVIDER_ALIASES.get(head.lower()) or (head if head in known else None)
    if provider is None or not rest:
        return None, model
    return provider, rest


# -- the caller's request -> Conversation ---------------------------------------------------


def _plain(value: Any) -> Any:
    dump = getattr(value, "model_dump", None)
    if callable(dump) and not isinstance(value, type):
        return dump(exclude_none=True)
    return value


def _is_sentinel(value: Any) -> bool:
    return value is None or type(value).__name__ in ("NotGiven", "Omit")


def _text(content: Any, *, kinds: tuple[str, ...]) -> str:
    """The text of a content value made only of text; anything else refuses the route."""
    content = _plain(content)
    if isinstance(content, str):
        return content
    if isinstance(content, (list, tuple)):
        out = []
        for block in content:
            block = _plain(block)
            if isinstance(block, str):
                out.append(block)
                continue
            if not isinstance(block, Mapping) or block.get("type") not in kinds:
                kind = block.get("type") if isinstance(block, Mapping) else type(block).__name__
                raise CannotTranslate(f"content:{kind}")
            out.append(str(block.get("text", "")))
        return "".join(out)
    raise CannotTranslate(f"content:{type(content).__name__}")


def _stop_list(value: Any) -> list[str]:
    if _is_sentinel(value):
        return []
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value]


def _limit(value: Any) -> int | None:
    return None if _is_sentinel(value) else int(value)


def _number(value: Any) -> float | None:
    return None if _is_sentinel(value) else float(value)


def read_request(wire: str, endpoint: str, kwargs: Mapping[str, Any]) -> Conversation:
    """The caller's keyword arguments as a :class:`Conversation` (raises
    :class:`CannotTranslate` with the reason when they do not translate)."""
    if CALLER_ENDPOINTS.get(wire) != endpoint:
        raise CannotTranslate(f"endpoint:{endpoint}")
    if wire == "google":
        conv = _read_gemini(kwargs)
    elif wire == "aws":
        conv = _read_converse(kwargs)
    else:
        conv = _read_chat(wire, kwargs)
    if not conv.turns or conv.turns[-1][0] != "user":
        raise CannotTranslate("last_turn_not_user")
    return conv


def _read_chat(wire: str, kwargs: Mapping[str, Any]) -> Conversation:
    """OpenAI chat / Anthropic messages keyword arguments as a :class:`Conversation`."""
    keep, drop, refuse = (
        (_OPENAI_KEEP, _OPENAI_DROP, _OPENAI_REFUSE)
        if wire == "openai"
        else (_ANTHROPIC_KEEP, _ANTHROPIC_DROP, _ANTHROPIC_REFUSE)
    )
    dropped: list[str] = []
    for name, value in kwargs.items():
        if _is_sentinel(value) or name in _TRANSPORT or name in keep:
            continue
        if name in refuse:
            raise CannotTranslate(refuse[name])
        if name in drop:
            dropped.append(name)
            continue
        raise CannotTranslate(f"parameter:{name}")  # unknown: never guess what it means
    conv = _read_openai(kwargs) if wire == "openai" else _read_anthropic(kwargs)
    conv.dropped.extend(dropped)
    conv.temperature = _number(kwargs.get("temperature"))
    conv.top_p = _number(kwargs.get("top_p"))
    conv.stream = kwargs.get("stream") is True
    return conv


def _read_openai(kwargs: Mapping[str, Any]) -> Conversation:
    n = kwargs.get("n")
    if not _is_sentinel(n) and n != 1:
        raise CannotTranslate("n>1")
    system: list[str] = []
    turns: list[tuple[str, str]] = []
    for message in kwargs.get("messages") or ():
        message = _plain(message)
        if not isinstance(message, Mapping):
            raise CannotTranslate("content:message")
        role = message.get("role")
        if message.get("tool_calls") or message.get("function_call") or message.get("audio"):
            raise CannotTranslate("tools")
        text = _text(message.get("content") or "", kinds=("text",))
        if role in ("system", "developer"):
            system.append(text)
        elif role in ("user", "assistant"):
            turns.append((str(role), text))
        else:
            raise CannotTranslate("tools" if role in ("tool", "function") else f"role:{role}")
    limit = kwargs.get("max_completion_tokens")
    if _is_sentinel(limit):
        limit = kwargs.get("max_tokens")
    return Conversation(
        turns=turns,
        system="\n\n".join(system) if system else None,
        max_tokens=_limit(limit),
        stop=_stop_list(kwargs.get("stop")),
    )


def _read_anthropic(kwargs: Mapping[str, Any]) -> Conversation:
    system = kwargs.get("system")
    turns: list[tuple[str, str]] = []
    for message in kwargs.get("messages") or ():
        message = _plain(message)
        if not isinstance(message, Mapping) or message.get("role") not in ("user", "assistant"):
            raise CannotTranslate("content:message")
        turns.append((str(message["role"]), _text(message.get("content", ""), kinds=("text",))))
    limit = kwargs.get("max_tokens")
    return Conversation(
        turns=turns,
        system=None if _is_sentinel(system) else _text(system, kinds=("text",)),
        max_tokens=_limit(limit),
        stop=_stop_list(kwargs.get("stop_sequences")),
    )


def _converse_text(blocks: Any) -> str:
    out = []
    for block in blocks or ():
        if not isinstance(block, Mapping):
            raise CannotTranslate("content:block")
        if set(block) == {"cachePoint"}:
            continue
        if set(block) != {"text"}:
            raise CannotTranslate("content:" + next(iter(sorted(block)), "block"))
        out.append(str(block["text"]))
    return "".join(out)


def _read_converse(kwargs: Mapping[str, Any]) -> Conversation:
    dropped: list[str] = []
    for name, value in kwargs.items():
        if value is None or name in _BEDROCK_SILENT:
            continue
        if name in _BEDROCK_REFUSE:
            raise CannotTranslate(_BEDROCK_REFUSE[name])
        if name in _BEDROCK_DROP:
            dropped.append(name)
            continue
        raise CannotTranslate(f"parameter:{name}")
    turns: list[tuple[str, str]] = []
    for message in kwargs.get("messages") or ():
        if not isinstance(message, Mapping) or message.get("role") not in ("user", "assistant"):
            raise CannotTranslate("content:message")
        turns.append((str(message["role"]), _converse_text(message.get("content"))))
    system = kwargs.get("system")
    inference = kwargs.get("inferenceConfig") or {}
    return Conversation(
        turns=turns,
        system=_converse_text(system) if system else None,
        max_tokens=_limit(inference.get("maxTokens")),
        temperature=_number(inference.get("temperature")),
        top_p=_number(inference.get("topP")),
        stop=_stop_list(inference.get("stopSequences")),
        dropped=dropped,
    )


def _snake(name: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in name)


def _gemini_text(parts: Any) -> str:
    parts = _plain(parts)
    items = parts if isinstance(parts, (list, tuple)) else [parts]
    out = []
    for part in items:
        part = _plain(part)
        if isinstance(part, str):
            out.append(part)
            continue
        if not isinstance(part, Mapping):
            raise CannotTranslate(f"content:{type(part).__name__}")
        fields = {k for k, v in part.items() if v is not None}
        if not isinstance(part.get("text"), str) or fields - {"text"}:
            kind = next(iter(sorted(fields - {"text"})), "part")
            raise CannotTranslate(f"content:{kind}")
        out.append(part["text"])
    return "".join(out)


def _read_gemini(kwargs: Mapping[str, Any]) -> Conversation:
    for name, value in kwargs.items():
        if name not in ("model", "contents", "config") and not _is_sentinel(value):
            raise CannotTranslate(f"parameter:{name}")
    config = _plain(kwargs.get("config"))
    if config is None:
        config = {}
    if not isinstance(config, Mapping):
        raise CannotTranslate("parameter:config")
    values = {_snake(str(k)): v for k, v in config.items() if not _is_sentinel(v)}
    dropped: list[str] = []
    for name in values:
        if name in _GEMINI_KEEP or name in _GEMINI_SILENT:
            continue
        if name in _GEMINI_REFUSE:
            raise CannotTranslate(_GEMINI_REFUSE[name])
        if name == "candidate_count":
            if values[name] != 1:
                raise CannotTranslate("n>1")
            continue
        if name == "response_mime_type":
            if values[name] != "text/plain":
                raise CannotTranslate("json_schema")
            continue
        if name == "response_modalities":
            if [str(m).upper() for m in values[name]] not in (["TEXT"], []):
                raise CannotTranslate("audio")
            continue
        if name in _GEMINI_DROP:
            dropped.append(name)
            continue
        raise CannotTranslate(f"parameter:{name}")
    contents = _plain(kwargs.get("contents"))
    items = contents if isinstance(contents, (list, tuple)) else [contents]
    turns: list[tuple[str, str]] = []
    loose: list[Any] = []
    for item in items:
        item = _plain(item)
        if isinstance(item, Mapping) and ("parts" in item or "role" in item):
            if loose:
                turns.append(("user", _gemini_text(loose)))
                loose = []
            role = item.get("role") or "user"
            if role not in ("user", "model"):
                raise CannotTranslate(f"role:{role}")
            turns.append(
                ("assistant" if role == "model" else "user", _gemini_text(item.get("parts") or []))
            )
        else:
            loose.append(item)
    if loose:
        turns.append(("user", _gemini_text(loose)))
    system = values.get("system_instruction")
    if system is not None:
        system = _plain(system)
        system = (
            _gemini_text(system.get("parts") or [])
            if isinstance(system, Mapping)
            else _gemini_text(system)
        )
    return Conversation(
        turns=turns,
        system=system,
        max_tokens=_limit(values.get("max_output_tokens")),
        temperature=_number(values.get("temperature")),
        top_p=_number(values.get("top_p")),
        stop=_stop_list(values.get("stop_sequences")),
        dropped=dropped,
    )


# -- Conversation -> the target's request --------------------------------------------------


def _put(out: dict[str, Any], **fields: Any) -> None:
    """Set the fields that have a value: numbers that are not None, non-empty strings/lists."""
    for name, value in fields.items():
        if value is not None and value != "" and value != []:
            out[name] = value


def _merged(turns: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Consecutive turns of one role joined (Anthropic, Gemini and Bedrock alternate)."""
    out: list[tuple[str, str]] = []
    for role, text in turns:
        if out and out[-1][0] == role:
            out[-1] = (role, out[-1][1] + "\n\n" + text)
        else:
            out.append((role, text))
    return out


def target_kwargs(
    provider: str, wire: str, model: str, conv: Conversation, *, max_output: int | None
) -> dict[str, Any]:
    """Keyword arguments for the target SDK's method (``wire``: the target client's SDK
    wire — ``openai`` also for OpenAI-compatible hosts). Records what changed in ``conv``."""
    limit = conv.max_tokens
    if wire == "openai":
        messages: list[dict[str, Any]] = []
        if conv.system:
            messages.append({"role": "system", "content": conv.system})
        messages += [{"role": r, "content": t} for r, t in conv.turns]
        out: dict[str, Any] = {"model": model, "messages": messages}
        if limit is not None:
            out["max_tokens"] = limit
        if conv.temperature is not None:
            out["temperature"] = conv.temperature
        if conv.top_p is not None:
            out["top_p"] = conv.top_p
        if conv.stop:
            out["stop"] = conv.stop[:4]  # OpenAI takes up to 4
            if len(conv.stop) > 4:
                conv.changed.append("stop")
        return out
    turns = _merged(conv.turns)
    if turns[0][0] != "user":
        raise CannotTranslate("first_turn_not_user")
    temperature = conv.temperature
    if temperature is not None and temperature > 1 and wire in ("anthropic", "aws"):
        temperature = 1.0  # Claude (and Bedrock's models) take 0..1; OpenAI 0..2
        conv.changed.append("temperature")
    top_p = conv.top_p
    if top_p is not None and temperature is not None and wire in ("anthropic", "aws"):
        top_p = None  # newer Claude models refuse both at once
        conv.dropped.append("top_p")
    if limit is None and wire in ("anthropic", "aws"):
        limit = min(max_output, MAX_TOKENS_CAP) if max_output else DEFAULT_MAX_TOKENS
        conv.changed.append("max_tokens")
    if wire == "anthropic":
        out = {
            "model": model,
            "max_tokens": limit,
            "messages": [{"role": r, "content": t} for r, t in turns],
        }
        _put(out, system=conv.system, temperature=temperature, top_p=top_p)
        _put(out, stop_sequences=conv.stop)
        return out
    if wire == "google":
        config: dict[str, Any] = {}
        _put(config, system_instruction=conv.system, max_output_tokens=limit)
        _put(config, temperature=temperature, top_p=top_p, stop_sequences=conv.stop)
        contents = [
            {"role": "model" if r == "assistant" else "user", "parts": [{"text": t}]}
            for r, t in turns
        ]
        return {"model": model, "contents": contents, "config": config}
    if wire == "aws":
        inference: dict[str, Any] = {"maxTokens": limit}
        _put(inference, temperature=temperature, topP=top_p, stopSequences=conv.stop)
        out = {
            "modelId": model,
            "messages": [{"role": r, "content": [{"text": t}]} for r, t in turns],
            "inferenceConfig": inference,
        }
        if conv.system:
            out["system"] = [{"text": conv.system}]
        return out
    raise CannotTranslate(f"target_wire:{wire}")


# -- the target's answer -> Answer ------------------------------------------------------------


def _get(obj: Any, *path: str) -> Any:
    for name in path:
        if obj is None:
            return None
        obj = obj.get(name) if isinstance(obj, Mapping) else getattr(obj, name, None)
    return obj


def _int(value: Any) -> int:
    return int(value) if isinstance(value, int) else 0


def answer_of(wire: str, result: Any, *, model: str) -> Answer:
    """The target SDK's return value (``ChatCompletion``, ``Message``,
    ``GenerateContentResponse``, a Converse dict) as an :class:`Answer`."""
    if wire == "openai":
        choice = (_get(result, "choices") or [None])[0]
        content = _get(choice, "message", "content")
        if content is None and _get(choice, "message", "refusal"):
            content = _get(choice, "message", "refusal")
        usage = _get(result, "usage")
        return Answer(
            text=content or "",
            finish=str(_get(choice, "finish_reason") or "stop"),
            input_tokens=_int(_get(usage, "prompt_tokens")),
            output_tokens=_int(_get(usage, "completion_tokens")),
            cache_read=_int(_get(usage, "prompt_tokens_details", "cached_tokens")),
            model=str(_get(result, "model") or model),
            id=str(_get(result, "id") or ""),
        )
    if wire == "anthropic":
        blocks = _get(result, "content") or []
        usage = _get(result, "usage")
        read = _int(_get(usage, "cache_read_input_tokens"))
        write = _int(_get(usage, "cache_creation_input_tokens"))
        return Answer(
            text="".join(str(_get(b, "text") or "") for b in blocks if _get(b, "type") == "text"),
            finish=str(_get(result, "stop_reason") or "end_turn"),
            input_tokens=_int(_get(usage, "input_tokens")) + read + write,
            output_tokens=_int(_get(usage, "output_tokens")),
            cache_read=read,
            cache_write=write,
            model=str(_get(result, "model") or model),
            id=str(_get(result, "id") or ""),
        )
    if wire == "google":
        candidate = (_get(result, "candidates") or [None])[0]
        parts = _get(candidate, "content", "parts") or []
        usage = _get(result, "usage_metadata")
        finish = _get(candidate, "finish_reason")
        return Answer(
            text="".join(str(_get(p, "text") or "") for p in parts if not _get(p, "thought")),
            finish=str(getattr(finish, "name", finish) or "STOP"),
            input_tokens=_int(_get(usage, "prompt_token_count")),
            output_tokens=_int(_get(usage, "candidates_token_count"))
            + _int(_get(usage, "thoughts_token_count")),
            cache_read=_int(_get(usage, "cached_content_token_count")),
            model=str(_get(result, "model_version") or model),
            id=str(_get(result, "response_id") or ""),
        )
    if wire == "aws":
        blocks = _get(result, "output", "message", "content") or []
        usage = _get(result, "usage")
        read = _int(_get(usage, "cacheReadInputTokens"))
        write = _int(_get(usage, "cacheWriteInputTokens"))
        return Answer(
            text="".join(str(b["text"]) for b in blocks if isinstance(b, Mapping) and "text" in b),
            finish=str(_get(result, "stopReason") or "end_turn"),
            input_tokens=_int(_get(usage, "inputTokens")) + read + write,
            output_tokens=_int(_get(usage, "outputTokens")),
            cache_read=read,
            cache_write=write,
            model=model,
            id=str(_get(result, "ResponseMetadata", "RequestId") or ""),
        )
    raise CannotTranslate(f"target_wire:{wire}")


# -- Answer -> the caller's wire JSON (and SSE) ------------------------------------------------


def caller_json(wire: str, answer: Answer) -> dict[str, Any]:
    """The answer as the caller's provider would have sent it (JSON body)."""
    if wire == "openai":
        return {
            "id": answer.id or f"chatcmpl-finops-{int(time.time() * 1000)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": answer.model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": answer.text, "refusal": None},
                    "logprobs": None,
                    "finish_reason": _FINISH_TO_OPENAI.get(answer.finish, "stop"),
                }
            ],
            "usage": {
                "prompt_tokens": answer.input_tokens,
                "completion_tokens": answer.output_tokens,
                "total_tokens": answer.input_tokens + answer.output_tokens,
                "prompt_tokens_details": {"cached_tokens": answer.cache_read},
            },
        }
    if wire == "anthropic":
        return {
            "id": answer.id or f"msg_finops_{int(time.time() * 1000)}",
            "type": "message",
            "role": "assistant",
            "model": answer.model,
            "content": [{"type": "text", "text": answer.text}],
            "stop_reason": _FINISH_TO_ANTHROPIC.get(answer.finish, "end_turn"),
            "stop_sequence": None,
            "usage": {
                "input_tokens": max(
                    0, answer.input_tokens - answer.cache_read - answer.cache_write
                ),
                "output_tokens": answer.output_tokens,
                "cache_read_input_tokens": answer.cache_read,
                "cache_creation_input_tokens": answer.cache_write,
            },
        }
    if wire == "google":
        usage: dict[str, Any] = {
            "promptTokenCount": answer.input_tokens,
            "candidatesTokenCount": answer.output_tokens,
            "totalTokenCount": answer.input_tokens + answer.output_tokens,
        }
        if answer.cache_read:
            usage["cachedContentTokenCount"] = answer.cache_read
        return {
            "candidates": [
                {
                    "content": {"role": "model", "parts": [{"text": answer.text}]},
                    "finishReason": _FINISH_TO_GEMINI.get(answer.finish, "STOP"),
                    "index": 0,
                }
            ],
            "usageMetadata": usage,
            "modelVersion": answer.model,
            "responseId": answer.id or f"finops-{int(time.time() * 1000)}",
        }
    if wire == "aws":
        return {
            "output": {"message": {"role": "assistant", "content": [{"text": answer.text}]}},
            "stopReason": _FINISH_TO_CONVERSE.get(answer.finish, "end_turn"),
            "usage": {
                "inputTokens": max(0, answer.input_tokens - answer.cache_read - answer.cache_write),
                "outputTokens": answer.output_tokens,
                "totalTokens": answer.input_tokens + answer.output_tokens,
                "cacheReadInputTokens": answer.cache_read,
                "cacheWriteInputTokens": answer.cache_write,
            },
            "metrics": {"latencyMs": 0},
        }
    raise CannotTranslate(f"caller_wire:{wire}")


def caller_error(wire: str, status: int, message: str) -> bytes:
    """An error body in the caller's wire shape (its SDK raises its own error class)."""
    if wire == "openai":
        doc: dict[str, Any] = {
            "error": {"message": message, "type": "routed_call_failed", "param": None, "code": None}
        }
    elif wire == "aws":
        doc = {"message": message}
    elif wire == "google":
        doc = {"error": {"code": status, "message": message, "status": "UNAVAILABLE"}}
    else:
        doc = {"type": "error", "error": {"type": "api_error", "message": message}}
    return json.dumps(doc).encode()
