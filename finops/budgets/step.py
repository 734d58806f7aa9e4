"""Step: reserve budget before the call, settle it after (DESIGN.md §6).

``before`` reserves the call's worst case (from ``call.estimate``) on every matching budget;
over a limit it records a ``blocked`` row and raises :class:`~finops.errors.BudgetExceeded`
— nothing is sent. A ``downgrade`` budget near its limit rewrites the call to the cheaper
model (re-estimated) instead. ``after`` settles the reservation to what the call really
cost (cancelled streams: input plus the output produced).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from finops.errors import BudgetExceeded, MeteringWarning
from finops.metering.rows import refused_row
from finops.pipeline.call import Call, Outcome, Served
from finops.pipeline.step import LedgerAccess, Step
from finops.tokens.step import EstimateStep, worst_case
from finops.usage import TOKEN_FIELDS

if TYPE_CHECKING:
    from finops.budgets.manager import BudgetManager
    from finops.budgets.model import Budget

__all__ = ["BudgetStep", "ledger_seed", "record_refusal"]


class BudgetStep(Step):
    """Reserve → (call) → settle, with raise / warn / downgrade actions."""

    name = "budget"

    def __init__(
        self,
        manager: BudgetManager,
        *,
        estimator: EstimateStep,
        ledger: LedgerAccess,
        clock: Callable[[], datetime],
    ) -> None:
        self.manager = manager
        self._estimator = estimator
        self._ledger = ledger
        self._clock = clock

    def before(self, call: Call) -> Served | None:
        """Reserve the worst case; refuse, warn or downgrade per the budgets' actions."""
        model = call.kwargs.get("model")
        cost, tokens = worst_case(call.estimate)
        try:
            reservation = self.manager.reserve(tags=call.tags, cost=cost, tokens=tokens, model=model)
        except BudgetExceeded as exc:
            record_refusal(self._ledger, call, exc, self._clock())
            raise
        target = getattr(reservation, "downgrade_to", None)
        if target and target != model:
            # A downgrade budget is near its limit: send the call to the cheaper model instead.
            self.manager.release(reservation)
            call.kwargs = {**call.kwargs, "model": target}
            self._estimator.apply(call)
            cost, tokens = worst_case(call.estimate)
            try:
                reservation = self.manager.reserve(
                    tags=call.tags, cost=cost, tokens=tokens, model=target, allow_downgrade=False
                )
            except BudgetExceeded as exc:
                record_refusal(self._ledger, call, exc, self._clock())
                raise
            call.row["route_decision"] = f"budget_downgrade:{model}->{target}"
        call.reservation = reservation
        flags = getattr(reservation, "flags", None)
        if flags:
            call.row["budget_flags"] = "; ".join(flags)
        return None

    def after(self, call: Call, outcome: Outcome) -> None:
        """Settle the reservation to what the call cost (0 if nothing was sent)."""
        if call.reservation is not None:
            self.manager.settle(call.reservation, cost=outcome.cost, tokens=outcome.tokens)


def record_refusal(
    ledger: LedgerAccess,
    call: Call,
    exc: BudgetExceeded,
    now: datetime,
    *,
    would_cost: Decimal | None = None,
) -> None:
    """A refused call still gets a row: status blocked, with the cost it would have had
    (``would_cost``, default: the estimate's worst case)."""
    call.row["budget_flags"] = f"blocked:{exc.budget}" if exc.budget else "blocked"
    try:
        ledger.append(
            refused_row(
                call,
                error_type=type(exc).__name__,
                reason=str(exc),
                would_cost=would_cost
                if would_cost is not None
                else getattr(call.estimate, "cost_max", None),
                now=now,
            )
        )
    except Exception as err:  # the refusal itself must still reach the caller
        warnings.warn(
            f"finops: could not record a blocked call: {err!r}", MeteringWarning, stacklevel=4
        )


def ledger_seed(
    ledger: LedgerAccess,
) -> Callable[[Budget, str, datetime, datetime], tuple[Decimal, int]]:
    """The manager's ``seed``: spend already in the ledger for a budget's scope and period
    (so a restarted process does not start from zero)."""

    def seed(budget: Budget, scope_key: str, start: datetime, end: datetime) -> tuple[Decimal, int]:
        ledger.flush(timeout_s=5)
        clauses = ["ts_start >= ?", "ts_start < ?", "status <> 'blocked'"]
        params: list[Any] = [start, end]
        for key, value in budget.scope.items():
            if value == "*":
                continue
            clauses.append("tags[?] = ?")
            params.extend([key, value])
        if scope_key:  # per-value budgets ("agent": "*"): the concrete values of this counter
            for part in scope_key.split("|"):
                key, _, value = part.partition("=")
                value = value.replace("%7C", "|").replace("%25", "%")  # scope_key escaping
                if key and key in budget.scope and budget.scope[key] == "*":
                    clauses.append("tags[?] = ?")
                    params.extend([key, value])
        result = ledger.query(
            "SELECT coalesce(sum(cost_total), 0), coalesce(sum("
            + " + ".join(f"coalesce({c}, 0)" for c in TOKEN_FIELDS)
            + "), 0) FROM calls WHERE "
            + " AND ".join(clauses),
            params,
        )
        cost, tokens = result[0] if result else (0, 0)
        return Decimal(cost), int(tokens)

    return seed
