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

from finops.budgets.factory import open_store
from finops.budgets.manager import BudgetEvent, BudgetManager, BudgetStatus, Reservation
from finops.budgets.model import Budget, load_budgets
from finops.budgets.store import BudgetStore, MemoryStore

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
