"""Deterministic stand-ins for what a provider computes: token counts, replies, prompt caches.

Everything here is a pure function of the request (plus the prompt-cache memory), so the same
request always gets the same reply and the same usage, on every machine and Python version.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterable, Mapping
from typing import Any

SNAPSHOTS = {
    "gpt-4o": "gpt-4o-2024-08-06",
    "gpt-4o-mini": "gpt-4o-mini-2024-07-18",
    "gpt-4o-audio-preview": "gpt-4o-audio-preview-2024-12-17",
    "gpt-4.1": "gpt-4.1-2025-04-14",
    "gpt-4.1-mini": "gpt-4.1-mini-2025-04-14",
    "gpt-4.1-nano": "gpt-4.1-nano-2025-04-14",
    "o1": "o1-2024-12-17",
    "o3-mini": "o3-mini-2025-01-31",
    "o3": "o3-2025-04-16",
    "o4-mini": "o4-mini-2025-04-16",
    "gpt-5": "gpt-5-2025-08-07",
    "gpt-5-mini": "gpt-5-mini-2025-08-07",
    "gpt-5-nano": "gpt-5-nano-2025-08-07",
    "claude-sonnet-4-5": "claude-sonnet-4-5-20250929",
    "claude-sonnet-4-0": "claude-sonnet-4-20250514",
    "claude-sonnet-4": "claude-sonnet-4-20250514",
    "claude-haiku-4-5": "claude-haiku-4-5-20251001",
    "claude-opus-4-1": "claude-opus-4-1-20250805",
    "claude-opus-4-5": "claude-opus-4-5-20251101",
    "claude-3-5-haiku-latest": "claude-3-5-haiku-20241022",
}
_REASONING_PREFIXES = ("o1", "o3", "o4", "gpt-5")
# How much a reasoning effort setting scales the (synthetic) reasoning length.
_EFFORT = {"none": 0.0, "minimal": 0.25, "low": 0.5, "medium": 1.0, "high": 2.0, "xhigh": 3.0}
_WORDS = [
    "ledger",
    "cost",
    "token",
    "budget",
    "cache",
    "price",
    "model",
    "stream",
    "call",
    "spend",
    "team",
    "audit",
    "margin",
    "invoice",
    "quota",
    "meter",
    "tally",
    "route",
    "cheap",
    "exact",
    "limit",
    "settle",
    "reserve",
    "window",
    "report",
    "trend",
    "saving",
]

# Providers cache prompts only from a minimum length on, in fixed steps (OpenAI: 1024 tokens,
# then increments of 128; Anthropic: 1024 for Sonnet/Opus — one minimum for all models here).
CACHE_MIN_TOKENS = 1024
CACHE_STEP = 128
MAX_REPLY_WORDS = 40


def tokens(text: str) -> int:
    """A stable token count: UTF-8 bytes / 4, rounded up (close to o200k for English)."""
    return (len(text.encode()) + 3) // 4 if text else 0


def content_tokens(content: Any) -> int:
    """Tokens of a message ``content`` (a string or a list of parts, any provider's shape)."""
    if isinstance(content, str):
        return tokens(content)
    if content is None:
        return 0
    if not isinstance(content, list):
        return tokens(canonical(content))
    total = 0
    for part in content:
        if isinstance(part, str):
            total += tokens(part)
        elif isinstance(part, Mapping):
            if isinstance(part.get("text"), str):
                total += tokens(part["text"])
            elif isinstance(part.get("thinking"), str):
                total += tokens(part["thinking"])
            elif part.get("type") in ("image_url", "image", "input_image"):
                total += 85  # a low-detail image tile
            else:
                total += tokens(canonical(part))
    return total


_canonical = json.JSONEncoder(sort_keys=True, separators=(",", ":"), default=str).encode


def canonical(value: Any) -> str:
    """Canonical JSON (sorted keys, compact) for hashing."""
    return _canonical(value)


def digest(body: Mapping[str, Any]) -> str:
    """Hex SHA-256 of the request without the fields that do not change the answer."""
    stable = {k: v for k, v in body.items() if k not in ("stream", "stream_options")}
    return hashlib.sha256(canonical(stable).encode()).hexdigest()


def snapshot(model: str) -> str:
    """The dated snapshot id a provider echoes for a model alias (unknown ids echo as is)."""
    return SNAPSHOTS.get(model, model)


def reply_words(seed: str, *, natural: int) -> list[str]:
    """``natural`` words chosen by the hex ``seed`` (any length ≥ 2)."""
    n = len(seed) - 1
    return [_WORDS[int(seed[i % n : i % n + 2], 16) % len(_WORDS)] for i in range(natural)]


def natural_length(seed: str) -> int:
    """How many words the model 'wants' to say: 8 to 24, fixed by the request."""
    return 8 + int(seed[:2], 16) % 17


def reasoning_tokens(model: str, seed: str, effort: Any = None) -> int:
    """Hidden reasoning length for reasoning models (0 for the others)."""
    if not model.startswith(_REASONING_PREFIXES):
        return 0
    scale = _EFFORT.get(str(effort), 1.0) if effort is not None else 1.0
    return int((64 + int(seed[2:4], 16)) * scale)


def clamp_limit(value: Any) -> int | None:
    """A ``max_tokens``-style limit as a positive int, or None when absent or unusable."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return max(1, int(value))


def split_output(natural: int, reasoning: int, limit: int | None) -> tuple[int, int, bool]:
    """(visible words, reasoning tokens, truncated) so that their sum never exceeds ``limit``.

    Reasoning gets at most half of the limit, the visible reply the rest: callers budget on
    ``max_tokens``, so the reported output must never exceed it.
    """
    visible = min(natural, MAX_REPLY_WORDS)
    if limit is None:
        return visible, reasoning, False
    reasoning = min(reasoning, limit // 2)
    room = limit - reasoning
    return min(visible, room), reasoning, visible > room


def chain(seed: str, segments: Iterable[Any]) -> list[str]:
    """Rolling hashes: element i identifies the prefix ``segments[: i + 1]`` under ``seed``."""
    out: list[str] = []
    h = hashlib.sha256(seed.encode()).digest()
    for segment in segments:
        h = hashlib.sha256(h + canonical(segment).encode()).digest()
        out.append(h.hex()[:32])
    return out


def openai_cached(seen_tokens: int) -> int:
    """Cached tokens OpenAI reports for a reused prefix of ``seen_tokens``: 1024 + k·128."""
    if seen_tokens < CACHE_MIN_TOKENS:
        return 0
    return CACHE_MIN_TOKENS + (seen_tokens - CACHE_MIN_TOKENS) // CACHE_STEP * CACHE_STEP


class PrefixCache:
    """The server's prompt-cache memory: which prompt prefixes (by rolling hash) it has seen.

    Thread-safe. Bounded: when full it forgets everything, like a cache eviction, so a long
    benchmark cannot grow the server's memory without end.
    """

    def __init__(self, *, max_entries: int = 100_000) -> None:
        self._lock = threading.Lock()
        self._seen: set[str] = set()
        self._max = max_entries

    def lookup_and_add(
        self, prefixes: list[tuple[str, int]], *, remember: list[str] | None = None
    ) -> int:
        """Tokens of the longest of ``prefixes`` seen before (0 if none); then remember
        ``remember`` (default: all of ``prefixes``). One lock, so concurrent identical
        requests see each other exactly once."""
        best = 0
        keys = [key for key, _ in prefixes] if remember is None else remember
        with self._lock:
            for key, n in prefixes:
                if n > best and key in self._seen:
                    best = n
            if len(self._seen) + len(keys) > self._max:
                self._seen.clear()
            self._seen.update(keys)
        return best

    def clear(self) -> None:
        """Forget every prefix."""
        with self._lock:
            self._seen.clear()
