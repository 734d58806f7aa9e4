"""Per-call context, handed from the facade to the transport.

The facade (wrapped SDK method) creates a :class:`CallContext`, registers it, and adds the
internal header ``x-finops-call: <call_id>`` to the request through the SDK's public
``extra_headers`` argument. The transport strips that header before anything is sent and looks
the context up here. A header (rather than only a contextvar) is used because some SDK helpers
send their request later than the method call — ``anthropic`` ``messages.stream()`` sends it
on ``__enter__`` — and the header travels with the request wherever and whenever it is sent.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

__all__ = ["HEADER", "CallContext", "CallRegistry"]

#: Internal request header carrying the call id from the facade to the transport.
HEADER = "x-finops-call"


@dataclass(slots=True, eq=False)
class CallContext:
    """Everything finops knows about one logical SDK call (all its HTTP attempts)."""

    call_id: str
    provider: str  # wire format: "openai" | "anthropic"
    endpoint: str
    requested_model: str | None
    stream: bool
    tags: Mapping[str, str]
    price_provider: str | None = None  # price-table provider (None: resolve from the model)
    api_url: str | None = None
    host: Any = None  # finops.providers.hosts.HostRoute: who served it, how it is priced
    strip_usage_chunk: bool = False  # finops injected include_usage: hide that chunk
    service_tier: str | None = None
    estimate: Any = None  # finops.tokens.Estimate, when known
    reservation: Any = None  # finops.budgets.Reservation, when a budget applies
    budget_flags: str | None = None
    route_decision: str | None = None
    prompt_text: str | None = None  # only with store_content=True
    attempts: int = 0
    spent_cost: Decimal = Decimal(0)
    spent_tokens: int = 0
    ended: bool = False
    created: float = field(default_factory=time.monotonic)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next_attempt(self) -> int:
        """Number the next HTTP attempt of this call (1, 2, ...)."""
        with self.lock:
            self.attempts += 1
            return self.attempts


class CallRegistry:
    """call id → :class:`CallContext` for calls whose requests may still be sent.

    Entries are removed when the call ends; entries of calls that never sent a request
    (e.g. a stream manager that was never entered) are swept after ``ttl_s``.
    """

    def __init__(self, *, ttl_s: float = 900.0) -> None:
        self._ttl_s = ttl_s
        self._calls: dict[str, CallContext] = {}
        self._lock = threading.Lock()
        self._adds = 0

    def add(self, ctx: CallContext) -> None:
        """Register a call."""
        with self._lock:
            self._calls[ctx.call_id] = ctx
            self._adds += 1
            if self._adds % 1024 == 0:
                self._sweep()

    def get(self, call_id: str) -> CallContext | None:
        """The context of a call, or None if unknown or already swept."""
        return self._calls.get(call_id)

    def discard(self, call_id: str) -> None:
        """Forget a call (idempotent)."""
        self._calls.pop(call_id, None)

    def __len__(self) -> int:
        return len(self._calls)

    def _sweep(self) -> None:
        cutoff = time.monotonic() - self._ttl_s
        for key in [k for k, c in self._calls.items() if c.created < cutoff]:
            del self._calls[key]
