"""finops: a price on every LLM call, and spend kept under control.

    import finops, openai
    fo = finops.FinOps(ledger="finops.duckdb")
    client = fo.wrap(openai.OpenAI())
    with finops.tags(team="search", feature="summaries"):
        client.chat.completions.create(model="gpt-4o", messages=[...])

Everything public is importable from ``finops`` itself; submodules are implementation.
Heavy parts load on first use (``import finops`` must stay cheap), see ``__getattr__``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from finops._lazy import lazy_attributes
from finops.context import current_tags, tags
from finops.errors import (
    BudgetBackendUnavailable,
    BudgetError,
    BudgetExceeded,
    BudgetWarning,
    CallCostExceeded,
    ConfigError,
    EncodingIntegrityError,
    FinOpsError,
    FinOpsWarning,
    LedgerError,
    MeteringWarning,
    MigrationError,
    PriceFileError,
    PricingError,
    TokenizerError,
    UnknownModelError,
    UnknownModelWarning,
)
from finops.usage import StepUsage, Usage

__version__ = "0.1.0"

# name -> module that defines it; imported on first attribute access.
_LAZY: dict[str, str] = {
    "FinOps": "finops.core",
    "LedgerRow": "finops.ledger.row",
    "Ledger": "finops.ledger",
    "PriceBook": "finops.pricing",
    "PricedCost": "finops.pricing",
    "count_tokens": "finops.tokens",
    "Estimate": "finops.tokens",
    "Budget": "finops.budgets",
    "Cache": "finops.cache",
    "DevServer": "finops.devserver",
    "Step": "finops.pipeline",
    "Served": "finops.pipeline",
    "Outcome": "finops.pipeline",
    "Call": "finops.pipeline",
    "Routing": "finops.routing.config",
    "Route": "finops.routing.config",
    "RouteTarget": "finops.routing.config",
    "RoutingScope": "finops.routing.config",
    "RouteStep": "finops.routing.step",
}

if TYPE_CHECKING:
    from finops.budgets import Budget
    from finops.cache import Cache
    from finops.core import FinOps
    from finops.devserver import DevServer
    from finops.ledger import Ledger
    from finops.ledger.row import LedgerRow
    from finops.pipeline import Call, Outcome, Served, Step
    from finops.pricing import PriceBook, PricedCost
    from finops.routing.config import Route, RouteTarget, Routing, RoutingScope
    from finops.routing.step import RouteStep
    from finops.tokens import Estimate, count_tokens


__getattr__, __dir__ = lazy_attributes('finops', _LAZY, globals())


__all__ = [
    "Budget",
    "BudgetBackendUnavailable",
    "BudgetError",
    "BudgetExceeded",
    "BudgetWarning",
    "Cache",
    "Call",
    "CallCostExceeded",
    "ConfigError",
    "DevServer",
    "EncodingIntegrityError",
    "Estimate",
    "FinOps",
    "FinOpsError",
    "FinOpsWarning",
    "Ledger",
    "LedgerError",
    "LedgerRow",
    "MeteringWarning",
    "MigrationError",
    "Outcome",
    "PriceBook",
    "PriceFileError",
    "PricedCost",
    "PricingError",
    "Route",
    "RouteStep",
    "RouteTarget",
    "Routing",
    "RoutingScope",
    "Served",
    "Step",
    "StepUsage",
    "TokenizerError",
    "UnknownModelError",
    "UnknownModelWarning",
    "Usage",
    "__version__",
    "count_tokens",
    "current_tags",
    "tags",
]
