"""Model-id matching rules (genai-prices ``match`` clauses), compiled once into predicates.

Semantics follow genai-prices: the text is lower-cased before matching; ``equals``,
``starts_with``, ``ends_with`` and ``contains`` compare case-insensitively; ``regex`` is a
``re.search`` on the lower-cased text; ``or`` / ``and`` combine clauses.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import date
from typing import Any

__all__ = ["Predicate", "compile_clause", "match_clause", "normalize_compact_date"]

Predicate = Callable[[str], bool]


def compile_clause(clause: Mapping[str, Any]) -> Predicate:
    """A predicate over a *lower-cased* model id for one (validated) clause."""
    [(key, arg)] = clause.items()
    if key == "equals":
        value = str(arg).lower()
        return lambda text: text == value
    if key == "starts_with":
        prefix = str(arg).lower()
        return lambda text: text.startswith(prefix)
    if key == "ends_with":
        suffix = str(arg).lower()
        return lambda text: text.endswith(suffix)
    if key == "contains":
        part = str(arg).lower()
        return lambda text: part in text
    if key == "regex":
        pattern = re.compile(str(arg))
        return lambda text: pattern.search(text) is not None
    if key == "or":
        subs = tuple(compile_clause(c) for c in arg)
        return lambda text: any(p(text) for p in subs)
    if key == "and":
        subs = tuple(compile_clause(c) for c in arg)
        return lambda text: all(p(text) for p in subs)
    raise ValueError(f"unknown match clause {key!r}")


def match_clause(clause: Mapping[str, Any], text: str) -> bool:
    """Whether ``text`` (any case) matches ``clause`` (uncompiled; for tools and tests)."""
    return compile_clause(clause)(text.lower())


_COMPACT_DATE = re.compile(r"(-)(20\d{2})(0[1-9]|1[0-2])(0[1-9]|[12]\d|3[01])(?=-|:|$)")


def normalize_compact_date(model: str) -> str:
    """``gpt-5.2-20251211`` → ``gpt-5.2-2025-12-11`` (LiteLLM/OpenRouter-style dated ids);
    tried only when the id does not match as written, as genai-prices does."""

    def dashed(m: re.Match[str]) -> str:
        year, month, day = int(m.group(2)), int(m.group(3)), int(m.group(4))
        try:
            date(year, month, day)
        except ValueError:
            return m.group(0)
        return f"-{year:04d}-{month:02d}-{day:02d}"

    return _COMPACT_DATE.sub(dashed, model)
