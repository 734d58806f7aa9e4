"""Routing: send easy requests to cheaper models, or to less reasoning, offline.

Public names (also importable from ``finops``): :class:`Routing`, :class:`Route`,
:class:`RouteTarget`, :class:`RoutingScope` (configuration), :class:`RouteStep` (the call-path
step), and for training/evaluation :func:`train`, :func:`load_model`, :func:`default_model`,
:func:`evaluate`. See docs/routing.md.
"""

from __future__ import annotations

import importlib
from typing import Any

from finops.routing.config import Route, RouteTarget, Routing, RoutingScope, load_routing

__all__ = [
    "Route",
    "RouteStep",
    "RouteTarget",
    "Routing",
    "RoutingScope",
    "default_model",
    "evaluate",
    "load_model",
    "load_routing",
    "train",
]

_LAZY = {
    "RouteStep": "finops.routing.step",
    "default_model": "finops.routing.model",
    "load_model": "finops.routing.model",
    "train": "finops.routing.model",
    "evaluate": "finops.routing.metrics",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'finops.routing' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
