"""Every exception and warning finops raises.

The whole tree::

    FinOpsError
    ├── ConfigError                 a FinOps(...) argument, budget or TOML file is invalid
    ├── PricingError
    │   ├── PriceFileError          a file in pricing/ (or an overrides file) is malformed
    │   └── UnknownModelError       no price for a model and the policy is ``raise``
    ├── TokenizerError
    │   └── EncodingIntegrityError  a bundled BPE file does not match its SHA-256
    ├── BudgetError
    │   ├── BudgetExceeded          a call would go over a budget (raised before any network I/O)
    │   │   └── CallCostExceeded    one call's worst case is above its per-call cap (``finops_max_cost``)
    │   └── BudgetBackendUnavailable the budget store cannot be reached and policy is fail_closed
    └── LedgerError
        └── MigrationError          the ledger schema is newer than this finops, or a migration failed

    FinOpsWarning (UserWarning)
    ├── UnknownModelWarning         a model had no price; the row is recorded with zero cost, flagged
    ├── BudgetWarning               a ``warn`` budget was crossed
    └── MeteringWarning             finops failed to meter a call; the user's call was not affected

Rule: an exception from finops reaches application code only where finops decides
something *before* the network call (a budget refusal, an invalid configuration, the
``raise`` unknown-model policy). A failure while metering a response that already arrived
is logged, recorded on the ledger row and never raised. Every message says what was wrong
and what to do about it.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

__all__ = [
    "BudgetBackendUnavailable",
    "BudgetError",
    "BudgetExceeded",
    "BudgetWarning",
    "CallCostExceeded",
    "ConfigError",
    "EncodingIntegrityError",
    "FinOpsError",
    "FinOpsWarning",
    "LedgerError",
    "MeteringWarning",
    "MigrationError",
    "PriceFileError",
    "PricingError",
    "TokenizerError",
    "UnknownModelError",
    "UnknownModelWarning",
]


class FinOpsError(Exception):
    """Base class of every exception raised by finops."""


class ConfigError(FinOpsError, ValueError):
    """A configuration value (argument, budget definition, TOML file) is invalid."""


class PricingError(FinOpsError):
    """Base class for pricing problems."""


class PriceFileError(PricingError):
    """A price table file is malformed or fails schema validation."""


class UnknownModelError(PricingError, LookupError):
    """No price is known for a model and the unknown-model policy is ``raise``."""

    def __init__(self, message: str, *, provider: str, model: str) -> None:
        super().__init__(message)
        self.provider = provider
        self.model = model


class TokenizerError(FinOpsError):
    """Token counting failed (missing or unreadable encoding data)."""


class EncodingIntegrityError(TokenizerError):
    """A bundled BPE rank file does not match its expected SHA-256 hash."""


class BudgetError(FinOpsError):
    """Base class for budget problems."""


class BudgetExceeded(BudgetError):
    """A call would take a budget past its limit; nothing was sent to the provider.

    Attributes describe the budget that refused the call: ``scope`` (tag → value
    mapping), ``period``, ``unit`` (``"usd"`` or ``"tokens"``), ``limit``, ``spent``
    (settled so far in this period), ``reserved`` (held by calls in flight) and
    ``requested`` (this call's worst case). Amounts are ``Decimal``.
    """

    def __init__(
        self,
        message: str,
        *,
        budget: str,
        scope: dict[str, str],
        period: str,
        unit: str,
        limit: Decimal,
        spent: Decimal,
        reserved: Decimal,
        requested: Decimal,
    ) -> None:
        super().__init__(message)
        self.budget = budget
        self.scope = scope
        self.period = period
        self.unit = unit
        self.limit = limit
        self.spent = spent
        self.reserved = reserved
        self.requested = requested

    @property
    def remaining(self) -> Decimal:
        """What was left of the limit when the call was refused."""
        return self.limit - self.spent - self.reserved

    def __reduce__(self) -> tuple[Any, ...]:  # keep it picklable across processes
        return (_rebuild_budget_exceeded, (type(self), str(self), dict(self.__dict__)))


def _rebuild_budget_exceeded(
    cls: type[BudgetExceeded], message: str, state: dict[str, Any]
) -> BudgetExceeded:
    error = cls.__new__(cls)
    Exception.__init__(error, message)
    error.__dict__.update(state)
    return error


class CallCostExceeded(BudgetExceeded):
    """A single call's worst-case cost is above its per-call cap; nothing was sent.

    Raised for ``finops_max_cost="0.05"`` on a call (or ``FinOps(max_call_cost=...)``).
    ``limit`` is the cap, ``requested`` the call's worst-case cost (``period`` is ``"call"``,
    ``spent`` and ``reserved`` are 0). A subclass of :class:`BudgetExceeded`, so code that
    handles budget refusals handles it too.
    """


class BudgetBackendUnavailable(BudgetError):
    """The budget store could not be reached and the failure policy is ``fail_closed``."""


class LedgerError(FinOpsError):
    """The ledger could not be opened or written."""


class MigrationError(LedgerError):
    """The ledger's schema cannot be brought to this version of finops."""


class FinOpsWarning(UserWarning):
    """Base class of every warning emitted by finops."""


class UnknownModelWarning(FinOpsWarning):
    """A model had no price: the row was recorded at zero cost and flagged."""


class BudgetWarning(FinOpsWarning):
    """A budget with ``action="warn"`` was crossed."""


class MeteringWarning(FinOpsWarning):
    """finops could not meter a call; the application's call itself was unaffected."""
