"""The one place the call path is composed (DESIGN.md §1, STYLE.md "a pipeline of steps").

The order is the design: a step that is not configured is absent, and adding a step is a new
module in its feature package plus one line here.

    stream usage → unknown-model guard → [loop breaker] → [cache lookup] → [route]
      → the user's own steps (FinOps(steps=[...])) → estimate → per-call cost cap → budget reserve → (SDK + transport)
      → on_row (each attempt) → after, in reverse: budget settle, [cache store]

Steps in brackets come with their feature packages (``finops/cache/``, ``finops/routing/``).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from finops.pipeline.step import Step, StepEnv

if TYPE_CHECKING:
    from finops.budgets.manager import BudgetManager

__all__ = ["StepConfig", "build_steps"]


@dataclass(frozen=True, slots=True)
class StepConfig:
    """The parts of a FinOps configuration that decide which steps exist."""

    unknown_model: str = "zero_flagged"
    estimate: str = "auto"
    budgets: BudgetManager | None = None
    max_call_cost: Decimal | None = None
    extra: tuple[Step, ...] = ()  # the user's own steps (FinOps(steps=[...]))
    cache: Any = None  # finops.Cache (issue 11)
    routing: Any = None  # finops.Routing (issue 12)


def build_steps(config: StepConfig, env: StepEnv) -> list[Step]:
    """The ordered steps for one FinOps."""
    from finops.budgets.call_cap import CallCostCap
    from finops.providers.stream_usage import StreamUsageStep
    from finops.tokens.step import EstimateStep

    estimator = EstimateStep(
        mode=config.estimate,
        pricebook=env.pricebook,
        clock=env.clock,
        priced=config.budgets is not None,
        defer=config.budgets is None,
    )
    steps: list[Step | None] = [
        StreamUsageStep(),
        _guard(config, env),
        # loop breaker (finops/loops/)   — a later issue
        _cache(config),
        _route(config, env),
        *config.extra,
        estimator if config.estimate != "off" or config.budgets is not None else None,
        CallCostCap(
            default=config.max_call_cost,
            estimator=estimator,
            pricebook=env.pricebook,
            ledger=env.ledger,
            clock=env.clock,
        ),
        _budget(config, env, estimator),
    ]
    return [step for step in steps if step is not None]


def _guard(config: StepConfig, env: StepEnv) -> Step | None:
    if config.unknown_model != "raise":
        return None
    from finops.pricing.guard import UnknownModelGuard

    return UnknownModelGuard(env.pricebook)


def _cache(config: StepConfig) -> Step | None:
    if config.cache is None:
        return None
    from finops.cache.step import build

    return build(config.cache)


def _budget(config: StepConfig, env: StepEnv, estimator: Any) -> Step | None:
    if config.budgets is None:
        return None
    from finops.budgets.step import BudgetStep

    return BudgetStep(config.budgets, estimator=estimator, ledger=env.ledger, clock=env.clock)


def _route(config: StepConfig, env: StepEnv) -> Step | None:
    if config.routing is None:
        return None
    from finops.routing.step import RouteStep

    return RouteStep(config.routing, pricebook=env.pricebook, clients=env.clients)
