"""The routing decision for one request: score, threshold, target, translation.

:class:`Router` binds a :class:`~finops.routing.config.Routing` configuration to a router
model and to model limits (context window, max output); it is built once per FinOps and its
:meth:`Router.decide` is the hot path (≈0.5 ms, numpy only).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from finops.routing.config import Mode, Routing, RoutingScope
from finops.routing.cross import split_target
from finops.routing.translate import Limits, cannot_serve, capabilities, needs_of, translate
from finops.routing.wires import BEDROCK_ENDPOINTS, bedrock_target, is_bedrock_id

if TYPE_CHECKING:
    from finops.routing.model import RouterModel

__all__ = ["Decision", "Router", "prompt_text"]


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
    provider: str | None = None  # another provider's target (a cross-provider route)

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
        if self.provider is not None and self.changed:
            text += f" changed={','.join(self.changed)}"
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
        from finops.routing.model import default_model, load_model

        self.model = model or (
            load_model(config.model_path) if config.model_path else default_model()
        )
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
        own_provider: str | None = None,
        cross: Callable[[str, str], str | None] | None = None,
        known: frozenset[str] = frozenset(),
    ) -> Decision | None:
        """Decide for one request; None when no route applies to the requested model.

        A target named ``provider:model`` for a provider other than ``own_provider`` (the
        caller's price provider) is a cross-provider route: ``cross(provider, model)`` says
        why it cannot be taken (target client not wrapped, nothing to translate it to...)
        or None; without ``cross`` it is refused as ``cross_provider``. ``known`` adds
        host labels of wrapped clients to the provider prefixes."""
        started = time.thread_time_ns()
        requested = str(kwargs.get("model", ""))
        route = next((r for r in self.config.routes if r.matches(requested)), None)
        if route is None or endpoint in ("embeddings", "embed_content"):
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
                cpu_us=(time.thread_time_ns() - started) / 1000.0,
                provider=kw.get("provider"),
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
        chosen_provider: str | None = None
        reasons = []
        # the most aggressive target whose own threshold the score is under, and that can serve
        for target in reversed(route.targets):
            limit = self.threshold(target.keep_quality, None) if target.keep_quality else base
            if score >= limit:
                continue
            model = target.model or requested
            provider, name = split_target(model, known)
            if provider is not None and provider != own_provider:
                why = "cross_provider" if cross is None else cross(provider, name)
                if why is None:
                    why = cannot_serve(name, needs, self.limits)
                if why is not None:
                    reasons.append(why)
                    continue
                chosen, chosen_provider = target, provider
                break
            if provider is not None:
                model = name  # "openai:gpt-4.1-mini" on an OpenAI client: the same provider
            if endpoint in BEDROCK_ENDPOINTS:
                model = bedrock_target(requested, model)  # keeps the inference profile
                if not is_bedrock_id(model):
                    reasons.append("not_a_bedrock_model_id")
                    continue
            elif is_bedrock_id(model) and not is_bedrock_id(requested):
                reasons.append("cross_provider")  # a Bedrock id on another SDK's wire
                continue
            src, dst = capabilities(requested), capabilities(model)
            if src is not None and dst is not None and src.provider != dst.provider:
                reasons.append("cross_provider")  # across providers only as "provider:model"
                continue
            why = cannot_serve(model, needs, self.limits)
            if why is not None:
                reasons.append(why)
                continue
            chosen, chosen_provider = target, None
            break
        if chosen is None:
            reason = "cannot_serve:" + ",".join(dict.fromkeys(reasons)) if reasons else "no_target"
            return done("no_route", reason, score=score, threshold=base)
        action = "shadow_route" if mode == "shadow" else "route"
        if chosen_provider is not None:  # the step translates and relays it
            return done(
                action,
                "score<threshold",
                target=chosen.label(requested),
                served=split_target(chosen.model, known)[1],
                score=score,
                threshold=base,
                provider=chosen_provider,
            )
        served = split_target(chosen.model or requested, known)[1]
        if endpoint in BEDROCK_ENDPOINTS:
            served = bedrock_target(requested, served)
        tr = translate(
            endpoint,
            kwargs,
            model=served,
            reasoning_effort=chosen.reasoning_effort,
            thinking_off=chosen.thinking == "off",
        )
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
