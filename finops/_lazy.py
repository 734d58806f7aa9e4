"""Module-level lazy attributes (PEP 562) for packages whose names must not import their
parts until used (``finops``, ``finops.budgets``, ``finops.tokens``): start-up cost."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_attributes(
    package: str, table: Mapping[str, str], namespace: dict[str, Any]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for ``package``: ``table`` maps a public name to the
    module defining it; the first access imports that module and caches the value in
    ``namespace`` (the package's ``globals()``), so later accesses are plain lookups."""

    def getattr_(name: str) -> Any:
        module = table.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    def dir_() -> list[str]:
        return sorted(namespace.get("__all__", ()))

    return getattr_, dir_
