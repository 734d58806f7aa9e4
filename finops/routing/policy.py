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
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from finops.errors import ConfigError
from finops.routing.model import RouterModel, default_model, load_model
from finops.routing.translate import Limits, cannot_serve, capabilities, needs_of, translate

__all__ = [
    "Decision",
    "Route",
    "RouteTarget",
    "Router",
    "Routing",
    "RoutingScope",
    "load_routing",
    "prompt_text",
]

Mode = Literal["on", "shadow", "off"]


class RouteTarget(BaseModel):
    """A cheaper way to serve a request: another model and/or less reasoning."""

    model_config = ConfigDict(frozen=True, extra="forbid")
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


class Route(BaseModel):
    """Requests for ``source`` (exact id, prefix, or glob like ``o3*``) may use ``targets``."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    source: str = Field(min_length=1)
    targets: list[RouteTarget] = Field(min_length=1)

    def matches(self, model: str) -> bool:
        """Whether this route applies to a requested model id."""
        if any(ch in self.source for ch in "*?["):
            return fnmatch.fnmatchcase(model, self.source)
        return model == self.source or model.startswith(self.source + "-")


class RoutingScope(BaseModel):
    """Settings for calls whose tag ``tag`` equals ``value`` (first matching scope wins)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    tag: str = Field(min_length=1)
    value: str
    mode: Mode | None = None
    keep_quality: float | None = Field(default=None, gt=0.0, le=1.0)
    strong_share: float | None = Field(default=None, ge=0.0, le=1.0)


