"""Routing policy: which cheaper targets a request may go to, and at what router score.

Configuration (keyword-only pydantic models, ``extra="forbid"``)::

    finops.Routing(
        routes=[
            finops.Route(source="o3", targets=[finops.RouteTarget(model="gpt-4.1-mini")]),
            finops.Route(source="gpt-5", targets=[finops.RouteTarget(reasoning_effort="minimal")]),
            finops.Route(source="claude-opus-4", targets=[
                finops.RouteTarget(model="claude-sonnet-4-5", thinking="off"),
                finops.RouteTarget(model="claude-haiku-4-5", keep_quality=0.90),
            ]),
        ],
        keep_quality=0.95,          # or strong_share=0.4 ("at most 40% stays on the big model")
        mode="on",                  # "shadow": decide and record, never change the request
        scopes=[finops.RoutingScope(tag="team", value="research", mode="off")],
    )

The threshold is read from the calibration curve stored with the router model: the score
above which a request stays on the requested model so that, on the model's held-out data,
at least ``keep_quality`` of the strong model's quality is kept (or at most ``strong_share``
of requests stay). Targets are tried in order; a target with its own ``keep_quality`` gets
its own (lower) threshold, which makes an N-model ladder: the cheapest target whose threshold
the score is under, and that can serve the request, wins.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from finops.errors import ConfigError

__all__ = ["Mode", "Route", "RouteTarget", "Routing", "RoutingScope", "load_routing"]

Mode = Literal["on", "shadow", "off"]


class _Config(BaseModel):
    """Frozen, keyword-only, unknown keys rejected; invalid values raise ConfigError."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise ConfigError(f"invalid {type(self).__name__}: {exc}") from None


class RouteTarget(_Config):
    """A cheaper way to serve a request: another model and/or less reasoning."""

    model: str | None = None  # None: the requested model itself (effort/thinking change only)
    reasoning_effort: Literal["minimal", "low", "medium"] | None = None
    thinking: Literal["off"] | None = None
    keep_quality: float | None = Field(default=None, gt=0.0, le=1.0)

    @model_validator(mode="after")
    def _something(self) -> RouteTarget:
        if self.model is None and self.reasoning_effort is None and self.thinking is None:
            raise ValueError("a RouteTarget needs a model, a reasoning_effort or thinking='off'")
        return self

    def label(self, requested: str) -> str:
        """Short text for the ledger (``gpt-4.1-mini``, ``o3@low``, ``claude-opus-4-1@nothink``)."""
        name = self.model or requested
        if self.reasoning_effort:
            name += f"@{self.reasoning_effort}"
        if self.thinking == "off":
            name += "@nothink"
        return name


class Route(_Config):
    """Requests for ``source`` (exact id, prefix, or glob like ``o3*``) may use ``targets``."""

    source: str = Field(min_length=1)
    targets: list[RouteTarget] = Field(min_length=1)

    def matches(self, model: str) -> bool:
        """Whether this route applies to a requested model id."""
        if any(ch in self.source for ch in "*?["):
            return fnmatch.fnmatchcase(model, self.source)
        return model == self.source or model.startswith(self.source + "-")


class RoutingScope(_Config):
    """Settings for calls whose tag ``tag`` equals ``value`` (first matching scope wins)."""

    tag: str = Field(min_length=1)
    value: str
    mode: Mode | None = None
    keep_quality: float | None = Field(default=None, gt=0.0, le=1.0)
    strong_share: float | None = Field(default=None, ge=0.0, le=1.0)


class Routing(_Config):
    """Routing configuration for ``FinOps(routing=...)``."""

    routes: list[Route] = Field(min_length=1)
    keep_quality: float | None = Field(default=0.95, gt=0.0, le=1.0)
    strong_share: float | None = Field(default=None, ge=0.0, le=1.0)
    mode: Mode = "on"
    scopes: list[RoutingScope] = []
    model_path: str | None = None  # a directory from `finops routing train`; None: shipped
    name: str = "default"


def load_routing(table: Mapping[str, Any], *, base_dir: str | None = None) -> Routing:
    """Build :class:`Routing` from a TOML ``[routing]`` table (``FinOps.from_config``).

    ``[[routing.routes]]`` with ``source`` and ``[[routing.routes.targets]]``;
    ``[[routing.scopes]]``; a relative ``model_path`` is resolved against ``base_dir``.
    """
    data = dict(table)
    path = data.get("model_path")
    if isinstance(path, str) and base_dir is not None and not path.startswith("/"):
        data["model_path"] = str((Path(base_dir) / path).resolve())
    try:
        return Routing(**data)
    except ConfigError as exc:
        raise ConfigError(f"invalid [routing] settings: {exc}") from None


