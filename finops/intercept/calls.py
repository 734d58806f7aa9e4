"""How a call's context travels from the facade to the transport.

The facade (wrapped SDK method) creates a :class:`~finops.pipeline.call.Call`, runs the
pipeline's steps on it, registers it, and adds the
internal header ``x-finops-call: <call_id>`` to the request through the SDK's public
``extra_headers`` argument. The transport strips that header before anything is sent and looks
the context up here. A header (rather than only a contextvar) is used because some SDK helpers
send their request later than the method call — ``anthropic`` ``messages.stream()`` sends it
on ``__enter__`` — and the header travels with the request wherever and whenever it is sent.

One exception: a wrapped method whose SDK sends its requests on the caller's thread or task
(google-genai: a non-stream method before it returns, a stream while it is iterated) names
its call in :data:`SENDING` instead, while the method and each step of the stream run. google-genai takes a header only through a per-request ``http_options``, and
merging those into the client's options costs the caller ~70 µs a call (a deep copy of
them); a context variable costs nothing and cannot reach another thread or task.
"""

from __future__ import annotations

import threading
import time
from contextvars import ContextVar

from finops.pipeline.call import Call, CallContext

__all__ = ["HEADER", "SENDING", "Call", "CallContext", "CallRegistry"]

#: ``(hook, call)`` while a wrapped method that sends in place runs (see the module text):
#: the transport of that hook takes a request without the header as this call's.
SENDING: ContextVar[tuple[object, Call] | None] = ContextVar("finops_sending", default=None)

#: Internal request header carrying the call id from the facade to the transport.
HEADER = "x-finops-call"


class CallRegistry:
    """call id → :class:`Call` for calls whose requests may still be sent.

    Entries are removed when the call ends; entries of calls that never sent a request
    (e.g. a stream manager that was never entered) are swept after ``ttl_s``.
    """

    def __init__(self, *, ttl_s: float = 900.0) -> None:
        self._ttl_s = ttl_s
        self._calls: dict[str, Call] = {}
        self._lock = threading.Lock()
        self._adds = 0

    def add(self, ctx: Call) -> None:
        """Register a call."""
        with self._lock:
            self._calls[ctx.call_id] = ctx
            self._adds += 1
            if self._adds % 1024 == 0:
                self._sweep()

    def get(self, call_id: str) -> Call | None:
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
