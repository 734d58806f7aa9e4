"""Model id → family: which encoding counts it, how exact the chat format is, image rules.

The table is data (``data/models.json``) so a new model family is a reviewed data change, not
a code change. Unknown ids resolve to the ``unknown`` family, which estimates with
``o200k_base`` and is always flagged (``known=False``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from finops.tokens.encodings import DATA_DIR

__all__ = ["ImageRule", "ModelFamily", "family_for"]


@dataclass(frozen=True, slots=True)
class ImageRule:
    """How a family prices an image: ``tile`` (base + per 512 px tile) or ``patch`` (32 px)."""

    kind: str
    base: int = 0
    tile: int = 0
    multiplier: float = 1.0


@dataclass(frozen=True, slots=True)
class ModelFamily:
    """What the estimator needs to know about one model family."""

    name: str
    encoding: str
    chat_exact: bool  # the cookbook chat format reproduces the provider's count exactly
    tools_encoding: str  # which cookbook tool-overhead constants apply
    image: ImageRule | None
    responses_extra: int  # hidden tokens the responses API adds (measured, docs/tokens.md)
    known: bool
    reply_extra: int = 0  # added to the 3 reply-priming tokens (reasoning families: -1)


@cache
def _table() -> tuple[list[tuple[str, str]], dict[str, ModelFamily]]:
    data = json.loads((DATA_DIR / "models.json").read_text(encoding="utf-8"))
    families: dict[str, ModelFamily] = {}
    for name, spec in data["families"].items():
        families[name] = _family(name, spec)
    prefixes = sorted(data["prefixes"].items(), key=lambda kv: -len(kv[0]))
    for prefix, fam in prefixes:
        if fam not in families:  # a data error: fail loudly at first use, in tests
            raise ValueError(f"models.json: prefix {prefix!r} names unknown family {fam!r}")
    return prefixes, families


def _family(name: str, spec: Mapping[str, Any]) -> ModelFamily:
    image = spec.get("image")
    rule = None
    if image:
        rule = ImageRule(
            kind=str(image["kind"]),
            base=int(image.get("base", 0)),
            tile=int(image.get("tile", 0)),
            multiplier=float(image.get("multiplier", 1.0)),
        )
    return ModelFamily(
        name=name,
        encoding=str(spec["encoding"]),
        chat_exact=bool(spec["chat_exact"]),
        tools_encoding=str(spec["tools"]),
        image=rule,
        responses_extra=int(spec.get("responses_extra", 0)),
        known=name != "unknown",
        reply_extra=int(spec.get("reply_extra", 0)),
    )


@cache
def family_for(model: str) -> ModelFamily:
    """The family of ``model`` (e.g. ``gpt-4o-2024-08-06`` → ``gpt-4o``); never raises."""
    prefixes, families = _table()
    name = model.strip().lower()
    for lead in ("openai/", "anthropic/", "ft:"):
        name = name.removeprefix(lead)
    for prefix, fam in prefixes:
        if name.startswith(prefix):
            return families[fam]
    return families["unknown"]
