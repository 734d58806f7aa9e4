"""Why an estimate is what it is: its breakdown into framing, messages, tools, schema, media
and provider-added input (``finops tokens --explain``).

Each part is measured as the change in the estimate when that part is added to the
request (framing: the request with no content at all), so the parts add up to the total
exactly; inside each part, media and provider-added input (tool-use system prompts,
thinking prompts, task budgets, server tools, hidden frames) are listed from the
approximations the estimator recorded.
"""

from __future__ import annotations

from collections import Counter as CounterType
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from finops.tokens.estimate import Estimate, _endpoint, _estimate

__all__ = ["Part", "explain_request"]

_MEDIA = ("image", "audio", "pdf", "file", "document")
_PROVIDER = (
    "system prompt",
    "thinking prompt",
    "task budget",
    "server tool",
    "built-in tool",
    "web search",
    "responses api",
    "structured output instructions",
    "previous_response_id",
    "item references",
)
# Keys added one by one, in this order; anything else in the body comes last.
_CONTENT = ("system", "instructions", "messages", "input")
_LATER = (
    "tools",
    "functions",
    "tool_choice",
    "response_format",
    "text",
    "output_config",
    "output_format",
    "thinking",
    "web_search_options",
    "previous_response_id",
)


@dataclass(frozen=True, slots=True)
class Part:
    """One line of the breakdown: its estimate and the most the provider may bill for it."""

    kind: str  # framing | system | message | tools | schema | media | provider-added | other
    label: str
    tokens: int
    tokens_max: int


def _run(provider: str, endpoint: str, body: Mapping[str, Any]) -> tuple[Estimate, list[Any]]:
    log: list[tuple[str, int, float]] = []
    est = _estimate(
        provider=provider,
        endpoint=endpoint,
        body=body,
        pricebook=None,
        unknown_model="fallback",
        mode="exact",
        at=None,
        log=log,
    )
    return est, log


def explain_request(
    *, provider: str, endpoint: str, body: Mapping[str, Any]
) -> tuple[Estimate, list[Part]]:
    """The estimate of ``body`` and its parts (their tokens sum to ``input_tokens``)."""
    endpoint = _endpoint(provider, endpoint)
    full, _ = _run(provider, endpoint, body)
    current: dict[str, Any] = {
        k: v for k, v in body.items() if k not in _CONTENT and k not in _LATER
    }
    prev, _ = _run(provider, endpoint, current)
    parts = [
        Part(
            "framing",
            "request framing (reply priming, base)",
            prev.input_tokens,
            prev.input_tokens_max,
        )
    ]
    seen: CounterType[tuple[str, int, float]] = CounterType()

    def add(kind: str, label: str, update: dict[str, Any]) -> None:
        nonlocal prev, seen
        current.update(update)
        est, log = _run(provider, endpoint, current)
        # Media and provider-added input recorded while counting this part: the entries
        # this run logged that the previous one did not.
        now = CounterType((note, tokens, round(extra, 3)) for note, tokens, extra in log)
        new = list((now - seen).elements())
        seen = now
        sub_tokens = sub_max = 0
        subs = []
        for note, tokens, extra in new:
            low = note.lower()
            sub = "media" if any(m in low for m in _MEDIA) else None
            if any(p in low for p in _PROVIDER):
                sub = "provider-added"
            if sub and (tokens or extra):
                subs.append(Part(sub, f"  {note}", tokens, tokens + round(extra)))
                sub_tokens += tokens
                sub_max += tokens + round(extra)
        d_tok = est.input_tokens - prev.input_tokens
        d_max = est.input_tokens_max - prev.input_tokens_max
        own, own_max = d_tok - sub_tokens, max(0, d_max - sub_max)
        if own or own_max or not subs:
            parts.append(Part(kind, label, own, own_max))
            parts.extend(subs)
        else:  # the part is only provider-added input: its sub-lines say it all
            parts.extend(
                Part(p.kind, f"{label}: {p.label.strip()}", p.tokens, p.tokens_max) for p in subs
            )
        prev = est

    for key in ("system", "instructions"):
        if body.get(key):
            add("system", key, {key: body[key]})
    for key in ("messages", "input"):
        value = body.get(key)
        if isinstance(value, str):
            add("message", f"{key}: text", {key: value})
        elif isinstance(value, list):
            for i in range(len(value)):
                item = value[i]
                role = item.get("role") or item.get("type") if isinstance(item, Mapping) else "?"
                add("message", f"{key}[{i}] {role}", {key: value[: i + 1]})
    for key in _LATER:
        if key in body:
            kind = "tools" if key in ("tools", "functions", "tool_choice") else "schema"
            if key in ("thinking", "web_search_options", "previous_response_id"):
                kind = "provider-added"
            add(kind, key, {key: body[key]})
    # Whatever else remains (none in practice): the difference to the full estimate.
    rest = full.input_tokens - prev.input_tokens
    if rest:
        parts.append(
            Part("other", "other", rest, max(0, full.input_tokens_max - prev.input_tokens_max))
        )
    return full, parts
