"""The step protocol: one small object per concern of the call path (DESIGN.md §1).

A step is built once, by :func:`finops.pipeline.compose.build_steps`, from the FinOps
configuration; a feature that is not configured is simply not in the list. For every call:

* ``before(call)`` runs in order, before the SDK sends anything. A step may rewrite
  ``call.kwargs`` (route to another model, inject ``stream_options``), write its own fields
  in ``call.row`` (they land on every ledger row of the call), **refuse** the call by raising
  a :class:`~finops.errors.FinOpsError` (nothing is sent), or **serve** it by returning a
  :class:`~finops.pipeline.call.Served` answer: the steps after it do not run (a cache hit
  reserves no budget) and the transport answers the SDK without a network request.
* ``on_row(call, row)`` runs for each attempt's ledger row just before it is recorded, for
  fields only known once the response is in (a cache hit's cost is zero; what routing saved),
  in reverse order like ``after``: the step nearest the network first.
* ``after(call, outcome)`` runs once when the call is over (every attempt done, the stream
  consumed or closed), in reverse order: settle a reservation, store an answer in a cache.

Rules: a step touches only its own fields of the row and its own package; it never calls
another step (the composition wires collaborators explicitly); ``on_row`` and ``after`` must
not raise (the user's response has already arrived — failures are logged and recorded).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from finops.pipeline.call import Call, Outcome, Served

if TYPE_CHECKING:
    from finops.ledger.row import LedgerRow
    from finops.pricing.book import PriceBook

__all__ = ["KNOWN_OPTIONS", "LedgerAccess", "Step", "StepEnv"]

#: Per-call keyword options finops takes off SDK calls (``finops_*``), whether or not the
#: step that reads them is configured (``finops_cache=False`` with caching off is harmless).
#: Any other ``finops_*`` keyword is a mistake and raises ConfigError before the call.
KNOWN_OPTIONS: frozenset[str] = frozenset(
    {"finops_tags", "finops_cache", "finops_route", "finops_max_cost"}
)


class LedgerAccess(Protocol):
    """What steps may do with the ledger: add rows, read spend back."""

    def append(self, row: LedgerRow) -> None:
        """Record one row (never blocks, never raises)."""

    def query(self, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
        """Run a read-only SQL query on the ledger."""

    def flush(self, timeout_s: float | None = None) -> bool:
        """Wait until the rows recorded so far are queryable."""


@dataclass(frozen=True, slots=True)
class StepEnv:
    """The shared services a step is built with (no globals)."""

    pricebook: Callable[[], PriceBook]
    ledger: LedgerAccess
    clock: Callable[[], datetime]
    clients: Any = None  # finops.routing.relay.Clients: wrapped clients (cross-provider routes)


class Step:
    """Base class of the call-path steps; every hook defaults to doing nothing."""

    #: Short name, used in logs, docs and ``finops.FinOps.steps``.
    name: ClassVar[str] = "step"
    #: The ``finops_*`` per-call options this step reads (a subset of KNOWN_OPTIONS).
    options: ClassVar[frozenset[str]] = frozenset()

    def before(self, call: Call) -> Served | None:
        """Inspect or change the call before it is sent; raise to refuse, return to serve."""
        return None

    def on_row(self, call: Call, row: LedgerRow) -> None:
        """Amend one attempt's ledger row before it is recorded."""

    def after(self, call: Call, outcome: Outcome) -> None:
        """The call is over."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} step {self.name!r}>"
