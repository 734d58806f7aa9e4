"""Budgets: limits on spend per tag scope and calendar period, enforced before each call.

    from finops.budgets import Budget, BudgetManager
    manager = BudgetManager([Budget(scope={"team": "search"}, limit="50.00", period="day")],
                            store="sqlite:///budgets.db")
    r = manager.reserve(tags={"team": "search"}, cost=worst_case_usd, tokens=worst_case_tokens)
    ...  # the call
    manager.settle(r, cost=actual_usd, tokens=actual_tokens)

See ``docs/budgets.md`` for the model, the atomicity design of each store, reservation
expiry, seeding from the ledger and the failure policy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from finops._lazy import lazy_attributes

# name -> module that defines it, imported on first use: the call path imports
# ``finops.budgets.call_cap`` for every FinOps, which must not load the budget manager,
# its stores and pydantic models when no budget is configured.
_LAZY: dict[str, str] = {
    "Budget": "finops.budgets.model",
    "BudgetEvent": "finops.budgets.manager",
    "BudgetManager": "finops.budgets.manager",
    "BudgetStatus": "finops.budgets.manager",
    "BudgetStore": "finops.budgets.store",
    "MemoryStore": "finops.budgets.store",
    "Reservation": "finops.budgets.manager",
    "load_budgets": "finops.budgets.model",
    "open_store": "finops.budgets.factory",
}

if TYPE_CHECKING:
    from finops.budgets.factory import open_store
    from finops.budgets.manager import BudgetEvent, BudgetManager, BudgetStatus, Reservation
    from finops.budgets.model import Budget, load_budgets
    from finops.budgets.store import BudgetStore, MemoryStore


__getattr__, __dir__ = lazy_attributes('finops.budgets', _LAZY, globals())


__all__ = [
    "Budget",
    "BudgetEvent",
    "BudgetManager",
    "BudgetStatus",
    "BudgetStore",
    "MemoryStore",
    "Reservation",
    "load_budgets",
    "open_store",
]