class Routing(BaseModel):
    """Routing configuration for ``FinOps(routing=...)``."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    routes: list[Route] = Field(min_length=1)
    keep_quality: float | None = Field(default=0.95, gt=0.0, le=1.0)
    strong_share: float | None = Field(default=None, ge=0.0, le=1.0)
    mode: Mode = "on"
    scopes: list[RoutingScope] = []
    model_path: str | None = None  # a directory from `finops routing train`; None: shipped
    name: str = "default"

    def __init__(self, **data: Any) -> None:  # keyword-only, like every finops config
        super().__init__(**data)


def load_routing(table: Mapping[str, Any], *, base_dir: str | None = None) -> Routing:
    """Build :class:`Routing` from a TOML ``[routing]`` table (``FinOps.from_config``).

    ``[[routing.routes]]`` with ``source`` and ``[[routing.routes.targets]]``;
    ``[[routing.scopes]]``; a relative ``model_path`` is resolved against ``base_dir``.
    """
    data = dict(table)
    path = data.get("model_path")
    if isinstance(path, str) and base_dir is not None and not path.startswith("/"):
        from pathlib import Path

        data["model_path"] = str((Path(base_dir) / path).resolve())
    try:
        return Routing(**data)
    except ValidationError as exc:
        raise ConfigError(f"invalid [routing] settings: {exc}") from exc


@dataclass(frozen=True, slots=True)
class Decision:
    """What the router decided for one request (everything the ledger row records)."""

    action: str  # "route" | "keep" | "shadow_route" | "off" | "opt_out" | "no_route"
    reason: str  # e.g. "score<threshold", "score>=threshold", "cannot_serve:tools"
    requested_model: str
    target: str | None  # label of the chosen target, if any
    served_model: str | None  # model that will be (or, in shadow, would be) called
    score: float | None
    threshold: float | None
    kwargs: dict[str, Any] | None  # rewritten kwargs (only when action == "route")
    dropped: tuple[str, ...]
    changed: tuple[str, ...]
    policy: str
    cpu_us: float

    @property
    def routed(self) -> bool:
        """True when the request leaves with a different model or parameters."""
        return self.action == "route"

    def summary(self) -> str:
        """One-line text for the ``route_decision`` column."""
        text = f"{self.action}:{self.reason}"
        if self.target:
            text += f"->{self.target}"
        if self.dropped:
            text += f" dropped={','.join(self.dropped)}"
        return text


def prompt_text(endpoint: str, kwargs: Mapping[str, Any]) -> str:
    """The text the router scores: the last user turn (the question being asked)."""
    messages = kwargs.get("messages", kwargs.get("input"))
    if isinstance(messages, str):
        return messages
    if not isinstance(messages, (list, tuple)):
        return ""
    for m in reversed(messages):
        if not isinstance(m, Mapping) or m.get("role", "user") != "user":
            continue
        content = m.get("content")
        if isinstance(content, str):
            return content
        if isinstance(content, (list, tuple)):
            return "\n".join(
                str(p.get("text", "")) for p in content if isinstance(p, Mapping) and "text" in p
            )
    return ""


class Router:
    """A :class:`Routing` config bound to a router model and model limits (built once)."""

    def __init__(
        self, *, config: Routing, model: RouterModel | None = None, limits: Limits | None = None
    ) -> None:
        self.config = config
        try:
            self.model = model or (
                load_model(config.model_path) if config.model_path else default_model()
            )
        except ConfigError:
            raise
        self.limits = limits
        self.policy = f"{config.name}@{self.model.version}"
        self._thresholds: dict[tuple[float | None, float | None], float] = {}

    def threshold(self, keep_quality: float | None, strong_share: float | None) -> float:
        """Score threshold for a quality or share target (cached)."""
        key = (keep_quality, strong_share)
        if key not in self._thresholds:
            if strong_share is not None:
                value = self.model.threshold_for_share(strong_share)
            else:
                value = self.model.threshold_for_quality(keep_quality or 0.95)
            self._thresholds[key] = value
        return self._thresholds[key]

    def _scope(self, tags: Mapping[str, str]) -> RoutingScope | None:
        for scope in self.config.scopes:
            if tags.get(scope.tag) == scope.value:
                return scope
        return None

    def decide(
        self,
        *,
        endpoint: str,
        kwargs: Mapping[str, Any],
        tags: Mapping[str, str] | None = None,
        opt_out: bool = False,
    ) -> Decision | None:
        """Decide for one request; None when no route applies to the requested model."""
        started = time.process_time_ns()
        requested = str(kwargs.get("model", ""))
        route = next((r for r in self.config.routes if r.matches(requested)), None)
        if route is None or endpoint == "embeddings":
            return None
        scope = self._scope(tags or {})
        mode: Mode = (scope.mode if scope and scope.mode else None) or self.config.mode

        def done(action: str, reason: str, **kw: Any) -> Decision:
            return Decision(
                action=action,
                reason=reason,
                requested_model=requested,
                target=kw.get("target"),
                served_model=kw.get("served", requested),
                score=kw.get("score"),
                threshold=kw.get("threshold"),
                kwargs=kw.get("kwargs"),
                dropped=kw.get("dropped", ()),
                changed=kw.get("changed", ()),
                policy=self.policy,
                cpu_us=(time.process_time_ns() - started) / 1000.0,
            )

        if opt_out:
            return done("opt_out", "finops_route=False")
        if mode == "off":
            return done("off", "mode=off")
        keep = scope.keep_quality if scope and scope.keep_quality else self.config.keep_quality
        share = scope.strong_share if scope and scope.strong_share is not None else (
            self.config.strong_share
        )
        score = self.model.score(prompt_text(endpoint, kwargs))
        base = self.threshold(keep, share)
        if score >= base:
            return done("keep", "score>=threshold", score=score, threshold=base)
        needs = needs_of(endpoint, kwargs)
        chosen = None
        reasons = []
        # the most aggressive target whose own threshold the score is under, and that can serve
        for target in reversed(route.targets):
            limit = self.threshold(target.keep_quality, None) if target.keep_quality else base
            if score >= limit:
                continue
            model = target.model or requested
            if target.model is not None and capabilities(requested) is not None:
                src = capabilities(requested)
                dst = capabilities(model)
                if src is not None and dst is not None and src.provider != dst.provider:
                    reasons.append("cross_provider")  # needs both clients wrapped: future work
                    continue
            why = cannot_serve(model, needs, self.limits)
            if why is not None:
                reasons.append(why)
                continue
            chosen = target
            break
        if chosen is None:
            reason = "cannot_serve:" + ",".join(dict.fromkeys(reasons)) if reasons else "no_target"
            return done("no_route", reason, score=score, threshold=base)
        served = chosen.model or requested
        tr = translate(
            endpoint,
            kwargs,
            model=served,
            reasoning_effort=chosen.reasoning_effort,
            thinking_off=chosen.thinking == "off",
        )
        action = "shadow_route" if mode == "shadow" else "route"
        return done(
            action,
            "score<threshold",
            target=chosen.label(requested),
            served=served,
            score=score,
            threshold=base,
            kwargs=tr.kwargs if action == "route" else None,
            dropped=tr.dropped,
            changed=tr.changed,
        )
