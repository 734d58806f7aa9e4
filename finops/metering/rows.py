"""Building ledger rows: ids, usage and cost fields, and the row of a refused call."""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from finops.ledger.row import LedgerRow
from finops.usage import TOKEN_FIELDS, Usage

if TYPE_CHECKING:
    from finops.pipeline.call import Call
    from finops.pricing.book import PricedCost

__all__ = [
    "UsageResult",
    "clip",
    "fill_cost",     "fill_usage",
    "join",
    "new_id",
    "refused_row",
    "row_tokens",
]

_MAX_ERROR_TEXT = 500


@dataclass(frozen=True, slots=True)
class UsageResult:
    """How one attempt ended, when the caller's SDK already read its usage (boto3's Bedrock
    answers and events): what :meth:`finops.metering.Meter.finish_usage` turns into a row.

    ``ts``: when the attempt started; ``elapsed``: its seconds; ``status``: ok | error |
    cancelled; ``error`` / ``message``: the row's ``error_type`` / ``error_message``.
    """

    ts: datetime
    elapsed: float
    status: str
    http_status: int | None
    usage: Usage | None
    error: str | None = None
    message: str | None = None


class _Ids:
    """128-bit random hex ids without a system call per id.

    ``os.urandom`` is a system call that releases the GIL: on a busy process every id then
    waits for the background threads (measured: ~200 µs a call under load). A private
    Mersenne Twister seeded from ``os.urandom`` costs ~0.4 µs and never releases the GIL. It
    is re-seeded in a forked child (gunicorn/Celery workers), so two processes never share a
    sequence; being private, an application's ``random.seed(...)`` cannot make ids repeat.
    """

    def __init__(self) -> None:
        self._random = random.Random(os.urandom(32))
        os.register_at_fork(after_in_child=self._reseed)

    def _reseed(self) -> None:
        self._random.seed(os.urandom(32))

    def new(self) -> str:
        return f"{self._random.getrandbits(128):032x}"


_IDS = _Ids()


def new_id() -> str:
    """A random 128-bit hex id (unique across threads, processes and forks)."""
    return _IDS.new()


def refused_row(
    call: Call,
    *,
    error_type: str,
    reason: str,
    would_cost: Decimal | None,
    now: datetime,
) -> LedgerRow:
    """The row of a call a step refused before anything was sent (status ``blocked``).

    It costs nothing (``cost_total`` 0); what it would have cost at worst is kept in
    ``counterfactual_cost``. The fields the steps wrote so far (``call.row``: the estimate,
    budget flags) are on it too.
    """
    row = LedgerRow(
        row_id=new_id(),
        call_id=call.call_id,
        attempt=0,
        ts_start=now,
        ts_end=now,
        latency_ms=0.0,
        provider=call.price_provider or call.provider,
        endpoint=call.endpoint,
        status="blocked",
        requested_model=call.requested_model,
        stream=call.stream,
        error_type=error_type,
        error_message=clip(reason),
        cost_total=Decimal(0),
        counterfactual_cost=would_cost,
        tags=dict(call.tags),
    )
    for name, value in call.row.items():
        setattr(row, name, value)
    return row


def row_tokens(row: LedgerRow) -> int:
    """All tokens of a row (input, cached, output, reasoning, audio)."""
    return sum(getattr(row, name) or 0 for name in TOKEN_FIELDS)


def fill_usage(row: LedgerRow, usage: Usage) -> None:
    """Copy normalized usage onto a row."""
    for name in TOKEN_FIELDS:
        setattr(row, name, getattr(usage, name))
    row.server_tool_requests = dict(usage.server_tool_requests)
    row.usage_estimated = usage.estimated
    row.usage_mismatch = usage.mismatch


def fill_cost(row: LedgerRow, cost: PricedCost) -> None:
    """Copy a priced cost onto a row (``counterfactual_cost`` starts equal to the cost)."""
    row.cost_input = cost.input
    row.cost_cache_read = cost.cache_read
    row.cost_cache_write = cost.cache_write
    row.cost_output = cost.output
    row.cost_tools = cost.tools
    row.cost_steps = cost.steps
    row.cost_total = cost.total
    row.counterfactual_cost = cost.total
    row.currency = cost.currency
    row.price_version = cost.price_version
    row.pricing_status = cost.status


def clip(text: str) -> str:
    """Error text cut to a size fit for a ledger column."""
    return text if len(text) <= _MAX_ERROR_TEXT else text[: _MAX_ERROR_TEXT - 1] + "…"


def join(first: str | None, second: str) -> str:
    """Append a problem to a row's ``finops_error`` text."""
    return second if not first else f"{first}; {second}"
