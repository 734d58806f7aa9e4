"""Attribution tags carried in a :mod:`contextvars` variable.

``with finops.tags(team="search"):`` sets tags for every call made inside the block, in the
current thread or asyncio task. Blocks nest (inner values win, outer ones are restored on
exit). asyncio tasks inherit the context they were created in; for threads, start them with
:func:`contextvars.copy_context` (``ctx.run(fn)``) or use
``concurrent.futures`` with ``contextvars.copy_context().run``.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from types import MappingProxyType

__all__ = ["current_tags", "tags"]

_EMPTY: Mapping[str, str] = MappingProxyType({})
_TAGS: contextvars.ContextVar[Mapping[str, str]] = contextvars.ContextVar(
    "finops_tags", default=_EMPTY
)


def _clean(values: Mapping[str, object]) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in values.items():
        if not isinstance(key, str) or not key:
            raise TypeError(f"finops tag names must be non-empty strings, got {key!r}")
        if value is None:
            continue
        out[key] = value if isinstance(value, str) else str(value)
    return out


@contextmanager
def tags(**values: object) -> Iterator[Mapping[str, str]]:
    """Attach tags (``team``, ``feature``, ``user``, ``agent``, or any name) to calls in the block.

    Values are converted to ``str``; a value of ``None`` removes an inherited tag.
    Yields the effective (merged) tags.
    """
    parent = _TAGS.get()
    merged = dict(parent)
    for key, value in values.items():
        if value is None:
            merged.pop(key, None)
    merged.update(_clean(values))
    frozen = MappingProxyType(merged)
    token = _TAGS.set(frozen)
    try:
        yield frozen
    finally:
        _TAGS.reset(token)


def current_tags() -> Mapping[str, str]:
    """The tags in effect here (read-only)."""
    return _TAGS.get()
