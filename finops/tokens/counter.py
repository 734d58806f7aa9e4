"""The one place text becomes a token count, and where approximations are recorded.

A :class:`Counter` counts text either exactly with a BPE encoding or, in ``bound`` mode, as
its UTF-8 byte length — a guaranteed upper bound, because every BPE token stands for at
least one byte. Both modes run the same request walkers, so the bound can never fall
below the exact estimate. Whatever part of a request is only approximated (tool schemas,
images of unknown size, Anthropic text) widens the counter's error bound and clears
``exact``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from finops.tokens.encodings import get_encoding

__all__ = ["Counter", "json_text"]

# Short strings (roles, names, tool names) repeat on every call: a plain dict remembers
# their counts at the cost of one lookup. System prompts and chat history repeat across
# calls too: an LRU remembers strings up to 8 KB (hashing is far cheaper than BPE).
_SMALL = 32
_CACHE_MAX = 8192
_MEMO_MAX_CHARS = 8192
_small_counts: dict[str, dict[str, int]] = {}


@lru_cache(maxsize=8192)
def _memo_count(encoding: str, value: str) -> int:
    return len(get_encoding(encoding).encode_ordinary(value))


class Counter:
    """Counts text for one request and tracks how exact the total is."""

    __slots__ = ("_count", "_encoding", "_small", "bound", "exact", "log", "notes", "slack")

    def __init__(self, encoding: str | None) -> None:
        """``encoding``: a bundled encoding name, or None for the UTF-8 byte upper bound."""
        self.exact = encoding is not None
        self.bound = 0.0
        self.notes: list[str] = []
        # Tokens the provider may bill beyond the estimate: the sum over approximated parts
        # of (their upper bound - their estimate). estimate + slack is the upper bound.
        self.slack = 0.0
        # (note, tokens, extra upper-bound tokens) of every approximated part, when set
        # (``finops tokens --explain``); None on the hot path.
        self.log: list[tuple[str, int, float]] | None = None
        self._encoding = encoding
        if encoding is None:
            self._count: Callable[[str], int] = _utf8_len
            self._small: dict[str, int] | None = None
        else:
            encode = get_encoding(encoding).encode_ordinary
            self._count = lambda s: len(encode(s))
            self._small = _small_counts.setdefault(encoding, {})

    def text(self, value: str) -> int:
        """Tokens of ``value`` (special-token text is counted as ordinary text)."""
        if not value:
            return 0
        small = self._small
        if small is not None and len(value) <= _SMALL:
            n = small.get(value)
            if n is None:
                n = self._count(value)
                if len(small) >= _CACHE_MAX:
                    small.clear()
                small[value] = n
            return n
        if small is not None and len(value) <= _MEMO_MAX_CHARS and self._encoding:
            return _memo_count(self._encoding, value)
        return self._count(value)

    @property
    def bytes_mode(self) -> bool:
        """True when text is counted as UTF-8 bytes (an upper bound) instead of BPE tokens."""
        return self._encoding is None

    def approx(self, tokens: int, bound: float, note: str) -> int:
        """Record that ``tokens`` is an estimate within a relative ``bound``; return it.

        The provider may bill up to ``tokens * (1 + bound)`` for this part (slack).
        """
        self.exact = False
        if bound > self.bound:
            self.bound = bound
        self.slack += tokens * bound
        if self.log is not None:
            self.log.append((note, tokens, tokens * bound))
        if note not in self.notes:
            self.notes.append(note)
        return tokens

    def upto(self, tokens: int, most: int, note: str) -> int:
        """Record a part estimated at ``tokens`` that may cost up to ``most``; return it."""
        self.exact = False
        extra = max(0, most - tokens)
        self.slack += extra
        if self.log is not None:
            self.log.append((note, tokens, float(extra)))
        rel = extra / tokens if tokens > 0 else (1.0 if extra else 0.0)
        if rel > self.bound:
            self.bound = rel
        if note not in self.notes:
            self.notes.append(note)
        return tokens

    def json(self, value: Any) -> int:
        """Tokens of ``value`` written as compact JSON (schemas, tool arguments)."""
        return self.text(value if isinstance(value, str) else json_text(value))


def json_text(value: Any) -> str:
    """Compact JSON, as providers render schemas and arguments."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


def _utf8_len(value: str) -> int:
    return len(value) if value.isascii() else len(value.encode("utf-8"))
