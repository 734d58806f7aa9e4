"""Step: a per-call cost cap — ``finops_max_cost="0.05"`` on a call, or a default for all.

Refuses, before anything is sent, a single call whose worst-case cost (the pre-call
estimate: input tokens plus the maximum output at the model's prices) is above the cap, with
:class:`~finops.errors.CallCostExceeded` (a :class:`~finops.errors.BudgetExceeded`), and
records a ``blocked`` row. Unlike a budget it keeps no counter: it guards against one
runaway request (a huge prompt, a ``max_tokens`` of 100k on an expensive model).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING

from finops.budgets.step import record_refusal
from finops.errors import CallCostExceeded, ConfigError
from finops.pipeline.call import Call, Served
from finops.pipeline.step import LedgerAccess, Step
from finops.tokens.step import EstimateStep

if TYPE_CHECKING:
    from finops.pricing.book import PriceBook

__all__ = ["CallCostCap", "parse_cap"]


def parse_cap(value: object, *, where: str) -> Decimal:
    """A cap in USD: a Decimal, int or decimal string (floats are refused: money is exact)."""
    if isinstance(value, (bool, float)):
        raise ConfigError(
            f"{where}={value!r}: give the cap as a decimal string or Decimal (e.g. \"0.05\"), "
            f"not a float"
        )
    try:
        cap = Decimal(str(value)) if isinstance(value, (int, str, Decimal)) else None
    except InvalidOperation:
        cap = None
    if cap is None or not cap.is_finite() or cap < 0:
        raise ConfigError(f"{where}={value!r} is not a cost in USD: use e.g. \"0.05\"")
    return cap


class CallCostCap(Step):
    """Refuse a call whose worst-case cost is above ``finops_max_cost`` (or the default)."""

    name = "call_cost_cap"
    options = frozenset({"finops_max_cost"})

    def __init__(
        self,
        *,
        default: Decimal | None,
        estimator: EstimateStep,
        pricebook: Callable[[], PriceBook],
        ledger: LedgerAccess,
        clock: Callable[[], datetime],
    ) -> None:
        self.default = default
        self._estimator = estimator
        self._pricebook = pricebook
        self._ledger = ledger
        self._clock = clock

    def before(self, call: Call) -> Served | None:
        """Compare the call's worst case with its cap."""
        value = call.options.get("finops_max_cost")
        if value is None:
            if self.default is None:
                return None
            cap = self.default
        else:
            cap = parse_cap(value, where="finops_max_cost")
        if call.estimate is None:  # estimates are off: this call needs one all the same
            self._estimator.apply(call)
        cost = self._worst_cost(call)
        if cost is None or cost <= cap:
            return None
        model = call.kwargs.get("model")
        exc = CallCostExceeded(
            f"this {call.endpoint} call to {model!r} could cost up to ${cost:.6f} "
            f"(estimate: {getattr(call.estimate, 'input_tokens', '?')} input tokens + "
            f"{getattr(call.estimate, 'output_tokens_max', '?')} output tokens at most), above "
            f"its cap of ${cap}; it was not sent. Lower max_tokens, shorten the prompt, use a "
            f"cheaper model, or raise finops_max_cost.",
            budget="per-call",
            scope={},
            period="call",
            unit="usd",
            limit=cap,
            spent=Decimal(0),
            reserved=Decimal(0),
            requested=cost,
        )
        call.row["est_cost_max"] = cost
        record_refusal(self._ledger, call, exc, self._clock(), would_cost=cost)
        raise exc

    def _worst_cost(self, call: Call) -> Decimal | None:
        estimate = call.estimate
        if estimate is None:
            return None
        cost: Decimal | None = getattr(estimate, "cost_max", None)
        if cost is not None:
            return cost
        from finops.usage import Usage

        usage = Usage(
            input_tokens=int(estimate.input_tokens), output_tokens=int(estimate.output_tokens_max)
        )
        priced = self._pricebook().price(
            provider=call.price_provider,
            model=str(call.kwargs.get("model") or ""),
            usage=usage,
            at=self._clock(),
        )
        if priced.status == "unknown_model":
            return None  # the unknown-model policy decides about unpriced models
        return priced.total
