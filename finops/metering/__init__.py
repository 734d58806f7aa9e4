"""The response side of every call (DESIGN.md §1, steps 8–11), beside ``finops/intercept/``.

:class:`Meter` turns each finished HTTP attempt into a priced :class:`~finops.ledger.LedgerRow`:
the transport reports the attempt (:class:`MeteredAttempt`), the provider adapter parses usage,
the price book prices it, the pipeline's steps amend the row (``on_row``), the ledger takes it;
when the call is over the steps' ``after`` run (settle a budget, store an answer in a cache).
"""

from __future__ import annotations

from finops.metering.meter import ClientHook, Meter, MeteredAttempt, RowSink, approx_tokens
from finops.metering.rows import UsageResult, new_id, refused_row

__all__ = [
    "ClientHook",
    "Meter",
    "MeteredAttempt",
    "RowSink",
    "UsageResult",
    "approx_tokens",
    "new_id",
    "refused_row",
]
